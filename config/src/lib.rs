//! relive's configuration file, `/etc/relive/relive.toml`.
//!
//! Every key is optional; a missing key takes the default documented on its
//! field (and in relive(8)). An invalid file is reported with its line and
//! column, and the defaults are used instead: a bad config never stops a boot.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where relive looks for its configuration unless `--config` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/relive/relive.toml";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub manager: ManagerConfig,
    pub pids: PidConfig,
    pub upgrade: UpgradeConfig,
}

/// `[manager]`: defaults for every unit and for PID 1 itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// Target started at boot when none is given with `--target`.
    /// Default: "" (default.target if it exists, else multi-user.target).
    pub default_target: String,
    /// Log level: error, warn, info, debug or trace. Default: "info".
    pub log_level: String,
    /// TimeoutStartSec= for units that do not set it, in seconds. Default: 90.
    pub default_timeout_start_sec: f64,
    /// TimeoutStopSec= for units that do not set it, in seconds. Default: 90.
    pub default_timeout_stop_sec: f64,
    /// StartLimitIntervalSec= for units that do not set it, in seconds. Default: 10.
    pub default_start_limit_interval_sec: f64,
    /// StartLimitBurst= for units that do not set it. Default: 5.
    pub default_start_limit_burst: u32,
    /// Output lines kept per unit for `relivectl status`. Default: 50.
    pub status_output_lines: usize,
    /// Seconds given to processes that outlive their units at shutdown,
    /// after SIGTERM and before SIGKILL. Default: 5.
    pub shutdown_kill_timeout_sec: f64,
    /// Where Persistent= timers keep the time of their last run: systemd's
    /// own directory, so that the stamps carry over from one init to the
    /// other. Default: "/var/lib/systemd/timers".
    pub timer_stamp_dir: std::path::PathBuf,
    /// Whether systemd's unit generators run (at boot and at each
    /// daemon-reload). Default: unset, which means yes as a machine's
    /// PID 1 and no elsewhere (the host's generators would write into the
    /// host's /run).
    pub generators: Option<bool>,
    /// Where generators are found; the first directory holding a name
    /// wins, and a link to /dev/null there disables it. Default: systemd's.
    pub generator_dirs: Vec<std::path::PathBuf>,
    /// Where their output goes: DIR/generator, DIR/generator.early and
    /// DIR/generator.late, searched for units as systemd does.
    /// Default: "/run/systemd".
    pub generator_output_dir: std::path::PathBuf,
    /// journald's stdout socket: services' output goes there while it
    /// accepts connections. Default: "/run/systemd/journal/stdout".
    pub journal_stdout_socket: std::path::PathBuf,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            default_target: String::new(),
            log_level: "info".into(),
            default_timeout_start_sec: 90.0,
            default_timeout_stop_sec: 90.0,
            default_start_limit_interval_sec: 10.0,
            default_start_limit_burst: 5,
            status_output_lines: 50,
            shutdown_kill_timeout_sec: 5.0,
            timer_stamp_dir: "/var/lib/systemd/timers".into(),
            generators: None,
            generator_dirs: [
                "/run/systemd/system-generators",
                "/etc/systemd/system-generators",
                "/usr/local/lib/systemd/system-generators",
                "/usr/lib/systemd/system-generators",
                "/lib/systemd/system-generators",
            ]
            .map(std::path::PathBuf::from)
            .to_vec(),
            generator_output_dir: "/run/systemd".into(),
            journal_stdout_socket: "/run/systemd/journal/stdout".into(),
        }
    }
}

/// `[pids]`: the PID space, prepared so that restored services keep their PIDs.
///
/// After a kexec the new kernel's own threads and early tasks take the low
/// PIDs; services that started above `floor` never collide with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PidConfig {
    /// kernel.pid_max is raised to at least this. Default: 4194304 (the
    /// 64-bit kernel's maximum).
    pub pid_max: u32,
    /// ns_last_pid is moved to at least this before services start.
    /// Default: 20000. 0 disables the move.
    pub floor: u32,
}

impl Default for PidConfig {
    fn default() -> Self {
        PidConfig {
            pid_max: 4_194_304,
            floor: 20_000,
        }
    }
}

pub use relive_api::plan::StoreWanted;

/// How CRIU reads memory in a pre-dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreDumpMode {
    /// process_vm_readv while the tasks run again: the shortest freeze.
    Read,
    /// Pages spliced while the tasks stay frozen.
    Splice,
}

/// What an upgrade does when phase 1 reaches its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadlineAction {
    /// The stoppage begins with the pre-dumps made so far: the final
    /// dumps copy the rest.
    Proceed,
    /// The upgrade is undone: every service runs on, untouched.
    Abort,
}

/// `[upgrade]`: live kernel upgrades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpgradeConfig {
    /// Where images and relive's state are kept across the kexec (root
    /// only: images hold process memory). Default: /var/lib/relive/upgrade.
    pub store_dir: PathBuf,
    /// Where the handover travels: "memory" (a region reserved with
    /// memmap=SIZE!OFFSET, seen as `memory_device`, kept across the kexec),
    /// "disk" (`store_dir`), or "auto": memory when the running and the next
    /// kernel's command lines reserve the same region, else disk.
    /// Default: "auto".
    pub store: StoreWanted,
    /// The memory store's device. Default: /dev/pmem0.
    pub memory_device: PathBuf,
    /// The CRIU binary. Default: /usr/sbin/criu.
    pub criu: PathBuf,
    /// Free space required in the store beyond the estimated image size,
    /// as a fraction of it. Default: 0.25.
    pub store_headroom: f64,
    /// Two-phase snapshot: pre-dump the preserved units in the background
    /// before the stoppage, so the final dump writes only what changed
    /// since. `relivectl live-upgrade --single-phase` skips it once.
    /// Default: true.
    pub pre_dump: bool,
    /// Pre-dump rounds per unit at most. Default: 8 (P.Haul's cap).
    pub pre_dump_max_rounds: u32,
    /// A round that writes fewer pages than this has converged. Default: 64.
    pub pre_dump_min_dirty_pages: u64,
    /// A round that writes more than this fraction above the previous one
    /// is diverging, one within it is steady: either way, stop. Default: 0.10.
    pub pre_dump_max_growth: f64,
    /// How CRIU reads memory in a pre-dump: "read" (process_vm_readv while
    /// the tasks run again, the shortest freeze) or "splice" (pages
    /// spliced while the tasks stay frozen). Default: "read".
    pub pre_dump_mode: PreDumpMode,
    /// Run pre-dump CRIU workers in the background, so the services keep
    /// the CPU and the disk: in the idle I/O class, and on the CPU as
    /// `pre_dump_cpu_share` says. false: at the services' priority.
    /// Default: true.
    pub pre_dump_idle_priority: bool,
    /// In the background, the share of the CPUs (percent, 0-100) the
    /// pre-dumps get when every CPU is busy, and so the most they take
    /// from busy services: CRIU runs in the cgroup relive-pre-dump,
    /// weighted beside the others, and gets every idle CPU besides; while
    /// it holds a unit's tasks frozen it gets the highest weight. 0: at
    /// SCHED_IDLE instead, with no share of a busy machine (phase 1 may
    /// then make no progress until its deadline). Default: 3.
    pub pre_dump_cpu_share: u32,
    /// Phase 1 may take this many seconds at most (a saturated machine
    /// leaves its background copies little time); 0: no deadline.
    /// Default: 600.
    pub pre_dump_deadline_sec: u64,
    /// At the deadline: "proceed" (the stoppage begins with the pre-dumps
    /// made so far) or "abort" (the upgrade is undone). Default: "proceed".
    pub pre_dump_deadline_action: DeadlineAction,
    /// Keep a warm snapshot: refresh the pre-dumps every this many seconds,
    /// so an upgrade only tops them up. The images then stay in the store
    /// (root-only) between upgrades. Default: 0 (off).
    pub warm_snapshot_interval_sec: u64,
    /// Refuse the whole upgrade when a unit planned for preservation
    /// cannot be checkpointed (its processes are not one tree, it has no
    /// main process), instead of restarting that unit with the reason in
    /// the plan and the report. Default: false.
    pub strict: bool,
    /// Restore the preserved units lazily after the kexec: their processes
    /// run again before their memory is back, each page served from the
    /// store as they touch it (checked against the manifest first: a page
    /// that fails is never served, and the unit is killed and started
    /// afresh), the rest in the background. `relivectl live-upgrade
    /// --lazy-restore` asks it for one upgrade. OnRestoreFailure=rollback
    /// units are always restored whole. Default: false.
    pub lazy_restore: bool,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            store_dir: "/var/lib/relive/upgrade".into(),
            store: StoreWanted::Auto,
            memory_device: "/dev/pmem0".into(),
            criu: "/usr/sbin/criu".into(),
            store_headroom: 0.25,
            pre_dump: true,
            pre_dump_max_rounds: 8,
            pre_dump_min_dirty_pages: 64,
            pre_dump_max_growth: 0.10,
            pre_dump_mode: PreDumpMode::Read,
            pre_dump_idle_priority: true,
            pre_dump_cpu_share: 3,
            pre_dump_deadline_sec: 600,
            pre_dump_deadline_action: DeadlineAction::Proceed,
            warm_snapshot_interval_sec: 0,
            strict: false,
            lazy_restore: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or a key has the wrong type or is unknown.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key has a value of the right type but out of range.
    #[error("{path}: {key} = {value}: {reason}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl Config {
    /// Reads `path`. A missing file is not an error: it yields the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, value: String, reason| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            value,
            reason,
        };
        let m = &self.manager;
        for (key, secs) in [
            (
                "manager.default_timeout_start_sec",
                m.default_timeout_start_sec,
            ),
            (
                "manager.default_timeout_stop_sec",
                m.default_timeout_stop_sec,
            ),
            (
                "manager.default_start_limit_interval_sec",
                m.default_start_limit_interval_sec,
            ),
            (
                "manager.shutdown_kill_timeout_sec",
                m.shutdown_kill_timeout_sec,
            ),
        ] {
            if !(secs.is_finite() && secs >= 0.0) {
                return Err(invalid(
                    key,
                    secs.to_string(),
                    "must be a number of seconds >= 0",
                ));
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&m.log_level.as_str()) {
            return Err(invalid(
                "manager.log_level",
                m.log_level.clone(),
                "must be one of error, warn, info, debug, trace",
            ));
        }
        let pid_max = self.pids.pid_max;
        if !(301..=4_194_304).contains(&pid_max) {
            return Err(invalid(
                "pids.pid_max",
                pid_max.to_string(),
                "must be in 301..=4194304",
            ));
        }
        let headroom = self.upgrade.store_headroom;
        if !(headroom.is_finite() && headroom >= 0.0) {
            return Err(invalid(
                "upgrade.store_headroom",
                headroom.to_string(),
                "must be a fraction >= 0",
            ));
        }
        let u = &self.upgrade;
        if !(1..=64).contains(&u.pre_dump_max_rounds) {
            return Err(invalid(
                "upgrade.pre_dump_max_rounds",
                u.pre_dump_max_rounds.to_string(),
                "must be in 1..=64 (pre_dump = false turns pre-dumps off)",
            ));
        }
        if !(u.pre_dump_max_growth.is_finite() && u.pre_dump_max_growth >= 0.0) {
            return Err(invalid(
                "upgrade.pre_dump_max_growth",
                u.pre_dump_max_growth.to_string(),
                "must be a fraction >= 0",
            ));
        }
        if u.pre_dump_cpu_share > 100 {
            return Err(invalid(
                "upgrade.pre_dump_cpu_share",
                u.pre_dump_cpu_share.to_string(),
                "must be a percentage from 0 to 100",
            ));
        }
        if !self.upgrade.store_dir.is_absolute() {
            return Err(invalid(
                "upgrade.store_dir",
                self.upgrade.store_dir.display().to_string(),
                "must be an absolute path",
            ));
        }
        if self.pids.floor >= pid_max {
            return Err(invalid(
                "pids.floor",
                self.pids.floor.to_string(),
                "must be below pids.pid_max",
            ));
        }
        Ok(())
    }
}

/// 1-based line and column of byte offset `at` in `text`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/relive/relive.toml"), text)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_defaults() {
        let c = parse("[manager]\ndefault_timeout_stop_sec = 3\n[pids]\nfloor = 50000\n").unwrap();
        assert_eq!(c.manager.default_timeout_stop_sec, 3.0);
        assert_eq!(c.pids.floor, 50000);
        assert_eq!(c.manager.default_start_limit_burst, 5);
    }

    #[test]
    fn syntax_error_names_line() {
        let e =
            parse("[manager]\nlog_level = \"info\"\ndefault_timeout_stop_sec = = 3\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("/etc/relive/relive.toml:3:"), "{text}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let e = parse("[manager]\n\nbogus_key = 1\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("/etc/relive/relive.toml:3:"), "{text}");
        assert!(text.contains("bogus_key"), "{text}");
    }

    #[test]
    fn out_of_range_value_is_named() {
        let e = parse("[pids]\npid_max = 1000\nfloor = 2000\n").unwrap_err();
        assert!(e.to_string().contains("pids.floor = 2000"), "{e}");
        let e = parse("[upgrade]\npre_dump_mode = \"fast\"\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("/etc/relive/relive.toml:2:"), "{text}");
        assert!(text.contains("fast") && text.contains("splice"), "{text}");
        let e = parse("[upgrade]\nstore = \"tape\"\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("tape") && text.contains("memory"), "{text}");
        let e = parse("[upgrade]\npre_dump_max_rounds = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("upgrade.pre_dump_max_rounds = 0"),
            "{e}"
        );
        let e = parse("[upgrade]\npre_dump_cpu_share = 101\n").unwrap_err();
        assert!(
            e.to_string().contains("upgrade.pre_dump_cpu_share = 101"),
            "{e}"
        );
        let e = parse("[manager]\nlog_level = \"loud\"\n").unwrap_err();
        assert!(e.to_string().contains("manager.log_level = loud"), "{e}");
    }

    /// The file the Debian package installs as /etc/relive/relive.toml.
    const SHIPPED: &str = include_str!("../relive.toml");

    #[test]
    fn the_shipped_file_parses_as_the_defaults() {
        assert_eq!(parse(SHIPPED).unwrap(), Config::default());
    }

    #[test]
    fn the_shipped_file_lists_every_key_at_its_default() {
        // Uncommenting every `# key = value` line must change nothing...
        let uncommented: String = SHIPPED
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.split_once(" = ").is_some_and(|(k, _)| is_key(k)) => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(parse(&uncommented).unwrap(), Config::default());
        // ...and every key the defaults serialize must be among them.
        let defaults = toml::to_string(&Config::default()).unwrap();
        for line in defaults.lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    uncommented
                        .lines()
                        .any(|l| l.starts_with(&format!("{key} = "))),
                    "config/relive.toml does not list {key}"
                );
            }
        }
    }

    fn is_key(word: &str) -> bool {
        !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    }

    #[test]
    fn missing_file_gives_defaults() {
        let c = Config::load(Path::new("/nonexistent/relive.toml")).unwrap();
        assert_eq!(c, Config::default());
    }
}
