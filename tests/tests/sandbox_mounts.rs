//! Mount units in the sandbox (its own mount namespace): a mount that a
//! service's RequiresMountsFor= needs is mounted first with mount(8); a
//! stop unmounts it and stops what requires it; a mount that fails fails
//! alone. Swap is left to the lab (swapon would reach the host).

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

#[test]
fn requires_mounts_for_mounts_first_and_stop_unmounts() {
    require_sandbox!();
    let base = std::env::temp_dir().join(format!("relivemnt{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let data = base.join("data");
    let escaped = data
        .to_str()
        .unwrap()
        .trim_start_matches('/')
        .replace('/', "-");
    let mount_name = format!("{escaped}.mount");
    let mount = format!(
        "[Mount]\nWhat=tmpfs\nWhere={}\nType=tmpfs\nOptions=size=1m,mode=0755\n",
        data.display()
    );
    let user = format!(
        "[Unit]\nRequiresMountsFor={d}/inner\n[Service]\n\
         ExecStart=/bin/sh -c 'grep -q \" {d} \" /proc/self/mountinfo && echo mounted; exec sleep 300'\n",
        d = data.display()
    );
    let broken = format!(
        "[Mount]\nWhat=nothing\nWhere={}\nType=no-such-fs\n",
        base.join("broken").display()
    );
    let broken_name = format!("{escaped}-broken.mount").replace("-data-broken", "-broken");
    let target = format!("[Unit]\nWants=user.service {broken_name}\n");
    let sandbox = Sandbox::boot(
        &[
            (mount_name.as_str(), mount.as_str()),
            ("user.service", user.as_str()),
            (broken_name.as_str(), broken.as_str()),
            ("multi-user.target", target.as_str()),
        ],
        "",
    );
    sandbox.wait_state("user.service", "active", Duration::from_secs(10));
    let status = sandbox.status(&mount_name);
    assert_eq!(
        (
            status["active_state"].as_str(),
            status["sub_state"].as_str()
        ),
        (Some("active"), Some("mounted")),
        "{status}\n{}",
        sandbox.log()
    );
    sandbox.wait_for("the service's report", Duration::from_secs(10), || {
        sandbox.status("user.service")["output"]
            .as_array()
            .is_some_and(|o| o.iter().any(|l| l.as_str() == Some("mounted")))
    });
    sandbox.wait_state(&broken_name, "failed", Duration::from_secs(10));

    sandbox.ctl_ok(&["stop", &mount_name]);
    assert_eq!(sandbox.active_state(&mount_name), "inactive");
    assert_eq!(
        sandbox.active_state("user.service"),
        "inactive",
        "it required the mount"
    );
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&base);
    assert!(status.success(), "{status}\n{log}");
}
