//! The [Path] section: directives, then systemd's default Unit= and
//! refusal (`path_add_extras()`, `path_verify()`).

use super::build::Ctx;
use super::values::{parse_bool, parse_mode};
use crate::error::LoadError;
use crate::model::Location;
use crate::path::*;
use crate::unit_name;

#[derive(Debug)]
pub(crate) struct PathBuilder {
    p: PathSection,
}

impl Default for PathBuilder {
    fn default() -> Self {
        PathBuilder {
            p: PathSection {
                specs: Vec::new(),
                unit: None,
                make_directory: false,
                directory_mode: 0o755,
            },
        }
    }
}

impl PathBuilder {
    pub fn directive(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &str,
        value: &str,
        loc: &Location,
    ) -> Result<(), LoadError> {
        let condition = match key {
            "PathExists" => Some(PathCondition::Exists),
            "PathExistsGlob" => Some(PathCondition::ExistsGlob),
            "PathChanged" => Some(PathCondition::Changed),
            "PathModified" => Some(PathCondition::Modified),
            "DirectoryNotEmpty" => Some(PathCondition::DirectoryNotEmpty),
            _ => None,
        };
        match (key, condition) {
            // An empty value resets the list.
            (_, Some(_)) if value.is_empty() => self.p.specs.clear(),
            (_, Some(condition)) => {
                let path = ctx.resolve(key, value, loc)?;
                if !path.starts_with('/') {
                    return Err(ctx.bad_because(key, value, loc, "not an absolute path"));
                }
                self.p.specs.push(PathSpec {
                    condition,
                    path: path.into(),
                });
            }
            ("Unit", _) if value.is_empty() => self.p.unit = None,
            ("Unit", _) => self.p.unit = Some(ctx.triggered_unit(key, value, loc, "path")?),
            ("MakeDirectory", _) => {
                self.p.make_directory = !value.is_empty()
                    && parse_bool(value).ok_or_else(|| ctx.bad(key, value, loc))?;
            }
            ("DirectoryMode", _) => {
                self.p.directory_mode = if value.is_empty() {
                    0o755
                } else {
                    parse_mode(value).ok_or_else(|| ctx.bad(key, value, loc))?
                }
            }
            _ => ctx.unsupported(key, value, loc),
        }
        Ok(())
    }

    pub fn finish(self, name: &str, fragment: &Location) -> Result<PathSection, LoadError> {
        let mut p = self.p;
        if p.specs.is_empty() {
            return Err(LoadError::invalid(
                fragment,
                "Path unit lacks path setting. Refusing.",
            ));
        }
        if p.unit.is_none() {
            p.unit = unit_name::same_name_service(name);
        }
        Ok(p)
    }
}
