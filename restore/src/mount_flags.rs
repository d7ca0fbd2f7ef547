//! After a restore: the per-mount flags a sandboxed service's mounts had
//! when it was frozen (read-only /usr, a read-only or noexec root), set
//! again where CRIU 3.17 left them out (the namespace's root and the
//! mounts it binds from PID 1's). PID 1 cannot enter another mount
//! namespace itself (it has threads): nsenter and mount(8) do it.

use relive_api::report::UnitRecord;
use relive_host::UnitHost;

/// Sets the flags again; what cannot be set is logged (the service runs,
/// with the report's warning, as with the I/O priority).
pub(crate) fn set_again(host: &dyn UnitHost, record: &UnitRecord, pid: i32) {
    if record.mount_flags.is_empty() {
        return;
    }
    let wanted: Vec<(String, Vec<&str>)> = record
        .mount_flags
        .iter()
        .map(|(path, flags)| (path.clone(), flags.iter().map(|f| f.name()).collect()))
        .collect();
    let now = match relive_sys::mount_flags::of_process(pid) {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!("{}: cannot read its mounts again: {e}", record.name);
            return;
        }
    };
    let target = pid.to_string();
    for (path, options) in relive_sys::mount_flags::to_restore(&wanted, &now) {
        let argv = [
            "/usr/bin/nsenter",
            "--target",
            &target,
            "--mount",
            "--",
            "/usr/bin/mount",
            "-o",
            &options,
            &path,
        ];
        match host.run_helper(&argv) {
            Ok(out) if out.status.success() => {
                tracing::info!("{}: {path}: flags set again ({options})", record.name)
            }
            Ok(out) => tracing::warn!(
                "{}: {path}: cannot set its flags again ({options}): {}",
                record.name,
                out.stderr.trim()
            ),
            Err(e) => tracing::warn!(
                "{}: {path}: cannot set its flags again ({options}): {e}",
                record.name
            ),
        }
    }
}
