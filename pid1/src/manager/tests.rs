//! The state machine against a recording fake kernel: no processes, no
//! cgroups, deterministic.

use super::*;
use relive_sys::machine::ShutdownKind;
use relive_sys::spawn::ChildStep;
use relive_sys::{ExecStatus, SpawnError, SpawnRequest, Spawned};
use std::sync::{Arc, Mutex};

/// What the manager asked of the kernel, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Spawn {
        unit: String,
        argv: Vec<String>,
        pid: i32,
    },
    Kill {
        pid: i32,
        signal: i32,
    },
    Attach {
        cgroup: String,
        pid: i32,
    },
}

#[derive(Debug, Default)]
struct Recorder {
    calls: Vec<Call>,
    next_pid: i32,
    /// Programs whose spawn fails, as exec would.
    failing: Vec<String>,
    /// Processes already running, by unit cgroup name (a previous relive's).
    running: std::collections::BTreeMap<String, Vec<i32>>,
}

#[derive(Debug, Clone, Default)]
struct FakeKernel(Arc<Mutex<Recorder>>);

impl Kernel for FakeKernel {
    fn spawn(&mut self, request: SpawnRequest) -> Result<Spawned, SpawnError> {
        let mut r = self.0.lock().unwrap();
        let argv: Vec<String> = request
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // A failing program is forked all the same: its exec fails later.
        let failure = r
            .failing
            .contains(&argv[0])
            .then_some((ChildStep::Exec, libc::ENOENT));
        r.next_pid += 1;
        let pid = 1000 + r.next_pid;
        let unit = request
            .cgroup
            .unwrap_or_default()
            .trim_start_matches("/system.slice/")
            .to_owned();
        let exec = ExecStatus::settled(&argv[0], failure).map_err(SpawnError::Fork)?;
        r.calls.push(Call::Spawn { unit, argv, pid });
        Ok(Spawned { pid, exec })
    }
    fn kill(&mut self, pid: i32, signal: i32) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap()
            .calls
            .push(Call::Kill { pid, signal });
        Ok(())
    }
    fn cgroup_create(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn cgroup_configure(
        &mut self,
        _: &str,
        _: &[relive_units::resources::CgroupSetting],
    ) -> std::io::Result<()> {
        Ok(())
    }
    fn cgroup_attach(&mut self, path: &str, pid: i32) -> std::io::Result<()> {
        let unit = path.rsplit('/').next().unwrap_or(path).to_owned();
        let mut r = self.0.lock().unwrap();
        r.calls.push(Call::Attach {
            cgroup: path.to_owned(),
            pid,
        });
        r.running.entry(unit).or_default().push(pid);
        Ok(())
    }
    fn cgroup_pids(&self, path: &str) -> std::io::Result<Vec<i32>> {
        let unit = path.rsplit('/').next().unwrap_or(path);
        Ok(self
            .0
            .lock()
            .unwrap()
            .running
            .get(unit)
            .cloned()
            .unwrap_or_default())
    }
    fn cgroup_kill(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn cgroup_devices(
        &mut self,
        _: &str,
        _: &[relive_sys::device_filter::Rule],
    ) -> std::io::Result<()> {
        Ok(())
    }
    fn cgroup_populated(&self, path: &str) -> std::io::Result<bool> {
        // Only scopes' processes are tracked by cgroup here.
        let unit = path.rsplit('/').next().unwrap_or(path);
        let r = self.0.lock().unwrap();
        Ok(unit.ends_with(".scope") && r.running.get(unit).is_some_and(|p| !p.is_empty()))
    }
    fn cgroup_children(&self, _: &str) -> std::io::Result<Vec<String>> {
        Ok(self.0.lock().unwrap().running.keys().cloned().collect())
    }
    fn cgroup_remove(&mut self, _: &str) {}
    fn cgroup_delegate(
        &mut self,
        _: &str,
        _: &[String],
        _: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        Ok(())
    }
    fn cgroup_of(&self, _: i32) -> Option<String> {
        None
    }
    fn listen(
        &mut self,
        _: &relive_units::socket::Listen,
        _: &relive_units::socket::SocketSection,
        _: relive_sys::listen::Owner,
    ) -> std::io::Result<std::os::fd::OwnedFd> {
        // Any pollable descriptor stands for a socket here.
        let (read, _write) = nix::unistd::pipe()?;
        Ok(read)
    }
}

fn manager(units: &[(&str, &str)]) -> (Manager, FakeKernel, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    for (name, text) in units {
        std::fs::write(dir.path.join(name), text).unwrap();
    }
    let kernel = FakeKernel::default();
    let m = Manager::new(
        Config::default(),
        vec![dir.path.clone()],
        Box::new(kernel.clone()),
        dir.path.join("notify"),
    );
    (m, kernel, dir)
}

/// A throw-away directory, removed on drop.
mod tempdir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);

    #[derive(Debug)]
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let n = N.fetch_add(1, Ordering::SeqCst);
            let path = std::env::temp_dir()
                .join(format!("relive-manager-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The process spawned last exits with status 0 (a oneshot's done).
fn exit_last_spawned(m: &mut Manager, k: &FakeKernel) {
    let pid = match k.0.lock().unwrap().calls.last() {
        Some(Call::Spawn { pid, .. }) => *pid,
        other => panic!("{other:?}"),
    };
    m.child_exited(pid, ExitStatus::Exited(0));
}

fn spawned_units(k: &FakeKernel) -> Vec<String> {
    k.0.lock()
        .unwrap()
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Spawn { unit, .. } => Some(unit.clone()),
            _ => None,
        })
        .collect()
}

fn main_pid(m: &Manager, unit: &str) -> i32 {
    m.unit(unit).and_then(|u| u.main_pid).expect("main PID")
}

#[test]
fn ordering_decides_the_spawn_order() {
    // a after b, said by a (After=) or by b (Before=): the same order.
    for (a_unit, b_unit) in [
        ("[Unit]\nAfter=b.service\n", ""),
        ("", "[Unit]\nBefore=a.service\n"),
    ] {
        let (mut m, k, _dir) = manager(&[
            (
                "a.service",
                &format!("{a_unit}[Service]\nExecStart=/bin/a\n"),
            ),
            (
                "b.service",
                &format!(
                    "{b_unit}[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/b\n"
                ),
            ),
            ("t.target", "[Unit]\nWants=a.service b.service\n"),
        ]);
        m.request("t.target", JobKind::Start).unwrap();
        // b is a oneshot still running: a waits for it.
        assert_eq!(spawned_units(&k), ["b.service"]);
        let b_pid = m.unit("b.service").unwrap().control_pid.unwrap();
        m.child_exited(b_pid, ExitStatus::Exited(0));
        m.dispatch();
        assert_eq!(spawned_units(&k), ["b.service", "a.service"]);
        assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Active);
        assert_eq!(m.unit("t.target").unwrap().active, ActiveState::Active);
    }
}

#[test]
fn a_failed_main_process_is_restarted_with_on_failure() {
    let (mut m, k, _dir) = manager(&[(
        "a.service",
        "[Service]\nExecStart=/bin/a\nRestart=on-failure\nRestartSec=0\n",
    )]);
    m.request("a.service", JobKind::Start).unwrap();
    let first = main_pid(&m, "a.service");
    m.child_exited(first, ExitStatus::Exited(1));
    let u = m.unit("a.service").unwrap();
    assert_eq!(
        (u.active, u.sub),
        (ActiveState::Activating, SubState::AutoRestart)
    );
    m.fire_timers();
    let second = main_pid(&m, "a.service");
    assert_ne!(first, second);
    assert_eq!(m.unit("a.service").unwrap().restarts, 1);
    assert_eq!(spawned_units(&k).len(), 2);
}

#[test]
fn a_clean_exit_is_not_restarted_with_on_failure() {
    let (mut m, k, _dir) = manager(&[(
        "a.service",
        "[Service]\nExecStart=/bin/a\nRestart=on-failure\nRestartSec=0\n",
    )]);
    m.request("a.service", JobKind::Start).unwrap();
    m.child_exited(main_pid(&m, "a.service"), ExitStatus::Exited(0));
    m.fire_timers();
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Inactive);
    assert_eq!(spawned_units(&k).len(), 1);
}

#[test]
fn stop_sends_the_kill_signal_then_waits_for_the_exit() {
    let (mut m, k, _dir) = manager(&[(
        "a.service",
        "[Service]\nExecStart=/bin/a\nKillSignal=SIGINT\n",
    )]);
    m.request("a.service", JobKind::Start).unwrap();
    let pid = main_pid(&m, "a.service");
    let done = m.request("a.service", JobKind::Stop).unwrap();
    assert!(k.0.lock().unwrap().calls.contains(&Call::Kill {
        pid,
        signal: libc::SIGINT
    }));
    assert_eq!(
        m.unit("a.service").unwrap().active,
        ActiveState::Deactivating
    );
    assert!(
        done.try_recv().is_err(),
        "stop finished before the process exited"
    );
    m.child_exited(pid, ExitStatus::Signaled(libc::SIGINT));
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Inactive);
    assert_eq!(done.try_recv().unwrap(), Ok(()));
}

#[test]
fn type_exec_waits_for_the_exec_and_a_failed_one_fails_its_requirers() {
    let (mut m, k, _dir) = manager(&[
        (
            "a.service",
            "[Service]\nType=exec\nExecStart=/bin/missing\n",
        ),
        (
            "b.service",
            "[Unit]\nRequires=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/b\n",
        ),
    ]);
    k.0.lock().unwrap().failing.push("/bin/missing".into());
    let outcome = m.request("b.service", JobKind::Start).unwrap();
    let a_pid = main_pid(&m, "a.service");
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Activating);
    m.settle_ready_execs();
    // The child reported its failure and exits with 203 (EXEC).
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Activating);
    m.child_exited(a_pid, ExitStatus::Exited(203));
    let a = m.unit("a.service").unwrap();
    assert_eq!(
        (a.active, a.result.clone()),
        (ActiveState::Failed, UnitResult::ExitCode(203))
    );
    let b = m.unit("b.service").unwrap();
    assert_eq!(
        (b.active, b.result.clone()),
        (ActiveState::Failed, UnitResult::Dependency)
    );
    assert!(matches!(
        outcome.try_recv().unwrap(),
        Err(ManagerError::JobFailed(_))
    ));
    assert_eq!(spawned_units(&k), ["a.service"]);
}

#[test]
fn type_exec_is_active_once_its_program_runs() {
    let (mut m, k, _dir) = manager(&[
        ("a.service", "[Service]\nType=exec\nExecStart=/bin/a\n"),
        (
            "b.service",
            "[Unit]\nRequires=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/b\n",
        ),
    ]);
    let outcome = m.request("b.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Activating);
    assert_eq!(spawned_units(&k), ["a.service"], "b waits for a's exec");
    m.settle_ready_execs();
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Active);
    assert_eq!(m.unit("b.service").unwrap().active, ActiveState::Active);
    assert_eq!(outcome.try_recv().unwrap(), Ok(()));
}

#[test]
fn type_simple_is_active_at_once_and_fails_when_its_exec_does() {
    // systemd's Type=simple: started as soon as the process exists, so a
    // missing program shows as the unit's failure a moment later.
    let (mut m, k, _dir) = manager(&[("a.service", "[Service]\nExecStart=/bin/missing\n")]);
    k.0.lock().unwrap().failing.push("/bin/missing".into());
    let outcome = m.request("a.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Active);
    assert_eq!(outcome.try_recv().unwrap(), Ok(()));
    let pid = main_pid(&m, "a.service");
    m.child_exited(pid, ExitStatus::Exited(203));
    let a = m.unit("a.service").unwrap();
    assert_eq!(
        (a.active, a.result.clone()),
        (ActiveState::Failed, UnitResult::ExitCode(203))
    );
}

#[test]
fn notify_service_is_activating_until_ready() {
    let (mut m, _k, _dir) = manager(&[("n.service", "[Service]\nType=notify\nExecStart=/bin/n\n")]);
    let done = m.request("n.service", JobKind::Start).unwrap();
    let pid = main_pid(&m, "n.service");
    assert_eq!(m.unit("n.service").unwrap().active, ActiveState::Activating);
    m.notify_message(pid, "STATUS=almost\nREADY=1\n");
    let u = m.unit("n.service").unwrap();
    assert_eq!(u.active, ActiveState::Active);
    assert_eq!(u.status_text.as_deref(), Some("almost"));
    assert_eq!(done.try_recv().unwrap(), Ok(()));
}

/// Type=dbus services require the bus's socket.
const BUS_SOCKET: &str = "[Socket]\nListenStream=/run/dbus/system_bus_socket\n";

#[test]
fn type_dbus_is_activating_until_its_name_appears_and_stops_when_it_goes() {
    let unit = "[Service]\nType=dbus\nBusName=org.example.Test1\nExecStart=/bin/d\n";
    let (mut m, k, _dir) = manager(&[("d.service", unit), ("dbus.socket", BUS_SOCKET)]);
    m.bus_name_owner_changed("org.example.Other1", true);
    let done = m.request("d.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("d.service").unwrap().active, ActiveState::Activating);
    m.bus_name_owner_changed("org.example.Test1", true);
    assert_eq!(m.unit("d.service").unwrap().active, ActiveState::Active);
    assert_eq!(done.try_recv().unwrap(), Ok(()));
    let pid = main_pid(&m, "d.service");
    m.bus_name_owner_changed("org.example.Test1", false);
    assert_eq!(
        m.unit("d.service").unwrap().active,
        ActiveState::Deactivating
    );
    assert!(k.0.lock().unwrap().calls.contains(&Call::Kill {
        pid,
        signal: libc::SIGTERM
    }));
}

#[test]
fn type_dbus_whose_name_is_already_there_is_active_at_once() {
    let unit = "[Service]\nBusName=org.example.Test1\nExecStart=/bin/d\n";
    let (mut m, _k, _dir) = manager(&[("d.service", unit), ("dbus.socket", BUS_SOCKET)]);
    m.bus_connected(vec!["org.example.Test1".into()]);
    let done = m.request("d.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("d.service").unwrap().active, ActiveState::Active);
    assert_eq!(done.try_recv().unwrap(), Ok(()));
}

#[test]
fn notify_reload_signals_the_main_process_and_waits_for_ready() {
    let unit = "[Service]\nType=notify-reload\nReloadSignal=SIGUSR1\nExecStart=/bin/n\n";
    let (mut m, k, _dir) = manager(&[("n.service", unit)]);
    m.request("n.service", JobKind::Start).unwrap();
    let pid = main_pid(&m, "n.service");
    m.notify_message(pid, "READY=1\n");
    assert_eq!(m.unit("n.service").unwrap().active, ActiveState::Active);
    let reloaded = m.request("n.service", JobKind::Reload).unwrap();
    assert!(k.0.lock().unwrap().calls.contains(&Call::Kill {
        pid,
        signal: libc::SIGUSR1
    }));
    assert_eq!(m.unit("n.service").unwrap().active, ActiveState::Reloading);
    assert!(reloaded.try_recv().is_err(), "done before READY=1");
    m.notify_message(pid, "RELOADING=1\nMONOTONIC_USEC=1\n");
    m.notify_message(pid, "READY=1\n");
    assert_eq!(m.unit("n.service").unwrap().active, ActiveState::Active);
    assert_eq!(reloaded.try_recv().unwrap(), Ok(()));
}

#[test]
fn shutdown_stops_in_reverse_order() {
    let (mut m, k, _dir) = manager(&[
        ("a.service", "[Service]\nExecStart=/bin/a\n"),
        (
            "b.service",
            "[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/b\n",
        ),
        ("t.target", "[Unit]\nWants=a.service b.service\n"),
    ]);
    m.request("t.target", JobKind::Start).unwrap();
    let (a, b) = (main_pid(&m, "a.service"), main_pid(&m, "b.service"));
    m.begin_shutdown(relive_sys::machine::ShutdownKind::PowerOff)
        .unwrap();
    let kills = |k: &FakeKernel| -> Vec<i32> {
        k.0.lock()
            .unwrap()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Kill { pid, signal } if *signal == libc::SIGTERM => Some(*pid),
                _ => None,
            })
            .collect()
    };
    // b is ordered after a: it stops first, and a waits for it.
    assert_eq!(kills(&k), [b]);
    m.child_exited(b, ExitStatus::Signaled(libc::SIGTERM));
    m.dispatch();
    assert_eq!(kills(&k), [b, a]);
    m.child_exited(a, ExitStatus::Signaled(libc::SIGTERM));
    m.dispatch();
    assert_eq!(
        m.shutdown_done(),
        Some(relive_sys::machine::ShutdownKind::PowerOff)
    );
}

#[test]
fn state_serializes_and_comes_back() {
    let (mut m, _k, _dir) = manager(&[("a.service", "[Service]\nExecStart=/bin/a\n")]);
    m.request("a.service", JobKind::Start).unwrap();
    let json = serde_json::to_string(&m.state).unwrap();
    let back: ManagerState = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.units["a.service"].main_pid,
        m.unit("a.service").unwrap().main_pid
    );
    assert_eq!(back.units["a.service"].active, ActiveState::Active);
}

#[test]
fn conflicts_work_in_both_directions() {
    let (mut m, _k, _dir) = manager(&[
        (
            "a.service",
            "[Unit]\nConflicts=b.service\n[Service]\nExecStart=/bin/a\n",
        ),
        ("b.service", "[Service]\nExecStart=/bin/b\n"),
    ]);
    m.request("a.service", JobKind::Start).unwrap();
    // Starting b stops a, although only a names the conflict.
    m.request("b.service", JobKind::Start).unwrap();
    assert_eq!(
        m.unit("a.service").unwrap().active,
        ActiveState::Deactivating
    );
    m.child_exited(
        main_pid(&m, "a.service"),
        ExitStatus::Signaled(libc::SIGTERM),
    );
    m.dispatch();
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Inactive);
    assert_eq!(m.unit("b.service").unwrap().active, ActiveState::Active);
}

#[test]
fn no_shutdown_during_an_upgrade_and_no_upgrade_during_a_shutdown() {
    use relive_sys::machine::ShutdownKind;
    let (mut m, _k, _dir) = manager(&[("a.service", "[Service]\nExecStart=/bin/a\n")]);
    m.request("a.service", JobKind::Start).unwrap();
    m.begin_upgrade().unwrap();
    let e = m.begin_upgrade().unwrap_err().to_string();
    assert!(e.contains("already running"), "{e}");
    let e = m
        .begin_shutdown(ShutdownKind::PowerOff)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a live upgrade is running"), "{e}");
    assert_eq!(m.state.units["a.service"].active, ActiveState::Active);
    m.end_upgrade();
    m.begin_shutdown(ShutdownKind::PowerOff).unwrap();
    let e = m.begin_upgrade().unwrap_err().to_string();
    assert!(e.contains("shutting down"), "{e}");
}

/// A shutdown signal during an upgrade (a UPS daemon's SIGPWR) is not
/// dropped: it waits for the upgrade to end, then stops everything.
#[test]
fn a_shutdown_signal_during_an_upgrade_waits_for_its_end() {
    let (mut m, _k, _dir) = manager(&[("a.service", "[Service]\nExecStart=/bin/a\n")]);
    m.request("a.service", JobKind::Start).unwrap();
    m.begin_upgrade().unwrap();
    m.shutdown_signal(ShutdownKind::PowerOff);
    assert_eq!(m.state.shutdown, None, "not while units are parked");
    assert_eq!(m.unit("a.service").unwrap().active, ActiveState::Active);
    m.end_upgrade();
    assert_eq!(m.state.shutdown, Some(ShutdownKind::PowerOff));
    assert_eq!(
        m.unit("a.service").unwrap().active,
        ActiveState::Deactivating
    );
}

/// A re-exec during an upgrade would leave its units frozen with no one
/// to thaw them: refused.
#[test]
fn daemon_reexec_is_refused_during_an_upgrade() {
    let (mut m, _k, _dir) = manager(&[]);
    m.begin_upgrade().unwrap();
    let e = m.request_reexec().unwrap_err();
    assert!(e.to_string().contains("a live upgrade is running"), "{e}");
    assert!(!m.rt.reexec_requested);
    m.end_upgrade();
    m.request_reexec().unwrap();
}

/// A re-exec whose handover cannot be read: the services of the previous
/// relive run on; they are adopted from their cgroups, never started a
/// second time.
#[test]
fn survivors_of_an_unreadable_re_exec_are_adopted_not_started_twice() {
    let (mut m, k, _dir) = manager(&[
        ("a.service", "[Service]\nExecStart=/bin/a\n"),
        ("b.service", "[Service]\nExecStart=/bin/b\n"),
        ("t.target", "[Unit]\nWants=a.service b.service\n"),
    ]);
    k.0.lock()
        .unwrap()
        .running
        .insert("a.service".into(), vec![4242, 4243]);
    let adopted = m.adopt_survivors();
    assert_eq!(adopted, ["a.service"]);
    let a = m.unit("a.service").unwrap();
    assert_eq!((a.active, a.main_pid), (ActiveState::Active, Some(4242)));
    m.request("t.target", JobKind::Start).unwrap();
    assert_eq!(spawned_units(&k), ["b.service"], "a runs already");
}

#[test]
fn a_start_waits_for_its_device_and_goes_on_once_it_is_there() {
    let dir = tempdir::Dir::new();
    let node = dir.path.join("node");
    // systemd-escape --path: '/' becomes '-', '-' becomes \x2d.
    let escaped = node
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    let device = format!("{escaped}.device");
    let waiter = format!("[Unit]\nBindsTo={device}\nAfter={device}\n[Service]\nExecStart=/bin/w\n");
    let (mut m, k, _units) = manager(&[("waiter.service", &waiter)]);
    let done = m.request("waiter.service", JobKind::Start).unwrap();
    assert!(spawned_units(&k).is_empty(), "waits for {device}");
    assert!(m.next_deadline().is_some(), "looks for it again");
    std::fs::write(&node, "").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    m.fire_timers();
    m.dispatch();
    assert_eq!(m.unit(&device).unwrap().active, ActiveState::Active);
    assert_eq!(spawned_units(&k), ["waiter.service"]);
    assert_eq!(done.try_recv().unwrap(), Ok(()));
}

#[test]
fn a_service_active_without_a_process_is_rerun_by_an_upgrade_not_preserved() {
    let (mut m, k, _dir) = manager(&[(
        "script.service",
        "[Service]\nType=forking\nGuessMainPID=no\nRemainAfterExit=yes\nExecStart=/etc/init.d/script start\n",
    )]);
    m.request("script.service", JobKind::Start).unwrap();
    exit_last_spawned(&mut m, &k);
    let u = m.unit("script.service").unwrap();
    assert_eq!((u.active, u.sub), (ActiveState::Active, SubState::Exited));
    let plan = m.upgrade_plan();
    assert!(plan.preserved.is_empty(), "{:?}", plan.preserved);
    assert_eq!(plan.rerun, ["script.service"]);
    // An ordinary service (after basic.target): rerun beside the restores.
    assert_eq!(plan.rerun_beside_restores, ["script.service"]);
    assert!(
        plan.why[0].1.starts_with("active without a process"),
        "{:?}",
        plan.why
    );
}

#[test]
fn early_reruns_precede_the_restores_and_restarted_units_keep_their_preserved_run_state() {
    let (mut m, k, _dir) = manager(&[
        (
            "early.service",
            "[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
        ),
        (
            "web.service",
            "[Service]\nExecStart=/bin/web\nRuntimeDirectory=web\nRuntimeDirectoryPreserve=yes\n\
             [X-LiveUpgrade]\nMode=restart\n",
        ),
        (
            "api.service",
            "[Service]\nExecStart=/bin/api\nRuntimeDirectory=api\n[X-LiveUpgrade]\nMode=restart\n",
        ),
    ]);
    m.request("early.service", JobKind::Start).unwrap();
    exit_last_spawned(&mut m, &k);
    for unit in ["web.service", "api.service"] {
        m.request(unit, JobKind::Start).unwrap();
    }
    let plan = m.upgrade_plan();
    assert_eq!(plan.rerun, ["early.service"]);
    assert!(plan.rerun_beside_restores.is_empty(), "{plan:?}");
    assert_eq!(plan.restarted, ["api.service", "web.service"]);
    assert_eq!(
        plan.carried_on_restart,
        [("web.service".to_string(), vec!["web".to_string()])]
    );
}

#[test]
fn a_private_users_service_is_restarted_by_an_upgrade_and_the_plan_says_why() {
    let (mut m, _k, _dir) = manager(&[
        (
            "own-users.service",
            "[Service]\nExecStart=/bin/a\nPrivateUsers=yes\n",
        ),
        ("plain.service", "[Service]\nExecStart=/bin/b\n"),
    ]);
    for unit in ["own-users.service", "plain.service"] {
        m.request(unit, JobKind::Start).unwrap();
        assert_eq!(m.unit(unit).unwrap().active, ActiveState::Active);
    }
    let plan = m.upgrade_plan();
    let preserved: Vec<&str> = plan.preserved.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(preserved, ["plain.service"]);
    assert_eq!(plan.restarted, ["own-users.service"]);
    assert_eq!(
        plan.why,
        [
            (
                "own-users.service".to_string(),
                super::plan::PRIVATE_USERS.to_string()
            ),
            (
                "plain.service".to_string(),
                "a long-running service: preserved by default".to_string()
            ),
        ]
    );
}

#[test]
fn a_target_is_reached_only_when_its_conditions_hold() {
    let (mut m, _k, _dir) = manager(&[
        ("t.target", "[Unit]\nDescription=t\n"),
        (
            "first-boot.target",
            "[Unit]\nConditionPathExists=/nonexistent/relive-test\n",
        ),
    ]);
    m.request("t.target", JobKind::Start).unwrap();
    let t = m.unit("t.target").unwrap();
    // systemd's sub-state for a reached target.
    assert_eq!((t.active, t.sub.as_str()), (ActiveState::Active, "active"));
    let done = m.request("first-boot.target", JobKind::Start).unwrap();
    assert_eq!(
        m.unit("first-boot.target").unwrap().active,
        ActiveState::Inactive
    );
    assert_eq!(done.try_recv().unwrap(), Ok(()));
}

/// journald's sockets outlive journald at a poweroff and logs still
/// arrive: traffic then starts nothing, and the socket is closed.
#[test]
fn socket_traffic_during_a_shutdown_starts_nothing() {
    // k.service, still stopping, keeps the socket (ordered before it) up.
    let socket =
        "[Unit]\nDefaultDependencies=no\nBefore=k.service\n[Socket]\nListenDatagram=/run/j.sock\n";
    let (mut m, k, _dir) = manager(&[
        ("j.socket", socket),
        ("j.service", "[Service]\nExecStart=/bin/j\n"),
        ("k.service", "[Service]\nExecStart=/bin/k\n"),
    ]);
    m.request("j.socket", JobKind::Start).unwrap();
    m.request("k.service", JobKind::Start).unwrap();
    m.shutdown_signal(ShutdownKind::PowerOff);
    assert_eq!(
        m.unit("k.service").unwrap().active,
        ActiveState::Deactivating
    );
    let fds: Vec<i32> = m
        .listening_fds()
        .iter()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .collect();
    assert_eq!(fds.len(), 1, "the socket outlives the shutdown's start");
    m.socket_ready(fds[0]);
    assert!(!spawned_units(&k).contains(&"j.service".to_owned()));
    assert_eq!(m.unit("j.socket").unwrap().active, ActiveState::Inactive);
    assert!(m.listening_fds().is_empty());
}

#[test]
fn a_transient_scope_takes_its_processes_and_goes_when_they_do() {
    let (mut m, k, dir) = manager(&[("user.slice", "[Unit]\nDescription=Users\n")]);
    let transient = dir.path.join("transient");
    m.unit_dirs.push(transient.clone());
    let scope = super::scopes::Transient {
        name: "session-1.scope".into(),
        unit_file: "[Unit]\nDescription=Session 1\n[Scope]\nSlice=user-0.slice\nSendSIGHUP=yes\n"
            .into(),
        pids: vec![4242],
    };
    m.start_transient(scope.clone()).unwrap();
    assert!(transient.join("session-1.scope").exists());
    assert!(k.0.lock().unwrap().calls.contains(&Call::Attach {
        cgroup: "/user.slice/user-0.slice/session-1.scope".into(),
        pid: 4242
    }));
    let u = m.unit("session-1.scope").unwrap();
    assert_eq!((u.active, u.sub), (ActiveState::Active, SubState::Running));
    assert_eq!(m.unit("user-0.slice").unwrap().active, ActiveState::Active);
    // The same name again while it runs is refused.
    assert!(m.start_transient(scope).is_err());

    m.request("session-1.scope", JobKind::Stop).unwrap();
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        assert!(k
            .0
            .lock()
            .unwrap()
            .calls
            .contains(&Call::Kill { pid: 4242, signal }));
    }
    assert_eq!(
        m.unit("session-1.scope").unwrap().active,
        ActiveState::Deactivating
    );
    k.0.lock().unwrap().running.remove("session-1.scope");
    m.scope_check("session-1.scope");
    assert!(m.unit("session-1.scope").is_none());
    assert!(!transient.join("session-1.scope").exists());
}

#[test]
fn a_transient_unit_never_hides_a_unit_file() {
    let (mut m, _k, dir) = manager(&[("a.service", "[Service]\nExecStart=/bin/a\n")]);
    m.unit_dirs.insert(0, dir.path.join("transient"));
    let err = m
        .start_transient(super::scopes::Transient {
            name: "a.service".into(),
            unit_file: "[Service]\nExecStart=/bin/evil\n".into(),
            pids: Vec::new(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("fragment file"), "{err}");
    assert!(!dir.path.join("transient/a.service").exists());
}

#[test]
fn a_scope_without_processes_is_refused_and_leaves_nothing() {
    let (mut m, _k, dir) = manager(&[]);
    m.unit_dirs.push(dir.path.join("transient"));
    let err = m
        .start_transient(super::scopes::Transient {
            name: "run-x.scope".into(),
            unit_file: "[Scope]\n".into(),
            pids: Vec::new(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("no PIDs"), "{err}");
    assert!(m.unit("run-x.scope").is_none());
    assert!(!dir.path.join("transient/run-x.scope").exists());
}

#[test]
fn an_abandoned_scope_runs_until_its_processes_end() {
    let (mut m, k, dir) = manager(&[]);
    m.unit_dirs.push(dir.path.join("transient"));
    m.start_transient(super::scopes::Transient {
        name: "session-2.scope".into(),
        unit_file: "[Scope]\n".into(),
        pids: vec![77],
    })
    .unwrap();
    m.abandon_scope("session-2.scope").unwrap();
    assert_eq!(m.unit("session-2.scope").unwrap().sub, SubState::Abandoned);
    m.scope_check("session-2.scope");
    assert!(m.unit("session-2.scope").is_some());
    k.0.lock().unwrap().running.remove("session-2.scope");
    m.scope_check("session-2.scope");
    assert!(m.unit("session-2.scope").is_none());
}

#[test]
fn a_wanted_unit_relive_cannot_honour_is_left_out_a_required_one_fails_the_requirer() {
    let (mut m, k, _dir) = manager(&[
        (
            "pam.service",
            "[Service]\nDynamicUser=yes\nExecStart=/bin/pam\n",
        ),
        (
            "wanter.service",
            "[Unit]\nWants=pam.service\n[Service]\nExecStart=/bin/w\n",
        ),
        (
            "needer.service",
            "[Unit]\nRequires=pam.service\nAfter=pam.service\n[Service]\nExecStart=/bin/n\n",
        ),
    ]);
    m.request("wanter.service", JobKind::Start).unwrap();
    assert_eq!(spawned_units(&k), ["wanter.service"]);
    let pam = m.unit("pam.service").unwrap();
    assert_eq!(
        (pam.active, pam.job.is_none()),
        (ActiveState::Inactive, true)
    );
    m.request("needer.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("pam.service").unwrap().active, ActiveState::Failed);
    assert_eq!(
        m.unit("needer.service").unwrap().active,
        ActiveState::Failed
    );
    assert_eq!(spawned_units(&k), ["wanter.service"]);
}

#[test]
fn files_a_unit_holds_open_or_mapped_on_a_tmpfs_are_found() {
    use std::os::fd::AsRawFd;
    let (m, kernel, dir) = manager(&[("db.service", "[Service]\nExecStart=/bin/true\n")]);
    // This test process stands in for the unit's.
    kernel
        .0
        .lock()
        .unwrap()
        .running
        .insert("db.service".into(), vec![std::process::id() as i32]);
    let shm = dir.path.join("shm");
    std::fs::create_dir_all(&shm).unwrap();
    std::fs::write(shm.join("not-held"), "x").unwrap();
    std::fs::write(shm.join("open.lock"), "1").unwrap();
    let _open = std::fs::File::open(shm.join("open.lock")).unwrap();
    std::fs::write(shm.join("PostgreSQL.1"), vec![7u8; 4096]).unwrap();
    let mapped_file = std::fs::File::open(shm.join("PostgreSQL.1")).unwrap();
    // SAFETY: a fresh shared read-only mapping of a 4096-byte file this
    // test owns; nothing reads through it, and it is unmapped below.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            mapped_file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(mapped, libc::MAP_FAILED);
    drop(mapped_file);
    let [held] = m.held_files("db.service", [shm.as_path()]);
    // SAFETY: the mapping made above, of that length, used by nothing.
    unsafe { libc::munmap(mapped, 4096) };
    assert_eq!(held, ["PostgreSQL.1", "open.lock"]);
}

/// Units started together are ordered by After= among themselves, even
/// when the list names the later one first (the early reruns of a live
/// upgrade: ifupdown-pre.service before systemd-udev-trigger.service).
#[test]
fn starts_requested_together_wait_for_what_they_are_ordered_after() {
    let service = "[Service]\nType=oneshot\nExecStart=/bin/true\n";
    let first = format!("[Unit]\nDefaultDependencies=no\n{service}");
    let later = format!("[Unit]\nDefaultDependencies=no\nAfter=trigger.service\n{service}");
    let (mut m, k, _dir) = manager(&[("pre.service", &later), ("trigger.service", &first)]);
    let jobs = m.request_starts(&["pre.service".into(), "trigger.service".into()]);
    assert!(jobs.iter().all(Result::is_ok));
    assert_eq!(spawned_units(&k), ["trigger.service"]);
    exit_last_spawned(&mut m, &k);
    m.dispatch();
    assert_eq!(spawned_units(&k), ["trigger.service", "pre.service"]);
}

/// A start ordered after a unit being carried across a live upgrade waits
/// for it to come back (user-runtime-dir@ after dbus-daemon), and a rerun
/// unit ordered so runs beside the restores, never in front of them.
#[test]
fn what_is_ordered_after_a_carried_unit_waits_for_its_restore() {
    let (mut m, k, _dir) = manager(&[
        ("bus.service", "[Service]\nExecStart=/bin/bus\n"),
        (
            "dir.service",
            "[Unit]\nDefaultDependencies=no\nAfter=bus.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
        ),
    ]);
    m.request("bus.service", JobKind::Start).unwrap();
    m.request("dir.service", JobKind::Start).unwrap();
    exit_last_spawned(&mut m, &k);
    let plan = m.upgrade_plan();
    assert_eq!(plan.rerun, ["dir.service"]);
    assert_eq!(plan.rerun_beside_restores, ["dir.service"]);
    m.state.units.get_mut("bus.service").unwrap().parked = true;
    m.state.units.get_mut("dir.service").unwrap().active = ActiveState::Inactive;
    let jobs = m.request_starts(&["dir.service".into()]);
    assert!(jobs.iter().all(Result::is_ok));
    starts_once_unparked(&mut m, &k, "bus.service", "dir.service");
}

/// `waiting`'s queued start runs only once `parked` is restored.
fn starts_once_unparked(m: &mut Manager, k: &FakeKernel, parked: &str, waiting: &str) {
    let before = spawned_units(k).len();
    m.dispatch();
    assert_eq!(
        spawned_units(k).len(),
        before,
        "{waiting} waits for {parked}"
    );
    m.unpark(parked, 4242, Vec::new());
    m.dispatch();
    assert_eq!(spawned_units(k).last().map(String::as_str), Some(waiting));
}

/// In a new kernel a unit the upgrade restarts (logind) starts only once
/// no unit is parked, even when a D-Bus activation asks for it earlier:
/// it reads back sessions whose processes are being restored.
#[test]
fn a_restarted_unit_waits_for_every_restore() {
    let (mut m, k, _dir) = manager(&[
        ("ssh.service", "[Service]\nExecStart=/bin/ssh\n"),
        ("logind.service", "[Service]\nExecStart=/bin/logind\n"),
    ]);
    m.request("ssh.service", JobKind::Start).unwrap();
    m.state.units.get_mut("ssh.service").unwrap().parked = true;
    m.state.restarted_after_restores = vec!["logind.service".into()];
    m.enqueue("logind.service", JobKind::Start).unwrap();
    starts_once_unparked(&mut m, &k, "ssh.service", "logind.service");
}

/// The early layer's bookkeeping in relive's built-in table (utmp here)
/// reruns beside the restores, and the plan says why.
#[test]
fn early_bookkeeping_reruns_beside_the_restores() {
    let oneshot = "[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n";
    let (mut m, k, _dir) = manager(&[
        ("systemd-update-utmp.service", oneshot),
        ("early.service", oneshot),
    ]);
    for unit in ["systemd-update-utmp.service", "early.service"] {
        m.request(unit, JobKind::Start).unwrap();
        exit_last_spawned(&mut m, &k);
    }
    let plan = m.upgrade_plan();
    assert_eq!(plan.rerun, ["early.service", "systemd-update-utmp.service"]);
    assert_eq!(plan.rerun_beside_restores, ["systemd-update-utmp.service"]);
    let why = plan.why_of("systemd-update-utmp.service").unwrap();
    assert!(why.ends_with("beside the restores: it records the boot in utmp and wtmp, which no restored process reads first"), "{why}");
}

#[test]
fn a_restored_service_s_socket_unit_listens_on_the_sockets_it_carried() {
    use std::os::fd::{AsFd, AsRawFd};
    let (mut m, _k, _dir) = manager(&[
        ("greet.socket", "[Socket]\nListenStream=127.0.0.1:7100\n"),
        ("greet.service", "[Service]\nExecStart=/bin/greet\n"),
    ]);
    m.request("greet.socket", JobKind::Start).unwrap();
    m.request("greet.service", JobKind::Start).unwrap();
    assert_eq!(m.unit("greet.socket").unwrap().sub, SubState::Running);
    let plan = m.upgrade_plan();
    let why = plan.why_of("greet.service").unwrap_or_default();
    assert!(
        why.contains("the sockets of greet.socket cross with it"),
        "{why}"
    );
    // In the new kernel the socket unit is active, its sockets in the
    // restored service only; here the restored process is this one.
    m.rt.listeners.drop_unit("greet.socket");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let carried = relive_api::report::CarriedListener {
        socket_unit: "greet.socket".into(),
        index: 0,
        fd: listener.as_raw_fd(),
    };
    m.adopt_listeners("greet.service", std::process::id() as i32, &[carried]);
    let inode = |fd: std::os::fd::BorrowedFd<'_>| nix::sys::stat::fstat(fd).unwrap().st_ino;
    let fds = m.rt.listeners.fds_of("greet.socket");
    assert_eq!(fds.len(), 1);
    assert_eq!(
        inode(fds[0].as_fd()),
        inode(listener.as_fd()),
        "the same socket"
    );
    let u = m.unit("greet.socket").unwrap();
    assert_eq!((u.active, u.sub), (ActiveState::Active, SubState::Running));
    // A service whose restore failed starts afresh: its socket unit,
    // without its sockets, listens anew first.
    m.rt.listeners.drop_unit("greet.socket");
    m.forget_parked("greet.service", "its restore failed");
    assert_eq!(m.rt.listeners.fds_of("greet.socket").len(), 1);
    let u = m.unit("greet.socket").unwrap();
    assert_eq!(
        (u.active, u.sub),
        (ActiveState::Active, SubState::Listening)
    );
}
