//! relive-echo: a TCP echo server (one thread per connection) whose open
//! connections a live kernel upgrade must keep: a client on the host sends
//! lines before, during and after the upgrade and checks every byte comes
//! back.

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
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    println!("relive-echo: listening on {}", args.listen);
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
