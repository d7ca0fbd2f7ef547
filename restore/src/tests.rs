//! The resume order and the restore-failure policies, in-process: PID 1,
//! CRIU, the freezer and kexec are fakes that record what the resume
//! asked; the store is a real one holding small fake images.

use crate::fake::FakeRestorer;
use crate::resume;
use crate::Seams;
use relive_api::plan::Plan;
use relive_api::report::{Outcome, UnitMode, UnitRecord, UpgradeMode};
use relive_host::fake::{FakeHost, HostCall};
use relive_host::Job;
use relive_store::handover::PreviousKernel;
use relive_store::kexec::fake::{FakeKexec, KexecCall};
use relive_store::{KexecHandover, Store};
use relive_sys::freezer::fake::{FakeFreezer, FreezerCall};
use std::path::{Path, PathBuf};

struct Rig {
    host: FakeHost,
    restorer: FakeRestorer,
    freezer: FakeFreezer,
    kexec: FakeKexec,
    store: Store,
}

impl Rig {
    /// A store holding checked images of `units` (name, rollback), in
    /// freeze order (least critical first).
    fn new(units: &[(&str, bool)]) -> (Rig, KexecHandover) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("relive-resume-test-{}-{n}", std::process::id()));
        let store = Store::create(&root).unwrap();
        let mut records = Vec::new();
        for (i, (name, rollback)) in units.iter().enumerate() {
            let dir = store.unit_dir(name).unwrap();
            std::fs::write(dir.join("pages-1.img"), name.as_bytes()).unwrap();
            store.seal_unit(name).unwrap();
            records.push(UnitRecord {
                name: name.to_string(),
                mode: UnitMode::Preserve,
                main_pid: 2000 + i as i32,
                // Each its own priority, ascending as the freeze order.
                priority: 100 * (i as u16 + 1),
                cgroup: format!("/system.slice/{name}"),
                rollback: *rollback,
                frozen_usec: 1,
                ..UnitRecord::default()
            });
        }
        let handover = KexecHandover {
            state: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            plan: Plan {
                restarted: vec!["cron".into()],
                rerun: vec!["network".into(), "sysctl".into()],
                why: vec![(
                    "cron".into(),
                    "PIDs 7 are not descendants of main PID 6".into(),
                )],
                ..Plan::default()
            },
            units: records,
            kernel_from: "6.1.0-47-amd64".into(),
            kernel_to: "/boot/vmlinuz-6.12".into(),
            started_usec: 1,
            kexec_usec: 2,
            mode: UpgradeMode::TwoPhase,
            phase1_started_usec: 1,
            phase1_ended_usec: 2,
            phase1_cpu: None,
            store: "disk store (test)".into(),
            notes: Vec::new(),
            losses: Vec::new(),
            previous: Some(PreviousKernel {
                release: "6.1.0-47-amd64".into(),
                kernel: "/boot/vmlinuz-6.1.0-47-amd64".into(),
                initrd: None,
                cmdline: "root=/dev/vda init=/usr/sbin/relive".into(),
            }),
            rolled_back: None,
            clock: Default::default(),
            network: None,
        };
        let rig = Rig {
            host: FakeHost::default(),
            restorer: FakeRestorer::default(),
            freezer: FakeFreezer::default(),
            kexec: FakeKexec::default(),
            store,
        };
        (rig, handover)
    }

    fn seams(&self) -> Seams<'_> {
        Seams {
            host: &self.host,
            restorer: &self.restorer,
            freezer: &self.freezer,
            kexec: &self.kexec,
        }
    }

    fn resume(&self, handover: KexecHandover) -> relive_api::report::UpgradeReport {
        resume::resume(
            self.seams(),
            &self.store,
            handover,
            3,
            crate::Ahead::default(),
        )
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.store.wipe();
    }
}

fn position(calls: &[HostCall], call: &HostCall) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("{call:?} never happened: {calls:#?}"))
}

fn outcome<'a>(report: &'a relive_api::report::UpgradeReport, unit: &str) -> &'a Outcome {
    report
        .units
        .iter()
        .find(|u| u.name == unit)
        .and_then(|u| u.outcome.as_ref())
        .unwrap_or_else(|| panic!("no outcome for {unit}"))
}

fn cgroup(unit: &str) -> PathBuf {
    Path::new(relive_sys::cgroup::ROOT).join(format!("system.slice/{unit}"))
}

#[test]
fn reruns_first_then_the_most_critical_unit_then_the_rest() {
    let (rig, handover) = Rig::new(&[("low", false), ("mid", false), ("critical", false)]);
    let report = rig.resume(handover);
    assert_eq!(rig.restorer.restored(), ["critical", "mid", "low"]);
    let calls = rig.host.calls();
    let rerun = position(
        &calls,
        &HostCall::StartTogether(vec!["network".into(), "sysctl".into()]),
    );
    let first_restore = position(&calls, &HostCall::PrepareRestore("critical".into()));
    let floor = position(&calls, &HostCall::PidsAboveFloor);
    let cron = position(
        &calls,
        &HostCall::Job {
            unit: "cron".into(),
            job: Job::Start,
        },
    );
    let target = position(
        &calls,
        &HostCall::Job {
            unit: "multi-user.target".into(),
            job: Job::Start,
        },
    );
    assert!(rerun < first_restore && first_restore < floor && floor < cron && cron < target);
    for unit in ["low", "mid", "critical"] {
        assert_eq!(outcome(&report, unit), &Outcome::Restored);
    }
    assert_eq!(outcome(&report, "cron"), &Outcome::Restarted);
    let cron = report.units.iter().find(|u| u.name == "cron").unwrap();
    assert_eq!(cron.why, "PIDs 7 are not descendants of main PID 6");
    assert_eq!(outcome(&report, "network"), &Outcome::Rerun);
    assert_eq!(report.mode, Some(UpgradeMode::TwoPhase));
    assert!(rig.kexec.calls().is_empty());
}

#[test]
fn a_unit_that_cannot_be_restored_starts_afresh_above_the_pid_floor() {
    let (mut rig, handover) = Rig::new(&[("low", false), ("mid", false), ("critical", false)]);
    rig.restorer = FakeRestorer::failing(&["mid"]);
    rig.host.with(|s| s.main_pids.insert("mid".into(), 31337));
    let report = rig.resume(handover);
    let mid = report.units.iter().find(|u| u.name == "mid").unwrap();
    assert_eq!(
        mid.new_main_pid,
        Some(31337),
        "the report shows its new PID"
    );
    assert!(
        matches!(outcome(&report, "mid"), Outcome::Lost { reason } if reason.contains("restore failed"))
    );
    assert_eq!(
        outcome(&report, "low"),
        &Outcome::Restored,
        "the others go on"
    );
    let calls = rig.host.calls();
    let forgotten = calls
        .iter()
        .position(|c| matches!(c, HostCall::ForgetParked { unit, .. } if unit == "mid"))
        .expect("mid forgotten");
    let floor = position(&calls, &HostCall::PidsAboveFloor);
    let started = position(
        &calls,
        &HostCall::Job {
            unit: "mid".into(),
            job: Job::Start,
        },
    );
    // Its fresh processes must not take a PID a restore still needs.
    assert!(forgotten < floor && floor < started, "{calls:#?}");
    assert_eq!(report.lost().count(), 1);
}

#[test]
fn damaged_images_are_never_restored() {
    let (rig, handover) = Rig::new(&[("low", false), ("critical", false)]);
    let pages = rig.store.unit_dir("low").unwrap().join("pages-1.img");
    std::fs::write(&pages, b"flipped").unwrap();
    let report = rig.resume(handover);
    assert_eq!(rig.restorer.restored(), ["critical"]);
    match outcome(&report, "low") {
        Outcome::Lost { reason } => assert!(
            reason.starts_with("images refused") && reason.contains("does not match"),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
}

#[test]
fn rollback_units_are_held_frozen_until_all_of_them_are_back() {
    let (rig, handover) = Rig::new(&[("low", false), ("db", true), ("critical", true)]);
    let report = rig.resume(handover);
    // Rollback units first (most critical first), then the others.
    assert_eq!(rig.restorer.restored(), ["critical", "db", "low"]);
    assert_eq!(
        rig.freezer.calls(),
        [
            FreezerCall::Freeze(cgroup("critical")),
            FreezerCall::Freeze(cgroup("db")),
            FreezerCall::Thaw(cgroup("critical")),
            FreezerCall::Thaw(cgroup("db")),
        ]
    );
    assert_eq!(outcome(&report, "db"), &Outcome::Restored);
    assert!(rig.kexec.calls().is_empty(), "no rollback");
}

#[test]
fn a_rollback_unit_that_fails_sends_the_machine_back() {
    let (mut rig, handover) = Rig::new(&[("low", false), ("db", true), ("critical", true)]);
    rig.restorer = FakeRestorer::failing(&["db"]);
    let report = rig.resume(handover);
    let kexec = rig.kexec.calls();
    match &kexec[0] {
        KexecCall::Load { kernel, cmdline } => {
            assert_eq!(kernel, Path::new("/boot/vmlinuz-6.1.0-47-amd64"));
            assert!(cmdline.contains(&format!("relive.handover={}", rig.store.root.display())));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kexec[1], KexecCall::Boot);
    // critical, restored and held, was ended for the previous kernel to
    // restore from the same images.
    assert!(rig
        .freezer
        .calls()
        .contains(&FreezerCall::Kill(cgroup("critical"))));
    // The fake kexec returned (as a failed one does): the resume goes on
    // in this kernel, and the handover left for the old one says why.
    let back = rig.store.read_handover().unwrap();
    let why = back.rolled_back.expect("rolled_back set");
    assert!(why.contains("db could not be restored"), "{why}");
    assert!(back.units.iter().all(|u| u.outcome.is_none()));
    assert_eq!(outcome(&report, "critical"), &Outcome::Restored);
    assert!(matches!(outcome(&report, "db"), Outcome::Lost { .. }));
}

#[test]
fn a_handover_that_already_rolled_back_never_rolls_back_again() {
    let (mut rig, mut handover) = Rig::new(&[("low", false), ("db", true)]);
    handover.rolled_back = Some("rolled back from 6.12 to 6.1: db could not be restored".into());
    rig.restorer = FakeRestorer::failing(&["db"]);
    let report = rig.resume(handover);
    assert!(rig.kexec.calls().is_empty());
    assert!(matches!(outcome(&report, "db"), Outcome::Lost { .. }));
    assert_eq!(outcome(&report, "low"), &Outcome::Restored);
    assert!(report.rolled_back.is_some());
}

/// A mount a restored namespace binds from PID 1's (/run/lock) is
/// mounted again with the rerun units, before any restore; one no
/// preserved namespace had is not (it comes with the boot target).
#[test]
fn the_mounts_restored_namespaces_need_come_with_the_reruns() {
    let (rig, mut handover) = Rig::new(&[("redis", false)]);
    handover.plan.mounts = vec![
        ("run-lock.mount".into(), "/run/lock".into()),
        ("srv-backup.mount".into(), "/srv/backup".into()),
        ("-.mount".into(), "/".into()),
    ];
    handover.units[0].mount_flags = vec![
        ("/".into(), vec![relive_api::report::MountFlag::ReadOnly]),
        (
            "/run/lock".into(),
            vec![relive_api::report::MountFlag::NoExec],
        ),
    ];
    started_before_redis(&rig, handover, &["network", "sysctl", "run-lock.mount"]);
}

/// Resumes `handover`, whose unit is "redis": `first` are started
/// together before its restore.
fn started_before_redis(rig: &Rig, handover: KexecHandover, first: &[&str]) {
    rig.resume(handover);
    let calls = rig.host.calls();
    let together = HostCall::StartTogether(first.iter().map(|u| u.to_string()).collect());
    assert!(
        position(&calls, &together) < position(&calls, &HostCall::PrepareRestore("redis".into()))
    );
}

/// A rerun unit of the services' layer (after basic.target) is started
/// beside the restores once the most critical unit is back, not before;
/// the early ones are timed in the report, and the beside ones are done
/// before new processes take PIDs above the floor.
#[test]
fn reruns_of_the_services_layer_go_beside_the_restores() {
    let (rig, mut handover) = Rig::new(&[("low", false), ("critical", false)]);
    handover.plan.rerun.push("user-sessions".into());
    handover.plan.rerun_beside_restores = vec!["user-sessions".into()];
    let report = rig.resume(handover);
    let calls = rig.host.calls();
    let early = position(
        &calls,
        &HostCall::StartTogether(vec!["network".into(), "sysctl".into()]),
    );
    let beside = position(
        &calls,
        &HostCall::StartTogether(vec!["user-sessions".into()]),
    );
    let first_restore = position(&calls, &HostCall::PrepareRestore("critical".into()));
    let critical_back = calls
        .iter()
        .position(|c| matches!(c, HostCall::Unpark { unit, .. } if unit == "critical"))
        .unwrap_or_else(|| panic!("critical never unparked: {calls:#?}"));
    let floor = position(&calls, &HostCall::PidsAboveFloor);
    assert!(early < first_restore && critical_back < beside && beside < floor);
    // The generators, held back until then, run beside the others.
    let released = position(&calls, &HostCall::MostCriticalRestored);
    let low_restore = position(&calls, &HostCall::PrepareRestore("low".into()));
    assert!(critical_back < released && released < low_restore);
    assert_eq!(outcome(&report, "user-sessions"), &Outcome::Rerun);
    let steps: Vec<String> = report
        .before_restores
        .iter()
        .map(|s| s.work.to_string())
        .collect();
    for work in ["network locks", "network", "sysctl", "CRIU's probe"] {
        assert!(steps.iter().any(|s| s == work), "{work} in {steps:?}");
    }
    assert!(!steps.iter().any(|s| s == "user-sessions"), "{steps:?}");
}

/// In the new kernel a firewall's rules come first (a ruleset may flush
/// every table), then CRIU's network locks, then the units that bring
/// the network up; the other early units run beside the locks' loading.
#[test]
fn the_network_locks_come_after_the_firewall_and_before_the_network() {
    let (rig, mut handover) = Rig::new(&[("echo", false)]);
    handover.units[0].lock_saved = true;
    handover.plan.rerun = vec!["nftables".into(), "networking".into(), "sysctl".into()];
    handover.plan.rerun_firewall = vec!["nftables".into()];
    handover.plan.rerun_network = vec!["networking".into()];
    let report = rig.resume(handover);
    let calls = rig.host.calls();
    let firewall = position(&calls, &HostCall::StartTogether(vec!["nftables".into()]));
    let locks = calls
        .iter()
        .position(|c| matches!(c, HostCall::Helper(argv) if argv.get(1).map(String::as_str) == Some("-f")))
        .unwrap_or_else(|| panic!("no nft -f: {calls:#?}"));
    let network = position(&calls, &HostCall::StartTogether(vec!["networking".into()]));
    let others = position(&calls, &HostCall::StartTogether(vec!["sysctl".into()]));
    let restore = position(&calls, &HostCall::PrepareRestore("echo".into()));
    assert!(
        firewall < locks && locks < network && network < restore,
        "{calls:#?}"
    );
    assert!(others < restore);
    for unit in ["nftables", "networking", "sysctl"] {
        assert_eq!(outcome(&report, unit), &Outcome::Rerun);
    }
}

/// With the old kernel's addresses and routes in the handover, relive
/// puts them back right after the network locks, and the network's own
/// units run beside the restores, once the most critical unit is back.
#[test]
fn the_network_put_back_by_relive_lets_the_restores_go_first() {
    let (rig, mut handover) = Rig::new(&[("echo", false)]);
    handover.units[0].lock_saved = true;
    handover.plan.rerun = vec!["networking".into(), "sysctl".into()];
    handover.plan.rerun_network = vec!["networking".into()];
    // lo: an interface every machine running the test has.
    handover.network = Some(relive_api::network::NetworkState {
        links: vec![relive_api::network::LinkState {
            name: "lo".into(),
            mac: "00:00:00:00:00:00".into(),
            mtu: 65536,
            up: true,
            addresses: Vec::new(),
        }],
        ..Default::default()
    });
    let report = rig.resume(handover);
    let calls = rig.host.calls();
    let helper = |program: &str, arg: &str| {
        calls
            .iter()
            .position(|c| matches!(c, HostCall::Helper(argv) if argv[0].ends_with(program) && argv.get(1).map(String::as_str) == Some(arg)))
            .unwrap_or_else(|| panic!("no {program} {arg}: {calls:#?}"))
    };
    let (locks, addresses) = (helper("nft", "-f"), helper("ip", "-batch"));
    let restore = position(&calls, &HostCall::PrepareRestore("echo".into()));
    let echo_back = calls
        .iter()
        .position(|c| matches!(c, HostCall::Unpark { unit, .. } if unit == "echo"))
        .unwrap();
    let networking = position(&calls, &HostCall::StartTogether(vec!["networking".into()]));
    assert!(locks < addresses && addresses < restore, "{calls:#?}");
    assert!(echo_back < networking, "{calls:#?}");
    let steps: Vec<String> = report
        .before_restores
        .iter()
        .map(|s| s.work.to_string())
        .collect();
    assert!(
        steps.iter().any(|s| s == "addresses and routes"),
        "{steps:?}"
    );
    assert!(!steps.iter().any(|s| s == "networking"), "{steps:?}");
    assert_eq!(outcome(&report, "networking"), &Outcome::Rerun);
}

/// Units of one priority are restored at once (as many as there are
/// CPUs, up to four); a higher priority still goes first, alone, and a
/// lower one after.
#[test]
fn units_of_one_priority_are_restored_together_after_the_more_critical() {
    let (mut rig, mut handover) = Rig::new(&[
        ("low", false),
        ("a", false),
        ("b", false),
        ("critical", false),
    ]);
    for (unit, priority) in handover.units.iter_mut().zip([100, 500, 500, 900]) {
        unit.priority = priority;
    }
    rig.restorer = FakeRestorer::taking(std::time::Duration::from_millis(100));
    let report = rig.resume(handover);
    let order = rig.restorer.restored();
    assert_eq!(
        order.first().map(String::as_str),
        Some("critical"),
        "{order:?}"
    );
    assert_eq!(order.last().map(String::as_str), Some("low"), "{order:?}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(rig.restorer.most_at_once(), cpus.clamp(1, 2), "{order:?}");
    for unit in ["low", "a", "b", "critical"] {
        assert_eq!(outcome(&report, unit), &Outcome::Restored);
    }
}

#[test]
fn held_connections_come_in_once_their_unit_is_restored_or_lost() {
    let (mut rig, mut handover) = Rig::new(&[("greet", false), ("web", false)]);
    rig.restorer = FakeRestorer::failing(&["web"]);
    for (record, port) in handover.units.iter_mut().zip([7010, 7011]) {
        record.hold_table = "relive-hold".into();
        record.hold_ports = vec![port];
    }
    handover.units[0].listeners = vec![relive_api::report::CarriedListener {
        socket_unit: "greet.socket".into(),
        index: 0,
        fd: 3,
    }];
    let report = rig.resume(handover);
    assert_eq!(outcome(&report, "greet"), &Outcome::Restored);
    let calls = rig.host.calls();
    let nft = |args: &[&str]| {
        HostCall::Helper(
            std::iter::once("/usr/sbin/nft")
                .chain(args.iter().copied())
                .map(str::to_owned)
                .collect(),
        )
    };
    let all = rig.store.root.join("lock/all.nft").display().to_string();
    let loaded = position(&calls, &nft(&["-f", &all]));
    let first_restore = position(&calls, &HostCall::PrepareRestore("web".into()));
    assert!(loaded < first_restore, "held before any address is up");
    // The lost unit's hold goes before it starts afresh...
    // A unit's hold ends when its ports leave the one table's set (in
    // one nft run with others that were waiting).
    let released = |ports: &str| {
        let lift = format!("delete element inet relive-hold ports {ports}");
        calls
            .iter()
            .position(|c| matches!(c, HostCall::Helper(argv) if argv.join(" ").contains(&lift)))
            .unwrap_or_else(|| panic!("no {lift}: {calls:#?}"))
    };
    let web_released = released("{ 7011 }");
    let web_started = calls
        .iter()
        .position(|c| matches!(c, HostCall::Job { unit, job: Job::Start } if unit == "web"))
        .expect("web started afresh");
    assert!(web_released < web_started, "{calls:#?}");
    // ...the restored one's once PID 1 has its socket unit's sockets back.
    let unparked = position(
        &calls,
        &HostCall::Unpark {
            unit: "greet".into(),
            main_pid: 2000,
        },
    );
    let adopted = position(
        &calls,
        &HostCall::AdoptListeners {
            unit: "greet".into(),
            main_pid: 2000,
            fds: vec![3],
        },
    );
    let greet_released = released("{ 7010 }");
    assert!(unparked < adopted && adopted < greet_released, "{calls:#?}");
    // The table goes once the restores are over.
    let dropped = position(&calls, &nft(&["delete", "table", "inet", "relive-hold"]));
    assert!(
        greet_released < dropped && web_released < dropped,
        "{calls:#?}"
    );
}

/// The new kernel's network locks are one table with an empty one under
/// each CRIU name (loaded with one nft run); each unit's connections go
/// at its post-restore, before it runs; the table goes once all are back.
#[test]
fn the_new_kernel_s_locks_are_one_table_each_restore_lets_its_own_through() {
    let (rig, mut handover) = Rig::new(&[("redis", false), ("echo", false)]);
    for (record, conn) in handover.units.iter_mut().zip(["6379", "7000"]) {
        record.lock_saved = true;
        let text = format!(
            "table inet CRIU-{} {{\n\tset conns4 {{\n\t\telements = {{ 10.0.2.15 . {conn} . 10.0.2.2 . 5555 }}\n\t}}\n}}\n",
            record.main_pid
        );
        std::fs::write(rig.store.lock_file(&record.name), text).unwrap();
    }
    rig.resume(handover);
    let calls = rig.host.calls();
    let nft_files: Vec<String> = calls
        .iter()
        .filter_map(|c| match c {
            HostCall::Helper(argv) if argv.get(1).map(String::as_str) == Some("-f") => {
                Some(argv[2].clone())
            }
            _ => None,
        })
        .collect();
    let lock_dir = rig.store.root.join("lock");
    let all = std::fs::read_to_string(lock_dir.join("all.nft")).unwrap();
    assert_eq!(
        all,
        format!("include \"{}\"\n", lock_dir.join("resume.nft").display())
    );
    let ruleset = std::fs::read_to_string(lock_dir.join("resume.nft")).unwrap();
    assert!(ruleset.contains("add table inet CRIU-2000\n"), "{ruleset}");
    assert!(ruleset.contains("add table inet CRIU-2001\n"), "{ruleset}");
    // The load, then echo's release (restored first), then redis's.
    let release = |unit: &str| {
        lock_dir
            .join(format!("{unit}.release.nft"))
            .display()
            .to_string()
    };
    assert_eq!(
        nft_files,
        [
            lock_dir.join("all.nft").display().to_string(),
            release("echo"),
            release("redis")
        ],
        "{calls:#?}"
    );
    let echo = std::fs::read_to_string(release("echo")).unwrap();
    assert_eq!(
        echo,
        "delete element inet relive-locks conns4 { 10.0.2.15 . 7000 . 10.0.2.2 . 5555 }\n"
    );
    let dropped = calls.iter().position(|c| {
        matches!(c, HostCall::Helper(argv) if argv.join(" ").ends_with("delete table inet relive-locks"))
    });
    let last_restore = position(&calls, &HostCall::PrepareRestore("redis".into()));
    assert!(dropped.is_some_and(|d| d > last_restore), "{calls:#?}");
}
