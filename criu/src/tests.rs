//! The client against a fake CRIU: a thread on the other end of a socket
//! pair that reads a request and answers as CRIU would.

use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::socket::{recv, send, sendmsg, ControlMessage, MsgFlags, UnixAddr};
use prost::Message;

use super::proto::{
    CriuDumpResp, CriuFeatures, CriuNotify, CriuReq, CriuReqType, CriuResp, CriuRestoreResp,
    CriuVersion as PbVersion,
};
use super::transport::socket_pair;
use super::*;

/// The CRIU side of the socket.
struct Peer(OwnedFd);

impl Peer {
    fn recv(&self) -> CriuReq {
        let mut buf = vec![0u8; 65536];
        let n = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        CriuReq::decode(&buf[..n]).unwrap()
    }

    fn send(&self, resp: &CriuResp) {
        self.send_raw(&resp.encode_to_vec());
    }

    fn send_raw(&self, bytes: &[u8]) {
        send(self.0.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL).unwrap();
    }

    /// As CRIU's send_fds: the message with one descriptor (SCM_RIGHTS).
    fn send_with_fd(&self, resp: &CriuResp, fd: BorrowedFd<'_>) {
        let bytes = resp.encode_to_vec();
        let fds = [fd.as_raw_fd()];
        sendmsg::<UnixAddr>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .unwrap();
    }

    fn notify(&self, script: &str, pid: Option<i32>) -> CriuResp {
        CriuResp {
            r#type: CriuReqType::Notify as i32,
            success: true,
            notify: Some(CriuNotify {
                script: Some(script.to_owned()),
                pid,
            }),
            ..CriuResp::default()
        }
    }

    /// Reads the client's notify acknowledgement.
    fn expect_ack(&self) {
        let ack = self.recv();
        assert_eq!(ack.r#type, CriuReqType::Notify as i32);
        assert_eq!(ack.notify_success, Some(true));
    }
}

fn answer(kind: CriuReqType, success: bool) -> CriuResp {
    CriuResp {
        r#type: kind as i32,
        success,
        ..CriuResp::default()
    }
}

/// A session whose CRIU is `peer`, run in a thread.
fn fake(timeout: Duration, peer: impl FnOnce(Peer) + Send + 'static) -> (Session, JoinHandle<()>) {
    let (ours, theirs) = socket_pair().unwrap();
    let handle = thread::spawn(move || peer(Peer(theirs)));
    (Session::over(ours, timeout), handle)
}

const LONG: Duration = Duration::from_secs(10);

fn images() -> File {
    File::open("/").unwrap()
}

#[test]
fn feature_check_asks_for_every_feature_and_reads_the_answer() {
    let (session, peer) = fake(LONG, |p| {
        let req = p.recv();
        assert_eq!(req.r#type, CriuReqType::FeatureCheck as i32);
        assert!(req.opts.is_none());
        let asked = req.features.unwrap();
        assert_eq!(
            (asked.mem_track, asked.lazy_pages, asked.pidfd_store),
            (Some(true), Some(true), Some(true))
        );
        let mut resp = answer(CriuReqType::FeatureCheck, true);
        resp.features = Some(CriuFeatures {
            mem_track: Some(false),
            lazy_pages: Some(true),
            pidfd_store: Some(true),
        });
        p.send(&resp);
    });
    let features = session.feature_check().unwrap();
    peer.join().unwrap();
    assert_eq!(
        features,
        Features {
            mem_track: false,
            lazy_pages: true,
            pidfd_store: true
        }
    );
}

#[test]
fn version_request_and_answer() {
    let (session, peer) = fake(LONG, |p| {
        let req = p.recv();
        assert_eq!(req.r#type, CriuReqType::Version as i32);
        assert!(req.opts.is_none());
        let mut resp = answer(CriuReqType::Version, true);
        resp.version = Some(PbVersion {
            major_number: 3,
            minor_number: 17,
            sublevel: Some(1),
            gitid: Some("v3.17.1".into()),
            ..PbVersion::default()
        });
        p.send(&resp);
    });
    let v = session.version().unwrap();
    peer.join().unwrap();
    assert_eq!((v.major, v.minor, v.sublevel), (3, 17, Some(1)));
    assert_eq!(v.to_string(), "3.17.1 (v3.17.1)");
}

#[test]
fn dump_notifications_are_shown_and_acknowledged() {
    let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
    let (session, peer) = fake(LONG, move |p| {
        let req = p.recv();
        assert_eq!(req.r#type, CriuReqType::Dump as i32);
        let opts = req.opts.unwrap();
        assert_eq!(opts.pid, Some(321));
        assert_eq!(opts.notify_scripts, Some(true));
        p.send(&p.notify("network-lock", None));
        p.expect_ack();
        // A descriptor rides along, as with "orphan-pts-master".
        p.send_with_fd(&p.notify("post-dump", None), pipe_w.as_fd());
        drop(pipe_w);
        p.expect_ack();
        // The client wrote through the descriptor before acknowledging.
        let mut got = String::new();
        File::from(pipe_r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
        let mut resp = answer(CriuReqType::Dump, true);
        resp.dump = Some(CriuDumpResp {
            restored: Some(false),
        });
        resp.cr_errmsg = Some("tun: Unable to create tun".into());
        p.send(&resp);
    });
    let d = images();
    let mut opts = DumpOptions::new(321, d.as_fd());
    opts.notify_scripts = true;
    let mut seen = Vec::new();
    let outcome = session
        .dump(&opts, |n| {
            seen.push((n.script.clone(), n.pid));
            if let Some(fd) = n.fd.take() {
                File::from(fd).write_all(b"hello").unwrap();
            }
        })
        .unwrap();
    peer.join().unwrap();
    assert_eq!(
        seen,
        vec![
            ("network-lock".to_owned(), None),
            ("post-dump".to_owned(), None)
        ]
    );
    assert_eq!(
        outcome.cr_errmsg.as_deref(),
        Some("tun: Unable to create tun")
    );
    assert_eq!(outcome.cr_errno, None);
}

#[test]
fn restore_reports_root_pid_and_notified_pids() {
    let (session, peer) = fake(LONG, |p| {
        let req = p.recv();
        assert_eq!(req.r#type, CriuReqType::Restore as i32);
        let opts = req.opts.unwrap();
        assert_eq!(opts.rst_sibling, Some(true));
        for (script, pid) in [
            ("pre-restore", None),
            ("setup-namespaces", Some(20001)),
            ("post-restore", Some(20001)),
            ("network-unlock", None),
        ] {
            p.send(&p.notify(script, pid));
            p.expect_ack();
        }
        let mut resp = answer(CriuReqType::Restore, true);
        resp.restore = Some(CriuRestoreResp { pid: 20001 });
        p.send(&resp);
    });
    let d = images();
    let mut opts = RestoreOptions::new(d.as_fd());
    opts.notify_scripts = true;
    let mut seen = Vec::new();
    let outcome = session
        .restore(&opts, |n| seen.push((n.script.clone(), n.pid)))
        .unwrap();
    peer.join().unwrap();
    assert_eq!(outcome.pid, 20001);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[1], ("setup-namespaces".to_owned(), Some(20001)));
    assert_eq!(seen[2], ("post-restore".to_owned(), Some(20001)));
}

#[test]
fn a_refused_post_restore_fails_the_restore() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        p.send(&p.notify("post-restore", Some(20001)));
        let ack = p.recv();
        assert_eq!(ack.r#type, CriuReqType::Notify as i32);
        assert_eq!(ack.notify_success, Some(false), "the caller refused");
        // As CRIU answers a request aborted by its client's script.
        let mut resp = answer(CriuReqType::Restore, false);
        resp.cr_errmsg = Some("RPC client reported script error".into());
        p.send(&resp);
    });
    let d = images();
    let mut opts = RestoreOptions::new(d.as_fd());
    opts.notify_scripts = true;
    let err = session
        .restore(&opts, |n| n.refuse = n.script == "post-restore")
        .unwrap_err();
    peer.join().unwrap();
    assert!(matches!(err, CriuError::Failed { .. }), "{err}");
}

#[test]
fn restore_success_without_pid_is_unexpected() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        p.send(&answer(CriuReqType::Restore, true));
    });
    let d = images();
    let err = session
        .restore(&RestoreOptions::new(d.as_fd()), |_| {})
        .unwrap_err();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::Unexpected {
                request: Request::Restore,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn pre_dumps_then_dump_on_one_session() {
    let (mut session, peer) = fake(LONG, |p| {
        for parent in [None, Some("../pre-1")] {
            let req = p.recv();
            assert_eq!(req.r#type, CriuReqType::PreDump as i32);
            let opts = req.opts.unwrap();
            assert_eq!(opts.parent_img.as_deref(), parent);
            assert_eq!(opts.track_mem, Some(true));
            p.send(&answer(CriuReqType::PreDump, true));
        }
        let req = p.recv();
        assert_eq!(req.r#type, CriuReqType::Dump as i32);
        assert_eq!(req.opts.unwrap().parent_img.as_deref(), Some("../pre-2"));
        p.send(&answer(CriuReqType::Dump, true));
    });
    let d = images();
    let mut opts = DumpOptions::new(500, d.as_fd());
    opts.track_mem = true;
    session.pre_dump(&opts, |_| {}).unwrap();
    opts.parent_img = Some("../pre-1".into());
    session.pre_dump(&opts, |_| {}).unwrap();
    opts.parent_img = Some("../pre-2".into());
    session.dump(&opts, |_| {}).unwrap();
    peer.join().unwrap();
}

#[test]
fn only_dumps_may_follow_a_pre_dump() {
    let (mut session, peer) = fake(LONG, |p| {
        p.recv();
        p.send(&answer(CriuReqType::PreDump, true));
    });
    let d = images();
    session
        .pre_dump(&DumpOptions::new(500, d.as_fd()), |_| {})
        .unwrap();
    peer.join().unwrap();
    let err = session.version().unwrap_err();
    assert!(
        matches!(
            err,
            CriuError::Sequence {
                request: Request::Version
            }
        ),
        "{err}"
    );
}

#[test]
fn failure_carries_criu_errno_and_message() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        let mut resp = answer(CriuReqType::Dump, false);
        resp.cr_errno = Some(16);
        resp.cr_errmsg = Some("Can't freeze cgroup".into());
        p.send(&resp);
    });
    let d = images();
    let err = session
        .dump(&DumpOptions::new(7, d.as_fd()), |_| {})
        .unwrap_err();
    peer.join().unwrap();
    match &err {
        CriuError::Failed {
            request: Request::Dump,
            errno: Some(16),
            message: Some(m),
            ..
        } => assert_eq!(m, "Can't freeze cgroup"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Can't freeze cgroup"), "{err}");
}

#[test]
fn failure_without_message_is_explained_by_the_log() {
    let dir = std::env::temp_dir().join(format!("relive-criu-fail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("pre-dump.log"),
        "(00.013531) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n",
    )
    .unwrap();
    let (mut session, peer) = fake(LONG, |p| {
        p.recv();
        // As CRIU 3.17.1 answers a failed PRE_DUMP: no errno, no message.
        p.send(&answer(CriuReqType::PreDump, false));
    });
    let d = File::open(&dir).unwrap();
    let mut opts = DumpOptions::new(7, d.as_fd());
    opts.log_file = Some("pre-dump.log".into());
    let err = session.pre_dump(&opts, |_| {}).unwrap_err();
    peer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        err.to_string(),
        "PRE_DUMP failed in CRIU: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"
    );
}

#[test]
fn rejected_request_comes_back_as_empty_type() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        p.send(&answer(CriuReqType::Empty, false));
    });
    let err = session.version().unwrap_err();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::Failed {
                request: Request::Version,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn answer_of_another_type_is_unexpected() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        p.send(&answer(CriuReqType::Restore, true));
    });
    let d = images();
    let err = session
        .dump(&DumpOptions::new(7, d.as_fd()), |_| {})
        .unwrap_err();
    peer.join().unwrap();
    match err {
        CriuError::Unexpected { request, got } => {
            assert_eq!(request, Request::Dump);
            assert_eq!(got, "RESTORE");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn silent_criu_times_out_naming_the_request() {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (session, peer) = fake(Duration::from_millis(200), move |p| {
        p.recv();
        // Hold the socket open and say nothing, like a hung CRIU.
        let _ = done_rx.recv();
        drop(p);
    });
    let d = images();
    let start = Instant::now();
    let err = session
        .dump(&DumpOptions::new(7, d.as_fd()), |_| {})
        .unwrap_err();
    let waited = start.elapsed();
    done_tx.send(()).unwrap();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::Timeout {
                request: Request::Dump,
                ..
            }
        ),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn timeout_applies_between_notifications_too() {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (session, peer) = fake(Duration::from_millis(200), move |p| {
        p.recv();
        p.send(&p.notify("network-lock", None));
        p.expect_ack();
        let _ = done_rx.recv();
    });
    let d = images();
    let mut opts = DumpOptions::new(7, d.as_fd());
    opts.notify_scripts = true;
    let mut count = 0;
    let err = session.dump(&opts, |_| count += 1).unwrap_err();
    done_tx.send(()).unwrap();
    peer.join().unwrap();
    assert_eq!(count, 1);
    assert!(matches!(err, CriuError::Timeout { .. }), "{err}");
}

#[test]
fn criu_closing_the_socket_is_reported_as_closed() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        drop(p); // exits without answering
    });
    let err = session.version().unwrap_err();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::Closed {
                request: Request::Version
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("closed the connection"), "{err}");
}

#[test]
fn criu_gone_before_the_request_is_closed_not_sigpipe() {
    let (session, peer) = fake(LONG, drop);
    peer.join().unwrap();
    let d = images();
    let err = session
        .restore(&RestoreOptions::new(d.as_fd()), |_| {})
        .unwrap_err();
    assert!(
        matches!(
            err,
            CriuError::Closed {
                request: Request::Restore
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_from_criu_is_a_decode_error() {
    let (session, peer) = fake(LONG, |p| {
        p.recv();
        p.send_raw(&[0xff, 0xff, 0xff, 0xff]);
    });
    let err = session.version().unwrap_err();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::Decode {
                request: Request::Version,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn inherit_fd_must_have_been_given_to_criu() {
    let (session, peer) = fake(LONG, |p| {
        // Nothing may be sent: the socket just closes.
        let mut buf = [0u8; 16];
        assert_eq!(
            recv(p.0.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap(),
            0
        );
    });
    let d = images();
    let f = File::open("/dev/null").unwrap();
    let mut opts = RestoreOptions::new(d.as_fd());
    opts.inherit_fds.push(InheritFd {
        key: "pipe:[1]".into(),
        fd: f.as_fd(),
    });
    let err = session.restore(&opts, |_| {}).unwrap_err();
    peer.join().unwrap();
    assert!(
        matches!(
            err,
            CriuError::InvalidOption {
                option: "inherit_fds",
                ..
            }
        ),
        "{err}"
    );
}
