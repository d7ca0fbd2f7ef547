//! Lazy restore: a unit's processes run again before their memory is
//! back.
//!
//! CRIU rebuilds the processes without the pages a dump marked lazy and
//! hands each process's userfaultfd to its lazy-pages daemon, which
//! relive starts beside the restore. A page a process touches is asked of
//! relive's page server ([`server`]) and copied in; once the restore is
//! done the daemon asks for all the rest, in the background. relive's
//! page server reads the pages from the store through the manifest's
//! block checksums, so a page that fails its check is never served: the
//! unit's processes are killed first, and the unit is started afresh,
//! its state reported lost. The restore reads a view of the images
//! ([`view`]) in which every lazy page, wherever in the pre-dump chain,
//! is left to the page server.
//!
//! The daemon's own end: when it exits with an error (or its exit is not
//! seen), the processes it served may have been given empty pages where
//! it failed, so they are killed too.

pub mod server;
pub mod view;

#[cfg(test)]
mod tests;

use relive_api::report::{LazyFigures, UnitRecord};
use relive_host::{StartedHelper, UnitHost};
use relive_store::pages::PageSource;
use relive_store::Store;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The daemon's log, in the view, kept with CRIU's other logs.
pub const DAEMON_LOG: &str = relive_store::store::LAZY_PAGES_LOG;

/// The page servers running: relive must not re-execute while one is
/// (its thread would be gone, the daemon's connection with it, and the
/// processes it serves would be given empty pages).
static SERVING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many lazily restored units still have pages to be served.
pub fn serving() -> usize {
    SERVING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Counts a page server from its start to its thread's end.
struct Counted;

impl Counted {
    fn new() -> Counted {
        SERVING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        SERVING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How long the daemon may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Why a unit cannot be restored lazily; it is restored whole instead.
#[derive(Debug, thiserror::Error)]
pub enum LazyError {
    #[error(transparent)]
    View(#[from] view::ViewError),
    #[error(transparent)]
    Store(#[from] relive_store::StoreError),
    #[error("{0}")]
    Daemon(String),
}

/// A lazy restore under way: the daemon listens, the page server
/// answers it on a thread of its own.
#[derive(Debug)]
pub struct Lazy {
    /// The images CRIU restores from.
    pub view_dir: PathBuf,
    daemon_pid: i32,
    figures: LazyFigures,
    server: std::thread::JoinHandle<Tail>,
}

/// How the page server and the daemon ended.
#[derive(Debug)]
struct Tail {
    served: server::Served,
    failure: Option<String>,
    /// When the server started.
    started: Instant,
}

/// Makes the view of `record`'s images, starts the page server and
/// CRIU's lazy-pages daemon (with `criu`), and waits until the daemon
/// listens: the restore may start.
pub fn start(
    host: &dyn UnitHost,
    criu: &Path,
    store: &Store,
    record: &UnitRecord,
) -> Result<Lazy, LazyError> {
    let source = store.page_source(&record.name)?;
    let view_dir = source.dir().join(relive_store::store::LAZY_VIEW);
    let made = view::make(&source, &view_dir)?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| LazyError::Daemon(format!("socketpair: {e}")))?;
    let (ready_read, ready_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| LazyError::Daemon(format!("pipe: {e}")))?;
    let dir = view_dir.display().to_string();
    let (socket_fd, ready_fd) = (
        theirs.as_raw_fd().to_string(),
        ready_write.as_raw_fd().to_string(),
    );
    let criu_path = criu.display().to_string();
    let argv = [
        criu_path.as_str(),
        "lazy-pages",
        "--page-server",
        "--ps-socket",
        &socket_fd,
        "--images-dir",
        &dir,
        "--work-dir",
        &dir,
        "--status-fd",
        &ready_fd,
        "--log-file",
        DAEMON_LOG,
        "-v2",
    ];
    let daemon = host
        .start_helper(&argv, &[theirs.as_raw_fd(), ready_write.as_raw_fd()])
        .map_err(|e| LazyError::Daemon(e.to_string()))?;
    // It alone holds the processes' userfaultfds: killed by the OOM
    // killer, it would leave them empty pages.
    let _ = std::fs::write(format!("/proc/{}/oom_score_adj", daemon.pid), "-1000");
    drop(theirs);
    drop(ready_write);
    if let Err(e) = wait_ready(ready_read) {
        // It never listened: no restore has used it. Ended, if it still
        // runs (not ready in time), before its exit is waited for.
        let _ = std::fs::remove_dir_all(&view_dir);
        drop(ours);
        kill_daemon(daemon.pid);
        let status = (daemon.exit)();
        return Err(LazyError::Daemon(format!(
            "CRIU's lazy-pages daemon did not start ({e}; it ended {})",
            status.map_or("unseen".into(), |s| s.describe())
        )));
    }
    let figures = LazyFigures {
        lazy_bytes: made.lazy_bytes,
        eager_bytes: made.eager_bytes,
        ..LazyFigures::default()
    };
    let daemon_pid = daemon.pid;
    let serving = Serving {
        cgroup: crate::cgroup_dir(&record.cgroup),
        unit: record.name.clone(),
        damage: damage_injected(store, &record.name, &made),
        made,
        source,
        daemon,
    };
    let counted = Counted::new();
    let server = std::thread::Builder::new()
        .name("relive-pages".into())
        .spawn(move || {
            let _counted = counted;
            serving.until_done(ours)
        })
        .map_err(|e| LazyError::Daemon(format!("cannot start the page server's thread: {e}")))?;
    Ok(Lazy {
        view_dir,
        daemon_pid,
        figures,
        server,
    })
}

/// Waits for the daemon's word that it listens (`--status-fd`).
fn wait_ready(ready: std::os::fd::OwnedFd) -> Result<(), String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let timeout =
        PollTimeout::try_from(READY_WITHIN.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(0) => return Err(format!("not ready within {} s", READY_WITHIN.as_secs())),
        Ok(_) => {}
        Err(e) => return Err(format!("poll: {e}")),
    }
    let mut byte = [0u8; 1];
    match std::fs::File::from(ready).read(&mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err("it exited before it listened".into()),
        Err(e) => Err(format!("its status: {e}")),
    }
}

/// What the page server's thread serves, and for whom.
struct Serving {
    made: view::View,
    source: PageSource,
    daemon: StartedHelper,
    /// The unit's cgroup directory, killed on a failure.
    cgroup: PathBuf,
    unit: String,
    /// The lab's injected damage, if any.
    damage: Option<(PathBuf, u64)>,
}

impl Serving {
    /// The page server's thread: serves until the daemon hangs up, then
    /// waits for the daemon's exit. On any failure the unit's processes are
    /// killed before the daemon's connection is dropped, so that no process
    /// runs on with a page it was not given.
    fn until_done(self, mut ours: UnixStream) -> Tail {
        let Serving {
            made,
            source,
            daemon,
            cgroup,
            unit,
            mut damage,
        } = self;
        let (cgroup, unit, logs_to) = (cgroup.as_path(), unit.as_str(), source.dir().to_owned());
        let started = Instant::now();
        let mut after_each = |_: &server::Served| {
            if let Some((path, offset)) = damage.take() {
                damage_store(&path, offset);
            }
        };
        let served = server::serve(&mut ours, &made.lazy, &source, &mut after_each);
        let mut failure = match &served {
            Ok(done) if done.closed => None,
            Ok(_) => Some("the lazy-pages daemon hung up before it was done".to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = &failure {
            kill_unit(cgroup, unit, why);
        }
        drop(ours);
        let status = (daemon.exit)();
        if failure.is_none() && !status.is_some_and(|s| s.success()) {
            let why = format!(
                "CRIU's lazy-pages daemon failed ({})",
                status.map_or("its exit unseen".into(), |s| s.describe())
            );
            kill_unit(cgroup, unit, &why);
            failure = Some(why);
        }
        // When the server refused, the daemon's error is only the hang-up.
        let daemon_failed = served.is_ok();
        let said = daemon_failed
            .then(|| first_error(&made.dir.join(DAEMON_LOG)))
            .flatten();
        if let (Some(why), Some(said)) = (&mut failure, said) {
            tracing::error!("{unit}: CRIU's lazy-pages daemon said: {said}");
            why.push_str(&format!(" (its log: {said})"));
        }
        for log in [DAEMON_LOG, "restore.log"] {
            let _ = std::fs::copy(made.dir.join(log), logs_to.join(log));
        }
        let _ = std::fs::remove_dir_all(&made.dir);
        Tail {
            served: served.unwrap_or_default(),
            failure,
            started,
        }
    }
}

/// With the lab's `lazy-pages-damaged UNIT`: where to flip a byte once
/// the first page is served, in a page yet to be served (the middle of
/// the largest lazy piece).
#[cfg(feature = "fault-injection")]
fn damage_injected(store: &Store, unit: &str, made: &view::View) -> Option<(PathBuf, u64)> {
    use relive_host::fault::{self, Fault};
    if !fault::injected_in_store(&store.root, Fault::LazyPagesDamaged, unit) {
        return None;
    }
    let piece = made
        .lazy
        .values()
        .flatten()
        .max_by_key(|p| p.end - p.start)?;
    let middle = piece.offset + (piece.end - piece.start) / 2;
    Some((
        store.root.join("images").join(unit).join(&piece.file),
        middle,
    ))
}

#[cfg(not(feature = "fault-injection"))]
fn damage_injected(_: &Store, _: &str, _: &view::View) -> Option<(PathBuf, u64)> {
    None
}

#[cfg(feature = "fault-injection")]
fn damage_store(path: &Path, offset: u64) {
    match relive_host::fault::flip_byte(path, offset) {
        Ok(()) => tracing::warn!(
            "injected fault: flipped byte {offset} of {}",
            path.display()
        ),
        Err(e) => tracing::warn!("injected fault lazy-pages-damaged: {}: {e}", path.display()),
    }
}

#[cfg(not(feature = "fault-injection"))]
fn damage_store(_: &Path, _: u64) {}

/// The first error CRIU's log at `path` names, but those of the socket
/// options the daemon sets for TCP, which relive's socketpair refuses.
fn first_error(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.contains("Error (") && !l.contains("TCP_CORK") && !l.contains("TCP_NODELAY"))
        .map(|l| l.trim().to_owned())
}

/// Ends CRIU's lazy-pages daemon (SIGKILL): it waits for a restore that
/// will not come.
fn kill_daemon(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
}

/// Kills every process of the unit's cgroup (cgroup.kill), at once.
fn kill_unit(cgroup: &Path, unit: &str, why: &str) {
    tracing::error!("{unit}: {why}: its processes are killed, and it starts afresh");
    if let Err(e) = std::fs::write(cgroup.join("cgroup.kill"), "1") {
        tracing::error!("{unit}: {}: {e}", cgroup.join("cgroup.kill").display());
    }
}

impl Lazy {
    /// Ends a lazy restore whose restore failed: the daemon may still
    /// wait for it.
    pub fn abandon(self) {
        kill_daemon(self.daemon_pid);
        let _ = self.server.join();
    }

    /// Waits for the lazy tail's end; `running_since`: when the
    /// processes ran again. The figures, the failure's reason in them.
    pub fn finish(self, running_since: Instant) -> LazyFigures {
        let mut figures = self.figures;
        match self.server.join() {
            Ok(tail) => {
                figures.served_bytes = tail.served.bytes;
                figures.requests = tail.served.requests;
                figures.tail_ms = (tail.served.requests > 0).then(|| {
                    let last =
                        tail.started + Duration::from_secs_f64(tail.served.last_page_ms / 1000.0);
                    last.saturating_duration_since(running_since).as_secs_f64() * 1000.0
                });
                figures.failure = tail.failure;
            }
            Err(_) => figures.failure = Some("relive's page server panicked".into()),
        }
        figures
    }
}
