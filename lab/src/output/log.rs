//! The verb's log file, lab/out/logs/VERB-STAMP.log: what the tools it
//! runs print, with relive-lab's own notes between them, each note
//! stamped with the seconds since the verb started. Without a log (the
//! `ssh` and `status` verbs, the tests) the tools write to stderr and the
//! notes go nowhere.

use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Log {
    file: File,
    path: PathBuf,
    started: Instant,
}

static LOG: Mutex<Option<Log>> = Mutex::new(None);

fn current() -> MutexGuard<'static, Option<Log>> {
    // A panic while writing a note leaves the file as usable as before.
    LOG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens the log of `verb` and says where it is, once, on stderr.
pub fn open_log(paths: &Paths, verb: &str) -> Result<()> {
    let dir = paths.logs();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let path = dir.join(format!("{verb}-{stamp}.log"));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    eprintln!("relive-lab: log: {}", shown(&path).display());
    *current() = Some(Log {
        file,
        path,
        started: Instant::now(),
    });
    log(&format!(
        "relive-lab {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    Ok(())
}

/// `path` relative to the current directory when it is below it.
fn shown(path: &Path) -> &Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}

/// A note in the log only.
pub fn log(text: &str) {
    if let Some(log) = current().as_mut() {
        let secs = log.started.elapsed().as_secs_f64();
        // A log that cannot be written must not stop the verb.
        let _ = writeln!(log.file, "[{secs:8.1}] {text}");
    }
}

/// Where a tool's stdout and stderr go: the log, else stderr (stdout is
/// for relive-lab's results).
fn stdio() -> Result<(Stdio, Stdio)> {
    let target = match current().as_ref() {
        Some(log) => log.file.try_clone()?,
        None => File::from(std::io::stderr().as_fd().try_clone_to_owned()?),
    };
    Ok((Stdio::from(target.try_clone()?), Stdio::from(target)))
}

/// Runs `command` with its output in the log and returns how it ended.
pub fn status(command: &mut Command) -> Result<ExitStatus> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    log(&format!("$ {program} {}", args.join(" ")));
    let (out, err) = stdio()?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("running {program}"))?;
    // Meanwhile the step's spinner shows the tool's last line.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(line) = last_line() {
            super::steps::activity(&line);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    log(&format!("{program}: {status}"));
    Ok(status)
}

/// The log's last line, printable characters only (tools draw progress
/// with carriage returns and colours).
fn last_line() -> Option<String> {
    let path = current().as_ref()?.path.clone();
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(2048))).ok()?;
    let mut end = Vec::new();
    file.read_to_end(&mut end).ok()?;
    let text = String::from_utf8_lossy(&end);
    let line = text
        .split(['\n', '\r'])
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .rfind(|l| !l.trim().is_empty())?;
    Some(line.trim().to_owned())
}

/// Runs `command` with its output in the log; an error names `what`.
pub fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = status(command)?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The log's path and its last `lines` lines, if a log is open.
pub fn tail(lines: usize) -> Option<(PathBuf, Vec<String>)> {
    let path = current().as_ref()?.path.clone();
    let text = std::fs::read(&path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let last = all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    Some((shown(&path).to_owned(), last))
}
