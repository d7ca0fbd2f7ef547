//! The [Socket] section: directives, then systemd's defaults and checks
//! (`socket_add_extras()`, `socket_verify()`), in systemd's words.

use super::build::Ctx;
use super::service::user_or_group;
use super::values::{parse_bool, parse_mode, parse_size, parse_timespan};
use crate::error::LoadError;
use crate::model::Location;
use crate::socket::*;
use crate::unit_name;

#[derive(Debug, Default)]
pub(crate) struct SocketBuilder {
    s: SocketSection,
    trigger_burst_set: bool,
    /// Loading `foo@.socket` itself: `Service=foo@%i.service` then names
    /// the template, which is fine.
    is_template: bool,
}

impl SocketBuilder {
    pub fn new(is_template: bool) -> SocketBuilder {
        SocketBuilder {
            is_template,
            ..SocketBuilder::default()
        }
    }

    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        let s = &mut self.s;
        let bad = |ctx: &Ctx<'_>| ctx.bad(key, value, loc);
        let flag = |ctx: &Ctx<'_>| -> Result<bool, LoadError> {
            if value.is_empty() {
                return Ok(false);
            }
            parse_bool(value).ok_or_else(|| ctx.bad(key, value, loc))
        };
        match key {
            // An empty value resets the list (systemd.socket(5)).
            "ListenStream"
            | "ListenDatagram"
            | "ListenSequentialPacket"
            | "ListenFIFO"
            | "ListenSpecial"
            | "ListenNetlink"
                if value.is_empty() =>
            {
                s.listen.clear()
            }
            "ListenStream" | "ListenDatagram" | "ListenSequentialPacket" => {
                let text = ctx.resolve(key, value, loc)?;
                let address = SocketAddress::parse(&text)
                    .map_err(|e| ctx.bad_because(key, value, loc, &e.to_string()))?;
                let socket_type = match key {
                    "ListenStream" => SocketType::Stream,
                    "ListenDatagram" => SocketType::Datagram,
                    _ => SocketType::SequentialPacket,
                };
                s.listen.push(ListenOn {
                    listen: Listen::Socket {
                        socket_type,
                        address,
                    },
                    location: loc.clone(),
                });
            }
            "ListenFIFO" | "ListenSpecial" => {
                let path = ctx.resolve(key, value, loc)?;
                if !path.starts_with('/') {
                    return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                }
                let listen = if key == "ListenFIFO" {
                    Listen::Fifo(path.into())
                } else {
                    Listen::Special(path.into())
                };
                s.listen.push(ListenOn {
                    listen,
                    location: loc.clone(),
                });
            }
            "ListenNetlink" => {
                let text = ctx.resolve(key, value, loc)?;
                let mut words = text.split_ascii_whitespace();
                let family = words.next().unwrap_or_default().to_owned();
                let group = match words.next() {
                    None => 0,
                    Some(g) => g.parse().map_err(|_| bad(ctx))?,
                };
                if netlink_family(&family).is_none() || words.next().is_some() {
                    return Err(ctx.bad_because(key, value, loc, "not a netlink family and group"));
                }
                s.listen.push(ListenOn {
                    listen: Listen::Netlink { family, group },
                    location: loc.clone(),
                });
            }
            "Accept" => s.accept = flag(ctx)?,
            "Service" if value.is_empty() => s.service = None,
            "Service" => {
                let name = ctx.resolve(key, value, loc)?;
                let template = name.contains("@.") && !self.is_template;
                if unit_name::suffix(&name) != Some("service") || template {
                    return Err(ctx.bad_because(key, value, loc, "not the name of a service"));
                }
                s.service = Some(name);
            }
            "BindIPv6Only" => {
                s.bind_ipv6_only = match value {
                    "" | "default" => BindIpv6Only::Default,
                    "both" => BindIpv6Only::Both,
                    "ipv6-only" => BindIpv6Only::Ipv6Only,
                    _ => return Err(bad(ctx)),
                }
            }
            "Backlog" => s.backlog = number(value, i32::MAX as u32).ok_or_else(|| bad(ctx))?,
            "MaxConnections" => {
                s.max_connections = number(value, 64)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(ctx))?
            }
            "SocketUser" | "SocketGroup" => {
                let v = user_or_group(ctx, key, value, loc)?;
                if key == "SocketUser" {
                    s.socket_user = v;
                } else {
                    s.socket_group = v;
                }
            }
            "SocketMode" => s.socket_mode = mode(value, 0o666).ok_or_else(|| bad(ctx))?,
            "DirectoryMode" => s.directory_mode = mode(value, 0o755).ok_or_else(|| bad(ctx))?,
            "KeepAlive" => s.keep_alive = flag(ctx)?,
            "NoDelay" => s.no_delay = flag(ctx)?,
            "ReusePort" => s.reuse_port = flag(ctx)?,
            "FreeBind" => s.free_bind = flag(ctx)?,
            "Transparent" => s.transparent = flag(ctx)?,
            "Broadcast" => s.broadcast = flag(ctx)?,
            "PassCredentials" => s.pass_credentials = flag(ctx)?,
            "PassSecurity" => s.pass_security = flag(ctx)?,
            "PassPacketInfo" => s.pass_packet_info = flag(ctx)?,
            "RemoveOnStop" => s.remove_on_stop = flag(ctx)?,
            "Writable" => s.writable = flag(ctx)?,
            "ReceiveBuffer" | "SendBuffer" | "PipeSize" => {
                let size = if value.is_empty() {
                    None
                } else {
                    Some(parse_size(value).ok_or_else(|| bad(ctx))?)
                };
                match key {
                    "ReceiveBuffer" => s.receive_buffer = size,
                    "SendBuffer" => s.send_buffer = size,
                    _ => s.pipe_size = size,
                }
            }
            "Mark" => s.mark = optional(value).map_err(|_| bad(ctx))?,
            "Priority" => s.priority = optional(value).map_err(|_| bad(ctx))?,
            "Timestamping" => {
                s.timestamping = match value {
                    "" | "off" => Timestamping::Off,
                    "us" | "usec" | "µs" => Timestamping::Microseconds,
                    "ns" | "nsec" => Timestamping::Nanoseconds,
                    _ => return Err(bad(ctx)),
                }
            }
            "Symlinks" if value.is_empty() => s.symlinks.clear(),
            "Symlinks" => {
                for path in ctx.words(key, value, loc)? {
                    if !path.starts_with('/') {
                        return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                    }
                    s.symlinks.push(path.into());
                }
            }
            "FileDescriptorName" => {
                let name = ctx.resolve(key, value, loc)?;
                if !fd_name_ok(&name) {
                    return Err(bad(ctx));
                }
                s.file_descriptor_name = (!name.is_empty()).then_some(name);
            }
            "TriggerLimitIntervalSec" => {
                if !value.is_empty() {
                    s.trigger_limit_interval =
                        parse_timespan(value).ok_or_else(|| bad(ctx))?.saturating();
                }
            }
            "TriggerLimitBurst" => {
                self.trigger_burst_set = !value.is_empty();
                s.trigger_limit_burst = number(value, 20).ok_or_else(|| bad(ctx))?;
            }
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    /// systemd's defaults and refusals. `name` is the socket unit's.
    pub fn finish(self, name: &str, fragment: &Location) -> Result<SocketSection, LoadError> {
        let mut s = self.s;
        let refuse = |m: &str| Err(LoadError::invalid(fragment, m));
        if s.listen.is_empty() {
            return refuse(
                "Unit has no Listen setting (ListenStream=, ListenDatagram=, ListenFIFO=, ...). Refusing.",
            );
        }
        if s.accept {
            let accepting = s.listen.iter().all(|l| {
                matches!(
                    l.listen,
                    Listen::Socket {
                        socket_type: SocketType::Stream | SocketType::SequentialPacket,
                        ..
                    }
                )
            });
            if !accepting {
                return refuse("Unit configured for accepting sockets, but sockets are non-accepting. Refusing.");
            }
            if s.service.is_some() {
                return refuse("Explicit service configuration for accepting socket units not supported. Refusing.");
            }
            if !self.trigger_burst_set {
                s.trigger_limit_burst = 200;
            }
        }
        if s.service.is_none() {
            let parsed = unit_name::UnitName::parse(name);
            s.service = parsed.map(|n| {
                if s.accept {
                    format!("{}@.service", n.prefix)
                } else {
                    format!("{}.service", n.stem())
                }
            });
        }
        Ok(s)
    }
}

/// sd_listen_fds_with_names(3): at most 255 printable ASCII characters,
/// no colon.
fn fd_name_ok(name: &str) -> bool {
    name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn number(value: &str, default: u32) -> Option<u32> {
    if value.is_empty() {
        Some(default)
    } else {
        value.parse().ok()
    }
}

fn mode(value: &str, default: u32) -> Option<u32> {
    if value.is_empty() {
        Some(default)
    } else {
        parse_mode(value)
    }
}

fn optional<T: std::str::FromStr>(value: &str) -> Result<Option<T>, T::Err> {
    if value.is_empty() {
        Ok(None)
    } else {
        value.parse().map(Some)
    }
}
