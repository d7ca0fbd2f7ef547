//! `list-units`: which units to show, and the table systemctl users expect.

use std::ffi::CString;

use relive_api::units::UnitSummary;

use crate::cli::ListUnits;

/// The units the options select, sorted by name.
pub fn select(mut units: Vec<UnitSummary>, opts: &ListUnits) -> Vec<UnitSummary> {
    let mut states = opts.state.clone();
    if opts.failed {
        states.push("failed".to_owned());
    }
    units.retain(|u| {
        wanted_state(u, opts.all, &states)
            && (opts.types.is_empty() || opts.types.iter().any(|t| u.name.ends_with(t.suffix())))
            && (opts.patterns.is_empty() || opts.patterns.iter().any(|p| glob_match(p, &u.name)))
    });
    units.sort_by(|a, b| a.name.cmp(&b.name));
    units
}

/// As systemctl: an explicit state list replaces the default, which hides
/// inactive units unless --all.
fn wanted_state(u: &UnitSummary, all: bool, states: &[String]) -> bool {
    if !states.is_empty() {
        return states
            .iter()
            .any(|s| *s == u.load_state || *s == u.active_state || *s == u.sub_state);
    }
    all || u.active_state != "inactive"
}

/// Shell pattern matching as systemctl does it, with fnmatch(3).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    // Neither can hold a NUL when it comes from argv or a unit file name;
    // if one does anyway, it matches nothing.
    let (Ok(p), Ok(n)) = (CString::new(pattern), CString::new(name)) else {
        return false;
    };
    // SAFETY: both are valid NUL-terminated strings that outlive the call,
    // and fnmatch only reads them.
    unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_NOESCAPE) == 0 }
}

/// How `list-units` lays its table out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    /// --all (or an explicit state): the count does not suggest --all.
    pub all: bool,
    /// --no-legend (or --quiet): rows only, no header, legend or count.
    pub no_legend: bool,
    /// --plain: no column for the ● of failed units.
    pub plain: bool,
}

/// systemctl's legend under the table (systemd 252's words).
const LEGEND: &str = "LOAD   = Reflects whether the unit definition was properly loaded.
ACTIVE = The high-level unit activation state, i.e. generalization of SUB.
SUB    = The low-level unit activation state, values depend on unit type.
";

/// The table as systemctl prints it: `UNIT LOAD ACTIVE SUB DESCRIPTION`,
/// failed units marked with ●, the legend and a count.
pub fn render_table(units: &[UnitSummary], layout: Layout) -> String {
    const HEAD: [&str; 4] = ["UNIT", "LOAD", "ACTIVE", "SUB"];
    let mut widths = HEAD.map(width);
    for u in units {
        for (w, field) in widths.iter_mut().zip(fields(u)) {
            *w = (*w).max(width(field));
        }
    }
    let mut out = String::new();
    let blank = if layout.plain { "" } else { "  " };
    if !layout.no_legend {
        push_row(&mut out, blank, &HEAD, &widths, "DESCRIPTION");
    }
    for u in units {
        let failed = u.active_state == "failed" || u.load_state != "loaded";
        let mark = if failed && !layout.plain {
            "● "
        } else {
            blank
        };
        push_row(&mut out, mark, &fields(u), &widths, &u.description);
    }
    if !layout.no_legend {
        out.push('\n');
        out.push_str(LEGEND);
        out.push('\n');
        out.push_str(&footer(units.len(), layout.all));
        out.push('\n');
    }
    out
}

fn fields(u: &UnitSummary) -> [&str; 4] {
    [&u.name, &u.load_state, &u.active_state, &u.sub_state]
}

/// Width in characters, which is what a terminal lines up by for the
/// names and states relive produces.
fn width(s: &str) -> usize {
    s.chars().count()
}

fn push_row(out: &mut String, mark: &str, cols: &[&str; 4], widths: &[usize; 4], last: &str) {
    out.push_str(mark);
    for (col, w) in cols.iter().zip(widths) {
        out.push_str(col);
        out.push_str(&" ".repeat(w - width(col) + 1));
    }
    out.push_str(last);
    // No trailing blanks when a unit has no description.
    let kept = out.trim_end_matches(' ').len();
    out.truncate(kept);
    out.push('\n');
}

/// systemd 252 says "units" even of one. (systemctl's next line, about
/// list-unit-files, is left out: relivectl has no such verb.)
fn footer(n: usize, all: bool) -> String {
    if all {
        format!("{n} loaded units listed.")
    } else {
        format!("{n} loaded units listed. Pass --all to see loaded but inactive units, too.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::UnitType;

    fn unit(name: &str, active: &str, sub: &str) -> UnitSummary {
        UnitSummary {
            name: name.into(),
            description: format!("The {name}"),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            main_pid: 0,
        }
    }

    fn sample() -> Vec<UnitSummary> {
        vec![
            unit("sshd.service", "active", "running"),
            unit("multi-user.target", "active", "active"),
            unit("broken.service", "failed", "failed"),
            unit("idle.service", "inactive", "dead"),
        ]
    }

    fn names(units: &[UnitSummary]) -> Vec<&str> {
        units.iter().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn default_hides_inactive_and_sorts() {
        let got = select(sample(), &ListUnits::default());
        assert_eq!(
            names(&got),
            ["broken.service", "multi-user.target", "sshd.service"]
        );
        let all = ListUnits {
            all: true,
            ..ListUnits::default()
        };
        assert_eq!(select(sample(), &all).len(), 4);
    }

    #[test]
    fn filters_by_state_type_and_pattern() {
        let failed = ListUnits {
            failed: true,
            ..ListUnits::default()
        };
        assert_eq!(names(&select(sample(), &failed)), ["broken.service"]);

        let inactive = ListUnits {
            state: vec!["dead".into()],
            ..ListUnits::default()
        };
        assert_eq!(names(&select(sample(), &inactive)), ["idle.service"]);

        let targets = ListUnits {
            types: vec![UnitType::Target],
            ..ListUnits::default()
        };
        assert_eq!(names(&select(sample(), &targets)), ["multi-user.target"]);

        let pattern = ListUnits {
            all: true,
            patterns: vec!["*d.service".into(), "nomatch".into()],
            ..ListUnits::default()
        };
        assert_eq!(names(&select(sample(), &pattern)), ["sshd.service"]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("ssh*", "sshd.service"));
        assert!(glob_match("getty@tty?.service", "getty@tty1.service"));
        assert!(glob_match("[ab]*.target", "basic.target"));
        assert!(!glob_match("ssh", "sshd.service"));
        assert!(!glob_match("a\0", "a"));
    }

    #[test]
    fn table_lines_up_and_marks_failures() {
        let units = select(sample(), &ListUnits::default());
        let got = render_table(&units, Layout::default());
        let want = "  UNIT              LOAD   ACTIVE SUB     DESCRIPTION
● broken.service    loaded failed failed  The broken.service
  multi-user.target loaded active active  The multi-user.target
  sshd.service      loaded active running The sshd.service

LOAD   = Reflects whether the unit definition was properly loaded.
ACTIVE = The high-level unit activation state, i.e. generalization of SUB.
SUB    = The low-level unit activation state, values depend on unit type.

3 loaded units listed. Pass --all to see loaded but inactive units, too.
";
        assert_eq!(got, want);
        let plain = Layout {
            plain: true,
            no_legend: true,
            all: false,
        };
        assert_eq!(
            render_table(&units[..1], plain),
            "broken.service loaded failed failed The broken.service\n"
        );
    }

    #[test]
    fn quiet_table_has_rows_only() {
        let mut u = unit("a.service", "active", "exited");
        u.description.clear();
        let quiet = Layout {
            all: true,
            no_legend: true,
            plain: false,
        };
        assert_eq!(
            render_table(&[u], quiet),
            "  a.service loaded active exited\n"
        );
    }

    #[test]
    fn empty_table_still_says_so() {
        let all = Layout {
            all: true,
            ..Layout::default()
        };
        let got = render_table(&[], all);
        assert_eq!(
            got,
            format!("  UNIT LOAD ACTIVE SUB DESCRIPTION\n\n{LEGEND}\n0 loaded units listed.\n")
        );
    }
}
