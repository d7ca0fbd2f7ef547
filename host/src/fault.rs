//! Fault injection for tests of the abort path: inert unless the file
//! /run/relive/fault-inject exists (root only: /run/relive is relive's).
//!
//! Each line names a fault and a unit:
//! - `dump-fail UNIT`: the dump of that unit fails as if CRIU had refused
//!   it, after the units before it were checkpointed, so that the undo path
//!   runs for real;
//! - `pre-dump-fail UNIT`: every background pre-dump of that unit fails;
//!   its final dump is then full and the upgrade goes on;
//! - `corrupt-image UNIT`: one byte of that unit's page images is flipped
//!   after they were checksummed, just before the kexec, so that the new
//!   kernel must refuse them (the unit starts afresh, the report says why);
//! - `criu-kill-pre-dump UNIT`, `criu-kill-dump UNIT`: CRIU is killed
//!   while its parasite code is in that unit's main process, during a
//!   pre-dump (the unit's chain is dropped, its final dump is full) or its
//!   final dump (the upgrade is undone). A process left with the parasite
//!   dies; relive then starts the unit afresh and reports its state lost;
//! - `pre-dump-kills UNIT`, `dump-kills UNIT`: a pre-dump or the final
//!   dump of that unit fails and takes its main process with it (SIGKILL),
//!   as when CRIU dies while it is injecting its code into the process;
//!   relive starts the unit afresh and reports its state lost (the
//!   upgrade goes on after a pre-dump, is undone after the final dump);
//! - `panic UNIT`: relive's upgrade code panics right after freezing that
//!   unit (the upgrade is undone); `panic-resume UNIT`: the resume code
//!   panics before restoring it in the new kernel (the rest is started
//!   afresh);
//! - `store-full ANY`: once the preflight passed, the store's file system
//!   is filled up to the last MiB (the dumps fail, the upgrade is undone);
//! - `restore-fail UNIT`: its restore fails (after the kexec, or on the old
//!   kernel during an undo), so the unit starts afresh and the report says
//!   its state was lost. The file travels in the store across the kexec.

//! - `dump-hangs UNIT`: the CRIU of that unit's final dump is stopped
//!   (SIGSTOP) before it answers, so that relive's wait times out: the
//!   hung CRIU must be killed before the retry and the undo;
//! - `restore-fail-new UNIT`: like `restore-fail`, but only in the new
//!   kernel (a rollback unit's failure sends the machine back, where the
//!   restore then succeeds);
//! - `lazy-pages-damaged UNIT`: restored lazily in the new kernel, once
//!   its first page is served, one byte of a page it has yet to be served
//!   is flipped in the store, so that the page server must refuse it (the
//!   unit is killed and started afresh, the report says why).
//!
//! Compiled only with the cargo feature `fault-injection`, which only the
//! lab's build turns on: a release relive holds none of this.

use std::path::Path;

pub const FAULT_FILE: &str = "/run/relive/fault-inject";

/// Every fault the lab can inject: the one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DumpFail,
    PreDumpFail,
    CorruptImage,
    CriuKillPreDump,
    CriuKillDump,
    PreDumpKills,
    DumpKills,
    DumpHangs,
    Panic,
    PanicResume,
    StoreFull,
    RestoreFail,
    RestoreFailNew,
    LazyPagesDamaged,
}

impl Fault {
    pub const ALL: [Fault; 14] = [
        Fault::DumpFail,
        Fault::PreDumpFail,
        Fault::CorruptImage,
        Fault::CriuKillPreDump,
        Fault::CriuKillDump,
        Fault::PreDumpKills,
        Fault::DumpKills,
        Fault::DumpHangs,
        Fault::Panic,
        Fault::PanicResume,
        Fault::StoreFull,
        Fault::RestoreFail,
        Fault::RestoreFailNew,
        Fault::LazyPagesDamaged,
    ];

    /// Its name in the fault file.
    pub fn name(self) -> &'static str {
        match self {
            Fault::DumpFail => "dump-fail",
            Fault::PreDumpFail => "pre-dump-fail",
            Fault::CorruptImage => "corrupt-image",
            Fault::CriuKillPreDump => "criu-kill-pre-dump",
            Fault::CriuKillDump => "criu-kill-dump",
            Fault::PreDumpKills => "pre-dump-kills",
            Fault::DumpKills => "dump-kills",
            Fault::DumpHangs => "dump-hangs",
            Fault::Panic => "panic",
            Fault::PanicResume => "panic-resume",
            Fault::StoreFull => "store-full",
            Fault::RestoreFail => "restore-fail",
            Fault::RestoreFailNew => "restore-fail-new",
            Fault::LazyPagesDamaged => "lazy-pages-damaged",
        }
    }
}

/// Whether `fault` is injected for `unit` (`any` for store-full).
pub fn injected(fault: Fault, unit: &str) -> bool {
    injected_in(Path::new(FAULT_FILE), fault, unit)
}

/// Whether the fault file `file` names `fault` for `unit`. A line naming
/// a fault this relive does not know is reported once per read.
pub fn injected_in(file: &Path, fault: Fault, unit: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines().any(|l| {
        let mut words = l.split_whitespace();
        let name = words.next();
        if let Some(name) = name.filter(|n| !n.starts_with('#')) {
            if !Fault::ALL.iter().any(|f| f.name() == name) {
                tracing::warn!("{}: unknown fault {name:?}", file.display());
            }
        }
        name == Some(fault.name()) && words.next() == Some(unit)
    })
}

/// The fault file's copy that travels in the store to the new kernel.
pub fn carry_into(store_root: &Path) {
    if Path::new(FAULT_FILE).exists() {
        let _ = std::fs::copy(FAULT_FILE, store_root.join("fault-inject"));
    }
}

/// Whether `fault` is injected for `unit` in the copy carried in the store.
pub fn injected_in_store(store_root: &Path, fault: Fault, unit: &str) -> bool {
    injected_in(&store_root.join("fault-inject"), fault, unit)
}

/// SIGKILLs `criu` while its parasite code is inside `target`
/// (`criu-kill-pre-dump`, `criu-kill-dump`): CRIU maps that code into the
/// process as a memfd named CRIUMFD. That is the worst case: the process,
/// left with the parasite and no tracer, dies of SIGTRAP.
pub fn kill_with_parasite_in(criu: i32, target: i32) {
    use std::time::{Duration, Instant};
    std::thread::spawn(move || {
        let maps = format!("/proc/{target}/maps");
        let proc = std::path::Path::new("/proc");
        let infected = || std::fs::read_to_string(&maps).is_ok_and(|m| m.contains("CRIUMFD"));
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline
            && relive_criu::activity::alive(proc, criu as u32)
            && relive_criu::activity::alive(proc, target as u32)
            && !infected()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        // A CRIU that is done (its PID may soon be another process's) or
        // a target that is gone: nothing to kill.
        if !infected() || !relive_criu::activity::alive(proc, criu as u32) {
            tracing::warn!("injected fault: CRIU (PID {criu}) never held PID {target}");
            return;
        }
        tracing::warn!(
            "injected fault: killing CRIU (PID {criu}) while its parasite is in PID {target}"
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(criu),
            nix::sys::signal::Signal::SIGKILL,
        );
    });
}

/// A failed CRIU that took the process with it (`pre-dump-kills`,
/// `dump-kills`): kills `pid` and returns the error to report.
pub fn kill_process(fault: Fault, pid: i32) -> String {
    let fault = fault.name();
    tracing::warn!("injected fault {fault}: killing PID {pid}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    format!("injected fault ({fault}): CRIU failed and PID {pid} died")
}

/// Fills the file system under `dir` as far as root can write, to the
/// last MiB, with one file in `dir` (wiped with the store)
/// (`store-full`). Returns its size. In steps that halve on ENOSPC: the
/// free count statvfs gives includes blocks nobody may allocate (ext4
/// keeps up to 16 MiB for itself), so one allocation of it all fails.
pub fn fill(dir: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::create(dir.join("fault-fill"))?;
    let mut size: u64 = 0;
    let mut step: u64 = 1 << 30;
    while step >= 1 << 20 {
        match nix::fcntl::fallocate(
            &file,
            nix::fcntl::FallocateFlags::empty(),
            size as i64,
            step as i64,
        ) {
            Ok(()) => size += step,
            Err(nix::errno::Errno::ENOSPC) => step /= 2,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(size)
}

/// Flips one byte in the middle of the unit's first non-empty page image,
/// its final dump's or a pre-dump's (`corrupt-image`).
pub fn corrupt_images(images_dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut pages = Vec::new();
    let mut dirs = vec![images_dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            let kind = entry.file_type()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && name.starts_with("pages-") && name.ends_with(".img") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    let path = pages
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no page image to corrupt")
        })?;
    let middle = std::fs::metadata(&path)?.len() / 2;
    flip_byte(&path, middle)?;
    Ok(path)
}

/// Flips the byte at `offset` of `path`, in place.
pub fn flip_byte(path: &Path, offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset)?;
    byte[0] ^= 0xff;
    file.write_all_at(&byte, offset)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_faults_fire() {
        let file = std::env::temp_dir().join(format!("relive-fault-{}", std::process::id()));
        assert!(
            !injected_in(&file, Fault::DumpFail, "a.service"),
            "no file, no fault"
        );
        std::fs::write(&file, "# comment\ndump-fail a.service\n").unwrap();
        assert!(injected_in(&file, Fault::DumpFail, "a.service"));
        assert!(!injected_in(&file, Fault::DumpFail, "b.service"));
        assert!(!injected_in(&file, Fault::PreDumpFail, "a.service"));
        std::fs::remove_file(file).unwrap();
    }
}
