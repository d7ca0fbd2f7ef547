//! Command line: verbs and options, spelled like systemctl's where they
//! overlap so that muscle memory works.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use relive_api::names::DEFAULT_SOCKET;

/// Control relive, the init system built for live kernel upgrades.
#[derive(Debug, Parser)]
#[command(
    name = "relivectl",
    version = relive_api::VERSION,
    about,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    /// What to do; without one, `list-units` (as systemctl does).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options accepted before or after the verb (`global = true`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The control socket of relive.
    #[arg(
        long,
        global = true,
        env = "RELIVE_SOCKET",
        value_name = "PATH",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    /// Talk to relive through the system bus (org.freedesktop.systemd1)
    /// instead of its control socket.
    #[arg(long, global = true)]
    pub bus: bool,

    /// Print results as JSON on stdout, for machines.
    #[arg(long, global = true)]
    pub json: bool,

    /// Accepted and ignored: relivectl never pages (systemctl habit).
    #[arg(long, global = true)]
    pub no_pager: bool,

    /// Print less: no states from is-active/is-failed, no table header or
    /// footer.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List units with their load and activity states.
    ListUnits(ListUnits),
    /// List the addresses socket units listen on, as systemctl.
    ListSockets {
        /// A TYPE column (Stream, Datagram, ...).
        #[arg(long)]
        show_types: bool,
    },
    /// List timers: when each elapses next and last did, as systemctl.
    ListTimers {
        /// Also list inactive timers.
        #[arg(short, long)]
        all: bool,
    },
    /// Show the state, processes and recent output of units.
    Status {
        /// Show at most this many of the last output lines.
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,
        /// Unit names; `.service` is appended to a name without a unit suffix.
        #[arg(required = true, value_name = "UNIT", value_parser = parse_unit_name)]
        units: Vec<String>,
    },
    /// List the protections a service runs with and whether each is in
    /// force, like systemd-analyze security.
    Security {
        /// The service; `.service` is appended to a name without a suffix.
        #[arg(value_name = "UNIT", value_parser = parse_unit_name)]
        unit: String,
    },
    /// Print the active state of units; succeed only if all are active.
    IsActive(UnitArgs),
    /// Print the active state of units; succeed if any has failed.
    IsFailed(UnitArgs),
    /// Start units and what they require, waiting for each job.
    Start(UnitArgs),
    /// Stop units, waiting for each job.
    Stop(UnitArgs),
    /// Restart units, waiting for each job.
    Restart(UnitArgs),
    /// Ask units to reload their configuration.
    Reload(UnitArgs),
    /// Re-read every unit file; running services are untouched.
    DaemonReload,
    /// Re-execute relive (possibly a newer binary) with its state; running
    /// services are untouched. Waits until relive answers again.
    DaemonReexec,
    /// Upgrade the kernel live: preserved services keep running across a
    /// kexec (with --dry-run: only the plan and the preflight).
    LiveUpgrade(LiveUpgradeArgs),
    /// Show the report of the last completed live upgrade.
    UpgradeReport,
    /// Take (lock) or give back (unlock) this host's upgrade slot at a
    /// FleetLock server, as Zincati does before and after a reboot.
    FleetLock {
        /// The lock server, e.g. http://fleetlock.example:8080.
        #[arg(long, value_name = "URL")]
        url: String,
        /// The group of hosts whose slots the server counts.
        #[arg(long, default_value = "default")]
        group: String,
        /// This host's id (default: derived from /etc/machine-id).
        #[arg(long)]
        id: Option<String>,
        /// lock: take a slot (pre-reboot); unlock: give it back
        /// (steady-state).
        #[arg(value_parser = ["lock", "unlock"])]
        action: String,
    },
    /// Print the running kernel and the last live upgrade's result,
    /// phases and stoppages in the Prometheus text format.
    Metrics {
        /// Write them to this file instead (whole or not at all), e.g. in
        /// node_exporter's textfile collector directory.
        #[arg(long, value_name = "PATH")]
        textfile: Option<std::path::PathBuf>,
    },
    /// Shut down and power off the machine.
    Poweroff,
    /// Shut down and reboot the machine.
    Reboot,
    /// Shut down and halt the machine.
    Halt,
    /// Print a shell completion script for relivectl on stdout (the
    /// package installs the bash and zsh ones).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct LiveUpgradeArgs {
    /// The kernel image to boot.
    #[arg(long, value_name = "PATH", required_unless_present_any = ["prepare", "discard", "cancel", "latest", "release"])]
    pub kernel: Option<PathBuf>,
    /// The newest kernel installed (/boot/vmlinuz-RELEASE, as Debian's
    /// linux-version orders them) and its initramfs, with the running
    /// kernel's command line unless --append gives one; nothing to do
    /// when it is the one running.
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "prepare", "discard", "release"])]
    pub latest: bool,
    /// The installed kernel of this release (/boot/vmlinuz-RELEASE, as
    /// `uname -r` prints it) and its initramfs, with the running kernel's
    /// command line unless --append gives one; nothing to do when it is
    /// the one running.
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["kernel", "initrd", "prepare", "discard"])]
    pub release: Option<String>,
    /// Its initramfs.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (added to the current one with --reuse-cmdline).
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub append: String,
    /// Start from the running kernel's command line.
    #[arg(long, conflicts_with = "append")]
    pub reuse_cmdline: bool,
    /// Stop after the preflight and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Say whether a live upgrade to that kernel is possible and, if not,
    /// why (the preflight of --dry-run, as a verdict); change nothing.
    /// Exits 1 when it is not possible.
    #[arg(long, conflicts_with_all = ["dry_run", "detach", "prepare", "discard", "fleet_lock", "single_phase"])]
    pub check: bool,
    /// Return once the preflight passed; relive goes on when this command
    /// has exited (`relivectl upgrade-report` tells the outcome). Without
    /// it, relivectl shows the progress, lets go of relive just before its
    /// own unit is checkpointed (an ssh session's) and, restored with it,
    /// prints the outcome.
    #[arg(long, conflicts_with = "dry_run")]
    pub detach: bool,
    /// Internal: the helper that holds the connection for a relivectl
    /// inside UNIT; it exits when relive asks that unit to let go.
    #[arg(long, value_name = "UNIT", hide = true)]
    pub let_go_for: Option<String>,
    /// Dump everything during the stoppage: no background pre-dumps first
    /// (the two-phase snapshot is the default; see upgrade.pre_dump).
    #[arg(long)]
    pub single_phase: bool,
    /// Where the images and relive's state travel: memory (the region
    /// reserved with memmap=SIZE!OFFSET), disk, or auto (upgrade.store).
    #[arg(long, value_parser = ["memory", "disk", "auto"])]
    pub store: Option<String>,
    /// Boot the new kernel with relive's minimal initrd (relive itself,
    /// its libraries and the modules this machine's root needs: seconds
    /// off every stoppage) where it can mount the root: a plain disk or
    /// partition with ext2/3/4, root=/dev/... or root=UUID=...; elsewhere
    /// with --initrd. The dry run's plan says which.
    #[arg(long)]
    pub minimal_initrd: bool,
    /// Restore the preserved units lazily in the new kernel (as
    /// upgrade.lazy_restore does): their processes run before their
    /// memory is back, each page served from the store, checked, as they
    /// touch it, and the rest in the background.
    #[arg(long)]
    pub lazy_restore: bool,
    /// Run phase 1 now and keep it (a warm snapshot in the store, root
    /// only): the next upgrade only tops it up.
    #[arg(long, conflicts_with_all = ["kernel", "dry_run", "detach", "single_phase", "discard"])]
    pub prepare: bool,
    /// Wipe a warm snapshot left by --prepare.
    #[arg(long, conflicts_with_all = ["kernel", "dry_run", "detach", "single_phase"])]
    pub discard: bool,
    /// Cancel the upgrade under way, if its stoppage has not begun: phase
    /// 1 stops after its current pre-dump round and the upgrade is undone
    /// (nothing was frozen for good). Exits 1 if there was nothing to
    /// cancel or it was too late.
    #[arg(long, conflicts_with_all = ["kernel", "latest", "release", "dry_run", "detach", "single_phase", "prepare", "discard", "fleet_lock", "check"])]
    pub cancel: bool,
    /// Take a slot from this FleetLock server first (waiting for one),
    /// and give it back once the upgrade's report is healthy; a failed
    /// upgrade keeps the slot, which holds the rest of the fleet back.
    #[arg(long, value_name = "URL", conflicts_with_all = ["dry_run", "detach", "prepare", "discard"])]
    pub fleet_lock: Option<String>,
    /// The group of hosts whose slots the lock server counts.
    #[arg(
        long,
        value_name = "GROUP",
        default_value = "default",
        requires = "fleet_lock"
    )]
    pub fleet_group: String,
    /// This host's id at the lock server (default: derived from
    /// /etc/machine-id, as for `fleet-lock`).
    #[arg(long, value_name = "ID", requires = "fleet_lock")]
    pub fleet_id: Option<String>,
    /// How long to wait for a slot before giving up, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        requires = "fleet_lock"
    )]
    pub fleet_lock_wait: u64,
}

#[derive(Debug, Args)]
pub struct UnitArgs {
    /// Unit names; `.service` is appended to a name without a unit suffix.
    #[arg(required = true, value_name = "UNIT", value_parser = parse_unit_name)]
    pub units: Vec<String>,
}

#[derive(Debug, Default, Args)]
pub struct ListUnits {
    /// Also list inactive units.
    #[arg(short, long)]
    pub all: bool,

    /// Only failed units (short for --state=failed).
    #[arg(long)]
    pub failed: bool,

    /// Only units whose load, active or sub state is one of these.
    #[arg(long, value_name = "STATE", value_delimiter = ',')]
    pub state: Vec<String>,

    /// Only units of these types.
    #[arg(short = 't', long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub types: Vec<UnitType>,

    /// Only units whose names match one of these shell patterns.
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,

    /// No header, legend or count: the rows only.
    #[arg(long)]
    pub no_legend: bool,

    /// No column for the ● that marks failed units.
    #[arg(long)]
    pub plain: bool,
}

/// The unit types relive runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitType {
    Service,
    Socket,
    Target,
    Timer,
    Path,
    Mount,
    Automount,
    Swap,
    Device,
}

impl UnitType {
    pub fn suffix(self) -> &'static str {
        match self {
            UnitType::Service => ".service",
            UnitType::Socket => ".socket",
            UnitType::Target => ".target",
            UnitType::Timer => ".timer",
            UnitType::Path => ".path",
            UnitType::Mount => ".mount",
            UnitType::Automount => ".automount",
            UnitType::Swap => ".swap",
            UnitType::Device => ".device",
        }
    }
}

/// Every suffix systemd knows. A name ending in one is taken as it is even
/// if relive cannot load that type, so that the server can say why.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
];

/// Completes a name typed by a person into a unit name: `ssh` becomes
/// `ssh.service`, as systemctl does. Rejects what can never name a unit,
/// so that the server is not asked about it.
pub fn parse_unit_name(arg: &str) -> Result<String, String> {
    if arg.is_empty() {
        return Err("a unit name must not be empty".into());
    }
    if arg.contains('/') {
        return Err(format!("{arg:?} is a path, not a unit name"));
    }
    if arg.chars().any(char::is_control) {
        return Err(format!("{arg:?} contains control characters"));
    }
    let has_suffix = UNIT_SUFFIXES
        .iter()
        .any(|s| arg.len() > s.len() && arg.ends_with(s));
    Ok(if has_suffix {
        arg.to_owned()
    } else {
        format!("{arg}.service")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("relivectl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn completions_offer_every_verb() {
        use clap::CommandFactory;
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "relivectl", &mut script);
            let script = String::from_utf8(script).unwrap();
            for verb in Cli::command().get_subcommands() {
                assert!(
                    script.contains(verb.get_name()),
                    "{shell} completion lacks {}",
                    verb.get_name()
                );
            }
        }
        assert!(matches!(
            parse(&["completions", "zsh"]).unwrap().command,
            Some(Command::Completions {
                shell: clap_complete::Shell::Zsh
            })
        ));
    }

    #[test]
    fn global_options_after_the_verb() {
        let cli = parse(&["status", "ssh", "--json", "--socket", "/tmp/s", "-q"]).unwrap();
        assert!(cli.global.json);
        assert!(cli.global.quiet);
        assert_eq!(cli.global.socket, PathBuf::from("/tmp/s"));
        match cli.command {
            Some(Command::Status { units, lines }) => {
                assert_eq!(units, ["ssh.service"]);
                assert_eq!(lines, None);
            }
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn global_options_before_the_verb() {
        let cli = parse(&["--no-pager", "--socket=/x", "start", "a", "b.target"]).unwrap();
        assert!(cli.global.no_pager);
        assert_eq!(cli.global.socket, PathBuf::from("/x"));
        match cli.command {
            Some(Command::Start(u)) => assert_eq!(u.units, ["a.service", "b.target"]),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn socket_defaults_to_the_api_constant() {
        // Only meaningful when the environment does not override it.
        if std::env::var_os("RELIVE_SOCKET").is_none() {
            let cli = parse(&["daemon-reload"]).unwrap();
            assert_eq!(cli.global.socket, PathBuf::from(DEFAULT_SOCKET));
        }
    }

    #[test]
    fn list_units_options() {
        let cli = parse(&[
            "list-units",
            "--all",
            "--type",
            "service,target",
            "--failed",
            "s*",
        ])
        .unwrap();
        let Some(Command::ListUnits(l)) = cli.command else {
            panic!("not list-units");
        };
        assert!(l.all && l.failed);
        assert_eq!(l.types, [UnitType::Service, UnitType::Target]);
        assert_eq!(l.patterns, ["s*"]);
        assert!(parse(&["list-units", "--type", "automount,swap"]).is_ok());
        assert!(parse(&["list-units", "--type", "slice"]).is_err());
    }

    #[test]
    fn no_verb_means_list_units() {
        assert!(parse(&[]).unwrap().command.is_none());
    }

    #[test]
    fn verbs_need_their_units() {
        for verb in [
            "status",
            "is-active",
            "is-failed",
            "start",
            "stop",
            "restart",
            "reload",
        ] {
            let err = parse(&[verb]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{verb}"
            );
        }
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["poweroff", "now"]).is_err());
    }

    #[test]
    fn unit_names_get_service_appended() {
        assert_eq!(parse_unit_name("ssh").unwrap(), "ssh.service");
        assert_eq!(parse_unit_name("ssh.service").unwrap(), "ssh.service");
        assert_eq!(
            parse_unit_name("multi-user.target").unwrap(),
            "multi-user.target"
        );
        assert_eq!(parse_unit_name("getty@tty1").unwrap(), "getty@tty1.service");
        // A dot is not a suffix: systemctl also turns foo.bar into foo.bar.service.
        assert_eq!(parse_unit_name("foo.bar").unwrap(), "foo.bar.service");
        // A bare suffix is a name, not a suffix.
        assert_eq!(parse_unit_name(".service").unwrap(), ".service.service");
    }

    #[test]
    fn impossible_unit_names_are_refused() {
        assert!(parse_unit_name("").is_err());
        assert!(parse_unit_name("/etc/fstab").is_err());
        assert!(parse_unit_name("a\nb").is_err());
        assert!(parse(&["status", ""]).is_err());
    }
}
