//! relive-echo: a TCP echo server (one thread per connection) whose open
//! connections a live kernel upgrade must keep: a client on the host sends
//! lines before, during and after the upgrade and checks every byte comes
//! back. Run by a socket unit, it serves the socket passed to it.

use anyhow::{Context, Result};
use clap::Parser;
use std::net::{TcpListener, TcpStream};

#[derive(Debug, Parser)]
#[command(name = "relive-echo", about = "TCP echo server")]
struct Args {
    #[arg(long, default_value = "0.0.0.0:7000")]
    listen: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let listener = match activated_listener() {
        Some(listener) => {
            println!("relive-echo: listening on the socket its socket unit passed");
            listener
        }
        None => {
            let listener = TcpListener::bind(&args.listen)
                .with_context(|| format!("binding {}", args.listen))?;
            println!("relive-echo: listening on {}", args.listen);
            listener
        }
    };
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                std::thread::spawn(move || echo(stream));
            }
            Err(e) => eprintln!("relive-echo: accept: {e}"),
        }
    }
    Ok(())
}

/// The listening socket a socket unit passed (sd_listen_fds(3): fd 3 when
/// LISTEN_PID is this process and LISTEN_FDS is 1).
fn activated_listener() -> Option<TcpListener> {
    let for_us = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let count: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if !for_us || count != 1 {
        return None;
    }
    // SAFETY: the service manager passed descriptor 3 to this process for
    // it to own, and nothing else here uses it.
    Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(3) })
}

fn echo(stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    println!("relive-echo: {peer} connected");
    let result = stream
        .try_clone()
        .and_then(|mut out| std::io::copy(&mut &stream, &mut out));
    match result {
        Ok(bytes) => println!("relive-echo: {peer} closed after {bytes} bytes"),
        Err(e) => println!("relive-echo: {peer}: {e}"),
    }
}
