//! Size of a CRIU images directory, for reports.

use std::fs;
use std::io;
use std::path::Path;

/// Bytes in the image files (`*.img`) directly inside `dir`.
///
/// Only regular files count: the `parent` link of an incremental dump points
/// at the previous directory, whose images are counted there, and the log
/// file is not an image. Apparent size (st_size): page images are not sparse.
pub fn images_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // DirEntry::metadata does not follow symlinks.
        let meta = entry.metadata()?;
        let is_image = entry.file_name().as_encoded_bytes().ends_with(b".img");
        if meta.is_file() && is_image {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_image_files_only() {
        let dir = std::env::temp_dir().join(format!("relive-images-size-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("pages-1.img"), vec![0u8; 4096]).unwrap();
        fs::write(dir.join("core-42.img"), b"abc").unwrap();
        fs::write(dir.join("dump.log"), b"not an image").unwrap();
        fs::write(dir.join("sub/pages-2.img"), vec![0u8; 100]).unwrap();
        std::os::unix::fs::symlink(dir.join("pages-1.img"), dir.join("link.img")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("parent")).unwrap();
        let got = images_size(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.unwrap(), 4099);
    }

    #[test]
    fn missing_dir_is_an_error() {
        assert!(images_size(Path::new("/nonexistent/relive-images")).is_err());
    }
}
