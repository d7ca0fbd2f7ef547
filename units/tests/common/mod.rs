//! A throw-away directory tree for loader tests (no tempfile crate needed).

#![allow(dead_code)]

use relive_units::{LoadError, Loader, SpecifierContext, Unit};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Tree {
    pub root: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Tree {
    pub fn new() -> Tree {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("relive-units-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create temp dir");
        Tree { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `rel` (creating parent dirs).
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        p
    }

    /// Creates the symlink `rel` pointing at `target` (as given).
    pub fn link(&self, target: &str, rel: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
    }

    /// A loader over the given dirs of this tree, with fixed host facts.
    pub fn loader(&self, dirs: &[&str]) -> Loader {
        let ctx = SpecifierContext {
            hostname: "host.example".into(),
            machine_id: "m1d".into(),
            ..SpecifierContext::default()
        };
        Loader::with_context(dirs.iter().map(|d| self.path(d)), ctx)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn p(s: &str) -> &Path {
    Path::new(s)
}

/// Loads `text` as lib/a.service.
pub fn one(text: &str) -> Result<Unit, LoadError> {
    let t = Tree::new();
    t.write("lib/a.service", text);
    t.loader(&["lib"]).load("a.service")
}

/// The line and message of the Invalid error loading `text` gives.
pub fn invalid(text: &str) -> (usize, String) {
    match one(text) {
        Err(LoadError::Invalid { location, message }) => (location.line, message),
        other => panic!("expected Invalid, got {other:?}"),
    }
}
