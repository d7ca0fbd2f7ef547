//! A service on a terminal (StandardInput=tty, TTYPath=), as a getty
//! runs: a pseudo-terminal stands in for the serial line. The service
//! gets it as its controlling terminal and its standard streams, with
//! systemd's $TERM, and reads what is typed.

use relive_tests::{require_sandbox, Sandbox};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Reads from the terminal's master until `want` shows up (or 10 s).
fn read_until(master: &mut std::fs::File, want: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline && !seen.contains(want) {
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    seen
}

#[test]
fn a_tty_service_owns_its_terminal_and_reads_from_it() {
    require_sandbox!();
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let slave_path = nix::unistd::ttyname(&pty.slave).expect("its name");
    // Only the service keeps the slave open.
    drop(pty.slave);
    let flags = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    )
    .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let unit = format!(
        "[Service]\nType=idle\nStandardInput=tty\nTTYPath={}\nTTYReset=yes\nTTYVHangup=yes\n\
         ExecStart=/bin/sh -c 'echo \"tty=$(tty) ctty=$(cut -d\" \" -f7 /proc/self/stat) TERM=$TERM\"; read line; echo \"got:$line\"; sleep 300'\n",
        slave_path.display()
    );
    let sandbox = Sandbox::boot(
        &[
            ("term.service", &unit),
            ("multi-user.target", "[Unit]\nWants=term.service\n"),
        ],
        "",
    );
    let greeting = read_until(&mut master, "TERM=");
    let line = greeting
        .lines()
        .find(|l| l.contains("tty="))
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(
        line.starts_with(&format!("tty={}", slave_path.display())) && line.ends_with("TERM=vt220"),
        "{greeting:?}\n{}",
        sandbox.log()
    );
    let ctty: i64 = line
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("ctty="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_ne!(ctty, 0, "no controlling terminal: {line}");
    master.write_all(b"hello\n").unwrap();
    let answer = read_until(&mut master, "got:hello");
    assert!(answer.contains("got:hello"), "{answer:?}");
    assert_eq!(sandbox.active_state("term.service"), "active");
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
