//! relive-fetch: downloads one URL path over HTTP/1.0 from a TCP address
//! and writes what it got to a result file: `started UNIX_SECONDS`, then
//! `done UNIX_SECONDS BYTES SHA256` (or `failed UNIX_SECONDS WHY`). The
//! lab starts it just before a live upgrade and reads the file after.

use anyhow::{Context, Result};
use clap::Parser;
use std::io::{Read, Write};
use std::net::TcpStream;

#[derive(Debug, Parser)]
#[command(name = "relive-fetch", about = "HTTP download with a result file")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8081")]
    address: String,
    #[arg(long, default_value = "/")]
    path: String,
    #[arg(long, default_value = "/var/lib/relive-fetch/result")]
    result: String,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(dir) = std::path::Path::new(&args.result).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let started = format!("started {}\n", now());
    std::fs::write(&args.result, &started).with_context(|| args.result.clone())?;
    let line = match fetch(&args) {
        Ok(body) => format!(
            "done {} {} {}\n",
            now(),
            body.len(),
            relive_workloads::checksum(&body)
        ),
        Err(e) => format!("failed {} {e:#}\n", now()),
    };
    print!("relive-fetch: {line}");
    std::fs::write(&args.result, started + &line).with_context(|| args.result.clone())?;
    Ok(())
}

/// The response's body, once the server has closed the connection.
fn fetch(args: &Args) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(&args.address)?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        args.path
    )?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response's head")?;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{}",
        head.lines().next().unwrap_or_default()
    );
    Ok(all[split + 4..].to_vec())
}
