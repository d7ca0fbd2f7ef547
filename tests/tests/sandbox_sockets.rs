//! Socket units in the namespace sandbox: relive listens before the
//! service runs, starts it on the first traffic, hands it the sockets as
//! sd_listen_fds(3) says, forks an instance per connection for Accept=yes,
//! and a socket that cannot be made fails only its own unit.

use relive_tests::{require_sandbox, Sandbox};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A service that answers each connection on fd 3 with what socket
/// activation gave it, checking LISTEN_PID itself.
const ACTIVATED: &str = r#"
import os, socket
assert int(os.environ["LISTEN_PID"]) == os.getpid(), "LISTEN_PID is not mine"
listener = socket.socket(fileno=3)
while True:
    conn, _ = listener.accept()
    conn.sendall("fds={} names={} blocking={}\n".format(
        os.environ["LISTEN_FDS"], os.environ["LISTEN_FDNAMES"],
        listener.getblocking()).encode())
    conn.close()
"#;

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn reply(mut stream: impl std::io::Read + Write) -> String {
    let _ = stream.write_all(b"hello\n");
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// A free TCP port on 127.0.0.1 (the sandbox shares this network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn accept_no_socket_starts_its_service_on_first_traffic() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-sockets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run/echo.sock");
    let program = script(&dir, "activated.py", ACTIVATED);
    let socket = format!(
        "[Socket]\nListenStream={}\nSocketMode=0600\nFileDescriptorName=echo\n",
        path.display()
    );
    let service = format!(
        "[Service]\nExecStart=/usr/bin/python3 {}\n",
        program.display()
    );
    let sandbox = Sandbox::boot(
        &[
            ("echo.socket", &socket),
            ("echo.service", &service),
            ("multi-user.target", "[Unit]\nWants=echo.socket\n"),
        ],
        "",
    );
    sandbox.wait_state("echo.socket", "active", Duration::from_secs(10));
    let status = sandbox.status("echo.socket");
    assert_eq!(status["sub_state"], "listening", "{status}");
    assert_eq!(sandbox.active_state("echo.service"), "inactive");
    let listed: serde_json::Value =
        serde_json::from_str(&sandbox.ctl_ok(&["--json", "list-sockets"])).unwrap();
    assert_eq!(
        listed[0],
        serde_json::json!({
            "listen": path.to_str().unwrap(),
            "kind": "Stream",
            "unit": "echo.socket",
            "activates": "echo.service",
        })
    );
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // The first connection waits in the backlog while the service starts.
    let answer = reply(UnixStream::connect(&path).unwrap());
    assert_eq!(
        answer,
        "fds=1 names=echo blocking=True",
        "{}",
        sandbox.log()
    );
    assert_eq!(sandbox.active_state("echo.service"), "active");
    assert_eq!(sandbox.status("echo.socket")["sub_state"], "running");

    // Stopped, the service leaves the socket listening, and traffic
    // starts it again.
    sandbox.ctl_ok(&["stop", "echo.service"]);
    sandbox.wait_for(
        "the socket to listen again",
        Duration::from_secs(10),
        || sandbox.status("echo.socket")["sub_state"] == "listening",
    );
    let answer = reply(UnixStream::connect(&path).unwrap());
    assert!(answer.starts_with("fds=1"), "{answer}");

    // Stopping the socket does not stop the service (systemd neither).
    sandbox.ctl_ok(&["stop", "echo.socket"]);
    assert_eq!(sandbox.active_state("echo.service"), "active");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn accept_yes_forks_one_instance_per_connection() {
    require_sandbox!();
    let port = free_port();
    let socket = format!("[Socket]\nListenStream=127.0.0.1:{port}\nAccept=yes\n");
    // With StandardInput=socket the connection is the service's stdin
    // and stdout.
    let service = "[Service]\nStandardInput=socket\n\
                   ExecStart=/bin/sh -c 'read line; echo \"%i $REMOTE_ADDR $line\"'\n";
    let sandbox = Sandbox::boot(
        &[
            ("greet.socket", &socket),
            ("greet@.service", service),
            ("multi-user.target", "[Unit]\nWants=greet.socket\n"),
        ],
        "",
    );
    sandbox.wait_state("greet.socket", "active", Duration::from_secs(10));
    let first = reply(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let second = reply(TcpStream::connect(("127.0.0.1", port)).unwrap());
    for (n, answer) in [(0, &first), (1, &second)] {
        let prefix = format!("{n}-127.0.0.1:{port}-127.0.0.1:");
        assert!(
            answer.starts_with(&prefix) && answer.ends_with(" 127.0.0.1 hello"),
            "{answer}\n{}",
            sandbox.log()
        );
    }
    // The socket keeps listening: each connection has its own instance.
    assert_eq!(sandbox.status("greet.socket")["sub_state"], "listening");
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}

#[test]
fn a_socket_that_cannot_bind_fails_alone_with_its_line() {
    require_sandbox!();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let bad = format!("[Unit]\nDescription=taken\n[Socket]\nListenStream=127.0.0.1:{port}\n");
    let sandbox = Sandbox::boot(
        &[
            ("taken.socket", &bad),
            ("taken.service", "[Service]\nExecStart=/bin/sleep 300\n"),
            ("fine.service", "[Service]\nExecStart=/bin/sleep 300\n"),
            (
                "multi-user.target",
                "[Unit]\nWants=taken.socket fine.service\n",
            ),
        ],
        "",
    );
    sandbox.wait_state("fine.service", "active", Duration::from_secs(10));
    sandbox.wait_state("taken.socket", "failed", Duration::from_secs(10));
    let lines = sandbox.log_lines("taken.socket:4: cannot listen on 127.0.0.1:");
    assert!(
        lines.iter().any(|l| l.contains("Address already in use")),
        "{}",
        sandbox.log()
    );
    drop(taken);
    let (status, log) = sandbox.poweroff();
    assert!(status.success(), "{status}\n{log}");
}
