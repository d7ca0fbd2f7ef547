//! One `criu swrk` process and the requests it serves.
//!
//! CRIU's swrk (criu/cr-service.c, `cr_service_work`) answers one request
//! and exits — except after a PRE_DUMP, when it waits for another PRE_DUMP
//! or the final DUMP. So VERSION, CHECK, DUMP and RESTORE consume the
//! session, and a pre-dump series plus its dump run on one session.
//!
//! While a request runs CRIU may send NOTIFY messages (when the options ask
//! for `notify_scripts`): one per script hook. Each is shown to the caller's
//! callback and acknowledged with success, after which CRIU goes on.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::{CriuError, Request};
use super::log::{last_errors, DEFAULT_LOG};
use super::options::{CheckOptions, DumpOptions, RestoreOptions};
use super::proto::{CriuReq, CriuReqType, CriuResp};
use super::spawn::Spawner;
use super::transport::{socket_pair, Connection, Received};

/// Where CRIU is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criu {
    /// The `criu` binary.
    pub path: PathBuf,
    /// The longest silence tolerated from CRIU while a request runs: the
    /// wait for each message (answer or notification), not for the whole
    /// request. A dump sends nothing until it is done unless notifications
    /// are on, so this bounds the whole dump in practice.
    pub reply_timeout: Duration,
}

impl Criu {
    /// Debian's `criu`.
    pub const DEFAULT_PATH: &'static str = "/usr/sbin/criu";
    /// Generous: a pre-dump of a large tree under TCG takes seconds, and a
    /// cold restore of 200 MB took 10 s in the lab.
    pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(120);

    /// Starts `criu swrk` with `spawner` and connects to it.
    pub fn start(&self, spawner: &dyn Spawner) -> Result<Session, CriuError> {
        self.start_keeping(spawner, &[])
    }

    /// As [`Criu::start`], and CRIU also gets `keep` at the same numbers:
    /// the descriptors a RESTORE's `inherit_fds` name.
    pub fn start_keeping(
        &self,
        spawner: &dyn Spawner,
        keep: &[BorrowedFd<'_>],
    ) -> Result<Session, CriuError> {
        let (ours, theirs) = socket_pair()?;
        let pid = spawner
            .spawn_swrk(&self.path, theirs.as_fd(), keep)
            .map_err(|source| CriuError::Spawn {
                criu: self.path.clone(),
                source,
            })?;
        // Our copy of CRIU's end must go: while it is open here, CRIU's
        // exit would not show as a closed socket, only as a timeout.
        drop(theirs);
        let mut session = Session::over(ours, self.reply_timeout);
        session.pid = pid;
        session.kept = keep.iter().map(|fd| fd.as_raw_fd()).collect();
        Ok(session)
    }
}

impl Default for Criu {
    fn default() -> Criu {
        Criu {
            path: PathBuf::from(Criu::DEFAULT_PATH),
            reply_timeout: Criu::DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// A running `criu swrk` and our end of its socket. Dropping it closes the
/// socket, which makes an idle CRIU exit; a busy or hung one must be killed
/// by [`Session::pid`]. Either way the caller reaps it.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    pid: i32,
    /// Descriptors CRIU inherited at the same numbers (`start_keeping`).
    kept: Vec<RawFd>,
    /// After a PRE_DUMP only PRE_DUMP or DUMP may follow.
    pre_dumped: bool,
}

/// A script hook CRIU reached (`notify_scripts`).
#[derive(Debug)]
pub struct Notification {
    /// The hook: "pre-dump", "network-lock", "post-dump", "network-unlock",
    /// "pre-restore", "setup-namespaces", "post-setup-namespaces",
    /// "pre-resume", "post-resume", "post-restore", "orphan-pts-master" ...
    pub script: String,
    /// The restored root pid; CRIU sends it with "setup-namespaces" and
    /// "post-restore" only.
    pub pid: Option<i32>,
    /// A descriptor sent with the notification (the pty master with
    /// "orphan-pts-master"). Take it to keep it; otherwise it is closed.
    pub fd: Option<OwnedFd>,
    /// Set by the caller to answer with a failure: CRIU then aborts the
    /// request (a restore at "post-restore" kills the restored tasks
    /// before they ever ran).
    pub refuse: bool,
}

/// A successful PRE_DUMP or DUMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOutcome {
    /// CRIU's first logged error and errno. CRIU sends them even on
    /// success, and harmless ones occur (a missing `tun` module).
    pub cr_errmsg: Option<String>,
    pub cr_errno: Option<i32>,
    /// From sending the request to CRIU's answer, notifications included.
    pub elapsed: Duration,
}

/// A successful RESTORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    /// Pid of the restored tree's root (a child of the caller with
    /// `rst_sibling`).
    pub pid: i32,
    /// As in [`DumpOutcome`].
    pub cr_errmsg: Option<String>,
    pub cr_errno: Option<i32>,
    pub elapsed: Duration,
}

/// The optional features CRIU offers on the running kernel, from a
/// FEATURE_CHECK request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Memory tracking (soft-dirty): pre-dumps and incremental dumps.
    pub mem_track: bool,
    /// Lazy restore (userfaultfd, non-cooperative).
    pub lazy_pages: bool,
    /// pidfd_open and pidfd_getfd, for the pidfd store.
    pub pidfd_store: bool,
}

/// CRIU's version, from a VERSION request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriuVersion {
    pub major: i32,
    pub minor: i32,
    pub sublevel: Option<i32>,
    pub extra: Option<i32>,
    pub gitid: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for CriuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(s) = self.sublevel {
            write!(f, ".{s}")?;
        }
        if let Some(e) = self.extra {
            write!(f, ".{e}")?;
        }
        if let Some(g) = &self.gitid {
            write!(f, " ({g})")?;
        }
        Ok(())
    }
}

impl Session {
    /// A session over an already connected socket (tests: a fake CRIU).
    pub(crate) fn over(sock: OwnedFd, reply_timeout: Duration) -> Session {
        Session {
            conn: Connection::new(sock, reply_timeout),
            pid: 0,
            kept: Vec::new(),
            pre_dumped: false,
        }
    }

    /// The pid of `criu swrk`, to kill it after a timeout and to recognise
    /// it when reaping.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Asks CRIU for its version. CRIU exits afterwards.
    pub fn version(mut self) -> Result<CriuVersion, CriuError> {
        let request = Request::Version;
        self.fresh(request)?;
        let (resp, _) = self.exchange(request, None, None, &mut |_| {})?;
        let v = resp.version.ok_or_else(|| CriuError::Unexpected {
            request,
            got: "VERSION without a version".to_owned(),
        })?;
        Ok(CriuVersion {
            major: v.major_number,
            minor: v.minor_number,
            sublevel: v.sublevel,
            extra: v.extra,
            gitid: v.gitid,
            name: v.name,
        })
    }

    /// Runs CRIU's own checks of the kernel (`criu check`). CRIU exits
    /// afterwards. CRIU 3.17.1 answers a failed CHECK without a reason; the
    /// error carries the last errors of its log instead.
    pub fn check(mut self, opts: &CheckOptions<'_>) -> Result<(), CriuError> {
        let request = Request::Check;
        self.fresh(request)?;
        let log = Log::of(opts.images_dir, opts.log_file.as_deref());
        let opts = opts.to_proto()?;
        self.exchange(request, Some(opts), Some(log), &mut |_| {})?;
        Ok(())
    }

    /// Lets CRIU learn the running kernel (its kerndat, cached in
    /// /run/criu.kdat for every later CRIU) and answer which of the
    /// optional features it offers. No image directory, no log; CRIU
    /// exits afterwards. Much less than [`Session::check`], which also
    /// runs every test of `criu check`.
    pub fn feature_check(mut self) -> Result<Features, CriuError> {
        let request = Request::FeatureCheck;
        self.fresh(request)?;
        let asked = super::proto::CriuFeatures {
            mem_track: Some(true),
            lazy_pages: Some(true),
            pidfd_store: Some(true),
        };
        let req = CriuReq {
            r#type: req_type(request) as i32,
            features: Some(asked),
            ..CriuReq::default()
        };
        let (resp, _) = self.exchange_req(request, req, None, &mut |_| {})?;
        let got = resp.features.ok_or_else(|| CriuError::Unexpected {
            request,
            got: "FEATURE_CHECK without features".to_owned(),
        })?;
        Ok(Features {
            mem_track: got.mem_track.unwrap_or(false),
            lazy_pages: got.lazy_pages.unwrap_or(false),
            pidfd_store: got.pidfd_store.unwrap_or(false),
        })
    }

    /// Pre-dumps the tree (memory only; the tasks keep running). CRIU
    /// stays for another PRE_DUMP or the final [`Session::dump`]; after a
    /// failure it has exited, and further requests fail as closed.
    pub fn pre_dump(
        &mut self,
        opts: &DumpOptions<'_>,
        mut on_notify: impl FnMut(&mut Notification),
    ) -> Result<DumpOutcome, CriuError> {
        let request = Request::PreDump;
        let log = Log::of(opts.images_dir, opts.log_file.as_deref());
        let opts = opts.to_proto(request)?;
        let (resp, elapsed) = self.exchange(request, Some(opts), Some(log), &mut on_notify)?;
        self.pre_dumped = true;
        Ok(dump_outcome(resp, elapsed))
    }

    /// Dumps the tree: the final, incremental dump after pre-dumps, or a
    /// full one. CRIU exits afterwards.
    pub fn dump(
        mut self,
        opts: &DumpOptions<'_>,
        mut on_notify: impl FnMut(&mut Notification),
    ) -> Result<DumpOutcome, CriuError> {
        let request = Request::Dump;
        let log = Log::of(opts.images_dir, opts.log_file.as_deref());
        let opts = opts.to_proto(request)?;
        let (resp, elapsed) = self.exchange(request, Some(opts), Some(log), &mut on_notify)?;
        Ok(dump_outcome(resp, elapsed))
    }

    /// Restores a tree. CRIU exits afterwards; the restored tasks run on.
    /// With `rst_sibling` the tasks are the caller's children from the
    /// start, so when a restore fails half-way the caller also reaps the
    /// tasks CRIU killed.
    pub fn restore(
        mut self,
        opts: &RestoreOptions<'_>,
        mut on_notify: impl FnMut(&mut Notification),
    ) -> Result<RestoreOutcome, CriuError> {
        let request = Request::Restore;
        self.fresh(request)?;
        if let Some(i) = opts
            .inherit_fds
            .iter()
            .find(|i| !self.kept.contains(&i.fd.as_raw_fd()))
        {
            return Err(CriuError::InvalidOption {
                request,
                option: "inherit_fds",
                reason: format!(
                    "descriptor {} ({}) was not passed to Criu::start_keeping",
                    i.fd.as_raw_fd(),
                    i.key
                ),
            });
        }
        let log = Log::of(opts.images_dir, opts.log_file.as_deref());
        let opts = opts.to_proto()?;
        let (resp, elapsed) = self.exchange(request, Some(opts), Some(log), &mut on_notify)?;
        let pid = resp.restore.as_ref().map(|r| r.pid).unwrap_or(-1);
        if pid <= 0 {
            return Err(CriuError::Unexpected {
                request,
                got: format!("RESTORE success without a valid pid ({pid})"),
            });
        }
        Ok(RestoreOutcome {
            pid,
            cr_errmsg: resp.cr_errmsg,
            cr_errno: resp.cr_errno,
            elapsed,
        })
    }

    /// Refuses requests CRIU would reject after a PRE_DUMP ("Bad req seq").
    fn fresh(&self, request: Request) -> Result<(), CriuError> {
        if self.pre_dumped {
            return Err(CriuError::Sequence { request });
        }
        Ok(())
    }

    /// Sends `request` and reads until its answer, acknowledging each
    /// notification on the way. Returns the answer (checked for success)
    /// and the time it took.
    fn exchange(
        &mut self,
        request: Request,
        opts: Option<super::proto::CriuOpts>,
        log: Option<Log<'_>>,
        on_notify: &mut dyn FnMut(&mut Notification),
    ) -> Result<(CriuResp, Duration), CriuError> {
        let req = CriuReq {
            r#type: req_type(request) as i32,
            opts,
            ..CriuReq::default()
        };
        self.exchange_req(request, req, log, on_notify)
    }

    /// [`Session::exchange`] with the whole request given.
    fn exchange_req(
        &mut self,
        request: Request,
        req: CriuReq,
        log: Option<Log<'_>>,
        on_notify: &mut dyn FnMut(&mut Notification),
    ) -> Result<(CriuResp, Duration), CriuError> {
        let expected = req_type(request);
        let start = Instant::now();
        self.conn.send(request, &req)?;
        loop {
            let Received { resp, fd } = self.conn.recv(request)?;
            let kind = CriuReqType::try_from(resp.r#type);
            if kind == Ok(CriuReqType::Notify) {
                let n = resp.notify.unwrap_or_default();
                let mut note = Notification {
                    script: n.script.unwrap_or_default(),
                    pid: n.pid,
                    fd,
                    refuse: false,
                };
                on_notify(&mut note);
                // CRIU waits for this before going on; false makes it
                // abort the request ("RPC client reported script error").
                self.conn.send(request, &notify_ack(!note.refuse))?;
                continue;
            }
            if kind == Ok(expected) || (kind == Ok(CriuReqType::Empty) && !resp.success) {
                // EMPTY is how CRIU answers a request it rejected outright.
                if !resp.success {
                    return Err(CriuError::Failed {
                        request,
                        errno: resp.cr_errno,
                        message: resp.cr_errmsg,
                        log_errors: log.map(Log::errors).unwrap_or_default(),
                    });
                }
                return Ok((resp, start.elapsed()));
            }
            return Err(CriuError::Unexpected {
                request,
                got: kind
                    .map(|k| k.as_str_name().to_owned())
                    .unwrap_or_else(|_| format!("unknown type {}", resp.r#type)),
            });
        }
    }
}

/// Where CRIU writes its log for a request: the images directory.
#[derive(Clone, Copy)]
struct Log<'a> {
    dir: BorrowedFd<'a>,
    name: &'a str,
}

impl<'a> Log<'a> {
    fn of(dir: BorrowedFd<'a>, name: Option<&'a str>) -> Log<'a> {
        Log {
            dir,
            name: name.unwrap_or(DEFAULT_LOG),
        }
    }

    fn errors(self) -> Vec<String> {
        last_errors(self.dir, self.name)
    }
}

fn req_type(request: Request) -> CriuReqType {
    match request {
        Request::Version => CriuReqType::Version,
        Request::Check => CriuReqType::Check,
        Request::PreDump => CriuReqType::PreDump,
        Request::Dump => CriuReqType::Dump,
        Request::Restore => CriuReqType::Restore,
        Request::FeatureCheck => CriuReqType::FeatureCheck,
    }
}

fn notify_ack(success: bool) -> CriuReq {
    CriuReq {
        r#type: CriuReqType::Notify as i32,
        notify_success: Some(success),
        ..CriuReq::default()
    }
}

fn dump_outcome(resp: CriuResp, elapsed: Duration) -> DumpOutcome {
    DumpOutcome {
        cr_errmsg: resp.cr_errmsg,
        cr_errno: resp.cr_errno,
        elapsed,
    }
}
