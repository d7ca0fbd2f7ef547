//! The network carried across the kexec by relive itself. The new kernel
//! starts without addresses or routes, and the network's own units bring
//! them back only late: ifupdown's ifupdown-pre.service waits for udev to
//! have handled every coldplug event (5-12 s under emulation), and the
//! restores of services with TCP connections cannot begin before their
//! addresses exist. So relive records the addresses and routes of the
//! physical interfaces before the stoppage ([`record`]) and, in the new
//! kernel, puts them back right after CRIU's network locks ([`apply`]),
//! finding each interface by its hardware address. The network's units
//! still run, beside the restores; ifupdown's state in /run/network
//! crosses too, so its `ifup -a` finds the interfaces up and does nothing.
//! Where an interface is not there in time (its driver loads later) or a
//! command fails, nothing is kept of what was put back and the restores
//! wait for the network's units, as without this.

use relive_api::network::{AddressState, LinkState, NetworkState, RouteState};
use relive_host::{run_ok, HostError, UnitHost};
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};

const IP: &str = "/usr/sbin/ip";
/// Lifetimes the kernel shows for an address that never expires.
const FOREVER: u32 = u32::MAX;
/// How long the new kernel's interfaces may take to show up.
const LINKS_APPEAR: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum NetstateError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("`ip -j` printed what relive cannot read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("interface {name} ({mac}) is not there")]
    Missing { name: String, mac: String },
}

#[derive(Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    link_type: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    addr_info: Vec<IpAddr>,
}

#[derive(Deserialize)]
struct IpAddr {
    family: String,
    local: String,
    prefixlen: u8,
    #[serde(default)]
    scope: String,
    #[serde(default = "forever")]
    valid_life_time: u32,
    #[serde(default = "forever")]
    preferred_life_time: u32,
}

fn forever() -> u32 {
    FOREVER
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
    protocol: Option<String>,
    metric: Option<u32>,
    scope: Option<String>,
    prefsrc: Option<String>,
}

/// The addresses and routes of the physical interfaces (those with a
/// device under `sys_class_net`), and ifupdown's state files in `run_network`.
pub fn record(
    host: &dyn UnitHost,
    sys_class_net: &Path,
    run_network: &Path,
) -> Result<NetworkState, NetstateError> {
    let links: Vec<IpLink> = serde_json::from_str(&run_ok(host, &[IP, "-j", "addr", "show"])?)?;
    let links: Vec<LinkState> = links
        .into_iter()
        .filter(|l| l.link_type == "ether" && sys_class_net.join(&l.ifname).join("device").exists())
        .map(|l| LinkState {
            up: l.flags.iter().any(|f| f == "UP"),
            addresses: l
                .addr_info
                .into_iter()
                .filter(|a| a.scope == "global")
                .map(|a| AddressState {
                    family: a.family,
                    local: a.local,
                    prefixlen: a.prefixlen,
                    valid_lft: a.valid_life_time,
                    preferred_lft: a.preferred_life_time,
                })
                .collect(),
            name: l.ifname,
            mac: l.address,
            mtu: l.mtu,
        })
        .collect();
    let mut routes = Vec::new();
    for family in ["inet", "inet6"] {
        let flag = if family == "inet" { "-4" } else { "-6" };
        let listed: Vec<IpRoute> = serde_json::from_str(&run_ok(
            host,
            &[IP, "-j", flag, "route", "show", "table", "main"],
        )?)?;
        routes.extend(
            listed
                .into_iter()
                // The kernel makes its own from the addresses (and
                // router advertisements); unreachable and the like have
                // no device of ours.
                .filter(|r| !matches!(r.protocol.as_deref(), Some("kernel" | "ra")))
                .filter_map(|r| {
                    let dev = r.dev?;
                    links.iter().any(|l| l.name == dev).then(|| RouteState {
                        family: family.to_owned(),
                        dst: r.dst,
                        gateway: r.gateway,
                        dev,
                        protocol: r.protocol,
                        metric: r.metric,
                        scope: r.scope,
                        prefsrc: r.prefsrc,
                    })
                }),
        );
    }
    let mut ifupdown = Vec::new();
    for entry in std::fs::read_dir(run_network)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ifstate") && entry.file_type().is_ok_and(|t| t.is_file()) {
            let text =
                std::fs::read_to_string(entry.path()).map_err(|source| NetstateError::Io {
                    path: entry.path(),
                    source,
                })?;
            ifupdown.push((name, text));
        }
    }
    Ok(NetworkState {
        links,
        routes,
        ifupdown,
    })
}

/// Puts `state` back: each interface found by its hardware address (and
/// renamed if the new kernel named it otherwise), its MTU, its addresses,
/// then the routes, through one `ip -batch` written into `work_dir`; then
/// ifupdown's state files into `run_network`. False (and nothing kept)
/// when there is nothing to put back or it could not be done.
pub fn apply(
    host: &dyn UnitHost,
    state: &NetworkState,
    sys_class_net: &Path,
    run_network: &Path,
    work_dir: &Path,
) -> Result<(), NetstateError> {
    let names = wait_for_links(&state.links, sys_class_net, LINKS_APPEAR)?;
    let batch = work_dir.join("network.ip");
    std::fs::write(&batch, commands(state, &names)).map_err(|source| NetstateError::Io {
        path: batch.clone(),
        source,
    })?;
    if let Err(e) = run_ok(host, &[IP, "-batch", &batch.display().to_string()]) {
        // Half put back, it would make ifup fail on addresses that exist.
        for link in &state.links {
            let _ = host.run_helper(&[IP, "addr", "flush", "dev", &link.name, "scope", "global"]);
        }
        return Err(e.into());
    }
    std::fs::create_dir_all(run_network).map_err(|source| NetstateError::Io {
        path: run_network.to_owned(),
        source,
    })?;
    for (name, text) in &state.ifupdown {
        let path = run_network.join(name);
        std::fs::write(&path, text).map_err(|source| NetstateError::Io { path, source })?;
    }
    Ok(())
}

/// Each recorded link's current name in this kernel, waiting up to `wait`
/// for those not there yet.
fn wait_for_links(
    links: &[LinkState],
    sys_class_net: &Path,
    wait: Duration,
) -> Result<Vec<String>, NetstateError> {
    let deadline = Instant::now() + wait;
    loop {
        let present = interfaces_by_mac(sys_class_net);
        let found: Vec<Option<String>> = links
            .iter()
            .map(|l| {
                present
                    .iter()
                    .find(|(_, mac)| mac.eq_ignore_ascii_case(&l.mac))
                    .map(|(name, _)| name.clone())
            })
            .collect();
        if let Some(i) = found.iter().position(Option::is_none) {
            if Instant::now() >= deadline {
                return Err(NetstateError::Missing {
                    name: links[i].name.clone(),
                    mac: links[i].mac.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Ok(found.into_iter().flatten().collect());
    }
}

/// (name, hardware address) of every interface.
fn interfaces_by_mac(sys_class_net: &Path) -> Vec<(String, String)> {
    std::fs::read_dir(sys_class_net)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let mac = std::fs::read_to_string(e.path().join("address")).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                mac.trim().to_owned(),
            ))
        })
        .collect()
}

/// The `ip -batch` lines that put `state` back; `names` are the links'
/// current names, in order.
fn commands(state: &NetworkState, names: &[String]) -> String {
    let mut out = String::new();
    for (link, now) in state.links.iter().zip(names) {
        if *now != link.name {
            out += &format!(
                "link set dev {now} down\nlink set dev {now} name {}\n",
                link.name
            );
        }
        let up = if link.up { " up" } else { "" };
        out += &format!("link set dev {} mtu {}{up}\n", link.name, link.mtu);
        for a in &link.addresses {
            out += &format!(
                "addr add {}/{} dev {} valid_lft {} preferred_lft {}\n",
                a.local,
                a.prefixlen,
                link.name,
                lifetime(a.valid_lft),
                lifetime(a.preferred_lft),
            );
        }
    }
    // A batch line takes no -4/-6: ip tells the family from the
    // addresses, and an IPv6 default route is named by its prefix.
    for r in &state.routes {
        let dst = match (r.family.as_str(), r.dst.as_str()) {
            ("inet6", "default") => "::/0",
            (_, dst) => dst,
        };
        out += &format!("route replace {dst}");
        if let Some(gateway) = &r.gateway {
            out += &format!(" via {gateway}");
        }
        out += &format!(" dev {}", r.dev);
        for (key, value) in [
            ("proto", r.protocol.clone()),
            ("metric", r.metric.map(|m| m.to_string())),
            ("scope", r.scope.clone()),
            ("src", r.prefsrc.clone()),
        ] {
            if let Some(value) = value {
                out += &format!(" {key} {value}");
            }
        }
        out += "\n";
    }
    out
}

fn lifetime(seconds: u32) -> String {
    if seconds == FOREVER {
        "forever".into()
    } else {
        seconds.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relive_host::fake::FakeHost;

    const ADDR: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"link_type":"ether","address":"52:54:00:12:34:56","addr_info":[
 {"family":"inet","local":"10.0.2.15","prefixlen":24,"scope":"global","valid_life_time":4294967295,"preferred_life_time":4294967295},
 {"family":"inet6","local":"fec0::5054:ff:fe12:3456","prefixlen":64,"scope":"global","valid_life_time":86391,"preferred_life_time":14391},
 {"family":"inet6","local":"fe80::5054:ff:fe12:3456","prefixlen":64,"scope":"link"}]},
{"ifindex":3,"ifname":"br0","flags":["UP"],"mtu":1500,"link_type":"ether","address":"aa:bb:cc:dd:ee:ff","addr_info":[{"family":"inet","local":"192.168.9.1","prefixlen":24,"scope":"global"}]}]"#;

    fn host() -> FakeHost {
        let host = FakeHost::new(relive_api::plan::Plan::default());
        host.with(|s| {
            s.helper_stdout.insert(format!("{IP} -j addr show"), ADDR.into());
            s.helper_stdout.insert(
                format!("{IP} -j -4 route show table main"),
                r#"[{"dst":"default","gateway":"10.0.2.2","dev":"eth0","flags":[]},{"dst":"10.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.0.2.15","flags":[]},{"dst":"192.168.9.0/24","dev":"br0","protocol":"kernel","flags":[]}]"#.into(),
            );
            s.helper_stdout.insert(
                format!("{IP} -j -6 route show table main"),
                r#"[{"dst":"fec0::/64","dev":"eth0","protocol":"ra","metric":256,"flags":[]},{"dst":"default","gateway":"fe80::2","dev":"eth0","protocol":"static","metric":1024,"flags":[]}]"#.into(),
            );
        });
        host
    }

    /// A /sys/class/net where eth0 is a device (br0 is virtual) and its
    /// hardware address is `mac` under `name`.
    fn sys(root: &Path, name: &str, mac: &str) {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("eth0/device")).unwrap();
        std::fs::create_dir_all(root.join("br0")).unwrap();
        std::fs::write(root.join("br0/address"), "aa:bb:cc:dd:ee:ff\n").unwrap();
        if name != "eth0" {
            std::fs::remove_dir_all(root.join("eth0")).unwrap();
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        std::fs::write(root.join(name).join("address"), format!("{mac}\n")).unwrap();
    }

    #[test]
    fn the_physical_network_is_recorded_and_put_back_by_hardware_address() {
        let dir = std::env::temp_dir().join(format!("relive-netstate-{}", std::process::id()));
        let (net, run) = (dir.join("sys"), dir.join("run-network"));
        sys(&net, "eth0", "52:54:00:12:34:56");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("ifstate.eth0"), "eth0\n").unwrap();
        std::fs::write(run.join(".ifstate.lock"), "").unwrap();
        let host = host();
        let state = record(&host, &net, &run).unwrap();
        assert_eq!(state.links.len(), 1, "only eth0 is a device: {state:?}");
        let eth0 = &state.links[0];
        assert_eq!((eth0.mtu, eth0.up, eth0.addresses.len()), (1500, true, 2));
        let dsts: Vec<&str> = state.routes.iter().map(|r| r.dst.as_str()).collect();
        assert_eq!(
            dsts,
            ["default", "default"],
            "no kernel or ra routes, nothing on br0"
        );
        assert_eq!(
            state.ifupdown,
            [("ifstate.eth0".to_string(), "eth0\n".to_string())]
        );

        // The new kernel named the interface otherwise, and /run is empty.
        sys(&net, "ens3", "52:54:00:12:34:56");
        std::fs::remove_dir_all(&run).unwrap();
        apply(&host, &state, &net, &run, &dir).unwrap();
        let batch = std::fs::read_to_string(dir.join("network.ip")).unwrap();
        assert_eq!(
            batch,
            "link set dev ens3 down\nlink set dev ens3 name eth0\n\
             link set dev eth0 mtu 1500 up\n\
             addr add 10.0.2.15/24 dev eth0 valid_lft forever preferred_lft forever\n\
             addr add fec0::5054:ff:fe12:3456/64 dev eth0 valid_lft 86391 preferred_lft 14391\n\
             route replace default via 10.0.2.2 dev eth0\n\
             route replace ::/0 via fe80::2 dev eth0 proto static metric 1024\n"
        );
        assert_eq!(
            std::fs::read_to_string(run.join("ifstate.eth0")).unwrap(),
            "eth0\n"
        );

        // An interface that never shows up: nothing is done.
        let mut gone = state.clone();
        gone.links[0].mac = "02:00:00:00:00:01".into();
        let started = Instant::now();
        let names = wait_for_links(&gone.links, &net, Duration::from_millis(200));
        assert!(
            matches!(names, Err(NetstateError::Missing { .. })),
            "{names:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
