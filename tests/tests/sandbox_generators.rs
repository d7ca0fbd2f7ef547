//! Generators in the sandbox: relive runs every generator of its
//! directories with systemd's three output directories, loads what they
//! wrote with the rest (a generated unit, enabled by a generated .wants
//! link, starts at boot), runs them again at daemon-reload, skips a
//! generator masked by a link to /dev/null, and boots on when one fails.

use relive_tests::{require_sandbox, Sandbox};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn generated_units_boot_and_daemon_reload_generates_again() {
    require_sandbox!();
    let dir = std::env::temp_dir().join(format!("relive-generators-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (first, second, out) = (dir.join("etc"), dir.join("lib"), dir.join("out"));
    for d in [&first, &second] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The number of services it makes comes from a file, to see it rerun.
    let count = dir.join("count");
    std::fs::write(&count, "1").unwrap();
    executable(
        &second.join("make-services"),
        &format!(
            r#"#!/bin/sh
set -e
echo "$1 $2 $3" > {args}
mkdir -p "$1/multi-user.target.wants"
for i in $(seq 1 $(cat {count})); do
    printf '[Service]\nExecStart=/bin/sleep 300\n' > "$1/made-$i.service"
    ln -sf "../made-$i.service" "$1/multi-user.target.wants/made-$i.service"
done
printf '[Service]\nExecStart=/bin/sleep 300\n' > "$3/late.service"
"#,
            args = dir.join("args").display(),
            count = count.display()
        ),
    );
    executable(
        &second.join("fails"),
        "#!/bin/sh\necho failing on purpose >&2\nexit 3\n",
    );
    executable(
        &second.join("masked"),
        "#!/bin/sh\ntouch \"$1/masked-ran\"\n",
    );
    std::os::unix::fs::symlink("/dev/null", first.join("masked")).unwrap();
    let config = format!(
        "[manager]\ngenerators = true\ngenerator_dirs = [\"{}\", \"{}\"]\ngenerator_output_dir = \"{}\"\n",
        first.display(),
        second.display(),
        out.display()
    );
    let sandbox = Sandbox::boot(&[("multi-user.target", "[Unit]\n")], &config);
    sandbox.wait_state("made-1.service", "active", Duration::from_secs(10));
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    let o = out.display();
    assert_eq!(
        args.trim(),
        format!("{o}/generator {o}/generator.early {o}/generator.late")
    );
    assert!(
        !out.join("generator/masked-ran").exists(),
        "a masked generator ran"
    );
    assert!(
        !sandbox
            .log_lines("generator fails failed: status=3")
            .is_empty(),
        "{}",
        sandbox.log()
    );
    assert_eq!(sandbox.status("late.service")["load_state"], "loaded");

    std::fs::write(&count, "2").unwrap();
    sandbox.ctl_ok(&["daemon-reload"]);
    sandbox.ctl_ok(&["start", "made-2.service"]);
    assert_eq!(sandbox.active_state("made-2.service"), "active");
    assert_eq!(
        sandbox.active_state("made-1.service"),
        "active",
        "reload kept it"
    );
    let (status, log) = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\n{log}");
}
