//! The same image booted under systemd and under relive, side by side:
//! the active units of every type (`systemctl list-units --all` under
//! both: relive serves systemd's D-Bus API) and the output of the same
//! commands, Debian's systemctl among them, stopped by `systemctl
//! poweroff`. Every difference must be a known one, named here with its
//! reason; anything else fails.

use super::check::Verdict;
use crate::output;
use crate::vm::boot::{self, Options, ReadyWhen};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::{ssh, stop};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Unit types compared (systemd's names for them).
const TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "device",
    "slice",
    "scope",
];

/// Commands whose output must be the same under both inits.
const SAME_OUTPUT: &[&str] = &[
    "swapon --show=NAME,TYPE,SIZE --noheadings",
    "findmnt -no SOURCE,TARGET,FSTYPE /srv/data",
    "ip -4 -o addr show dev eth0 | awk '{print $4}'",
    "ip route show default",
    "busctl list --acquired --no-legend | awk '{print $1}' | sort",
    "cd / && runuser -u postgres -- psql -tAc 'select 6 * 7'",
    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -q1 127.0.0.1 80 | head -1",
    // Debian's sandboxed units get their sandbox: their own mount
    // namespace, seccomp, no_new_privs, the same capability bounding set.
    // (Not udevd: with Delegate= systemd puts its processes in child
    // cgroups, which relive, Delegate= being best effort, does not.)
    "for u in systemd-timesyncd systemd-journald redis-server cron; do \
       p=$(head -1 /sys/fs/cgroup/system.slice/$u.service/cgroup.procs); \
       ns=own-mount-ns; [ \"$(readlink /proc/$p/ns/mnt)\" = \"$(readlink /proc/1/ns/mnt)\" ] && ns=pid1-mount-ns; \
       echo $u $ns $(grep -E '^(Seccomp|NoNewPrivs|CapBnd):' /proc/$p/status | tr -d '\\t' | tr '\\n' ' '); \
     done",
];

/// Debian's systemctl, read-only, whose output must be the same under
/// both inits (relive serves systemd's D-Bus API to it). Times, PIDs and
/// sizes are cut out where a command prints them.
const SYSTEMCTL_SAME: &[&str] = &[
    "systemctl is-system-running",
    "systemctl get-default",
    "systemctl is-active ssh.service cron.service redis-server.service nginx.service dbus.service no-such.service; echo exit=$?",
    "systemctl is-enabled ssh.service cron.service redis-server.service nginx.service systemd-timesyncd.service getty@tty1.service apt-daily.timer dbus.service systemd-logind.service 2>&1; echo exit=$?",
    "systemctl is-failed ssh.service; echo exit=$?",
    "systemctl show -p Id,LoadState,ActiveState,SubState,Type,Restart,UnitFileState,UnitFilePreset,FragmentPath,DropInPaths,Description,Documentation,CanReload ssh.service cron.service redis-server.service nginx.service",
    "systemctl list-unit-files --no-legend --plain ssh.service sshd.service cron.service redis-server.service 'getty@.service' systemd-timesyncd.service apt-daily.timer systemd-logind.service",
    "systemctl list-timers --all --no-legend | awk '{print $(NF-1), $NF}' | sort",
    // (Not --all: that adds the inactive units each manager has loaded,
    // and systemd loads every unit any After=/Before= names, relive only
    // what it needs.)
    "systemctl list-sockets --no-legend | awk '{print $1, $2, $3}' | sort",
    "systemctl status ssh.service | grep -E '^ *(●|Loaded|Active|Docs|Main PID|CGroup):' | sed -E 's/since .*/since TIME/; s/Main PID: [0-9]+/Main PID: N/'",
    "systemctl cat cron.service | head -3",
    "systemctl list-jobs",
    // logind's session for this ssh login, and a command in a scope.
    "loginctl show-session \"$XDG_SESSION_ID\" -p Name -p Service -p Remote -p Class -p Type -p State -p Active",
    "systemd-run --scope -q --unit=side-by-side -- grep ^0:: /proc/self/cgroup",
    "runuser -u nobody -- systemctl is-active cron.service",
    "runuser -u nobody -- systemctl --no-ask-password stop cron.service 2>&1; echo exit=$?; systemctl is-active cron.service",
];

/// systemctl commands that change things, run once each, in order, after
/// everything else; their outputs must be the same too.
const SYSTEMCTL_CHANGES: &[&str] = &[
    "systemctl stop cron.service; echo exit=$?; systemctl is-active cron.service; systemctl start cron.service; echo exit=$?; systemctl is-active cron.service",
    "systemctl restart cron.service; echo exit=$?; systemctl is-active cron.service",
    // (Not ssh: sshd re-executes itself on a reload, and the next ssh
    // connection of the lab may be refused meanwhile.)
    "systemctl reload nginx.service; echo exit=$?; systemctl is-active nginx.service",
    "systemctl try-restart redis-server.service; echo exit=$?; systemctl is-active redis-server.service",
    "systemctl kill -s HUP nginx.service; echo exit=$?; sleep 1; systemctl is-active nginx.service",
    "systemctl reset-failed; echo exit=$?",
    // The changes systemctl prints come from the manager's change lists.
    "systemctl disable cron.service 2>&1; echo exit=$?; systemctl is-enabled cron.service; systemctl enable cron.service 2>&1; echo exit=$?; systemctl is-enabled cron.service",
    "systemctl mask nginx.service 2>&1; echo exit=$?; systemctl is-enabled nginx.service; systemctl unmask nginx.service 2>&1; echo exit=$?; systemctl is-enabled nginx.service",
    "systemctl daemon-reload; echo exit=$?; systemctl is-active ssh.service",
    "systemctl start no-such.service 2>&1; echo exit=$?",
];

/// Known differences: (unit name or prefix*, side it is active on, reason).
const KNOWN: &[(&str, Init, &str)] = &[
    (
        "*.device",
        Init::Systemd,
        "udev-driven device units: relive has a device unit only where a unit names one (it does not read udev's database yet)",
    ),
    (
        "*.slice",
        Init::Systemd,
        "systemd puts each template's instances in a slice of their own (system-getty.slice); relive keeps them in system.slice",
    ),
    (
        "init.scope",
        Init::Systemd,
        "systemd's own cgroup as a unit; relive has none for itself",
    ),
    (
        "user@*.service",
        Init::Systemd,
        "relive runs the user manager without the PAM session PAMName= asks for (best effort), and the list may be read before it is up",
    ),
    (
        "session-*.scope",
        Init::Systemd,
        "the ssh login running the command: logind numbers sessions from its start, and the boots saw different numbers of logins",
    ),
    (
        "session-*.scope",
        Init::Relive,
        "the ssh login running the command: logind numbers sessions from its start, and the boots saw different numbers of logins",
    ),
    (
        "run-user-*.mount",
        Init::Systemd,
        "systemd makes a unit of every mount in the kernel's table; relive only of those a unit names (systemd-user-runtime-dir mounts /run/user/0 under both)",
    ),
    (
        "run-credentials-*.mount",
        Init::Systemd,
        "systemd mounts units' LoadCredential= directories; relive does not implement credentials",
    ),
];

/// Boots `kernel` under each init, compares, and returns the verdicts.
pub fn compare_inits(
    paths: &Paths,
    image: &Image,
    kernel: &str,
    interrupt: &Interrupt,
) -> Result<Vec<Verdict>> {
    let systemd = observe(paths, image, kernel, Init::Systemd, &[], interrupt)?;
    let relive = observe(
        paths,
        image,
        kernel,
        Init::Relive,
        &systemd.outputs,
        interrupt,
    )?;
    let mut verdicts = Vec::new();
    for kind in TYPES {
        verdicts.push(compare_type(kind, &systemd.active, &relive.active));
    }
    let failed = |o: &Observed| o.failed.iter().cloned().collect::<Vec<_>>().join(", ");
    verdicts.push(Verdict {
        name: "side by side: no failed unit under either init".into(),
        ok: systemd.failed.is_empty() && relive.failed.is_empty(),
        detail: format!(
            "systemd: [{}]; relive: [{}]",
            failed(&systemd),
            failed(&relive)
        ),
    });
    let commands = SAME_OUTPUT
        .iter()
        .chain(SYSTEMCTL_SAME)
        .chain(SYSTEMCTL_CHANGES);
    for (command, (sd, rl)) in commands.zip(systemd.outputs.iter().zip(&relive.outputs)) {
        verdicts.push(Verdict {
            name: format!("side by side: `{command}`"),
            // Some commands rightly print nothing (list-jobs' "No jobs
            // running." goes to stderr); the same nothing is agreement.
            ok: sd == rl,
            detail: if sd == rl {
                format!("both: {}", sd.replace('\n', " | "))
            } else {
                format!(
                    "systemd: {} ≠ relive: {}",
                    sd.replace('\n', " | "),
                    rl.replace('\n', " | ")
                )
            },
        });
    }
    Ok(verdicts)
}

/// What one boot showed.
#[derive(Debug, Default)]
struct Observed {
    /// Active units, name → SUB.
    active: BTreeMap<String, String>,
    failed: BTreeSet<String>,
    /// SAME_OUTPUT's outputs, in order.
    outputs: Vec<String>,
}

/// How long a command whose output differs from `expected` is run again:
/// some state settles after the target is reached, under either init (a
/// service takes its bus name once it has connected to the bus).
const SETTLE: Duration = Duration::from_secs(20);

/// Boots under `init` and records its units and SAME_OUTPUT's outputs; an
/// output that differs from `expected`'s (when given) is taken again until
/// it matches or SETTLE has passed.
fn observe(
    paths: &Paths,
    image: &Image,
    kernel: &str,
    init: Init,
    expected: &[String],
    interrupt: &Interrupt,
) -> Result<Observed> {
    let opts = Options {
        ready_when: ReadyWhen::TargetActive,
        ..Options::new(kernel, Some(init))
    };
    let booted = boot::start(paths, image, &opts, interrupt)?;
    let step = output::step(format!("listing units and running commands under {init:?}"));
    // Debian's systemctl under both: relive answers it as systemd does.
    let list = "systemctl list-units --all --plain --no-legend --no-pager";
    let units = ssh::run(paths, booted.guest.ssh_port, list)?;
    let mut observed = parse_units(&units.stdout);
    let settled_by = std::time::Instant::now() + SETTLE;
    for (i, command) in SAME_OUTPUT.iter().chain(SYSTEMCTL_SAME).enumerate() {
        let output = loop {
            let out = ssh::run(paths, booted.guest.ssh_port, command)?;
            let text = out.stdout.trim().to_owned();
            let matches = expected.get(i).is_none_or(|e| *e == text);
            if matches || std::time::Instant::now() >= settled_by {
                break text;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        observed.outputs.push(output);
    }
    for command in SYSTEMCTL_CHANGES {
        let out = ssh::run(paths, booted.guest.ssh_port, command)?;
        observed.outputs.push(out.stdout.trim().to_owned());
    }
    step.done();
    let off = stop::poweroff_with(
        paths,
        booted,
        "systemctl poweroff",
        Duration::from_secs(120),
        interrupt,
    )?;
    if !off.clean() {
        bail!("{init:?} did not power off cleanly: {off:?}");
    }
    Ok(observed)
}

/// `list-units --plain --no-legend` lines: UNIT LOAD ACTIVE SUB DESCRIPTION.
fn parse_units(text: &str) -> Observed {
    let mut observed = Observed::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [unit, _load, active, sub, ..] = words.as_slice() else {
            continue;
        };
        match *active {
            "active" => {
                observed.active.insert(unit.to_string(), sub.to_string());
            }
            "failed" => {
                observed.failed.insert(unit.to_string());
            }
            _ => {}
        }
    }
    observed
}

/// The reason a unit active under `init` only is expected to be.
fn known_reason(unit: &str, init: Init) -> Option<&'static str> {
    KNOWN.iter().find_map(|(pattern, side, reason)| {
        let matches = match pattern.split_once('*') {
            Some((prefix, suffix)) => unit.starts_with(prefix) && unit.ends_with(suffix),
            None => unit == *pattern,
        };
        (matches && *side == init).then_some(*reason)
    })
}

fn compare_type(
    kind: &str,
    systemd: &BTreeMap<String, String>,
    relive: &BTreeMap<String, String>,
) -> Verdict {
    let suffix = format!(".{kind}");
    let of_kind = |m: &BTreeMap<String, String>| -> BTreeSet<String> {
        m.keys().filter(|u| u.ends_with(&suffix)).cloned().collect()
    };
    let (sd, rl) = (of_kind(systemd), of_kind(relive));
    let mut unexplained = Vec::new();
    let mut explained: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for (only, init) in [
        (sd.difference(&rl), Init::Systemd),
        (rl.difference(&sd), Init::Relive),
    ] {
        for unit in only {
            match known_reason(unit, init) {
                Some(reason) => *explained.entry((format!("{init:?}"), reason)).or_default() += 1,
                None => unexplained.push(format!("{unit} (only under {init:?})")),
            }
        }
    }
    // Active in both, but in another sub-state (running vs exited ...).
    let mut subs = Vec::new();
    for unit in sd.intersection(&rl) {
        if systemd[unit] != relive[unit] {
            subs.push(format!(
                "{unit}: {} under systemd, {} under relive",
                systemd[unit], relive[unit]
            ));
        }
    }
    let both = sd.intersection(&rl).count();
    let mut detail = format!("{both} active under both");
    if !explained.is_empty() {
        let known: Vec<String> = explained
            .iter()
            .map(|((init, reason), n)| format!("{n} only under {init}: {reason}"))
            .collect();
        detail += &format!("; known: {}", known.join("; "));
    }
    if !unexplained.is_empty() {
        detail += &format!("; UNEXPLAINED: {}", unexplained.join(", "));
    }
    if !subs.is_empty() {
        detail += &format!("; SUB differs: {}", subs.join(", "));
    }
    Verdict {
        name: format!("side by side: active .{kind} units"),
        ok: unexplained.is_empty() && subs.is_empty(),
        detail,
    }
}
