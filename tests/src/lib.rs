//! A sandbox that boots relive as PID 1 of fresh PID, mount, UTS and cgroup
//! namespaces on the host, with test units, and drives it with relivectl.
//!
//! The sandbox touches nothing of the host: its mounts are private, its
//! hostname is its own, reboot(2) only ends the namespace, and its cgroup
//! tree is a fresh child of the host's cgroup2 hierarchy, removed afterwards.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The workspace's target directory, where relive and relivectl are built.
fn bin_dir() -> PathBuf {
    // Tests run from target/<profile>/deps/, benchmarks from target/<profile>/.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("target/<profile>");
    if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>").to_owned()
    } else {
        dir.to_owned()
    }
}

/// Path of a workspace binary, built once per test run (cargo builds a
/// package's own binaries for its tests, not other packages').
pub fn binary(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = bin_dir().ends_with("release");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "relive",
            "-p",
            "relive-ctl",
            "--bins",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p relive -p relive-ctl failed"
        );
    });
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Why the sandbox cannot run here, if it cannot (not root, no cgroup2).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the namespace sandbox needs root".into());
    }
    if cgroup2_root().is_none() {
        return Some("no cgroup2 hierarchy is mounted on this host".into());
    }
    None
}

/// Skips the calling test, printing why, when the sandbox cannot run.
#[macro_export]
macro_rules! require_sandbox {
    () => {
        if let Some(reason) = $crate::unavailable() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

fn cgroup2_root() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
    })
}

#[derive(Debug)]
pub struct Sandbox {
    pub dir: PathBuf,
    /// The relive binary it runs.
    pub relive: PathBuf,
    pub units: PathBuf,
    pub socket: PathBuf,
    cgroup: PathBuf,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Sandbox {
    /// Writes `units` (file name, content) and `config` (relive.toml text),
    /// then boots relive with them.
    pub fn boot(units: &[(&str, &str)], config: &str) -> Sandbox {
        Sandbox::boot_with_args(units, config, &[])
    }

    pub fn boot_with_args(units: &[(&str, &str)], config: &str, extra: &[&str]) -> Sandbox {
        Sandbox::boot_full(units, config, extra, false)
    }

    /// `own_network`: also a fresh network namespace (only a loopback, down
    /// until a unit brings it up), for services that listen on ports.
    /// `extra` args go to relive (e.g. more `--units-dir`s, `--target`).
    pub fn boot_full(
        units: &[(&str, &str)],
        config: &str,
        extra: &[&str],
        own_network: bool,
    ) -> Sandbox {
        Sandbox::boot_inner(units, config, extra, own_network, &binary("relive"))
    }

    /// Boots a copy of relive kept in the sandbox's directory, which a test
    /// may replace (as a package upgrade would) before a re-exec.
    pub fn boot_own_binary(units: &[(&str, &str)], config: &str) -> Sandbox {
        let n = COUNTER.load(Ordering::SeqCst);
        let copy = std::env::temp_dir().join(format!("relive-bin-{}-{n}", std::process::id()));
        fs::copy(binary("relive"), &copy).unwrap();
        Sandbox::boot_inner(units, config, &[], false, &copy)
    }

    fn boot_inner(
        units: &[(&str, &str)],
        config: &str,
        extra: &[&str],
        own_network: bool,
        relive: &Path,
    ) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("relive-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        let _ = fs::remove_dir_all(&dir);
        let units_dir = dir.join("units");
        fs::create_dir_all(&units_dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        for (name, text) in units {
            let path = units_dir.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
        }
        fs::write(dir.join("relive.toml"), config).unwrap();
        let cgroup = cgroup2_root().expect("cgroup2").join(&tag);
        fs::create_dir_all(&cgroup).unwrap();
        let socket = dir.join("control");
        let script = format!(
            "echo $$ > {cg}/cgroup.procs && exec unshare --pid --kill-child --mount-proc --uts --cgroup --mount --propagation private {net} {relive} --units-dir {units} --control-socket {sock} --config {config} {extra}",
            cg = cgroup.display(),
            net = if own_network { "--net" } else { "" },
            relive = relive.display(),
            units = units_dir.display(),
            sock = socket.display(),
            config = dir.join("relive.toml").display(),
            extra = extra.join(" "),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the sandbox");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || collect(stream, log));
        }
        let sandbox = Sandbox {
            dir,
            relive: relive.to_owned(),
            units: units_dir,
            socket,
            cgroup,
            child: Some(child),
            log,
        };
        sandbox.wait_for("the control socket", Duration::from_secs(20), || {
            sandbox.socket.exists()
        });
        sandbox
    }

    /// Runs relivectl against this sandbox.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(binary("relivectl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run relivectl")
    }

    /// relivectl's stdout, asserting success.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "relivectl {args:?} failed: {}\n{}\n--- relive log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The unit's status as JSON.
    pub fn status(&self, unit: &str) -> serde_json::Value {
        let out = self.ctl(&["--json", "status", unit]);
        let text = String::from_utf8_lossy(&out.stdout);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "status {unit}: not JSON ({e}): {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        match value {
            serde_json::Value::Array(mut v) if !v.is_empty() => v.remove(0),
            other => other,
        }
    }

    pub fn active_state(&self, unit: &str) -> String {
        self.status(unit)["active_state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `unit` is in `state` (e.g. "active"), failing with the log.
    pub fn wait_state(&self, unit: &str, state: &str, timeout: Duration) {
        self.wait_for(&format!("{unit} to be {state}"), timeout, || {
            self.active_state(unit) == state
        });
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- relive log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything relive wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Lines of the log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Asks for a poweroff and waits for PID 1 to exit; returns its status.
    pub fn poweroff(mut self) -> (ExitStatus, String) {
        self.ctl_ok(&["poweroff"]);
        let status = self.wait_exit(Duration::from_secs(60));
        (status, self.log())
    }

    /// Waits for the sandbox's PID 1 to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                // Let the log readers drain.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if start.elapsed() > timeout {
                panic!("relive did not exit within {timeout:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The host PID of the sandbox's PID 1 (relive).
    pub fn pid1(&self) -> i32 {
        let pid = self.child.as_ref().expect("running").id();
        // The sh process exec'd unshare, whose only child is relive.
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("relive's host PID")
    }

    /// Sends a signal to the sandbox's PID 1.
    pub fn signal_pid1(&self, signal: i32) {
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(self.pid1(), signal) };
    }

    /// Runs a command in the sandbox's network namespace.
    pub fn in_network(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.pid1().to_string())
            .arg("-n")
            .arg(program)
            .args(args)
            .output()
            .expect("run nsenter")
    }

    /// Runs Debian's systemctl inside the sandbox (its mount and PID
    /// namespaces) as `uid` (0: root, through /run/systemd/private;
    /// others through the system bus).
    pub fn systemctl_as(&self, uid: u32, args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid1().to_string())
            .args(["-m", "-p", "--"]);
        if uid != 0 {
            cmd.arg("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .args(["--clear-groups", "--"]);
        }
        cmd.args(["systemctl", "--no-pager", "--no-ask-password"])
            .args(args)
            .env("SYSTEMD_COLORS", "0")
            .output()
            .expect("run systemctl")
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.systemctl_as(0, args)
    }

    /// Runs `script` (sh) as root inside the sandbox (its mount and PID
    /// namespaces, and its cgroup tree, where a scope can take it in).
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.pid1().to_string())
            .args(["-m", "-p", "--", "sh", "-c"])
            .arg(format!("echo $$ > /sys/fs/cgroup/cgroup.procs && {script}"))
            .env("SYSTEMD_COLORS", "0")
            .output()
            .expect("run nsenter")
    }

    /// A cgroup of the sandbox's tree (`system.slice/a.scope`), as the
    /// host sees it.
    pub fn cgroup_dir(&self, path: &str) -> PathBuf {
        self.cgroup.join(path)
    }

    /// The unit's cgroup directory, as the host sees it.
    pub fn unit_cgroup(&self, unit: &str) -> PathBuf {
        self.cgroup.join("system.slice").join(unit)
    }

    /// Host PIDs of the processes in a unit's cgroup.
    pub fn cgroup_pids(&self, unit: &str) -> Vec<u32> {
        fs::read_to_string(self.unit_cgroup(unit).join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }
}

/// A system bus for a sandbox: dbus-daemon started by socket activation
/// with `--systemd-activation`, as Debian's dbus.service runs it, under a
/// configuration that lets everyone talk to everyone. Its D-Bus service
/// files go in `services`.
#[derive(Debug)]
pub struct SystemBus {
    pub services: PathBuf,
    config: PathBuf,
}

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>SERVICES</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#;

/// The sandbox's own /run/dbus, so that the host's is never touched.
const BUS_DIR: &str = "[Unit]\nDefaultDependencies=no\nBefore=dbus.socket\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'mkdir -p /run/dbus && mount -t tmpfs -o mode=755 tmpfs /run/dbus'\n";
const BUS_SOCKET: &str = "[Unit]\nRequires=bus-dir.service\nAfter=bus-dir.service\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n";

impl SystemBus {
    /// Writes the bus's configuration below `dir`.
    pub fn new(dir: &Path) -> SystemBus {
        let services = dir.join("services");
        fs::create_dir_all(&services).unwrap();
        let config = dir.join("bus.conf");
        fs::write(
            &config,
            BUS_CONFIG.replace("SERVICES", &services.to_string_lossy()),
        )
        .unwrap();
        SystemBus { services, config }
    }

    /// Its units: bus-dir.service, dbus.socket, dbus.service.
    pub fn units(&self) -> [(&'static str, String); 3] {
        [
            ("bus-dir.service", BUS_DIR.to_owned()),
            ("dbus.socket", BUS_SOCKET.to_owned()),
            (
                "dbus.service",
                format!(
                    "[Unit]\nRequires=dbus.socket\n[Service]\nExecStart=/usr/bin/dbus-daemon --config-file={} --address=systemd: --nofork --nopidfile --systemd-activation\n",
                    self.config.display()
                ),
            ),
        ]
    }
}

fn collect(mut stream: Box<dyn Read + Send>, log: Arc<Mutex<String>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        log.lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_cgroup_tree(&self.cgroup);
        if std::env::var_os("RELIVE_KEEP_SANDBOX").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes a cgroup and its children, deepest first (processes are gone).
fn remove_cgroup_tree(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_cgroup_tree(&e.path());
                }
            }
        }
        if fs::remove_dir(path).is_ok() || !path.exists() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test workload built by this package (tests/src/bin).
/// Whether a host PID holds capability number `cap` in its effective set
/// (a container may withhold some from the sandbox's relive).
pub fn has_cap(pid: i32, cap: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    effective & (1 << cap) != 0
}

/// CAP_SYS_RESOURCE's number (linux/capability.h).
pub const CAP_SYS_RESOURCE: u32 = 24;

pub fn workload(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build relive-tests' binaries",
        path.display()
    );
    path
}
