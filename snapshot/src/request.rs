//! What the caller of an upgrade asked for.

use crate::UpgradeError;
use relive_api::plan::StoreWanted;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
    pub reuse_cmdline: bool,
    pub dry_run: bool,
    /// Skip phase 1 (the background pre-dumps): everything is dumped
    /// during the stoppage.
    pub single_phase: bool,
    /// Instead of `upgrade.store`.
    pub store: Option<StoreWanted>,
    /// Boot the new kernel with relive's minimal initrd
    /// ([`crate::initrd`]) where it can mount the root, the distribution's
    /// (`initrd`) elsewhere.
    pub minimal_initrd: bool,
    /// Restore the preserved units lazily, as `upgrade.lazy_restore` does.
    pub lazy_restore: bool,
}

impl UpgradeRequest {
    /// From the D-Bus arguments, where an empty initrd means none.
    /// `options`: "single-phase" = "yes"|"no", "store" = "memory"|"disk"|"auto",
    /// "initrd" = "minimal"|"given", "restore" = "lazy"|"whole".
    pub fn new(
        kernel: String,
        initrd: String,
        append: String,
        reuse_cmdline: bool,
        dry_run: bool,
        options: &HashMap<String, String>,
    ) -> Result<UpgradeRequest, UpgradeError> {
        let mut request = UpgradeRequest {
            kernel: kernel.into(),
            initrd: (!initrd.is_empty()).then(|| initrd.into()),
            append,
            reuse_cmdline,
            dry_run,
            single_phase: false,
            store: None,
            minimal_initrd: false,
            lazy_restore: false,
        };
        for (key, value) in options {
            let bad = || UpgradeError::BadOption {
                key: key.clone(),
                value: value.clone(),
            };
            match key.as_str() {
                "single-phase" => {
                    request.single_phase = match value.as_str() {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(bad()),
                    }
                }
                "store" => request.store = Some(value.parse().map_err(|_| bad())?),
                "initrd" => {
                    request.minimal_initrd = match value.as_str() {
                        "minimal" => true,
                        "given" => false,
                        _ => return Err(bad()),
                    }
                }
                "restore" => {
                    request.lazy_restore = match value.as_str() {
                        "lazy" => true,
                        "whole" => false,
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(UpgradeError::UnknownOption(key.clone())),
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let new = |k: &str, v: &str| {
            let options = HashMap::from([(k.to_owned(), v.to_owned())]);
            UpgradeRequest::new(
                "/k".into(),
                String::new(),
                String::new(),
                true,
                false,
                &options,
            )
        };
        assert!(new("single-phase", "yes").unwrap().single_phase);
        assert!(new("restore", "lazy").unwrap().lazy_restore);
        assert!(!new("restore", "whole").unwrap().lazy_restore);
        assert_eq!(new("store", "disk").unwrap().store, Some(StoreWanted::Disk));
        let e = new("store", "tape").unwrap_err().to_string();
        assert_eq!(e, "option store: invalid value \"tape\"");
        let e = new("speed", "max").unwrap_err().to_string();
        assert!(e.starts_with("unknown option \"speed\""), "{e}");
    }
}
