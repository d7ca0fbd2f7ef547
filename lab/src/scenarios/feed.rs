//! A FIFO between two preserved units (upgrade-check (p), and a fault
//! scenario): relive-feedwriter writes a
//! numbered line into /run/relive-feed/fifo every 0.2 s, relive-feedreader
//! reads one every 0.5 s into /var/lib/relive-feed.log, so lines wait in
//! the FIFO when the upgrade freezes them. The two are a group; across the
//! abort and the upgrade both keep their PIDs and the log goes on with
//! every number once, in order: the waiting lines were carried, written
//! back once, and the two hold one FIFO again. Written into the guest by
//! [`SETUP`].

use relive_api::plan::Plan;
use relive_api::report::UpgradeReport;

pub const WRITER: &str = "relive-feedwriter.service";
pub const READER: &str = "relive-feedreader.service";
pub const FIFO: &str = "/run/relive-feed/fifo";

/// Installs and (re)starts the two units, the log emptied.
pub const SETUP: &str = r#"cat > /etc/systemd/system/relive-feedwriter.service <<'END'
[Unit]
Description=relive lab workload: numbered lines into a FIFO

[Service]
RuntimeDirectory=relive-feed
ExecStartPre=/bin/sh -c 'rm -f /run/relive-feed/fifo && mkfifo -m 600 /run/relive-feed/fifo'
ExecStart=/bin/sh -c 'exec 3>/run/relive-feed/fifo; n=0; while :; do n=$((n+1)); echo $n >&3; sleep 0.2; done'

[X-LiveUpgrade]
Mode=preserve
Priority=350
END
cat > /etc/systemd/system/relive-feedreader.service <<'END'
[Unit]
Description=relive lab workload: reads the FIFO slowly into a log
After=relive-feedwriter.service
Requires=relive-feedwriter.service

[Service]
ExecStart=/bin/sh -c 'while read -r line; do echo "$line" >> /var/lib/relive-feed.log; sleep 0.5; done < /run/relive-feed/fifo'

[X-LiveUpgrade]
Mode=preserve
Priority=350
END
relivectl daemon-reload && relivectl stop relive-feedreader.service relive-feedwriter.service; rm -f /var/lib/relive-feed.log; relivectl start relive-feedwriter.service && relivectl start relive-feedreader.service && sleep 4"#;

/// Stops both and removes what they left.
pub const TEARDOWN: &str = "relivectl stop relive-feedreader.service relive-feedwriter.service; \
    rm -f /var/lib/relive-feed.log";

/// Prints the writer's and the reader's main PIDs, the log's line count,
/// how many of its lines are not their own line number, and the first
/// of those as LINE=NUMBER (a number skipped or written twice).
pub const STATE: &str = "echo $(systemctl show -p MainPID --value relive-feedwriter.service) \
    $(systemctl show -p MainPID --value relive-feedreader.service) \
    $(awk 'NR != $1 { bad++; if (!first) first = NR \"=\" $1 } END { print NR, bad + 0, first }' \
    /var/lib/relive-feed.log)";

/// The script that installs and starts the units and prints their state.
pub fn setup_script() -> String {
    format!("{SETUP} && {STATE}")
}

/// (writer PID, reader PID, lines, lines out of place).
pub type State = (u32, u32, u64, u64);

pub fn parse(stdout: &str) -> Option<State> {
    let mut words = stdout.split_whitespace().map(str::parse::<u64>);
    let writer = u32::try_from(words.next()?.ok()?).ok()?;
    let reader = u32::try_from(words.next()?.ok()?).ok()?;
    let lines = words.next()?.ok()?;
    let bad = words.next()?.ok()?;
    (writer > 0 && reader > 0).then_some((writer, reader, lines, bad))
}

/// Running, reading, every line in its place.
pub fn setup_verdict(state: Option<State>) -> (bool, String) {
    let ok = state.is_some_and(|(_, _, lines, bad)| lines > 0 && bad == 0);
    (
        ok,
        format!("(writer PID, reader PID, lines, out of place): {state:?}"),
    )
}

/// The plan puts the two in one group, tied by the FIFO.
pub fn plan_verdict(plan: &Plan) -> (bool, String) {
    let group = plan.group_of(WRITER).unwrap_or_default();
    let linked = plan.pipe_links.iter().any(|l| {
        l.name == FIFO
            && [&l.a, &l.b]
                .iter()
                .all(|u| [WRITER, READER].contains(&u.as_str()))
    });
    (
        linked && group.iter().any(|u| u == READER),
        format!(
            "group {}; pipe links {:?}",
            group.join(" "),
            plan.pipe_links
        ),
    )
}

/// After: the same two PIDs, more lines, none out of place.
pub fn after_verdict(before: Option<State>, stdout: &str) -> (bool, String) {
    let after = parse(stdout);
    let ok = match (before, after) {
        (Some((w, r, lines, _)), Some((w2, r2, lines2, bad2))) => {
            w == w2 && r == r2 && lines2 > lines && bad2 == 0
        }
        _ => false,
    };
    let first_wrong = stdout.split_whitespace().nth(4).unwrap_or("none");
    (
        ok,
        format!(
            "(writer PID, reader PID, lines, out of place) before {before:?}, after {after:?}; first line out of place (line=number): {first_wrong}"
        ),
    )
}

/// The report: both restored, the FIFO's waiting bytes carried.
pub fn report_verdict(report: &UpgradeReport) -> (bool, String) {
    let record = |name: &str| report.units.iter().find(|u| u.name == name);
    let restored = [WRITER, READER].iter().all(|name| {
        record(name).is_some_and(|u| u.outcome == Some(relive_api::report::Outcome::Restored))
    });
    let carried = record(WRITER)
        .and_then(|u| u.pipe_ties.iter().find(|t| t.fifo.as_deref() == Some(FIFO)))
        .map(|t| t.queued);
    (
        restored && carried.is_some_and(|bytes| bytes > 0),
        format!("both restored: {restored}; bytes waiting in the FIFO carried: {carried:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_goes_on_in_order_from_the_same_processes() {
        let before = parse("700 701 12 0\n");
        assert_eq!(before, Some((700, 701, 12, 0)));
        assert!(setup_verdict(before).0);
        assert!(after_verdict(before, "700 701 90 0").0);
        // A line twice or lost: out of place.
        let (ok, detail) = after_verdict(before, "700 701 90 3 88=89");
        assert!(!ok);
        assert!(detail.ends_with("(line=number): 88=89"), "{detail}");
        // Started afresh.
        assert!(!after_verdict(before, "800 801 90 0").0);
        // Stuck: the reader no longer gets lines.
        assert!(!after_verdict(before, "700 701 12 0").0);
        assert!(!setup_verdict(parse("0 701 1 0")).0);
    }
}
