//! Prints the installed CRIU's version, asked over CRIU's RPC (`criu swrk`).
//!
//! Usage: criu_version [PATH-TO-CRIU]   (default /usr/sbin/criu)
//!
//! Uses `CommandSpawner`, which waits on its own child: fine for a tool,
//! not for PID 1.

use std::process::ExitCode;
use std::time::Duration;

use relive_criu::{CommandSpawner, Criu};

fn main() -> ExitCode {
    let mut criu = Criu {
        reply_timeout: Duration::from_secs(10),
        ..Criu::default()
    };
    if let Some(path) = std::env::args_os().nth(1) {
        criu.path = path.into();
    }
    let spawner = CommandSpawner::new();
    let result = criu.start(&spawner).and_then(|session| session.version());
    // Reap CRIU whatever happened; it exits after answering.
    if let Err(e) = spawner.wait_all() {
        eprintln!("criu_version: waiting for criu: {e}");
    }
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("criu_version: {e}");
            ExitCode::FAILURE
        }
    }
}
