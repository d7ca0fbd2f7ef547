//! Property tests: nothing panics on any input; quoting round-trips; the
//! parser gives back what a generated file contains.

mod common;

use common::Tree;
use proptest::prelude::*;
use relive_units::exec::{quote_word, split_words};
use relive_units::parse::{parse_bytes, parse_str};
use std::path::Path;

/// Directive names the loader parses, to reach its value parsers.
const KEYS: &[&str] = &[
    "Type",
    "ExecStart",
    "ExecStartPre",
    "ExecStop",
    "ExecReload",
    "Restart",
    "RestartSec",
    "TimeoutSec",
    "TimeoutStopSec",
    "KillSignal",
    "KillMode",
    "UMask",
    "LimitNOFILE",
    "Environment",
    "EnvironmentFile",
    "WorkingDirectory",
    "RuntimeDirectory",
    "StandardOutput",
    "NotifyAccess",
    "User",
    "PIDFile",
    "SuccessExitStatus",
    "After",
    "Wants",
    "Description",
    "ConditionPathExists",
    "StartLimitBurst",
    "Mode",
    "Priority",
    "WantedBy",
    "ProtectSystem",
];
const SECTIONS: &[&str] = &[
    "Unit",
    "Service",
    "Install",
    "X-LiveUpgrade",
    "Socket",
    "Other",
];

fn directive_file() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        prop::sample::select(SECTIONS).prop_map(|s| format!("[{s}]")),
        (prop::sample::select(KEYS), "[ -~\\\\%$\"'\t]{0,30}")
            .prop_map(|(k, v)| format!("{k}={v}")),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..20).prop_map(|lines| lines.join("\n"))
}

/// An entry: key, value chunks (joined by continuations), noise switches.
type Entry = (String, Vec<String>, Vec<bool>);
type Section = (String, Vec<Entry>);

/// One entry: key and the value split into continuation chunks.
fn entry() -> impl Strategy<Value = Entry> {
    let chunk = "[A-Za-z0-9_./$%\"'=-]([A-Za-z0-9 _./$%\"'=-]{0,12}[A-Za-z0-9_./$%\"'=-])?";
    (
        "[A-Za-z][A-Za-z0-9_-]{0,10}",
        prop::collection::vec(chunk, 1..4),
        prop::collection::vec(any::<bool>(), 4),
    )
}

fn section() -> impl Strategy<Value = Section> {
    (
        "[A-Za-z][A-Za-z0-9-]{0,10}",
        prop::collection::vec(entry(), 0..6),
    )
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_bytes(&bytes, Path::new("/fuzz.service"));
    }

    #[test]
    fn loader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), text in directive_file()) {
        let t = Tree::new();
        t.write("lib/fuzz.service", &String::from_utf8_lossy(&bytes));
        t.write("lib/x@.service", &text);
        t.write("lib/x@.service.d/a.conf", &text);
        t.write("lib/fuzz.target", &text);
        let l = t.loader(&["lib"]);
        for name in ["fuzz.service", "x@a\\x2db.service", "x@.service", "fuzz.target"] {
            let _ = l.load(name);
        }
    }

    #[test]
    fn quote_then_split_is_identity(word in "[^\u{0}]{0,24}") {
        prop_assert_eq!(split_words(&quote_word(&word)).unwrap(), vec![word]);
    }

    #[test]
    fn quoted_word_lists_round_trip(words in prop::collection::vec("[^\u{0}]{0,12}", 0..8)) {
        let line: Vec<String> = words.iter().map(|w| quote_word(w)).collect();
        prop_assert_eq!(split_words(&line.join(" ")).unwrap(), words);
    }

    #[test]
    fn generated_files_parse_back(sections in prop::collection::vec(section(), 1..5), crlf: bool) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = String::from("# generated\n");
        let mut line = 1;
        let mut expected = Vec::new();
        for (name, entries) in &sections {
            text.push_str(&format!("[{name}]{nl}"));
            line += 1;
            let header = line;
            let mut got = Vec::new();
            for (key, chunks, noise) in entries {
                if noise[0] {
                    text.push_str(&format!("{nl}; a comment{nl}"));
                    line += 2;
                }
                got.push((key.clone(), chunks.join(" "), line + 1));
                text.push_str(&format!("{}{key} = {}", if noise[1] { "  " } else { "" }, chunks[0]));
                for chunk in &chunks[1..] {
                    text.push('\\');
                    text.push_str(nl);
                    line += 1;
                    if noise[2] {
                        // systemd skips comment lines inside a continuation.
                        text.push_str(&format!("  # skipped \\{nl}"));
                        line += 1;
                    }
                    text.push_str(chunk);
                }
                text.push_str(nl);
                line += 1;
            }
            expected.push((name.clone(), header, got));
        }
        let unit = parse_str(&text, Path::new("/g.service")).unwrap();
        let parsed: Vec<_> = unit
            .sections
            .iter()
            .map(|s| {
                let entries: Vec<_> = s.entries.iter().map(|e| (e.key.clone(), e.value.clone(), e.location.line)).collect();
                (s.name.clone(), s.location.line, entries)
            })
            .collect();
        prop_assert_eq!(parsed, expected);
    }
}
