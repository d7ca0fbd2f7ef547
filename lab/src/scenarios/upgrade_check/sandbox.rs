//! (g) The sandbox stays across the upgrade: redis (Debian's unit) and
//! relive-echo (the lab's) keep their mount namespace with its private
//! /tmp and read-only /usr, their seccomp filters, their capability
//! bounding set and (echo) their cgroup limits. Read from the guest with
//! /proc and the cgroup files, as an administrator would: a path below
//! /proc/PID/root is looked up in the service's own mount namespace
//! (nsenter could not run a program there: redis has NoExecPaths=/).

/// Before the upgrade: a marker in each service's private /tmp (never in
/// the host's).
pub(super) const MARK: &str = "\
    for u in redis-server relive-echo; do \
      p=$(head -1 /sys/fs/cgroup/system.slice/$u.service/cgroup.procs); \
      touch /proc/$p/root/tmp/relive-sandbox-marker || exit 1; \
    done; test ! -e /tmp/relive-sandbox-marker && echo marked";

/// One line per service.
pub(super) const READ: &str = "\
    for u in redis-server relive-echo; do \
      c=/sys/fs/cgroup/system.slice/$u.service; p=$(head -1 $c/cgroup.procs); \
      ns=shared; [ \"$(readlink /proc/$p/ns/mnt)\" != \"$(readlink /proc/1/ns/mnt)\" ] && ns=own; \
      users=shared; [ \"$(readlink /proc/$p/ns/user)\" != \"$(readlink /proc/1/ns/user)\" ] && users=own; \
      usr=read-only; touch /proc/$p/root/usr/relive-sandbox-probe 2>/dev/null && usr=writable; \
      tmp=no-marker; test -e /proc/$p/root/tmp/relive-sandbox-marker && tmp=marker; \
      exec=refused; /proc/$p/root/usr/bin/true 2>/dev/null && exec=allowed; \
      echo $u ns=$ns users=$users seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/$p/status) \
        capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/$p/status) usr=$usr tmp=$tmp exec=$exec \
        limits=$(cat $c/memory.max 2>/dev/null || echo -)/$(cat $c/pids.max 2>/dev/null || echo -); \
    done";

/// redis (Debian's unit, with the lab's drop-in PrivateUsers=no: see
/// mkosi.extra): an empty CapabilityBoundingSet=, ProtectSystem= strict, NoExecPaths=/ (with ExecPaths= for its own program and
/// libraries only), PrivateTmp=yes, a filter, no cgroup limits. echo
/// (mkosi.extra's relive-echo.service): an empty bounding set,
/// ProtectSystem=strict, MemoryMax=256M, TasksMax=64.
pub(super) const WANTED: &str = "\
    redis-server ns=own users=shared seccomp=2 capbnd=0000000000000000 usr=read-only tmp=marker exec=refused limits=max/max\n\
    relive-echo ns=own users=shared seccomp=2 capbnd=0000000000000000 usr=read-only tmp=marker exec=allowed limits=268435456/64";
