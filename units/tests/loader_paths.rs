//! The search path: priorities, drop-ins, aliases, masks, templates, .wants.

mod common;

use common::Tree;
use relive_units::*;
use std::path::{Path, PathBuf};

const SVC: &str = "[Service]\nExecStart=/bin/a\n";

#[test]
fn higher_priority_dir_wins_and_names_are_listed_once() {
    let t = Tree::new();
    t.write(
        "etc/a.service",
        "[Unit]\nDescription=etc\n[Service]\nExecStart=/a\n",
    );
    t.write(
        "lib/a.service",
        "[Unit]\nDescription=lib\n[Service]\nExecStart=/a\n",
    );
    t.write("lib/b.target", "[Unit]\n");
    let l = t.loader(&["etc", "run-missing", "lib"]);
    assert_eq!(
        l.load("a.service").unwrap().unit.description.as_deref(),
        Some("etc")
    );
    assert_eq!(l.unit_names(), ["a.service", "b.target"]);
    assert_eq!(l.search_dirs().len(), 2);
}

#[test]
fn a_dir_symlinked_to_an_earlier_one_is_read_once() {
    let t = Tree::new();
    t.write("usr/lib/a.service", SVC);
    t.write("usr/lib/a.service.d/x.conf", "[Service]\nEnvironment=A=1\n");
    t.link("usr/lib", "lib");
    let l = t.loader(&["usr/lib", "lib"]);
    assert_eq!(l.search_dirs(), [t.path("usr/lib")]);
    let u = l.load("a.service").unwrap();
    assert_eq!(u.dropins.len(), 1);
    assert_eq!(u.service.unwrap().environment.len(), 1);
}

#[test]
fn dropins_sorted_across_dirs_same_name_masked_lists_reset() {
    let t = Tree::new();
    t.write(
        "lib/a-b.service",
        "[Service]\nExecStart=/bin/a\nEnvironment=A=1\n",
    );
    t.write(
        "etc/a-b.service.d/10-x.conf",
        "[Service]\nExecStart=\nExecStart=/bin/b\n",
    );
    t.write(
        "lib/a-b.service.d/10-x.conf",
        "[Service]\nExecStart=/bin/never\n",
    );
    t.write(
        "lib/a-b.service.d/20-y.conf",
        "[Service]\nEnvironment=B=2\n",
    );
    t.write("lib/a-b.service.d/05-z.conf", "[Unit]\nDescription=z\n");
    t.write("lib/a-b.service.d/notes.txt", "ignored");
    t.write(
        "lib/a-b.service.d/.hidden.conf",
        "[Unit]\nDescription=hidden\n",
    );
    t.write(
        "lib/a-.service.d/30-prefix.conf",
        "[Service]\nEnvironment=C=3\n",
    );
    t.write("lib/service.d/40-all.conf", "[Service]\nEnvironment=D=4\n");
    t.write(
        "lib/target.d/50-not-for-services.conf",
        "[Service]\nEnvironment=E=5\n",
    );
    let u = t.loader(&["etc", "lib"]).load("a-b.service").unwrap();
    assert_eq!(
        u.dropins,
        [
            "lib/a-b.service.d/05-z.conf",
            "etc/a-b.service.d/10-x.conf",
            "lib/a-b.service.d/20-y.conf",
            "lib/a-.service.d/30-prefix.conf",
            "lib/service.d/40-all.conf"
        ]
        .map(|p| t.path(p))
    );
    assert_eq!(u.unit.description.as_deref(), Some("z"));
    let s = u.service.unwrap();
    assert_eq!(s.exec_start.len(), 1);
    assert_eq!(s.exec_start[0].path, "/bin/b");
    assert_eq!(
        s.exec_start[0].location.file,
        t.path("etc/a-b.service.d/10-x.conf")
    );
    let env: Vec<&str> = s.environment.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(env, ["A", "B", "C", "D"]);
}

#[test]
fn dropin_errors_point_into_the_dropin() {
    let t = Tree::new();
    t.write("lib/a.service", SVC);
    let conf = t.write("lib/a.service.d/x.conf", "[Service]\nRestart=maybe\n");
    let err = t.loader(&["lib"]).load("a.service").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2: invalid Restart= value \"maybe\"", conf.display())
    );
}

#[test]
fn alias_symlinks() {
    let t = Tree::new();
    t.write("lib/foo.service", "[Service]\nExecStart=/bin/foo\n");
    t.link("foo.service", "lib/bar.service");
    t.link(
        &t.path("lib/foo.service").to_string_lossy(),
        "etc/baz.service",
    );
    t.write(
        "lib/bar.service.d/x.conf",
        "[Unit]\nDescription=via alias dir\n",
    );
    let l = t.loader(&["etc", "lib"]);
    for name in ["foo.service", "bar.service", "baz.service"] {
        let u = l.load(name).unwrap();
        assert_eq!(u.name, "foo.service", "{name}");
        assert_eq!(u.fragment, t.path("lib/foo.service"));
        assert_eq!(u.aliases, ["bar.service", "baz.service"], "{name}");
        assert_eq!(u.unit.description.as_deref(), Some("via alias dir"));
    }
}

#[test]
fn self_alias_in_etc_falls_through_and_linked_files_keep_their_name() {
    let t = Tree::new();
    t.write(
        "lib/a.service",
        "[Unit]\nDescription=real\n[Service]\nExecStart=/a\n",
    );
    t.link(&t.path("lib/a.service").to_string_lossy(), "etc/a.service");
    t.write(
        "opt/other-name.service",
        "[Unit]\nDescription=linked\n[Service]\nExecStart=/a\n",
    );
    t.link(
        &t.path("opt/other-name.service").to_string_lossy(),
        "etc/ext.service",
    );
    let l = t.loader(&["etc", "lib"]);
    let a = l.load("a.service").unwrap();
    assert_eq!(
        (a.fragment, a.unit.description.as_deref()),
        (t.path("lib/a.service"), Some("real"))
    );
    let ext = l.load("ext.service").unwrap();
    assert_eq!(
        (ext.name.as_str(), ext.fragment),
        ("ext.service", t.path("etc/ext.service"))
    );
    assert_eq!(ext.unit.description.as_deref(), Some("linked"));
}

#[test]
fn masking() {
    let t = Tree::new();
    t.write("lib/a.service", SVC);
    t.link("/dev/null", "etc/a.service");
    t.write("lib/empty.service", "");
    t.link("/dev/null", "lib/null.service");
    t.link("a.service", "lib/alias-of-masked.service");
    let l = t.loader(&["etc", "lib"]);
    for name in ["a.service", "empty.service", "null.service"] {
        assert!(
            matches!(l.load(name), Err(LoadError::Masked { .. })),
            "{name}"
        );
    }
    assert_eq!(
        l.load("a.service").unwrap_err().to_string(),
        format!(
            "a.service: unit is masked ({})",
            t.path("etc/a.service").display()
        )
    );
    assert!(matches!(
        l.load("alias-of-masked.service"),
        Err(LoadError::Masked { .. })
    ));
}

#[test]
fn dangling_alias_is_not_found() {
    let t = Tree::new();
    t.link("gone.service", "lib/x.service");
    let l = t.loader(&["lib"]);
    assert!(l.unit_names().contains(&"x.service".to_string()));
    assert!(matches!(
        l.load("x.service"),
        Err(LoadError::NotFound { .. })
    ));
}

#[test]
fn templates_and_instances() {
    let t = Tree::new();
    t.write("lib/getty@.service", "[Unit]\nDescription=Getty on %I\n[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear %I $TERM\n");
    t.write(
        "lib/getty@tty9.service",
        "[Service]\nExecStart=/bin/special\n",
    );
    t.write(
        "lib/getty@.service.d/a.conf",
        "[Service]\nEnvironment=T=1\n",
    );
    t.write(
        "lib/getty@tty1.service.d/b.conf",
        "[Service]\nEnvironment=I=1\n",
    );
    t.link("getty@.service", "lib/autovt@.service");
    let l = t.loader(&["lib"]);
    let u = l.load("getty@tty1.service").unwrap();
    assert_eq!(u.name, "getty@tty1.service");
    assert_eq!(u.fragment, t.path("lib/getty@.service"));
    assert_eq!(u.aliases, ["autovt@tty1.service"]);
    assert_eq!(u.unit.description.as_deref(), Some("Getty on tty1"));
    let s = u.service.unwrap();
    assert_eq!(
        s.exec_start[0].argv,
        [
            "/sbin/agetty",
            "-o",
            "-p -- \\u",
            "--noclear",
            "tty1",
            "$TERM"
        ]
    );
    assert_eq!(s.environment.len(), 2);
    let v = l.load("autovt@tty2.service").unwrap();
    assert_eq!(
        (v.name.as_str(), v.aliases.as_slice()),
        (
            "getty@tty2.service",
            &["autovt@tty2.service".to_string()][..]
        )
    );
    assert_eq!(v.service.unwrap().environment.len(), 1);
    assert_eq!(
        l.load("getty@tty9.service")
            .unwrap()
            .service
            .unwrap()
            .exec_start[0]
            .path,
        "/bin/special"
    );
    // The template itself loads (empty instance) so it can be checked.
    let tpl = l.load("getty@.service").unwrap();
    assert_eq!(tpl.unit.description.as_deref(), Some("Getty on "));
    assert!(matches!(
        l.load("nothing@x.service"),
        Err(LoadError::NotFound { .. })
    ));
}

#[test]
fn escaped_instances() {
    let t = Tree::new();
    t.write(
        "lib/fsck@.service",
        "[Service]\nType=oneshot\nExecStart=/bin/fsck %f\nEnvironment=I=%I i=%i\n",
    );
    let u = t
        .loader(&["lib"])
        .load("fsck@dev-disk-by\\x2duuid-12.service")
        .unwrap();
    let s = u.service.unwrap();
    assert_eq!(s.exec_start[0].argv[1], "/dev/disk/by-uuid/12");
    assert_eq!(s.environment[0].1, "dev/disk/by-uuid/12");
    assert_eq!(s.environment[1].1, "dev-disk-by\\x2duuid-12");
}

#[test]
fn wants_and_requires_directories() {
    let t = Tree::new();
    t.write(
        "lib/multi-user.target",
        "[Unit]\nDescription=Multi\nWants=x.service\n",
    );
    t.write("lib/a.service", SVC);
    t.link("../a.service", "lib/multi-user.target.wants/a.service");
    t.link(
        "/nowhere/b.service",
        "etc/multi-user.target.wants/b.service",
    );
    t.write("etc/multi-user.target.wants/c.service", "not a symlink");
    t.link("/dev/null", "etc/multi-user.target.wants/d.service");
    t.link("/dev/null", "lib/multi-user.target.wants/.hidden.service");
    t.link(
        "../getty@.service",
        "etc/multi-user.target.wants/getty@tty1.service",
    );
    t.link("../r.service", "lib/multi-user.target.requires/r.service");
    let u = t.loader(&["etc", "lib"]).load("multi-user.target").unwrap();
    assert_eq!(
        u.unit.wants,
        ["x.service", "a.service", "b.service", "getty@tty1.service"]
    );
    assert_eq!(u.unit.requires, ["r.service"]);
    assert_eq!(u.warnings.len(), 1, "{:?}", u.warnings);
    assert!(u.warnings[0].message.contains("not a symlink"));
}

#[test]
fn template_wants_get_the_instance() {
    let t = Tree::new();
    t.write("lib/w@.service", SVC);
    t.link("../helper@.service", "lib/w@.service.wants/helper@.service");
    t.link("../plain.service", "lib/w@.service.wants/plain.service");
    let u = t.loader(&["lib"]).load("w@x.service").unwrap();
    assert_eq!(u.unit.wants, ["helper@x.service", "plain.service"]);
}

#[test]
fn targets_are_ordered_after_what_they_pull_in() {
    let t = Tree::new();
    t.write("lib/multi-user.target", "[Unit]\nWants=a.service b.service c.service missing.service d.service\nRequires=e.target\nBefore=d.service\n");
    t.link("multi-user.target", "lib/runlevel2.target");
    t.write("lib/a.service", SVC);
    t.write(
        "lib/b.service",
        "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/b\n",
    );
    t.write(
        "lib/c.service",
        "[Unit]\nAfter=runlevel2.target\n[Service]\nExecStart=/c\n",
    );
    t.write("lib/d.service", SVC);
    t.write("lib/e.target", "[Unit]\n");
    let l = t.loader(&["lib"]);
    let u = l.load("multi-user.target").unwrap();
    assert_eq!(u.unit.after, ["a.service", "e.target"]);
    assert_eq!(u.unit.before, ["d.service", "shutdown.target"]);
    assert_eq!(u.aliases, ["runlevel2.target"]);
    let s = l.load("shutdown.target");
    assert!(s.is_err());
}

#[test]
fn default_target() {
    let t = Tree::new();
    t.write("lib/graphical.target", "[Unit]\n");
    t.link("graphical.target", "lib/default.target");
    assert_eq!(t.loader(&["lib"]).default_target(), "graphical.target");
    t.link("/dev/null", "etc/default.target");
    assert_eq!(
        t.loader(&["etc", "lib"]).default_target(),
        "multi-user.target"
    );
    assert_eq!(t.loader(&["nothing"]).default_target(), "multi-user.target");
    let _ = PathBuf::new();
}

#[test]
fn generators_output_sits_where_systemd_puts_it() {
    let base: Vec<PathBuf> = SYSTEM_UNIT_PATH.iter().map(PathBuf::from).collect();
    let path = search_path(&base, Some(Path::new("/run/systemd")));
    let at = |d: &str| path.iter().position(|p| p == Path::new(d)).unwrap();
    assert!(at("/run/systemd/generator.early") < at("/etc/systemd/system"));
    assert!(at("/run/systemd/system") < at("/run/systemd/generator"));
    assert!(at("/run/systemd/generator") < at("/usr/lib/systemd/system"));
    assert_eq!(
        path.last().unwrap(),
        Path::new("/run/systemd/generator.late")
    );
    let custom = search_path(&[PathBuf::from("/u")], Some(Path::new("/g")));
    assert_eq!(
        custom,
        [
            "/g/generator.early",
            "/u",
            "/g/generator",
            "/g/generator.late"
        ]
        .map(PathBuf::from)
    );
    assert_eq!(search_path(&base, None), base);
}

#[test]
fn the_built_in_policy_gives_a_kernel_bound_unit_its_mode_unless_a_drop_in_says() {
    let t = Tree::new();
    t.write("lib/systemd-udevd.service", SVC);
    t.write("lib/getty@.service", SVC);
    t.write("lib/other.service", SVC);
    let l = t.loader(&["etc", "lib"]);
    let mode = |name: &str| l.load(name).unwrap().live_upgrade.mode;
    assert_eq!(mode("systemd-udevd.service"), UpgradeMode::Restart);
    assert_eq!(mode("getty@tty1.service"), UpgradeMode::Restart);
    assert_eq!(mode("other.service"), UpgradeMode::Preserve);
    t.write(
        "etc/systemd-udevd.service.d/keep.conf",
        "[X-LiveUpgrade]\nMode=preserve\n",
    );
    let l = t.loader(&["etc", "lib"]);
    let udevd = l.load("systemd-udevd.service").unwrap();
    assert_eq!(udevd.live_upgrade.mode, UpgradeMode::Preserve);
    assert!(udevd.live_upgrade.mode_explicit);
}
