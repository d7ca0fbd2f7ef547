//! systemd's unit generators (systemd.generator(7)): small programs that
//! turn other configuration into units (/etc/fstab into mounts and swap,
//! the console into a serial getty, init scripts into services, a
//! package's clusters into instances). relive runs Debian's own, as
//! systemd does: every executable of the generator directories (the first
//! directory holding a name wins; a link to /dev/null disables it), all
//! at once, with the three output directories as arguments (normal,
//! early, late), at boot and at each daemon-reload. A generator that fails
//! or hangs is logged and the boot goes on with what the others wrote.

use relive_sys::spawn::{SpawnRequest, Stdio};
use relive_sys::ExitStatus;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The nice value of generators that run beside a live upgrade's
/// restores: their units are needed only once the restores are done.
pub const BESIDE_RESTORES_NICE: i32 = 10;

/// One run at a time: a daemon-reload may come while the generators run
/// beside a live upgrade's resume, and both empty the same directories.
static RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long a generator may run (systemd gives them its default timeout;
/// a boot should not wait that long for one).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where generators are and where their output goes.
#[derive(Debug, Clone)]
pub struct Generators {
    pub dirs: Vec<PathBuf>,
    pub output: PathBuf,
}

/// Starts a generator and tells when it has exited: at boot relive
/// spawns and reaps it itself; later only the loop may reap children.
pub trait Spawner {
    fn start(&mut self, request: SpawnRequest) -> Result<i32, String>;
    /// Its exit status, if it has exited (never waits).
    fn exited(&mut self, pid: i32) -> Option<ExitStatus>;
}

/// What a run did, for the log and the tests.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ran: Vec<String>,
    /// Name and why.
    pub failed: Vec<(String, String)>,
}

impl Generators {
    /// The generators to run, by name, in name order.
    pub fn find(&self) -> BTreeMap<String, PathBuf> {
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut masked: Vec<String> = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if found.contains_key(&name) || masked.contains(&name) {
                    continue;
                }
                let path = e.path();
                if std::fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null")) {
                    masked.push(name);
                    continue;
                }
                let executable = std::fs::metadata(&path)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                if executable {
                    found.insert(name, path);
                }
            }
        }
        found
    }

    /// Empties the output directories and runs every generator.
    pub fn run(&self, spawner: &mut dyn Spawner) -> Outcome {
        self.run_at(spawner, None)
    }

    /// [`Generators::run`], each generator at `nice` if given.
    pub fn run_at(&self, spawner: &mut dyn Spawner, nice: Option<i32>) -> Outcome {
        let _one_at_a_time = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = relive_units::generator_dirs(&self.output);
        for dir in &outputs {
            let _ = std::fs::remove_dir_all(dir);
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::error!("generators: cannot make {}: {e}", dir.display());
                return Outcome::default();
            }
        }
        let mut outcome = Outcome::default();
        let mut running: Vec<(String, i32)> = Vec::new();
        for (name, path) in self.find() {
            match request(&path, &outputs, nice).and_then(|r| spawner.start(r)) {
                Ok(pid) => running.push((name, pid)),
                Err(e) => outcome.failed.push((name, e)),
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        while !running.is_empty() {
            running.retain(|(name, pid)| match spawner.exited(*pid) {
                Some(status) if status.success() => {
                    outcome.ran.push(name.clone());
                    false
                }
                Some(status) => {
                    outcome.failed.push((name.clone(), status.describe()));
                    false
                }
                None => true,
            });
            if Instant::now() >= deadline {
                for (name, pid) in running.drain(..) {
                    // SAFETY: kill(2) on a child of PID 1 not yet reaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    outcome
                        .failed
                        .push((name, format!("killed after {}s", TIMEOUT.as_secs())));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (name, why) in &outcome.failed {
            tracing::warn!("generator {name} failed: {why}");
        }
        tracing::info!(
            "ran {} generators into {}",
            outcome.ran.len() + outcome.failed.len(),
            self.output.display()
        );
        outcome
    }
}

/// `GENERATOR NORMAL EARLY LATE`, with systemd's environment for them.
fn request(path: &Path, outputs: &[PathBuf; 3], nice: Option<i32>) -> Result<SpawnRequest, String> {
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in {s:?}"));
    let path_text = path.to_string_lossy();
    let mut argv = vec![cstr(&path_text)?];
    for dir in outputs {
        argv.push(cstr(&dir.to_string_lossy())?);
    }
    let mut env = vec![
        cstr("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")?,
        cstr("SYSTEMD_SCOPE=system")?,
    ];
    if let Ok(container) = std::env::var("container") {
        env.push(cstr(&format!("container={container}"))?);
    }
    let mut request = SpawnRequest {
        // Their messages are relive's: the console.
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
        umask: 0o022,
        ..SpawnRequest::program(cstr(&path_text)?, argv, env)
    };
    request.process.nice = nice;
    Ok(request)
}

/// At boot, before the loop runs: relive reaps the generators itself.
#[derive(Debug, Default)]
pub struct BootSpawner;

impl Spawner for BootSpawner {
    fn start(&mut self, request: SpawnRequest) -> Result<i32, String> {
        relive_sys::spawn::spawn(&request, None)
            .map(|s| s.pid)
            .map_err(|e| e.to_string())
    }

    fn exited(&mut self, pid: i32) -> Option<ExitStatus> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(ExitStatus::Signaled(sig as i32)),
            Ok(_) => None,
            // Not ours any more: count it as gone.
            Err(_) => Some(ExitStatus::Exited(255)),
        }
    }
}

/// Once the loop runs (daemon-reload): the loop spawns and reaps them, a
/// D-Bus thread waits here.
pub struct LoopSpawner {
    pub commands: crate::event_loop::CommandSender,
    waiting: BTreeMap<i32, async_channel::Receiver<ExitStatus>>,
}

impl LoopSpawner {
    pub fn new(commands: crate::event_loop::CommandSender) -> LoopSpawner {
        LoopSpawner {
            commands,
            waiting: BTreeMap::new(),
        }
    }
}

impl Spawner for LoopSpawner {
    fn start(&mut self, request: SpawnRequest) -> Result<i32, String> {
        let (pid, rx) = async_io::block_on(self.commands.call(move |m| m.run_helper_pid(request)))
            .map_err(|_| "relive's loop is gone".to_owned())??;
        self.waiting.insert(pid, rx);
        Ok(pid)
    }

    fn exited(&mut self, pid: i32) -> Option<ExitStatus> {
        self.waiting.get(&pid)?.try_recv().ok()
    }
}

impl std::fmt::Debug for LoopSpawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopSpawner").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each request; every generator "exits" at once, with 0.
    #[derive(Default)]
    struct Recording(Vec<SpawnRequest>);

    impl Spawner for Recording {
        fn start(&mut self, request: SpawnRequest) -> Result<i32, String> {
            self.0.push(request);
            Ok(self.0.len() as i32)
        }

        fn exited(&mut self, _pid: i32) -> Option<ExitStatus> {
            Some(ExitStatus::Exited(0))
        }
    }

    fn two_generators(root: &Path) -> Generators {
        let dir = root.join("gens");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a", "b"] {
            let path = dir.join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Generators {
            dirs: vec![dir],
            output: root.join("out"),
        }
    }

    #[test]
    fn beside_the_restores_every_generator_runs_at_the_nice_asked() {
        let root = std::env::temp_dir().join(format!("relive-gen-nice-{}", std::process::id()));
        let generators = two_generators(&root);
        let mut niced = Recording::default();
        let outcome = generators.run_at(&mut niced, Some(BESIDE_RESTORES_NICE));
        assert_eq!(outcome.ran, ["a", "b"]);
        assert!(niced
            .0
            .iter()
            .all(|r| r.process.nice == Some(BESIDE_RESTORES_NICE)));
        let mut plain = Recording::default();
        generators.run(&mut plain);
        assert!(plain.0.iter().all(|r| r.process.nice.is_none()));
        let _ = std::fs::remove_dir_all(&root);
    }
}
