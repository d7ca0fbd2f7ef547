//! A step of a running upgrade, sent as the `Progress` D-Bus signal and
//! shown live by `relivectl live-upgrade`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an upgrade is. On the wire (the signal's first argument, the
/// JSON) it is the kebab-case name, so scripts that read the text keep
/// working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for control clients to disconnect (a detached upgrade).
    Wait,
    Preflight,
    /// Which store carries the images, and why.
    Store,
    /// Phase 1 begins: background pre-dumps.
    Phase1,
    /// One unit's background pre-dump round, or why its rounds stopped.
    PreDump,
    /// Phase 2 begins: the stoppage.
    Phase2,
    /// A Mode=restart unit is stopped.
    Stop,
    Freeze,
    Dump,
    /// A unit's final dump is done.
    Dumped,
    /// relive's own state is written to the store.
    Handover,
    Kexec,
    /// Something failed: the upgrade is being undone.
    Abort,
    /// The undo is done: every service runs on the old kernel again.
    Aborted,
}

impl Phase {
    pub const ALL: [Phase; 14] = [
        Phase::Wait,
        Phase::Preflight,
        Phase::Store,
        Phase::Phase1,
        Phase::PreDump,
        Phase::Phase2,
        Phase::Stop,
        Phase::Freeze,
        Phase::Dump,
        Phase::Dumped,
        Phase::Handover,
        Phase::Kexec,
        Phase::Abort,
        Phase::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Wait => "wait",
            Phase::Preflight => "preflight",
            Phase::Store => "store",
            Phase::Phase1 => "phase1",
            Phase::PreDump => "pre-dump",
            Phase::Phase2 => "phase2",
            Phase::Stop => "stop",
            Phase::Freeze => "freeze",
            Phase::Dump => "dump",
            Phase::Dumped => "dumped",
            Phase::Handover => "handover",
            Phase::Kexec => "kexec",
            Phase::Abort => "abort",
            Phase::Aborted => "aborted",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase name this relivectl does not know (a newer relive sent it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPhase(pub String);

impl fmt::Display for UnknownPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown upgrade phase {:?}", self.0)
    }
}

impl std::error::Error for UnknownPhase {}

impl FromStr for Phase {
    type Err = UnknownPhase;
    fn from_str(s: &str) -> Result<Phase, UnknownPhase> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_owned()))
    }
}

/// One step: the phase, the unit it concerns (empty for the whole
/// upgrade), bytes written so far where that means something, and a
/// message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub unit: String,
    pub bytes: u64,
    pub message: String,
}

impl Progress {
    pub fn new(phase: Phase, unit: &str, bytes: u64, message: &str) -> Progress {
        Progress {
            phase,
            unit: unit.into(),
            bytes,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_reads_back_from_its_name() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
        }
        assert!("warp".parse::<Phase>().is_err());
    }
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelAnswer {
    /// The upgrade stops before its stoppage and is undone.
    Cancelled,
    /// No upgrade is under way.
    NoUpgrade,
    /// The stoppage has begun: too late to cancel.
    StoppageBegun,
}

impl std::fmt::Display for CancelAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CancelAnswer::Cancelled => {
                "Cancelled: phase 1 stops after its current round and the upgrade is undone"
            }
            CancelAnswer::NoUpgrade => "No live upgrade is under way",
            CancelAnswer::StoppageBegun => {
                "Too late: the stoppage has begun; the upgrade goes on to the kexec or to its undo"
            }
        })
    }
}
