//! relive-counter: a process whose state a live kernel upgrade must keep.
//!
//! It counts 100 ms ticks and holds a buffer filled with a deterministic
//! pattern whose SHA-256 it computed at start. On request (a line on
//! 127.0.0.1:7001, e.g. `echo report | nc -q1 127.0.0.1 7001`) and every
//! 10 s on stdout it reports the counter and the buffer's checksum
//! recomputed now: after a checkpoint/restore the counter must have gone
//! on and the checksum must still match.

use anyhow::{Context, Result};
use clap::Parser;
use relive_workloads::{checksum, pattern, Report};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(
    name = "relive-counter",
    about = "Counter and checksummed buffer, reported on request"
)]
struct Args {
    /// Size of the buffer, in MiB.
    #[arg(long, default_value_t = 16)]
    buffer_mib: usize,
    /// Where `report` requests are answered.
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen: String,
    /// Seconds between reports on stdout.
    #[arg(long, default_value_t = 10)]
    print_every: u64,
}

/// Everything a report needs; shared read-only except the counter.
#[derive(Debug)]
struct State {
    counter: AtomicU64,
    buffer: Vec<u8>,
    original: String,
    started_unix: u64,
}

impl State {
    fn report(&self) -> Report {
        Report {
            counter: self.counter.load(Ordering::Relaxed),
            pid: std::process::id(),
            started_unix: self.started_unix,
            buffer_bytes: self.buffer.len(),
            checksum: checksum(&self.buffer),
            original: self.original.clone(),
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let buffer = pattern(args.buffer_mib << 20);
    let original = checksum(&buffer);
    let state = Arc::new(State {
        counter: AtomicU64::new(0),
        buffer,
        original,
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    });
    // Bound before the tick starts, so a busy port fails the unit at once.
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;

    let ticker = Arc::clone(&state);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        ticker.counter.fetch_add(1, Ordering::Relaxed);
    });

    let server = Arc::clone(&state);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let state = Arc::clone(&server);
            match conn {
                // One thread per client: a client that never sends its
                // line holds only its own thread.
                Ok(stream) => {
                    std::thread::spawn(move || {
                        if let Err(e) = answer(&state, stream) {
                            eprintln!("relive-counter: client: {e:#}");
                        }
                    });
                }
                Err(e) => eprintln!("relive-counter: accept: {e}"),
            }
        }
    });

    println!("relive-counter: listening on {}", args.listen);
    let mut stdout = std::io::stdout();
    loop {
        writeln!(stdout, "{}", state.report())?;
        stdout.flush()?;
        std::thread::sleep(Duration::from_secs(args.print_every));
    }
}

/// Answers each `report` line with a report line, anything else with an
/// error line, until the client closes.
fn answer(state: &State, stream: TcpStream) -> Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        match line?.trim() {
            "report" => writeln!(out, "{}", state.report())?,
            "" => continue,
            other => writeln!(out, "error: unknown request {other:?} (try `report`)")?,
        }
    }
    Ok(())
}
