//! (m) The D-Bus daemon and a client across the kexec: dbus-daemon is
//! preserved, and relive-busclient (mkosi/mkosi.extra), which owns
//! org.relive.Lab1 and subscribes to its Ping signal, with it. After the
//! upgrade `busctl list` must show the preserved clients' unique names
//! as before, the name owned by the same connection, and a Ping sent
//! after the upgrade must have reached the client.

use std::collections::BTreeMap;

pub const NAME: &str = "org.relive.Lab1";

/// Sends a Ping with `word`, then prints the client's pings, `@@`, and
/// `busctl list`.
pub fn script(word: &str) -> String {
    format!(
        "busctl emit /org/relive/Lab1 org.relive.Lab1 Ping s {word} && sleep 1; \
         cat /run/relive-busclient/pings; echo @@; busctl --no-legend --no-pager list"
    )
}

/// One line of `busctl list`: NAME PID PROCESS USER CONNECTION UNIT ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusName {
    pub pid: String,
    pub connection: String,
    pub unit: String,
}

/// What [`script`] printed: the client's pings, and the bus's names.
pub fn parse(stdout: &str) -> (Vec<String>, BTreeMap<String, BusName>) {
    let (pings, list) = stdout.split_once("@@").unwrap_or((stdout, ""));
    let names = list
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, pid, _process, _user, connection, unit, ..] = f.as_slice() else {
                return None;
            };
            Some((
                name.to_string(),
                BusName {
                    pid: pid.to_string(),
                    connection: connection.to_string(),
                    unit: unit.to_string(),
                },
            ))
        })
        .collect();
    (pings.lines().map(|l| l.trim().to_owned()).collect(), names)
}

/// Before the upgrade: the client owns the name and got the Ping.
pub fn before_verdict(stdout: &str, word: &str) -> (bool, String) {
    let (pings, names) = parse(stdout);
    let owner = names.get(NAME);
    (
        owner.is_some() && pings.contains(&format!("ping {word}")),
        format!("{NAME}: {owner:?}; pings {pings:?}"),
    )
}

/// After: the unique names of the preserved units' connections are all
/// still there with the same PIDs, the name has the same owner, and the
/// Ping sent after the upgrade arrived.
pub fn after_verdict(before: &str, after: &str, word: &str, preserved: &[&str]) -> (bool, String) {
    let (_, names_before) = parse(before);
    let (pings, names_after) = parse(after);
    let kept: Vec<(&String, &BusName)> = names_before
        .iter()
        .filter(|(name, n)| name.starts_with(':') && preserved.contains(&n.unit.as_str()))
        .collect();
    let missing: Vec<String> = kept
        .iter()
        .filter(|(name, n)| names_after.get(*name).is_none_or(|a| a.pid != n.pid))
        .map(|(name, n)| format!("{name} ({}, PID {})", n.unit, n.pid))
        .collect();
    let same_owner = match (names_before.get(NAME), names_after.get(NAME)) {
        (Some(b), Some(a)) => b.connection == a.connection && b.pid == a.pid,
        _ => false,
    };
    let got = pings.contains(&format!("ping {word}"));
    (
        !kept.is_empty() && missing.is_empty() && same_owner && got,
        format!(
            "preserved clients' unique names kept: {} of {}{}; {NAME} owner before {:?}, after {:?}; pings {pings:?}",
            kept.len() - missing.len(),
            kept.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(" (gone: {})", missing.join(", "))
            },
            names_before.get(NAME).map(|n| &n.connection),
            names_after.get(NAME).map(|n| &n.connection),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "ping before\n@@\n\
        :1.0 1 relive root :1.0 - - -\n\
        :1.4 812 relive-busclien root :1.4 relive-busclient.service - -\n\
        org.freedesktop.DBus 1 dbus-daemon messagebus org.freedesktop.DBus dbus.service - -\n\
        org.relive.Lab1 812 relive-busclien root :1.4 relive-busclient.service - -\n";

    #[test]
    fn the_client_keeps_its_name_and_gets_the_ping() {
        assert!(before_verdict(BEFORE, "before").0);
        let after = "ping before\nping after\n@@\n\
            :1.4 812 relive-busclien root :1.4 relive-busclient.service - -\n\
            :1.9 1 relive root :1.9 - - -\n\
            org.relive.Lab1 812 relive-busclien root :1.4 relive-busclient.service - -\n";
        let preserved = ["relive-busclient.service"];
        assert!(after_verdict(BEFORE, after, "after", &preserved).0);
        // A client started afresh: a new unique name.
        let fresh = "ping after\n@@\n\
            :1.12 990 relive-busclien root :1.12 relive-busclient.service - -\n\
            org.relive.Lab1 990 relive-busclien root :1.12 relive-busclient.service - -\n";
        assert!(!after_verdict(BEFORE, fresh, "after", &preserved).0);
        // No Ping after the upgrade.
        let deaf = after.replace("ping after\n", "");
        assert!(!after_verdict(BEFORE, &deaf, "after", &preserved).0);
    }
}
