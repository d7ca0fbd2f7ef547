//! `relive-lab upgrade-check --from A --to B`: a live upgrade under load,
//! first made to fail (an injected dump failure: everything must be undone
//! on the old kernel), then for real. One process owns QEMU throughout; the
//! guest runs on a writable disk copy, so the poweroff at the end is also
//! checked with `e2fsck -fn` after two kernels have used the file system.
//!
//! Watched across both attempts: relive-counter (same PID, counting on,
//! buffer checksum intact), redis keys (persistence off: memory only), a
//! host-side echo client on one TCP connection (every line back, in order),
//! an interactive ssh session, and every preserved unit's PIDs. Each
//! upgrade also checks (i) a preservation group: a download through nginx
//! from relive-slowfile over a unix socket, in flight across the kexec
//! ([`groups`]), and (j) one clock for every service ([`clock`]). The
//! two-phase direction boots the new kernel with relive's minimal initrd
//! and checks (q) that its /init mounted the root; the other boots the
//! distribution's.
//!
//! This file runs the scenario: the abort, the upgrade and the report's
//! checks. [`watch`] holds what is watched and checks it after each
//! attempt, [`stores`] the store decisions and the disk fallback,
//! [`phase_check`] what each direction asks of the two-phase snapshot.

mod bus;
mod clock;
mod greet;
mod groups;
mod pg;
mod phase_check;
mod sandbox;
mod stores;
mod supervisor;
mod watch;

use super::feed;
use crate::output;
use crate::scenarios::check::{self, Verdict, Verdicts};
use crate::scenarios::download;
use crate::scenarios::echo_client::EchoClient;
use crate::scenarios::pids::Pids;
use crate::scenarios::upgrade;
use crate::vm::boot::{self, Booted, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::newer_criu;
use crate::vm::paths::Paths;
use crate::vm::shell::Shell;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{Context, Result};
use phase_check::Variant;
use relive_api::report::Outcome;
use relive_api::warm::Warm;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use watch::{counter_line, Watch};

const REDIS_KEYS: &str = "relive:a 1 relive:b two relive:c 3";
const REDIS_VALUES: &str = "1\ntwo\n3";
const FAULT_FILE: &str = "/run/relive/fault-inject";

/// Every direction in `pairs` (from, to), one guest each, each then on
/// through the series of `then` on the same guest; prints the verdicts
/// as they come and a summary per direction; true if all passed. With
/// `criu_debs` (forky's CRIU, [`newer_criu`]) each guest gets that CRIU
/// installed before anything else.
pub fn check_directions(
    paths: &Paths,
    image: &Image,
    pairs: &[(String, String)],
    then: &[String],
    criu_debs: Option<&[PathBuf]>,
    interrupt: &Interrupt,
) -> Result<bool> {
    let mut passed = true;
    for (from, to) in pairs {
        let started = Instant::now();
        let label = std::iter::once(from)
            .chain(std::iter::once(to))
            .chain(then)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" -> ");
        match upgrade_check(paths, image, from, to, then, criu_debs, interrupt) {
            Ok(verdicts) => passed &= summarize(&label, &verdicts, started.elapsed().as_secs_f64()),
            Err(e) => {
                output::println(format!("FAIL {label} boot: {e:#}"));
                passed = false;
            }
        }
        interrupt.check()?;
    }
    Ok(passed)
}

fn upgrade_check(
    paths: &Paths,
    image: &Image,
    from: &str,
    to: &str,
    then: &[String],
    criu_debs: Option<&[PathBuf]>,
    interrupt: &Interrupt,
) -> Result<Vec<Verdict>> {
    let (from_release, to_release) = (
        image.kernel(from)?.release.clone(),
        image.kernel(to)?.release.clone(),
    );
    let opts = Options {
        writable: true,
        ..Options::new(from, Some(Init::Relive))
    };
    let mut booted = boot::start(paths, image, &opts, interrupt)?;
    let mut verdicts = Verdicts {
        label: format!("{from}->{to}"),
        all: Vec::new(),
    };
    verdicts.push(check::boot_verdict(&booted.guest));
    if let Some(debs) = criu_debs {
        let installed = newer_criu::install(paths, booted.guest.ssh_port, debs);
        verdicts.record(
            &format!("CRIU from {} installed", newer_criu::SUITE),
            installed.is_ok(),
            match &installed {
                Ok(version) => version.clone(),
                Err(e) => format!("{e:#}"),
            },
        );
    }
    let newest = image
        .kernels
        .iter()
        .map(|k| k.release.as_str())
        .max_by(|a, b| crate::vm::apt::version_cmp(a, b));
    let run = Run {
        paths,
        from_release: &from_release,
        to_release: &to_release,
        variant: Variant::for_direction(from, to),
        postgresql: image.distro.postgresql_unit(),
        newest: newest == Some(to_release.as_str()),
        interrupt,
    };
    // Each further hop: (from series, to series), releases looked up.
    let mut hops = Vec::new();
    let mut previous = to.to_owned();
    for next in then {
        hops.push((
            previous.clone(),
            next.clone(),
            image.kernel(&previous)?.release.clone(),
            image.kernel(next)?.release.clone(),
        ));
        previous = next.clone();
    }
    // A step that cannot go on (ssh gone, guest dead) ends the scenario;
    // the poweroff below still runs and says how the guest ended.
    if let Err(e) = run.scenario(&mut booted, &mut verdicts, &hops, newest) {
        verdicts.record("scenario", false, format!("stopped: {e:#}"));
    }
    verdicts.push(check::poweroff_verdict(stop::poweroff(
        paths,
        booted,
        Duration::from_secs(120),
        interrupt,
    )));
    if verdicts.all.iter().all(|v| v.ok) {
        let _ = std::fs::remove_file(paths.writable_disk());
    }
    Ok(verdicts.all)
}

struct Run<'a> {
    paths: &'a Paths,
    from_release: &'a str,
    to_release: &'a str,
    variant: Variant,
    /// The release's PostgreSQL cluster unit (postgresql@15-main.service
    /// on bookworm).
    postgresql: &'static str,
    /// `to_release` is the newest installed kernel (what --latest picks).
    newest: bool,
    interrupt: &'a Interrupt,
}

/// A further hop of a chain: (from series, to series, from release, to
/// release).
type Hop = (String, String, String, String);

impl Run<'_> {
    fn sh(&self, booted: &Booted, script: &str) -> Result<ssh::Output> {
        self.interrupt.check()?;
        ssh::run(self.paths, booted.guest.ssh_port, script)
    }

    fn scenario(
        &self,
        booted: &mut Booted,
        v: &mut Verdicts,
        hops: &[Hop],
        newest: Option<&str>,
    ) -> Result<()> {
        let port = booted.guest.ssh_port;
        // Memory-only redis: keys that survive prove the process did.
        let out = self.sh(
            booted,
            &format!(
                "redis-cli config set save '' >/dev/null && redis-cli config set appendonly no >/dev/null \
                 && redis-cli mset {REDIS_KEYS}"
            ),
        )?;
        v.record(
            "redis keys set (no persistence)",
            out.stdout.trim() == "OK",
            out.stdout.trim(),
        );
        let marked = self.sh(booted, sandbox::MARK)?;
        v.record(
            "marker in the services' private /tmp",
            marked.stdout.trim() == "marked",
            format!("{} {}", marked.stdout.trim(), marked.stderr.trim()),
        );
        let counter0 = upgrade::counter(self.paths, port)?;
        v.record(
            "counter before",
            counter0.matches(),
            counter_line(&counter0),
        );
        let step = output::step("opening an echo connection and an ssh session");
        let echo = EchoClient::start(booted.guest.echo_port)?;
        let mut shell = Shell::open(self.paths, port)?;
        step.done();
        let release = shell.ask(watch::SESSION_PROBE, Duration::from_secs(30))?;
        v.record(
            "interactive ssh session open, in its session scope",
            watch::in_session_on(&release, self.from_release),
            format!("uname -r, scope, its state: {release}"),
        );
        let pids = Pids::read(self.paths, port)?;
        v.record(
            "preserved units' PIDs",
            pids.units.len() == upgrade::PRESERVED.len(),
            pids.summary(),
        );
        // (p) Two units tied by a FIFO, set up before the abort so that
        // its undo carries them too.
        let feed = feed::parse(&self.sh(booted, &feed::setup_script())?.stdout);
        let (fed, detail) = feed::setup_verdict(feed);
        v.record(
            "(p) relive-feedreader reads relive-feedwriter's FIFO",
            fed,
            detail,
        );
        let mut watch = Watch {
            echo,
            shell,
            pids,
            feed,
        };

        self.store_decisions(booted, v)?;
        self.abort(booted, v, &mut watch, &counter0)?;
        self.upgrade(booted, v, &mut watch)?;
        if self.variant == Variant::SinglePhaseMemory {
            self.fallback(booted, v, &mut watch)?;
        }
        // A chain: on, on the same guest, with the same watchers.
        for (from, to, from_release, to_release) in hops {
            let hop = Run {
                from_release,
                to_release,
                variant: Variant::for_direction(from, to),
                newest: newest == Some(to_release.as_str()),
                ..*self
            };
            output::println(format!("then {from_release} -> {to_release}"));
            hop.upgrade(booted, v, &mut watch)?;
        }

        // (b) over the whole run: one connection, every line back in order.
        let Watch { echo, shell, .. } = watch;
        let stats = echo.finish();
        v.record(
            "(b) echo client, both attempts",
            stats.error.is_none() && stats.echoed == stats.sent && stats.sent > 0,
            stats.summary(),
        );
        shell.close();
        Ok(())
    }

    /// (g) An injected dump failure of a unit frozen after others: relive
    /// must restore the dumped ones from their images on the old kernel.
    fn abort(
        &self,
        booted: &mut Booted,
        v: &mut Verdicts,
        watch: &mut Watch,
        counter0: &relive_workloads::Report,
    ) -> Result<()> {
        let port = booted.guest.ssh_port;
        self.interrupt.check()?;
        let (_, plan) = upgrade::dry_run(self.paths, port, self.to_release, "")?;
        let order: Vec<&str> = plan.preserved.iter().map(|u| u.name.as_str()).collect();
        // Not the first one frozen (then nothing would be undone), not ssh
        // (our own sessions).
        let victim = order
            .iter()
            .skip(1)
            .find(|u| **u != "ssh.service")
            .context("the plan has fewer than two preserved units")?
            .to_string();
        v.record(
            "fault target",
            true,
            format!("freeze order {}; dump-fail {victim}", order.join(", ")),
        );
        self.sh(booted, &format!("echo 'dump-fail {victim}' > {FAULT_FILE}"))?;
        let step = output::step(format!(
            "live upgrade with an injected dump failure in {victim}"
        ));
        let mark = upgrade::serial_mark(booted);
        upgrade::start_detached(self.paths, port, self.to_release)?;
        step.detail("waiting for relive to undo it");
        let waited = upgrade::wait_serial(
            booted,
            mark,
            &[upgrade::ABORTED_LINE, upgrade::UNDONE_LINE],
            &[upgrade::COMPLETE_LINE],
            self.interrupt,
        )?;
        let log = std::fs::read(&booted.guest.serial_log).unwrap_or_default();
        let log = String::from_utf8_lossy(&log[mark.min(log.len())..]).into_owned();
        let aborted = log
            .lines()
            .find(|l| l.contains(upgrade::ABORTED_LINE))
            .unwrap_or_default()
            .trim()
            .to_owned();
        v.record(
            "abort: relive undid the upgrade",
            aborted.contains(&victim),
            format!("after {:.1} s: {aborted}", waited.as_secs_f64()),
        );
        self.sh(booted, &format!("rm -f {FAULT_FILE}"))?;
        step.detail("waiting for ssh");
        upgrade::wait_ssh(self.paths, port, self.interrupt)?;
        step.done_with("undone");

        let out = self.sh(
            booted,
            "uname -r; cat /sys/kernel/kexec_loaded; \
             test -e /var/lib/relive/upgrade -o -e /run/relive/handover/upgrade && echo store-left || echo store-gone; \
             grep -q ' /run/relive/handover ' /proc/mounts && echo memory-store-mounted || echo memory-store-unmounted",
        )?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        v.record(
            "abort: old kernel, kexec unloaded, store wiped",
            lines
                == [
                    self.from_release,
                    "0",
                    "store-gone",
                    "memory-store-unmounted",
                ],
            out.stdout.trim().replace('\n', " | "),
        );
        self.common_checks(booted, v, watch, counter0, "abort")?;
        Ok(())
    }

    /// The real upgrade, then (a)–(h).
    /// (l) After the upgrade: the socket unit active with the service;
    /// the service stopped, a connection starts it again through the
    /// socket PID 1 took back from the restored process.
    fn greet_after(&self, booted: &Booted, v: &mut Verdicts) -> Result<()> {
        let out = self.sh(booted, greet::STOP_SCRIPT)?;
        let stopped = greet::stop_verdict(&out.stdout);
        let again = greet::greet(booted.guest.greet_port, Duration::from_secs(60));
        let active = self.sh(booted, "relivectl is-active relive-greet.service")?;
        v.record(
            "(l) socket unit active; the service stopped, a connection starts it again",
            stopped && again.as_ref().is_ok_and(|g| g.n == 1) && active.stdout.trim() == "active",
            format!(
                "{} | again: {again:?} | then {}",
                out.stdout.trim().replace('\n', " "),
                active.stdout.trim()
            ),
        );
        Ok(())
    }

    fn upgrade(&self, booted: &mut Booted, v: &mut Verdicts, watch: &mut Watch) -> Result<()> {
        let port = booted.guest.ssh_port;
        let counter1 = upgrade::counter(self.paths, port)?;
        let workloads = phase_check::parse_workloads(
            &self.sh(booted, &phase_check::workload_script())?.stdout,
        )?;
        match self.variant {
            Variant::TwoPhaseMemory => {
                let out = self.sh(booted, "relivectl --json live-upgrade --prepare")?;
                let warm = serde_json::from_str::<Warm>(out.stdout.trim());
                v.record(
                    "warm snapshot (--prepare)",
                    out.success()
                        && warm.as_ref().is_ok_and(|w| {
                            w.units
                                .get(phase_check::IDLE)
                                .is_some_and(|u| !u.chain.rounds.is_empty())
                        }),
                    match &warm {
                        Ok(warm) => warm
                            .units
                            .iter()
                            .map(|(name, u)| format!("{name} {} rounds", u.chain.rounds.len()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        Err(e) => format!("{e}: {}{}", out.stdout.trim(), out.stderr.trim()),
                    },
                );
            }
            Variant::SinglePhaseMemory => {
                self.sh(
                    booted,
                    &format!("echo 'corrupt-image {}' > {FAULT_FILE}", phase_check::IDLE),
                )?;
            }
        }
        // One direction is asked for by relivectl from the ssh session and
        // followed to its end there, the other through D-Bus (busctl on the
        // system bus), as any client may. When the plan restarts
        // ssh.service (and with it every session), nothing could follow
        // from a session: the upgrade is then asked for detached, and the
        // session's checks say what was lost.
        // The download first: nginx and relive-slowfile are tied only
        // while a request is under way.
        let fetch = self.sh(booted, download::START)?;
        v.record(
            "(i) download through nginx started",
            fetch.success(),
            fetch.stderr.trim(),
        );
        // (l) The socket-activated service runs (its first connection
        // starts it) when the plan is made.
        let greet_port = booted.guest.greet_port;
        let greet_before = greet::greet(greet_port, Duration::from_secs(60));
        v.record(
            "(l) relive-greet started by its socket's first connection",
            greet_before.is_ok(),
            format!("{greet_before:?}"),
        );
        // (m) The bus client owns its name and hears a Ping.
        let bus_before = self.sh(booted, &bus::script(&format!("before-{}", self.to_release)))?;
        let (heard, detail) =
            bus::before_verdict(&bus_before.stdout, &format!("before-{}", self.to_release));
        v.record(
            "(m) D-Bus client owns its name, hears a Ping",
            heard,
            detail,
        );
        // (n) A transaction left open on postgres.
        let opened = self.sh(booted, &pg::open_script())?;
        let (rows_before, detail) = pg::open_verdict(&opened.stdout);
        v.record(
            "(n) relive-pgapp holds a transaction open on postgres",
            rows_before.is_some(),
            detail,
        );
        // (o) A supervisor whose PID file names its child.
        let supervised = self.sh(booted, &supervisor::setup_script())?;
        let supervised = supervisor::parse(&supervised.stdout);
        std::thread::sleep(Duration::from_secs(3));
        let (_, plan) = upgrade::dry_run(self.paths, port, self.to_release, "")?;
        let (planned, detail) = supervisor::plan_verdict(&plan, supervised);
        v.record(
            "(o) plan: a unit rooted above its main process is preserved",
            planned,
            detail,
        );
        let (carried, detail) = greet::plan_verdict(&plan);
        v.record(
            "(l) plan: relive-greet's socket crosses with it",
            carried,
            detail,
        );
        let (tied, detail) = feed::plan_verdict(&plan);
        v.record("(p) plan: the FIFO's two units are a group", tied, detail);
        let (grouped, detail) = groups::plan_verdict(&plan);
        v.record(
            "(i) plan: nginx and relive-slowfile are a group",
            grouped,
            detail,
        );
        let ssh_restarted = plan.restarted.iter().any(|u| u == "ssh.service");
        if ssh_restarted {
            let why = plan.why_of("ssh.service").unwrap_or_default();
            v.record("upgrade: ssh.service is preserved", false, why);
        }
        let serial_before = upgrade::serial_mark(booted);
        let greeter = greet::GreetClient::start(greet_port);
        let (said, took) = match self.variant.bus_options() {
            None if ssh_restarted => upgrade::run_detached_with(
                booted,
                self.paths,
                self.to_release,
                self.variant.flags(),
                self.interrupt,
            )?,
            None => upgrade::run_followed(
                booted,
                self.paths,
                self.to_release,
                self.newest,
                self.variant.flags(),
                self.interrupt,
            )?,
            Some(options) => upgrade::run_detached_busctl(
                booted,
                self.paths,
                self.to_release,
                options,
                self.interrupt,
            )?,
        };
        output::log(&format!("upgrade {:?}: {said}", self.variant));
        v.record(
            "upgrade: complete, ssh answers",
            true,
            format!("{:.1} s after the request", took.as_secs_f64()),
        );
        let attempts = greeter.finish();
        if let Ok(before) = greet_before {
            let (answered, detail) = greet::client_verdict(before, &attempts);
            v.record(
                "(l) connections to relive-greet during the upgrade: all answered by the restored process",
                answered,
                detail,
            );
        }
        let out = self.sh(booted, "uname -r")?;
        v.record(
            "upgrade: uname -r",
            out.stdout.trim() == self.to_release,
            out.stdout.trim(),
        );
        if self.variant.flags().contains("--minimal-initrd") {
            // Its /init says so on the console (the kernel's ring buffer
            // has long overwritten it by now).
            let log = std::fs::read(&booted.guest.serial_log).unwrap_or_default();
            let since = String::from_utf8_lossy(log.get(serial_before..).unwrap_or_default());
            let said = since
                .lines()
                .find(|l| l.starts_with("relive-initrd: "))
                .unwrap_or_default();
            v.record(
                "(q) relive's minimal initrd mounted the root",
                said.ends_with(" mounted"),
                said,
            );
        }
        self.common_checks(booted, v, watch, &counter1, "upgrade")?;
        if self.variant.bus_options().is_none() && self.newest {
            // Asked again, --latest finds nothing to do: a rollout run a
            // second time changes nothing.
            let again = self.sh(booted, "relivectl live-upgrade --latest --reuse-cmdline")?;
            v.record(
                "upgrade: --latest again: nothing to do",
                again.success()
                    && again.stdout.trim()
                        == format!(
                            "Already running the newest installed kernel, {}: nothing to do.",
                            self.to_release
                        ),
                again.stdout.trim(),
            );
        }

        // (f) the report.
        let report = upgrade::report(self.paths, port)?;
        v.record(
            "report: kernels",
            report.kernel_from == self.from_release && report.kernel_to == self.to_release,
            format!("{} -> {}", report.kernel_from, report.kernel_to),
        );
        if self.variant.flags().contains("--lazy-restore") {
            let (lazily, detail) = lazy_verdict(&report);
            v.record(
                "(r) lazy restores: every unit restored lazily, every page served",
                lazily,
                detail,
            );
        }
        // relive remounted them read-only before the kexec: their
        // journals are clean.
        let recovered = self.sh(
            booted,
            "dmesg | grep -E 'EXT4-fs \\((vda|vdb)\\): recovery complete' || true",
        )?;
        v.record(
            "the new kernel mounted / and /srv/data without recovering a journal",
            recovered.stdout.trim().is_empty(),
            match recovered.stdout.trim() {
                "" => "no journal recovery in dmesg".to_string(),
                lines => lines.replace('\n', " | "),
            },
        );
        let outcome = |name: &str| {
            report
                .units
                .iter()
                .find(|u| u.name == name)?
                .outcome
                .clone()
        };
        let text = |outcome: Option<Outcome>| outcome.map_or("absent".into(), |o| o.to_string());
        let preserved: Vec<String> = upgrade::PRESERVED
            .iter()
            .map(|u| format!("{u} {}", text(outcome(u))))
            .collect();
        v.record(
            "report: preserved units restored",
            upgrade::PRESERVED
                .iter()
                .all(|u| outcome(u) == Some(Outcome::Restored)),
            preserved.join(", "),
        );
        // The system's plumbing and servers with Mode=restart or rerun
        // (mkosi/README.md): in the report as such, active, answering.
        let expected = [
            ("systemd-udevd.service", Outcome::Restarted),
            ("networking.service", Outcome::Rerun),
            ("systemd-journald.service", Outcome::Restarted),
        ];
        let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
        let active = self.sh(
            booted,
            &format!(
                "relivectl is-active {}; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -q1 127.0.0.1 80 | head -1; \
                 cd / && runuser -u postgres -- psql -tAc 'select 6 * 7'",
                names.join(" ")
            ),
        )?;
        let lines: Vec<&str> = active.stdout.lines().map(str::trim).collect();
        let answered = lines.len() == names.len() + 2
            && lines[..names.len()].iter().all(|l| *l == "active")
            && lines[names.len()].contains("200 OK")
            && lines[names.len() + 1] == "42";
        v.record(
            "report: plumbing restarted or rerun, active; nginx and postgres answer",
            answered
                && expected
                    .iter()
                    .all(|(name, want)| outcome(name).as_ref() == Some(want)),
            format!(
                "{}; {}",
                expected
                    .iter()
                    .map(|(name, _)| format!("{name} {}", text(outcome(name))))
                    .collect::<Vec<_>>()
                    .join(", "),
                lines.join(" | ")
            ),
        );
        for (name, ok, detail) in phase_check::report_findings(self.variant, &report) {
            v.record(&name, ok, detail);
        }
        let after = phase_check::parse_workloads(
            &self.sh(booted, &phase_check::workload_script())?.stdout,
        )?;
        for (name, ok, detail) in phase_check::workload_findings(self.variant, &workloads, &after) {
            v.record(&name, ok, detail);
        }
        let lost: Vec<String> = report
            .lost()
            .filter(|(name, _)| self.variant.sacrificed() != Some(*name))
            .map(|(name, reason)| format!("{name}: {reason}"))
            .collect();
        v.record("report: no state lost", lost.is_empty(), lost.join("; "));
        let nginx_pid = watch
            .pids
            .units
            .get("nginx.service")
            .map_or(0, |(main, _)| *main);
        let after = self.sh(booted, groups::AFTER_SCRIPT)?;
        let (ok, detail) = groups::after_verdict(&after.stdout, nginx_pid);
        v.record(
            "(k) reload nginx (PID file carried), backend's /dev/shm file kept",
            ok,
            detail,
        );
        let clocks = self.sh(booted, clock::SCRIPT)?;
        let (one, detail) = clock::verdict(&clocks.stdout, &report);
        v.record(
            "(j) one clock: restored, restarted, new session",
            one,
            detail,
        );
        let (tied, detail) = groups::report_verdict(&report);
        v.record(
            "(i) report: nginx and relive-slowfile restored tied",
            tied,
            detail,
        );
        let result = download::wait(self.paths, port, self.interrupt)?;
        let (intact, detail) = groups::fetch_verdict(&result, &report);
        v.record(
            "(i) download in flight across the kexec: complete, intact",
            intact,
            detail,
        );
        let (restored, detail) = greet::report_verdict(&report);
        v.record(
            "(l) report: relive-greet restored with its socket unit's socket",
            restored,
            detail,
        );
        self.greet_after(booted, v)?;
        if let Some(before) = rows_before {
            let committed = self.sh(booted, &pg::commit_script())?;
            let (ok, detail) = pg::commit_verdict(&committed.stdout, before);
            let restored = [self.postgresql, "relive-pgapp.service"]
                .map(|u| format!("{u} {}", text(outcome(u))));
            v.record(
                "(n) the transaction opened before the upgrade commits after it",
                ok && [self.postgresql, "relive-pgapp.service"]
                    .iter()
                    .all(|u| outcome(u) == Some(Outcome::Restored)),
                format!("{}; {detail}", restored.join(", ")),
            );
        }
        let (carried, detail) = feed::report_verdict(&report);
        v.record(
            "(p) report: the FIFO's units restored, its waiting lines carried",
            carried,
            detail,
        );
        let state = self.sh(booted, supervisor::STATE)?;
        let (kept, detail) = supervisor::after_verdict(supervised, &state.stdout);
        v.record(
            "(o) the supervisor and its child keep their PIDs, the count goes on",
            kept && outcome(supervisor::UNIT) == Some(Outcome::Restored),
            format!(
                "{} {}; {detail}",
                supervisor::UNIT,
                text(outcome(supervisor::UNIT))
            ),
        );
        let word = format!("after-{}", self.to_release);
        let bus_after = self.sh(booted, &bus::script(&word))?;
        let (kept, detail) = bus::after_verdict(
            &bus_before.stdout,
            &bus_after.stdout,
            &word,
            upgrade::PRESERVED,
        );
        v.record(
            "(m) D-Bus: same unique names and owner, a Ping sent after the upgrade heard",
            kept,
            detail,
        );
        // The reload (k) gave nginx new workers; the old one served the
        // download to its end and then leaves. The next upgrade on this
        // guest compares with what runs once it has.
        self.sh(booted, groups::OLD_WORKERS_GONE)?;
        watch.pids = Pids::read(self.paths, port)?;

        // (h) the control socket is root's only.
        let out = self.sh(
            booted,
            &format!(
                "setpriv --reuid=65534 --regid=65534 --clear-groups relivectl live-upgrade --dry-run {} 2>&1",
                upgrade::kernel_args(self.to_release)
            ),
        )?;
        v.record(
            "non-root caller refused",
            out.code.is_some_and(|code| code != 0),
            format!(
                "exit {:?}: {}",
                out.code,
                out.stdout.trim().replace('\n', " | ")
            ),
        );

        upgrade::print_report(&report);
        Ok(())
    }
}

/// `check`-style summary line for the verb; true when all passed.
fn summarize(label: &str, verdicts: &[Verdict], secs: f64) -> bool {
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.ok)
        .map(|v| v.name.as_str())
        .collect();
    if failed.is_empty() {
        output::println(format!("upgrade check {label} passed in {secs:.0} s"));
        true
    } else {
        output::println(format!(
            "upgrade check {label} FAILED in {secs:.0} s: {}",
            failed.join(", ")
        ));
        false
    }
}

/// (r): every unit the report has restored and the upgrade asked to
/// restore lazily (all but rollback units) was, its page server done
/// without a failure, and pages were served.
fn lazy_verdict(report: &relive_api::report::UpgradeReport) -> (bool, String) {
    use relive_api::report::Outcome;
    let restored: Vec<_> = report
        .units
        .iter()
        .filter(|u| u.outcome == Some(Outcome::Restored) && u.lazy_restore)
        .collect();
    let whole: Vec<&str> = restored
        .iter()
        .filter(|u| u.lazy.as_ref().is_none_or(|l| l.failure.is_some()))
        .map(|u| u.name.as_str())
        .collect();
    let served: u64 = restored
        .iter()
        .filter_map(|u| u.lazy.as_ref())
        .map(|l| l.served_bytes)
        .sum();
    let longest_tail = restored
        .iter()
        .filter_map(|u| u.lazy.as_ref()?.tail_ms)
        .fold(0.0, f64::max);
    let ok = whole.is_empty() && !restored.is_empty() && served > 0;
    let detail = format!(
        "{} units restored, {} MiB served lazily, the longest tail {:.1} s{}",
        restored.len(),
        served >> 20,
        longest_tail / 1000.0,
        if whole.is_empty() {
            String::new()
        } else {
            format!("; not lazily: {}", whole.join(", "))
        }
    );
    (ok, detail)
}
