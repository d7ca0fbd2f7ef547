//! Path units in the sandbox: a PathExists= unit starts its service when
//! the file appears (and again each time it reappears), a PathChanged=
//! one when the file is written; inotify, no polling.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn path_units_start_their_services_when_files_appear_or_change() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relivepath{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let flag_path = format!("[Path]\nPathExists={d}/spool/flag\nMakeDirectory=no\n");
    let flagged = format!(
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo run >> {d}/runs; rm -f {d}/spool/flag'\n"
    );
    let conf_path = format!("[Path]\nPathChanged={d}/conf\nUnit=reload.service\n");
    let reload =
        format!("[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo run >> {d}/reloads'\n");
    let sandbox = Sandbox::boot(
        &[
            ("flagged.path", &flag_path),
            ("flagged.service", &flagged),
            ("conf.path", &conf_path),
            ("reload.service", &reload),
            (
                "multi-user.target",
                "[Unit]\nWants=flagged.path conf.path\n",
            ),
        ],
        "",
    );
    sandbox.wait_state("flagged.path", "active", Duration::from_secs(10));
    sandbox.wait_state("conf.path", "active", Duration::from_secs(10));
    assert_eq!(lines(&dir.join("runs")), 0, "nothing to do yet");

    // The spool directory does not exist yet: its parent is watched.
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    std::fs::write(dir.join("spool/flag"), "").unwrap();
    sandbox.wait_for("the first run", Duration::from_secs(10), || {
        lines(&dir.join("runs")) == 1
    });
    std::fs::write(dir.join("spool/flag"), "").unwrap();
    sandbox.wait_for("the second run", Duration::from_secs(10), || {
        lines(&dir.join("runs")) == 2
    });

    std::fs::write(dir.join("conf"), "x=1\n").unwrap();
    sandbox.wait_for("the reload", Duration::from_secs(10), || {
        lines(&dir.join("reloads")) >= 1
    });
    assert_eq!(sandbox.status("conf.path")["sub_state"], "waiting");
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}
