//! Load and abuse: relive as PID 1 of the sandbox while a service writes
//! without pause (`yes`), an unprivileged user floods the notify socket,
//! one unit holds 10,000 processes, 200 relivectl clients connect at once
//! and a User= unit restarts in a loop. Throughout, `relivectl
//! list-units` must answer within a second and relive's memory must stay
//! bounded; the figures are printed (`-- --nocapture`).

use relive_tests::{binary, require_sandbox, Sandbox};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROCESSES: usize = 10_000;

/// Sends notify datagrams as fast as it can for a minute, as the user
/// the unit runs as.
const FLOOD: &str = r#"
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
path = os.environ.get("NOTIFY_SOCKET", "/run/relive/notify")
end = time.time() + 60
while time.time() < end:
    try:
        s.sendto(b"STATUS=flood " + b"x" * 200, path)
    except OSError:
        pass
"#;

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How long `relivectl list-units` takes, and whether it answered.
fn list_units(sandbox: &Sandbox) -> (Duration, bool) {
    let started = Instant::now();
    let out = sandbox.ctl(&["list-units"]);
    (started.elapsed(), out.status.success())
}

#[test]
fn relive_answers_within_a_second_under_load_and_abuse() {
    require_sandbox!();
    let flood_script = std::env::temp_dir().join(format!("relive-flood-{}.py", std::process::id()));
    std::fs::write(&flood_script, FLOOD).unwrap();
    let yes = "[Service]\nExecStart=/usr/bin/yes\n";
    let flood = format!(
        "[Service]\nUser=nobody\nNotifyAccess=all\nExecStart=/usr/bin/python3 {}\n",
        flood_script.display()
    );
    let many = format!(
        "[Service]\nExecStart=/bin/sh -c 'i=0; while [ $i -lt {PROCESSES} ]; do sleep 600 & i=$((i+1)); done; wait'\n"
    );
    let churn = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nUser=nobody\nExecStart=/bin/true\nRestart=always\nRestartSec=0\n";
    let target = "[Unit]\nWants=yes.service flood.service many.service churn.service\n";
    let sandbox = Sandbox::boot(
        &[
            ("yes.service", yes),
            ("flood.service", &flood),
            ("many.service", &many),
            ("churn.service", churn),
            ("multi-user.target", target),
        ],
        "[manager]\ndefault_timeout_stop_sec = 30\n",
    );
    let pid1 = sandbox.pid1();
    let mut slowest = Duration::ZERO;
    let mut failures = 0;
    let mut max_rss = 0;
    let mut probes = 0;
    let mut probe = |sandbox: &Sandbox| {
        let (took, ok) = list_units(sandbox);
        slowest = slowest.max(took);
        failures += usize::from(!ok);
        max_rss = max_rss.max(rss_kib(pid1));
        probes += 1;
    };
    // Until the unit holds its 10,000 processes (or a minute went by).
    let filling = Instant::now();
    while sandbox.cgroup_pids("many.service").len() < PROCESSES
        && filling.elapsed() < Duration::from_secs(90)
    {
        probe(&sandbox);
        std::thread::sleep(Duration::from_millis(200));
    }
    let processes = sandbox.cgroup_pids("many.service").len();
    // 200 clients at once, three times, while the probes go on.
    let relivectl = binary("relivectl");
    let mut clients_failed = 0;
    for _ in 0..3 {
        let clients: Vec<_> = (0..200)
            .map(|_| {
                Command::new(&relivectl)
                    .arg("--socket")
                    .arg(&sandbox.socket)
                    .arg("list-units")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start relivectl")
            })
            .collect();
        probe(&sandbox);
        for mut client in clients {
            if !client.wait().is_ok_and(|s| s.success()) {
                clients_failed += 1;
            }
        }
        probe(&sandbox);
    }
    for _ in 0..15 {
        probe(&sandbox);
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "load: {probes} list-units probes, slowest {slowest:?}, {failures} failed; \
         relive RSS at most {max_rss} KiB; {processes} processes in many.service; \
         {clients_failed} of 600 concurrent clients failed"
    );
    let stopping = Instant::now();
    let (status, log) = sandbox.poweroff();
    println!(
        "load: poweroff with {processes} processes took {:?}",
        stopping.elapsed()
    );
    let _ = std::fs::remove_file(&flood_script);
    assert!(status.success(), "poweroff: {status}\n{log}");
    assert!(
        processes >= PROCESSES,
        "many.service holds {processes} processes"
    );
    assert_eq!(failures, 0, "list-units failed under load");
    assert!(
        slowest < Duration::from_secs(1),
        "list-units took {slowest:?}"
    );
    assert_eq!(clients_failed, 0, "concurrent clients failed");
    assert!(max_rss < 96 * 1024, "relive's RSS reached {max_rss} KiB");
}
