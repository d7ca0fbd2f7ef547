//! `relivectl security UNIT`: one line per protection, in force or not,
//! and a count, like systemd-analyze security's table.

use relive_api::units::{Protection, SecurityCheck};

/// The table, ending with a newline; `quiet` leaves out the header and
/// the count.
pub fn render(checks: &[SecurityCheck], quiet: bool) -> String {
    let width = checks.iter().map(|c| c.setting.len()).max().unwrap_or(0);
    let mut out = String::new();
    if !quiet {
        out.push_str(&format!(
            "  {:width$} {:11} DESCRIPTION\n",
            "SETTING", "STATE"
        ));
    }
    for c in checks {
        let (mark, state) = match c.protection {
            Protection::On => ("✓", "on"),
            Protection::Off => ("✗", "off"),
            Protection::NotApplied => ("!", "not applied"),
            Protection::Refused => ("!", "refused"),
        };
        out.push_str(&format!(
            "{mark} {:width$} {state:11} {}\n",
            c.setting, c.description
        ));
    }
    if !quiet {
        let on = checks
            .iter()
            .filter(|c| c.protection == Protection::On)
            .count();
        let missing: Vec<&str> = checks
            .iter()
            .filter(|c| matches!(c.protection, Protection::NotApplied | Protection::Refused))
            .map(|c| c.setting.as_str())
            .collect();
        out.push_str(&format!("\n{on} of {} protections in force", checks.len()));
        if !missing.is_empty() {
            out.push_str(&format!(
                "; asked for but not applied: {}",
                missing.join(", ")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(setting: &str, protection: Protection) -> SecurityCheck {
        SecurityCheck {
            setting: setting.into(),
            protection,
            description: format!("about {setting}"),
        }
    }

    #[test]
    fn the_table_marks_each_protection_and_counts_them() {
        let checks = [
            check("PrivateTmp", Protection::On),
            check("User", Protection::Off),
            check("IPAddressDeny", Protection::NotApplied),
        ];
        assert_eq!(
            render(&checks, false),
            "  SETTING       STATE       DESCRIPTION\n\
             ✓ PrivateTmp    on          about PrivateTmp\n\
             ✗ User          off         about User\n\
             ! IPAddressDeny not applied about IPAddressDeny\n\
             \n1 of 3 protections in force; asked for but not applied: IPAddressDeny\n"
        );
        assert!(!render(&checks, true).contains("SETTING"));
    }
}
