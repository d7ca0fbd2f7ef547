//! The control API: D-Bus, peer-to-peer, on a private root-only socket.
//!
//! Each client connection gets its own thread and zbus connection. Every
//! method checks the caller's uid (SO_PEERCRED, taken when the connection
//! was accepted), then hands a closure to the manager's loop, or a request
//! to [`crate::upgrade::Upgrades`], and awaits the answer: this module only
//! translates between D-Bus and those calls.

use crate::control;
use crate::event_loop::CommandSender;
use crate::manager::state::JobKind;
use crate::manager::ManagerError;
use relive_api::names::{errors, OBJECT_PATH};
use relive_api::progress::Progress;
use relive_api::units::{UnitStatus, UnitSummary};
use relive_sys::machine::ShutdownKind;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use zbus::names::ErrorName;
use zbus::object_server::SignalEmitter;
use zbus::DBusError;

/// Errors as D-Bus error names; the message is the human explanation.
#[derive(Debug)]
pub enum ApiError {
    AccessDenied(String),
    NoSuchUnit(String),
    JobFailed(String),
    Refused(String),
    ZBus(zbus::Error),
}

impl ApiError {
    /// Its D-Bus error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            ApiError::AccessDenied(_) => errors::ACCESS_DENIED,
            ApiError::NoSuchUnit(_) => errors::NO_SUCH_UNIT,
            ApiError::JobFailed(_) => errors::JOB_FAILED,
            ApiError::Refused(_) => errors::REFUSED,
            ApiError::ZBus(_) => errors::FAILED,
        }
    }
}

impl From<zbus::Error> for ApiError {
    fn from(e: zbus::Error) -> Self {
        ApiError::ZBus(e)
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        let text = e.to_string();
        match e {
            ManagerError::NoSuchUnit { .. } => ApiError::NoSuchUnit(text),
            ManagerError::JobFailed(_) => ApiError::JobFailed(text),
            ManagerError::Refused(_) | ManagerError::BadSetting(_) => ApiError::Refused(text),
        }
    }
}

impl zbus::DBusError for ApiError {
    fn create_reply(&self, header: &zbus::message::Header<'_>) -> zbus::Result<zbus::Message> {
        zbus::Message::error(header, self.name())?.build(&(self.description().unwrap_or_default(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(self.error_name())
    }

    fn description(&self) -> Option<&str> {
        match self {
            ApiError::AccessDenied(m)
            | ApiError::NoSuchUnit(m)
            | ApiError::JobFailed(m)
            | ApiError::Refused(m) => Some(m),
            ApiError::ZBus(_) => None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::ZBus(e) => write!(f, "{e}"),
            other => write!(f, "{}", other.description().unwrap_or_default()),
        }
    }
}

impl std::error::Error for ApiError {}

/// The object served to one client.
struct ManagerApi {
    uid: u32,
    commands: CommandSender,
}

impl ManagerApi {
    fn require_root(&self) -> Result<(), ApiError> {
        if self.uid == 0 {
            Ok(())
        } else {
            Err(ApiError::AccessDenied(format!(
                "uid {} may not use relive's control API: root only",
                self.uid
            )))
        }
    }

    async fn job(&self, name: String, kind: JobKind) -> Result<(), ApiError> {
        self.require_root()?;
        control::job(&self.commands, name, kind).await
    }

    async fn shutdown(&self, kind: ShutdownKind) -> Result<(), ApiError> {
        self.require_root()?;
        control::shutdown(&self.commands, kind).await
    }
}

#[zbus::interface(name = "org.relive.Manager1")]
impl ManagerApi {
    async fn list_units(&self) -> Result<Vec<UnitSummary>, ApiError> {
        self.require_root()?;
        Ok(self.commands.call(|m| m.list_units()).await?)
    }

    async fn list_sockets(&self) -> Result<Vec<relive_api::units::SocketSummary>, ApiError> {
        self.require_root()?;
        Ok(self.commands.call(|m| m.list_sockets()).await?)
    }

    async fn list_timers(&self) -> Result<Vec<relive_api::units::TimerSummary>, ApiError> {
        self.require_root()?;
        Ok(self.commands.call(|m| m.list_timers()).await?)
    }

    async fn get_unit(&self, name: String) -> Result<UnitStatus, ApiError> {
        self.require_root()?;
        control::get_unit(&self.commands, name).await
    }

    /// The protections a service runs with, as JSON
    /// (`Vec<relive_api::units::SecurityCheck>`).
    async fn unit_security(&self, name: String) -> Result<String, ApiError> {
        self.require_root()?;
        control::unit_security(&self.commands, name).await
    }

    async fn start_unit(&self, name: String) -> Result<(), ApiError> {
        self.job(name, JobKind::Start).await
    }

    async fn stop_unit(&self, name: String) -> Result<(), ApiError> {
        self.job(name, JobKind::Stop).await
    }

    async fn restart_unit(&self, name: String) -> Result<(), ApiError> {
        self.job(name, JobKind::Restart).await
    }

    async fn reload_unit(&self, name: String) -> Result<(), ApiError> {
        self.job(name, JobKind::Reload).await
    }

    async fn daemon_reload(&self) -> Result<(), ApiError> {
        self.require_root()?;
        control::daemon_reload(&self.commands).await
    }

    async fn daemon_reexec(&self) -> Result<(), ApiError> {
        self.require_root()?;
        control::daemon_reexec(&self.commands).await
    }

    // The arguments are the method's D-Bus signature.
    #[allow(clippy::too_many_arguments)]
    async fn live_upgrade(
        &self,
        #[zbus(connection)] connection: &zbus::Connection,
        kernel: String,
        initrd: String,
        append: String,
        reuse_cmdline: bool,
        dry_run: bool,
        options: HashMap<String, String>,
    ) -> Result<String, ApiError> {
        self.require_root()?;
        let args =
            control::UpgradeArgs::from((kernel, initrd, append, reuse_cmdline, dry_run, options));
        // Progress goes to the caller as signals. On success the machine
        // kexecs and this call never returns.
        let emitter = SignalEmitter::new(connection, OBJECT_PATH)?.into_owned();
        control::live_upgrade(&self.commands, args, move |p: Progress| {
            let _ = async_io::block_on(ManagerApi::progress(
                &emitter,
                p.phase.as_str(),
                &p.unit,
                p.bytes,
                &p.message,
            ));
        })
        .await
    }

    /// Like LiveUpgrade, but returns the plan as soon as the preflight
    /// passed; the upgrade goes on once every control client has
    /// disconnected (progress in relive's log only).
    async fn start_live_upgrade(
        &self,
        kernel: String,
        initrd: String,
        append: String,
        reuse_cmdline: bool,
        options: HashMap<String, String>,
    ) -> Result<String, ApiError> {
        self.require_root()?;
        let args =
            control::UpgradeArgs::from((kernel, initrd, append, reuse_cmdline, false, options));
        control::start_live_upgrade(&self.commands, args).await
    }

    /// Runs phase 1 now and keeps it as a warm snapshot (JSON), which the
    /// next upgrade tops up. Returns when the pre-dumps are done.
    async fn prepare_live_upgrade(&self) -> Result<String, ApiError> {
        self.require_root()?;
        control::prepare_live_upgrade(&self.commands).await
    }

    /// Cancels the upgrade under way before its stoppage (JSON answer).
    async fn cancel_live_upgrade(&self) -> Result<String, ApiError> {
        self.require_root()?;
        control::cancel_live_upgrade()
    }

    /// Wipes the warm snapshot; true if there was one.
    async fn discard_live_upgrade(&self) -> Result<bool, ApiError> {
        self.require_root()?;
        control::discard_live_upgrade(&self.commands).await
    }

    async fn upgrade_report(&self) -> Result<String, ApiError> {
        self.require_root()?;
        control::upgrade_report()
    }

    /// One step of a running live upgrade.
    #[zbus(signal)]
    async fn progress(
        emitter: &SignalEmitter<'_>,
        phase: &str,
        unit: &str,
        bytes: u64,
        message: &str,
    ) -> zbus::Result<()>;

    async fn power_off(&self) -> Result<(), ApiError> {
        self.shutdown(ShutdownKind::PowerOff).await
    }

    async fn reboot(&self) -> Result<(), ApiError> {
        self.shutdown(ShutdownKind::Reboot).await
    }

    async fn halt(&self) -> Result<(), ApiError> {
        self.shutdown(ShutdownKind::Halt).await
    }
}

impl From<crate::event_loop::LoopGone> for ApiError {
    fn from(_: crate::event_loop::LoopGone) -> Self {
        ApiError::Refused("relive's main loop is not answering".into())
    }
}

/// Binds the control socket (root-only) and serves it from a thread.
/// Returns the listening socket's descriptor, which a re-exec hands on.
pub fn serve(path: &Path, commands: CommandSender) -> io::Result<RawFd> {
    if let Some(dir) = path.parent() {
        own_directory(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    serve_listener(listener, commands)
}

/// Makes `dir` (relive's own, under /run) exist as root's, mode 0755: a
/// directory found there owned by someone else, or writable by others,
/// is taken back (whoever could write there could replace the socket).
fn own_directory(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let own_uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != own_uid || meta.mode() & 0o022 != 0 {
        tracing::warn!(
            "{}: owned by uid {} with mode {:o}: taking it back (uid {own_uid}, 0755)",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        );
        std::os::unix::fs::chown(dir, Some(own_uid), None)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Serves an already bound socket (one inherited across a re-exec).
pub fn serve_listener(listener: UnixListener, commands: CommandSender) -> io::Result<RawFd> {
    let fd = listener.as_raw_fd();
    std::thread::Builder::new()
        .name("dbus-accept".into())
        .spawn(move || accept_loop(listener, commands, serve_client))?;
    Ok(fd)
}

/// Serves one accepted connection: the stream, the peer's uid.
pub(crate) type ServeClient = fn(UnixStream, u32, CommandSender);

/// Control connections served at once at most; more wait in the
/// socket's backlog until one ends.
const MAX_CLIENTS: usize = 128;

/// Accepts connections, one thread each, MAX_CLIENTS at a time. An accept
/// that fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM) is retried after a pause: never a busy loop.
pub(crate) fn accept_loop(listener: UnixListener, commands: CommandSender, serve: ServeClient) {
    let mut failures: u64 = 0;
    loop {
        while crate::clients::open() >= MAX_CLIENTS {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                failures += 1;
                // One line per 100 failures: the log is not flooded either.
                if failures % 100 == 1 {
                    tracing::warn!("control socket: accept failed ({failures} so far): {e}");
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let cred =
            match nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
            {
                Ok(cred) => cred,
                Err(e) => {
                    tracing::warn!("control socket: no peer credentials: {e}");
                    continue;
                }
            };
        let counted = crate::clients::Counted::new(cred.pid());
        let commands = commands.clone();
        let spawned = std::thread::Builder::new()
            .name("dbus-client".into())
            .spawn(move || {
                let _counted = counted;
                serve(stream, cred.uid(), commands)
            });
        if let Err(e) = spawned {
            tracing::error!("control socket: cannot start a client thread: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The server side of a peer-to-peer D-Bus connection on `stream`, whose
/// peer has `uid`.
pub(crate) fn p2p_server(
    stream: UnixStream,
    uid: u32,
) -> io::Result<zbus::blocking::connection::Builder<'static>> {
    let socket = std::sync::Arc::new(async_io::Async::new(stream)?);
    let read = KnownPeer {
        stream: socket.clone(),
        uid,
    };
    let split: zbus::connection::socket::BoxedSplit =
        zbus::connection::socket::Split::new(Box::new(read), Box::new(socket));
    zbus::blocking::connection::Builder::socket(split)
        .server(zbus::Guid::generate())
        .map(|b| b.p2p())
        .map_err(io::Error::other)
}

fn serve_client(stream: UnixStream, uid: u32, commands: CommandSender) {
    let builder = match p2p_server(stream, uid) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("control socket: {e}");
            return;
        }
    };
    let connection = builder
        .serve_at(OBJECT_PATH, ManagerApi { uid, commands })
        .and_then(|b| b.build());
    let connection = match connection {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("control socket: handshake failed: {e}");
            return;
        }
    };
    // The object server answers calls on zbus's own executor; this thread
    // only keeps the connection open until the client goes away.
    for message in zbus::blocking::MessageIterator::from(&connection) {
        if message.is_err() {
            break;
        }
    }
}

/// The read half of an accepted connection, with the peer's uid taken at
/// accept time. zbus's own lookup of peer credentials fails for a client in
/// an ancestor PID namespace (SO_PEERCRED reports PID 0 there, e.g. the host
/// steering a sandbox) and resolves group lists through NSS, which PID 1
/// must not call: the uid is all the EXTERNAL authentication needs.
#[derive(Debug)]
struct KnownPeer {
    stream: std::sync::Arc<async_io::Async<UnixStream>>,
    uid: u32,
}

#[async_trait::async_trait]
impl zbus::connection::socket::ReadHalf for KnownPeer {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        zbus::connection::socket::ReadHalf::recvmsg(&mut self.stream, buf).await
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }

    async fn peer_credentials(&mut self) -> io::Result<zbus::fdo::ConnectionCredentials> {
        Ok(zbus::fdo::ConnectionCredentials::default().set_unix_user_id(self.uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_writable_socket_directory_is_taken_back() {
        let dir = std::env::temp_dir().join(format!("relive-own-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        own_directory(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(mode, 0o755);
    }
}
