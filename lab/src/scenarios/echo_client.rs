//! A host-side client of relive-echo through QEMU's port forward, kept
//! open across a live upgrade: one TCP connection, a numbered line every
//! 200 ms, every reply checked in order. The largest delay between sending
//! a line and reading it back is what a user of the service would have
//! seen of the upgrade.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(200);

/// What the client saw so far.
#[derive(Debug, Clone, Default)]
pub struct EchoStats {
    pub sent: u64,
    pub echoed: u64,
    /// The largest send-to-echo delay, and the line it was on.
    pub max_gap: Duration,
    pub max_gap_line: u64,
    /// EOF, a reset, a read error or a reply out of order: the first one.
    pub error: Option<String>,
}

impl EchoStats {
    pub fn summary(&self) -> String {
        format!(
            "{} lines sent, {} echoed in order on one connection, largest gap {:.1} s (line {}){}",
            self.sent,
            self.echoed,
            self.max_gap.as_secs_f64(),
            self.max_gap_line,
            self.error
                .as_ref()
                .map_or(String::new(), |e| format!("; ERROR: {e}"))
        )
    }
}

#[derive(Default)]
struct Shared {
    sent_at: Vec<Instant>,
    stats: EchoStats,
}

pub struct EchoClient {
    stream: TcpStream,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
}

impl EchoClient {
    /// Connects (after one line has come back: slirp resets a connection
    /// made before the guest listens) and starts sending.
    pub fn start(port: u16) -> Result<EchoClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (mut stream, shared, stop) = (stream.try_clone()?, shared.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut s = shared.lock().expect("echo client lock");
                        if s.stats.error.is_some() {
                            return;
                        }
                        s.sent_at.push(Instant::now());
                        s.stats.sent = next + 1;
                    }
                    if let Err(e) = stream.write_all(format!("line {next}\n").as_bytes()) {
                        let mut s = shared.lock().expect("echo client lock");
                        s.stats.error.get_or_insert(format!("write: {e}"));
                        return;
                    }
                    next += 1;
                    std::thread::sleep(INTERVAL);
                }
            })
        };
        let reader = {
            let (stream, shared) = (stream.try_clone()?, shared.clone());
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stream);
                let mut expected = 0u64;
                loop {
                    let mut line = String::new();
                    let result = lines.read_line(&mut line);
                    let now = Instant::now();
                    let mut s = shared.lock().expect("echo client lock");
                    match result {
                        Ok(0) => {
                            s.stats.error.get_or_insert("EOF from the server".into());
                            return;
                        }
                        Err(e) => {
                            s.stats.error.get_or_insert(format!("read: {e}"));
                            return;
                        }
                        Ok(_) => {}
                    }
                    if line != format!("line {expected}\n") {
                        s.stats.error.get_or_insert(format!(
                            "expected line {expected}, got {:?}",
                            line.trim_end()
                        ));
                        return;
                    }
                    let gap = now - s.sent_at[expected as usize];
                    if gap > s.stats.max_gap {
                        s.stats.max_gap = gap;
                        s.stats.max_gap_line = expected;
                    }
                    expected += 1;
                    s.stats.echoed = expected;
                }
            })
        };
        let client = EchoClient {
            stream,
            shared,
            stop,
            writer: Some(writer),
            reader: Some(reader),
        };
        client.wait_echoed(1, Duration::from_secs(30))?;
        Ok(client)
    }

    pub fn stats(&self) -> EchoStats {
        self.shared.lock().expect("echo client lock").stats.clone()
    }

    /// Waits until `count` more lines than now have come back (or an error).
    pub fn wait_more(&self, count: u64, timeout: Duration) -> Result<EchoStats> {
        let target = self.stats().echoed + count;
        self.wait_echoed(target, timeout)
    }

    fn wait_echoed(&self, target: u64, timeout: Duration) -> Result<EchoStats> {
        let started = Instant::now();
        loop {
            let stats = self.stats();
            if let Some(e) = &stats.error {
                anyhow::bail!("echo client: {e}");
            }
            if stats.echoed >= target {
                return Ok(stats);
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "echo client: {} of {target} lines back after {timeout:?}",
                    stats.echoed
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops sending, waits for the lines in flight, closes the connection.
    pub fn finish(mut self) -> EchoStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let sent = self.stats().sent;
        let _ = self.wait_echoed(sent, Duration::from_secs(30));
        let stats = self.stats();
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        stats
    }
}
