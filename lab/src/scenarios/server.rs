//! `relive-lab check`'s checks of the Debian server the image is: the
//! servers and the system's plumbing run and answer under relive, the
//! fstab disk and swap file are in use, the journal has the units' lines,
//! the system bus answers, and the serial console shows a login prompt.

use super::check::{Checks, Verdict};
use crate::vm::image::DATA_DISK_MARKER;
use std::path::Path;
use std::time::Instant;

/// Debian's own servers and plumbing, all from their packages' unit files
/// (and the release's PostgreSQL cluster, `Distro::postgresql_unit`).
const SERVER_UNITS: &[&str] = &[
    "nginx.service",
    "cron.service",
    "systemd-journald.service",
    "dbus.service",
    "systemd-timesyncd.service",
    "networking.service",
    "serial-getty@ttyS0.service",
    "srv-data.mount",
    "swapfile.swap",
    "logrotate.timer",
];

pub fn server_checks(c: &mut Checks<'_>) {
    c.check(
        "Debian's servers and plumbing active",
        &format!(
            "relivectl is-active {} {}",
            SERVER_UNITS.join(" "),
            c.guest.distro.postgresql_unit()
        ),
        &|o| o.success() && o.stdout.lines().all(|l| l.trim() == "active"),
    );
    c.check(
        "nginx answers",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -q1 127.0.0.1 80 | head -1",
        &|o| o.success() && o.stdout.contains("200 OK"),
    );
    c.check(
        "postgres answers",
        "cd / && runuser -u postgres -- psql -tAc 'select 6 * 7'",
        &|o| o.success() && o.stdout.trim() == "42",
    );
    let (marker, text) = DATA_DISK_MARKER;
    let expected = format!("/dev/vdb ext4\n{}", text.trim_end());
    c.check(
        "the fstab disk is mounted",
        &format!("findmnt -no SOURCE,FSTYPE /srv/data && cat /srv/data/{marker}"),
        &move |o| o.success() && o.stdout.trim() == expected,
    );
    c.check(
        "the fstab swap file is in use",
        "swapon --show=NAME,TYPE --noheadings",
        &|o| o.success() && o.stdout.split_whitespace().eq(["/swapfile", "file"]),
    );
    // sshd's syslog lines (through journald's /dev/log), relive-counter's
    // stdout (through journald's stream socket) and relive's own lines
    // about nginx (through the native socket), each found by its unit.
    c.check_with(
        "journalctl -u shows the units' lines",
        "for u in ssh relive-counter nginx; do \
         printf '%s %s\\n' $u \"$(journalctl -b -q -o cat -u $u.service | wc -l)\"; done; \
         journalctl -b -q -o cat -u relive-counter.service | tail -1",
        &|o| {
            let counts: Vec<(String, usize)> = o
                .stdout
                .lines()
                .take(3)
                .filter_map(|l| {
                    let (unit, n) = l.split_once(' ')?;
                    Some((unit.to_owned(), n.trim().parse().ok()?))
                })
                .collect();
            let last = o.stdout.lines().nth(3).unwrap_or_default();
            let ok = o.success()
                && counts.len() == 3
                && counts.iter().all(|(_, n)| *n > 0)
                && last.starts_with("counter=");
            (
                ok,
                format!("lines per unit {counts:?}; last counter line {last:?}"),
            )
        },
    );
    c.check(
        "busctl list answers",
        "busctl list --no-pager --no-legend",
        &|o| {
            o.success()
                && o.stdout.contains("org.freedesktop.DBus")
                && o.stdout.contains("org.freedesktop.systemd1")
                && o.stdout.contains("org.freedesktop.timesync1")
        },
    );
    c.check(
        "MemoryMax= kills an allocation past it, TasksMax= refuses a fork",
        LIMITS_PROBE,
        &|o| o.success() && o.stdout.trim() == LIMITS_WANTED,
    );
    // pam_systemd asks logind for a session, logind asks relive for its
    // scope (StartTransientUnit) and for user@0.service (run without a
    // PAM session: PAMName= is best effort): no wait on either.
    let started = Instant::now();
    c.check(
        "an ssh login gets its session without waiting",
        "true",
        &|o| o.success(),
    );
    let secs = started.elapsed().as_secs_f64();
    if let Some(login) = c.out.last_mut() {
        login.ok &= secs < LOGIN_SECS_MAX;
        login.detail = format!("ssh true took {secs:.1} s (limit {LOGIN_SECS_MAX} s)");
    }
    c.check(
        "logind: the ssh login is a session in its own scope",
        "id=$XDG_SESSION_ID; loginctl list-sessions --no-legend | awk '{print $1, $3}' | grep -x \"$id root\"; \
         loginctl show-session \"$id\" -p Scope -p Service -p Remote -p State; grep '^0::' /proc/self/cgroup; \
         loginctl session-status \"$id\" | grep -q 'loginctl session-status' && echo listed",
        &|o| {
            let scope = o.stdout.lines().find_map(|l| l.strip_prefix("Scope=")).unwrap_or("-");
            o.success()
                && scope.starts_with("session-")
                && o.stdout.contains("Service=sshd\n")
                && o.stdout.contains("Remote=yes\n")
                && o.stdout.contains(&format!("0::/user.slice/user-0.slice/{scope}\n"))
                && o.stdout.ends_with("listed\n")
        },
    );
    c.check(
        "systemd-run --scope runs a command in a scope of its own",
        "systemd-run --scope --unit=lab-probe --slice=lab.slice -q -- sh -c \
           'grep ^0:: /proc/self/cgroup; systemctl show -p ActiveState,Transient lab-probe.scope'; \
         sleep 2.5; systemctl show -p LoadState lab-probe.scope",
        &|o| {
            o.success()
                && o.stdout
                    == "0::/lab.slice/lab-probe.scope\nActiveState=active\nTransient=yes\nLoadState=not-found\n"
        },
    );
    c.out.push(login_prompt(&c.guest.serial_log));
}

/// A oneshot unit made for the check: 32 MiB of memory, 8 tasks. Its
/// script allocates 96 MiB (the kernel's OOM killer ends it) and forks
/// 20 sleepers, of which the cgroup admits 6 (with the shell and python).
const LIMITS_PROBE: &str = "\
    cat > /run/relive-limits-probe.sh <<'SCRIPT'
python3 -c 'b = bytearray(96 << 20)' 2>/dev/null && echo alloc=survived || echo alloc=killed
python3 -c '
import os, time
n = 0
for i in range(20):
    try:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        n += 1
    except OSError:
        pass
print(\"forks=%d\" % n)'
c=/sys/fs/cgroup/system.slice/relive-limits-probe.service
echo limits=$(cat $c/memory.max)/$(cat $c/pids.max)
SCRIPT
    mkdir -p /run/systemd/system && cat > /run/systemd/system/relive-limits-probe.service <<'UNIT'
[Service]
Type=oneshot
MemoryMax=32M
MemorySwapMax=0
TasksMax=8
ExecStart=/bin/sh /run/relive-limits-probe.sh
UNIT
    relivectl daemon-reload && relivectl start relive-limits-probe.service; \
    journalctl -b -q -o cat -u relive-limits-probe.service | grep -E '^(alloc|forks|limits)='";
const LIMITS_WANTED: &str = "alloc=killed\nforks=6\nlimits=33554432/8";

/// An ssh command's round trip under TCG is a second or two; dbus-daemon's
/// activation timeout is 25 s.
const LOGIN_SECS_MAX: f64 = 15.0;

/// systemd-getty-generator's serial-getty@ttyS0 (from console=ttyS0)
/// prints agetty's prompt on the serial console, which QEMU writes to the
/// serial log.
fn login_prompt(serial_log: &Path) -> Verdict {
    let text = std::fs::read(serial_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // relive's own console lines may follow the prompt on its line.
    let prompt = text.lines().rev().find(|l| l.contains("relive-lab login:"));
    Verdict {
        name: "a login prompt on the serial console".into(),
        ok: prompt.is_some(),
        detail: format!("{}: {prompt:?}", serial_log.display()),
    }
}
