//! The parking order and every undo path, in-process: PID 1, CRIU, the
//! freezer and kexec are fakes that record what the upgrade asked. The
//! fake kexec always fails, as a kexec that returns does, so every run
//! ends in the undo that a real failure would take.

use crate::control::UpgradeControl;
use crate::dump::{DumpError, DumpJob, Dumper, PreDumpJob};
use crate::park::{self, Aborted};
use crate::{Seams, UpgradeError, UpgradeRequest};
use relive_api::plan::{Plan, PlannedUnit, StoreChoice};
use relive_config::{DeadlineAction, UpgradeConfig};
use relive_host::fake::{FakeHost, HostCall};
use relive_host::{Job, ParkInfo};
use relive_restore::fake::FakeRestorer;
use relive_store::kexec::fake::{FakeKexec, KexecCall};
use relive_sys::freezer::fake::{FakeFreezer, FreezerCall};
use relive_sys::machine::Scope;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A CRIU that writes one small image per dump, or fails (or panics) for
/// the units it is told to.
#[derive(Debug, Default)]
struct FakeDumper {
    dumped: Mutex<Vec<String>>,
    failing: BTreeSet<String>,
    panicking: BTreeSet<String>,
    /// Each pre-dump takes this long.
    pre_dump_takes: std::time::Duration,
    /// Cancels the upgrade from its first pre-dump on.
    cancels: Option<std::sync::Arc<UpgradeControl>>,
}

impl Dumper for FakeDumper {
    fn pre_dump(&self, job: &PreDumpJob<'_>) -> Result<(), DumpError> {
        std::thread::sleep(self.pre_dump_takes);
        if let Some(control) = &self.cancels {
            assert_eq!(control.cancel(), crate::control::CancelAnswer::Cancelled);
        }
        if self.failing.contains(job.unit) {
            return Err(DumpError::Io {
                path: job.dir.to_owned(),
                source: std::io::Error::other("CRIU died (fake)"),
            });
        }
        std::fs::write(job.dir.join("pages-1.img"), b"pre").unwrap();
        Ok(())
    }

    fn dump(&self, job: &DumpJob<'_>) -> Result<(), DumpError> {
        self.dumped.lock().unwrap().push(job.unit.to_owned());
        if self.panicking.contains(job.unit) {
            panic!("a bug in the dump of {}", job.unit);
        }
        if self.failing.contains(job.unit) {
            return Err(DumpError::Io {
                path: job.dir.to_owned(),
                source: std::io::Error::other("CRIU refused (fake)"),
            });
        }
        std::fs::write(job.dir.join("pages-1.img"), job.unit.as_bytes()).unwrap();
        Ok(())
    }

    fn check(&self) -> Result<relive_criu::CriuVersion, DumpError> {
        Ok(relive_criu::CriuVersion {
            major: 3,
            minor: 17,
            sublevel: Some(1),
            extra: None,
            gitid: None,
            name: Some("fake".into()),
        })
    }
}

/// Everything one test run needs, in a store of its own.
struct Rig {
    host: FakeHost,
    dumper: FakeDumper,
    restorer: FakeRestorer,
    freezer: FakeFreezer,
    kexec: FakeKexec,
    control: std::sync::Arc<UpgradeControl>,
    config: UpgradeConfig,
    store: PathBuf,
}

/// A process that has exited: its PID names nobody.
fn dead_pid() -> i32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id() as i32
}

impl Rig {
    /// Preserved units (name, priority) in freeze order, and restart units.
    fn new(preserved: &[(&str, u16)], restarted: &[&str]) -> Rig {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store =
            std::env::temp_dir().join(format!("relive-park-test-{}-{n}", std::process::id()));
        let plan = Plan {
            preserved: preserved
                .iter()
                .map(|(name, priority)| PlannedUnit {
                    name: name.to_string(),
                    priority: *priority,
                    main_pid: std::process::id(),
                    pids: vec![std::process::id()],
                    estimated_bytes: 4096,
                    pre_dump: false,
                    pre_dump_max_rounds: None,
                    rollback: false,
                })
                .collect(),
            restarted: restarted.iter().map(|s| s.to_string()).collect(),
            store: Some(StoreChoice::disk(&store, "disk store (test)".into())),
            ..Plan::default()
        };
        let host = FakeHost::new(plan);
        host.with(|s| {
            for (name, _) in preserved {
                s.parkable.insert(
                    name.to_string(),
                    ParkInfo {
                        // Alive, so that a thawed unit is handed back.
                        main_pid: std::process::id() as i32,
                        cgroup: format!("/system.slice/{name}"),
                        ..ParkInfo::default()
                    },
                );
            }
        });
        Rig {
            host,
            dumper: FakeDumper::default(),
            restorer: FakeRestorer::default(),
            freezer: FakeFreezer::default(),
            kexec: FakeKexec::default(),
            control: std::sync::Arc::new(UpgradeControl::new()),
            config: UpgradeConfig {
                store_dir: store.clone(),
                pre_dump: false,
                ..UpgradeConfig::default()
            },
            store,
        }
    }

    fn seams(&self) -> Seams<'_> {
        Seams {
            host: &self.host,
            dumper: &self.dumper,
            restorer: &self.restorer,
            freezer: &self.freezer,
            kexec: &self.kexec,
            control: &self.control,
        }
    }

    /// The upgrade after a passed preflight: it always ends undone.
    fn execute(&self) -> Aborted {
        self.execute_phases(true)
    }

    /// The same, with phase 1 unless `single_phase`.
    fn execute_phases(&self, single_phase: bool) -> Aborted {
        let request = UpgradeRequest {
            kernel: "/boot/vmlinuz-next".into(),
            initrd: None,
            append: String::new(),
            reuse_cmdline: true,
            dry_run: false,
            single_phase,
            store: None,
            minimal_initrd: false,
            lazy_restore: false,
        };
        let plan = self.host.with(|s| s.plan.clone());
        self.host.begin_upgrade_for_test();
        park::execute(&self.seams(), &plan, &request, &self.config, &|_| {})
    }

    fn calls(&self) -> Vec<HostCall> {
        self.host.calls()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

trait BeginForTest {
    fn begin_upgrade_for_test(&self);
}

impl BeginForTest for FakeHost {
    fn begin_upgrade_for_test(&self) {
        relive_host::UnitHost::begin_upgrade(self).unwrap();
    }
}

fn cgroup(unit: &str) -> PathBuf {
    Path::new(relive_sys::cgroup::ROOT).join(format!("system.slice/{unit}"))
}

fn position(calls: &[HostCall], call: &HostCall) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("{call:?} never happened: {calls:#?}"))
}

#[test]
fn units_are_parked_by_ascending_priority_after_the_restart_units_stop() {
    let rig = Rig::new(&[("low", 100), ("mid", 500), ("critical", 900)], &["cron"]);
    let aborted = rig.execute();
    assert!(matches!(aborted.error, UpgradeError::Boot(_)), "{aborted}");
    assert_eq!(
        *rig.dumper.dumped.lock().unwrap(),
        ["low", "mid", "critical"]
    );
    let calls = rig.calls();
    let stop = position(
        &calls,
        &HostCall::Job {
            unit: "cron".into(),
            job: Job::Stop,
        },
    );
    let parks: Vec<usize> = ["low", "mid", "critical"]
        .iter()
        .map(|u| position(&calls, &HostCall::Park(u.to_string())))
        .collect();
    assert!(
        stop < parks[0] && parks[0] < parks[1] && parks[1] < parks[2],
        "{calls:#?}"
    );
    // The state is taken once every unit is dumped, then the kexec.
    assert!(position(&calls, &HostCall::ManagerState) > parks[2]);
    assert_eq!(rig.kexec.calls()[0], KexecCall::Boot);
    let freezes: Vec<FreezerCall> = rig.freezer.calls();
    assert_eq!(freezes[0], FreezerCall::Freeze(cgroup("low")));
    assert_eq!(freezes[2], FreezerCall::Freeze(cgroup("critical")));
}

#[test]
fn a_failed_kexec_restores_every_unit_in_reverse_and_starts_the_stopped_ones() {
    let rig = Rig::new(&[("low", 100), ("critical", 900)], &["cron"]);
    let aborted = rig.execute();
    assert!(aborted.lost.is_empty(), "{aborted}");
    assert!(aborted.to_string().starts_with("kexec failed"), "{aborted}");
    // Most critical first, as the new kernel would.
    assert_eq!(rig.restorer.restored(), ["critical", "low"]);
    let calls = rig.calls();
    let unparked = |u: &str| HostCall::Unpark {
        unit: u.into(),
        main_pid: std::process::id() as i32,
    };
    assert!(position(&calls, &unparked("critical")) < position(&calls, &unparked("low")));
    let started = position(
        &calls,
        &HostCall::Job {
            unit: "cron".into(),
            job: Job::Start,
        },
    );
    assert!(started > position(&calls, &unparked("low")));
    assert_eq!(calls.last(), Some(&HostCall::EndUpgrade));
    assert!(rig.kexec.calls().contains(&KexecCall::Unload));
    assert!(!rig.store.exists(), "the store (process memory) is wiped");
}

#[test]
fn a_failed_dump_thaws_its_unit_and_restores_the_ones_before_it() {
    let mut rig = Rig::new(&[("low", 100), ("mid", 500), ("critical", 900)], &[]);
    rig.dumper.failing.insert("mid".into());
    let aborted = rig.execute();
    match &aborted.error {
        UpgradeError::DumpRetry { unit, .. } => assert_eq!(unit, "mid"),
        other => panic!("{other}"),
    }
    // Tried twice (the second time in full), never reached critical.
    assert_eq!(*rig.dumper.dumped.lock().unwrap(), ["low", "mid", "mid"]);
    assert!(!rig.calls().contains(&HostCall::Park("critical".into())));
    let freezer = rig.freezer.calls();
    assert_eq!(freezer.last(), Some(&FreezerCall::Thaw(cgroup("mid"))));
    // mid never left its processes: it is handed back, not restored.
    assert_eq!(rig.restorer.restored(), ["low"]);
    assert!(rig.calls().contains(&HostCall::Unpark {
        unit: "mid".into(),
        main_pid: std::process::id() as i32,
    }));
    assert!(aborted.lost.is_empty(), "{aborted}");
    // No kexec after a failed dump; the kernel the preflight loaded goes.
    assert_eq!(rig.kexec.calls(), [KexecCall::Unload]);
}

#[test]
fn a_unit_whose_process_died_in_its_dump_is_started_afresh_and_reported() {
    let mut rig = Rig::new(&[("low", 100), ("mid", 500)], &[]);
    let dead = dead_pid();
    rig.host
        .with(|s| s.parkable.get_mut("mid").unwrap().main_pid = dead);
    rig.dumper.failing.insert("mid".into());
    let aborted = rig.execute();
    assert!(matches!(aborted.error, UpgradeError::DiedInDump { pid, .. } if pid == dead));
    assert_eq!(aborted.lost.len(), 1, "{aborted}");
    assert!(
        aborted.lost[0].to_string().starts_with(&format!(
            "mid: state lost: its main process {dead} died during the failed dump"
        )),
        "{aborted}"
    );
    let calls = rig.calls();
    assert!(calls.contains(&HostCall::QueueStart("mid".into())));
    assert!(calls
        .iter()
        .any(|c| matches!(c, HostCall::ForgetParked { unit, .. } if unit == "mid")));
    assert_eq!(rig.restorer.restored(), ["low"]);
}

#[test]
fn a_unit_that_cannot_be_restored_after_an_abort_is_started_afresh() {
    let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
    rig.restorer = FakeRestorer::failing(&["low"]);
    let aborted = rig.execute();
    assert_eq!(aborted.lost.len(), 1, "{aborted}");
    assert!(aborted.lost[0]
        .to_string()
        .starts_with("low: state lost: could not be restored"));
    assert!(rig.calls().contains(&HostCall::QueueStart("low".into())));
}

#[test]
fn a_panic_in_the_upgrade_is_undone_like_any_failure() {
    let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
    rig.dumper.panicking.insert("critical".into());
    let aborted = rig.execute();
    match &aborted.error {
        UpgradeError::Panic(message) => assert!(message.contains("a bug in the dump of critical")),
        other => panic!("{other}"),
    }
    assert_eq!(rig.restorer.restored(), ["low"]);
    assert_eq!(
        rig.freezer.calls().last(),
        Some(&FreezerCall::Thaw(cgroup("critical")))
    );
    assert_eq!(rig.calls().last(), Some(&HostCall::EndUpgrade));
}

#[test]
fn a_restart_unit_that_does_not_stop_undoes_nothing_else() {
    let rig = Rig::new(&[("low", 100)], &["cron", "stuck"]);
    rig.host.with(|s| s.failing_jobs.insert("stuck".into()));
    let aborted = rig.execute();
    assert!(matches!(&aborted.error, UpgradeError::Stop { unit, .. } if unit == "stuck"));
    let calls = rig.calls();
    assert!(!calls.iter().any(|c| matches!(c, HostCall::Park(_))));
    // cron, stopped before, is started again.
    assert!(calls.contains(&HostCall::Job {
        unit: "cron".into(),
        job: Job::Start
    }));
}

#[test]
fn a_failed_preflight_leaves_everything_as_it_was() {
    let rig = Rig::new(&[("low", 100)], &["cron"]);
    let request = UpgradeRequest {
        kernel: "/nonexistent/vmlinuz".into(),
        initrd: None,
        append: String::new(),
        reuse_cmdline: true,
        dry_run: false,
        single_phase: false,
        store: None,
        minimal_initrd: false,
        lazy_restore: false,
    };
    // Not the machine's init: the preflight refuses.
    let failed = park::prepare(
        &rig.seams(),
        &request,
        &rig.config,
        Scope::Namespace,
        &|_| {},
    )
    .unwrap_err();
    let text = failed.error.to_string();
    assert!(
        text.starts_with("preflight failed: init: relive is not the machine's init"),
        "{text}"
    );
    assert!(text.contains("kernel: /nonexistent/vmlinuz"), "{text}");
    assert_eq!(
        rig.calls(),
        [HostCall::BeginUpgrade, HostCall::Plan, HostCall::EndUpgrade]
    );
    assert!(rig.kexec.calls().is_empty(), "nothing loaded");
    assert!(rig.freezer.calls().is_empty());
}

/// Phase 1 over "low" (whose main process is dead and whose pre-dump
/// fails) and "critical"; with `ended`, PID 1 says "low" ended on its
/// own. Returns the chains and the dead PID.
fn phase1_with_a_dead_unit(
    rig: &mut Rig,
    ended: bool,
) -> (
    std::collections::BTreeMap<String, crate::predump::Chain>,
    i32,
) {
    let dead = dead_pid();
    rig.host.with(|s| {
        for unit in s.plan.preserved.iter_mut() {
            unit.pre_dump = true;
            if unit.name == "low" {
                unit.main_pid = dead as u32;
            }
        }
        if ended {
            s.ended.insert("low".into());
        }
    });
    rig.dumper.failing.insert("low".into());
    rig.config.pre_dump = true;
    let plan = rig.host.with(|s| s.plan.clone());
    let store = relive_store::Store::create(&rig.store).unwrap();
    let (chains, _) = crate::predump::phase1(
        &rig.dumper,
        &store,
        &plan,
        &rig.config,
        &|_| {},
        Default::default(),
        &|| false,
    )
    .unwrap();
    (chains, dead)
}

#[test]
fn a_unit_that_died_with_its_pre_dump_is_started_afresh_and_its_loss_kept() {
    let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
    let (chains, dead) = phase1_with_a_dead_unit(&mut rig, false);
    assert_eq!(chains["low"].parent, None, "its chain is dropped");
    assert!(chains["critical"].parent.is_some());
    let losses = crate::predump::start_lost(&rig.seams(), &chains, &|_| {}).unwrap();
    assert_eq!(losses.len(), 1);
    assert_eq!(losses[0].unit, "low");
    assert!(
        losses[0].reason.starts_with(&format!(
            "its main process {dead} died when pre-dump round 1 failed"
        )),
        "{}",
        losses[0].reason
    );
    assert!(rig.calls().contains(&HostCall::Job {
        unit: "low".into(),
        job: Job::Start
    }));
}

#[test]
fn a_unit_that_ended_on_its_own_during_phase_1_lost_nothing() {
    let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
    let (chains, _) = phase1_with_a_dead_unit(&mut rig, true);
    let losses = crate::predump::start_lost(&rig.seams(), &chains, &|_| {}).unwrap();
    assert!(losses.is_empty(), "{losses:?}");
    assert!(
        !rig.calls().iter().any(|c| matches!(
            c,
            HostCall::Job {
                job: Job::Start,
                ..
            }
        )),
        "nothing started afresh: {:#?}",
        rig.calls()
    );
}

#[test]
fn a_unit_that_ended_on_its_own_before_its_checkpoint_is_skipped() {
    let rig = Rig::new(&[("low", 100), ("idle-exit", 500), ("critical", 900)], &[]);
    rig.host.with(|s| {
        s.parkable.remove("idle-exit");
        s.ended.insert("idle-exit".into());
    });
    let aborted = rig.execute();
    // The upgrade went on to the kexec (which the rig fails), with the
    // other units dumped.
    assert!(matches!(aborted.error, UpgradeError::Boot(_)), "{aborted}");
    assert_eq!(*rig.dumper.dumped.lock().unwrap(), ["low", "critical"]);
    assert!(aborted.lost.is_empty(), "{aborted}");
}

#[test]
fn a_unit_that_cannot_be_parked_while_running_aborts_the_upgrade() {
    let rig = Rig::new(&[("low", 100), ("stuck", 500)], &[]);
    rig.host.with(|s| s.parkable.remove("stuck"));
    let aborted = rig.execute();
    assert!(
        matches!(&aborted.error, UpgradeError::Park { unit, .. } if unit == "stuck"),
        "{aborted}"
    );
}

/// The rig's units with pre-dumps on, and phase 1 on.
fn two_phase(rig: &mut Rig) {
    rig.host.with(|s| {
        for unit in s.plan.preserved.iter_mut() {
            unit.pre_dump = true;
        }
    });
    rig.config.pre_dump = true;
}

#[test]
fn a_cancel_during_phase_1_undoes_the_upgrade_before_anything_is_frozen() {
    let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &["web"]);
    two_phase(&mut rig);
    rig.dumper.cancels = Some(std::sync::Arc::clone(&rig.control));
    let aborted = rig.execute_phases(false);
    assert!(
        matches!(aborted.error, UpgradeError::Cancelled),
        "{aborted}"
    );
    assert!(aborted.lost.is_empty());
    assert!(
        rig.dumper.dumped.lock().unwrap().is_empty(),
        "no final dump"
    );
    assert!(rig.freezer.calls().is_empty(), "{:?}", rig.freezer.calls());
    assert!(
        !rig.calls()
            .iter()
            .any(|c| matches!(c, HostCall::Park(_))
                || matches!(c, HostCall::Job { job: Job::Stop, .. })),
        "nothing parked or stopped: {:#?}",
        rig.calls()
    );
    // The upgrade is over: nothing left to cancel.
    assert_eq!(
        rig.control.cancel(),
        crate::control::CancelAnswer::NoUpgrade
    );
}

#[test]
fn phase_1_s_deadline_ends_its_rounds_and_aborts_or_proceeds_as_configured() {
    for action in [DeadlineAction::Abort, DeadlineAction::Proceed] {
        let mut rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
        two_phase(&mut rig);
        rig.dumper.pre_dump_takes = std::time::Duration::from_millis(1100);
        rig.config.pre_dump_deadline_sec = 1;
        rig.config.pre_dump_deadline_action = action;
        let aborted = rig.execute_phases(false);
        let dumped = rig.dumper.dumped.lock().unwrap().clone();
        match action {
            DeadlineAction::Abort => {
                assert!(
                    matches!(aborted.error, UpgradeError::Phase1Deadline { secs: 1 }),
                    "{aborted}"
                );
                assert!(dumped.is_empty(), "{dumped:?}");
            }
            // The stoppage began with one unit's pre-dump round made.
            DeadlineAction::Proceed => assert_eq!(dumped, ["low", "critical"], "{aborted}"),
        }
    }
}

#[test]
fn an_undone_unit_s_socket_units_let_go_of_its_sockets_for_its_restore_and_take_them_back() {
    let rig = Rig::new(&[("low", 100), ("greet", 900)], &[]);
    rig.host.with(|s| {
        let info = s.parkable.get_mut("greet").unwrap();
        info.listeners = vec![relive_api::report::CarriedListener {
            socket_unit: "greet.socket".into(),
            index: 0,
            fd: 3,
        }];
    });
    let aborted = rig.execute();
    assert!(aborted.to_string().starts_with("kexec failed"), "{aborted}");
    let calls = rig.calls();
    let pid = std::process::id() as i32;
    let released = position(&calls, &HostCall::ReleaseListeners("greet".into()));
    let unparked = position(
        &calls,
        &HostCall::Unpark {
            unit: "greet".into(),
            main_pid: pid,
        },
    );
    let adopted = position(
        &calls,
        &HostCall::AdoptListeners {
            unit: "greet".into(),
            main_pid: pid,
            fds: vec![3],
        },
    );
    assert!(released < unparked && unparked < adopted, "{calls:#?}");
    // low carried none: PID 1 kept its sockets.
    assert!(!calls.contains(&HostCall::ReleaseListeners("low".into())));
}

/// CRIU 3 names each dump's lock table by its root PID: once the first
/// dump shows that, the next ones are listed by name. Each unit's table is
/// saved, then merged into relive's one table on the old kernel (the
/// tables piled up, and every nft run reads them all); the undo puts each
/// back before its restore, and the merged table goes at the end.
#[test]
fn lock_tables_are_saved_merged_and_put_back_by_the_undo() {
    let rig = Rig::new(&[("low", 100), ("critical", 900)], &[]);
    let table = format!("CRIU-{}", std::process::id());
    let nft = "/usr/sbin/nft";
    let listed = format!(
        "table inet {table} {{\n\tset conns4 {{\n\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service\n\t\telements = {{ 127.0.0.1 . 7001 . 127.0.0.1 . 40000 }}\n\t}}\n}}\n"
    );
    rig.host.with(|s| {
        s.helper_stdout.insert(
            format!("{nft} list tables inet"),
            format!("table inet {table}\n"),
        );
        s.helper_stdout
            .insert(format!("{nft} list table inet {table}"), listed.clone());
    });
    let aborted = rig.execute();
    assert!(matches!(aborted.error, UpgradeError::Boot(_)), "{aborted}");
    let lock = |unit: &str, what: &str| {
        let file = rig.store.join(format!("lock/{unit}.{what}.nft"));
        format!("-f {}", file.display())
    };
    let nft_runs: Vec<String> = rig
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            HostCall::Helper(argv) if argv[0] == nft => Some(argv[1..].join(" ")),
            _ => None,
        })
        .collect();
    assert_eq!(
        nft_runs,
        [
            "list tables inet".to_owned(),
            "list tables inet".to_owned(),
            format!("list table inet {table}"),
            lock("low", "merge"),
            format!("list table inet {table}"),
            lock("critical", "merge"),
            // The undo: most critical first.
            lock("critical", "unmerge"),
            lock("low", "unmerge"),
            "delete table inet relive-locks".to_owned(),
        ]
    );
}
