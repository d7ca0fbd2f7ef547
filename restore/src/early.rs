//! The new kernel made ready for the restores, and timed: CRIU's probe of
//! the kernel, the firewall, the network locks and the old kernel's
//! addresses and routes (or the network's units), the early rerun units
//! and the mounts restored namespaces bind ([`prepare_new_kernel`]); what
//! each took goes into the report's `before_restores`.

use crate::{netlock, netstate, Seams};
use relive_api::report::{EarlyStep, EarlyWork, UnitRecord};
use relive_host::UnitHost;
use relive_store::handover::KexecHandover;
use relive_store::Store;
use relive_sys::wall_usec;

/// The nice value of the resume's critical path in the new kernel (CRIU's
/// probe, the network locks and addresses, the most critical units'
/// restores, and the processes they spawn): under emulation the rerun
/// units and udev's coldplug took the CPUs from it.
pub(crate) const URGENT_NICE: i32 = -10;

/// Runs the calling thread at [`URGENT_NICE`], until
/// [`ordinary_thread`].
pub fn urgent_thread() {
    urgent(URGENT_NICE);
}

/// Runs the calling thread at the ordinary priority (nice 0) again.
pub fn ordinary_thread() {
    urgent(0);
}

/// Runs the rest of the calling thread at [`URGENT_NICE`] (or at `nice`).
pub(crate) fn urgent(nice: i32) {
    if let Err(e) = relive_sys::sched::set_thread_nice(nice) {
        tracing::warn!("cannot set the resume's priority to nice {nice}: {e}");
    }
}

/// The kernel modules CRIU's probe needs, loaded by one modprobe on the
/// probe's thread before it runs: the probe otherwise has the kernel load
/// them one at a time, a modprobe each (its sock_diag families, tun and
/// veth); the network locks want nf_tables. A module built in, or
/// missing, is skipped.
const MODULES_AHEAD: &[&str] = &[
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "unix_diag",
    "netlink_diag",
    "af_packet_diag",
    "tun",
    "veth",
    "nf_tables",
];

/// Loads `modules` with one modprobe; whether it succeeded (logged if
/// not: each step loads what it misses, as it would without this).
fn load_modules(modules: &[&str]) -> bool {
    let status = std::process::Command::new("/usr/sbin/modprobe")
        .args(["-q", "-a"])
        .args(modules)
        .status();
    match status {
        Ok(s) if s.success() => true,
        Ok(s) => {
            tracing::info!("modprobe -a {}: {s}", modules.join(" "));
            false
        }
        Err(e) => {
            tracing::warn!("cannot run modprobe: {e}");
            false
        }
    }
}

/// Where the processes that end before the first restore are recorded
/// ([`Ahead::exits`]): on /run, a tmpfs, removed once read.
pub const EXITS_FILE: &str = "/run/relive-exits.acct";

/// What relive did in the new kernel before the resume began: CRIU's
/// probe, started as soon as relive runs (it needs only /run and lo, and
/// under emulation it takes seconds that the handover's reading and the
/// units' loading would otherwise add to every stoppage), and the steps
/// that ran meanwhile, each with when it was done (wall clock, µs).
#[derive(Debug, Default)]
pub struct Ahead {
    pub probe: Option<ProbeAhead>,
    pub steps: Vec<(EarlyWork, u64)>,
    /// The images' check, started as soon as the handover was read
    /// ([`crate::verifier::check_ahead`]).
    pub checks: Option<crate::verifier::Verifier>,
    /// The machine's CPU and disk figures when relive started, for the
    /// log's account of the time before the first restore.
    pub load_at_start: Option<relive_sys::load::LoadSample>,
    /// Process accounting from relive's start, for the log's account of
    /// the processes that ended before the first restore.
    pub exits: Option<relive_sys::exits::Accounting>,
    /// Where the new kernel's boot went before relive started.
    pub kernel_boot: Option<relive_api::report::KernelBoot>,
}

/// CRIU's probe of the new kernel on a thread of its own.
#[derive(Debug)]
pub struct ProbeAhead(std::thread::JoinHandle<Vec<Timed>>);

impl ProbeAhead {
    /// Starts the probe with `criu`; None (logged) when no thread can be
    /// made: the resume then probes for itself.
    pub fn start(criu: &std::path::Path) -> Option<ProbeAhead> {
        let restorer = crate::revive::CriuRestorer::new(criu);
        std::thread::Builder::new()
            .name("relive-probe".into())
            .spawn(move || probe_timed(&restorer))
            .inspect_err(|e| tracing::warn!("cannot start CRIU's probe ({e})"))
            .ok()
            .map(ProbeAhead)
    }

    /// The modules' loading and the probe, timed; None if it panicked.
    fn wait(self) -> Option<Vec<Timed>> {
        let joined = self.0.join();
        if joined.is_err() {
            tracing::error!("CRIU's probe of the new kernel panicked");
        }
        joined.ok()
    }
}

/// The modules CRIU's probe needs ([`MODULES_AHEAD`]), then the probe,
/// at the critical path's priority: each step timed.
fn probe_timed(restorer: &dyn crate::revive::Restorer) -> Vec<Timed> {
    urgent(URGENT_NICE);
    let loaded = load_modules(MODULES_AHEAD);
    let modules = (EarlyWork::Modules, wall_usec(), loaded);
    let passed = restorer.probe_kernel();
    vec![modules, (EarlyWork::CriuProbe, wall_usec(), passed)]
}

/// What the resume did before its first restore, and when.
pub(crate) struct Early {
    pub(crate) resumed_usec: u64,
    pub(crate) steps: Vec<EarlyStep>,
    pub(crate) restores_started_usec: u64,
    /// The services' one clock in the new kernel, if it could be made.
    pub(crate) clock_offsets: Option<relive_api::report::ClockOffsets>,
    /// The network's units, when relive put the addresses and routes back
    /// itself: they run beside the restores instead of before them.
    pub(crate) network_units_beside: Vec<String>,
    /// The probe started ahead, taken by [`prepare_new_kernel`].
    pub(crate) probe_ahead: Option<ProbeAhead>,
    /// The images' check started ahead, taken by the resume.
    pub(crate) checks_ahead: Option<crate::verifier::Verifier>,
    /// [`Ahead::load_at_start`].
    pub(crate) load_at_start: Option<relive_sys::load::LoadSample>,
    /// [`Ahead::exits`].
    pub(crate) exits: Option<relive_sys::exits::Accounting>,
    /// [`Ahead::kernel_boot`].
    pub(crate) kernel_boot: Option<relive_api::report::KernelBoot>,
}

/// The new kernel made ready for the restores: CRIU's network locks
/// loaded again, CRIU's probe of the kernel run and the early rerun units
/// (and the mounts restored namespaces bind) started, each timed in
/// `early_steps`.
pub(crate) fn prepare_new_kernel(
    seams: Seams,
    store: &Store,
    handover: &KexecHandover,
    records: &[UnitRecord],
    early_steps: &mut Early,
) {
    let host = seams.host;
    // Together: one after another, they cost every preserved unit
    // seconds of stoppage. With them, the mounts the restored
    // namespaces bind from PID 1's (a separate /run/lock tmpfs on
    // Debian 13), whose devices the rerun udev trigger may bring.
    let mut first: Vec<String> = handover
        .plan
        .rerun
        .iter()
        .filter(|u| !handover.plan.rerun_beside_restores.contains(u))
        .cloned()
        .collect();
    for mount in mounts_needed(handover, records) {
        if !first.contains(&mount) {
            first.push(mount);
        }
    }
    let plan = &handover.plan;
    let (network_side, rest): (Vec<String>, Vec<String>) = first
        .into_iter()
        .partition(|u| plan.rerun_firewall.contains(u) || plan.rerun_network.contains(u));
    std::thread::scope(|scope| {
        // CRIU's probe of the new kernel (seconds under emulation), from
        // the start and while the rerun units run, rather than in the
        // first restore, the most critical unit's. It needs only lo.
        // Without a thread for it (a task limit), the first restore
        // probes for itself.
        // Started ahead by relive's main as a rule.
        let ahead = early_steps.probe_ahead.take();
        let probe = ahead.is_none().then(|| {
            std::thread::Builder::new()
                .name("relive-probe".into())
                .spawn_scoped(scope, || probe_timed(seams.restorer))
                .inspect_err(|e| tracing::warn!("cannot start CRIU's probe ({e})"))
        });
        // The firewall, CRIU's network locks and the network's units, in
        // that order, beside the other early units: the locks' loading
        // takes seconds (nft loads its modules into the new kernel).
        let network = || {
            urgent(URGENT_NICE);
            network_first(host, store, handover, records, &network_side)
        };
        let beside = std::thread::Builder::new()
            .name("relive-network".into())
            .spawn_scoped(scope, network)
            .inspect_err(|e| tracing::warn!("cannot start the network's thread ({e})"));
        let mut units = start_timed(host, &rest);
        let (done, deferred) = match beside.map(|thread| thread.join()) {
            Ok(Ok(done)) => done,
            Ok(Err(_)) => {
                // Its units still run, beside the restores.
                tracing::error!("the network's early steps panicked");
                (Vec::new(), network_side.clone())
            }
            Err(_) => {
                let done = network();
                urgent(0);
                done
            }
        };
        units.extend(done);
        early_steps.network_units_beside = deferred;
        let probed = match (ahead, probe) {
            (Some(ahead), _) => ahead.wait(),
            (None, Some(Ok(thread))) => thread
                .join()
                .inspect_err(|_| tracing::error!("CRIU's probe of the new kernel panicked"))
                .ok(),
            (None, _) => None,
        };
        units.extend(probed.into_iter().flatten());
        for (work, done_usec, ok) in units {
            let done_ms = done_usec.saturating_sub(early_steps.resumed_usec) as f64 / 1000.0;
            early_steps.steps.push(EarlyStep { work, done_ms, ok });
        }
        // With the steps relive's main did meanwhile, in time order.
        early_steps
            .steps
            .sort_by(|a, b| a.done_ms.total_cmp(&b.done_ms));
    });
    early_steps.restores_started_usec = wall_usec();
    if let (Some(start), Some(now)) = (
        early_steps.load_at_start.take(),
        relive_sys::load::LoadSample::now(),
    ) {
        let secs = early_steps
            .restores_started_usec
            .saturating_sub(early_steps.resumed_usec) as f64
            / 1e6;
        tracing::info!(
            "the {secs:.1} s before the first restore: {}",
            start.until(&now)
        );
        tracing::info!(
            "the CPU time before the first restore: {}",
            start.cpu_until(&now)
        );
    }
    match early_steps
        .exits
        .take()
        .map(relive_sys::exits::Accounting::stop)
    {
        Some(Ok(exits)) => tracing::info!(
            "the processes that ended before the first restore: {}",
            relive_sys::exits::summary(&exits)
        ),
        Some(Err(e)) => tracing::warn!("{e}"),
        None => {}
    }
}

/// An early step's work, when it ended (wall clock, µs) and whether it
/// went well.
type Timed = (EarlyWork, u64, bool);

/// Starts `units` together (the manager orders them by After=) and
/// times each: when it was done, or failed.
fn start_timed(host: &dyn UnitHost, units: &[String]) -> Vec<Timed> {
    if units.is_empty() {
        return Vec::new();
    }
    let started_usec = wall_usec();
    host.start_together(units)
        .into_iter()
        .map(|(name, done)| {
            if let Err(e) = &done {
                tracing::error!("{name}: rerun failed: {e}");
            }
            let done_usec = match &done {
                Ok(ms) => started_usec + (ms * 1000.0) as u64,
                Err(_) => wall_usec(),
            };
            (EarlyWork::Unit(name), done_usec, done.is_ok())
        })
        .collect()
}

/// The network's early steps, in their order: the firewall units among
/// `units` (a ruleset may flush every table), CRIU's network locks (before
/// any address is up), then the addresses and routes the old kernel had
/// (`netstate`), or where relive could not put them back, the units that
/// bring the network up. Returns the steps, and the network's units left
/// to run beside the restores.
fn network_first(
    host: &dyn UnitHost,
    store: &Store,
    handover: &KexecHandover,
    records: &[UnitRecord],
    units: &[String],
) -> (Vec<Timed>, Vec<String>) {
    let (firewall, network): (Vec<String>, Vec<String>) = units
        .iter()
        .cloned()
        .partition(|u| handover.plan.rerun_firewall.contains(u));
    let mut steps = start_timed(host, &firewall);
    let locked: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.lock_saved)
        .map(|r| (r.name.clone(), netlock::table_of(r)))
        .collect();
    let held: Vec<String> = records
        .iter()
        .filter(|r| !r.hold_table.is_empty())
        .map(|r| r.name.clone())
        .collect();
    let failed = netlock::load_all(host, store, &locked, &held);
    for (unit, e) in &failed {
        tracing::error!("{unit}: cannot restore its network lock: {e}");
    }
    steps.push((EarlyWork::NetworkLocks, wall_usec(), failed.is_empty()));
    let state = handover.network.as_ref().filter(|s| !s.links.is_empty());
    if let Some(state) = state {
        let run_network = std::path::Path::new("/run/network");
        let sys = std::path::Path::new("/sys/class/net");
        match netstate::apply(host, state, sys, run_network, &store.root) {
            Ok(()) => {
                steps.push((EarlyWork::Network, wall_usec(), true));
                return (steps, network);
            }
            Err(e) => {
                tracing::warn!("the network's addresses were not put back ({e}): the restores wait for its units");
                steps.push((EarlyWork::Network, wall_usec(), false));
            }
        }
    }
    steps.extend(start_timed(host, &network));
    (steps, Vec::new())
}

/// The mount units that were active on the old kernel and whose mount
/// point a preserved unit's own mount namespace had: CRIU binds those
/// from PID 1's mounts when it rebuilds the namespace, and fails ("Can't
/// stat mountpoint") if nothing is mounted there yet.
fn mounts_needed(handover: &KexecHandover, records: &[UnitRecord]) -> Vec<String> {
    handover
        .plan
        .mounts
        .iter()
        .filter(|(_, path)| path != "/")
        .filter(|(_, path)| {
            records
                .iter()
                .any(|r| r.mount_flags.iter().any(|(point, _)| point == path))
        })
        .map(|(unit, _)| unit.clone())
        .collect()
}
