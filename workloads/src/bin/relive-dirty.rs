//! relive-dirty: holds N MiB of anonymous memory and rewrites it at a set
//! rate, so that the lab can measure a live upgrade's stoppage against
//! memory size and dirty rate, and prove that memory came back intact.
//!
//! Every 4 KiB page checks itself (relive_workloads::dirty::Page). The
//! dirtier verifies each page before rewriting it and exits with status 3
//! at the first bad one, so a corrupt restore shows up as a failed unit.
//! Idle (rate 0, not --busy) it uses no CPU at all: no timers, no polling;
//! then `verify` requests check the memory.
//!
//! Requests, one line on 127.0.0.1:PORT, one JSON line back:
//! `echo report | nc -q1 127.0.0.1 7002`, `echo verify | nc -q1 ...`.

use anyhow::{bail, Context, Result};
use clap::Parser;
use relive_workloads::dirty::{
    pages_for_mib, pages_per_tick, DirtyReport, Page, SecondCounts, VerifyReport,
};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The dirtier's period: short enough that the rate is smooth, long
/// enough that sleeping between ticks costs little.
const TICK: Duration = Duration::from_millis(10);
/// Busy mode: units of CPU work between two looks at the clock.
const OPS_PER_BATCH: u64 = 256;

#[derive(Debug, Parser)]
#[command(
    name = "relive-dirty",
    about = "Holds self-checking memory and dirties it at a set rate"
)]
struct Args {
    /// Memory to hold, in MiB.
    #[arg(long)]
    size_mib: u64,
    /// MiB rewritten per second (0: idle, no CPU use at all).
    #[arg(long, default_value_t = 0.0)]
    dirty_mib_per_sec: f64,
    /// Between dirty ticks, do CPU work and count it (ops/s in the report)
    /// instead of sleeping.
    #[arg(long)]
    busy: bool,
    /// Port on 127.0.0.1 answering `report` and `verify`.
    #[arg(long, default_value_t = 7002)]
    report_port: u16,
}

/// The pages and what the dirtier remembers about them; one lock, so that
/// `verify` never sees a page half rewritten.
#[derive(Debug)]
struct Memory {
    pages: Vec<Page>,
    /// The generation last written to each page.
    generations: Vec<u64>,
    /// The next page the dirtier rewrites (cyclically).
    next: usize,
}

#[derive(Debug)]
struct Shared {
    args: Args,
    started_unix: u64,
    memory: Mutex<Memory>,
    pages_written: AtomicU64,
    verified_pages: AtomicU64,
    corrupt_pages: AtomicU64,
    ops: Mutex<SecondCounts>,
    dirtied: Mutex<SecondCounts>,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A poisoned lock only means another thread panicked; the data is still
/// what we want to report (and a panic ends the process anyway).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.size_mib == 0 || !args.dirty_mib_per_sec.is_finite() || args.dirty_mib_per_sec < 0.0 {
        bail!("--size-mib must be > 0 and --dirty-mib-per-sec >= 0");
    }
    let addr = format!("127.0.0.1:{}", args.report_port);
    // Bound before the fill, so that a busy port fails the unit at once;
    // accepted only after it, so that an answer means the memory is ready.
    let listener = TcpListener::bind(&addr).with_context(|| format!("binding {addr}"))?;

    let count = usize::try_from(pages_for_mib(args.size_mib))?;
    let started = Instant::now();
    let mut pages = Vec::with_capacity(count);
    for index in 0..count {
        pages.push(Page::new(index as u64, 0));
    }
    let shared = Arc::new(Shared {
        started_unix: unix_now().as_secs(),
        memory: Mutex::new(Memory {
            pages,
            generations: vec![0; count],
            next: 0,
        }),
        pages_written: AtomicU64::new(0),
        verified_pages: AtomicU64::new(0),
        corrupt_pages: AtomicU64::new(0),
        ops: Mutex::default(),
        dirtied: Mutex::default(),
        args,
    });
    println!(
        "relive-dirty: {} MiB ({count} pages) filled in {:.1} s; dirtying {} MiB/s{}; requests on {addr}",
        shared.args.size_mib,
        started.elapsed().as_secs_f64(),
        shared.args.dirty_mib_per_sec,
        if shared.args.busy { ", busy" } else { "" }
    );
    let _ = std::io::stdout().flush();

    let server = Arc::clone(&shared);
    std::thread::spawn(move || serve(&server, listener));

    let per_tick = pages_per_tick(shared.args.dirty_mib_per_sec, TICK.as_secs_f64());
    match (per_tick, shared.args.busy) {
        // Idle: nothing to do until asked; park never returns on its own
        // except spuriously, hence the loop.
        (0, false) => loop {
            std::thread::park();
        },
        (0, true) => loop {
            work_until(&shared, None);
        },
        (per_tick, busy) => dirty_loop(&shared, per_tick, busy),
    }
}

/// Rewrites `per_tick` pages every tick; between ticks sleeps, or works
/// when `busy`.
fn dirty_loop(shared: &Shared, per_tick: u64, busy: bool) -> ! {
    let mut deadline = Instant::now();
    loop {
        dirty(shared, per_tick);
        deadline += TICK;
        let now = Instant::now();
        if now > deadline + TICK {
            // Behind (frozen by a dump, or restored after a kexec): skip
            // the missed ticks rather than dirty them all in a burst.
            deadline = now;
        }
        if busy {
            work_until(shared, Some(deadline));
        } else {
            std::thread::sleep(deadline.saturating_duration_since(now));
        }
    }
}

/// Verifies and rewrites the next `count` pages; exits with status 3 on a
/// page that is not what was last written there.
fn dirty(shared: &Shared, count: u64) {
    let mut memory = lock(&shared.memory);
    let Memory {
        pages,
        generations,
        next,
    } = &mut *memory;
    for _ in 0..count {
        let index = *next;
        let expected = generations[index];
        if let Err(e) = pages[index].verify(index as u64, expected) {
            eprintln!(
                "relive-dirty: memory corrupt: page {index} (of {}): {e}",
                pages.len()
            );
            std::process::exit(3);
        }
        pages[index].write(index as u64, expected + 1);
        generations[index] = expected + 1;
        *next = (index + 1) % pages.len();
    }
    drop(memory);
    shared.verified_pages.fetch_add(count, Ordering::Relaxed);
    shared.pages_written.fetch_add(count, Ordering::Relaxed);
    lock(&shared.dirtied).add(unix_now().as_secs(), count);
}

/// CPU work (hashing a 64-byte block), counted per second, until
/// `deadline` (forever without one).
fn work_until(shared: &Shared, deadline: Option<Instant>) {
    let mut block = [0x0123_4567_89AB_CDEFu64; 8];
    loop {
        for _ in 0..OPS_PER_BATCH {
            let mut h = block[7];
            for w in &block {
                h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31);
            }
            block[0] = h;
            block.rotate_left(1);
            black_box(&mut block);
        }
        lock(&shared.ops).add(unix_now().as_secs(), OPS_PER_BATCH);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
    }
}

/// Checks every page now, under the dirtier's lock.
fn verify_all(shared: &Shared) -> VerifyReport {
    let memory = lock(&shared.memory);
    let mut corrupt = 0;
    let mut first = None;
    for (index, page) in memory.pages.iter().enumerate() {
        if page
            .verify(index as u64, memory.generations[index])
            .is_err()
        {
            corrupt += 1;
            first.get_or_insert(index as u64);
        }
    }
    let verified = memory.pages.len() as u64;
    drop(memory);
    shared.verified_pages.fetch_add(verified, Ordering::Relaxed);
    shared.corrupt_pages.store(corrupt, Ordering::Relaxed);
    if let Some(index) = first {
        eprintln!("relive-dirty: verify: {corrupt} corrupt pages, the first is page {index}");
    }
    VerifyReport {
        verified_pages: verified,
        corrupt_pages: corrupt,
        first_corrupt: first,
    }
}

fn report(shared: &Shared) -> DirtyReport {
    let now = unix_now().as_secs();
    let since = shared.started_unix;
    DirtyReport {
        pid: std::process::id(),
        size_mib: shared.args.size_mib,
        dirty_mib_per_sec: shared.args.dirty_mib_per_sec,
        pages: pages_for_mib(shared.args.size_mib),
        pages_written: shared.pages_written.load(Ordering::Relaxed),
        verified_pages: shared.verified_pages.load(Ordering::Relaxed),
        corrupt_pages: shared.corrupt_pages.load(Ordering::Relaxed),
        started_unix: since,
        ops_per_sec: if shared.args.busy {
            lock(&shared.ops).series(since, now)
        } else {
            Vec::new()
        },
        dirty_pages_per_sec: lock(&shared.dirtied).series(since, now),
    }
}

/// Blocking accept, no timeouts: the thread sleeps until someone asks.
fn serve(shared: &Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            // One thread per client: one that never sends its line holds
            // only its own thread.
            Ok(stream) => {
                let shared = Arc::clone(shared);
                std::thread::spawn(move || {
                    if let Err(e) = answer(&shared, stream) {
                        eprintln!("relive-dirty: client: {e:#}");
                    }
                });
            }
            Err(e) => eprintln!("relive-dirty: accept: {e}"),
        }
    }
}

/// Answers the first request line with one JSON line (or an error line);
/// then the connection closes.
fn answer(shared: &Shared, stream: TcpStream) -> Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let reply = match line?.trim() {
            "" => continue,
            "report" => serde_json::to_string(&report(shared))?,
            "verify" => serde_json::to_string(&verify_all(shared))?,
            other => format!("error: unknown request {other:?} (try `report` or `verify`)"),
        };
        writeln!(out, "{reply}")?;
        break;
    }
    Ok(())
}
