//! The one thread that owns the manager.
//!
//! It sleeps in poll(2) on: a self-pipe the signal handlers write to, the
//! notify socket, an eventfd that D-Bus threads ring when they queue a
//! command, the service output pipes, the exec-status pipes of the
//! children not yet exec'd, and the sockets of socket units waiting for
//! traffic; the timeout is the nearest unit deadline. Each
//! wake-up is handled inside `catch_unwind`: a bug in one
//! handler is logged and the loop goes on (PID 1 must never exit).

use crate::manager::notify::NotifySocket;
use crate::manager::{ExitStatus, Manager};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use relive_sys::machine::ShutdownKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Work sent to the loop by other threads.
pub type Command = Box<dyn FnOnce(&mut Manager) + Send>;

/// The loop stopped answering (it only happens while PID 1 ends).
#[derive(Debug)]
pub struct LoopGone;

/// A handle other threads use to run code on the manager's thread.
#[derive(Clone, Debug)]
pub struct CommandSender {
    tx: mpsc::Sender<Command>,
    wake: Arc<OwnedFd>,
}

impl CommandSender {
    /// Runs `f` on the loop's thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Manager) -> R + Send + 'static,
    ) -> Result<R, LoopGone> {
        let (reply_tx, reply_rx) = async_channel::bounded(1);
        let command: Command = Box::new(move |m| {
            let _ = reply_tx.try_send(f(m));
        });
        self.tx.send(command).map_err(|_| LoopGone)?;
        let _ = nix::unistd::write(&*self.wake, &1u64.to_ne_bytes());
        reply_rx.recv().await.map_err(|_| LoopGone)
    }
}

impl CommandSender {
    /// Queues `f` for the loop's thread without waiting for it.
    pub fn send(&self, f: impl FnOnce(&mut Manager) + Send + 'static) -> Result<(), LoopGone> {
        self.tx.send(Box::new(f)).map_err(|_| LoopGone)?;
        let _ = nix::unistd::write(&*self.wake, &1u64.to_ne_bytes());
        Ok(())
    }
}

/// The signals PID 1 acts on, each with a flag set by its handler.
struct Signals {
    pipe_read: OwnedFd,
    child: Arc<AtomicBool>,
    poweroff: Arc<AtomicBool>,
    reboot: Arc<AtomicBool>,
    halt: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let (pipe_read, pipe_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let flag = |signals: &[i32]| -> std::io::Result<Arc<AtomicBool>> {
            let flag = Arc::new(AtomicBool::new(false));
            for &sig in signals {
                signal_hook::flag::register(sig, flag.clone())?;
                // The write end is non-blocking: a handler must never block.
                signal_hook::low_level::pipe::register(sig, pipe_write.try_clone()?)?;
            }
            Ok(flag)
        };
        let rtmin = libc::SIGRTMIN();
        Ok(Signals {
            child: flag(&[libc::SIGCHLD])?,
            // systemd's meanings: SIGTERM and SIGPWR power off here (there is
            // no re-exec on SIGTERM), SIGINT is ctrl-alt-del (reboot), and the
            // SIGRTMIN+3/4/5 of systemd's halt/poweroff/reboot.
            poweroff: flag(&[libc::SIGTERM, libc::SIGPWR, rtmin + 4])?,
            reboot: flag(&[libc::SIGINT, rtmin + 5])?,
            halt: flag(&[rtmin + 3])?,
            pipe_read,
        })
    }

    fn drain_pipe(&self) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.pipe_read, &mut buf), Ok(n) if n > 0) {}
    }
}

/// The descriptors poll found readable, besides the loop's own.
#[derive(Debug, Default)]
struct Ready {
    outputs: Vec<std::os::fd::RawFd>,
    execs: Vec<std::os::fd::RawFd>,
    /// Listening sockets with traffic.
    sockets: Vec<std::os::fd::RawFd>,
    /// Path units' inotify events.
    paths: bool,
    /// Automount units' request pipes with requests.
    automounts: Vec<std::os::fd::RawFd>,
}

/// Why the loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopExit {
    Shutdown(ShutdownKind),
    Reexec,
}

/// The notify socket's descriptor, for a re-exec.
impl EventLoop {
    pub fn notify_fd(&self) -> std::os::fd::RawFd {
        self.notify.fd.as_raw_fd()
    }
}

pub struct EventLoop {
    pub manager: Manager,
    signals: Signals,
    notify: NotifySocket,
    commands: mpsc::Receiver<Command>,
    wake: Arc<OwnedFd>,
    sender: CommandSender,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop").finish_non_exhaustive()
    }
}

impl EventLoop {
    pub fn new(manager: Manager, notify: NotifySocket) -> std::io::Result<EventLoop> {
        let signals = Signals::install()?;
        let (tx, commands) = mpsc::channel();
        let wake = Arc::new(
            nix::sys::eventfd::EventFd::from_value_and_flags(
                0,
                nix::sys::eventfd::EfdFlags::EFD_CLOEXEC
                    | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
            )?
            .into(),
        );
        Ok(EventLoop {
            manager,
            signals,
            notify,
            commands,
            sender: CommandSender {
                tx,
                wake: Arc::clone(&wake),
            },
            wake,
        })
    }

    pub fn sender(&self) -> CommandSender {
        self.sender.clone()
    }

    /// Runs until a shutdown has stopped every unit, or a re-exec is due.
    pub fn run(&mut self) -> LoopExit {
        let mut breaker = PanicBreaker::default();
        loop {
            let ready = self.wait();
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(&ready)));
            let pause = breaker.after(outcome.is_err());
            if outcome.is_err() {
                tracing::error!("recovered from a panic in the event loop; continuing");
            }
            if let Some(pause) = pause {
                // The same panic on every wake-up would spin a core for
                // ever: slow down, and keep serving between the pauses.
                tracing::error!(
                    "the event loop panicked {} times in a row; pausing {pause:?} between wake-ups",
                    breaker.in_a_row
                );
                std::thread::sleep(pause);
            }
            if let Some(kind) = self.manager.shutdown_done() {
                return LoopExit::Shutdown(kind);
            }
            if std::mem::take(&mut self.manager.rt.reexec_requested) {
                return LoopExit::Reexec;
            }
        }
    }

    /// Sleeps until something happens; returns the output pipes and the
    /// exec-status pipes that are readable.
    fn wait(&self) -> Ready {
        let timeout = match self.manager.next_deadline() {
            Some(deadline) => {
                let now = crate::manager::clock::now();
                let ms = deadline.saturating_sub(now).div_ceil(1_000_000);
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let outputs = self.manager.rt.outputs.fds();
        let execs = self.manager.rt.execs.fds();
        let sockets = self.manager.listening_fds();
        let paths = self.manager.rt.path_watches.fd();
        let automounts = self.manager.rt.automounts.fds();
        let mut fds = vec![
            PollFd::new(self.signals.pipe_read.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.notify.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(outputs.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        fds.extend(execs.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        fds.extend(sockets.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        fds.extend(
            automounts
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN)),
        );
        fds.extend(paths.map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
        if nix::poll::poll(&mut fds, timeout).is_err() {
            return Ready::default();
        }
        let readable = |polled: &[PollFd]| -> Vec<std::os::fd::RawFd> {
            polled
                .iter()
                .filter(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .map(|p| p.as_fd().as_raw_fd())
                .collect()
        };
        let (outputs_polled, rest) = fds[3..].split_at(outputs.len());
        let (execs_polled, rest) = rest.split_at(execs.len());
        let (sockets_polled, rest) = rest.split_at(sockets.len());
        let (automounts_polled, paths_polled) = rest.split_at(automounts.len());
        Ready {
            outputs: readable(outputs_polled),
            execs: readable(execs_polled),
            sockets: readable(sockets_polled),
            paths: !readable(paths_polled).is_empty(),
            automounts: readable(automounts_polled),
        }
    }

    fn handle(&mut self, ready: &Ready) {
        self.signals.drain_pipe();
        // Notify messages first: a READY=1 sent just before exiting must be
        // seen before the exit.
        for (pid, text, fds) in self.notify.receive_all() {
            self.manager.notify_message_with_fds(pid, &text, fds);
        }
        for fd in &ready.outputs {
            for (unit, line) in self.manager.rt.outputs.read(*fd) {
                self.manager.output_line(&unit, line);
            }
        }
        // Before the exits: a failed exec is logged before its 203 exit.
        for fd in &ready.execs {
            self.manager.exec_status_ready(*fd);
        }
        if self.signals.child.swap(false, Ordering::SeqCst) {
            self.reap_children();
        }
        for fd in &ready.sockets {
            self.manager.socket_ready(*fd);
        }
        if ready.paths {
            self.manager.path_events();
        }
        for fd in &ready.automounts {
            self.manager.automount_ready(*fd);
        }
        for (flag, kind) in [
            (&self.signals.poweroff, ShutdownKind::PowerOff),
            (&self.signals.reboot, ShutdownKind::Reboot),
            (&self.signals.halt, ShutdownKind::Halt),
        ] {
            if flag.swap(false, Ordering::SeqCst) {
                tracing::info!("received the signal for {}", kind.verb());
                self.manager.shutdown_signal(kind);
            }
        }
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(&*self.wake, &mut buf);
        while let Ok(command) = self.commands.try_recv() {
            command(&mut self.manager);
        }
        self.manager.fire_timers();
        self.manager.dispatch();
        self.manager.collect_transient();
        let m = &mut self.manager;
        m.rt.bus_events.publish_changes(m.state.units.values());
        m.announce_startup();
    }

    /// Reaps every child that has exited, orphans included. Main and
    /// control processes are attributed by PID (PID 1 is their parent, so a
    /// PID cannot be reused before this reaps it).
    pub fn reap_children(&mut self) {
        loop {
            let status = match nix::sys::wait::waitpid(
                None,
                Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
            ) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitStatus::Signaled(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            self.manager.child_exited(status.0.as_raw(), status.1);
        }
    }

    /// After the units: TERM, then KILL, whatever is left, reaping as it goes.
    pub fn kill_remaining(&mut self) {
        let grace = std::time::Duration::from_secs_f64(
            self.manager.config.manager.shutdown_kill_timeout_sec,
        );
        for (signal, wait) in [
            (libc::SIGTERM, grace),
            (libc::SIGKILL, std::time::Duration::from_secs(5)),
        ] {
            relive_sys::machine::signal_everyone(signal);
            let start = std::time::Instant::now();
            loop {
                match nix::sys::wait::waitpid(
                    None,
                    Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
                ) {
                    Err(nix::errno::Errno::ECHILD) => return,
                    Ok(WaitStatus::StillAlive) => {
                        if start.elapsed() >= wait {
                            if signal == libc::SIGTERM {
                                log_survivors(wait);
                            }
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Names the children of PID 1 still there after SIGTERM's grace: what
/// makes a poweroff wait, for whoever reads the console.
fn log_survivors(wait: std::time::Duration) {
    let mine = std::process::id() as i32;
    let survivors: Vec<String> = procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.ppid == mine)
        .map(|s| format!("{} ({})", s.pid, s.comm))
        .take(10)
        .collect();
    tracing::warn!(
        "still running {wait:?} after SIGTERM, sending SIGKILL: {}",
        survivors.join(", ")
    );
}

/// Counts panics on consecutive wake-ups, and says how long to pause once
/// they repeat: a circuit breaker for a bug that fires on every wake-up.
#[derive(Debug, Default)]
struct PanicBreaker {
    in_a_row: u32,
}

impl PanicBreaker {
    /// Panics in a row before the loop slows down.
    const TRIP: u32 = 10;
    const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

    /// After a wake-up: None to go on at once, or how long to pause.
    fn after(&mut self, panicked: bool) -> Option<std::time::Duration> {
        if !panicked {
            self.in_a_row = 0;
            return None;
        }
        self.in_a_row += 1;
        let over = self.in_a_row.checked_sub(Self::TRIP)?;
        let pause = std::time::Duration::from_millis(100) * 2u32.saturating_pow(over.min(6));
        Some(pause.min(Self::MAX_PAUSE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_panics_slow_the_loop_down_and_a_good_wake_up_resets_it() {
        let mut breaker = PanicBreaker::default();
        for _ in 0..PanicBreaker::TRIP - 1 {
            assert_eq!(breaker.after(true), None);
        }
        let first = breaker.after(true).unwrap();
        let later = (0..20).filter_map(|_| breaker.after(true)).last().unwrap();
        assert!(first < later && later <= PanicBreaker::MAX_PAUSE);
        assert_eq!(breaker.after(false), None);
        assert_eq!(breaker.after(true), None, "counting starts again");
    }
}
