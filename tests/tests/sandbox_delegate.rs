//! Delegate=: a service of another user gets its cgroup to manage. It
//! makes a child cgroup, moves itself there and turns on a delegated
//! controller for it, as udevd and systemd --user do; without Delegate=
//! the same service may not; at the stop relive removes the whole
//! subtree.

use relive_tests::{require_sandbox, Sandbox};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Makes `worker` below its own cgroup and moves there ("subtree");
/// where the machine's cgroup v2 offers pids (a host that still mounts
/// the v1 pids hierarchy does not), enables it for `worker` and limits
/// it ("pids").
const SCRIPT: &str = r#"cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
if mkdir "$cg/worker" && echo $$ > "$cg/worker/cgroup.procs"; then
    echo subtree
    if grep -qw pids "$cg/cgroup.controllers"; then
        echo +pids > "$cg/cgroup.subtree_control" && echo 50 > "$cg/worker/pids.max" && echo pids
    fi
else
    echo refused
fi
echo done
exec sleep 300
"#;

#[test]
fn a_delegated_cgroup_is_the_services_to_manage_and_removed_whole() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-delegate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("manage-cgroup.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    let unit = |out: &str, delegate: &str| {
        format!(
            "[Service]\nUser=nobody\n{delegate}\nExecStart=/bin/sh {}\nStandardOutput=file:{}\n",
            script.display(),
            dir.join(out).display()
        )
    };
    let sandbox = Sandbox::boot(
        &[
            ("delegated.service", &unit("delegated", "Delegate=pids")),
            ("plain.service", &unit("plain", "")),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    let said = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    for unit in ["delegated.service", "plain.service"] {
        sandbox.ctl_ok(&["start", unit]);
    }
    sandbox.wait_for("both to try", Duration::from_secs(10), || {
        said("delegated").ends_with("done\n") && said("plain").ends_with("done\n")
    });
    let offered =
        std::fs::read_to_string(sandbox.cgroup_dir("cgroup.controllers")).unwrap_or_default();
    let pids = offered.split_whitespace().any(|c| c == "pids");
    let expected = if pids {
        "subtree\npids\ndone"
    } else {
        "subtree\ndone"
    };
    assert_eq!(said("delegated").trim(), expected, "{}", sandbox.log());
    assert!(
        said("plain").trim().ends_with("refused\ndone"),
        "{}",
        said("plain")
    );
    let cgroup = sandbox.unit_cgroup("delegated.service");
    assert_eq!(std::fs::metadata(&cgroup).unwrap().uid(), 65534);
    let worker = cgroup.join("worker");
    let in_worker = std::fs::read_to_string(worker.join("cgroup.procs")).unwrap();
    assert_eq!(in_worker.lines().count(), 1, "the service moved there");
    if pids {
        assert_eq!(
            std::fs::read_to_string(worker.join("pids.max"))
                .unwrap()
                .trim(),
            "50"
        );
    }
    assert_eq!(
        sandbox.ctl_ok(&["is-active", "delegated.service"]).trim(),
        "active"
    );
    sandbox.ctl_ok(&["stop", "delegated.service"]);
    sandbox.wait_for("the subtree to go", Duration::from_secs(10), || {
        !cgroup.exists()
    });
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}

/// DelegateSubgroup= (user@.service's init.scope): the service starts in
/// the subgroup, owned by its user, so that its own cgroup holds no
/// process and can hand controllers down.
#[test]
fn a_delegated_service_starts_in_its_subgroup() {
    require_sandbox!();
    let unit = "[Service]\nUser=nobody\nDelegate=yes\nDelegateSubgroup=init.scope\n\
                ExecStart=/bin/sh -c 'echo in $(sed -n s/^0:://p /proc/self/cgroup); exec sleep 300'\n";
    let sandbox = Sandbox::boot(
        &[("usermgr.service", unit), ("multi-user.target", "[Unit]\n")],
        "",
    );
    sandbox.ctl_ok(&["start", "usermgr.service"]);
    sandbox.wait_for("its line", Duration::from_secs(10), || {
        !sandbox.log_lines("usermgr.service: in ").is_empty()
    });
    let line = sandbox.log_lines("usermgr.service: in ")[0].clone();
    assert!(
        line.trim_end().ends_with("/usermgr.service/init.scope"),
        "{line}"
    );
    let owner = std::fs::metadata(sandbox.cgroup_dir("system.slice/usermgr.service/init.scope"))
        .unwrap()
        .uid();
    assert_eq!(owner, 65534, "the subgroup is the service user's");
    let _ = sandbox.poweroff();
}
