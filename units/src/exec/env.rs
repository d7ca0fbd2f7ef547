//! Environment variables: `$VAR` expansion in argv (systemd's
//! `replace_env_argv()`), Environment= (`config_parse_environ()`) and
//! EnvironmentFile= content (`load_env_file()`), all as in systemd 252.

use super::words::{self, Flags};

/// Expands variables in an argv at spawn time, as systemd 252 does:
///
/// - a word that starts with `$` not followed by `{` or `$` is a variable
///   name as a whole (`$FOO`): it becomes the value split at blanks, with
///   quotes removed, so zero or more words. An unset variable, or a name
///   that cannot be one (`$FOO/bar`, a lone `$`), yields no word at all;
/// - in any other word, `${FOO}` is replaced by the exact value (unset:
///   empty), `$$` by `$`, and a `$FOO` without braces is left as written.
///   `${FOO:-x}` is not shell syntax here: it is left as written.
///
/// Callers skip this for commands with the `:` prefix.
pub fn expand_argv(argv: &[String], lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    for word in argv {
        let bytes = word.as_bytes();
        if bytes.first() == Some(&b'$') && !matches!(bytes.get(1), Some(b'{' | b'$')) {
            let name = &word[1..];
            let value = if name.is_empty() { None } else { lookup(name) };
            if let Some(value) = value {
                let relax = Flags {
                    relax: true,
                    ..Flags::default()
                };
                // With EXTRACT_RELAX splitting cannot fail.
                for w in words::split(&value, relax).unwrap_or_default() {
                    out.push(String::from_utf8_lossy(&w).into_owned());
                }
            }
            continue;
        }
        out.push(replace_env(word, lookup));
    }
    out
}

/// systemd's `replace_env()` without extensions: `${NAME}` and `$$`.
fn replace_env(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    #[derive(PartialEq)]
    enum State {
        Word,
        Curly,
        Variable,
    }
    if !word.contains('$') {
        return word.to_string();
    }
    let bytes = word.as_bytes();
    let mut out = String::with_capacity(word.len());
    let mut state = State::Word;
    // Start of the text not yet copied to `out`. Every boundary used below
    // is at an ASCII byte ('$', '{', '}'), hence a char boundary.
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        match state {
            State::Word if c == b'$' => state = State::Curly,
            State::Word => {}
            State::Curly if c == b'{' => {
                out.push_str(&word[start..i - 1]);
                start = i - 1;
                state = State::Variable;
            }
            State::Curly if c == b'$' => {
                out.push_str(&word[start..i]);
                start = i + 1;
                state = State::Word;
            }
            State::Curly => state = State::Word,
            State::Variable if c == b'}' => {
                let name = &word[start + 2..i];
                if !name.is_empty() {
                    out.push_str(&lookup(name).unwrap_or_default());
                }
                start = i + 1;
                state = State::Word;
            }
            // `${A:-b}` needs REPLACE_ENV_ALLOW_EXTENDED, which argv
            // expansion does not use: leave the text as it is.
            State::Variable if c == b':' => state = State::Word,
            State::Variable => {}
        }
    }
    out.push_str(&word[start..]);
    out
}

/// A valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn env_name_is_valid(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses an Environment= value: `"A=1" B=2 "C=x y"`. Words are split with
/// systemd's quoting and C escapes; each must be `NAME=VALUE` with a valid
/// name. (systemd drops bad words with a warning; relive refuses them.)
pub fn parse_environment(value: &str) -> Result<Vec<(String, String)>, String> {
    parse_environment_with(value, &|w| Ok(w.to_string()))
}

/// [`parse_environment`] with `resolve` applied to each word after
/// unquoting, where systemd resolves specifiers.
pub(crate) fn parse_environment_with(
    value: &str,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for word in super::split_words(value)? {
        let word = resolve(&word)?;
        match word.split_once('=') {
            Some((name, val)) if env_name_is_valid(name) => {
                out.push((name.to_string(), val.to_string()));
            }
            _ => return Err(format!("invalid environment assignment '{word}'")),
        }
    }
    Ok(out)
}

/// Parses EnvironmentFile= content as systemd 252's `load_env_file()`:
/// `KEY=VALUE` lines, `#`/`;` comment lines, single quotes (literal),
/// double quotes (backslash escapes only `"`, `\`, `` ` `` and `$`),
/// backslash-newline continuation, trailing blanks of unquoted values
/// dropped. Lines whose key is not a valid variable name are skipped: that
/// includes `export FOO=1` (key `export FOO`), which systemd ignores too. A
/// later assignment replaces an earlier one in place. A backslash at the end
/// of a comment line continues the comment (changed in systemd 254).
pub fn parse_environment_file(content: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |key: String, value: String| {
        if !env_name_is_valid(&key) {
            return;
        }
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => out.push((key, value)),
        }
    };
    EnvFileParser::default().run(content, &mut push);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum St {
    #[default]
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuote,
    DoubleQuote,
    DoubleQuoteEscape,
    Comment,
    CommentEscape,
}

#[derive(Default)]
struct EnvFileParser {
    key: String,
    value: String,
    /// Where trailing blanks of the key / value start (systemd's
    /// last_key_whitespace / last_value_whitespace).
    key_blank: Option<usize>,
    value_blank: Option<usize>,
}

impl EnvFileParser {
    fn run(mut self, content: &str, push: &mut dyn FnMut(String, String)) {
        let content = content.split('\0').next().unwrap_or("");
        let newline = |c: char| c == '\n' || c == '\r';
        let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        let mut st = St::PreKey;
        for c in content.chars() {
            st = match st {
                St::PreKey if c == '#' || c == ';' => St::Comment,
                St::PreKey if blank(c) => St::PreKey,
                St::PreKey => {
                    self.key_blank = None;
                    self.key.push(c);
                    St::Key
                }
                St::Key if newline(c) => {
                    self.key.clear();
                    St::PreKey
                }
                St::Key if c == '=' => {
                    self.value_blank = None;
                    St::PreValue
                }
                St::Key => {
                    if !blank(c) {
                        self.key_blank = None;
                    } else if self.key_blank.is_none() {
                        self.key_blank = Some(self.key.len());
                    }
                    self.key.push(c);
                    St::Key
                }
                St::PreValue if newline(c) => self.emit(false, push),
                St::PreValue if c == '\'' => St::SingleQuote,
                St::PreValue if c == '"' => St::DoubleQuote,
                St::PreValue if c == '\\' => St::ValueEscape,
                St::PreValue if blank(c) => St::PreValue,
                St::PreValue => {
                    self.value.push(c);
                    St::Value
                }
                St::Value if newline(c) => self.emit(true, push),
                St::Value if c == '\\' => {
                    self.value_blank = None;
                    St::ValueEscape
                }
                St::Value => {
                    if !blank(c) {
                        self.value_blank = None;
                    } else if self.value_blank.is_none() {
                        self.value_blank = Some(self.value.len());
                    }
                    self.value.push(c);
                    St::Value
                }
                St::ValueEscape => {
                    // An escaped newline is eaten: a continuation line.
                    if !newline(c) {
                        self.value.push(c);
                    }
                    St::Value
                }
                St::SingleQuote if c == '\'' => St::PreValue,
                St::SingleQuote => {
                    self.value.push(c);
                    St::SingleQuote
                }
                St::DoubleQuote if c == '"' => St::PreValue,
                St::DoubleQuote if c == '\\' => St::DoubleQuoteEscape,
                St::DoubleQuote => {
                    self.value.push(c);
                    St::DoubleQuote
                }
                St::DoubleQuoteEscape => {
                    if "\"\\`$".contains(c) {
                        self.value.push(c);
                    } else if c != '\n' {
                        self.value.push('\\');
                        self.value.push(c);
                    }
                    St::DoubleQuote
                }
                St::Comment if c == '\\' => St::CommentEscape,
                St::Comment if newline(c) => St::PreKey,
                St::Comment | St::CommentEscape => St::Comment,
            };
        }
        match st {
            St::Value => {
                self.emit(true, push);
            }
            St::PreValue
            | St::ValueEscape
            | St::SingleQuote
            | St::DoubleQuote
            | St::DoubleQuoteEscape => {
                self.emit(false, push);
            }
            _ => {}
        }
    }

    /// Hands over the current assignment and starts the next line.
    fn emit(&mut self, chop_value: bool, push: &mut dyn FnMut(String, String)) -> St {
        if chop_value {
            if let Some(n) = self.value_blank {
                self.value.truncate(n);
            }
        }
        if let Some(n) = self.key_blank {
            self.key.truncate(n);
        }
        push(
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.value),
        );
        self.key_blank = None;
        self.value_blank = None;
        St::PreKey
    }
}
