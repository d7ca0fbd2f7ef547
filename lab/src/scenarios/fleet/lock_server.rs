//! A FleetLock server for `relive-lab fleet`, on the host's 127.0.0.1
//! (10.0.2.2 from the guests, through QEMU's user network): one slot per
//! group, recursive for its holder (RecursiveLock), freed only by its
//! holder (UnlockIfHeld), as airlock answers Zincati. It keeps a
//! timeline of what it granted and refused, which the scenario reads to
//! tell whether two hosts ever held the slot at once.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What happened at the server, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Granted { id: String },
    Refused { id: String, holder: String },
    Released { id: String },
}

#[derive(Debug, Default)]
struct State {
    /// Group -> the id holding its slot.
    holders: BTreeMap<String, String>,
    timeline: Vec<(Instant, Event)>,
}

pub struct LockServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl LockServer {
    pub fn start() -> Result<LockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the lock server")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = answer(stream, &state);
                });
            }
        });
        Ok(LockServer { port, state })
    }

    /// Every grant, refusal and release so far.
    pub fn timeline(&self) -> Vec<(Instant, Event)> {
        self.state
            .lock()
            .expect("lock server state")
            .timeline
            .clone()
    }

    /// Who holds the slot of `group` now.
    pub fn holder(&self, group: &str) -> Option<String> {
        let state = self.state.lock().expect("lock server state");
        state.holders.get(group).cloned()
    }
}

/// Whether the slot was ever granted to a second host while the first
/// held it; None when it never was, else the first such grant.
pub fn overlap(timeline: &[(Instant, Event)]) -> Option<String> {
    let mut holder: Option<&str> = None;
    for (_, event) in timeline {
        match event {
            Event::Granted { id } => match holder {
                Some(h) if h != id => return Some(format!("{id} granted while {h} held it")),
                _ => holder = Some(id),
            },
            Event::Released { id } if holder == Some(id.as_str()) => holder = None,
            _ => {}
        }
    }
    None
}

/// The timeline as text: `+host1 -host3(held by host1) /host1 ...`,
/// repeated refusals of one host counted.
pub fn describe(timeline: &[(Instant, Event)]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (_, event) in timeline {
        let text = match event {
            Event::Granted { id } => format!("{id} granted"),
            Event::Refused { id, holder } => format!("{id} refused (held by {holder})"),
            Event::Released { id } => format!("{id} released"),
        };
        match out.last_mut() {
            Some(last) if last.starts_with(&text) => {
                let count = last
                    .rsplit_once(" x")
                    .and_then(|(_, n)| n.parse::<u32>().ok())
                    .unwrap_or(1);
                *last = format!("{text} x{}", count + 1);
            }
            _ => out.push(text),
        }
    }
    out.join(", ")
}

fn answer(stream: TcpStream, state: &Mutex<State>) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let params = &json["client_params"];
    let id = params["id"].as_str().unwrap_or_default().to_owned();
    let group = params["group"].as_str().unwrap_or_default().to_owned();
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let (status, reply) = decide(
        path,
        id,
        group,
        &mut state.lock().expect("lock server state"),
    );
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    Ok(())
}

fn decide(path: &str, id: String, group: String, state: &mut State) -> (&'static str, String) {
    let now = Instant::now();
    match path {
        "/v1/pre-reboot" => match state.holders.get(&group) {
            Some(holder) if *holder != id => {
                let holder = holder.clone();
                state.timeline.push((now, Event::Refused { id, holder }));
                (
                    "409 Conflict",
                    r#"{"kind":"failed_lock","value":"semaphore full"}"#.into(),
                )
            }
            _ => {
                state.holders.insert(group, id.clone());
                state.timeline.push((now, Event::Granted { id }));
                ("200 OK", "{}".into())
            }
        },
        "/v1/steady-state" => {
            if state.holders.get(&group) == Some(&id) {
                state.holders.remove(&group);
                state.timeline.push((now, Event::Released { id }));
            }
            ("200 OK", "{}".into())
        }
        _ => (
            "404 Not Found",
            r#"{"kind":"not_found","value":"no such endpoint"}"#.into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(events: Vec<Event>) -> Vec<(Instant, Event)> {
        events.into_iter().map(|e| (Instant::now(), e)).collect()
    }

    #[test]
    fn a_second_grant_while_held_is_an_overlap() {
        let granted = |id: &str| Event::Granted { id: id.into() };
        let released = |id: &str| Event::Released { id: id.into() };
        let refused = Event::Refused {
            id: "b".into(),
            holder: "a".into(),
        };
        let serial = at(vec![
            granted("a"),
            refused.clone(),
            refused,
            released("a"),
            granted("b"),
            released("b"),
        ]);
        assert_eq!(overlap(&serial), None);
        assert_eq!(
            describe(&serial),
            "a granted, b refused (held by a) x2, a released, b granted, b released"
        );
        let both = at(vec![granted("a"), granted("b")]);
        assert_eq!(overlap(&both).as_deref(), Some("b granted while a held it"));
    }
}
