//! systemd's unit file syntax (`config_parse()` in systemd's
//! `src/shared/conf-parser.c`, v252), with line numbers kept.
//!
//! What systemd does, and so do we:
//! - a line ends at `\n`, `\r`, `\r\n`, `\n\r` or NUL (systemd's `read_line()`);
//! - a line whose first non-blank character is `#` or `;` is a comment, also
//!   in the middle of a continuation (it is skipped, the continuation goes on);
//! - a line ending in an odd number of backslashes continues on the next
//!   line, the last backslash replaced by a space;
//! - `[Section]` headers, `Key=Value` with blanks (space, tab, CR, LF)
//!   trimmed around key and value;
//! - a UTF-8 byte order mark is dropped, once.
//!
//! Where we are stricter than systemd: an assignment before the first
//! section header is an error (systemd warns and ignores it). A line without
//! `=` and a malformed header are errors in systemd too. The line number of a
//! continued entry is the line it starts on (systemd reports the last one).

use crate::error::LoadError;
use crate::model::Location;
use std::borrow::Cow;
use std::path::Path;

/// A parsed file: sections in file order (a repeated header starts a new
/// `RawSection` with the same name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawUnit {
    pub sections: Vec<RawSection>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    pub name: String,
    /// Where the `[Name]` header is.
    pub location: Location,
    pub entries: Vec<RawEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub key: String,
    /// Trimmed, continuations joined; no unquoting (that is per directive).
    pub value: String,
    pub location: Location,
}

/// systemd's WHITESPACE: what `strstrip()` removes. Not Unicode blanks.
const BLANKS: &[char] = &[' ', '\t', '\n', '\r'];
const BOM: char = '\u{feff}';

/// Parses a file's bytes. Invalid UTF-8 is replaced (U+FFFD), as systemd,
/// which reads bytes, would not reject the file either.
pub fn parse_bytes(data: &[u8], file: &Path) -> Result<RawUnit, LoadError> {
    parse_str(&String::from_utf8_lossy(data), file)
}

pub fn parse_str(text: &str, file: &Path) -> Result<RawUnit, LoadError> {
    let mut parser = Parser {
        file,
        unit: RawUnit::default(),
    };
    let mut bom_seen = false;
    // A continued entry: the text so far and the line it started on.
    let mut continuation: Option<(String, usize)> = None;

    for (index, raw) in Lines::new(text).enumerate() {
        let lineno = index + 1;
        // systemd checks for comments before joining continuations, so a
        // comment line inside a continued value is dropped, not appended.
        if raw.trim_start_matches(BLANKS).starts_with(['#', ';']) {
            continue;
        }
        let mut line = raw;
        if !bom_seen {
            if let Some(rest) = line.strip_prefix(BOM) {
                line = rest;
                bom_seen = true;
            }
        }
        let (text, start): (Cow<str>, usize) = match continuation.take() {
            Some((mut acc, start)) => {
                acc.push_str(line);
                (Cow::Owned(acc), start)
            }
            None => (Cow::Borrowed(line), lineno),
        };
        if ends_with_escape(&text) {
            let mut owned = text.into_owned();
            owned.pop();
            owned.push(' ');
            continuation = Some((owned, start));
            continue;
        }
        parser.line(&text, start)?;
    }
    if let Some((text, start)) = continuation {
        parser.line(&text, start)?;
    }
    Ok(parser.unit)
}

/// True if the text ends in a backslash that is not itself escaped: an odd
/// number of trailing backslashes (systemd's left-to-right `escaped` scan).
fn ends_with_escape(text: &str) -> bool {
    text.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// systemd's `string_is_safe()`: no control characters, no quotes or backslash.
pub(crate) fn string_is_safe(s: &str) -> bool {
    !s.chars()
        .any(|c| c < ' ' || c == '\x7f' || matches!(c, '\\' | '"' | '\''))
}

struct Parser<'a> {
    file: &'a Path,
    unit: RawUnit,
}

impl Parser<'_> {
    fn location(&self, line: usize) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line,
        }
    }

    fn syntax(&self, line: usize, message: String) -> LoadError {
        LoadError::Syntax {
            location: self.location(line),
            message,
        }
    }

    /// systemd's `parse_line()`.
    fn line(&mut self, text: &str, lineno: usize) -> Result<(), LoadError> {
        let l = text.trim_matches(BLANKS);
        if l.is_empty() || l.starts_with(['#', ';']) {
            return Ok(());
        }
        if let Some(rest) = l.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(self.syntax(lineno, format!("invalid section header '{l}'")));
            };
            if !string_is_safe(name) {
                return Err(self.syntax(lineno, format!("bad characters in section header '{l}'")));
            }
            let location = self.location(lineno);
            self.unit.sections.push(RawSection {
                name: name.to_string(),
                location,
                entries: Vec::new(),
            });
            return Ok(());
        }
        if self.unit.sections.is_empty() {
            return Err(self.syntax(lineno, format!("assignment outside of any section: '{l}'")));
        }
        let Some((key, value)) = l.split_once('=') else {
            return Err(self.syntax(lineno, format!("missing '=' in line '{l}'")));
        };
        let key = key.trim_matches(BLANKS);
        if key.is_empty() {
            return Err(self.syntax(lineno, "missing key name before '='".to_string()));
        }
        let location = self.location(lineno);
        if let Some(section) = self.unit.sections.last_mut() {
            section.entries.push(RawEntry {
                key: key.to_string(),
                value: value.trim_matches(BLANKS).to_string(),
                location,
            });
        }
        Ok(())
    }
}

/// Splits text into lines as systemd's `read_line()` does: a line ends at a
/// run of end-of-line characters in which `\n` and `\r` each appear at most
/// once (so `\r\n` and `\n\r` are one break, `\n\n` two), and right after NUL.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines { text, pos: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        let end = bytes[start..]
            .iter()
            .position(|&b| matches!(b, b'\n' | b'\r' | 0))
            .map_or(bytes.len(), |i| start + i);
        let mut seen = 0u8;
        let mut next = end;
        while let Some(&b) = bytes.get(next) {
            let kind = match b {
                b'\n' => 1,
                b'\r' => 2,
                0 => 4,
                _ => break,
            };
            if seen & 4 != 0 || seen & kind != 0 {
                break;
            }
            seen |= kind;
            next += 1;
        }
        self.pos = next;
        // The boundaries are ASCII bytes, so they are char boundaries.
        self.text.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RawUnit {
        parse_str(text, Path::new("/t/a.service")).expect("parses")
    }

    fn entries(unit: &RawUnit) -> Vec<(String, String, usize)> {
        unit.sections
            .iter()
            .flat_map(|s| s.entries.iter())
            .map(|e| (e.key.clone(), e.value.clone(), e.location.line))
            .collect()
    }

    fn e(k: &str, v: &str, l: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), l)
    }

    #[test]
    fn sections_keys_values_trimmed() {
        let u = parse("[Unit]\n  Description =  A thing  \n\n[Service]\nExecStart=/bin/x a=b\n");
        assert_eq!(u.sections.len(), 2);
        assert_eq!(u.sections[0].name, "Unit");
        assert_eq!(u.sections[1].location.line, 4);
        assert_eq!(
            entries(&u),
            vec![
                e("Description", "A thing", 2),
                e("ExecStart", "/bin/x a=b", 5)
            ]
        );
    }

    #[test]
    fn comments_only_at_line_start() {
        let u = parse("# c\n[Unit]\n ; c\nDescription=a # not a comment\n\t# c\n");
        assert_eq!(entries(&u), vec![e("Description", "a # not a comment", 4)]);
    }

    #[test]
    fn continuation_joins_with_space_and_keeps_first_line() {
        let u = parse("[Service]\nExecStart=/bin/echo \\\n  one \\\ntwo\nUser=x\n");
        assert_eq!(
            entries(&u),
            vec![
                e("ExecStart", "/bin/echo    one  two", 2),
                e("User", "x", 5)
            ]
        );
    }

    #[test]
    fn comment_inside_continuation_is_skipped() {
        let u = parse("[Service]\nExecStart=/bin/echo a \\\n# comment \\\n; other\n b\n");
        assert_eq!(entries(&u), vec![e("ExecStart", "/bin/echo a   b", 2)]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let u = parse("[S]\nA=x\\\\\nB=y\n");
        assert_eq!(entries(&u), vec![e("A", "x\\\\", 2), e("B", "y", 3)]);
    }

    #[test]
    fn continuation_at_end_of_file() {
        let u = parse("[S]\nA=x \\");
        assert_eq!(entries(&u), vec![e("A", "x", 2)]);
    }

    #[test]
    fn crlf_and_bom() {
        let u = parse("\u{feff}[Unit]\r\nDescription=x\r\n\r\nAfter=a.service\r\n");
        assert_eq!(u.sections[0].name, "Unit");
        assert_eq!(
            entries(&u),
            vec![e("Description", "x", 2), e("After", "a.service", 4)]
        );
    }

    #[test]
    fn lone_cr_and_nul_end_lines() {
        let u = parse("[S]\rA=1\n\rB=2\0C=3");
        assert_eq!(
            entries(&u),
            vec![e("A", "1", 2), e("B", "2", 3), e("C", "3", 4)]
        );
    }

    #[test]
    fn empty_value_and_repeated_sections() {
        let u = parse("[Service]\nExecStart=\n[Unit]\n[Service]\nA = \n");
        assert_eq!(u.sections.len(), 3);
        assert_eq!(entries(&u), vec![e("ExecStart", "", 2), e("A", "", 5)]);
    }

    #[test]
    fn malformed_input_is_a_syntax_error() {
        for (text, line) in [
            ("A=1\n", 1),
            ("[Unit]\njunk\n", 2),
            ("[Unit\n", 1),
            ("[Unit] # c\n", 1),
            ("[Un\"it]\n", 1),
            ("[Unit]\n=x\n", 2),
        ] {
            match parse_str(text, Path::new("/t/x.service")) {
                Err(LoadError::Syntax { location, .. }) => {
                    assert_eq!(location.line, line, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_error_message_has_file_and_line() {
        let err = parse_str("[Unit]\nnope\n", Path::new("/x/a.service")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/x/a.service:2: missing '=' in line 'nope'"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let u = parse_bytes(b"[Unit]\nDescription=a\xffb\n", Path::new("/t")).unwrap();
        assert_eq!(u.sections[0].entries[0].value, "a\u{fffd}b");
    }
}
