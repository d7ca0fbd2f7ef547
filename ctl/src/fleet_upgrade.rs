//! `relivectl live-upgrade --fleet-lock URL`: a host that upgrades
//! itself (on a timer, or from a script run on many hosts at once) takes
//! a slot of its group from a FleetLock server first, so that only as
//! many hosts as the server allows upgrade at a time, and gives it back
//! once the upgrade's report is healthy (Zincati's pre-reboot and
//! steady-state). A failed upgrade keeps the slot: the rest of the group
//! waits until someone has looked at this host.
//!
//! relivectl must follow the upgrade to its end to give the slot back:
//! it runs inside a unit relive preserves (an ssh session, a service) and
//! is restored with it on the new kernel.

use crate::cli::{Command, Global, LiveUpgradeArgs};
use crate::error::CtlError;
use crate::fleetlock::{self, FleetLockError};
use crate::target::{self, Target};
use crate::{follow, Exit, Io};
use std::time::Duration;

/// How long to keep trying to give the slot back after a healthy upgrade.
const UNLOCK_WAIT: Duration = Duration::from_secs(60);

pub fn run(
    global: &Global,
    args: &LiveUpgradeArgs,
    url: &str,
    io: &mut Io<'_>,
) -> Result<Exit, CtlError> {
    let client = fleetlock::Client {
        url: url.to_owned(),
        group: args.fleet_group.clone(),
        id: match &args.fleet_id {
            Some(id) => id.clone(),
            None => fleetlock::node_id()?,
        },
    };
    if let Some(Target::Running(release)) = target::resolve(args, &target::running_release())? {
        // A slot this host may still hold, from an upgrade whose follower
        // did not live to give it back (not held: fine).
        client.unlock()?;
        crate::nothing_to_do(&release, args.latest, io)?;
        return Ok(Exit::Success);
    }
    if follow::own_unit_of_tree().is_none() {
        return Err(CtlError::Refused(
            "--fleet-lock: relivectl gives the slot back once the upgrade's report is healthy, \
             so it must follow the upgrade from inside a unit relive preserves (an ssh session, \
             a service)"
                .into(),
        ));
    }
    eprintln!(
        "relivectl: asking {url} for a slot (group {}, id {})",
        client.group, client.id
    );
    let wait = Duration::from_secs(args.fleet_lock_wait);
    client.lock_waiting(wait, &mut |why| {
        eprintln!(
            "relivectl: no slot yet ({why}); asking again in {} s",
            fleetlock::RETRY.as_secs()
        )
    })?;
    eprintln!("relivectl: slot taken");
    let asked_usec = follow::now_usec();
    let mut plain = args.clone();
    plain.fleet_lock = None;
    let upgraded = crate::run(global, Some(&Command::LiveUpgrade(plain)), io);
    match follow::report_of_upgrade_since(global, asked_usec) {
        Ok(Some(report)) if follow::succeeded(&report) => {
            unlock_waiting(&client)?;
            eprintln!("relivectl: the upgrade is healthy: slot given back");
        }
        Ok(None) if upgraded.is_err() => {
            // Refused before anything was touched: this host is as it was.
            unlock_waiting(&client)?;
            eprintln!("relivectl: nothing was changed: slot given back");
        }
        _ => eprintln!(
            "relivectl: the upgrade did not end healthy: the slot stays taken, holding the rest \
             of group {group} back; once this host is sound, give it back with \
             `relivectl fleet-lock --url {url} --group {group} unlock`",
            group = client.group
        ),
    }
    upgraded
}

/// Gives the slot back, trying for [`UNLOCK_WAIT`].
fn unlock_waiting(client: &fleetlock::Client) -> Result<(), FleetLockError> {
    client.unlock_waiting(UNLOCK_WAIT, &mut |e| {
        eprintln!("relivectl: cannot give the slot back yet ({e})")
    })
}
