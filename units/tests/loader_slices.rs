//! Slices and scopes: implicit slices, Slice=, cgroup paths.

mod common;

use common::Tree;
use relive_units::resources::Limit;
use relive_units::*;

#[test]
fn a_user_slice_needs_no_file_and_takes_its_prefix_dropins() {
    let t = Tree::new();
    t.write(
        "lib/user.slice",
        "[Unit]\nDescription=User and Session Slice\n",
    );
    t.write(
        "lib/user-.slice.d/10-defaults.conf",
        "[Unit]\nDescription=User Slice of UID %j\nStopWhenUnneeded=yes\n[Slice]\nTasksMax=33%\n",
    );
    let l = t.loader(&["lib"]);
    let u = l.load("user-1000.slice").unwrap();
    assert_eq!(u.kind, UnitKind::Slice);
    assert_eq!(
        u.unit.description.as_deref(),
        Some("User Slice of UID 1000")
    );
    let tasks = u.slice_section.as_ref().unwrap().resources.tasks_max;
    assert_eq!(tasks, Some(Limit::Permyriad(3300)));
    assert_eq!(u.cgroup(), "/user.slice/user-1000.slice");
    assert!(u.unit.requires.contains(&"user.slice".to_string()));
    assert!(u.unit.after.contains(&"user.slice".to_string()));
    assert_eq!(l.load("user.slice").unwrap().cgroup(), "/user.slice");
}

#[test]
fn slice_puts_a_service_below_the_slice_it_names() {
    let t = Tree::new();
    t.write(
        "lib/user@.service",
        "[Service]\nExecStart=/lib/systemd/systemd --user\nSlice=user-%i.slice\n",
    );
    t.write("lib/a.service", "[Service]\nExecStart=/a\n");
    let l = t.loader(&["lib"]);
    let u = l.load("user@0.service").unwrap();
    assert_eq!(u.slice.as_deref(), Some("user-0.slice"));
    assert_eq!(u.cgroup(), "/user.slice/user-0.slice/user@0.service");
    assert!(u.unit.requires.contains(&"user-0.slice".to_string()));
    let a = l.load("a.service").unwrap();
    assert_eq!(a.cgroup(), "/system.slice/a.service");
    assert!(!a.unit.requires.iter().any(|r| r.ends_with(".slice")));
}

#[test]
fn a_scope_file_gives_its_kill_settings_and_a_bad_slice_is_named() {
    let t = Tree::new();
    t.write(
        "run/session-3.scope",
        "[Scope]\nSlice=user-0.slice\nSendSIGHUP=yes\nTasksMax=infinity\nKillSignal=SIGINT\nOOMPolicy=continue\n",
    );
    t.write("run/bad.scope", "[Scope]\nSlice=user.service\n");
    let l = t.loader(&["run"]);
    let u = l.load("session-3.scope").unwrap();
    let scope = u.scope.as_ref().unwrap();
    assert!(scope.send_sighup);
    assert_eq!(scope.kill_signal, 2);
    assert_eq!(scope.resources.tasks_max, Some(Limit::Infinity));
    assert_eq!(u.cgroup(), "/user.slice/user-0.slice/session-3.scope");
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let err = l.load("bad.scope").unwrap_err().to_string();
    assert!(
        err.contains("bad.scope:2") && err.contains("Slice"),
        "{err}"
    );
}
