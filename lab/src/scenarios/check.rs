//! `relive-lab check`: the lab tests. For each kernel: boot a writable copy
//! of the image with relive as PID 1 (plus one deliberately failing unit),
//! check the guest over ssh, power it off with `relivectl poweroff`, and
//! check QEMU's exit status and the file system. This process owns QEMU
//! from start to exit, so QEMU's own exit status is the poweroff verdict.

use crate::output;
use crate::vm::boot::{self, Options};
use crate::vm::disk::ExtraUnit;
use crate::vm::guest::{Guest, Init};
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::Result;
use relive_api::report::UnitMode;
use relive_api::units::{UnitStatus, UnitSummary};
use relive_workloads::Report;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The failing unit: wanted by multi-user.target, must end up failed
/// without keeping the target from being reached.
const FAIL_UNIT: &str = "relive-lab-fail.service";
const FAIL_UNIT_TEXT: &str = "\
# Added by relive-lab check to its own disk copy: a unit that fails.
[Unit]
Description=relive lab: a unit that fails on purpose

[Service]
Type=oneshot
ExecStart=/bin/false
";

/// Debian's unit files that must run unchanged: (package, path as listed
/// in the package's md5sums, unit name).
const PACKAGED_UNITS: &[(&str, &str, &str)] = &[
    (
        "openssh-server",
        "lib/systemd/system/ssh.service",
        "ssh.service",
    ),
    (
        "redis-server",
        "lib/systemd/system/redis-server.service",
        "redis-server.service",
    ),
];

const SERVICES: &[&str] = &[
    "ssh.service",
    "redis-server.service",
    "relive-echo.service",
    "relive-counter.service",
];

/// One check's verdict.
#[derive(Debug)]
pub struct Verdict {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Prints each verdict as it comes (`ok`/`FAIL`, like `check`).
pub struct Verdicts {
    pub label: String,
    pub all: Vec<Verdict>,
}

impl Verdicts {
    pub fn record(&mut self, name: &str, ok: bool, detail: impl Into<String>) -> bool {
        let verdict = Verdict {
            name: name.into(),
            ok,
            detail: detail.into(),
        };
        output::println(format!(
            "{} {} {}: {}",
            if ok { "ok  " } else { "FAIL" },
            self.label,
            verdict.name,
            verdict.detail
        ));
        self.all.push(verdict);
        ok
    }

    /// How many failed so far.
    pub fn failed(&self) -> usize {
        self.all.iter().filter(|v| !v.ok).count()
    }

    pub fn push(&mut self, verdict: Verdict) {
        let Verdict { name, ok, detail } = verdict;
        self.record(&name, ok, detail);
    }
}

/// Why the lab cannot run here at all (the only reason to skip it).
pub fn cannot_run() -> Option<String> {
    if std::env::consts::ARCH != "x86_64" {
        return Some(format!(
            "the lab boots x86_64 Debian kernels; this host is {}",
            std::env::consts::ARCH
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not root: building the image (mkosi, nspawn) needs root".into());
    }
    None
}

/// Checks every kernel in turn; prints the verdicts as they come and a
/// summary; true if all passed.
pub fn check_kernels(
    paths: &Paths,
    image: &Image,
    kernels: &[String],
    interrupt: &Interrupt,
) -> Result<bool> {
    let started = Instant::now();
    let mut failed = Vec::new();
    for kernel in kernels {
        match check_kernel(paths, image, kernel, interrupt) {
            Ok(verdicts) => failed.extend(
                verdicts
                    .into_iter()
                    .filter(|v| !v.ok)
                    .map(|v| format!("{kernel} {}", v.name)),
            ),
            Err(e) => {
                output::println(format!("FAIL {kernel} boot: {e:#}"));
                failed.push(format!("{kernel} boot"));
            }
        }
        interrupt.check()?;
    }
    if let Some(kernel) = kernels.last() {
        // The same image under systemd, then relive, on the newest kernel.
        let compared = super::compare::compare_inits(paths, image, kernel, interrupt);
        failed.extend(print_scenario(kernel, "side by side", compared));
        interrupt.check()?;
        // relive's package: installed, GRUB entries, removed, systemd boots.
        let package = super::package::check_package(paths, image, kernel, interrupt);
        failed.extend(print_scenario(kernel, "package", package));
        interrupt.check()?;
    }
    let secs = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        output::println(format!(
            "lab checks passed on {} in {secs:.0} s",
            kernels.join(", ")
        ));
    } else {
        output::println(format!(
            "lab checks FAILED in {secs:.0} s: {}",
            failed.join(", ")
        ));
    }
    Ok(failed.is_empty())
}

/// Boots `kernel` with relive, runs every check, powers off; prints each
/// verdict as it comes and returns them all. An error means the guest
/// could not be booted at all.
fn check_kernel(
    paths: &Paths,
    image: &Image,
    kernel: &str,
    interrupt: &Interrupt,
) -> Result<Vec<Verdict>> {
    let opts = Options {
        writable: true,
        extra_units: [ExtraUnit {
            name: FAIL_UNIT.into(),
            text: FAIL_UNIT_TEXT.into(),
            enable: true,
        }]
        .into_iter()
        .chain(super::activation::extra_units())
        .collect(),
        ..Options::new(kernel, Some(Init::Relive))
    };
    let booted = boot::start(paths, image, &opts, interrupt)?;
    let mut verdicts = Vec::new();
    let mut record = |verdict: Verdict| {
        print_verdict(kernel, &verdict);
        verdicts.push(verdict);
    };
    record(boot_verdict(&booted.guest));
    let step = output::step("checking the guest over ssh");
    let mut checked = guest_checks(paths, &booted.guest, interrupt);
    checked.push(echo_check(&booted.guest));
    step.finish(checked.iter().all(|v| v.ok));
    checked.into_iter().for_each(&mut record);

    record(poweroff_verdict(stop::poweroff(
        paths,
        booted,
        Duration::from_secs(120),
        interrupt,
    )));
    // The writable copy (~1 GB in use) is only evidence while debugging.
    if verdicts.iter().all(|v| v.ok) {
        let _ = std::fs::remove_file(paths.writable_disk());
    }
    Ok(verdicts)
}

/// Prints a scenario's verdicts (or why it could not run) and returns
/// the names of those that failed.
fn print_scenario(kernel: &str, scenario: &str, verdicts: Result<Vec<Verdict>>) -> Vec<String> {
    match verdicts {
        Ok(verdicts) => verdicts
            .into_iter()
            .inspect(|v| print_verdict(kernel, v))
            .filter(|v| !v.ok)
            .map(|v| format!("{kernel} {}", v.name))
            .collect(),
        Err(e) => {
            output::println(format!("FAIL {kernel} {scenario}: {e:#}"));
            vec![format!("{kernel} {scenario}")]
        }
    }
}

/// One verdict on its own line of stdout.
fn print_verdict(kernel: &str, v: &Verdict) {
    output::println(format!(
        "{} {kernel} {}: {}",
        if v.ok { "ok  " } else { "FAIL" },
        v.name,
        v.detail
    ));
}

/// QEMU's exit after `relivectl poweroff`, as a verdict.
pub fn poweroff_verdict(off: Result<stop::PoweredOff>) -> Verdict {
    match off {
        Ok(off) => Verdict {
            name: "relivectl poweroff".into(),
            ok: off.clean(),
            detail: format!(
                "QEMU exited in {:.1} s with {}; kernel power-down message: {}; panic: {}; e2fsck -fn: {}",
                off.secs,
                off.status,
                yes_no(off.power_down_line),
                yes_no(off.panicked),
                match off.fsck_clean {
                    Some(true) => "clean",
                    Some(false) => "NOT clean",
                    None => "not run",
                }
            ),
        },
        Err(e) => Verdict {
            name: "relivectl poweroff".into(),
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

/// The boot verdict, printed like the others.
pub fn boot_verdict(guest: &Guest) -> Verdict {
    Verdict {
        name: "boot".into(),
        ok: true,
        detail: format!(
            "{} reached `{}` and ssh answered after {:.1} s",
            guest.kernel_release,
            boot::RELIVE_READY_LINE,
            guest.ready_secs.unwrap_or_default()
        ),
    }
}

/// Checks made over ssh while the guest runs.
fn guest_checks(paths: &Paths, guest: &Guest, interrupt: &Interrupt) -> Vec<Verdict> {
    let mut c = Checks {
        paths,
        guest,
        interrupt,
        out: Vec::new(),
    };
    c.check("PID 1 is relive", "cat /proc/1/comm", &|o| {
        o.success() && o.stdout.trim() == "relive"
    });
    let release = guest.kernel_release.clone();
    c.check("uname -r", "uname -r", &|o| {
        o.success() && o.stdout.trim() == release
    });
    c.check(
        "multi-user.target active",
        "relivectl is-active multi-user.target",
        &|o| o.success() && o.stdout.trim() == "active",
    );
    let services = SERVICES.join(" ");
    c.check(
        "services active",
        &format!("relivectl is-active {services}"),
        &|o| o.success() && o.stdout.lines().all(|l| l.trim() == "active"),
    );
    /// The lab's own drop-ins (mkosi.extra) are all named so.
    const LAB_DROP_IN: &str = "relive-live-upgrade.conf";
    for (package, path, unit) in PACKAGED_UNITS {
        // md5sum -c against the package's own list proves the file is the
        // packaged one; relive's status proves it loaded that very file
        // (no copy in /etc/systemd/system shadows it, and no drop-in
        // extends it but the lab's own relive-live-upgrade.conf, from
        // mkosi.extra: redis's PrivateUsers=no).
        let script = format!(
            "set -e; cd /; grep ' {path}$' /var/lib/dpkg/info/{package}.md5sums | md5sum -c; \
             sha256sum /{path}; dpkg --verify {package} | grep systemd/system || true; \
             relivectl --json status {unit}"
        );
        c.check_with(&format!("{unit} is Debian's, unchanged"), &script, &|o| {
            let lines: Vec<&str> = o.stdout.lines().collect();
            let loaded = lines.last().and_then(|l| statuses(l).pop());
            let ok = o.success()
                && lines.first() == Some(&format!("{path}: OK").as_str())
                && lines.len() == 3
                && loaded.as_ref().is_some_and(|s| {
                    s.load_state == "loaded"
                        // /lib before /usr/lib, as Debian's systemd.
                        && s.fragment == format!("/{path}")
                        && s
                            .dropins
                            .iter()
                            .all(|d| d.ends_with(&format!("{unit}.d/{LAB_DROP_IN}")))
                });
            let detail = match loaded {
                Some(s) => format!(
                    "{}; {} from {}, drop-ins {:?}",
                    lines[..lines.len() - 1].join(" | "),
                    s.load_state,
                    s.fragment,
                    s.dropins
                ),
                None => summarize(o),
            };
            (ok, detail)
        });
    }
    c.check("relivectl list-units", "relivectl list-units", &|o| {
        o.success() && o.stdout.contains("ssh.service") && o.stdout.contains("multi-user.target")
    });
    c.check(
        "relivectl status",
        "relivectl status -n 0 ssh.service",
        &|o| o.success() && o.stdout.contains("Active: active (running)"),
    );
    c.check(
        &format!("{FAIL_UNIT} failed"),
        &format!("relivectl is-failed {FAIL_UNIT}"),
        &|o| o.success() && o.stdout.trim() == "failed",
    );
    // Every other unit of the boot is fine: Debian's server runs complete
    // (mkosi/README.md names the three units masked, and why).
    c.check_with(
        "no other failed unit",
        "relivectl --json list-units --failed",
        &|o| {
            let failed: Vec<String> = serde_json::from_str::<Vec<UnitSummary>>(o.stdout.trim())
                .map(|units| units.into_iter().map(|u| u.name).collect())
                .unwrap_or_default();
            (
                o.success() && failed == [FAIL_UNIT],
                format!("failed: {}", failed.join(", ")),
            )
        },
    );
    // The workloads' [X-LiveUpgrade] sections, as relive read them.
    c.check_with(
        "upgrade policies",
        "relivectl --json status relive-echo.service relive-counter.service",
        &|o| {
            let units = statuses(&o.stdout);
            let policy = |name: &str| {
                let s = units.iter().find(|s| s.name == name)?;
                Some((s.upgrade_mode.as_str(), s.upgrade_priority))
            };
            let preserve = UnitMode::Preserve.as_str();
            let ok = policy("relive-echo.service") == Some((preserve, 900))
                && policy("relive-counter.service") == Some((preserve, 500));
            let shown: Vec<String> = units
                .iter()
                .map(|s| {
                    format!(
                        "{} {}, priority {}",
                        s.name, s.upgrade_mode, s.upgrade_priority
                    )
                })
                .collect();
            (o.success() && ok, shown.join("; "))
        },
    );
    c.check(
        "relive-counter report",
        "echo report | nc -q1 127.0.0.1 7001",
        &|o| {
            o.success()
                && Report::parse(o.stdout.trim()).is_some_and(|r| r.matches() && r.counter > 0)
        },
    );
    super::server::server_checks(&mut c);
    super::activation::activation_checks(&mut c);
    super::apt_service::apt_checks(&mut c);
    super::kernel_hook::kernel_hook_checks(&mut c);
    super::ansible::ansible_checks(&mut c, paths);
    // LimitNOFILE= above PID 1's own hard limit (the kernel gives init
    // 1024:4096) is set in the service alone: PID 1 keeps its limits.
    c.check_with(
        "LimitNOFILE= leaves PID 1's own limits",
        "set -e; u=/etc/systemd/system/relive-lab-nofile.service; \
         limits() { awk '/^Max open files/ {print $4 \":\" $5}' /proc/$1/limits; }; \
         before=$(limits 1); \
         printf '[Service]\\nExecStart=/bin/sleep 600\\nLimitNOFILE=16:8192\\n' > $u; \
         relivectl daemon-reload; relivectl start relive-lab-nofile.service; \
         pid=$(head -1 /sys/fs/cgroup/system.slice/relive-lab-nofile.service/cgroup.procs); \
         echo \"$before $(limits 1) $(limits $pid)\"; \
         relivectl stop relive-lab-nofile.service; rm $u; relivectl daemon-reload",
        &|o| {
            let words: Vec<&str> = o.stdout.split_whitespace().collect();
            let ok = o.success()
                && matches!(words.as_slice(), [before, after, service]
                    if before == after && *service == "16:8192");
            (
                ok,
                format!("PID 1 before, after, the service: {}", o.stdout.trim()),
            )
        },
    );
    c.out
}

/// The checks run so far, each a command in the guest and its judge.
pub struct Checks<'a> {
    paths: &'a Paths,
    pub guest: &'a Guest,
    interrupt: &'a Interrupt,
    pub out: Vec<Verdict>,
}

impl Checks<'_> {
    /// A judge says whether the output passes; the verdict shows it.
    pub fn check(&mut self, name: &str, script: &str, judge: &dyn Fn(&ssh::Output) -> bool) {
        self.check_with(name, script, &|o| (judge(o), summarize(o)));
    }

    /// A judge says whether the output passes, and what to show of it.
    pub fn check_with(
        &mut self,
        name: &str,
        script: &str,
        judge: &dyn Fn(&ssh::Output) -> (bool, String),
    ) {
        // After Ctrl-C, skip the rest: the poweroff step reports it.
        if self.interrupt.check().is_err() {
            return;
        }
        let (ok, detail) = match ssh::run(self.paths, self.guest.ssh_port, script) {
            Ok(output) => judge(&output),
            Err(e) => (false, format!("{e:#}")),
        };
        self.out.push(Verdict {
            name: name.into(),
            ok,
            detail,
        });
    }
}

/// Through QEMU's port forward, as a host-side client of a live upgrade
/// would: send a line, read the same line back.
fn echo_check(guest: &Guest) -> Verdict {
    let line = format!("relive-lab echo check {}\n", std::process::id());
    let result = (|| -> std::io::Result<String> {
        let stream = TcpStream::connect(("127.0.0.1", guest.echo_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        (&stream).write_all(line.as_bytes())?;
        let mut back = String::new();
        BufReader::new(&stream).read_line(&mut back)?;
        Ok(back)
    })();
    match result {
        Ok(back) => Verdict {
            name: "relive-echo from the host".into(),
            ok: back == line,
            detail: format!("sent {:?}, got {back:?}", line.trim_end()),
        },
        Err(e) => Verdict {
            name: "relive-echo from the host".into(),
            ok: false,
            detail: format!("127.0.0.1:{}: {e}", guest.echo_port),
        },
    }
}

/// `relivectl --json status`'s units (none if it printed something else).
fn statuses(json: &str) -> Vec<UnitStatus> {
    serde_json::from_str(json.trim()).unwrap_or_default()
}

/// A command's output on one line, for the verdict.
fn summarize(output: &ssh::Output) -> String {
    let text = if output.stdout.trim().is_empty() {
        output.stderr.trim()
    } else {
        output.stdout.trim()
    };
    let mut lines: Vec<&str> = text.lines().map(str::trim).collect();
    if lines.len() > 4 {
        let more = lines.len() - 4;
        lines.truncate(4);
        return format!("{} … (+{more} lines)", lines.join(" | "));
    }
    match output.code {
        Some(0) => lines.join(" | "),
        code => format!("exit {code:?}: {}", lines.join(" | ")),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
