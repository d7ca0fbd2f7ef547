//! relivectl: the command-line client of relive.
//!
//! It speaks D-Bus peer-to-peer to PID 1 on its private socket. Results go
//! to stdout (as JSON with `--json`), diagnostics to stderr as
//! `relivectl: ...`. Verbs and exit codes follow systemctl where they
//! overlap, so scripts and habits carry over.

mod cli;
mod client;
mod error;
mod fleet_upgrade;
mod fleetlock;
mod follow;
mod list;
mod metrics;
mod procfs;
mod proxy;
mod security;
mod status;
mod target;
mod time;
mod timers;
mod upgrade;
mod verdict;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use relive_api::units::UnitStatus;

use crate::cli::{Cli, Command, Global, ListUnits};
use crate::client::{Api, Client, Job, ManagerCall};
use crate::error::{render_chain, CtlError};
use crate::procfs::Proc;

/// Exit statuses. The values for status verbs are the LSB init-script ones
/// that systemctl also uses, so scripts written for it work unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Exit {
    /// Done; for `status` and `is-active`: every unit is active.
    Success = 0,
    /// A call failed (connection, permission, job), or for `is-failed`: no
    /// unit has failed.
    Failure = 1,
    /// The command line was wrong (clap reports it).
    Usage = 2,
    /// `status`, `is-active`: a unit is not active.
    NotActive = 3,
    /// `status`: no such unit.
    NoSuchUnit = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Where a verb writes, and how.
struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    json: bool,
    quiet: bool,
}

impl Io<'_> {
    fn print(&mut self, text: &str) -> Result<(), CtlError> {
        self.out
            .write_all(text.as_bytes())
            .map_err(CtlError::Output)
    }

    fn print_json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CtlError> {
        let mut text =
            serde_json::to_string(value).map_err(|e| CtlError::Output(io::Error::other(e)))?;
        text.push('\n');
        self.print(&text)
    }

    /// A diagnostic. If stderr itself is gone there is nobody to tell.
    fn complain(&mut self, err: &CtlError) {
        let _ = writeln!(self.err, "relivectl: {}", render_chain(err));
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version come this way too, with exit code 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(Exit::Usage as u8));
        }
    };
    // Not locked for the whole run: a live upgrade's progress is printed
    // from another thread while the main one waits for relive.
    let mut out = PipeSafe::new(io::stdout());
    let mut err = io::stderr();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    let exit = match run(&cli.global, cli.command.as_ref(), &mut io) {
        Ok(exit) => exit,
        Err(e) => {
            io.complain(&e);
            Exit::Failure
        }
    };
    let _ = io.out.flush();
    exit.into()
}

fn run(global: &Global, command: Option<&Command>, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    // --no-pager is only there so that systemctl habits do not fail.
    let _ = global.no_pager;
    if let Some(Command::Completions { shell }) = command {
        // Needs no relive: packaging runs it at build time.
        return Ok(completions(*shell, io));
    }
    if let Some(Command::FleetLock {
        url,
        group,
        id,
        action,
    }) = command
    {
        // Talks to the lock server, not to relive.
        return fleet_lock(url, group, id.as_deref(), action, io);
    }
    if let Some(Command::LiveUpgrade(args)) = command {
        // (The helper of a followed upgrade leaves the lock to its parent.)
        if let (Some(url), None) = (&args.fleet_lock, &args.let_go_for) {
            return fleet_upgrade::run(global, args, url, io);
        }
        if args.latest || args.release.is_some() {
            return target_upgrade(global, args, io);
        }
        if let Some(unit) = follows_from_inside(args) {
            return follow_upgrade(global, &unit, io);
        }
    }
    let client = if global.bus {
        Client::connect_bus()?
    } else {
        Client::connect(&global.socket)?
    };
    let exit = dispatch(&client, command, io)?;
    if matches!(command, Some(Command::DaemonReexec)) {
        wait_for_manager(&global.socket)?;
    }
    Ok(exit)
}

/// After a re-exec: the new relive answers on the same socket once it has
/// taken over.
fn wait_for_manager(socket: &std::path::Path) -> Result<(), CtlError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = Client::connect(socket).and_then(|c| c.list_units());
        match answer {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A completion script for `shell`, from the clap definition.
fn completions(shell: clap_complete::Shell, io: &mut Io<'_>) -> Exit {
    let mut cli = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cli, "relivectl", &mut io.out);
    Exit::Success
}

fn dispatch(api: &dyn Api, command: Option<&Command>, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let default_list = ListUnits::default();
    match command {
        None => list_units(api, &default_list, io),
        Some(Command::ListUnits(opts)) => list_units(api, opts, io),
        Some(Command::ListTimers { all }) => list_timers(api, *all, io),
        Some(Command::ListSockets { show_types }) => list_sockets(api, *show_types, io),
        Some(Command::Status { units, lines }) => status(api, units, *lines, io),
        Some(Command::Security { unit }) => security(api, unit, io),
        Some(Command::IsActive(u)) => is_state(api, &u.units, Check::Active, io),
        Some(Command::IsFailed(u)) => is_state(api, &u.units, Check::Failed, io),
        Some(Command::Start(u)) => jobs(api, Job::Start, &u.units, io),
        Some(Command::Stop(u)) => jobs(api, Job::Stop, &u.units, io),
        Some(Command::Restart(u)) => jobs(api, Job::Restart, &u.units, io),
        Some(Command::Reload(u)) => jobs(api, Job::Reload, &u.units, io),
        Some(Command::DaemonReload) => manager(api, ManagerCall::DaemonReload),
        Some(Command::DaemonReexec) => manager(api, ManagerCall::DaemonReexec),
        Some(Command::LiveUpgrade(args)) => live_upgrade(api, args, io),
        Some(Command::UpgradeReport) => upgrade_report(api, io),
        Some(Command::Metrics { textfile }) => metrics(api, textfile.as_deref(), io),
        // (run() answers it before connecting to relive.)
        Some(Command::FleetLock {
            url,
            group,
            id,
            action,
        }) => fleet_lock(url, group, id.as_deref(), action, io),
        Some(Command::Poweroff) => manager(api, ManagerCall::PowerOff),
        Some(Command::Reboot) => manager(api, ManagerCall::Reboot),
        Some(Command::Halt) => manager(api, ManagerCall::Halt),
        Some(Command::Completions { shell }) => Ok(completions(*shell, io)),
    }
}

fn list_units(api: &dyn Api, opts: &ListUnits, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let units = list::select(api.list_units()?, opts);
    if io.json {
        io.print_json(&units)?;
    } else {
        let layout = list::Layout {
            all: opts.all || !opts.state.is_empty(),
            no_legend: opts.no_legend || io.quiet,
            plain: opts.plain,
        };
        io.print(&list::render_table(&units, layout))?;
    }
    Ok(Exit::Success)
}

fn security(api: &dyn Api, unit: &str, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let checks = api.unit_security(unit)?;
    if io.json {
        io.print_json(&checks)?;
    } else {
        io.print(&security::render(&checks, io.quiet))?;
    }
    Ok(Exit::Success)
}

fn list_sockets(api: &dyn Api, show_types: bool, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let mut sockets = api.list_sockets()?;
    sockets.sort_by(|a, b| (&a.listen, &a.kind).cmp(&(&b.listen, &b.kind)));
    if io.json {
        io.print_json(&sockets)?;
    } else {
        io.print(&timers::render_sockets(&sockets, show_types, io.quiet))?;
    }
    Ok(Exit::Success)
}

fn list_timers(api: &dyn Api, all: bool, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let mut timers = api.list_timers()?;
    timers.retain(|t| all || t.active_state == "active");
    if io.json {
        io.print_json(&timers)?;
    } else {
        let table = timers::render(
            &timers,
            time::now_usec(),
            &time::format_timestamp,
            all,
            io.quiet,
        );
        io.print(&table)?;
    }
    Ok(Exit::Success)
}

/// Shows each unit; the exit code is the worst: no such unit (4) over not
/// active (3) over active (0), whatever the order of the names.
fn status(
    api: &dyn Api,
    units: &[String],
    lines: Option<usize>,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    let procs = Proc;
    let ctx = status::Ctx {
        now_usec: time::now_usec(),
        procs: &procs,
        timestamp: &time::format_timestamp,
        lines,
    };
    let mut exit = Exit::Success;
    let mut found: Vec<UnitStatus> = Vec::new();
    for name in units {
        let st = match api.get_unit(name) {
            Ok(st) => st,
            Err(e @ CtlError::NoSuchUnit(_)) => {
                io.complain(&e);
                exit = exit.max(Exit::NoSuchUnit);
                continue;
            }
            Err(e) => return Err(e),
        };
        exit = exit.max(status_exit(&st));
        if !io.json {
            // A blank line between blocks, as systemctl.
            let sep = if found.is_empty() { "" } else { "\n" };
            io.print(&format!("{sep}{}", status::render(&st, &ctx)))?;
        }
        found.push(st);
    }
    if io.json {
        io.print_json(&found)?;
    }
    Ok(exit)
}

/// The LSB status code of one unit that the server knows.
fn status_exit(st: &UnitStatus) -> Exit {
    if st.load_state == "not-found" {
        Exit::NoSuchUnit
    } else if status::is_active(&st.active_state) {
        Exit::Success
    } else {
        Exit::NotActive
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Active,
    Failed,
}

/// One line of `is-active --json`.
#[derive(Debug, serde::Serialize)]
struct UnitState<'a> {
    unit: &'a str,
    active_state: String,
}

/// `is-active` succeeds only if every unit is active (3 otherwise);
/// `is-failed` succeeds if any unit has failed (1 otherwise, as systemctl).
fn is_state(
    api: &dyn Api,
    units: &[String],
    check: Check,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    let mut states = Vec::with_capacity(units.len());
    for name in units {
        let active_state = match api.get_unit(name) {
            Ok(st) => st.active_state,
            // systemctl says an unknown unit is inactive; so does relivectl.
            Err(CtlError::NoSuchUnit(_)) => "inactive".to_owned(),
            Err(e) => return Err(e),
        };
        if !io.json && !io.quiet {
            io.print(&format!("{active_state}\n"))?;
        }
        states.push(UnitState {
            unit: name,
            active_state,
        });
    }
    if io.json {
        io.print_json(&states)?;
    }
    let active: Vec<&str> = states.iter().map(|s| s.active_state.as_str()).collect();
    Ok(check_exit(check, &active))
}

fn check_exit(check: Check, states: &[&str]) -> Exit {
    match check {
        Check::Active if states.iter().all(|s| status::is_active(s)) => Exit::Success,
        Check::Active => Exit::NotActive,
        Check::Failed if states.contains(&"failed") => Exit::Success,
        Check::Failed => Exit::Failure,
    }
}

/// One job per unit, in the order given. A unit's failure is reported and
/// the rest are still tried; an error that would repeat for every unit
/// (connection, permission) ends the run at once.
fn jobs(api: &dyn Api, job: Job, units: &[String], io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let mut exit = Exit::Success;
    for name in units {
        match api.unit_job(job, name) {
            Ok(()) => {}
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                io.complain(&e);
                exit = Exit::Failure;
            }
        }
    }
    Ok(exit)
}

/// `live-upgrade --latest` or `--release`: to that kernel, or nothing
/// to do if it runs already (so that a rollout run twice changes nothing).
fn target_upgrade(
    global: &Global,
    args: &crate::cli::LiveUpgradeArgs,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    match target::resolve(args, &target::running_release())? {
        None => run(global, Some(&Command::LiveUpgrade(args.clone())), io),
        Some(target::Target::Running(release)) => {
            nothing_to_do(&release, args.latest, io)?;
            Ok(Exit::Success)
        }
        Some(target::Target::Upgrade { kernel, initrd, .. }) => {
            let mut resolved = args.clone();
            resolved.latest = false;
            resolved.release = None;
            resolved.kernel = Some(kernel);
            resolved.initrd = initrd;
            // An installed kernel boots as the running one did, unless
            // --append says otherwise: the usual upgrade is one command.
            resolved.reuse_cmdline |= args.append.is_empty();
            run(global, Some(&Command::LiveUpgrade(resolved)), io)
        }
    }
}

/// Says that `release`, the kernel asked for (the newest installed with
/// --latest), runs already.
pub(crate) fn nothing_to_do(release: &str, latest: bool, io: &mut Io<'_>) -> Result<(), CtlError> {
    if io.json {
        return io.print_json(&serde_json::json!({ "nothing_to_do": true, "release": release }));
    }
    let what = if latest {
        format!("the newest installed kernel, {release}")
    } else {
        release.to_owned()
    };
    io.print(&format!("Already running {what}: nothing to do.\n"))
}

/// The unit relivectl runs in when a live upgrade it starts must let go
/// of relive before that unit is checkpointed (see `follow`).
fn follows_from_inside(args: &crate::cli::LiveUpgradeArgs) -> Option<String> {
    let plain = !args.dry_run && !args.check && !args.detach && !args.prepare && !args.discard;
    if !plain || args.let_go_for.is_some() {
        return None;
    }
    follow::own_unit_of_tree()
}

fn follow_upgrade(global: &Global, unit: &str, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let json = global.json;
    let report = follow::run(global, unit, &move |p| show_progress(p, json))?;
    if json {
        io.print_json(&report)?;
    } else {
        io.print(&crate::upgrade::render_report(&report))?;
    }
    Ok(if follow::succeeded(&report) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// A progress step: a JSON line on stdout for machines, a log line on
/// stderr for people.
fn show_progress(p: &relive_api::progress::Progress, json: bool) {
    if json {
        println!("{}", serde_json::to_string(p).unwrap_or_default());
    } else {
        let bytes = if p.bytes > 0 {
            format!(" ({})", relive_api::human(p.bytes))
        } else {
            String::new()
        };
        eprintln!("{:<10} {:<28} {}{bytes}", p.phase, p.unit, p.message);
    }
}

/// With --dry-run: the plan and preflight, failing if a check failed.
/// Without: the upgrade itself, its progress shown as it happens.
fn live_upgrade(
    api: &dyn Api,
    args: &crate::cli::LiveUpgradeArgs,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    if args.prepare {
        let warm = api.prepare_live_upgrade()?;
        if io.json {
            io.print_json(&warm)?;
        } else {
            io.print(&crate::upgrade::render_warm(&warm))?;
        }
        return Ok(Exit::Success);
    }
    if args.cancel {
        let answer = api.cancel_live_upgrade()?;
        if io.json {
            io.print_json(&answer)?;
        } else {
            io.print(&format!("{answer}.\n"))?;
        }
        return Ok(match answer {
            relive_api::progress::CancelAnswer::Cancelled => Exit::Success,
            _ => Exit::Failure,
        });
    }
    if args.discard {
        let existed = api.discard_live_upgrade()?;
        io.print(if existed {
            "Warm snapshot wiped.\n"
        } else {
            "No warm snapshot; the store is empty.\n"
        })?;
        return Ok(Exit::Success);
    }
    if args.detach {
        let plan = api.start_live_upgrade(args)?;
        if io.json {
            io.print_json(&plan)?;
        } else {
            io.print(&crate::upgrade::render(&plan))?;
            io.print("Upgrade started: relive goes on once this command has exited; `relivectl upgrade-report` shows the outcome.\n")?;
        }
        return Ok(Exit::Success);
    }
    if args.check {
        let plan = api.live_upgrade(&crate::cli::LiveUpgradeArgs {
            dry_run: true,
            ..args.clone()
        })?;
        let verdict = crate::verdict::Verdict::of(&plan, args.kernel.as_deref());
        if io.json {
            io.print_json(&verdict)?;
        } else {
            io.print(&verdict.render())?;
        }
        return Ok(if verdict.possible {
            Exit::Success
        } else {
            Exit::Failure
        });
    }
    if !args.dry_run {
        let json = io.json;
        let let_go_for = args.let_go_for.clone();
        api.live_upgrade_run(
            args,
            Box::new(move |p| {
                show_progress(&p, json);
                if let_go_for
                    .as_deref()
                    .is_some_and(|unit| follow::asks_to_let_go(&p, unit))
                {
                    // The helper of a relivectl inside that unit: exiting
                    // closes the connection at once, and the unit can be
                    // checkpointed.
                    let _ = std::io::stdout().flush();
                    std::process::exit(0);
                }
            }),
        )?;
        if !io.json {
            io.print("The machine is booting the new kernel; `relivectl upgrade-report` shows the outcome once it is back.\n")?;
        }
        return Ok(Exit::Success);
    }
    let plan = api.live_upgrade(args)?;
    if io.json {
        io.print_json(&plan)?;
    } else {
        io.print(&crate::upgrade::render(&plan))?;
    }
    Ok(if plan.passed() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn upgrade_report(api: &dyn Api, io: &mut Io<'_>) -> Result<Exit, CtlError> {
    let report = api.upgrade_report()?;
    if io.json {
        io.print_json(&report)?;
    } else {
        io.print(&crate::upgrade::render_report(&report))?;
    }
    Ok(Exit::Success)
}

fn fleet_lock(
    url: &str,
    group: &str,
    id: Option<&str>,
    action: &str,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    let id = match id {
        Some(id) => id.to_owned(),
        None => fleetlock::node_id()?,
    };
    let client = fleetlock::Client {
        url: url.to_owned(),
        group: group.to_owned(),
        id,
    };
    if action == "lock" {
        client.lock()?;
        io.print(&format!(
            "Slot taken: {} in group {}.\n",
            client.id, client.group
        ))?;
    } else {
        client.unlock()?;
        io.print(&format!(
            "Slot given back: {} in group {}.\n",
            client.id, client.group
        ))?;
    }
    Ok(Exit::Success)
}

fn metrics(
    api: &dyn Api,
    textfile: Option<&std::path::Path>,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    let report = match api.upgrade_report() {
        Ok(report) => Some(report),
        // Before the first upgrade there is no report: the kernel alone.
        Err(e) if e.to_string().contains("no live upgrade has completed") => None,
        Err(e) => return Err(e),
    };
    let text = metrics::render(&target::running_release(), report.as_ref());
    match textfile {
        Some(path) => metrics::write_textfile(path, &text).map_err(|source| CtlError::Write {
            path: path.to_owned(),
            source,
        })?,
        None => io.print(&text)?,
    }
    Ok(Exit::Success)
}

fn manager(api: &dyn Api, call: ManagerCall) -> Result<Exit, CtlError> {
    api.manager_call(call)?;
    Ok(Exit::Success)
}

/// Stdout that treats a closed pipe (`relivectl list-units | head`) as the
/// reader having seen enough, not as an error: the rest is dropped.
struct PipeSafe<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> PipeSafe<W> {
    fn new(inner: W) -> Self {
        PipeSafe {
            inner,
            closed: false,
        }
    }

    fn guard<T>(&mut self, r: io::Result<T>, ok: T) -> io::Result<T> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(ok)
            }
            r => r,
        }
    }
}

impl<W: Write> Write for PipeSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.guard(r, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.guard(r, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_api::units::UnitSummary;
    use std::cell::RefCell;

    /// Answers from a fixed set of units and records the calls it gets.
    #[derive(Default)]
    struct Fake {
        units: Vec<UnitStatus>,
        calls: RefCell<Vec<String>>,
        /// Jobs on these units fail.
        failing: Vec<&'static str>,
        /// Every call is refused as if the caller were not root.
        deny: bool,
    }

    fn unit(name: &str, active: &str, load: &str) -> UnitStatus {
        UnitStatus {
            name: name.into(),
            description: String::new(),
            load_state: load.into(),
            load_error: String::new(),
            fragment: String::new(),
            dropins: vec![],
            active_state: active.into(),
            sub_state: String::new(),
            result: String::new(),
            state_change_usec: 0,
            main_pid: 0,
            cgroup: String::new(),
            pids: vec![],
            restarts: 0,
            status_text: String::new(),
            upgrade_mode: String::new(),
            upgrade_priority: 0,
            warnings: vec![],
            output: vec![],
        }
    }

    impl Fake {
        fn with(units: &[(&str, &str)]) -> Fake {
            Fake {
                units: units.iter().map(|(n, a)| unit(n, a, "loaded")).collect(),
                ..Fake::default()
            }
        }

        fn check_root(&self) -> Result<(), CtlError> {
            if self.deny {
                return Err(CtlError::from_remote(
                    crate::error::ACCESS_DENIED,
                    "caller uid 1000".into(),
                ));
            }
            Ok(())
        }
    }

    impl Api for Fake {
        fn list_timers(&self) -> Result<Vec<relive_api::units::TimerSummary>, CtlError> {
            self.check_root()?;
            Ok(Vec::new())
        }
        fn list_sockets(&self) -> Result<Vec<relive_api::units::SocketSummary>, CtlError> {
            self.check_root()?;
            Ok(Vec::new())
        }
        fn unit_security(
            &self,
            _: &str,
        ) -> Result<Vec<relive_api::units::SecurityCheck>, CtlError> {
            self.check_root()?;
            Ok(Vec::new())
        }
        fn list_units(&self) -> Result<Vec<UnitSummary>, CtlError> {
            self.check_root()?;
            Ok(self
                .units
                .iter()
                .map(|u| UnitSummary {
                    name: u.name.clone(),
                    description: u.description.clone(),
                    load_state: u.load_state.clone(),
                    active_state: u.active_state.clone(),
                    sub_state: u.sub_state.clone(),
                    main_pid: u.main_pid,
                })
                .collect())
        }

        fn get_unit(&self, name: &str) -> Result<UnitStatus, CtlError> {
            self.check_root()?;
            self.units
                .iter()
                .find(|u| u.name == name)
                .cloned()
                .ok_or_else(|| CtlError::NoSuchUnit(format!("Unit {name} not found.")))
        }

        fn unit_job(&self, job: Job, name: &str) -> Result<(), CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push(format!("{job:?} {name}"));
            if self.failing.contains(&name) {
                return Err(CtlError::JobFailed(format!(
                    "Job for {name} failed: exit-code"
                )));
            }
            self.get_unit(name).map(drop)
        }

        fn manager_call(&self, call: ManagerCall) -> Result<(), CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push(format!("{call:?}"));
            Ok(())
        }

        fn live_upgrade_run(
            &self,
            _: &crate::cli::LiveUpgradeArgs,
            on_progress: Box<dyn Fn(relive_api::progress::Progress) + Send>,
        ) -> Result<(), CtlError> {
            self.check_root()?;
            on_progress(relive_api::progress::Progress::new(
                relive_api::progress::Phase::Freeze,
                "a.service",
                0,
                "freezing",
            ));
            Err(CtlError::JobFailed(
                "live upgrade not done: a.service: CRIU dump failed".into(),
            ))
        }

        fn start_live_upgrade(
            &self,
            _: &crate::cli::LiveUpgradeArgs,
        ) -> Result<relive_api::plan::Plan, CtlError> {
            self.check_root()?;
            Ok(relive_api::plan::Plan::default())
        }

        fn upgrade_report(&self) -> Result<relive_api::report::UpgradeReport, CtlError> {
            self.check_root()?;
            Ok(relive_api::report::UpgradeReport {
                kernel_from: "6.1.0-47-amd64".into(),
                kernel_to: "6.12.117+deb12-amd64".into(),
                ..Default::default()
            })
        }

        fn prepare_live_upgrade(&self) -> Result<relive_api::warm::Warm, CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push("PrepareLiveUpgrade".into());
            Ok(relive_api::warm::Warm::default())
        }

        fn discard_live_upgrade(&self) -> Result<bool, CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push("DiscardLiveUpgrade".into());
            Ok(false)
        }

        fn cancel_live_upgrade(&self) -> Result<relive_api::progress::CancelAnswer, CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push("CancelLiveUpgrade".into());
            Ok(relive_api::progress::CancelAnswer::NoUpgrade)
        }

        fn live_upgrade(
            &self,
            args: &crate::cli::LiveUpgradeArgs,
        ) -> Result<relive_api::plan::Plan, CtlError> {
            self.check_root()?;
            self.calls.borrow_mut().push(format!(
                "LiveUpgrade {} dry_run={}",
                args.kernel
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display(),
                args.dry_run
            ));
            Ok(relive_api::plan::Plan {
                checks: vec![relive_api::plan::Check {
                    name: "kexec".into(),
                    ok: args.dry_run,
                    detail: String::new(),
                }],
                ..Default::default()
            })
        }
    }

    #[test]
    fn cancel_needs_no_kernel_and_fails_when_there_is_nothing_to_cancel() {
        let fake = Fake::with(&[]);
        let (exit, out, _) = run_with(&fake, &["live-upgrade", "--cancel"]);
        assert_eq!(exit, Exit::Failure);
        assert_eq!(out, "No live upgrade is under way.\n");
        assert_eq!(*fake.calls.borrow(), ["CancelLiveUpgrade"]);
        let err = Cli::try_parse_from(["relivectl", "live-upgrade", "--cancel", "--kernel", "/k"])
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn prepare_and_discard_need_no_kernel_and_exclude_an_upgrade() {
        let fake = Fake::with(&[]);
        let (exit, out, _) = run_with(&fake, &["live-upgrade", "--prepare"]);
        assert_eq!(exit, Exit::Success);
        assert!(out.contains("Warm snapshot"), "{out}");
        let (exit, out, _) = run_with(&fake, &["live-upgrade", "--discard"]);
        assert_eq!(exit, Exit::Success);
        assert!(out.contains("No warm snapshot"), "{out}");
        assert_eq!(
            *fake.calls.borrow(),
            ["PrepareLiveUpgrade", "DiscardLiveUpgrade"]
        );
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("relivectl").chain(args.iter().copied()))
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let err = parse(&["live-upgrade", "--prepare", "--kernel", "/k"]).unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
        let err = parse(&["live-upgrade"]).unwrap_err();
        assert!(err.contains("--kernel"), "{err}");
    }

    #[test]
    fn live_upgrade_prints_the_plan_and_fails_on_a_failed_check() {
        let fake = Fake::with(&[]);
        let (exit, out, _) = run_with(
            &fake,
            &["live-upgrade", "--kernel", "/boot/vmlinuz", "--dry-run"],
        );
        assert_eq!(exit, Exit::Success);
        assert!(out.contains("Preflight:"), "{out}");
        let (exit, _, err) = run_with(&fake, &["live-upgrade", "--kernel", "/boot/vmlinuz"]);
        assert_eq!(exit, Exit::Failure);
        assert!(err.contains("CRIU dump failed"), "{err}");
        let (exit, out, _) = run_with(&fake, &["upgrade-report"]);
        assert_eq!(exit, Exit::Success);
        assert!(
            out.contains("6.1.0-47-amd64 -> 6.12.117+deb12-amd64"),
            "{out}"
        );
        let (_, out, _) = run_with(
            &fake,
            &["--json", "live-upgrade", "--kernel", "/k", "--dry-run"],
        );
        assert!(out.starts_with('{') && out.contains("\"checks\""), "{out}");
    }

    /// Runs a command line against the fake: (exit, stdout, stderr).
    fn run_with(fake: &Fake, args: &[&str]) -> (Exit, String, String) {
        let cli = Cli::try_parse_from(std::iter::once("relivectl").chain(args.iter().copied()))
            .expect("command line parses");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            json: cli.global.json,
            quiet: cli.global.quiet,
        };
        let exit = match dispatch(fake, cli.command.as_ref(), &mut io) {
            Ok(exit) => exit,
            Err(e) => {
                io.complain(&e);
                Exit::Failure
            }
        };
        let text = |v: Vec<u8>| String::from_utf8(v).expect("utf-8 output");
        (exit, text(out), text(err))
    }

    fn quiet_run(exit: Exit) -> (Exit, String, String) {
        (exit, String::new(), String::new())
    }

    #[test]
    fn exit_codes_match_the_lsb_values() {
        assert_eq!(Exit::Success as u8, 0);
        assert_eq!(Exit::Failure as u8, 1);
        assert_eq!(Exit::Usage as u8, 2);
        assert_eq!(Exit::NotActive as u8, 3);
        assert_eq!(Exit::NoSuchUnit as u8, 4);
    }

    #[test]
    fn status_exit_is_the_worst_of_all_units() {
        let fake = Fake::with(&[("a.service", "active"), ("b.service", "inactive")]);
        assert_eq!(run_with(&fake, &["status", "a"]).0, Exit::Success);
        assert_eq!(run_with(&fake, &["status", "a", "b"]).0, Exit::NotActive);
        let (exit, out, err) = run_with(&fake, &["status", "nope", "a", "b"]);
        assert_eq!(exit, Exit::NoSuchUnit);
        assert_eq!(err, "relivectl: Unit nope.service not found.\n");
        // Both known units are still shown, separated by a blank line.
        assert!(
            out.starts_with("● a.service\n") && out.contains("\n\n● b.service\n"),
            "{out}"
        );
    }

    #[test]
    fn status_of_a_not_found_unit_is_4() {
        let mut fake = Fake::with(&[]);
        fake.units
            .push(unit("gone.service", "inactive", "not-found"));
        assert_eq!(run_with(&fake, &["status", "gone"]).0, Exit::NoSuchUnit);
    }

    #[test]
    fn status_json_is_an_array_of_unit_status() {
        let fake = Fake::with(&[("a.service", "reloading")]);
        let (exit, out, _) = run_with(&fake, &["status", "a", "--json"]);
        assert_eq!(exit, Exit::Success);
        let back: Vec<UnitStatus> = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(back, fake.units);
    }

    #[test]
    fn is_active_needs_every_unit_active() {
        let fake = Fake::with(&[("a.service", "active"), ("b.service", "failed")]);
        let (exit, out, _) = run_with(&fake, &["is-active", "a"]);
        assert_eq!((exit, out.as_str()), (Exit::Success, "active\n"));
        let (exit, out, err) = run_with(&fake, &["is-active", "a", "b", "c"]);
        assert_eq!(exit, Exit::NotActive);
        assert_eq!(out, "active\nfailed\ninactive\n");
        assert_eq!(err, "");
        let got = run_with(&fake, &["-q", "is-active", "b"]);
        assert_eq!(got, quiet_run(Exit::NotActive));
    }

    #[test]
    fn is_failed_needs_one_failed_unit() {
        let fake = Fake::with(&[("a.service", "active"), ("b.service", "failed")]);
        assert_eq!(run_with(&fake, &["is-failed", "a"]).0, Exit::Failure);
        assert_eq!(run_with(&fake, &["is-failed", "a", "b"]).0, Exit::Success);
        let (_, out, _) = run_with(&fake, &["is-failed", "b", "--json"]);
        assert_eq!(
            out,
            "[{\"unit\":\"b.service\",\"active_state\":\"failed\"}]\n"
        );
    }

    #[test]
    fn jobs_go_in_order_and_failures_do_not_stop_the_rest() {
        let mut fake = Fake::with(&[("a.service", "inactive"), ("c.service", "inactive")]);
        fake.failing = vec!["a.service"];
        let (exit, out, err) = run_with(&fake, &["restart", "a", "b", "c"]);
        assert_eq!(exit, Exit::Failure);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "relivectl: Job for a.service failed: exit-code\n\
             relivectl: Unit b.service not found.\n"
        );
        assert_eq!(
            *fake.calls.borrow(),
            [
                "Restart a.service",
                "Restart b.service",
                "Restart c.service"
            ]
        );
        assert_eq!(run_with(&fake, &["start", "c"]), quiet_run(Exit::Success));
    }

    #[test]
    fn access_denied_stops_at_once_and_says_root() {
        let mut fake = Fake::with(&[("a.service", "inactive")]);
        fake.deny = true;
        let (exit, _, err) = run_with(&fake, &["start", "a", "a"]);
        assert_eq!(exit, Exit::Failure);
        assert_eq!(
            err,
            "relivectl: permission denied: caller uid 1000 (root is required)\n"
        );
        assert_eq!(run_with(&fake, &["status", "a"]).0, Exit::Failure);
        assert_eq!(run_with(&fake, &["is-active", "a"]).0, Exit::Failure);
        assert_eq!(run_with(&fake, &["list-units"]).0, Exit::Failure);
    }

    #[test]
    fn manager_verbs() {
        let fake = Fake::with(&[]);
        for verb in ["daemon-reload", "poweroff", "reboot", "halt"] {
            assert_eq!(run_with(&fake, &[verb]), quiet_run(Exit::Success));
        }
        assert_eq!(
            *fake.calls.borrow(),
            ["DaemonReload", "PowerOff", "Reboot", "Halt"]
        );
    }

    #[test]
    fn list_units_table_and_json() {
        let fake = Fake::with(&[("b.service", "active"), ("a.target", "inactive")]);
        let (exit, out, _) = run_with(&fake, &[]);
        assert_eq!(exit, Exit::Success);
        assert!(
            out.contains("  b.service loaded active") && !out.contains("a.target"),
            "{out}"
        );
        assert!(
            out.contains("1 loaded units listed."),
            "systemd 252 says units: {out}"
        );
        let (_, out, _) = run_with(&fake, &["list-units", "--all", "--json"]);
        let back: Vec<UnitSummary> = serde_json::from_str(&out).expect("valid JSON");
        let names: Vec<&str> = back.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a.target", "b.service"]);
    }

    #[test]
    fn closed_stdout_is_not_an_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
        }
        let mut w = PipeSafe::new(Closed);
        assert!(w.write_all(b"hello").is_ok() && w.flush().is_ok() && w.closed);
    }
}
