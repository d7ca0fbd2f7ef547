//! What the manager tells systemd1 clients: jobs queued and finished,
//! units that changed state, reloads. The manager publishes; each client
//! connection that subscribed forwards the events as D-Bus signals.

use crate::manager::state::{ActiveState, SubState, UnitState};
use std::collections::BTreeMap;

/// How a job ended, as systemd names it in JobRemoved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Failed,
    Dependency,
}

impl JobResult {
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    JobNew {
        id: u64,
        unit: String,
    },
    JobRemoved {
        id: u64,
        unit: String,
        result: JobResult,
    },
    /// A unit relive had not heard of was loaded.
    UnitNew {
        unit: String,
    },
    /// Its active state, sub-state or job changed; the new states.
    UnitChanged {
        unit: String,
        active: &'static str,
        sub: &'static str,
    },
    /// A unit relive let go of (a transient scope whose processes are
    /// gone).
    UnitRemoved {
        unit: String,
    },
    /// A daemon-reload begins (true) or has ended (false).
    Reloading(bool),
    /// The boot's start jobs are done: µs in the kernel (boot to relive's
    /// start) and in user space (relive's start to now). Firmware, loader
    /// and initrd times are not known to relive: 0.
    StartupFinished {
        kernel_usec: u64,
        userspace_usec: u64,
    },
}

/// What a unit looked like when the last changes were published.
type Seen = (ActiveState, SubState, Option<u64>);

/// The clients listening for events.
#[derive(Debug, Default)]
pub struct Subscribers {
    senders: Vec<async_channel::Sender<BusEvent>>,
    seen: BTreeMap<String, Seen>,
}

/// Events a client may fall behind by before it is dropped: a client that
/// does not read must not make PID 1 hold memory without bound.
const BACKLOG: usize = 4096;

impl Subscribers {
    /// A new listener; `units` is the state it starts from, so that it
    /// hears of changes from now on, not of every unit at once.
    pub fn subscribe<'a>(
        &mut self,
        units: impl Iterator<Item = &'a UnitState>,
    ) -> async_channel::Receiver<BusEvent> {
        if self.senders.is_empty() {
            self.seen = units.map(|u| (u.name.clone(), seen(u))).collect();
        }
        let (tx, rx) = async_channel::bounded(BACKLOG);
        self.senders.push(tx);
        rx
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    pub fn publish(&mut self, event: BusEvent) {
        if self.senders.is_empty() {
            return;
        }
        // A full or closed channel is a client gone or stuck: dropped.
        self.senders.retain(|tx| tx.try_send(event.clone()).is_ok());
    }

    /// `unit` is gone: UnitRemoved, and it is new again if it comes back.
    pub fn removed(&mut self, unit: &str) {
        self.seen.remove(unit);
        self.publish(BusEvent::UnitRemoved {
            unit: unit.to_owned(),
        });
    }

    /// Publishes UnitNew for every unit loaded since the last call, and
    /// UnitChanged for every unit whose state differs from what was last
    /// published.
    pub fn publish_changes<'a>(&mut self, units: impl Iterator<Item = &'a UnitState>) {
        if self.senders.is_empty() {
            return;
        }
        let mut events = Vec::new();
        // Runs on every wake-up of PID 1's loop: no allocation for a
        // unit that did not change.
        for u in units {
            let now = seen(u);
            match self.seen.get_mut(&u.name) {
                None => {
                    self.seen.insert(u.name.clone(), now);
                    events.push(BusEvent::UnitNew {
                        unit: u.name.clone(),
                    });
                }
                Some(before) if *before != now => {
                    *before = now;
                    events.push(BusEvent::UnitChanged {
                        unit: u.name.clone(),
                        active: u.active.as_str(),
                        sub: u.sub.as_str(),
                    });
                }
                Some(_) => {}
            }
        }
        for event in events {
            self.publish(event);
        }
    }
}

fn seen(u: &UnitState) -> Seen {
    (u.active, u.sub, u.job.as_ref().map(|j| j.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_hears_only_what_changes_after_it_subscribed() {
        let mut units = vec![UnitState::new("a.service"), UnitState::new("b.service")];
        let mut subs = Subscribers::default();
        let rx = subs.subscribe(units.iter());
        subs.publish_changes(units.iter());
        assert!(rx.try_recv().is_err());
        units[1].active = ActiveState::Active;
        subs.publish_changes(units.iter());
        assert_eq!(
            rx.try_recv().unwrap(),
            BusEvent::UnitChanged {
                unit: "b.service".into(),
                active: "active",
                sub: "dead",
            }
        );
        assert!(rx.try_recv().is_err());
        units.push(UnitState::new("c.service"));
        subs.publish_changes(units.iter());
        assert_eq!(
            rx.try_recv().unwrap(),
            BusEvent::UnitNew {
                unit: "c.service".into()
            }
        );
    }

    #[test]
    fn a_closed_listener_is_dropped() {
        let mut subs = Subscribers::default();
        let rx = subs.subscribe(std::iter::empty());
        rx.close();
        subs.publish(BusEvent::Reloading(true));
        assert!(subs.is_empty());
    }
}
