//! Word splitting as systemd's `extract_first_word()` does it
//! (`src/basic/extract-word.c`), with the flag combinations unit files use.
//!
//! Quoting: a `"` or `'` starts a quoted part anywhere in a word, and the
//! quotes are removed: `a"b c"d` is the one word `ab cd`, like a shell.
//! systemd.syntax(7) describes quotes as wrapping whole words, but the code
//! (every release since v230, including 243 and 252, and its own test
//! `'foobar' wa"ld"i` → `foobar`, `waldi`) joins them; we do what the code
//! does, since that is what decides how a unit runs.
//!
//! Works on bytes because `\xNN` may produce any byte; callers turn the
//! result into a `String` and reject words that are not UTF-8.

/// systemd's WHITESPACE separators.
pub(crate) fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    /// EXTRACT_CUNESCAPE: decode `\n`, `\xNN`, `\uNNNN`, ...
    pub cunescape: bool,
    /// EXTRACT_UNESCAPE_RELAX: keep an unknown escape (and a trailing
    /// backslash) verbatim instead of failing.
    pub unescape_relax: bool,
    /// EXTRACT_RELAX: accept an unterminated quote or trailing backslash.
    pub relax: bool,
    /// EXTRACT_RETAIN_ESCAPE: keep a backslash and what follows it as
    /// they are (unit names: `dev-disk-by\x2duuid-...`).
    pub retain_escape: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordError {
    /// An unknown escape or a trailing backslash.
    Escape,
    /// A quote that is never closed.
    Quote,
}

/// Extracts the next word starting at `*pos` (always unquoting). Returns
/// None at the end of the input. On success `*pos` is past the word and the
/// blanks after it.
pub(crate) fn extract_word(
    input: &[u8],
    pos: &mut usize,
    flags: Flags,
) -> Result<Option<Vec<u8>>, WordError> {
    while input.get(*pos).is_some_and(|&b| is_blank(b)) {
        *pos += 1;
    }
    if *pos >= input.len() {
        return Ok(None);
    }
    let mut word = Vec::new();
    let mut quote: Option<u8> = None;
    loop {
        let Some(&c) = input.get(*pos) else {
            return match quote {
                Some(_) if !flags.relax => Err(WordError::Quote),
                _ => Ok(Some(word)),
            };
        };
        *pos += 1;
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == b'\\' => backslash(input, pos, flags, true, &mut word)?,
            Some(_) => word.push(c),
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'\\' => backslash(input, pos, flags, false, &mut word)?,
            None if is_blank(c) => {
                while input.get(*pos).is_some_and(|&b| is_blank(b)) {
                    *pos += 1;
                }
                return Ok(Some(word));
            }
            None => word.push(c),
        }
    }
}

/// After a backslash: `*pos` is at the escaped character.
fn backslash(
    input: &[u8],
    pos: &mut usize,
    flags: Flags,
    in_quote: bool,
    word: &mut Vec<u8>,
) -> Result<(), WordError> {
    let Some(&c) = input.get(*pos) else {
        if flags.unescape_relax && (!in_quote || flags.relax) {
            word.push(b'\\');
            return Ok(());
        }
        if flags.relax {
            return Ok(());
        }
        return Err(WordError::Escape);
    };
    if flags.retain_escape {
        word.push(b'\\');
        word.push(c);
        *pos += 1;
        return Ok(());
    }
    if !flags.cunescape {
        word.push(c);
        *pos += 1;
        return Ok(());
    }
    match cunescape_one(&input[*pos..]) {
        Some((bytes, used)) => {
            word.extend_from_slice(&bytes);
            *pos += used;
        }
        None if flags.unescape_relax => {
            word.push(b'\\');
            word.push(c);
            *pos += 1;
        }
        None => return Err(WordError::Escape),
    }
    Ok(())
}

/// systemd's `cunescape_one()`: the bytes an escape stands for and how many
/// input bytes (after the backslash) it used. NUL is refused.
pub(crate) fn cunescape_one(p: &[u8]) -> Option<(Vec<u8>, usize)> {
    let simple = |b: u8| Some((vec![b], 1));
    match *p.first()? {
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(0x0b),
        b'\\' => simple(b'\\'),
        b'"' => simple(b'"'),
        b'\'' => simple(b'\''),
        b's' => simple(b' '),
        b'x' => {
            let v = hex(p.get(1..3)?)?;
            (v != 0).then(|| (vec![v as u8], 3))
        }
        b'u' => unicode(hex(p.get(1..5)?)?, 5),
        b'U' => unicode(hex(p.get(1..9)?)?, 9),
        b'0'..=b'7' => {
            let digits = p.get(0..3)?;
            let mut v = 0u32;
            for &d in digits {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v * 8 + u32::from(d - b'0');
            }
            let byte = u8::try_from(v).ok().filter(|&b| b != 0)?;
            Some((vec![byte], 3))
        }
        _ => None,
    }
}

fn hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(v)
    })
}

fn unicode(code: u32, used: usize) -> Option<(Vec<u8>, usize)> {
    let c = char::from_u32(code).filter(|&c| c != '\0')?;
    Some((c.to_string().into_bytes(), used))
}

/// All words of `input` with the given flags.
pub(crate) fn split(input: &str, flags: Flags) -> Result<Vec<Vec<u8>>, WordError> {
    let bytes = input.as_bytes();
    let mut pos = 0;
    let mut words = Vec::new();
    while let Some(w) = extract_word(bytes, &mut pos, flags)? {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str, flags: Flags) -> Result<Vec<String>, WordError> {
        split(s, flags).map(|ws| {
            ws.into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect()
        })
    }

    const C: Flags = Flags {
        cunescape: true,
        unescape_relax: false,
        relax: false,
        retain_escape: false,
    };

    #[test]
    fn systemd_extract_word_cases() {
        assert_eq!(
            words("'foobar' wa\"ld\"i   ", C).unwrap(),
            ["foobar", "waldi"]
        );
        assert_eq!(words("  a  b\tc\n", C).unwrap(), ["a", "b", "c"]);
        assert_eq!(words("\"\" ''", C).unwrap(), ["", ""]);
        assert_eq!(words("a\\sb \\x41\\102\\u00e9", C).unwrap(), ["a b", "ABé"]);
        assert_eq!(words("\"a \\\"q\\\" b\"", C).unwrap(), ["a \"q\" b"]);
        assert_eq!(words("'it''s'", C).unwrap(), ["its"]);
    }

    #[test]
    fn errors_and_relaxed_modes() {
        assert_eq!(words("'open", C), Err(WordError::Quote));
        assert_eq!(words("end\\", C), Err(WordError::Escape));
        assert_eq!(words("\\q", C), Err(WordError::Escape));
        assert_eq!(words("\\x00", C), Err(WordError::Escape));
        let ur = Flags {
            unescape_relax: true,
            ..C
        };
        assert_eq!(words("\\w+\\K end\\", ur).unwrap(), ["\\w+\\K", "end\\"]);
        let relax = Flags {
            cunescape: false,
            unescape_relax: false,
            relax: true,
            retain_escape: false,
        };
        assert_eq!(words("'open a\\ b", relax).unwrap(), ["open a b"]);
        let retain = Flags {
            retain_escape: true,
            ..Flags::default()
        };
        assert_eq!(
            words("'a b' dev-x\\x2dy.device", retain).unwrap(),
            ["a b", "dev-x\\x2dy.device"]
        );
    }
}
