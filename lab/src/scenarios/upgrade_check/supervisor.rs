//! (o) A unit that is not rooted at its main process: relive-pidchild, a
//! supervisor (a shell) whose PID file names its child, a counter
//! (Type=forking, as daemons with a master process and a PID file naming
//! a worker are). Its supervisor is not a descendant of its main process:
//! the preflight used to restart such a unit. Written into the guest by
//! [`SETUP`]; across the upgrade both processes must keep their PIDs and
//! the counter go on from where it was.

use relive_api::plan::Plan;

pub const UNIT: &str = "relive-pidchild.service";

/// Installs and (re)starts the unit.
const SETUP: &str = r#"mkdir -p /usr/local/lib/relive-lab && cat > /usr/local/lib/relive-lab/pidchild <<'END'
#!/bin/sh
# relive lab: a supervisor whose PID file names its child, a counter.
count() { n=0; while :; do n=$((n+1)); echo "$n" > /run/relive-pidchild/count; sleep 1; done; }
count &
echo $! > /run/relive-pidchild/child.pid
wait
END
chmod 755 /usr/local/lib/relive-lab/pidchild && cat > /etc/systemd/system/relive-pidchild.service <<'END'
[Unit]
Description=relive lab workload: a supervisor whose PID file names its child

[Service]
Type=forking
RuntimeDirectory=relive-pidchild
PIDFile=/run/relive-pidchild/child.pid
ExecStart=/bin/sh -c '/usr/local/lib/relive-lab/pidchild & while [ ! -s /run/relive-pidchild/child.pid ]; do sleep 0.1; done'

[X-LiveUpgrade]
Mode=preserve
Priority=300
END
relivectl daemon-reload && relivectl restart relive-pidchild.service && sleep 3 && "#;

/// Prints the main PID (the PID file's), its parent's PID and the count.
pub const STATE: &str = "child=$(cat /run/relive-pidchild/child.pid); \
    echo $child $(cut -d' ' -f4 /proc/$child/stat) $(cat /run/relive-pidchild/count)";

/// The script that installs the unit and prints its state.
pub fn setup_script() -> String {
    format!("{SETUP}{STATE}")
}

/// (main PID, supervisor's PID, count) as [`STATE`] printed them.
pub fn parse(stdout: &str) -> Option<(u32, u32, u64)> {
    let mut words = stdout.split_whitespace();
    let main = words.next()?.parse().ok()?;
    let parent = words.next()?.parse().ok()?;
    let count = words.next()?.parse().ok()?;
    Some((main, parent, count))
}

/// The plan preserves the unit, checkpointed from its supervisor.
pub fn plan_verdict(plan: &Plan, before: Option<(u32, u32, u64)>) -> (bool, String) {
    let preserved = plan.preserved.iter().any(|u| u.name == UNIT);
    let why = plan.why_of(UNIT).unwrap_or_default();
    (
        preserved && before.is_some(),
        format!("before: {before:?}; preserved: {preserved}; {why}"),
    )
}

/// After: the same two PIDs, the count further than before.
pub fn after_verdict(before: Option<(u32, u32, u64)>, stdout: &str) -> (bool, String) {
    let after = parse(stdout);
    let ok = match (before, after) {
        (Some((main, parent, count)), Some((main2, parent2, count2))) => {
            main == main2 && parent == parent2 && count2 > count
        }
        _ => false,
    };
    (
        ok,
        format!("(main PID, supervisor PID, count) before {before:?}, after {after:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_processes_count_on() {
        let before = parse("812 811 7\n");
        assert_eq!(before, Some((812, 811, 7)));
        assert!(after_verdict(before, "812 811 40").0);
        // Started afresh: new PIDs, the count from 1.
        assert!(!after_verdict(before, "930 929 2").0);
        // The supervisor lost (the child reparented to PID 1).
        assert!(!after_verdict(before, "812 1 40").0);
        assert!(!after_verdict(None, "812 811 40").0);
    }
}
