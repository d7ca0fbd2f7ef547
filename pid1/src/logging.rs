//! Logs: to stderr (the console when PID 1) and, as the machine's init, to
//! the journal once systemd-journald runs (its native socket, with the
//! record's priority and the unit it is about as UNIT=, so `journalctl -u`
//! finds it as it finds systemd's), else to the kernel log (/dev/kmsg) so
//! they survive in dmesg and reach the serial console of a VM even before
//! any service runs: systemd's "journal-or-kmsg".

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Records waiting for the writer at most. Past this the console (a slow
/// serial line) cannot keep up: new records are dropped and counted, and
/// PID 1 never waits for the console.
const QUEUE: usize = 4096;

/// One formatted record.
#[derive(Debug)]
struct Entry {
    text: Vec<u8>,
    level: Level,
    /// A line of a unit's captured output ("UNIT: LINE", target "unit").
    unit_output: bool,
}

/// What the callers and the writer thread share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Option<SyncSender<Entry>>>,
    /// Records queued and not written yet.
    pending: AtomicUsize,
    /// Records dropped since the writer last said so.
    dropped: AtomicU64,
}

/// Writes each formatted record to stderr and, if open, /dev/kmsg, from a
/// thread of its own through a bounded queue.
#[derive(Clone, Debug)]
pub struct LogSink {
    shared: Arc<Shared>,
}

type Target = Box<dyn Write + Send>;

impl LogSink {
    pub fn new(use_kmsg: bool) -> LogSink {
        let kmsg = if use_kmsg {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok()
                .map(|f| Box::new(f) as Target)
        } else {
            None
        };
        LogSink::with_targets(Box::new(io::stderr()), kmsg, QUEUE)
    }

    /// A sink writing to `console` (and `kmsg`) with room for `capacity`
    /// records in its queue.
    fn with_targets(console: Target, kmsg: Option<Target>, capacity: usize) -> LogSink {
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("relive-log".into())
            .spawn(move || write_all(rx, console, kmsg, &writer));
        if spawned.is_err() {
            // No writer: records go straight to stderr (see Record::drop).
            *shared.queue.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        LogSink { shared }
    }

    /// Waits (up to `timeout`) until every queued record is written: before
    /// the machine reboots, kexecs or re-executes relive.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn record(&self, level: Level, unit_output: bool) -> Record {
        Record {
            buf: Vec::new(),
            level,
            unit_output,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The writer thread: each record to the console, then to the kernel log.
fn write_all(rx: Receiver<Entry>, mut console: Target, mut kmsg: Option<Target>, shared: &Shared) {
    for entry in rx {
        let dropped = shared.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let note = Entry {
                text: format!(
                    "WARN {dropped} log records dropped: the console could not keep up\n"
                )
                .into_bytes(),
                level: Level::WARN,
                unit_output: false,
            };
            write_entry(&note, &mut console, kmsg.as_mut());
        }
        write_entry(&entry, &mut console, kmsg.as_mut());
        shared.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

fn write_entry(entry: &Entry, console: &mut Target, kmsg: Option<&mut Target>) {
    let _ = console.write_all(&entry.text);
    // Only the machine's init (the one with the kernel log) writes to the
    // machine's journal.
    let Some(kmsg) = kmsg else {
        return;
    };
    let text = String::from_utf8_lossy(&entry.text);
    if crate::journal_log::send(entry.level, &text, entry.unit_output) {
        return;
    }
    // syslog priorities: err 3, warning 4, info 6, debug 7.
    let prio = match entry.level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    };
    for line in String::from_utf8_lossy(&entry.text).lines() {
        let _ = kmsg.write_all(format!("<{prio}>relive: {line}\n").as_bytes());
    }
}

/// One record, buffered so it reaches each target in one write.
#[derive(Debug)]
pub struct Record {
    buf: Vec<u8>,
    level: Level,
    unit_output: bool,
    shared: Arc<Shared>,
}

impl Write for Record {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let entry = Entry {
            text: std::mem::take(&mut self.buf),
            level: self.level,
            unit_output: self.unit_output,
        };
        let queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = queue.as_ref() else {
            let _ = io::stderr().write_all(&entry.text);
            return;
        };
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
                self.shared.dropped.fetch_add(1, Ordering::SeqCst);
            }
            Err(TrySendError::Disconnected(entry)) => {
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
                let _ = io::stderr().write_all(&entry.text);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Record;

    fn make_writer(&'a self) -> Record {
        self.record(Level::INFO, false)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Record {
        self.record(*meta.level(), meta.target() == UNIT_OUTPUT_TARGET)
    }
}

/// The tracing target of units' captured output lines.
pub const UNIT_OUTPUT_TARGET: &str = "unit";

/// The sink `init` installed, for `flush`.
static SINK: std::sync::OnceLock<LogSink> = std::sync::OnceLock::new();

/// Writes out what is queued (up to a second): call before the process
/// image or the kernel goes away.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.flush(Duration::from_secs(1));
    }
}

/// Installs the subscriber. `level` is error|warn|info|debug|trace.
pub fn init(level: &str, use_kmsg: bool) {
    // zbus warns that calls may come before an object server is set up:
    // relive answers systemd1 calls without one (systemd1/dispatch.rs),
    // so that warning is no news for the console.
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},zbus::connection=error"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let sink = SINK.get_or_init(|| LogSink::new(use_kmsg)).clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Logs panics through tracing, so a caught panic is still on record.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!("panic{location}: {message}");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Sender};

    /// A console that takes each write only when the test lets it.
    struct SlowConsole {
        entered: Sender<()>,
        gate: Receiver<()>,
        written: Sender<Vec<u8>>,
    }

    impl Write for SlowConsole {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.gate.recv();
            let _ = self.written.send(data.to_vec());
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A stalled console never blocks a caller: records past the queue
    /// are dropped, counted, and the count is said once it moves again.
    #[test]
    fn a_stalled_console_drops_records_instead_of_blocking() {
        let (open, gate) = channel();
        let (written_tx, written) = channel();
        let (entered_tx, entered) = channel();
        let console = SlowConsole {
            entered: entered_tx,
            gate,
            written: written_tx,
        };
        let sink = LogSink::with_targets(Box::new(console), None, 4);
        // The writer holds a first record, stuck on the console.
        let mut first = sink.record(Level::INFO, false);
        let _ = writeln!(first, "first");
        drop(first);
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        for i in 0..100 {
            let mut record = sink.record(Level::INFO, false);
            let _ = writeln!(record, "line {i}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging blocked"
        );
        assert_eq!(sink.shared.dropped.load(Ordering::SeqCst), 96, "4 queued");
        for _ in 0..300 {
            let _ = open.send(());
        }
        sink.flush(Duration::from_secs(5));
        // A record after the stall reports how many went missing.
        let mut record = sink.record(Level::INFO, false);
        let _ = writeln!(record, "after");
        drop(record);
        sink.flush(Duration::from_secs(5));
        let text: String = written
            .try_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert!(text.contains("line 0"), "{text}");
        assert!(text.contains("log records dropped"), "{text}");
        assert!(text.ends_with("after\n"), "{text}");
    }
}
