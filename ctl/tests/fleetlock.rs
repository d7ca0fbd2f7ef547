//! `relivectl fleet-lock` against a FleetLock server made here: the
//! protocol as Zincati speaks it (POST /v1/pre-reboot and
//! /v1/steady-state with `fleet-lock-protocol: true` and the node's id
//! and group), one slot per group, recursive for its holder.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// Group -> the id holding its one slot.
type Slots = Arc<Mutex<BTreeMap<String, String>>>;

fn serve(slots: Slots) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let slots = slots.clone();
            std::thread::spawn(move || answer(stream, &slots));
        }
    });
    url
}

fn answer(stream: TcpStream, slots: &Slots) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let (status, reply) = decide(&request_line, &headers, &body, slots);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )
    .unwrap();
}

fn decide(
    request_line: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    slots: &Slots,
) -> (&'static str, String) {
    let refuse = |status, kind: &str, value: &str| {
        (status, format!(r#"{{"kind":"{kind}","value":"{value}"}}"#))
    };
    if headers.get("fleet-lock-protocol").map(String::as_str) != Some("true") {
        return refuse("400 Bad Request", "missing_header", "fleet-lock-protocol");
    }
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    let id = json["client_params"]["id"].as_str().unwrap().to_owned();
    let group = json["client_params"]["group"].as_str().unwrap().to_owned();
    let mut slots = slots.lock().unwrap();
    match request_line.split_whitespace().nth(1) {
        Some("/v1/pre-reboot") => match slots.get(&group) {
            Some(holder) if *holder != id => {
                refuse("409 Conflict", "failed_lock", "semaphore full")
            }
            _ => {
                slots.insert(group, id);
                ("200 OK", "{}".into())
            }
        },
        Some("/v1/steady-state") => {
            if slots.get(&group) == Some(&id) {
                slots.remove(&group);
            }
            ("200 OK", "{}".into())
        }
        _ => refuse("404 Not Found", "not_found", "no such endpoint"),
    }
}

fn fleet_lock(url: &str, id: &str, action: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relivectl"))
        .args([
            "fleet-lock",
            "--url",
            url,
            "--group",
            "workers",
            "--id",
            id,
            action,
        ])
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn one_host_at_a_time_holds_the_slot_and_gives_it_back() {
    let slots = Slots::default();
    let url = serve(slots.clone());
    let a = fleet_lock(&url, "host-a", "lock");
    assert!(a.status.success(), "{}", text(&a));
    assert_eq!(text(&a), "Slot taken: host-a in group workers.\n");
    // Taking it again is fine for its holder (RecursiveLock).
    assert!(fleet_lock(&url, "host-a", "lock").status.success());
    let b = fleet_lock(&url, "host-b", "lock");
    assert!(!b.status.success());
    assert!(
        text(&b).contains("refused (409): failed_lock: semaphore full"),
        "{}",
        text(&b)
    );
    // Only the holder's unlock frees it (UnlockIfHeld).
    assert!(fleet_lock(&url, "host-b", "unlock").status.success());
    assert_eq!(slots.lock().unwrap()["workers"], "host-a");
    assert!(fleet_lock(&url, "host-a", "unlock").status.success());
    assert!(fleet_lock(&url, "host-b", "lock").status.success());
    assert_eq!(slots.lock().unwrap()["workers"], "host-b");
}

#[test]
fn two_hosts_asking_at_once_get_one_slot() {
    let slots = Slots::default();
    let url = serve(slots.clone());
    let asks: Vec<_> = ["host-a", "host-b"]
        .into_iter()
        .map(|id| {
            let url = url.clone();
            std::thread::spawn(move || fleet_lock(&url, id, "lock").status.success())
        })
        .collect();
    let granted: Vec<bool> = asks.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
}

#[test]
fn an_unreachable_server_is_named() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = fleet_lock(&format!("http://127.0.0.1:{port}"), "host-a", "lock");
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "lock server http://127.0.0.1:{port}/v1/pre-reboot"
        )),
        "{}",
        text(&out)
    );
}

fn upgrade(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relivectl"))
        .args(["--socket", "/nonexistent/relive-socket", "live-upgrade"])
        .args(extra)
        .args([
            "--fleet-lock",
            url,
            "--fleet-group",
            "workers",
            "--fleet-id",
            "host-a",
        ])
        .output()
        .unwrap()
}

fn running_release() -> String {
    let out = Command::new("uname").arg("-r").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn nothing_to_do_gives_back_a_slot_left_from_an_earlier_upgrade() {
    let slots = Slots::default();
    slots
        .lock()
        .unwrap()
        .insert("workers".into(), "host-a".into());
    let url = serve(slots.clone());
    let release = running_release();
    let out = upgrade(&url, &["--release", &release]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Already running {release}: nothing to do.\n")
    );
    assert!(slots.lock().unwrap().is_empty());
}

#[test]
fn a_kernel_release_not_installed_is_named_and_no_slot_taken() {
    let slots = Slots::default();
    let url = serve(slots.clone());
    let out = upgrade(&url, &["--release", "0.0.0-none"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--release 0.0.0-none: there is no /boot/vmlinuz-0.0.0-none"),
        "{}",
        text(&out)
    );
    assert!(slots.lock().unwrap().is_empty());
}

#[test]
fn an_upgrade_that_cannot_start_leaves_the_slot_free() {
    // Outside a unit of relive's, relivectl refuses before asking for a
    // slot; inside one (a test run from a service), relive cannot be
    // reached and the slot is given back.
    let slots = Slots::default();
    let url = serve(slots.clone());
    let out = upgrade(&url, &["--kernel", "/nonexistent/vmlinuz"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(slots.lock().unwrap().is_empty(), "{}", text(&out));
}
