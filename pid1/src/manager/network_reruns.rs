//! Which early rerun units touch the network, for the order of the new
//! kernel's first seconds: a firewall's rules, then CRIU's network locks,
//! then the units that bring addresses up. Every other early rerun runs
//! beside the locks' loading (seconds under emulation: nft loads its
//! modules into the new kernel).

/// Targets that mark the network's layer in systemd's boot order.
const NETWORK_TARGETS: [&str; 2] = ["network.target", "network-online.target"];
const NETWORK_PRE: &str = "network-pre.target";

use super::ordering::OrderIndex;

/// The firewall units among `rerun` (ordered before network-pre.target,
/// as nftables.service and netfilter-persistent are), and the units that
/// bring the network up (ordered before network.target, or after
/// network-pre.target or network.target) together with every rerun unit
/// ordered after one of those, in `rerun`'s order. `order` is the
/// manager's After=/Before= graph, both directions merged.
pub(super) fn split(rerun: &[String], order: &OrderIndex) -> (Vec<String>, Vec<String>) {
    let names =
        |list: &[String], wanted: &[&str]| list.iter().any(|n| wanted.contains(&n.as_str()));
    let firewall: Vec<String> = rerun
        .iter()
        .filter(|u| names(order.ordered_after(u), &[NETWORK_PRE]))
        .cloned()
        .collect();
    let mut network: Vec<String> = rerun
        .iter()
        .filter(|u| !firewall.contains(u))
        .filter(|u| {
            names(order.ordered_after(u), &NETWORK_TARGETS)
                || names(order.ordered_before(u), &NETWORK_TARGETS)
                || names(order.ordered_before(u), &[NETWORK_PRE])
        })
        .cloned()
        .collect();
    // Whatever is ordered after a unit that waits for the locks waits too:
    // started earlier, it would not wait for a job not queued yet.
    loop {
        let later: Vec<String> = rerun
            .iter()
            .filter(|u| !firewall.contains(u) && !network.contains(u))
            .filter(|u| order.ordered_before(u).iter().any(|a| network.contains(a)))
            .cloned()
            .collect();
        if later.is_empty() {
            break;
        }
        network.extend(later);
    }
    network.sort_by_key(|u| rerun.iter().position(|r| r == u));
    (firewall, network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn firewalls_come_before_the_locks_and_network_units_after_them() {
        // Debian's units, as their files order them.
        let units: HashMap<&str, (Vec<String>, Vec<String>)> = HashMap::from([
            (
                "nftables.service",
                (vec![], strings(&["network-pre.target", "shutdown.target"])),
            ),
            (
                "networking.service",
                (
                    strings(&[
                        "local-fs.target",
                        "network-pre.target",
                        "ifupdown-pre.service",
                    ]),
                    strings(&["network.target", "shutdown.target"]),
                ),
            ),
            (
                "ifupdown-pre.service",
                (
                    strings(&["systemd-udev-trigger.service"]),
                    strings(&["network.target"]),
                ),
            ),
            (
                "systemd-udev-trigger.service",
                (
                    strings(&["systemd-udevd-kernel.socket"]),
                    strings(&["sysinit.target"]),
                ),
            ),
            // Ordered after networking.service: it must wait as well.
            (
                "nfs-config.service",
                (strings(&["networking.service"]), vec![]),
            ),
            // Named in a network unit's Before=.
            ("late-hook.service", (vec![], vec![])),
            (
                "systemd-sysctl.service",
                (vec![], strings(&["sysinit.target", "shutdown.target"])),
            ),
        ]);
        let mut with_hook = units.clone();
        with_hook
            .get_mut("ifupdown-pre.service")
            .unwrap()
            .1
            .push("late-hook.service".into());
        let rerun = strings(&[
            "ifupdown-pre.service",
            "late-hook.service",
            "networking.service",
            "nfs-config.service",
            "nftables.service",
            "systemd-sysctl.service",
            "systemd-udev-trigger.service",
        ]);
        let (firewall, network) = split(&rerun, &OrderIndex::from_lists(&with_hook));
        assert_eq!(firewall, ["nftables.service"]);
        assert_eq!(
            network,
            [
                "ifupdown-pre.service",
                "late-hook.service",
                "networking.service",
                "nfs-config.service"
            ]
        );
        // Units the manager does not know: neither.
        let (firewall, network) = split(
            &strings(&["gone.service"]),
            &OrderIndex::from_lists(&HashMap::new()),
        );
        assert!(firewall.is_empty() && network.is_empty());
    }
}
