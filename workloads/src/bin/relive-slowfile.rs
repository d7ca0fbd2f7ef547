//! relive-slowfile: an HTTP backend on a unix socket that sends a known
//! body slowly, so that a download through nginx is still under way when
//! a live kernel upgrade freezes the two: the connection between them is
//! a unix socket, which only a preservation group carries (both ends
//! checkpointed together).

use anyhow::{Context, Result};
use clap::Parser;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "relive-slowfile", about = "slow HTTP backend on a unix socket")]
struct Args {
    #[arg(long, default_value = "/run/relive-slowfile/http.sock")]
    socket: String,
    /// Body size in KiB (relive_workloads::pattern of that length).
    #[arg(long, default_value_t = 8192)]
    kib: usize,
    /// KiB sent per tick of 250 ms.
    #[arg(long, default_value_t = 16)]
    kib_per_tick: usize,
}

/// Held open for the process's life.
const SHM_FILE: &str = "/dev/shm/relive-slowfile";

fn main() -> Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_file(&args.socket);
    let listener =
        UnixListener::bind(&args.socket).with_context(|| format!("binding {}", args.socket))?;
    // nginx's workers (www-data) connect to it.
    std::fs::set_permissions(
        &args.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )?;
    let body = std::sync::Arc::new(relive_workloads::pattern(args.kib * 1024));
    // A file kept open in /dev/shm (a tmpfs the next kernel starts empty):
    // a live upgrade must carry it with the process.
    let mut shm = std::fs::File::create(SHM_FILE).with_context(|| SHM_FILE.to_owned())?;
    writeln!(shm, "relive-slowfile {}", relive_workloads::checksum(&body))?;
    println!(
        "relive-slowfile: {} KiB, sha256 {}, on {}",
        args.kib,
        relive_workloads::checksum(&body),
        args.socket
    );
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let body = body.clone();
                let chunk = args.kib_per_tick * 1024;
                std::thread::spawn(move || serve(stream, &body, chunk));
            }
            Err(e) => eprintln!("relive-slowfile: accept: {e}"),
        }
    }
    Ok(())
}

fn serve(stream: UnixStream, body: &[u8], chunk: usize) {
    let mut reader = BufReader::new(&stream);
    // The request's head, up to its blank line; the body is always the same.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
        line.clear();
    }
    let mut out = &stream;
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let sent = out.write_all(head.as_bytes()).and_then(|()| {
        for piece in body.chunks(chunk.max(1)) {
            out.write_all(piece)?;
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    });
    match sent {
        Ok(()) => println!("relive-slowfile: sent {} bytes", body.len()),
        Err(e) => println!("relive-slowfile: {e}"),
    }
}
