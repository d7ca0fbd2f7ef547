//! Service output to journald: while something accepts on journald's
//! stdout socket, relive connects each service to it with the header of
//! journald's stdout-stream protocol (as systemd's PID 1 does), and the
//! service's lines follow on that stream. A service a live upgrade
//! preserves (the default for one that runs) writes into relive's pipe
//! instead, and relive relays its lines: a stream would break when journald
//! is restarted, and cannot cross the kexec. A listener stands in for
//! systemd-journald here (its socket path is relive.toml's).

use relive_tests::{require_sandbox, Sandbox};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn service_output_streams_to_journald_with_its_header() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("stdout");
    let listener = UnixListener::bind(&socket).unwrap();
    let config = format!(
        "[manager]\njournal_stdout_socket = \"{}\"\n",
        socket.display()
    );
    let sandbox = Sandbox::boot(
        &[
            (
                "greet.service",
                "[Service]\nSyslogIdentifier=greeter\nExecStart=/bin/sh -c 'echo hello; echo oops >&2; sleep 300'\n[X-LiveUpgrade]\nMode=restart\n",
            ),
            (
                "plain.service",
                "[Service]\nStandardOutput=journal+console\nExecStart=/bin/echo plain\n[X-LiveUpgrade]\nMode=restart\n",
            ),
            (
                "kept.service",
                "[Service]\nExecStart=/bin/sh -c 'echo kept line; sleep 300'\n",
            ),
            (
                "multi-user.target",
                "[Unit]\nWants=greet.service plain.service kept.service\n",
            ),
        ],
        &config,
    );
    let mut streams = std::collections::BTreeMap::new();
    listener.set_nonblocking(false).unwrap();
    for _ in 0..2 {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains("hello\noops\n") && !text.contains("plain\n") {
            match conn.read(&mut buf) {
                Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
        let unit = text.lines().nth(1).unwrap_or_default().to_owned();
        streams.insert(unit, text);
    }
    assert_eq!(
        streams["greet.service"],
        "greeter\ngreet.service\n6\n1\n0\n0\n0\nhello\noops\n",
        "{}",
        sandbox.log()
    );
    assert!(
        streams["plain.service"].starts_with("echo\nplain.service\n6\n1\n0\n0\n1\n"),
        "{streams:?}"
    );
    // The preserved one's line came through relive's pipe, and no third
    // stream was opened for it.
    sandbox.wait_for("kept.service's line", Duration::from_secs(10), || {
        sandbox.log().contains("kept.service: kept line")
    });
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "a stream for kept.service");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}
