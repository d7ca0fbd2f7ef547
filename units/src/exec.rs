//! Exec*= command lines as systemd 252 parses them (`config_parse_exec()`
//! in `src/core/load-fragment.c`), plus the environment helpers that go with
//! them: `$VAR` expansion at spawn time, Environment= and EnvironmentFile=.
//!
//! - Prefixes on the first word, in any order, each at most once: `-`
//!   (failure ignored), `@` (the second word is argv\[0\]), `:` (no `$VAR`
//!   expansion), `+`, `!` (privileged) and `!!`. `!!` asks for credentials
//!   to be dropped via ambient capabilities, which every kernel relive runs
//!   on supports, so it is *not* marked privileged (systemd does the same
//!   on such kernels).
//! - Words are split with systemd's quoting (see `exec/words.rs`: a quote
//!   may start anywhere in a word, as in systemd's code); unknown escapes
//!   like `\w` are kept verbatim with a warning, as systemd does.
//! - `;` as a separate word would start a second command in systemd: relive
//!   runs one command per line and refuses it. `\;` is a literal `;` word.
//! - The path is simplified (`//` and `/./` removed); argv\[0\] keeps the
//!   text as written.

mod env;
mod words;

pub(crate) use env::parse_environment_with;
pub use env::{expand_argv, parse_environment, parse_environment_file};

use crate::error::LoadError;
use crate::model::{ExecCommand, Location};
use crate::parse::string_is_safe;
use words::{extract_word, Flags, WordError};

/// Parses one Exec*= value (already trimmed, not empty) with no specifier
/// resolution. Every problem, including those systemd ignores on a line with
/// the `-` prefix, is an error here.
pub fn parse_exec(value: &str, location: &Location) -> Result<ExecCommand, LoadError> {
    parse_exec_with(value, location, &|w| Ok(w.to_string()))
        .map(|parsed| parsed.command)
        .map_err(|e| LoadError::invalid(location, e.message))
}

/// Splits a string into words with systemd's quoting and C escapes
/// (`extract_first_word()` with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE).
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    split_with(
        s,
        Flags {
            cunescape: true,
            ..Flags::default()
        },
    )
}

fn split_with(s: &str, flags: Flags) -> Result<Vec<String>, String> {
    words::split(s, flags)
        .map_err(|e| word_error(e, s))?
        .into_iter()
        .map(|w| utf8_word(w, s))
        .collect()
}

/// Splits a list of unit names: quotes removed, backslashes kept as
/// written (`extract_first_word()` with EXTRACT_RETAIN_ESCAPE), since
/// `\x2d` is part of a unit's name.
pub fn split_unit_names(s: &str) -> Result<Vec<String>, String> {
    split_with(
        s,
        Flags {
            retain_escape: true,
            ..Flags::default()
        },
    )
}

/// Quotes a word so that [`split_words`] gives it back unchanged. Words
/// made of harmless characters are returned as they are. A NUL cannot be
/// quoted (systemd refuses `\x00`), so it is dropped.
pub fn quote_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => {}
            c if c < ' ' || c == '\x7f' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A parsed Exec*= line and the non-fatal findings on it.
#[derive(Debug)]
pub(crate) struct ParsedExec {
    pub command: ExecCommand,
    pub warnings: Vec<String>,
}

/// Why an Exec*= line was refused; `ignorable` when it carries the `-`
/// prefix (systemd then drops the line with a warning instead of failing).
#[derive(Debug)]
pub(crate) struct ExecError {
    pub ignorable: bool,
    pub message: String,
}

/// The parser, with `resolve` applied to each word after unquoting (that is
/// where systemd resolves specifiers, so a `%I` with a space stays one word).
pub(crate) fn parse_exec_with(
    value: &str,
    location: &Location,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<ParsedExec, ExecError> {
    let fatal = |message: String| ExecError {
        ignorable: false,
        message,
    };
    let input = value.as_bytes();
    let mut pos = 0;
    let mut warnings = Vec::new();
    let first = next_word(input, &mut pos, value, &mut warnings)
        .map_err(fatal)?
        .ok_or_else(|| fatal("empty command line".into()))?;
    if first == ";" {
        return Err(fatal(SEMICOLON.into()));
    }

    let (mut ignore, mut argv0, mut no_env, mut plus, mut no_setuid, mut ambient) =
        (false, false, false, false, false, false);
    let mut rest = first.as_str();
    while let Some(c) = rest.chars().next() {
        match c {
            '-' if !ignore => ignore = true,
            '@' if !argv0 => argv0 = true,
            ':' if !no_env => no_env = true,
            '+' if !(plus || no_setuid || ambient) => plus = true,
            '!' if !(plus || no_setuid || ambient) => no_setuid = true,
            '!' if !(plus || ambient) => (no_setuid, ambient) = (false, true),
            _ => break,
        }
        rest = &rest[1..];
    }
    let fail = |message: String| ExecError {
        ignorable: ignore,
        message,
    };

    let path = resolve(rest).map_err(&fail)?;
    check_path(&path, value).map_err(&fail)?;
    let mut argv = Vec::new();
    if !argv0 {
        argv.push(path.clone());
    }
    while pos < input.len() {
        let at_word_end = |i: usize| input.get(i).is_none_or(|&b| words::is_blank(b));
        if input[pos] == b';' && at_word_end(pos + 1) {
            return Err(fail(SEMICOLON.into()));
        }
        if input[pos] == b'\\' && input.get(pos + 1) == Some(&b';') && at_word_end(pos + 2) {
            argv.push(";".to_string());
            pos += 2;
            while input.get(pos).is_some_and(|&b| words::is_blank(b)) {
                pos += 1;
            }
            continue;
        }
        match next_word(input, &mut pos, value, &mut warnings).map_err(&fail)? {
            Some(word) => argv.push(resolve(&word).map_err(&fail)?),
            None => break,
        }
    }
    if argv.is_empty() {
        return Err(fail(format!(
            "empty executable name or zeroeth argument in '{value}'"
        )));
    }
    Ok(ParsedExec {
        command: ExecCommand {
            path: simplify_path(&path),
            argv,
            ignore_failure: ignore,
            privileged: plus || no_setuid,
            credentials_only: no_setuid && !plus,
            no_env_expand: no_env,
            location: location.clone(),
        },
        warnings,
    })
}

const SEMICOLON: &str =
    "';' separating several commands on one line is not supported (use one Exec line per command)";

/// systemd's `extract_first_word_and_warn()`: strict first, then again
/// keeping unknown escapes verbatim (with a warning).
fn next_word(
    input: &[u8],
    pos: &mut usize,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, String> {
    let strict = Flags {
        cunescape: true,
        ..Flags::default()
    };
    let start = *pos;
    let word = match extract_word(input, pos, strict) {
        Ok(w) => w,
        Err(WordError::Quote) => return Err(word_error(WordError::Quote, value)),
        Err(WordError::Escape) => {
            *pos = start;
            let relaxed = Flags {
                unescape_relax: true,
                ..strict
            };
            let w = extract_word(input, pos, relaxed).map_err(|e| word_error(e, value))?;
            if let Some(w) = &w {
                warnings.push(format!(
                    "ignoring unknown escape sequences: \"{}\"",
                    String::from_utf8_lossy(w)
                ));
            }
            w
        }
    };
    word.map(|w| utf8_word(w, value)).transpose()
}

fn word_error(e: WordError, value: &str) -> String {
    match e {
        WordError::Quote => format!("unbalanced quoting in '{value}'"),
        WordError::Escape => format!("invalid escape sequence in '{value}'"),
    }
}

fn utf8_word(w: Vec<u8>, value: &str) -> Result<String, String> {
    String::from_utf8(w).map_err(|_| format!("a word of '{value}' is not valid UTF-8"))
}

/// The checks systemd makes on the executable path.
fn check_path(path: &str, value: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!("empty path in command line '{value}'"));
    }
    if !string_is_safe(path) {
        return Err(format!(
            "executable name contains special characters: {path}"
        ));
    }
    if path.ends_with('/') {
        return Err(format!("executable path specifies a directory: {path}"));
    }
    let component_ok = |c: &str| c.len() <= 255;
    let valid = if path.starts_with('/') {
        path.len() < 4096 && path.split('/').all(component_ok)
    } else {
        !path.contains('/') && path != "." && path != ".." && component_ok(path)
    };
    if !valid {
        return Err(format!(
            "neither a valid executable name nor an absolute path: {path}"
        ));
    }
    Ok(())
}

/// systemd's `path_simplify()`: drop repeated slashes and `.` components.
fn simplify_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests;
