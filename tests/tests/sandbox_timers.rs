//! Timer units in the namespace sandbox: monotonic timers elapse on
//! schedule and again after each run of their unit, a Persistent=
//! calendar timer catches up a run missed while the machine was off (its
//! stamp says when it last ran), and a bad OnCalendar= fails only its
//! unit, at its line.

use relive_tests::{require_sandbox, Sandbox};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The run times (seconds since the epoch, fractional) a unit appended.
fn runs(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A oneshot service that appends the time of each run to `log`.
fn recorder(log: &Path) -> String {
    format!(
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'date +%%s.%%N >> {}'\n",
        log.display()
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("relive-timers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn monotonic_timers_elapse_on_schedule_and_after_each_run() {
    require_sandbox!();
    let dir = scratch("mono");
    let log = dir.join("runs");
    let timer = "[Timer]\nOnActiveSec=1\nOnUnitActiveSec=2\nAccuracySec=1ms\n";
    let sandbox = Sandbox::boot(
        &[
            ("tick.timer", timer),
            ("tick.service", &recorder(&log)),
            ("multi-user.target", "[Unit]\nWants=tick.timer\n"),
        ],
        "",
    );
    sandbox.wait_state("tick.timer", "active", Duration::from_secs(10));
    sandbox.wait_for("three runs", Duration::from_secs(20), || {
        runs(&log).len() >= 3
    });
    let times = runs(&log);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // OnUnitActiveSec=2 counts from the unit's last activation.
        assert!(
            (1.8..4.0).contains(&gap),
            "runs {gap:.2} s apart: {times:?}\n{}",
            sandbox.log()
        );
    }
    let status = sandbox.status("tick.timer");
    assert_eq!(status["sub_state"], "waiting", "{status}");
    // list-timers: armed for the next run, and it has run.
    let listed: serde_json::Value =
        serde_json::from_str(&sandbox.ctl_ok(&["--json", "list-timers"])).unwrap();
    let tick = &listed[0];
    assert_eq!(
        (tick["unit"].as_str(), tick["activates"].as_str()),
        (Some("tick.timer"), Some("tick.service"))
    );
    assert!(
        tick["next_usec"].as_u64() > tick["last_usec"].as_u64(),
        "{listed}"
    );
    let table = sandbox.ctl_ok(&["list-timers"]);
    assert!(table.starts_with("NEXT "), "{table}");
    assert!(
        table.contains(" left ") && table.contains(" ago "),
        "{table}"
    );
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn a_persistent_calendar_timer_catches_up_a_missed_run() {
    require_sandbox!();
    let dir = scratch("persistent");
    let stamps = dir.join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    // Both last ran two days ago; only the persistent one remembers it.
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86400);
    for timer in ["missed.timer", "forgetful.timer"] {
        let stamp = std::fs::File::create(stamps.join(format!("stamp-{timer}"))).unwrap();
        stamp.set_modified(two_days_ago).unwrap();
    }
    let (missed, forgetful) = (dir.join("missed"), dir.join("forgetful"));
    let config = format!("[manager]\ntimer_stamp_dir = \"{}\"\n", stamps.display());
    let sandbox = Sandbox::boot(
        &[
            (
                "missed.timer",
                "[Timer]\nOnCalendar=daily\nPersistent=true\n",
            ),
            ("missed.service", &recorder(&missed)),
            ("forgetful.timer", "[Timer]\nOnCalendar=daily\n"),
            ("forgetful.service", &recorder(&forgetful)),
            (
                "multi-user.target",
                "[Unit]\nWants=missed.timer forgetful.timer\n",
            ),
        ],
        &config,
    );
    sandbox.wait_for("the missed run", Duration::from_secs(15), || {
        runs(&missed).len() == 1
    });
    sandbox.wait_state("forgetful.timer", "active", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(runs(&forgetful).is_empty(), "{}", sandbox.log());
    assert_eq!(runs(&missed).len(), 1, "caught up once, not again");
    // The stamp now says it ran today.
    let stamp = std::fs::metadata(stamps.join("stamp-missed.timer"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(stamp.elapsed().unwrap() < Duration::from_secs(60));
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn a_bad_calendar_fails_only_its_timer_at_its_line() {
    require_sandbox!();
    let sandbox = Sandbox::boot(
        &[
            (
                "bad.timer",
                "[Unit]\nDescription=bad\n[Timer]\nOnCalendar=Mon *-13-01\n",
            ),
            ("fine.service", "[Service]\nExecStart=/bin/sleep 300\n"),
            (
                "multi-user.target",
                "[Unit]\nWants=bad.timer fine.service\n",
            ),
        ],
        "",
    );
    sandbox.wait_state("fine.service", "active", Duration::from_secs(10));
    let lines = sandbox.log_lines("bad.timer:4: invalid OnCalendar= value \"Mon *-13-01\"");
    assert!(!lines.is_empty(), "{}", sandbox.log());
    assert_eq!(sandbox.status("bad.timer")["load_state"], "error");
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
