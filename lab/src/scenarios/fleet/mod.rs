//! `relive-lab fleet --hosts N`: N guests on 6.1, each with its services
//! and a host-side echo connection, the rollout first run in check mode
//! (nothing changes), then rolled to 6.12 by the repository's
//! Ansible collection (`ansible/`, the relive.fleet.rolling_upgrade
//! playbook, one host at a time, health gates after each); run again, it
//! changes nothing; each host's metrics pass promtool. Then a rollout back
//! to 6.1 with a fault on the second host (a unit with
//! OnRestoreFailure=rollback that cannot be restored): the rollout stops
//! there, the hosts after it are untouched and the summary says so.
//! Last, two hosts asked to upgrade at once with `relivectl live-upgrade
//! --fleet-lock` against a FleetLock server on the host: one at a time.

mod lock_server;
mod playbook;

use crate::output;
use crate::scenarios::check::{self, Verdicts};
use crate::scenarios::echo_client::EchoClient;
use crate::scenarios::pids::Pids;
use crate::vm::boot::{self, Booted, Options};
use crate::vm::guest::Init;
use crate::vm::image::Image;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::{ssh, stop};
use anyhow::{Context, Result};
use lock_server::LockServer;
use playbook::{Played, Rollout, Target};
use relive_api::report::UpgradeReport;
use serde_json::json;
use std::time::{Duration, Instant};

const FROM: &str = "6.1";
const TO: &str = "6.12";
/// Guest RAM: three guests and the memory store (memmap=512M!1G) fit
/// with room to spare on a 24 GiB host.
const MEMORY: &str = "2G";
const FAULT_FILE: &str = "/run/relive/fault-inject";
/// The unit the faulty host cannot restore, and its rollback drop-in.
const ROLLBACK_UNIT: &str = "relive-counter.service";
const HEALTH_COMMAND: &str = "relivectl is-active relive-echo.service redis-server.service";
/// Where the role has each host write its metrics after its upgrade.
const METRICS_FILE: &str = "/run/relive-metrics.prom";

struct Host {
    name: String,
    paths: Paths,
    booted: Booted,
    echo: EchoClient,
    pids: Pids,
}

impl Host {
    fn sh(&self, script: &str) -> Result<ssh::Output> {
        ssh::run(&self.paths, self.booted.guest.ssh_port, script)
    }

    fn uname(&self) -> String {
        self.sh("uname -r")
            .map(|o| o.stdout.trim().to_owned())
            .unwrap_or_else(|e| format!("(ssh failed: {e:#})"))
    }

    fn report(&self) -> Result<UpgradeReport> {
        let out = self.sh("relivectl --json upgrade-report")?;
        serde_json::from_str(&out.stdout).context("parsing relivectl --json upgrade-report")
    }
}

pub fn fleet(paths: &Paths, image: &Image, hosts: usize, interrupt: &Interrupt) -> Result<bool> {
    let started = Instant::now();
    let releases = (
        image.kernel(FROM)?.release.clone(),
        image.kernel(TO)?.release.clone(),
    );
    let mut v = Verdicts {
        label: "fleet".into(),
        all: Vec::new(),
    };
    let mut fleet: Vec<Host> = Vec::new();
    for i in 1..=hosts {
        match boot_host(paths, image, &format!("host{i}"), interrupt) {
            Ok(host) => {
                v.record(
                    &format!("{} boots {FROM} under relive", host.name),
                    true,
                    host.pids.summary(),
                );
                fleet.push(host);
            }
            Err(e) => {
                v.record(&format!("host{i} boots"), false, format!("{e:#}"));
                break;
            }
        }
    }
    if fleet.len() == hosts {
        if let Err(e) = run(paths, &fleet, &releases, &mut v, interrupt) {
            v.record("scenario", false, format!("stopped: {e:#}"));
        }
    }
    for host in fleet {
        let stats = host.echo.finish();
        v.record(
            &format!("{}: echo connection over the whole run", host.name),
            stats.error.is_none() && stats.echoed == stats.sent && stats.sent > 0,
            stats.summary(),
        );
        let off = stop::poweroff(
            &host.paths,
            host.booted,
            Duration::from_secs(120),
            interrupt,
        );
        let verdict = check::poweroff_verdict(off);
        v.record(
            &format!("{}: {}", host.name, verdict.name),
            verdict.ok,
            verdict.detail,
        );
    }
    let failed: Vec<&str> = v
        .all
        .iter()
        .filter(|x| !x.ok)
        .map(|x| x.name.as_str())
        .collect();
    let secs = started.elapsed().as_secs_f64();
    if failed.is_empty() {
        output::println(format!("fleet of {hosts} passed in {secs:.0} s"));
    } else {
        output::println(format!(
            "fleet of {hosts} FAILED in {secs:.0} s: {}",
            failed.join(", ")
        ));
    }
    Ok(failed.is_empty())
}

fn boot_host(paths: &Paths, image: &Image, name: &str, interrupt: &Interrupt) -> Result<Host> {
    let paths = paths.for_guest(name);
    let opts = Options {
        memory: MEMORY.into(),
        ..Options::new(FROM, Some(Init::Relive))
    };
    let step = output::step(format!("{name}: booting {FROM}"));
    let booted = boot::start(&paths, image, &opts, interrupt)?;
    let echo = EchoClient::start(booted.guest.echo_port)?;
    let pids = Pids::read(&paths, booted.guest.ssh_port)?;
    step.done();
    Ok(Host {
        name: name.to_owned(),
        paths,
        booted,
        echo,
        pids,
    })
}

fn targets(fleet: &[Host]) -> Vec<Target> {
    fleet
        .iter()
        .map(|h| Target {
            name: h.name.clone(),
            ssh_port: h.booted.guest.ssh_port,
        })
        .collect()
}

/// The rollout's variables: the target release, the health gates.
fn vars(release: &str) -> serde_json::Value {
    json!({
        "rolling_upgrade_release": release,
        // nginx in the guest, probed from the host itself (QEMU forwards
        // only ssh and the echo port).
        "rolling_upgrade_health_urls": ["http://127.0.0.1/"],
        "rolling_upgrade_probe_from_host": true,
        "rolling_upgrade_health_commands": [HEALTH_COMMAND],
        "rolling_upgrade_metrics_textfile": METRICS_FILE,
        // Three TCG guests share two host cores: generous.
        "rolling_upgrade_max_stoppage": 300,
    })
}

fn run(
    paths: &Paths,
    fleet: &[Host],
    (from, to): &(String, String),
    v: &mut Verdicts,
    interrupt: &Interrupt,
) -> Result<()> {
    let rollout = Rollout::prepare(paths, &targets(fleet))?;

    let step = output::step(format!("the rollout to {to} in check mode"));
    let checked = rollout.play_check(&vars(to))?;
    step.done();
    check_dry_run(fleet, &checked, from, to, v);

    let step = output::step(format!("rolling upgrade to {to}, one host at a time"));
    let played = rollout.play(&vars(to))?;
    step.done();
    interrupt.check()?;
    check_rollout(fleet, &played, to, from, v);
    check_one_at_a_time(fleet, v);

    let step = output::step("the same rollout again");
    let again = rollout.play(&vars(to))?;
    step.done();
    let unchanged = fleet.iter().all(|h| {
        again.recap.get(&h.name)
            == Some(&playbook::Recap {
                changed: 0,
                failed: 0,
            })
    });
    let lines: Vec<String> = fleet
        .iter()
        .filter_map(|h| again.summary_line(&h.name))
        .collect();
    v.record(
        "a second run changes nothing",
        again.success && unchanged,
        format!("{:?}; {}", again.recap, lines.join(" | ")),
    );

    check_metrics(paths, fleet, v);
    interrupt.check()?;
    faulty_rollout(&rollout, fleet, from, to, v)?;
    interrupt.check()?;
    fleet_lock(fleet, from, to, v)
}

/// `--check`: every host would change, none did, and the summary says
/// what would happen.
fn check_dry_run(fleet: &[Host], played: &Played, from: &str, to: &str, v: &mut Verdicts) {
    let lines: Vec<String> = fleet
        .iter()
        .filter_map(|h| played.summary_line(&h.name))
        .collect();
    let unames: Vec<String> = fleet.iter().map(Host::uname).collect();
    v.record(
        "check mode: every host would upgrade, none did",
        played.success
            && fleet.iter().all(|h| {
                played.recap.get(&h.name)
                    == Some(&playbook::Recap {
                        changed: 1,
                        failed: 0,
                    })
                    && played.summary_line(&h.name)
                        == Some(format!("{}: {from} (would upgrade to {to})", h.name))
            })
            && unames.iter().all(|u| u == from),
        format!(
            "{:?}; {}; uname -r {unames:?}",
            played.recap,
            lines.join(" | ")
        ),
    );
}

/// Every host upgraded, healthy, with the same PIDs.
fn check_rollout(fleet: &[Host], played: &Played, to: &str, from: &str, v: &mut Verdicts) {
    v.record(
        "rollout: every host upgraded, every gate passed",
        played.success
            && fleet.iter().all(|h| {
                played
                    .recap
                    .get(&h.name)
                    .is_some_and(|r| r.failed == 0 && r.changed >= 1)
            }),
        format!("{:?}", played.recap),
    );
    for host in fleet {
        let line = played.summary_line(&host.name).unwrap_or_default();
        v.record(
            &format!("{}: summary line", host.name),
            line == format!("{}: {to} (upgraded from {from})", host.name),
            line,
        );
        let after = Pids::read(&host.paths, host.booted.guest.ssh_port);
        let (uname, differences) = (host.uname(), after.map(|a| host.pids.differences(&a)));
        v.record(
            &format!("{}: runs {to}, same PIDs", host.name),
            uname == to && matches!(&differences, Ok(d) if d.is_empty()),
            format!("uname -r {uname}; PIDs: {differences:?}"),
        );
    }
}

/// From each host's report: each upgrade started after the previous
/// host's had finished (wall clocks: every guest sets its clock from the
/// same host).
fn check_one_at_a_time(fleet: &[Host], v: &mut Verdicts) {
    let spans: Vec<(String, Result<(u64, u64)>)> = fleet
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                h.report().map(|r| (r.started_usec, r.finished_usec)),
            )
        })
        .collect();
    let mut serial = true;
    let mut text = Vec::new();
    let origin = spans
        .iter()
        .find_map(|(_, span)| span.as_ref().ok().map(|(start, _)| *start))
        .unwrap_or(0);
    let secs = |usec: u64| usec.saturating_sub(origin) as f64 / 1e6;
    for (i, (name, span)) in spans.iter().enumerate() {
        match span {
            Ok((start, end)) => {
                text.push(format!("{name} {:.0}..{:.0} s", secs(*start), secs(*end)));
                if let Some((_, Ok((_, previous_end)))) = i.checked_sub(1).map(|p| &spans[p]) {
                    serial &= start > previous_end;
                }
            }
            Err(e) => {
                serial = false;
                text.push(format!("{name}: {e:#}"));
            }
        }
    }
    v.record(
        "rollout: one host at a time (upgrade start..end, from the first start)",
        serial,
        text.join(", "),
    );
}

/// The metrics file the role had each host write (`relivectl metrics
/// --textfile`), copied to lab/out/fleet/ and checked by promtool there.
fn check_metrics(paths: &Paths, fleet: &[Host], v: &mut Verdicts) {
    for host in fleet {
        let out = host.sh(&format!("cat {METRICS_FILE}"));
        let copy = paths.out.join("fleet").join(format!("{}.prom", host.name));
        let (ok, detail) = match out {
            Ok(o) if o.success() => match promtool(&copy, &o.stdout) {
                Ok(()) => (
                    o.stdout.contains("relive_last_upgrade_success 1"),
                    format!(
                        "promtool check metrics: ok; {}",
                        o.stdout
                            .lines()
                            .find(|l| l.starts_with("relive_last_upgrade_info"))
                            .unwrap_or("no relive_last_upgrade_info")
                    ),
                ),
                Err(e) => (false, format!("{e:#}")),
            },
            Ok(o) => (false, format!("{}{}", o.stdout, o.stderr)),
            Err(e) => (false, format!("{e:#}")),
        };
        v.record(&format!("{}: metrics file", host.name), ok, detail);
    }
}

/// `promtool check metrics < file`, `text` written to `file` first.
fn promtool(file: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(file, text)?;
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file)?)
        .output()
        .context("running promtool")?;
    if !out.status.success() {
        anyhow::bail!(
            "promtool check metrics < {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Back to `from`, with the second host unable to restore a rollback
/// unit: it goes back to `to` with its services, the rollout stops there
/// and the hosts after it stay on `to`, untouched.
fn faulty_rollout(
    rollout: &Rollout,
    fleet: &[Host],
    from: &str,
    to: &str,
    v: &mut Verdicts,
) -> Result<()> {
    let faulty = &fleet[1];
    let setup = faulty.sh(&format!(
        "mkdir -p /etc/systemd/system/{ROLLBACK_UNIT}.d && \
         printf '[X-LiveUpgrade]\\nOnRestoreFailure=rollback\\n' > /etc/systemd/system/{ROLLBACK_UNIT}.d/rollback.conf && \
         relivectl daemon-reload && echo 'restore-fail-new {ROLLBACK_UNIT}' > {FAULT_FILE}"
    ))?;
    v.record(
        &format!("{}: a rollback unit that will not restore", faulty.name),
        setup.success(),
        format!("{}{}", setup.stdout, setup.stderr),
    );
    let step = output::step(format!(
        "rolling upgrade back to {from}, a fault on {}",
        faulty.name
    ));
    let played = rollout.play(&vars(from))?;
    step.done();
    let first = &fleet[0];
    let expected = |host: &Host| -> &str {
        if host.name == first.name {
            from
        } else {
            to
        }
    };
    v.record(
        "faulty rollout: stopped at the faulty host, the rest not played",
        !played.success
            && played.recap.get(&first.name).is_some_and(|r| r.failed == 0)
            && played
                .recap
                .get(&faulty.name)
                .is_some_and(|r| r.failed == 1)
            && fleet[2..]
                .iter()
                .all(|h| !played.recap.contains_key(&h.name)),
        format!("{:?}", played.recap),
    );
    for (i, host) in fleet.iter().enumerate() {
        let line = played.summary_line(&host.name).unwrap_or_default();
        let state = match i {
            0 => format!("(upgraded from {to})"),
            1 => "(STOPPED HERE: ".to_owned(),
            _ => "(untouched)".to_owned(),
        };
        let uname = host.uname();
        let pids = Pids::read(&host.paths, host.booted.guest.ssh_port)
            .map(|after| host.pids.differences(&after));
        v.record(
            &format!(
                "faulty rollout: {} runs {}, same PIDs",
                host.name,
                expected(host)
            ),
            uname == expected(host)
                && line.starts_with(&format!("{}: {} {state}", host.name, expected(host)))
                && matches!(&pids, Ok(d) if d.is_empty()),
            format!("uname -r {uname}; summary: {line}; PIDs: {pids:?}"),
        );
    }
    let rolled_back = faulty.report().map(|r| r.rolled_back);
    v.record(
        &format!("{}: its report says it rolled back", faulty.name),
        matches!(&rolled_back, Ok(Some(why)) if why.contains(ROLLBACK_UNIT)),
        format!("{rolled_back:?}"),
    );
    let cleared = faulty.sh(&format!(
        "rm -f {FAULT_FILE} /etc/systemd/system/{ROLLBACK_UNIT}.d/rollback.conf && relivectl daemon-reload"
    ))?;
    v.record(
        &format!("{}: fault cleared", faulty.name),
        cleared.success(),
        cleared.stderr,
    );
    Ok(())
}

/// The first and last hosts (on `from` and `to` after the faulty
/// rollout) asked at once to upgrade to the other kernel, each through
/// `relivectl live-upgrade --fleet-lock`: the server must never have
/// granted the slot to both, and both must end upgraded, the slot free.
fn fleet_lock(fleet: &[Host], from: &str, to: &str, v: &mut Verdicts) -> Result<()> {
    let server = LockServer::start()?;
    let url = format!("http://10.0.2.2:{}", server.port);
    let pair = [(&fleet[0], to), (&fleet[fleet.len() - 1], from)];
    let step = output::step(format!(
        "{} and {} upgrading at once, each with a FleetLock slot",
        pair[0].0.name, pair[1].0.name
    ));
    let results: Vec<(String, Result<ssh::Output>)> = std::thread::scope(|scope| {
        let runs: Vec<_> = pair
            .iter()
            .map(|(host, release)| {
                // The image's guests share one machine-id: each names itself.
                let command = format!(
                    "relivectl live-upgrade --release {release} --reuse-cmdline \
                     --fleet-lock {url} --fleet-group lab --fleet-id {}",
                    host.name
                );
                let (paths, port) = (&host.paths, host.booted.guest.ssh_port);
                scope.spawn(move || ssh::run_across_upgrade(paths, port, &command))
            })
            .collect();
        runs.into_iter()
            .zip(pair.iter())
            .map(|(run, (host, _))| {
                let result = run
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the ssh thread panicked")));
                (host.name.clone(), result)
            })
            .collect()
    });
    step.done();
    let timeline = server.timeline();
    let refused = timeline
        .iter()
        .any(|(_, e)| matches!(e, lock_server::Event::Refused { .. }));
    v.record(
        "FleetLock: two hosts asking at once upgrade one at a time",
        lock_server::overlap(&timeline).is_none() && refused && server.holder("lab").is_none(),
        format!(
            "{}; overlap: {:?}; held at the end by {:?}",
            lock_server::describe(&timeline),
            lock_server::overlap(&timeline),
            server.holder("lab")
        ),
    );
    for ((name, result), (host, release)) in results.iter().zip(pair.iter()) {
        let uname = host.uname();
        let said = match result {
            Ok(o) => format!(
                "exit {:?}; {}",
                o.code,
                o.stdout.lines().next().unwrap_or("")
            ),
            Err(e) => format!("{e:#}"),
        };
        v.record(
            &format!("FleetLock: {name} upgraded to {release}"),
            matches!(result, Ok(o) if o.success()) && uname == *release,
            format!("uname -r {uname}; relivectl: {said}"),
        );
    }
    Ok(())
}
