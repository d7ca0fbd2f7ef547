//! LoadCredential=, ImportCredential= and SetCredential=.

use super::build::Ctx;
use crate::credentials::{valid_id, Credential, Credentials, Source};
use crate::error::LoadError;
use crate::model::Location;

/// Applies `key` if it is one of this module's: None when it is not.
pub(crate) fn directive(
    c: &mut Credentials,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Option<Result<(), LoadError>> {
    if !matches!(key, "LoadCredential" | "SetCredential" | "ImportCredential") {
        return None;
    }
    if value.is_empty() {
        // An empty assignment drops this kind's credentials.
        c.0.retain(|cred| {
            let kind = match cred.source {
                Source::Literal(_) => "SetCredential",
                Source::Import { .. } => "ImportCredential",
                _ => "LoadCredential",
            };
            kind != key
        });
        return Some(Ok(()));
    }
    if key == "ImportCredential" {
        return Some(import(c, ctx, value, loc));
    }
    Some(parse(c, ctx, key, value, loc))
}

/// ImportCredential=GLOB[:PREFIX]; with a prefix the pattern must end in
/// `*` (its fixed start is what the prefix replaces).
fn import(
    c: &mut Credentials,
    ctx: &Ctx<'_>,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    let key = "ImportCredential";
    let resolved = ctx.resolve(key, value, loc)?;
    let (pattern, rename) = match resolved.split_once(':') {
        Some((pattern, prefix)) => (pattern.to_owned(), Some(prefix.to_owned())),
        None => (resolved.clone(), None),
    };
    if pattern.is_empty() || pattern.contains('/') || glob::Pattern::new(&pattern).is_err() {
        return Err(ctx.bad_because(key, value, loc, "not a credential name pattern"));
    }
    if rename.is_some() && !pattern.ends_with('*') {
        return Err(ctx.bad_because(key, value, loc, "a renaming pattern must end in '*'"));
    }
    c.0.push(Credential {
        id: pattern.clone(),
        source: Source::Import { pattern, rename },
    });
    Ok(())
}

fn parse(
    c: &mut Credentials,
    ctx: &Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<(), LoadError> {
    let resolved = ctx.resolve(key, value, loc)?;
    let (id, rest) = match resolved.split_once(':') {
        Some((id, rest)) => (id.to_string(), Some(rest)),
        None => (resolved.clone(), None),
    };
    if !valid_id(&id) {
        return Err(ctx.bad_because(key, value, loc, &format!("'{id}' is not a credential name")));
    }
    let source = match (key, rest) {
        ("SetCredential", Some(v)) => Source::Literal(unescape(v).into_bytes()),
        ("SetCredential", None) => {
            return Err(ctx.bad_because(key, value, loc, "no value after the name"))
        }
        (_, Some(p)) if p.starts_with('/') => Source::Path(p.to_string()),
        (_, Some(name)) if valid_id(name) => Source::Store(name.to_string()),
        (_, Some(name)) => {
            return Err(ctx.bad_because(
                key,
                value,
                loc,
                &format!("'{name}' is neither an absolute path nor a credential name"),
            ))
        }
        (_, None) => Source::Store(id.clone()),
    };
    c.add(Credential { id, source });
    Ok(())
}

/// SetCredential='s C escapes: `\n`, `\t`, `\\`, `\xNN`.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) => out.push(b as char),
                    Err(_) => out.push_str(&format!("\\x{hex}")),
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
