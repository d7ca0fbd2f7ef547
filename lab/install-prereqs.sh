#!/bin/bash
# Installs what the relive QEMU lab needs on a Debian 12 (bookworm) host:
#   - qemu-system-x86 from bookworm-backports (bookworm's own 7.2 conflicts
#     with the qemu-utils 10.0.2 from backports that these machines ship);
#   - mkosi 14 and what it uses here: debootstrap, systemd-container (nspawn),
#     e2fsprogs (mkfs.ext4 -d), zstd, openssh-client, util-linux (unshare);
#   - what building relive needs (criu's rpc.proto, protoc, libseccomp),
#     ansible-core, which `relive-lab check` drives services with, and
#     prometheus for promtool, which `relive-lab fleet` checks metrics with.
# The backports source is passed through a private apt config so /etc/apt is
# left untouched; it uses the same Debian mirror as /etc/apt already does.
# Idempotent; relive-lab's ensure_prerequisites runs the same commands.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
	echo "install-prereqs.sh: must run as root" >&2
	exit 1
fi

STATE=${RELIVE_LAB_APT_DIR:-/var/lib/relive-lab/apt}
mkdir -p "$STATE"

# The mirror the machine already uses for bookworm (deb822 or one-line form).
MIRROR=$(
	{
		grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
		grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
	} | grep -v -- '-security' | grep -m1 '/debian/\?$' || true
)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}

# Private source list: the system's own sources (SourceParts stays the
# default) plus this one line.
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm-backports main" \
	>"$STATE/backports.list"
APT=(apt-get -o "Dir::Etc::SourceList=$STATE/backports.list" -y -q)

export DEBIAN_FRONTEND=noninteractive
"${APT[@]}" update
"${APT[@]}" install --no-install-recommends -t bookworm-backports qemu-system-x86
"${APT[@]}" install --no-install-recommends \
	mkosi debootstrap systemd-container e2fsprogs zstd openssh-client util-linux \
	ca-certificates criu protobuf-compiler libseccomp-dev ansible-core prometheus

qemu-system-x86_64 --version | head -1
mkosi --version
