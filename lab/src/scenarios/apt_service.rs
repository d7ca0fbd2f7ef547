//! A Debian package with a service, installed with apt under relive: its
//! maintainer scripts are debhelper's own (dh_installsystemd's snippets,
//! bookworm), so the unit is enabled by deb-systemd-helper and started by
//! deb-systemd-invoke through systemctl — through relive, not through
//! /etc/init.d behind its back. Removing the package stops it.

use super::check::Checks;

const NAME: &str = "relive-lab-apt";

/// dh_installsystemd's postinst snippet (debhelper 13.11), for NAME.
const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ] ; then
	deb-systemd-helper unmask 'NAME.service' >/dev/null || true
	if deb-systemd-helper --quiet was-enabled 'NAME.service'; then
		deb-systemd-helper enable 'NAME.service' >/dev/null || true
	else
		deb-systemd-helper update-state 'NAME.service' >/dev/null || true
	fi
fi
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ] ; then
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			_dh_action=restart
		else
			_dh_action=start
		fi
		deb-systemd-invoke $_dh_action 'NAME.service' >/dev/null || true
	fi
fi
"#;

/// dh_installsystemd's prerm and postrm snippets.
const PRERM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop 'NAME.service' >/dev/null || true
fi
"#;
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "remove" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper mask 'NAME.service' >/dev/null || true
	fi
fi
if [ "$1" = "purge" ]; then
	if [ -x "/usr/bin/deb-systemd-helper" ]; then
		deb-systemd-helper purge 'NAME.service' >/dev/null || true
		deb-systemd-helper unmask 'NAME.service' >/dev/null || true
	fi
fi
"#;

const UNIT: &str = "[Unit]\nDescription=A packaged service\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";

const CONTROL: &str = "Package: NAME\nVersion: 1.0\nArchitecture: all\nMaintainer: relive lab <lab@example.invalid>\nDescription: a service packaged as Debian packages theirs\n";

/// A shell here-document writing `text` to `path`, NAME filled in.
fn write(path: &str, text: &str) -> String {
    format!(
        "cat > {path} <<'RELIVE_EOF'\n{}RELIVE_EOF\n",
        text.replace("NAME", NAME)
    )
}

pub fn apt_checks(c: &mut Checks) {
    let build = format!(
        "set -e; d=/tmp/{NAME}; rm -rf $d; mkdir -p $d/DEBIAN $d/lib/systemd/system\n{}{}{}{}{}\
         chmod 755 $d/DEBIAN/postinst $d/DEBIAN/prerm $d/DEBIAN/postrm\n\
         dpkg-deb --root-owner-group -b $d /tmp/{NAME}.deb >/dev/null\n",
        write(&format!("$d/lib/systemd/system/{NAME}.service"), UNIT),
        write("$d/DEBIAN/control", CONTROL),
        write("$d/DEBIAN/postinst", POSTINST),
        write("$d/DEBIAN/prerm", PRERM),
        write("$d/DEBIAN/postrm", POSTRM),
    );
    let script = format!(
        "{build}apt-get install -y -q /tmp/{NAME}.deb >/dev/null 2>&1\n\
         systemctl is-enabled {NAME}.service; systemctl is-active {NAME}.service\n\
         pid=$(systemctl show -p MainPID --value {NAME}.service); cat /proc/$pid/cgroup\n\
         relivectl is-active {NAME}.service\n\
         apt-get purge -y -q {NAME} >/dev/null 2>&1\n\
         systemctl is-active {NAME}.service || true; rm -rf /tmp/{NAME} /tmp/{NAME}.deb"
    );
    let expected = format!("enabled\nactive\n0::/system.slice/{NAME}.service\nactive\ninactive");
    c.check(
        "a packaged service installed by apt is started and stopped through relive",
        &script,
        &|o| o.success() && o.stdout.trim() == expected,
    );
}
