//! A FleetLock client: the HTTP protocol Zincati speaks to a lock server
//! (airlock and others). A host that upgrades itself takes a slot of its
//! group first (`POST /v1/pre-reboot`, RecursiveLock: taking it again is
//! fine) and gives it back once it is healthy (`POST /v1/steady-state`,
//! UnlockIfHeld), so that only as many hosts as the server allows upgrade
//! at a time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// How often a host waiting for a slot asks again.
pub const RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FleetLockError {
    #[error("lock server {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// The server answered no, with the protocol's kind and text.
    #[error("lock server {url} refused ({status}): {kind}: {value}")]
    Refused {
        url: String,
        status: u16,
        kind: String,
        value: String,
    },
    #[error("no slot from lock server {url} within {seconds} s")]
    NoSlot {
        url: String,
        seconds: u64,
        #[source]
        last: Box<FleetLockError>,
    },
    #[error("cannot read /etc/machine-id for the node's id: {0} (give --id)")]
    MachineId(#[source] std::io::Error),
}

#[derive(Debug, Serialize)]
struct Request<'a> {
    client_params: ClientParams<'a>,
}

#[derive(Debug, Serialize)]
struct ClientParams<'a> {
    id: &'a str,
    group: &'a str,
}

#[derive(Debug, Default, Deserialize)]
struct Refusal {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
}

/// One node of one group, talking to the lock server at `url`.
#[derive(Debug, Clone)]
pub struct Client {
    pub url: String,
    pub group: String,
    pub id: String,
}

impl Client {
    /// Takes a slot (held already by this node: fine).
    pub fn lock(&self) -> Result<(), FleetLockError> {
        self.post("/v1/pre-reboot")
    }

    /// Takes a slot, asking again every [`RETRY`] while the server says
    /// no or cannot be reached (as Zincati does), for at most `wait`;
    /// `waiting` is told each time why not yet.
    pub fn lock_waiting(
        &self,
        wait: Duration,
        waiting: &mut dyn FnMut(&FleetLockError),
    ) -> Result<(), FleetLockError> {
        retrying(wait, || self.lock(), waiting).map_err(|e| FleetLockError::NoSlot {
            url: self.url.clone(),
            seconds: wait.as_secs(),
            last: Box::new(e),
        })
    }

    /// Gives the slot back, asking again every [`RETRY`] while the server
    /// cannot be reached, for at most `wait`; `waiting` as above.
    pub fn unlock_waiting(
        &self,
        wait: Duration,
        waiting: &mut dyn FnMut(&FleetLockError),
    ) -> Result<(), FleetLockError> {
        retrying(wait, || self.unlock(), waiting)
    }

    /// Gives the slot back (not held: fine).
    pub fn unlock(&self) -> Result<(), FleetLockError> {
        self.post("/v1/steady-state")
    }

    fn post(&self, path: &str) -> Result<(), FleetLockError> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let body = Request {
            client_params: ClientParams {
                id: &self.id,
                group: &self.group,
            },
        };
        let http = |source| FleetLockError::Http {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut response = ureq::post(&url)
            .header("fleet-lock-protocol", "true")
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(&body)
            .map_err(http)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let refusal: Refusal = response.body_mut().read_json().unwrap_or_default();
        Err(FleetLockError::Refused {
            url,
            status,
            kind: refusal.kind,
            value: refusal.value,
        })
    }
}

/// `call` until it succeeds, every [`RETRY`], for at most `wait`; the
/// last error when time is up.
fn retrying(
    wait: Duration,
    call: impl Fn() -> Result<(), FleetLockError>,
    waiting: &mut dyn FnMut(&FleetLockError),
) -> Result<(), FleetLockError> {
    let deadline = Instant::now() + wait;
    loop {
        match call() {
            Err(e) if Instant::now() + RETRY <= deadline => waiting(&e),
            done => return done,
        }
        std::thread::sleep(RETRY);
    }
}

/// The node's id for the lock server: derived from /etc/machine-id (not
/// the machine id itself, which is not to be shown to the network).
pub fn node_id() -> Result<String, FleetLockError> {
    let machine = std::fs::read_to_string("/etc/machine-id").map_err(FleetLockError::MachineId)?;
    Ok(derived_id(machine.trim()))
}

fn derived_id(machine_id: &str) -> String {
    let digest = Sha256::digest(format!("relive-fleetlock:{machine_id}"));
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_is_stable_and_not_the_machine_id() {
        let id = derived_id("0123456789abcdef0123456789abcdef");
        assert_eq!(id.len(), 32);
        assert_eq!(id, derived_id("0123456789abcdef0123456789abcdef"));
        assert_ne!(id, "0123456789abcdef0123456789abcdef");
        assert_ne!(id, derived_id("fedcba9876543210fedcba9876543210"));
    }
}
