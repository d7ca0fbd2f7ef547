//! Device units in the sandbox: a unit bound to a device waits for it,
//! starts once it appears, and stops when it goes (BindsTo=), as under
//! systemd with udev. relive takes a device's presence from its path: a
//! plain file stands in for a device node here.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

#[test]
fn a_unit_bound_to_a_device_follows_it() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relivedev{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let node = dir.join("node");
    let device = format!(
        "{}.device",
        node.to_str()
            .unwrap()
            .trim_start_matches('/')
            .replace('/', "-")
    );
    let waiter =
        format!("[Unit]\nBindsTo={device}\nAfter={device}\n[Service]\nExecStart=/bin/sleep 300\n");
    let sandbox = Sandbox::boot(
        &[
            ("waiter.service", &waiter),
            ("multi-user.target", "[Unit]\nWants=dev-null.device\n"),
        ],
        "",
    );
    sandbox.wait_state("dev-null.device", "active", Duration::from_secs(10));
    assert_eq!(sandbox.status("dev-null.device")["sub_state"], "plugged");

    let mut start = std::process::Command::new(relive_tests::binary("relivectl"))
        .arg("--socket")
        .arg(&sandbox.socket)
        .args(["start", "waiter.service"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sandbox.active_state("waiter.service"),
        "inactive",
        "it waits"
    );
    std::fs::write(&node, "").unwrap();
    assert!(start.wait().unwrap().success(), "{}", sandbox.log());
    assert_eq!(sandbox.active_state("waiter.service"), "active");

    std::fs::remove_file(&node).unwrap();
    sandbox.wait_state("waiter.service", "inactive", Duration::from_secs(15));
    assert_eq!(sandbox.active_state(&device), "inactive");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}
