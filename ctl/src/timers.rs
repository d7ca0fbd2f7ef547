//! `list-timers`: `NEXT LEFT LAST PASSED UNIT ACTIVATES`, soonest first,
//! as systemctl prints it (a dash where there is no time); and
//! `list-sockets`: `LISTEN [TYPE] UNIT ACTIVATES`.

use relive_api::units::{SocketSummary, TimerSummary};

use crate::time::format_relative;

const HEAD: [&str; 6] = ["NEXT", "LEFT", "LAST", "PASSED", "UNIT", "ACTIVATES"];

/// The table, then the count; `quiet` leaves out header and footer.
pub fn render(
    timers: &[TimerSummary],
    now_usec: u64,
    timestamp: &dyn Fn(u64) -> String,
    all: bool,
    quiet: bool,
) -> String {
    let mut sorted: Vec<&TimerSummary> = timers.iter().collect();
    // Armed ones by their next elapse, then the others by name.
    sorted.sort_by_key(|t| (t.next_usec == 0, t.next_usec, t.unit.clone()));
    let rows: Vec<[String; 6]> = sorted
        .iter()
        .map(|t| {
            let when = |usec: u64| {
                if usec == 0 {
                    ("-".to_owned(), "-".to_owned())
                } else {
                    (timestamp(usec), format_relative(now_usec, usec))
                }
            };
            let (next, left) = when(t.next_usec);
            let (last, passed) = when(t.last_usec);
            [
                next,
                left,
                last,
                passed,
                t.unit.clone(),
                t.activates.clone(),
            ]
        })
        .collect();
    let mut widths = HEAD.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    if !quiet {
        push_row(&mut out, &HEAD.map(str::to_owned), &widths);
    }
    for row in &rows {
        push_row(&mut out, row, &widths);
    }
    if !quiet {
        out.push_str(&format!("\n{} timers listed.\n", rows.len()));
        if !all {
            out.push_str("Pass --all to see loaded but inactive timers, too.\n");
        }
    }
    out
}

/// `list-sockets` as systemctl prints it, one row per address.
pub fn render_sockets(sockets: &[SocketSummary], show_types: bool, quiet: bool) -> String {
    let rows: Vec<Vec<String>> = sockets
        .iter()
        .map(|s| {
            let mut row = vec![s.listen.clone()];
            if show_types {
                row.push(s.kind.clone());
            }
            row.extend([s.unit.clone(), s.activates.clone()]);
            row
        })
        .collect();
    let mut head = vec!["LISTEN".to_owned()];
    if show_types {
        head.push("TYPE".into());
    }
    head.extend(["UNIT".into(), "ACTIVATES".into()]);
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    if !quiet {
        push_row(&mut out, &head, &widths);
    }
    for row in &rows {
        push_row(&mut out, row, &widths);
    }
    if !quiet {
        out.push_str(&format!(
            "\n{} sockets listed.\nPass --all to see loaded but inactive sockets, too.\n",
            rows.len()
        ));
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (cell, w) in cells.iter().zip(widths) {
        line.push_str(cell);
        line.push_str(&" ".repeat(w - cell.chars().count() + 1));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(unit: &str, next: u64, last: u64) -> TimerSummary {
        TimerSummary {
            unit: unit.into(),
            activates: unit.replace(".timer", ".service"),
            active_state: "active".into(),
            next_usec: next,
            last_usec: last,
        }
    }

    #[test]
    fn sockets_one_row_per_address() {
        let socket = |listen: &str, kind: &str| SocketSummary {
            listen: listen.into(),
            kind: kind.into(),
            unit: "systemd-journald.socket".into(),
            activates: "systemd-journald.service".into(),
        };
        let table = render_sockets(
            &[
                socket("/run/systemd/journal/socket", "Datagram"),
                socket("/run/systemd/journal/stdout", "Stream"),
            ],
            true,
            false,
        );
        assert_eq!(
            table,
            "LISTEN                      TYPE     UNIT                    ACTIVATES
/run/systemd/journal/socket Datagram systemd-journald.socket systemd-journald.service
/run/systemd/journal/stdout Stream   systemd-journald.socket systemd-journald.service

2 sockets listed.
Pass --all to see loaded but inactive sockets, too.
"
        );
    }

    #[test]
    fn soonest_first_with_dashes_for_no_time() {
        let hour = 3_600_000_000;
        let now = 1_000 * hour;
        let stamp = |usec: u64| format!("T{}", usec / hour);
        let table = render(
            &[
                timer("b.timer", now + 2 * hour, 0),
                timer("a.timer", 0, now - hour),
                timer("c.timer", now + hour, now - 3 * hour),
            ],
            now,
            &stamp,
            false,
            false,
        );
        let expected = "\
NEXT  LEFT         LAST PASSED      UNIT    ACTIVATES
T1001 1h 0min left T997 3h 0min ago c.timer c.service
T1002 2h 0min left -    -           b.timer b.service
-     -            T999 1h 0min ago a.timer a.service

3 timers listed.
Pass --all to see loaded but inactive timers, too.
";
        assert_eq!(table, expected);
    }
}
