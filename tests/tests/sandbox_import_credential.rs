//! ImportCredential= (systemd 254 on; Debian 13's getty, journald and
//! sysctl units use it): the credentials of the system whose names match
//! a pattern, optionally renamed, in the service's own directory; a
//! LoadCredential= of the same name wins.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

#[test]
fn matching_system_credentials_are_imported_and_renamed() {
    require_sandbox!();
    // The credentials relive itself was given (its own
    // $CREDENTIALS_DIRECTORY, as a container manager passes them).
    let given = std::env::temp_dir().join(format!("relive-given-creds-{}", std::process::id()));
    std::fs::create_dir_all(&given).unwrap();
    for (name, value) in [
        ("agetty.autologin", "root"),
        ("agetty.issue", "hello"),
        ("tty.virtual.tty1.agetty.speed", "115200"),
        ("login.noauth", "yes"),
    ] {
        std::fs::write(given.join(name), value).unwrap();
    }
    let explicit = given.join("explicit");
    std::fs::write(&explicit, "explicit wins").unwrap();
    // One test in this binary: nothing else reads the environment.
    std::env::set_var("CREDENTIALS_DIRECTORY", &given);
    let unit = format!(
        "[Service]\nImportCredential=agetty.*\n\
         ImportCredential=tty.virtual.tty1.agetty.*:agetty.\n\
         LoadCredential=agetty.issue:{}\n\
         ExecStart=/bin/sh -c 'cd $CREDENTIALS_DIRECTORY && for f in *; do echo \"cred $f=$(cat $f)\"; done; \
         echo done; exec sleep 300'\n",
        explicit.display()
    );
    let sandbox = Sandbox::boot(
        &[
            ("getty.service", unit.as_str()),
            ("multi-user.target", "[Unit]\n"),
        ],
        "",
    );
    sandbox.ctl_ok(&["start", "getty.service"]);
    sandbox.wait_for("the listing", Duration::from_secs(10), || {
        !sandbox.log_lines("getty.service: done").is_empty()
    });
    let mut creds: Vec<String> = sandbox
        .log_lines("getty.service: cred ")
        .iter()
        .map(|l| l[l.find("cred ").unwrap() + 5..].trim().to_owned())
        .collect();
    creds.sort();
    assert_eq!(
        creds,
        [
            "agetty.autologin=root",
            "agetty.issue=explicit wins",
            "agetty.speed=115200",
        ],
        "{}",
        sandbox.log()
    );
    let _ = sandbox.poweroff();
    let _ = std::fs::remove_dir_all(&given);
}
