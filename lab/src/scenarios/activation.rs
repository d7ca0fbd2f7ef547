//! `relive-lab check`'s socket and timer units in the guest: units added
//! to the check's disk copy, then checked over ssh. A socket-activated
//! service starts on its first connection; an Accept=yes socket forks an
//! instance per connection; a timer with OnBootSec= and OnUnitActiveSec=
//! fires on schedule; a Persistent= OnCalendar= timer whose last run is
//! days old catches up when it starts; an automount mounts its file system
//! on the first access.

use super::check::Checks;
use crate::vm::disk::ExtraUnit;

/// Answers each connection on the socket it was given (fd 3) with its PID.
/// One line of Python: no `%` (a specifier in unit files) and no `$`.
const GREET_SERVICE: &str = r#"[Service]
ExecStart=/usr/bin/python3 -c 'import os, socket; s = socket.socket(fileno=3); [(c.sendall(("greet pid=" + str(os.getpid()) + chr(10)).encode()), c.close()) for c in (s.accept()[0] for _ in iter(int, 1))]'
"#;

fn unit(name: &str, text: &str, enable: bool) -> ExtraUnit {
    ExtraUnit {
        name: name.into(),
        text: format!("# Added by relive-lab check (lab/src/scenarios/activation.rs).\n{text}"),
        enable,
    }
}

pub fn extra_units() -> Vec<ExtraUnit> {
    vec![
        unit(
            "relive-lab-greet.socket",
            "[Socket]\nListenStream=127.0.0.1:7100\n",
            true,
        ),
        unit("relive-lab-greet.service", GREET_SERVICE, false),
        unit(
            "relive-lab-fork.socket",
            "[Socket]\nListenStream=127.0.0.1:7101\nAccept=yes\n",
            true,
        ),
        unit(
            "relive-lab-fork@.service",
            "[Service]\nStandardInput=socket\nExecStart=/usr/bin/python3 -c 'import os; print(\"fork pid=\" + str(os.getpid()))'\n",
            false,
        ),
        unit(
            "relive-lab-tick.timer",
            "[Timer]\nOnBootSec=5s\nOnUnitActiveSec=10s\nAccuracySec=1s\n",
            true,
        ),
        unit(
            "relive-lab-tick.service",
            "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'cut -d\" \" -f1 /proc/uptime >> /var/tmp/relive-lab-ticks'\n",
            false,
        ),
        unit(
            "relive-lab-daily.timer",
            "[Timer]\nOnCalendar=daily\nPersistent=true\n",
            true,
        ),
        unit(
            "relive-lab-daily.service",
            "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'date +%%s >> /var/tmp/relive-lab-daily'\n",
            false,
        ),
        unit("srv-auto.automount", "[Automount]\nWhere=/srv/auto\n", true),
        unit(
            "srv-auto.mount",
            "[Mount]\nWhat=tmpfs\nWhere=/srv/auto\nType=tmpfs\n",
            false,
        ),
    ]
}

pub fn activation_checks(c: &mut Checks<'_>) {
    c.check(
        "a socket-activated service starts on its first connection",
        "relivectl is-active relive-lab-greet.socket relive-lab-greet.service; \
         nc -q1 127.0.0.1 7100 </dev/null; relivectl is-active relive-lab-greet.service",
        &|o| {
            let lines: Vec<&str> = o.stdout.lines().map(str::trim).collect();
            lines.len() == 4
                && lines[0] == "active"
                && lines[1] == "inactive"
                && lines[2].starts_with("greet pid=")
                && lines[3] == "active"
        },
    );
    c.check_with(
        "an Accept=yes socket forks an instance per connection",
        "nc -q1 127.0.0.1 7101 </dev/null; nc -q1 127.0.0.1 7101 </dev/null",
        &|o| {
            let pids: Vec<&str> = o
                .stdout
                .lines()
                .filter_map(|l| l.trim().strip_prefix("fork pid="))
                .collect();
            let ok = pids.len() == 2 && pids[0] != pids[1];
            (ok, format!("instances' PIDs: {pids:?}"))
        },
    );
    // Wait for a third tick (OnBootSec= fired at the timer's start, which
    // is past 5 s of uptime under TCG; then every 10 s).
    c.check_with(
        "OnBootSec=/OnUnitActiveSec= timer fires on schedule",
        "for i in $(seq 40); do [ $(wc -l < /var/tmp/relive-lab-ticks) -ge 3 ] && break; sleep 1; done; \
         cat /var/tmp/relive-lab-ticks",
        &|o| {
            let ticks: Vec<f64> = o
                .stdout
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            let gaps: Vec<f64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
            let ok = ticks.len() >= 3
                && ticks[0] >= 5.0
                && gaps.iter().all(|g| (9.0..=13.0).contains(g));
            (
                ok,
                format!("ticks at uptime {ticks:?} s, gaps {gaps:.1?} s (10 s ± accuracy)"),
            )
        },
    );
    // As after a machine was off for days: the stamp says the last run was
    // three days ago, so starting the timer runs the service at once. (No
    // timer has run yet in a fresh image, so the stamps' directory is made.)
    c.check_with(
        "a Persistent= OnCalendar= timer catches up a missed run",
        "set -e; stamp=/var/lib/systemd/timers/stamp-relive-lab-daily.timer; \
         runs() { cat /var/tmp/relive-lab-daily 2>/dev/null | wc -l; }; before=$(runs); \
         mkdir -p ${stamp%/*}; touch -d '3 days ago' $stamp; relivectl restart relive-lab-daily.timer; \
         for i in $(seq 20); do [ $(runs) -gt $before ] && break; sleep 1; done; \
         echo runs $before $(runs); echo stamp_age $(( $(date +%s) - $(stat -c %Y $stamp) ))",
        &|o| {
            let field = |key: &str| -> Vec<i64> {
                o.stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|rest| {
                        rest.split_whitespace()
                            .filter_map(|w| w.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (runs, age) = (field("runs "), field("stamp_age "));
            let ok = o.success()
                && matches!(runs.as_slice(), [before, after] if after == &(before + 1))
                && matches!(age.as_slice(), [a] if *a < 60);
            (
                ok,
                format!("runs before and after {runs:?}; stamp age {age:?} s"),
            )
        },
    );
    c.check(
        "an automount mounts its file system on the first access",
        "relivectl is-active srv-auto.automount srv-auto.mount; ls /srv/auto >/dev/null; \
         stat -f -c %T /srv/auto; relivectl is-active srv-auto.mount",
        &|o| {
            let lines: Vec<&str> = o.stdout.lines().map(str::trim).collect();
            lines == ["active", "inactive", "tmpfs", "active"]
        },
    );
}
