//! The lab's download through nginx (mkosi/mkosi.extra: relive-fetch gets
//! relive-slowfile's 12 MiB body through nginx on 127.0.0.1:8081, nginx
//! and relive-slowfile tied by a unix socket): started before an upgrade,
//! it must finish intact after it, or after its undo.

use crate::output;
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use anyhow::Result;
use std::time::{Duration, Instant};

/// relive-fetch's result file (its --result).
pub const RESULT: &str = "/var/lib/relive-fetch/result";
/// Starts one download: the result file says `started` at once.
pub const START: &str =
    "rm -f /var/lib/relive-fetch/result && relivectl restart relive-fetch.service";
/// relive-slowfile's body (its unit's --kib).
pub const BODY_BYTES: usize = 12288 * 1024;

/// The result file once the download has ended (at most five minutes:
/// the body takes about three).
pub fn wait(paths: &Paths, port: u16, interrupt: &Interrupt) -> Result<String> {
    let step = output::step("waiting for the download through nginx to end");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        interrupt.check()?;
        let out = ssh::run(paths, port, &format!("cat {RESULT}"))?;
        let ended = out
            .stdout
            .lines()
            .any(|l| l.starts_with("done ") || l.starts_with("failed "));
        if ended || Instant::now() > deadline {
            step.done();
            return Ok(out.stdout);
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// The download's start and end (seconds since the epoch) if it got the
/// whole body intact, else why not.
pub fn intact(result: &str) -> std::result::Result<(u64, u64), String> {
    let words = |prefix: &str| {
        result
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| {
                rest.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
    };
    let started: Option<u64> = words("started ").and_then(|w| w.first()?.parse().ok());
    let Some(done) = words("done ") else {
        return Err(result.trim().replace('\n', " | "));
    };
    let ended: Option<u64> = done.first().and_then(|w| w.parse().ok());
    let bytes: Option<usize> = done.get(1).and_then(|w| w.parse().ok());
    let sum = done.get(2).cloned().unwrap_or_default();
    let expected = relive_workloads::checksum(&relive_workloads::pattern(BODY_BYTES));
    match (started, ended) {
        (Some(s), Some(e)) if bytes == Some(BODY_BYTES) && sum == expected => Ok((s, e)),
        _ => Err(format!(
            "{} bytes, sha256 {} (NOT the body sent)",
            bytes.unwrap_or(0),
            &sum[..sum.len().min(16)]
        )),
    }
}
