//! The Manager's unit file methods: enable, disable, reenable, link,
//! preset, mask, unmask, set-default. They change links in the
//! configuration directory only; systemctl asks for the daemon-reload
//! that makes them count afterwards, as under systemd.

use super::dispatch::{BusError, Call};
use relive_units::load::install_ops::{Change, InstallError, Installer, PresetMode};
use relive_units::load::unit_files::{Presets, PRESET_DIRS};
use relive_units::Loader;
use std::path::PathBuf;

/// Flags of the *WithFlags methods (systemd's UnitFileFlags).
const FLAG_RUNTIME: u64 = 1;
const FLAG_FORCE: u64 = 2;

type Changes = Vec<(String, String, String)>;

pub const METHODS: &[&str] = &[
    "EnableUnitFiles",
    "EnableUnitFilesWithFlags",
    "DisableUnitFiles",
    "DisableUnitFilesWithFlags",
    "DisableUnitFilesWithFlagsAndInstallInfo",
    "ReenableUnitFiles",
    "LinkUnitFiles",
    "PresetUnitFiles",
    "PresetUnitFilesWithMode",
    "MaskUnitFiles",
    "UnmaskUnitFiles",
    "SetDefaultTarget",
    "GetUnitFileLinks",
];

fn triples(changes: Vec<Change>) -> Changes {
    changes.iter().map(Change::triple).collect()
}

fn install_error(e: InstallError) -> BusError {
    let name = match e {
        InstallError::NotFound(_) => "org.freedesktop.systemd1.NoSuchUnit",
        InstallError::Masked(_) => "org.freedesktop.systemd1.UnitMasked",
        InstallError::BadName(_) => "org.freedesktop.DBus.Error.InvalidArgs",
        InstallError::LinkExists { .. } | InstallError::FileExists(_) => {
            "org.freedesktop.DBus.Error.FileExists"
        }
        InstallError::Io { .. } => "org.freedesktop.DBus.Error.IOError",
    };
    BusError::new(name, e.to_string())
}

/// (units, runtime, force) from the three signatures these methods come
/// in: (as, t flags), (as, b runtime) and (as, b runtime, b force).
fn targets(call: &Call<'_>, member: &str) -> Result<(Vec<String>, bool, bool), BusError> {
    if member.contains("WithFlags") {
        let (names, flags): (Vec<String>, u64) = call.args()?;
        return Ok((names, flags & FLAG_RUNTIME != 0, flags & FLAG_FORCE != 0));
    }
    if matches!(member, "DisableUnitFiles" | "UnmaskUnitFiles") {
        let (names, runtime): (Vec<String>, bool) = call.args()?;
        return Ok((names, runtime, false));
    }
    call.args()
}

pub fn call(call: &Call<'_>, member: &str) -> Result<(), BusError> {
    let reads_only = member == "GetUnitFileLinks";
    if !reads_only {
        call.require_root(member)?;
    }
    let dirs: Vec<PathBuf> = call.on_manager(|m| m.unit_dirs.clone())?;
    let loader = Loader::new(&dirs);
    let installer = |runtime: bool| Installer::new(&loader, runtime);
    match member {
        "GetUnitFileLinks" => {
            // `systemctl is-enabled --full` (Ansible's systemd module
            // asks that way).
            let (name, runtime): (String, bool) = call.args()?;
            let links: Vec<String> = installer(runtime)
                .links(&name)
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            call.reply(&links)
        }
        "EnableUnitFiles" | "EnableUnitFilesWithFlags" | "ReenableUnitFiles" => {
            let (names, runtime, force) = targets(call, member)?;
            let i = installer(runtime);
            let mut changes = Vec::new();
            if member == "ReenableUnitFiles" {
                changes.extend(i.disable(&names).map_err(install_error)?);
            }
            let (carries, more) = i.enable(&names, force).map_err(install_error)?;
            changes.extend(more);
            call.reply(&(carries, triples(changes)))
        }
        "DisableUnitFiles"
        | "DisableUnitFilesWithFlags"
        | "DisableUnitFilesWithFlagsAndInstallInfo" => {
            let (names, runtime, _) = targets(call, member)?;
            let changes = installer(runtime).disable(&names).map_err(install_error)?;
            if member != "DisableUnitFilesWithFlagsAndInstallInfo" {
                return call.reply(&triples(changes));
            }
            let carries = names.iter().any(|n| {
                loader
                    .load(n)
                    .is_ok_and(|u| u.install.carries_install_info())
            });
            call.reply(&(carries, triples(changes)))
        }
        "LinkUnitFiles" => {
            let (paths, runtime, force) = targets(call, member)?;
            let changes = installer(runtime)
                .link(&paths, force)
                .map_err(install_error)?;
            call.reply(&triples(changes))
        }
        "PresetUnitFiles" | "PresetUnitFilesWithMode" => {
            let (names, mode, runtime, force) = if member == "PresetUnitFiles" {
                let (n, r, f) = targets(call, member)?;
                (n, PresetMode::Full, r, f)
            } else {
                let (n, m, r, f): (Vec<String>, String, bool, bool) = call.args()?;
                let mode = PresetMode::parse(&m)
                    .ok_or_else(|| BusError::invalid_args(format!("Unknown preset mode {m}")))?;
                (n, mode, r, f)
            };
            let presets = Presets::read(&PRESET_DIRS.iter().map(PathBuf::from).collect::<Vec<_>>());
            let (carries, changes) = installer(runtime)
                .preset(&names, mode, &presets, force)
                .map_err(install_error)?;
            call.reply(&(carries, triples(changes)))
        }
        "MaskUnitFiles" => {
            let (names, runtime, force) = targets(call, member)?;
            let changes = installer(runtime)
                .mask(&names, force)
                .map_err(install_error)?;
            call.reply(&triples(changes))
        }
        "UnmaskUnitFiles" => {
            let (names, runtime, _) = targets(call, member)?;
            let changes = installer(runtime).unmask(&names).map_err(install_error)?;
            call.reply(&triples(changes))
        }
        "SetDefaultTarget" => {
            let (target, _force): (String, bool) = call.args()?;
            let changes = installer(false)
                .set_default(&target)
                .map_err(install_error)?;
            call.reply(&triples(changes))
        }
        _ => Err(BusError::unknown_method(super::properties::MANAGER, member)),
    }
}
