//! Logs: to stderr (the console when PID 1) and, as the machine's init, to
//! the kernel log (/dev/kmsg) so they survive in dmesg and reach the serial
//! console of a VM even before any service runs.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Writes each formatted record to stderr and, if open, /dev/kmsg.
#[derive(Clone, Debug)]
pub struct LogSink {
    kmsg: Option<Arc<Mutex<File>>>,
}

impl LogSink {
    pub fn new(use_kmsg: bool) -> LogSink {
        let kmsg = if use_kmsg {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok()
                .map(|f| Arc::new(Mutex::new(f)))
        } else {
            None
        };
        LogSink { kmsg }
    }
}

/// One record, buffered so it reaches each target in one write.
#[derive(Debug)]
pub struct Record {
    buf: Vec<u8>,
    level: Level,
    kmsg: Option<Arc<Mutex<File>>>,
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
        let _ = io::stderr().write_all(&self.buf);
        if let Some(kmsg) = &self.kmsg {
            // syslog priorities: err 3, warning 4, info 6, debug 7.
            let prio = match self.level {
                Level::ERROR => 3,
                Level::WARN => 4,
                Level::INFO => 6,
                _ => 7,
            };
            let text = String::from_utf8_lossy(&self.buf);
            if let Ok(mut f) = kmsg.lock() {
                for line in text.lines() {
                    let _ = f.write_all(format!("<{prio}>relive: {line}\n").as_bytes());
                }
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Record;

    fn make_writer(&'a self) -> Record {
        Record {
            buf: Vec::new(),
            level: Level::INFO,
            kmsg: self.kmsg.clone(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Record {
        Record {
            buf: Vec::new(),
            level: *meta.level(),
            kmsg: self.kmsg.clone(),
        }
    }
}

/// Installs the subscriber. `level` is error|warn|info|debug|trace.
pub fn init(level: &str, use_kmsg: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogSink::new(use_kmsg))
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
