//! RuntimeDirectory=-style names, and StateDirectory=, CacheDirectory=,
//! LogsDirectory=, ConfigurationDirectory= with their *Mode= settings.

use super::build::Ctx;
use super::values::parse_mode;
use crate::directories::{DirectoryKind, ExecDirectories};
use crate::error::LoadError;
use crate::model::Location;

/// The names of one assignment: relative, normalized paths. A `:LINK`
/// suffix (systemd 250's symlinks) is warned about and ignored.
pub(crate) fn names(
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    for w in ctx.words(key, value, loc)? {
        let dir = match w.split_once(':') {
            Some((dir, _)) => {
                ctx.warn(loc, format!("{key}=: symlink in '{w}' ignored"));
                dir.to_string()
            }
            None => w,
        };
        let normalized = dir
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !normalized {
            return Err(ctx.bad_because(
                key,
                value,
                loc,
                &format!("'{dir}' is not a relative, normalized path"),
            ));
        }
        out.push(dir);
    }
    Ok(out)
}

/// Applies `key` if it is one of the four kinds or their modes.
pub(crate) fn directive(
    d: &mut ExecDirectories,
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &str,
    loc: &Location,
) -> Option<Result<(), LoadError>> {
    let (kind, is_mode) = DirectoryKind::ALL.into_iter().find_map(|kind| {
        let rest = key.strip_prefix(kind.directive())?;
        match rest {
            "" => Some((kind, false)),
            "Mode" => Some((kind, true)),
            _ => None,
        }
    })?;
    let setting = d.get_mut(kind);
    if is_mode {
        let mode = if value.is_empty() {
            Some(0o755)
        } else {
            parse_mode(value)
        };
        let Some(mode) = mode else {
            return Some(Err(ctx.bad(key, value, loc)));
        };
        setting.mode = mode;
    } else if value.is_empty() {
        setting.names.clear();
    } else {
        match names(ctx, key, value, loc) {
            Ok(names) => setting.names.extend(names),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(()))
}
