//! The reason for a failure, from CRIU's log when the answer has none.
//!
//! CRIU 3.17.1 often answers a failure without `cr_errmsg`: PRE_DUMP and
//! CHECK run in a forked child whose error text never reaches the answer,
//! and errors before the log is set up (kerndat, e.g. this host's "vdso:
//! Unexpected rt vDSO area bounds") are not kept either. The log in the
//! images directory has them as "Error (file:line): text" lines.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::BorrowedFd;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

/// CRIU's log name when the request names none (DEFAULT_LOG_FILENAME).
pub(crate) const DEFAULT_LOG: &str = "criu.log";
/// Only the end of the log is read: a debug log can be megabytes, and the
/// errors that ended the run are at its end.
const TAIL: u64 = 64 * 1024;
/// The last few errors: the cause is usually just before the follow-ups.
const KEEP: usize = 4;
/// "Error" lines CRIU writes in runs that succeed: never a failure's cause.
/// (An incremental dump whose parent holds no pages for a mapping logs
/// the first one for every such mapping.)
const HARMLESS: &[&str] = &["No parent image found"];

/// The last "Error (...)" lines of `log` in `dir`, oldest first, without
/// the timestamp. Empty if the log cannot be read: this only adds detail
/// to an error that is reported anyway.
pub(crate) fn last_errors(dir: BorrowedFd<'_>, log: &str) -> Vec<String> {
    let Ok(fd) = openat(
        dir,
        log,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let mut file = File::from(fd);
    let mut text = Vec::new();
    let tail = file
        .seek(SeekFrom::End(0))
        .map(|len| len.saturating_sub(TAIL));
    if tail.and_then(|at| file.seek(SeekFrom::Start(at))).is_err()
        || file.take(TAIL).read_to_end(&mut text).is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&text);
    let errors: Vec<String> = text
        .lines()
        .filter_map(|line| {
            line.find("Error (")
                .map(|at| line[at..].trim_end().to_owned())
        })
        .filter(|error| !HARMLESS.iter().any(|h| error.contains(h)))
        .collect();
    errors[errors.len().saturating_sub(KEEP)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn keeps_the_last_error_lines_without_timestamps() {
        let dir = std::env::temp_dir().join(format!("relive-criu-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = String::from("(00.000001) Version: 3.17.1\n");
        for i in 0..6 {
            log.push_str(&format!(
                "(00.00001{i}) Error (criu/x.c:{i}): failure {i}\n"
            ));
            log.push_str("(00.000020) harmless line\n");
        }
        log.push_str("(00.000030) Error (criu/page-xfer.c:9): page-xfer: No parent image found\n");
        std::fs::write(dir.join("dump.log"), log).unwrap();
        let d = File::open(&dir).unwrap();
        let got = last_errors(d.as_fd(), "dump.log");
        let missing = last_errors(d.as_fd(), "restore.log");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            vec![
                "Error (criu/x.c:2): failure 2",
                "Error (criu/x.c:3): failure 3",
                "Error (criu/x.c:4): failure 4",
                "Error (criu/x.c:5): failure 5",
            ]
        );
        assert!(missing.is_empty());
    }
}
