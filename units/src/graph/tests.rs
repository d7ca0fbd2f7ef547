use super::*;
use crate::model::*;

fn unit(name: &str, edit: impl FnOnce(&mut UnitSection)) -> Unit {
    let mut section = UnitSection {
        default_dependencies: true,
        ..UnitSection::default()
    };
    edit(&mut section);
    Unit {
        name: name.to_string(),
        kind: UnitKind::Service,
        aliases: Vec::new(),
        fragment: format!("/lib/systemd/system/{name}").into(),
        dropins: Vec::new(),
        unit: section,
        service: None,
        socket: None,
        timer: None,
        mount: None,
        swap: None,
        automount: None,
        path: None,
        scope: None,
        slice_section: None,
        slice: None,
        install: InstallSection::default(),
        live_upgrade: LiveUpgrade {
            mode: UpgradeMode::Preserve,
            priority: 500,
            mode_explicit: false,
            pre_dump: true,
            pre_dump_max_rounds: None,
            rollback_on_restore_failure: false,
        },
        warnings: Vec::new(),
        unenforced: Vec::new(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// multi-user.target wants ssh and cron; ssh requires network (via alias
/// net.service); web binds to db; everything after sysinit.target.
fn sample() -> Vec<Unit> {
    let mut network = unit("network.service", |u| u.after = names(&["sysinit.target"]));
    network.aliases = names(&["net.service"]);
    vec![
        unit("multi-user.target", |u| {
            u.wants = names(&["ssh.service", "cron.service", "web.service"]);
            u.after = names(&["ssh.service", "cron.service"]);
        }),
        unit("ssh.service", |u| {
            u.requires = names(&["net.service"]);
            u.after = names(&["net.service", "sysinit.target"]);
        }),
        unit("cron.service", |u| u.after = names(&["sysinit.target"])),
        network,
        unit("sysinit.target", |u| u.before = names(&["web.service"])),
        unit("web.service", |u| {
            u.binds_to = names(&["db.service"]);
            u.after = names(&["db.service"]);
            u.conflicts = names(&["old-web.service"]);
        }),
        unit("db.service", |_| {}),
    ]
}

#[test]
fn closure_follows_wants_requires_bindsto_and_aliases() {
    let units = sample();
    let g = Graph::new(&units);
    assert_eq!(g.canonical("net.service"), "network.service");
    assert_eq!(
        g.start_closure(["multi-user.target"]),
        set(&[
            "multi-user.target",
            "ssh.service",
            "cron.service",
            "web.service",
            "network.service",
            "db.service"
        ])
    );
    assert_eq!(g.start_closure(["net.service"]), set(&["network.service"]));
    assert_eq!(
        g.start_closure(["not-loaded.service"]),
        set(&["not-loaded.service"])
    );
    assert!(g.names().contains("old-web.service"));
}

#[test]
fn stop_propagation_and_requirers() {
    let units = sample();
    let g = Graph::new(&units);
    assert_eq!(g.requirers("network.service"), set(&["ssh.service"]));
    assert_eq!(g.requirers("net.service"), set(&["ssh.service"]));
    assert_eq!(g.stop_propagation("db.service"), set(&["web.service"]));
    assert_eq!(g.stop_propagation("network.service"), set(&["ssh.service"]));
    // Wants= does not propagate a stop.
    assert_eq!(g.stop_propagation("cron.service"), set(&[]));
    assert_eq!(g.conflicts("old-web.service"), set(&["web.service"]));
    assert_eq!(g.dependencies("web.service"), set(&["db.service"]));
}

#[test]
fn before_and_after_are_one_edge() {
    let units = sample();
    let g = Graph::new(&units);
    assert_eq!(
        g.must_start_after("web.service"),
        ["db.service", "sysinit.target"]
    );
    assert_eq!(
        g.must_start_after("ssh.service"),
        ["network.service", "sysinit.target"]
    );
}

#[test]
fn layers_and_stop_order() {
    let units = sample();
    let g = Graph::new(&units);
    let all = g.start_closure(["multi-user.target", "sysinit.target"]);
    let layers = g.start_layers(&all).unwrap();
    assert_eq!(
        layers,
        vec![
            names(&["db.service", "sysinit.target"]),
            names(&["cron.service", "network.service", "web.service"]),
            names(&["ssh.service"]),
            names(&["multi-user.target"]),
        ]
    );
    let stop = g.stop_order(&all);
    let pos = |n: &str| stop.iter().position(|s| s == n).unwrap();
    assert_eq!(stop.len(), all.len());
    assert!(pos("multi-user.target") < pos("ssh.service"));
    assert!(pos("ssh.service") < pos("network.service"));
    assert!(pos("web.service") < pos("db.service"));
    // Ordering towards units outside the set is ignored.
    assert_eq!(
        g.start_layers(&set(&["ssh.service"])).unwrap(),
        vec![names(&["ssh.service"])]
    );
    assert!(g.ordering_cycle(&all).is_none());
}

#[test]
fn cycles_are_found_and_reported() {
    let units = vec![
        unit("a.service", |_| {}),
        unit("b.service", |u| u.after = names(&["a.service"])),
        unit("c.service", |u| {
            u.after = names(&["b.service"]);
            u.before = names(&["d.service"]);
        }),
        unit("d.service", |u| u.before = names(&["a.service"])),
        unit("e.service", |u| u.after = names(&["b.service"])),
        unit("f.service", |_| {}),
    ];
    let g = Graph::new(&units);
    let all = set(&[
        "a.service",
        "b.service",
        "c.service",
        "d.service",
        "e.service",
        "f.service",
    ]);
    let cycle = g.ordering_cycle(&all).unwrap();
    assert_eq!(
        cycle,
        names(&["a.service", "b.service", "c.service", "d.service"])
    );
    // Each is ordered before the next, the last before the first.
    for (i, n) in cycle.iter().enumerate() {
        let next = &cycle[(i + 1) % cycle.len()];
        assert!(g.must_start_after(next).contains(n), "{n} before {next}");
    }
    let err = g.start_layers(&all).unwrap_err();
    assert_eq!(err.cycle, cycle);
    assert_eq!(
        err.to_string(),
        "ordering cycle: a.service → b.service → c.service → d.service"
    );
    // Without d the cycle is gone.
    let no_d = set(&["a.service", "b.service", "c.service", "e.service"]);
    assert!(g.ordering_cycle(&no_d).is_none());
    // A stop never blocks on a cycle.
    let stop = g.stop_order(&all);
    assert_eq!(stop.len(), 6);
    assert_eq!(stop.last().map(String::as_str), Some("f.service"));
}

#[test]
fn self_ordering_is_ignored() {
    let units = vec![unit("a.service", |u| u.after = names(&["a.service"]))];
    let g = Graph::new(&units);
    assert!(g.ordering_cycle(&set(&["a.service"])).is_none());
}
