//! Short helper programs the upgrade runs (nft, mkfs.ext4), from the
//! upgrade worker's thread: spawned on the loop's thread (which then
//! reports their exit, so nobody else can reap it), their output read here.

use crate::event_loop::CommandSender;
use relive_host::{HelperOutput, HostError, StartedHelper};
use relive_sys::spawn::{SpawnRequest, Stdio};
use std::ffi::CString;
use std::io::Read;
use std::sync::Arc;

/// Runs `argv` (argv[0] an absolute path) to completion.
pub fn run(commands: &CommandSender, argv: &[&str]) -> Result<HelperOutput, HostError> {
    let failed = failure(argv);
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed(e.to_string()));
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let request = SpawnRequest {
        stdout: Stdio::Fd(Arc::new(out_write)),
        stderr: Stdio::Fd(Arc::new(err_write)),
        ..request(argv)?
    };
    // The request (with our copies of the write ends) is dropped on the
    // loop's thread right after the spawn, so EOF comes when the helper exits.
    let (_, exited) = spawn_on_loop(commands, argv, request)?;
    let read_all = |fd: std::os::fd::OwnedFd| {
        let mut text = String::new();
        let _ = std::fs::File::from(fd).read_to_string(&mut text);
        text
    };
    let stdout = read_all(out_read);
    let stderr = read_all(err_read);
    let status = async_io::block_on(exited.recv())
        .map_err(|_| failed("its exit was not reported".into()))?;
    Ok(HelperOutput {
        status,
        stdout,
        stderr,
    })
}

/// Starts `argv` (argv[0] an absolute path) with `keep` open at the same
/// numbers, its output on relive's stderr; the loop reports its exit.
pub fn start(
    commands: &CommandSender,
    argv: &[&str],
    keep: &[std::os::fd::RawFd],
) -> Result<StartedHelper, HostError> {
    let request = SpawnRequest {
        stderr: Stdio::Inherit,
        keep_fds: keep.to_vec(),
        ..request(argv)?
    };
    let (pid, exited) = spawn_on_loop(commands, argv, request)?;
    Ok(StartedHelper {
        pid,
        exit: Box::new(move || async_io::block_on(exited.recv()).ok()),
    })
}

/// The error of helper `argv` for `reason`.
fn failure(argv: &[&str]) -> impl Fn(String) -> HostError {
    let program = argv.first().copied().unwrap_or_default().to_owned();
    move |reason| HostError::Helper {
        program: program.clone(),
        reason,
    }
}

/// The spawn of `argv` with the system's PATH, at the caller's priority:
/// spawned by the loop's thread, but as if the caller had spawned it
/// (the resume's urgent steps).
fn request(argv: &[&str]) -> Result<SpawnRequest, HostError> {
    let failed = failure(argv);
    let cstr = |s: &str| CString::new(s).map_err(|_| failed(format!("NUL byte in {s:?}")));
    let mut request = SpawnRequest::program(
        cstr(argv[0])?,
        argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
        vec![cstr("PATH=/usr/sbin:/usr/bin:/sbin:/bin")?],
    );
    request.process.nice = relive_sys::sched::thread_nice().ok().filter(|n| *n != 0);
    Ok(request)
}

/// Has the loop's thread spawn `request`: its PID, and its exit to come.
fn spawn_on_loop(
    commands: &CommandSender,
    argv: &[&str],
    request: SpawnRequest,
) -> Result<(i32, async_channel::Receiver<relive_sys::ExitStatus>), HostError> {
    async_io::block_on(commands.call(move |m| m.run_helper_pid(request)))
        .map_err(|_| HostError::LoopGone)?
        .map_err(failure(argv))
}
