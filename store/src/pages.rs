//! Page images checked block by block, for a lazy restore.
//!
//! A lazy restore lets a unit's processes run before their memory is
//! back: the pages are served as the processes touch them, and the rest
//! in the background. Its images can then not all be checked before they
//! run, as a whole-file checksum would need. So the manifest also keeps a
//! checksum of every [`BLOCK`] of each page image (`pages-N.img`), and
//! [`PageSource`] checks the blocks holding a page each time it reads
//! it: a page that does not match is never served. The rest of the images
//! (the processes, their files, their page maps) is still checked whole
//! before the processes run ([`crate::Store::verify_unit_but_pages`]).

use crate::store::StoreError;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The bytes each block checksum covers: small enough that serving one
/// faulting page hashes little, large enough that a 2 GiB unit's manifest
/// stays a few hundred KiB.
pub const BLOCK: u64 = 256 * 1024;

/// Whether `file` (a path relative to a unit's image directory) is one of
/// CRIU's page images, whose blocks the manifest checksums.
pub fn is_page_image(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.starts_with("pages-") && name.ends_with(".img")
}

/// A block's checksum (XXH3-64, as the whole files' XXH3-128: against
/// damage, not an attacker).
pub fn block_sum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// The checksums of `bytes` cut into blocks, the last one shorter.
pub fn block_sums(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks(BLOCK as usize).map(block_sum).collect()
}

/// A unit's page images, read only through their block checksums.
#[derive(Debug)]
pub struct PageSource {
    unit: String,
    dir: PathBuf,
    /// Per page image (relative path): its block checksums.
    sums: BTreeMap<String, Vec<u64>>,
    files: std::sync::Mutex<BTreeMap<String, std::sync::Arc<fs::File>>>,
}

impl PageSource {
    pub(crate) fn new(unit: &str, dir: PathBuf, sums: BTreeMap<String, Vec<u64>>) -> PageSource {
        PageSource {
            unit: unit.to_owned(),
            dir,
            sums,
            files: Default::default(),
        }
    }

    /// The unit's image directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `buf.len()` bytes at `offset` of the page image `file`
    /// (relative to the unit's image directory), having checked every
    /// block they lie in against the manifest. A block that does not
    /// match, a file the manifest does not list or a short file is an
    /// error, and nothing is read.
    pub fn read_checked(&self, file: &str, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let corrupt = |problem: String| StoreError::Corrupt {
            unit: self.unit.clone(),
            file: file.to_owned(),
            problem,
        };
        let sums = self
            .sums
            .get(file)
            .ok_or_else(|| corrupt("has no block checksums in the manifest".into()))?;
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset + buf.len() as u64;
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let asked = buf.len();
        let shorter = || {
            corrupt(format!(
                "is shorter than the {} bytes asked for at offset {offset}",
                asked
            ))
        };
        if last >= sums.len() as u64 {
            return Err(shorter());
        }
        let handle = self.open(file)?;
        let start = first * BLOCK;
        let mut blocks = vec![0u8; ((last + 1) * BLOCK - start) as usize];
        let read = read_up_to(&handle, &mut blocks, start).map_err(|source| StoreError::Io {
            path: self.dir.join(file),
            source,
        })?;
        blocks.truncate(read);
        if blocks.chunks(BLOCK as usize).count() as u64 != last - first + 1 {
            return Err(shorter());
        }
        for (index, block) in (first..=last).zip(blocks.chunks(BLOCK as usize)) {
            if block_sum(block) != sums[index as usize] {
                return Err(corrupt(format!(
                    "block {index} (bytes {}..{}) does not match its checksum",
                    index * BLOCK,
                    index * BLOCK + block.len() as u64
                )));
            }
        }
        let from = (offset - start) as usize;
        let wanted = from..from + buf.len();
        let got = blocks.get(wanted).ok_or_else(shorter)?;
        buf.copy_from_slice(got);
        Ok(())
    }

    /// Checks the blocks that `len` bytes at `offset` of `file` lie in,
    /// without keeping what was read: for the pages a restore reads from
    /// the images itself, before its processes run.
    pub fn check(&self, file: &str, offset: u64, len: u64) -> Result<(), StoreError> {
        let mut done = 0u64;
        while done < len {
            let chunk = (len - done).min(16 * BLOCK);
            let mut buf = vec![0u8; chunk as usize];
            self.read_checked(file, offset + done, &mut buf)?;
            done += chunk;
        }
        Ok(())
    }

    fn open(&self, file: &str) -> Result<std::sync::Arc<fs::File>, StoreError> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = files.get(file) {
            return Ok(handle.clone());
        }
        let path = self.dir.join(file);
        let handle = fs::File::open(&path)
            .map(std::sync::Arc::new)
            .map_err(|source| StoreError::Io { path, source })?;
        files.insert(file.to_owned(), handle.clone());
        Ok(handle)
    }
}

/// Reads into `buf` from `offset` until it is full or the file ends;
/// returns the bytes read.
fn read_up_to(file: &fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn sealed(tag: &str, pages: &[u8]) -> Store {
        let root = std::env::temp_dir().join(format!("relive-pages-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = Store::create(root).unwrap();
        let dir = store.unit_dir("a.service").unwrap();
        fs::create_dir_all(dir.join("pre-1")).unwrap();
        fs::write(dir.join("pre-1/pages-1.img"), pattern(4096)).unwrap();
        fs::write(dir.join("pages-2.img"), pages).unwrap();
        fs::write(dir.join("pagemap-7.img"), b"map").unwrap();
        store.seal_unit("a.service").unwrap();
        store
    }

    #[test]
    fn pages_are_read_across_blocks_and_only_if_their_blocks_match() {
        let len = (3 * BLOCK + 5000) as usize;
        let store = sealed("read", &pattern(len));
        let source = store.page_source("a.service").unwrap();
        let mut buf = vec![0u8; 3 * 4096];
        let offset = BLOCK - 4096;
        source
            .read_checked("pages-2.img", offset, &mut buf)
            .unwrap();
        assert_eq!(
            buf,
            pattern(len)[offset as usize..offset as usize + buf.len()]
        );
        let mut tail = vec![0u8; 5000];
        source
            .read_checked("pages-2.img", 3 * BLOCK, &mut tail)
            .unwrap();
        let mut page = vec![0u8; 4096];
        source
            .read_checked("pre-1/pages-1.img", 0, &mut page)
            .unwrap();
        assert_eq!(page, pattern(4096));

        // One bit flipped in the third block: its pages are refused, the
        // others still served, and the rest of the images still pass.
        let path = source.dir().join("pages-2.img");
        let mut damaged = fs::read(&path).unwrap();
        damaged[(2 * BLOCK + 10) as usize] ^= 1;
        fs::write(&path, damaged).unwrap();
        let e = source
            .read_checked("pages-2.img", 2 * BLOCK + 4096, &mut page)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.service: image file pages-2.img block 2 (bytes 524288..786432) does not match its checksum"
        );
        source
            .read_checked("pages-2.img", BLOCK, &mut page)
            .unwrap();
        store.verify_unit_but_pages("a.service").unwrap();
        assert!(store.verify_unit("a.service").is_err());
        assert!(source.check("pages-2.img", 0, 3 * BLOCK).is_err());
        source.check("pages-2.img", 0, 2 * BLOCK).unwrap();
    }

    #[test]
    fn a_shortened_page_image_or_an_unlisted_one_is_refused() {
        let store = sealed("short", &pattern((2 * BLOCK) as usize));
        let source = store.page_source("a.service").unwrap();
        let path = source.dir().join("pages-2.img");
        fs::write(&path, pattern(BLOCK as usize)).unwrap();
        let mut page = vec![0u8; 4096];
        let e = source
            .read_checked("pages-2.img", BLOCK + 4096, &mut page)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is shorter than the 4096 bytes asked for"),
            "{e}"
        );
        let e = source
            .read_checked("pages-9.img", 0, &mut page)
            .unwrap_err();
        assert!(e.to_string().contains("no block checksums"), "{e}");
        // Still there: the check of the rest does not read it, but finds
        // a file missing.
        store.verify_unit_but_pages("a.service").unwrap();
        fs::remove_file(&path).unwrap();
        let e = store.verify_unit_but_pages("a.service").unwrap_err();
        assert!(e.to_string().contains("pages-2.img is missing"), "{e}");
    }

    #[test]
    fn a_manifest_without_block_checksums_has_no_page_source() {
        let store = sealed("old", &pattern(4096));
        let path = store.root.join("manifests/a.service.json");
        let mut manifest: crate::store::UnitManifest =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        manifest.blocks.clear();
        fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let e = store.page_source("a.service").unwrap_err();
        assert!(
            e.to_string().contains("no block checksums for pages-2.img"),
            "{e}"
        );
    }

    #[test]
    fn only_criu_page_images_get_block_checksums() {
        assert!(is_page_image("pages-1.img"));
        assert!(is_page_image("pre-2/pages-13.img"));
        assert!(!is_page_image("pagemap-7.img"));
        assert!(!is_page_image("pre-2/core-7.img"));
    }
}
