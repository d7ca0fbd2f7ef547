//! relive: the init system. Runs as PID 1 of a machine (started by the
//! kernel), of a PID namespace (the test sandbox), or as a plain process.

use clap::Parser;
use relive::event_loop::{EventLoop, LoopExit};
use relive::final_stage;
use relive::generators::Generators;
use relive::manager::notify::NotifySocket;
use relive::manager::state::{JobKind, ManagerState};
use relive::manager::Manager;
use relive::upgrade::Upgrades;
use relive_api::names::DEFAULT_SOCKET;
use relive_api::plan::StoreWanted;
use relive_api::report::EarlyWork;
use relive_config::{Config, DEFAULT_CONFIG_PATH};
use relive_store::{handover, memory, KexecHandover, Store};
use relive_sys::cgroup::CgroupFs;
use relive_sys::machine::{self, Scope};
use relive_sys::{mounts, RealKernel};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where services send sd_notify messages.
const DEFAULT_NOTIFY_SOCKET: &str = "/run/relive/notify";

#[derive(Parser, Debug)]
#[command(
    name = "relive",
    version = relive_api::VERSION,
    about = "An init system built for live kernel upgrades"
)]
struct Args {
    /// Read units from DIR instead of the systemd search path (repeatable;
    /// the first has the highest priority).
    #[arg(long = "units-dir", value_name = "DIR")]
    units_dirs: Vec<PathBuf>,
    /// The control socket relivectl talks to.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// The sd_notify socket given to services as NOTIFY_SOCKET.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_NOTIFY_SOCKET)]
    notify_socket: PathBuf,
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The unit to start instead of the default target.
    #[arg(long, value_name = "UNIT")]
    target: Option<String>,
    /// error, warn, info, debug or trace (overrides the config file).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Internal: resume from the state a previous relive handed over in
    /// this descriptor (set by `relivectl daemon-reexec`).
    #[arg(long, value_name = "FD", hide = true)]
    deserialize: Option<i32>,
    /// Internal: only unmount and end the machine (poweroff, reboot or
    /// halt); the shutdown execs a copy of relive with it when relive's
    /// own binary was deleted.
    #[arg(long = "final-stage", value_name = "KIND", hide = true)]
    final_stage: Option<String>,
}

fn main() -> ExitCode {
    // /init of relive's minimal initrd: mount the root, exec relive there.
    if relive::initrd_stage::wanted() {
        return relive::initrd_stage::run();
    }
    // In a new kernel, the end of the upgrade's floor: relive runs.
    let started_usec = relive::manager::clock::wall_usec();
    let scope = machine::detect_scope();
    // Files relive makes are never group- or world-writable by accident;
    // services get their own UMask= when they start.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if scope == Scope::Namespace {
        // The kernel never OOM-kills a machine's init; the init of a PID
        // namespace is an ordinary process to it: make it the last choice.
        let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    }
    // The kernel passes unknown command-line words to init: as PID 1 they
    // are reported and ignored, never fatal.
    let (args, arg_error) = match Args::try_parse() {
        Ok(args) => (args, None),
        Err(e) if scope == Scope::Process => e.exit(),
        Err(e) => (Args::parse_from(["relive"]), Some(e.to_string())),
    };
    if scope == Scope::Machine {
        if let Some(kind) = args.final_stage.as_deref().and_then(final_stage::parse) {
            relive::logging::init("info", true);
            let e = machine::end_machine(kind);
            tracing::error!("reboot(2) failed: {e}");
            relive::logging::flush();
            last_resort();
        }
    }
    let resuming = args.deserialize.is_some();
    let mount_errors = if scope == Scope::Process || resuming {
        Vec::new()
    } else {
        if scope == Scope::Namespace {
            // A /run of its own: what relive and its services put there
            // (/run/systemd/private above all) never reaches the host's.
            mounts::mount_private_run();
        }
        mounts::mount_api_filesystems()
    };
    let (config, config_error) = match Config::load(&args.config) {
        Ok(c) => (c, None),
        Err(e) => (Config::default(), Some(e)),
    };
    let known_level =
        |l: &String| ["error", "warn", "info", "debug", "trace"].contains(&l.as_str());
    let bad_level = args.log_level.clone().filter(|l| !known_level(l));
    let level = args
        .log_level
        .clone()
        .filter(known_level)
        .unwrap_or_else(|| config.manager.log_level.clone());
    relive::logging::init(&level, scope == Scope::Machine);
    relive::logging::install_panic_hook();
    tracing::info!(
        "relive {} starting as {:?}",
        env!("CARGO_PKG_VERSION"),
        scope
    );
    if let Some(e) = arg_error {
        tracing::warn!(
            "ignoring the command line: {}",
            e.lines().next().unwrap_or_default()
        );
    }
    for (target, e) in mount_errors {
        tracing::error!("cannot mount {target}: {e}");
    }
    if let Some(l) = bad_level {
        tracing::warn!(
            "--log-level {l:?} is not one of error, warn, info, debug, trace; using {level}"
        );
    }
    if let Some(e) = config_error {
        tracing::error!("{e}; using the defaults");
    }
    // Read once: the probe, the memory store and the handover all go by it.
    let booted_machine = scope == Scope::Machine && !resuming;
    let cmdline = if booted_machine {
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    } else {
        String::new()
    };
    // A region reserved for the memory store: its device must exist for an
    // upgrade's preflight, and for this boot's resume.
    let memory_region = booted_machine
        && config.upgrade.store != StoreWanted::Disk
        && !memory::reservations(&cmdline).is_empty();
    let mut ahead = relive_restore::Ahead::default();
    let upgraded = handover::marker(&cmdline).is_some();
    if upgraded {
        ahead.load_at_start = relive_sys::load::LoadSample::now();
        ahead.kernel_boot = relive_sys::kernel_boot::measure();
        if let Some(boot) = &ahead.kernel_boot {
            tracing::info!("the new kernel's boot: {boot}");
        }
        // Until the first restore: nothing else turns accounting on
        // before the services' layer starts.
        let accounting = std::path::Path::new(relive_restore::EXITS_FILE);
        ahead.exits = relive_sys::exits::Accounting::start(accounting)
            .inspect_err(|e| tracing::info!("{e}"))
            .ok();
        // The handover's reading is on the first restore's path, and
        // CRIU's probe competes with it for the CPUs: at the probe's
        // priority until the handover is read (not longer: the services
        // this thread starts would inherit it).
        relive_restore::urgent_thread();
    }
    // The generators need only /run: they run beside what follows. After
    // a live upgrade's kexec, the units come from the handover and the
    // generators run once the most critical units are restored (or, if
    // the handover is refused, before the units load, as at any boot).
    let generated = if upgraded {
        GeneratorsRun::later()
    } else {
        GeneratorsRun::start(&config, scope)
    };
    // After a live upgrade's kexec, CRIU's probe of this kernel starts
    // now, beside the store's attaching, the handover's reading and the
    // units' loading: the first restore waits for it.
    if upgraded {
        ahead.probe = relive_restore::ProbeAhead::start(&config.upgrade.criu);
    }
    if memory_region {
        if let Err(e) = memory::attach(&config.upgrade.memory_device) {
            tracing::error!("memory store: {e}; live upgrades use the disk store");
        }
    }
    // After a live upgrade's kexec: the previous kernel's handover.
    let kexec_handover = if booted_machine {
        kexec_handover(&config, &cmdline)
    } else {
        None
    };
    if kexec_handover.is_none() {
        // No resume to account for: accounting off now.
        ahead.exits = None;
    }
    if kexec_handover.is_some() {
        ahead
            .steps
            .push((EarlyWork::Handover, relive::manager::clock::wall_usec()));
    }
    if upgraded {
        relive_restore::ordinary_thread();
    }
    // The images' check starts now, at nice 0, beside what follows.
    if let Some((store, handover, _)) = &kexec_handover {
        ahead.checks = relive_restore::verifier::check_ahead(store, handover);
    }
    if scope != Scope::Process && !resuming {
        // Until the preserved services are back, new processes take PIDs
        // below the floor, so that none takes a PID a restore needs.
        let floor = if kexec_handover.is_some() {
            config.pids.floor / 2
        } else {
            config.pids.floor
        };
        prepare_system(&config, scope, floor);
    }
    let resumed = Resumed {
        handover: kexec_handover,
        started_usec,
        ahead,
        generated,
    };
    match run(args, config, scope, resumed) {
        Ok(()) => {
            relive::logging::flush();
            ExitCode::SUCCESS
        }
        Err(e) if scope == Scope::Machine => {
            tracing::error!("{e:#}");
            last_resort()
        }
        Err(e) => {
            tracing::error!("{e:#}");
            relive::logging::flush();
            ExitCode::FAILURE
        }
    }
}

/// Hostname, PID space, ctrl-alt-del: what only an init does.
fn prepare_system(config: &Config, scope: Scope, pid_floor: u32) {
    match machine::set_hostname_from_file(std::path::Path::new("/etc/hostname")) {
        Ok(Some(name)) => tracing::info!("hostname set to {name}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot set the hostname from /etc/hostname: {e}"),
    }
    let sysctls = relive_sys::pid_space::PidSysctls::default();
    // pid_max is not per namespace: in the sandbox only our own counter moves.
    let pid_max = if scope == Scope::Machine {
        config.pids.pid_max
    } else {
        0
    };
    match sysctls.prepare(pid_max, pid_floor) {
        Ok(p) => tracing::info!(
            "PID space: pid_max {}, services start above PID {}",
            p.pid_max,
            p.last_pid_after
        ),
        Err(e) => tracing::warn!("cannot prepare the PID space: {e}"),
    }
    if scope == Scope::Machine {
        match machine::ensure_machine_id(std::path::Path::new("/etc/machine-id")) {
            Ok(Some(id)) => {
                tracing::info!("machine ID initialized: {id}");
                // The image boots for the first time: remembered for
                // ConditionFirstBoot=, at systemd's place.
                let _ = std::fs::create_dir_all("/run/systemd");
                let _ = std::fs::write(relive::manager::FIRST_BOOT_FLAG, "");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot initialize /etc/machine-id: {e}"),
        }
        // ctrl-alt-del sends SIGINT to PID 1 instead of rebooting at once.
        let _ = nix::sys::reboot::set_cad_enabled(false);
    }
}

/// The store named by `relive.handover=` on the kernel command line, if
/// it holds a valid handover. A store that does not is wiped: its images
/// are never used.
fn kexec_handover(config: &Config, cmdline: &str) -> Option<(Store, KexecHandover, ManagerState)> {
    let path = handover::marker(cmdline)?;
    let device = memory::device_of(cmdline);
    if let Err(e) = handover::check_marker(&path, device.as_deref(), &config.upgrade.store_dir) {
        // Not relive's: not read, not mounted, not wiped.
        tracing::error!("{e}; booting afresh");
        return None;
    }
    let attaching = std::time::Instant::now();
    if let Some(device) = device {
        // The memory store: the same region, as the previous kernel left it.
        if let Err(e) = relive_store::carrier::for_device(Some(&device)).take_back() {
            tracing::error!("live upgrade handover in memory unreadable: {e}; booting afresh");
            return None;
        }
    }
    let store = Store::at(&path);
    let attached_ms = attaching.elapsed().as_secs_f64() * 1000.0;
    let reading = std::time::Instant::now();
    let read = store.read_handover().and_then(|handover| {
        let state = relive::upgrade::state_for_new_kernel(&handover).map_err(|source| {
            relive_store::StoreError::Decode {
                path: store.root.join("state.bin"),
                source,
            }
        })?;
        Ok((handover, state))
    });
    match read {
        Ok((handover, state)) => {
            let bytes = std::fs::metadata(store.root.join("state.bin")).map_or(0, |m| m.len());
            tracing::info!(
                "live upgrade from {}: resuming {} preserved units (store attached in {attached_ms:.0} ms, handover of {bytes} bytes read in {:.0} ms)",
                handover.kernel_from,
                handover.units.len(),
                reading.elapsed().as_secs_f64() * 1000.0
            );
            Some((store, handover, state))
        }
        Err(e) => {
            tracing::error!(
                "live upgrade handover in {} refused: {e}; booting afresh",
                path.display()
            );
            relive::upgrade::record_interrupted(
                &store,
                &format!("the new kernel refused its handover ({e})"),
            );
            let _ = store.wipe();
            None
        }
    }
}

/// A live upgrade's handover found in this new kernel, if any, and what
/// relive did in it so far.
struct Resumed {
    handover: Option<(Store, KexecHandover, ManagerState)>,
    /// When relive started.
    started_usec: u64,
    ahead: relive_restore::Ahead,
    generated: GeneratorsRun,
}

/// The generators, run on a thread of their own from relive's start (a
/// re-exec runs them again, as systemd's does). At boot relive reaps
/// each itself: no other child is waited for before the loop runs.
struct GeneratorsRun(Option<std::thread::JoinHandle<Option<Generators>>>);

impl GeneratorsRun {
    fn start(config: &Config, scope: Scope) -> GeneratorsRun {
        let generators = relive::manager::generators_for(config, scope);
        let thread = std::thread::Builder::new()
            .name("relive-generators".into())
            .spawn(move || run_generators(generators));
        match thread {
            Ok(thread) => GeneratorsRun(Some(thread)),
            Err(e) => {
                tracing::warn!("cannot start the generators' thread ({e}): they run later");
                GeneratorsRun(None)
            }
        }
    }

    /// The generators run when [`GeneratorsRun::finish`] is called.
    fn later() -> GeneratorsRun {
        GeneratorsRun(None)
    }

    /// Waits for the generators (runs them, without a thread); returns
    /// them, for the unit search path.
    fn finish(self, config: &Config, scope: Scope) -> Option<Generators> {
        match self.0.map(|thread| thread.join()) {
            Some(Ok(ran)) => ran,
            _ => run_generators(relive::manager::generators_for(config, scope)),
        }
    }
}

/// After a live upgrade's kexec: the generators, on a thread of their own
/// at a low priority (their units are needed only once the restores are
/// done), spawned and reaped by the loop, once `hold` closes (the most
/// critical units restored: before that, their CPU time and the loop's
/// forks of PID 1 slowed the steps before the first restore); then the
/// loader reads their output. The receiver closes when that is done.
fn generators_beside_restores(
    generators: Generators,
    hold: async_channel::Receiver<()>,
    commands: relive::event_loop::CommandSender,
) -> async_channel::Receiver<()> {
    let (done, pending) = async_channel::bounded::<()>(1);
    let run = move || {
        let _ = async_io::block_on(hold.recv());
        let mut spawner = relive::generators::LoopSpawner::new(commands.clone());
        generators.run_at(&mut spawner, Some(relive::generators::BESIDE_RESTORES_NICE));
        let _ = async_io::block_on(commands.call(|m| m.refresh_loader()));
        drop(done);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("relive-generators".into())
        .spawn(run)
    {
        tracing::error!(
            "cannot start the generators' thread ({e}): they run at the next daemon-reload"
        );
    }
    pending
}

/// Runs `generators`, if any; returns them.
fn run_generators(generators: Option<Generators>) -> Option<Generators> {
    if let Some(g) = &generators {
        g.run(&mut relive::generators::BootSpawner);
    }
    generators
}

fn run(args: Args, config: Config, scope: Scope, resumed: Resumed) -> anyhow::Result<()> {
    let Resumed {
        handover: kexec_handover,
        started_usec,
        mut ahead,
        generated,
    } = resumed;
    let base_dirs: Vec<PathBuf> = if args.units_dirs.is_empty() {
        relive_units::SYSTEM_UNIT_PATH
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        args.units_dirs.clone()
    };
    // Generators write units before any is loaded; after a kexec the
    // units come from the handover, and they run beside the restores.
    let generators = if kexec_handover.is_some() {
        relive::manager::generators_for(&config, scope)
    } else {
        generated.finish(&config, scope)
    };
    let unit_dirs =
        relive_units::search_path(&base_dirs, generators.as_ref().map(|g| g.output.as_path()));
    let kernel = RealKernel {
        cgroups: CgroupFs::new("/sys/fs/cgroup"),
    };
    let mut manager = Manager::new(
        config,
        unit_dirs,
        Box::new(kernel),
        args.notify_socket.clone(),
    );
    manager.rt.scope = scope;
    let handover = args
        .deserialize
        .and_then(|fd| match relive::reexec::read_handover(fd) {
            Ok(h) => Some(h),
            Err(e) => {
                // The services still run; what relive knew of them is
                // lost. They are adopted from their cgroups below, never
                // started a second time.
                tracing::error!("{e}; adopting the running services from their cgroups");
                None
            }
        });
    let reexec_lost = args.deserialize.is_some() && handover.is_none();
    let (notify, inherited_control) = match &handover {
        Some(h) => {
            manager.state = h.state.clone();
            manager.rt.next_job_id = h.next_job_id;
            for (fd, unit) in &h.outputs {
                // SAFETY: the previous relive passed these open descriptors on to us alone.
                manager
                    .rt
                    .outputs
                    .adopt(unsafe { relive::reexec::adopt_fd(*fd) }, unit);
            }
            for (fd, unit) in &h.listeners {
                // SAFETY: as above.
                manager
                    .rt
                    .listeners
                    .adopt(unsafe { relive::reexec::adopt_fd(*fd) }, unit);
            }
            for (requests, ioctl, unit, waiting) in &h.automounts {
                // SAFETY: as above.
                let (requests, ioctl) = unsafe {
                    (
                        relive::reexec::adopt_fd(*requests),
                        relive::reexec::adopt_fd(*ioctl),
                    )
                };
                manager
                    .rt
                    .automounts
                    .adopt(requests, ioctl, unit, waiting.clone());
            }
            for (fd, unit, name) in &h.fd_store {
                // SAFETY: as above.
                let fd = unsafe { relive::reexec::adopt_fd(*fd) };
                manager
                    .rt
                    .fd_store
                    .entry(unit.clone())
                    .or_default()
                    .push((name.clone(), fd));
            }
            // SAFETY: as above.
            let notify = NotifySocket::from_fd(unsafe { relive::reexec::adopt_fd(h.notify_fd) });
            // SAFETY: as above.
            let control = h
                .control_fd
                .map(|fd| unsafe { relive::reexec::adopt_fd(fd) });
            let lag = relive::manager::clock::wall_usec().saturating_sub(h.written_at_usec);
            tracing::info!(
                "resumed {} units from the previous relive ({} µs after it handed over)",
                h.state.units.len(),
                lag
            );
            (notify, control)
        }
        None => match NotifySocket::bind(&args.notify_socket) {
            Ok(notify) => (notify, None),
            Err(e) => {
                // A full or read-only /run must not stop the boot: services
                // run without sd_notify instead.
                tracing::error!(
                    "cannot bind the notify socket {}: {e}; services run without sd_notify (Type=notify ones as Type=simple)",
                    args.notify_socket.display()
                );
                let unbound = NotifySocket::unbound()
                    .map_err(|e| anyhow::anyhow!("cannot make a notify socket at all: {e}"))?;
                (unbound, None)
            }
        },
    };
    manager.rt.notify_available = notify.is_bound();
    let mut event_loop = EventLoop::new(manager, notify)
        .map_err(|e| anyhow::anyhow!("cannot set up the event loop: {e}"))?;
    let served = match inherited_control {
        Some(fd) => relive::dbus::serve_listener(
            std::os::unix::net::UnixListener::from(fd),
            event_loop.sender(),
        ),
        None => relive::dbus::serve(&args.control_socket, event_loop.sender()),
    };
    let control_fd = match served {
        Ok(fd) => Some(fd),
        Err(e) => {
            // Without the API the system still runs; it just cannot be steered.
            tracing::error!(
                "cannot serve the control socket {}: {e}",
                args.control_socket.display()
            );
            None
        }
    };
    if scope != Scope::Process {
        // systemctl, logind and the rest find a systemd-compatible manager.
        if let Err(e) = relive::systemd1::serve_private(
            std::path::Path::new("/run/systemd"),
            event_loop.sender(),
        ) {
            tracing::error!(
                "cannot serve {}: {e}; systemctl cannot reach relive",
                relive::systemd1::PRIVATE_SOCKET
            );
        }
    }
    match relive::system_bus::SystemBus::spawn(event_loop.sender()) {
        Ok(bus) => {
            // After a re-exec the bus may be running already.
            let dbus_up = event_loop
                .manager
                .unit(relive_units::DBUS_SERVICE)
                .is_some_and(|u| {
                    // Parked: restored by the live upgrade, which says so.
                    u.active == relive::manager::state::ActiveState::Active && !u.parked
                });
            if dbus_up {
                bus.bus_started();
            }
            event_loop.manager.rt.system_bus = Some(bus);
        }
        Err(e) => tracing::error!("cannot start the system bus thread: {e}"),
    }
    if handover.is_some() {
        // Children that exited during the exec sent SIGCHLD to nobody.
        event_loop.reap_children();
        event_loop.manager.execs_lost_in_reexec();
        event_loop.manager.dispatch();
    } else if let Some((store, kexec, state)) = kexec_handover {
        event_loop.manager.state = state;
        // A new kernel: its clock starts again, and so does OnStartupSec=.
        event_loop.manager.state.startup_mono = Some(relive::manager::clock::now());
        ahead
            .steps
            .push((EarlyWork::Units, relive::manager::clock::wall_usec()));
        if let Some(generators) = generators {
            let (held, hold) = async_channel::bounded::<()>(1);
            event_loop.manager.rt.generators_held = Some(held);
            event_loop.manager.rt.generators_pending = Some(generators_beside_restores(
                generators,
                hold,
                event_loop.sender(),
            ));
        }
        relive::upgrade::resume_after_kexec(
            &event_loop.sender(),
            &event_loop.manager.config.upgrade,
            store,
            kexec,
            (started_usec, ahead),
        )
        .map_err(|e| anyhow::anyhow!("cannot start the resume thread: {e}"))?;
    } else {
        event_loop.manager.state.startup_mono = Some(relive::manager::clock::now());
        if reexec_lost {
            let adopted = event_loop.manager.adopt_survivors();
            tracing::warn!(
                "{} running services adopted after the failed re-exec",
                adopted.len()
            );
        }
        let target = args
            .target
            .clone()
            .unwrap_or_else(|| event_loop.manager.default_target());
        // Remembered, so that after a live upgrade the same target comes back.
        event_loop.manager.state.default_target = target.clone();
        if scope == Scope::Machine {
            let store_dir = &event_loop.manager.config.upgrade.store_dir;
            relive::upgrade::record_interrupted(
                &Store::at(store_dir),
                "the machine booted without resuming it (a power cut or a crash before the kexec, or a new kernel that did not boot)",
            );
            relive_snapshot::warm::wipe_leftover(store_dir);
        }
        event_loop.manager.start_builtin_slices();
        tracing::info!("starting {target}");
        if let Err(e) = event_loop.manager.request(&target, JobKind::Start) {
            tracing::error!("cannot start {target}: {e}");
        }
    }
    let upgrades = Upgrades {
        commands: event_loop.sender(),
        config: event_loop.manager.config.upgrade.clone(),
        scope,
    };
    if scope == Scope::Machine && upgrades.config.warm_snapshot_interval_sec > 0 {
        if let Err(e) = upgrades.keep_warm() {
            tracing::error!("cannot start the warm snapshot thread: {e}");
        }
    }
    let kind = loop {
        match event_loop.run() {
            LoopExit::Shutdown(kind) => break kind,
            LoopExit::Reexec => {
                // Let the caller's answer go out before the exec.
                std::thread::sleep(std::time::Duration::from_millis(100));
                let binary = relive::reexec::own_binary();
                let argv: Vec<String> = std::env::args().skip(1).collect();
                relive::logging::flush();
                let e = relive::reexec::exec_self(&mut event_loop, control_fd, &binary, &argv);
                tracing::error!("re-exec of {binary} failed: {e}; carrying on");
            }
        }
    };
    // Let the API threads send their last answers (the poweroff call's own).
    std::thread::sleep(std::time::Duration::from_millis(100));
    if scope != Scope::Process {
        // kill(-1) reaches every process of our PID namespace: only an init
        // may do that (as a plain process it would hit the whole host).
        tracing::info!("all units stopped; ending remaining processes");
        event_loop.kill_remaining();
    }
    match scope {
        Scope::Machine => {
            tracing::info!("{}", kind.verb());
            if final_stage::own_binary_deleted() {
                tracing::info!(
                    "relive's own binary was deleted: ending the machine from a copy in memory, so that / can be remounted read-only"
                );
                relive::logging::flush();
                let e = final_stage::exec_copy(kind);
                tracing::error!("cannot exec the final stage: {e}; ending the machine from here");
            }
            relive::logging::flush();
            let e = machine::end_machine(kind);
            Err(anyhow::anyhow!("reboot(2) failed: {e}"))
        }
        _ => {
            tracing::info!("{}: exiting", kind.verb());
            Ok(())
        }
    }
}

/// PID 1 of a machine must not exit: keep reaping orphans forever.
fn last_resort() -> ! {
    tracing::error!("relive cannot continue normally; reaping orphans until the machine is reset");
    loop {
        let _ = nix::sys::wait::wait();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
