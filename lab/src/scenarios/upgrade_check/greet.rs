//! (l) A socket-activated service across the kexec: relive-greet.socket
//! (mkosi/mkosi.extra) listens on 7020 and hands its socket to
//! relive-greet, which answers each connection with its PID and a count.
//! During the upgrade a client on the host connects every 2 s through
//! QEMU's forward: every connection, those made while the service was
//! checkpointed included, must be answered by the same process, its
//! count going on. After it, the socket unit must be active; and once the
//! service is stopped, a connection must start it again through the
//! socket PID 1 took back from the restored process.

use anyhow::{bail, Context, Result};
use relive_api::plan::Plan;
use relive_api::report::UpgradeReport;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const SERVICE: &str = "relive-greet.service";
pub const SOCKET: &str = "relive-greet.socket";

/// How long a connection waits for its line: longer than the stoppage
/// (QEMU's user network gives up on a SYN unanswered for 75 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// A connection answered later than this waited for the restore.
const HELD: Duration = Duration::from_secs(3);

/// One answer: `greet pid=PID n=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub pid: u32,
    pub n: u64,
}

impl Greeting {
    pub fn parse(line: &str) -> Option<Greeting> {
        let rest = line.trim().strip_prefix("greet pid=")?;
        let (pid, n) = rest.split_once(" n=")?;
        Some(Greeting {
            pid: pid.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

/// Connects once and reads the answer.
pub fn greet(port: u16, timeout: Duration) -> Result<Greeting> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .context("reading the greeting")?;
    match Greeting::parse(&line) {
        Some(g) => Ok(g),
        None if line.is_empty() => bail!("connection closed without an answer"),
        None => bail!("unexpected answer {:?}", line.trim()),
    }
}

/// One connection of the client: when it was made (since the client
/// started), how long its answer took, the answer.
#[derive(Debug)]
pub struct Attempt {
    pub at: Duration,
    pub waited: Duration,
    pub answer: Result<Greeting, String>,
}

/// Connects every 2 s, each connection on its own thread, until finished.
pub struct GreetClient {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Attempt>>,
}

impl GreetClient {
    pub fn start(port: u16) -> GreetClient {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut attempts: Vec<JoinHandle<Attempt>> = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                attempts.push(std::thread::spawn(move || {
                    let at = started.elapsed();
                    let answer = greet(port, ANSWER_TIMEOUT).map_err(|e| format!("{e:#}"));
                    Attempt {
                        at,
                        waited: started.elapsed() - at,
                        answer,
                    }
                }));
                std::thread::sleep(Duration::from_secs(2));
            }
            attempts.into_iter().filter_map(|a| a.join().ok()).collect()
        });
        GreetClient { stop, thread }
    }

    /// Stops connecting and waits for every connection's answer.
    pub fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Every connection answered by `before`'s process, the count going on
/// (each answer once), at least one of them made during the stoppage.
pub fn client_verdict(before: Greeting, attempts: &[Attempt]) -> (bool, String) {
    let failed: Vec<String> = attempts
        .iter()
        .filter_map(|a| {
            a.answer
                .as_ref()
                .err()
                .map(|e| format!("at {:.0} s: {e}", a.at.as_secs_f64()))
        })
        .collect();
    let answers: Vec<Greeting> = attempts
        .iter()
        .filter_map(|a| a.answer.as_ref().ok().copied())
        .collect();
    let mut counts: Vec<u64> = answers.iter().map(|g| g.n).collect();
    counts.sort_unstable();
    let distinct = counts.windows(2).all(|w| w[0] < w[1]);
    let same_process = answers.iter().all(|g| g.pid == before.pid);
    let went_on = counts.first().is_some_and(|&n| n > before.n);
    let held: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.answer.is_ok() && a.waited >= HELD)
        .collect();
    let longest = held
        .iter()
        .map(|a| a.waited.as_secs_f64())
        .fold(0.0, f64::max);
    let ok = !attempts.is_empty()
        && failed.is_empty()
        && same_process
        && distinct
        && went_on
        && !held.is_empty();
    let pids: std::collections::BTreeSet<u32> = answers.iter().map(|g| g.pid).collect();
    (
        ok,
        format!(
            "{} connections, {} answered after waiting >= {} s (longest {longest:.1} s); PIDs {pids:?} (before: {}); counts {:?} (before: {}){}",
            attempts.len(),
            held.len(),
            HELD.as_secs(),
            before.pid,
            counts,
            before.n,
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join("; "))
            }
        ),
    )
}

/// The dry-run says the service's socket crosses with it.
pub fn plan_verdict(plan: &Plan) -> (bool, String) {
    let preserved = plan.preserved.iter().any(|u| u.name == SERVICE);
    let why = plan.why_of(SERVICE).unwrap_or_default();
    (
        preserved && why.contains(&format!("the sockets of {SOCKET} cross with it")),
        format!("preserved {preserved}: {why}"),
    )
}

/// The report: restored, carrying its socket unit's socket, its new
/// connections held.
pub fn report_verdict(report: &UpgradeReport) -> (bool, String) {
    let Some(record) = report.units.iter().find(|r| r.name == SERVICE) else {
        return (false, format!("{SERVICE} is not in the report"));
    };
    let carried: Vec<String> = record
        .listeners
        .iter()
        .map(|l| format!("{} #{} on fd {}", l.socket_unit, l.index, l.fd))
        .collect();
    let restored = record.outcome == Some(relive_api::report::Outcome::Restored);
    (
        restored
            && record.listeners.iter().any(|l| l.socket_unit == SOCKET)
            && !record.hold_table.is_empty(),
        format!(
            "{}; carried: {}; hold table {:?}; unaccepted connections reset: {}",
            record
                .outcome
                .as_ref()
                .map_or("no outcome".into(), |o| o.to_string()),
            carried.join(", "),
            record.hold_table,
            record.unaccepted_reset
        ),
    )
}

/// After the upgrade: both active; then the service stopped.
pub const STOP_SCRIPT: &str = "relivectl is-active relive-greet.socket relive-greet.service; \
     relivectl stop relive-greet.service; relivectl is-active relive-greet.service relive-greet.socket";

/// What STOP_SCRIPT printed: active twice, then inactive and the socket
/// still active.
pub fn stop_verdict(stdout: &str) -> bool {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    lines == ["active", "active", "inactive", "active"]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(at: u64, waited: u64, pid: u32, n: u64) -> Attempt {
        Attempt {
            at: Duration::from_secs(at),
            waited: Duration::from_secs(waited),
            answer: Ok(Greeting { pid, n }),
        }
    }

    #[test]
    fn a_greeting_parses() {
        assert_eq!(
            Greeting::parse("greet pid=812 n=3\n"),
            Some(Greeting { pid: 812, n: 3 })
        );
        assert_eq!(Greeting::parse("hello"), None);
    }

    #[test]
    fn the_client_verdict_wants_one_process_going_on_and_a_held_connection() {
        let before = Greeting { pid: 812, n: 1 };
        let good = [
            attempt(0, 0, 812, 2),
            attempt(2, 25, 812, 4),
            attempt(4, 23, 812, 3),
        ];
        assert!(client_verdict(before, &good).0);
        // None made during the stoppage: nothing shown.
        assert!(!client_verdict(before, &good[..1]).0);
        // Another process (started afresh), or a count that restarted.
        let fresh = [attempt(0, 0, 812, 2), attempt(2, 25, 900, 1)];
        assert!(!client_verdict(before, &fresh).0);
        let failed = [
            attempt(0, 30, 812, 2),
            Attempt {
                at: Duration::from_secs(2),
                waited: Duration::from_secs(75),
                answer: Err("connection closed without an answer".into()),
            },
        ];
        assert!(!client_verdict(before, &failed).0);
    }

    #[test]
    fn the_stop_script_s_output_is_judged() {
        assert!(stop_verdict("active\nactive\ninactive\nactive\n"));
        assert!(!stop_verdict("active\nfailed\ninactive\nactive\n"));
    }
}
