//! A Type=notify test service: sends STATUS= and READY=1 through
//! libsystemd after a delay, then runs until SIGTERM.
//!
//! Usage: notify-workload DELAY_MS [exit-before-ready]

use libsystemd::daemon::{notify, NotifyState};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let delay: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let exit_before_ready = args.next().as_deref() == Some("exit-before-ready");
    println!("notify-workload: starting, ready in {delay} ms");
    let _ = notify(false, &[NotifyState::Status("warming up".into())]);
    std::thread::sleep(Duration::from_millis(delay));
    if exit_before_ready {
        println!("notify-workload: exiting before READY=1");
        std::process::exit(3);
    }
    match notify(
        false,
        &[NotifyState::Ready, NotifyState::Status("serving".into())],
    ) {
        Ok(true) => println!("notify-workload: ready"),
        Ok(false) => println!("notify-workload: NOTIFY_SOCKET not set"),
        Err(e) => println!("notify-workload: notify failed: {e}"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
