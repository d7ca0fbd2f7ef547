//! The holds on restored units' ports lifted on a thread of their own
//! (see syn_hold). Each lift is an nft run, a third of a second under
//! emulation while the restores keep both CPUs busy: done by the restore
//! worker, it delayed the next unit's restore by as much. The thread
//! lifts whatever is waiting in one run; a restored service's new
//! connections wait only for that run, and no restore waits at all.

use crate::netlock::run_commands;
use crate::syn_hold;
use relive_api::report::UnitRecord;
use relive_host::UnitHost;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};

/// One unit's hold: its name, the table, its ports.
struct Lift {
    unit: String,
    table: String,
    ports: Vec<u16>,
}

pub struct HoldLifter<'scope, 'env> {
    host: &'env dyn UnitHost,
    queue: Option<Sender<Lift>>,
    thread: Option<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope, 'env> HoldLifter<'scope, 'env> {
    /// Starts the thread in `scope`; without one (a task limit), each
    /// hold is lifted where it ends.
    pub fn start(scope: &'scope Scope<'scope, 'env>, host: &'env dyn UnitHost) -> Self {
        let (queue, waiting) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("relive-holds".into())
            .spawn_scoped(scope, move || lift_as_they_come(host, waiting));
        match spawned {
            Ok(thread) => HoldLifter {
                host,
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!("cannot start the thread that lifts holds ({e}): lifted inline");
                HoldLifter {
                    host,
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// `record`'s unit is restored as `pid`: PID 1 takes its socket
    /// units' sockets back now, and its hold is lifted soon.
    pub fn restored(&self, record: &UnitRecord, pid: i32) {
        if !record.listeners.is_empty() {
            self.host
                .adopt_listeners(&record.name, pid, &record.listeners);
        }
        self.ended(record);
    }

    /// `record`'s hold ends (restored, or to be started afresh).
    pub fn ended(&self, record: &UnitRecord) {
        if record.hold_table.is_empty() {
            return;
        }
        let lift = Lift {
            unit: record.name.clone(),
            table: record.hold_table.clone(),
            ports: record.hold_ports.clone(),
        };
        match &self.queue {
            Some(queue) => {
                if let Err(unsent) = queue.send(lift) {
                    lift_together(self.host, &[unsent.0]);
                }
            }
            None => lift_together(self.host, &[lift]),
        }
    }

    /// Waits until every hold handed over is lifted.
    pub fn finish(mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the thread that lifts holds panicked");
            }
        }
    }
}

fn lift_as_they_come(host: &dyn UnitHost, waiting: Receiver<Lift>) {
    while let Ok(first) = waiting.recv() {
        let mut lifts = vec![first];
        lifts.extend(waiting.try_iter());
        lift_together(host, &lifts);
    }
}

/// One nft run for all of `lifts`; if it fails (one missing element
/// fails the whole run), one run each, so that one keeps no other.
fn lift_together(host: &dyn UnitHost, lifts: &[Lift]) {
    let commands: Vec<Vec<String>> = lifts
        .iter()
        .map(|lift| syn_hold::lift_command(&lift.table, &lift.ports))
        .collect();
    let together = lifts.len() > 1 && run_commands(host, &commands).is_ok();
    for lift in lifts {
        if together {
            tracing::info!("{}: new connections let in again", lift.unit);
        } else if let Err(e) = syn_hold::release(host, &lift.unit, &lift.table, &lift.ports) {
            tracing::warn!(
                "{}: cannot lift its hold on new connections: {e}",
                lift.unit
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_host::fake::{FakeHost, HostCall};

    fn record(unit: &str, ports: Vec<u16>) -> UnitRecord {
        UnitRecord {
            name: unit.into(),
            hold_table: syn_hold::TABLE.into(),
            hold_ports: ports,
            ..UnitRecord::default()
        }
    }

    fn nft_runs(host: &FakeHost) -> Vec<String> {
        host.calls()
            .into_iter()
            .filter_map(|c| match c {
                HostCall::Helper(argv) => Some(argv[1..].join(" ")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn holds_waiting_together_are_lifted_in_one_run() {
        let host = FakeHost::new(relive_api::plan::Plan::default());
        let lifts = [
            Lift {
                unit: "a".into(),
                table: syn_hold::TABLE.into(),
                ports: vec![80, 443],
            },
            Lift {
                unit: "b".into(),
                table: "relive-hold-b".into(),
                ports: Vec::new(),
            },
        ];
        lift_together(&host, &lifts);
        assert_eq!(
            nft_runs(&host),
            ["delete element inet relive-hold ports { 80, 443 } ; delete table inet relive-hold-b"]
        );
    }

    #[test]
    fn every_hold_handed_over_is_lifted_by_the_finish() {
        let host = FakeHost::new(relive_api::plan::Plan::default());
        std::thread::scope(|scope| {
            let lifter = HoldLifter::start(scope, &host);
            for (i, unit) in ["a", "b", "c"].iter().enumerate() {
                lifter.ended(&record(unit, vec![7000 + i as u16]));
            }
            // No hold: nothing to lift.
            lifter.ended(&UnitRecord::default());
            lifter.finish();
        });
        let lifted: Vec<String> = nft_runs(&host)
            .iter()
            .flat_map(|run| run.split(" ; ").map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert_eq!(
            lifted,
            [7000, 7001, 7002].map(|p| format!("delete element inet relive-hold ports {{ {p} }}"))
        );
    }
}
