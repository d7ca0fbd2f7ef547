//! The handover store on disk: what crosses the kexec.
//!
//! ```text
//! STORE/                 mode 0700: images hold process memory
//!   state.bin            relive's state in the handover envelope
//!   manifests/UNIT.json  the checksum of every image file of the unit
//!   images/UNIT/...      CRIU's images and log for each preserved unit
//!   lock/UNIT.nft        the network lock CRIU left for the unit's connections
//!   run/UNIT/...         the unit's RuntimeDirectory= content (/run is a tmpfs)
//! ```
//!
//! Everything is written, then synced, before the kexec; after it, the
//! state is checked (envelope) and each unit's images are checked against
//! the manifest before anything is restored from them.

use crate::envelope::{self as handover, HandoverError, HandoverKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Envelope {
        path: PathBuf,
        source: HandoverError,
    },
    #[error("{path}: expected a {expected:?} handover")]
    WrongKind {
        path: PathBuf,
        expected: HandoverKind,
    },
    #[error("{unit}: image file {file} {problem}")]
    Corrupt {
        unit: String,
        file: String,
        problem: String,
    },
    #[error("{path}: bad manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: cannot decode the handover: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The checksum (hex) of each of a unit's image files, by path relative to
/// its image dir: one file per unit, so that sealing a unit in the
/// stoppage reads and writes only its own (the whole store's manifest grew
/// with every unit parked before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitManifest {
    /// The manifest's format, which names its checksum; a relive that does
    /// not know it refuses it.
    pub version: u32,
    pub files: BTreeMap<String, String>,
    /// Each page image's block checksums (`crate::pages`): what a lazy
    /// restore checks each page against as it serves it. Absent from the
    /// manifests of relives before lazy restore (no page source then).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blocks: BTreeMap<String, Vec<u64>>,
}

/// One manifest for every unit (`manifest.json`), as relive wrote it
/// before the manifests were split by unit: a store left by such a relive
/// (the one that ran before the kexec) is still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoreManifest {
    version: u32,
    units: BTreeMap<String, BTreeMap<String, String>>,
}

/// Where the units' manifests are, under the store's root.
const MANIFESTS: &str = "manifests";

/// The manifest format this relive writes: XXH3-128 checksums (and, an
/// added field, one XXH3-64 per block of each page image).
pub const MANIFEST_VERSION: u32 = 2;
/// The format of relive 0.1's first stores, still read: SHA-256 checksums
/// (a store written by the relive that ran before the kexec).
const MANIFEST_VERSION_SHA256: u32 = 1;

/// The store-wide manifest an older relive wrote.
const LEGACY_MANIFEST: &str = "manifest.json";

/// Refuses a manifest of a format this relive does not read.
fn check_version(path: &Path, version: u32) -> Result<(), StoreError> {
    if [MANIFEST_VERSION, MANIFEST_VERSION_SHA256].contains(&version) {
        return Ok(());
    }
    Err(StoreError::Manifest {
        path: path.to_owned(),
        reason: format!(
            "format version {version}, this relive reads versions {MANIFEST_VERSION_SHA256} and {MANIFEST_VERSION}"
        ),
    })
}

/// Parses a manifest file of type `T`.
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(text).map_err(|e| StoreError::Manifest {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads `path`; None if it does not exist.
fn read_if_there(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// An empty store, root-only, replacing whatever a previous upgrade left.
    pub fn create(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store::at(root);
        store.wipe()?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&store.root)
            .map_err(io_err(&store.root))?;
        fs::set_permissions(&store.root, fs::Permissions::from_mode(0o700))
            .map_err(io_err(&store.root))?;
        for dir in [
            store.root.join("images"),
            store.root.join("lock"),
            store.root.join(MANIFESTS),
        ] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir))?;
        }
        Ok(store)
    }

    /// Removes everything (after a restore, or an abort).
    pub fn wipe(&self) -> Result<(), StoreError> {
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
                path: self.root.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The directory CRIU writes a unit's images into (created, 0700).
    pub fn unit_dir(&self, unit: &str) -> Result<PathBuf, StoreError> {
        let dir = self.root.join("images").join(unit);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Where a unit's RuntimeDirectory= content is kept.
    pub fn run_dir(&self, unit: &str) -> PathBuf {
        self.root.join("run").join(unit)
    }

    /// Where a unit's files under /dev/shm are kept.
    pub fn shm_dir(&self, unit: &str) -> PathBuf {
        self.root.join("shm").join(unit)
    }

    pub fn lock_file(&self, unit: &str) -> PathBuf {
        self.root.join("lock").join(format!("{unit}.nft"))
    }

    /// Writes a file at the store's top (root-only, synced).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_synced(&self.root.join(name), bytes)
    }

    /// Removes a unit's images and its manifest.
    pub fn forget_unit(&self, unit: &str) -> Result<(), StoreError> {
        let dir = self.root.join("images").join(unit);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&dir)(e)),
            _ => {}
        }
        let path = self.manifest_path(unit);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
            _ => {}
        }
        // An older relive's store keeps it in the store-wide manifest.
        let path = self.root.join(LEGACY_MANIFEST);
        let Some(text) = read_if_there(&path)? else {
            return Ok(());
        };
        let mut manifest: StoreManifest = parse_json(&path, &text)?;
        if manifest.units.remove(unit).is_some() {
            write_synced(&path, &to_json(&path, &manifest)?)?;
        }
        Ok(())
    }

    /// Where a unit's manifest is.
    fn manifest_path(&self, unit: &str) -> PathBuf {
        self.root.join(MANIFESTS).join(format!("{unit}.json"))
    }

    /// A unit's manifest: its own, or its entry in an older relive's
    /// store-wide manifest; None if neither has it.
    fn unit_manifest(&self, unit: &str) -> Result<Option<UnitManifest>, StoreError> {
        let path = self.manifest_path(unit);
        if let Some(text) = read_if_there(&path)? {
            let manifest: UnitManifest = parse_json(&path, &text)?;
            check_version(&path, manifest.version)?;
            return Ok(Some(manifest));
        }
        let path = self.root.join(LEGACY_MANIFEST);
        let Some(text) = read_if_there(&path)? else {
            return Ok(None);
        };
        let mut manifest: StoreManifest = parse_json(&path, &text)?;
        check_version(&path, manifest.version)?;
        let version = manifest.version;
        Ok(manifest.units.remove(unit).map(|files| UnitManifest {
            version,
            files,
            blocks: BTreeMap::new(),
        }))
    }

    /// Writes the state envelope and syncs it.
    pub fn write_state(&self, payload: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join("state.bin");
        write_synced(&path, &handover::encode(HandoverKind::Kexec, payload))
    }

    /// Reads and checks the state envelope.
    pub fn read_state(&self) -> Result<Vec<u8>, StoreError> {
        let path = self.root.join("state.bin");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let (kind, payload) = handover::decode(&bytes).map_err(|source| StoreError::Envelope {
            path: path.clone(),
            source,
        })?;
        if kind != HandoverKind::Kexec {
            return Err(StoreError::WrongKind {
                path,
                expected: HandoverKind::Kexec,
            });
        }
        Ok(payload.to_vec())
    }

    /// Writes the kexec handover (the state file).
    pub fn write_handover(&self, handover: &crate::KexecHandover) -> Result<(), StoreError> {
        let path = self.root.join("state.bin");
        let payload =
            serde_json::to_vec(handover).map_err(|source| StoreError::Decode { path, source })?;
        self.write_state(&payload)
    }

    /// Reads and checks the kexec handover the previous kernel left.
    pub fn read_handover(&self) -> Result<crate::KexecHandover, StoreError> {
        let payload = self.read_state()?;
        serde_json::from_slice(&payload).map_err(|source| StoreError::Decode {
            path: self.root.join("state.bin"),
            source,
        })
    }

    /// Checksums a unit's image files into its manifest (synced): right
    /// after its dump, so that an abort can already check what it restores.
    /// Files already in the manifest (its pre-dumps, sealed at the end of
    /// phase 1) are not read again: the stoppage pays only for new files.
    pub fn seal_unit(&self, unit: &str) -> Result<(), StoreError> {
        let mut manifest = self.unit_manifest(unit)?.unwrap_or_else(|| UnitManifest {
            version: MANIFEST_VERSION,
            files: BTreeMap::new(),
            blocks: BTreeMap::new(),
        });
        let dir = self.root.join("images").join(unit);
        for file in files(&dir, "")? {
            if let std::collections::btree_map::Entry::Vacant(entry) = manifest.files.entry(file) {
                let (sum, blocks) = sums(manifest.version, &dir.join(entry.key()), true)?;
                if let Some(blocks) = blocks {
                    manifest.blocks.insert(entry.key().clone(), blocks);
                }
                entry.insert(sum);
            }
        }
        let path = self.manifest_path(unit);
        let manifests = self.root.join(MANIFESTS);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&manifests)
            .map_err(io_err(&manifests))?;
        write_synced(&path, &to_json(&path, &manifest)?)
    }

    /// Checks a unit's images against its manifest: every file present,
    /// none changed, none added.
    pub fn verify_unit(&self, unit: &str) -> Result<(), StoreError> {
        self.verify_files(unit, |_| true)
    }

    /// Checks a unit's images as [`Store::verify_unit`] does, except the
    /// page images that have block checksums, which are only found there:
    /// their [`crate::pages::PageSource`] checks each block it reads.
    pub fn verify_unit_but_pages(&self, unit: &str) -> Result<(), StoreError> {
        let manifest = self.required_manifest(unit)?;
        self.verify_files(unit, |file| !manifest.blocks.contains_key(file))
    }

    /// A unit's page images, read through their block checksums; an
    /// error if its manifest has none (a store an older relive wrote).
    pub fn page_source(&self, unit: &str) -> Result<crate::pages::PageSource, StoreError> {
        let manifest = self.required_manifest(unit)?;
        let missing = manifest
            .files
            .keys()
            .find(|f| crate::pages::is_page_image(f) && !manifest.blocks.contains_key(*f));
        if let Some(file) = missing {
            return Err(StoreError::Manifest {
                path: self.manifest_path(unit),
                reason: format!("no block checksums for {file}"),
            });
        }
        let dir = self.root.join("images").join(unit);
        Ok(crate::pages::PageSource::new(unit, dir, manifest.blocks))
    }

    fn required_manifest(&self, unit: &str) -> Result<UnitManifest, StoreError> {
        self.unit_manifest(unit)?
            .ok_or_else(|| StoreError::Manifest {
                path: self.manifest_path(unit),
                reason: format!("no manifest for {unit}"),
            })
    }

    /// Checks that every file of the manifest is there, none is added, and
    /// those `read` names match their checksums.
    fn verify_files(&self, unit: &str, read: impl Fn(&str) -> bool) -> Result<(), StoreError> {
        let manifest = self.required_manifest(unit)?;
        let expected = &manifest.files;
        let dir = self.root.join("images").join(unit);
        let mut actual = BTreeMap::new();
        for file in files(&dir, "")? {
            let sum = match expected.get(&file) {
                Some(sum) if !read(&file) => sum.clone(),
                _ => checksum(manifest.version, &dir.join(&file))?,
            };
            actual.insert(file, sum);
        }
        for (file, sum) in expected {
            match actual.get(file) {
                None => {
                    return Err(StoreError::Corrupt {
                        unit: unit.into(),
                        file: file.clone(),
                        problem: "is missing".into(),
                    })
                }
                Some(s) if s != sum => {
                    return Err(StoreError::Corrupt {
                        unit: unit.into(),
                        file: file.clone(),
                        problem: "does not match its checksum".into(),
                    })
                }
                Some(_) => {}
            }
        }
        let added = |f: &&String| {
            !expected.contains_key(*f) && ![RESTORE_LOG, LAZY_PAGES_LOG].contains(&f.as_str())
        };
        if let Some(extra) = actual.keys().find(added) {
            return Err(StoreError::Corrupt {
                unit: unit.into(),
                file: extra.clone(),
                problem: "is not in the manifest".into(),
            });
        }
        Ok(())
    }

    /// Copies CRIU's logs of every unit to `dest` (UNIT-dump.log,
    /// UNIT-restore.log, UNIT-pre-N-pre-dump.log for each pre-dump round)
    /// before the store (and its images) is wiped: the logs hold no
    /// process memory and explain what happened.
    pub fn keep_logs(&self, dest: &Path) -> Result<(), StoreError> {
        let images = self.root.join("images");
        let Ok(units) = fs::read_dir(&images) else {
            return Ok(());
        };
        for unit in units.flatten() {
            let name = unit.file_name().to_string_lossy().into_owned();
            let mut logs = Vec::new();
            for log in ["dump.log", RESTORE_LOG, LAZY_PAGES_LOG] {
                logs.push((unit.path().join(log), format!("{name}-{log}")));
            }
            for round in fs::read_dir(unit.path()).into_iter().flatten().flatten() {
                let round_name = round.file_name().to_string_lossy().into_owned();
                if round_name.starts_with("pre-") {
                    let from = round.path().join("pre-dump.log");
                    logs.push((from, format!("{name}-{round_name}-pre-dump.log")));
                }
            }
            for (from, to) in logs.into_iter().filter(|(from, _)| from.is_file()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dest)
                    .map_err(io_err(dest))?;
                let to = dest.join(to);
                fs::copy(&from, &to).map_err(io_err(&to))?;
            }
        }
        Ok(())
    }

    /// Bytes of a unit's images, its pre-dumps included.
    pub fn unit_bytes(&self, unit: &str) -> u64 {
        let dir = self.root.join("images").join(unit);
        files(&dir, "")
            .unwrap_or_default()
            .iter()
            .filter_map(|f| fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// What CRIU's restore adds to a unit's image directory, which the check
/// running beside it must not take for damage: its log, and the cgroup
/// file systems it mounts there (`.criu.cgyard.XXXXXX`, under which the
/// write-only cgroup.kill cannot even be read).
const RESTORE_LOG: &str = "restore.log";
/// The log of a lazy restore's daemon (relive_restore::lazy), kept there.
pub const LAZY_PAGES_LOG: &str = "lazy-pages.log";
/// The images a lazy restore reads (relive_restore::lazy::view), made in
/// the unit's image directory in the new kernel: not images of the dump.
pub const LAZY_VIEW: &str = "lazy-view";
const CRIU_TEMPORARY: &str = ".criu.";

/// Regular files under `dir`, as paths relative to it (`pre-1/pages-1.img`).
/// Symbolic links (CRIU's `parent`) are not followed, nor are CRIU's
/// temporary directories or other file systems mounted below.
fn files(dir: &Path, prefix: &str) -> Result<Vec<String>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let device = fs::metadata(dir).map_err(io_err(dir))?.dev();
    let mut found = Vec::new();
    walk(dir, prefix, device, &mut found)?;
    Ok(found)
}

/// [`files`] below `dir`, which is on `device`.
fn walk(dir: &Path, prefix: &str, device: u64, found: &mut Vec<String>) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let kind = entry.file_type().map_err(io_err(dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let name = format!("{prefix}{file_name}");
        if kind.is_file() {
            found.push(name);
        } else if kind.is_dir() && !file_name.starts_with(CRIU_TEMPORARY) && file_name != LAZY_VIEW
        {
            let path = entry.path();
            // A mount point (a restore's cgroup yard): not the images.
            if fs::metadata(&path).map_err(io_err(&path))?.dev() == device {
                walk(&path, &format!("{name}/"), device, found)?;
            }
        }
    }
    Ok(())
}

/// A file's checksum for a manifest of `version`, lowercase hex. The
/// checksums guard against damage (a region the next kernel reused, a torn
/// write), not against an attacker, who would need root: XXH3-128 does
/// that several times faster than SHA-256, and every byte of a 1 GiB unit
/// is hashed again inside the stoppage, before its restore.
fn checksum(version: u32, path: &Path) -> Result<String, StoreError> {
    Ok(sums(version, path, false)?.0)
}

/// [`checksum`], and for a page image when `blocks` asks (format 2 from
/// relive 0.2 on: an added field older relives ignore) the checksums of
/// its blocks (`crate::pages`), from the same read of the file.
fn sums(version: u32, path: &Path, blocks: bool) -> Result<(String, Option<Vec<u64>>), StoreError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    if version == MANIFEST_VERSION_SHA256 {
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
        let hex = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Ok((hex, None));
    }
    let blocks = blocks && crate::pages::is_page_image(&path.to_string_lossy());
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut block_sums = Vec::new();
    let mut block = vec![0u8; crate::pages::BLOCK as usize];
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match io::Read::read(&mut file, &mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        hasher.update(&block[..filled]);
        if blocks && filled > 0 {
            block_sums.push(crate::pages::block_sum(&block[..filled]));
        }
        if filled < block.len() {
            let hex = format!("{:032x}", hasher.digest128());
            return Ok((hex, blocks.then_some(block_sums)));
        }
    }
}

/// A manifest as pretty JSON.
fn to_json<T: Serialize>(path: &Path, manifest: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Manifest {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("relive-store-{tag}-{}", std::process::id()))
    }

    #[test]
    fn state_and_images_round_trip_and_damage_is_found() {
        let store = Store::create(temp("round")).unwrap();
        assert_eq!(
            fs::metadata(&store.root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        store.write_state(b"{\"units\":{}}").unwrap();
        assert_eq!(store.read_state().unwrap(), b"{\"units\":{}}");
        let dir = store.unit_dir("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), vec![7u8; 4096]).unwrap();
        fs::write(dir.join("core-1.img"), b"core").unwrap();
        store.seal_unit("a.service").unwrap();
        store.verify_unit("a.service").unwrap();
        assert_eq!(store.unit_bytes("a.service"), 4100);

        let mut pages = fs::read(dir.join("pages-1.img")).unwrap();
        pages[100] ^= 1;
        fs::write(dir.join("pages-1.img"), pages).unwrap();
        let e = store.verify_unit("a.service").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.service: image file pages-1.img does not match its checksum"
        );
        fs::remove_file(dir.join("core-1.img")).unwrap();
        assert!(store
            .verify_unit("a.service")
            .unwrap_err()
            .to_string()
            .contains("core-1.img is missing"));
        store.wipe().unwrap();
        assert!(!store.root.exists());
    }

    #[test]
    fn a_pre_dump_chain_is_sealed_in_two_steps_and_checked_whole() {
        let store = Store::create(temp("chain")).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::create_dir(dir.join("pre-1")).unwrap();
        fs::write(dir.join("pre-1/pages-1.img"), vec![1u8; 8192]).unwrap();
        // Phase 1 ends: the chain is sealed.
        store.seal_unit("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), vec![2u8; 4096]).unwrap();
        std::os::unix::fs::symlink("pre-1", dir.join("parent")).unwrap();
        // The final dump: only its own files are new.
        store.seal_unit("a.service").unwrap();
        store.verify_unit("a.service").unwrap();
        assert_eq!(store.unit_bytes("a.service"), 8192 + 4096);
        fs::write(dir.join("pre-1/pages-1.img"), vec![9u8; 8192]).unwrap();
        assert_eq!(
            store.verify_unit("a.service").unwrap_err().to_string(),
            "a.service: image file pre-1/pages-1.img does not match its checksum"
        );
        store.wipe().unwrap();
    }

    #[test]
    fn what_a_restore_adds_beside_the_check_is_not_damage() {
        let store = Store::create(temp("restoring")).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), b"pages").unwrap();
        store.seal_unit("a.service").unwrap();
        // CRIU's restore, under way: its log and its cgroup yard.
        fs::write(dir.join("restore.log"), "restoring").unwrap();
        let yard = dir.join(".criu.cgyard.zaokX9/unified/user.slice");
        fs::create_dir_all(&yard).unwrap();
        fs::write(yard.join("cgroup.kill"), "").unwrap();
        store.verify_unit("a.service").unwrap();
        // Anything else added is still refused.
        fs::write(dir.join("core-9.img"), b"core").unwrap();
        let e = store.verify_unit("a.service").unwrap_err().to_string();
        assert!(e.contains("core-9.img is not in the manifest"), "{e}");
        store.wipe().unwrap();
    }

    #[test]
    fn a_manifest_of_another_format_is_refused() {
        let store = Store::create(temp("version")).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), b"pages").unwrap();
        store.seal_unit("a.service").unwrap();
        let path = store.root.join("manifests/a.service.json");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        fs::write(&path, text.replace("\"version\": 2", "\"version\": 3")).unwrap();
        let e = store.verify_unit("a.service").unwrap_err().to_string();
        assert!(
            e.contains("format version 3, this relive reads versions 1 and 2"),
            "{e}"
        );
        store.wipe().unwrap();
    }

    #[test]
    fn a_store_sealed_with_sha256_by_an_older_relive_is_still_checked() {
        let store = Store::create(temp("sha256")).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), b"pages").unwrap();
        // `printf pages | sha256sum`, as relive's version-1 manifests hold it.
        let manifest = r#"{"version": 1, "units": {"a.service": {"pages-1.img":
            "bfa062de040f55a15ce910800757061ec3d2fc31d6b7c72d9fa02b75a9ad1133"}}}"#;
        fs::write(store.root.join("manifest.json"), manifest).unwrap();
        store.verify_unit("a.service").unwrap();
        fs::write(dir.join("pages-1.img"), b"pageS").unwrap();
        let damaged = store.verify_unit("a.service").unwrap_err().to_string();
        assert!(damaged.contains("does not match its checksum"), "{damaged}");
        // Topped up by this relive (a warm snapshot), the unit keeps the
        // format its files were checksummed in, in a manifest of its own.
        fs::write(dir.join("pages-1.img"), b"pages").unwrap();
        fs::write(dir.join("pages-2.img"), b"pages").unwrap();
        store.seal_unit("a.service").unwrap();
        let text = fs::read_to_string(store.root.join("manifests/a.service.json")).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("bfa062de040f55a1"), "{text}");
        store.verify_unit("a.service").unwrap();
        // Forgotten, it leaves both manifests.
        store.forget_unit("a.service").unwrap();
        let legacy = fs::read_to_string(store.root.join("manifest.json")).unwrap();
        assert!(!legacy.contains("a.service"), "{legacy}");
        assert!(!store.root.join("manifests/a.service.json").exists());
        store.wipe().unwrap();
    }

    #[test]
    fn a_torn_state_file_is_refused() {
        let store = Store::create(temp("torn")).unwrap();
        store.write_state(b"state").unwrap();
        let path = store.root.join("state.bin");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let e = store.read_state().unwrap_err();
        assert!(
            e.to_string()
                .contains("payload is 4 bytes, the header says 5"),
            "{e}"
        );
        store.wipe().unwrap();
    }

    #[test]
    fn criu_logs_of_dumps_restores_and_pre_dumps_are_kept() {
        let root = std::env::temp_dir().join(format!("relive-store-logs-{}", std::process::id()));
        let store = Store::create(&root).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::create_dir_all(dir.join("pre-1")).unwrap();
        fs::write(dir.join("pre-1/pre-dump.log"), "round 1").unwrap();
        fs::write(dir.join("dump.log"), "dump").unwrap();
        fs::write(dir.join("pages-1.img"), "memory").unwrap();
        let dest = root.with_extension("logs");
        store.keep_logs(&dest).unwrap();
        let mut kept: Vec<String> = fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        assert_eq!(kept, ["a.service-dump.log", "a.service-pre-1-pre-dump.log"]);
        store.wipe().unwrap();
        fs::remove_dir_all(&dest).unwrap();
    }
}
