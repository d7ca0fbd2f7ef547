//! Short helper programs the upgrade runs (nft), from the upgrade worker's
//! thread: spawned on the loop's thread (which then reports their exit),
//! their output read here.

use crate::event_loop::CommandSender;
use crate::manager::ExitStatus;
use crate::sys::spawn::{SpawnRequest, Stdio};
use std::ffi::CString;
use std::io::Read;
use std::sync::Arc;

/// What a helper printed and how it ended.
#[derive(Debug)]
pub struct HelperOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` (argv[0] an absolute path) to completion.
pub fn run(commands: &CommandSender, argv: &[&str]) -> Result<HelperOutput, String> {
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in {s:?}"));
    let (out_read, out_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let request = SpawnRequest {
        path: cstr(argv[0])?,
        argv: argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
        env: vec![cstr("PATH=/usr/sbin:/usr/bin:/sbin:/bin")?],
        cgroup: None,
        stdout: Stdio::Fd(Arc::new(out_write)),
        stderr: Stdio::Fd(Arc::new(err_write)),
        credentials: None,
        umask: 0o077,
        nofile: None,
        working_directory: None,
        working_directory_optional: false,
        keep_fds: Vec::new(),
    };
    // The request (with our copies of the write ends) is dropped on the
    // loop's thread right after the spawn, so EOF comes when the helper exits.
    let exited = async_io::block_on(commands.call(move |m| m.run_helper(request)))
        .map_err(|_| "relive's loop is gone".to_owned())??;
    let read_all = |fd: std::os::fd::OwnedFd| {
        let mut text = String::new();
        let _ = std::fs::File::from(fd).read_to_string(&mut text);
        text
    };
    let stdout = read_all(out_read);
    let stderr = read_all(err_read);
    let status = async_io::block_on(exited.recv())
        .map_err(|_| format!("{}: its exit was not reported", argv[0]))?;
    Ok(HelperOutput {
        status,
        stdout,
        stderr,
    })
}

/// Runs `argv` and requires exit status 0; returns its stdout.
pub fn run_ok(commands: &CommandSender, argv: &[&str]) -> Result<String, String> {
    let out = run(commands, argv)?;
    if out.status == ExitStatus::Exited(0) {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status.describe(),
            out.stderr.trim()
        ))
    }
}
