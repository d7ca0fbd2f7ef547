//! The images a lazy restore reads: a directory inside the unit's image
//! directory (`relive_store::store::LAZY_VIEW`, which the store's checks
//! pass over) whose page maps leave every lazy page to the page server,
//! wherever in the pre-dump chain it lies.
//!
//! CRIU restores lazily only the runs its top page map marks lazy; a
//! page the final dump found unchanged since a pre-dump is marked "in the
//! parent" and CRIU reads it eagerly. After two-phase pre-dumps that is
//! nearly all of a service's memory, so relive flattens the chain: each
//! process's runs are followed down the parents, and written again as
//! lazy without data (the page server finds them in the store), or, for
//! the few pages a dump kept eager (the threads' stack pages), as
//! present, their data copied into the view's own page image, read
//! through the manifest's block checksums. Every other image is a link to
//! the store's, which the check reads, relative: a restored process
//! follows the `parent` link itself, from inside its own mount namespace,
//! where the store's absolute path may not be there (a sandbox).

use relive_criu::pagemap::{Pagemap, Run, PAGE_SIZE, PE_LAZY, PE_PARENT, PE_PRESENT};
use relive_store::pages::PageSource;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a unit's images cannot be restored lazily (it is then restored
/// eagerly from the store's images).
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pagemap(#[from] relive_criu::pagemap::PagemapError),
    #[error("{0}")]
    Chain(String),
    #[error(transparent)]
    Store(#[from] relive_store::StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ViewError + '_ {
    move |source| ViewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lazy pages of one process: from `start` to `end`, at `offset` of the
/// page image `file` (relative to the unit's image directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    pub file: String,
    pub offset: u64,
    pub lazy: bool,
}

/// Where the page server finds each process's lazy pages: by PID, its
/// pieces in address order.
pub type LazyMap = BTreeMap<u32, Vec<Piece>>;

/// A view made: its directory, the lazy pages, and what it copied.
#[derive(Debug)]
pub struct View {
    pub dir: PathBuf,
    pub lazy: LazyMap,
    /// Bytes left to the page server.
    pub lazy_bytes: u64,
    /// Bytes copied into the view (restored eagerly).
    pub eager_bytes: u64,
}

/// One image directory of the chain: the final dump's (`""`) or a
/// pre-dump's (`pre-N`), relative to the unit's image directory.
struct Layer {
    rel: String,
}

/// The chain from the final dump down through its `parent` links, each
/// relative to `unit_dir` (which they must not leave).
fn chain(unit_dir: &Path) -> Result<Vec<Layer>, ViewError> {
    let mut layers = vec![Layer { rel: String::new() }];
    loop {
        let here = unit_dir.join(&layers.last().expect("one layer").rel);
        let link = here.join("parent");
        let target = match std::fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(layers),
            Err(e) => return Err(io(&link)(e)),
        };
        let rel = inside(&Path::new(&layers.last().expect("one layer").rel).join(target))
            .ok_or_else(|| {
                ViewError::Chain(format!("{}: leaves the unit's images", link.display()))
            })?;
        if layers.iter().any(|l| l.rel == rel) || layers.len() > 64 {
            return Err(ViewError::Chain(format!("{}: a loop", link.display())));
        }
        layers.push(Layer { rel });
    }
}

/// `path` (relative) with `.` and `..` resolved, if it stays inside.
fn inside(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// A process's page map in one layer: its page image (relative to the
/// unit's image directory) and its runs with their offsets there.
struct LayerMap {
    pages: String,
    runs: Vec<(Run, Option<u64>)>,
}

/// The page maps of `pid` down the chain (None where a layer has none:
/// a process forked after that pre-dump).
fn maps_of(
    unit_dir: &Path,
    layers: &[Layer],
    pid: u32,
) -> Result<Vec<Option<LayerMap>>, ViewError> {
    layers
        .iter()
        .map(|layer| {
            let path = unit_dir.join(join(&layer.rel, &format!("pagemap-{pid}.img")));
            if !path.exists() {
                return Ok(None);
            }
            let map = Pagemap::read(&path)?;
            Ok(Some(LayerMap {
                pages: join(&layer.rel, &format!("pages-{}.img", map.pages_id)),
                runs: map.with_offsets(),
            }))
        })
        .collect()
}

/// The pieces of `start..end` in layer `at` and below.
fn resolve(
    layers: &[Layer],
    maps: &[Option<LayerMap>],
    at: usize,
    start: u64,
    end: u64,
    out: &mut Vec<Piece>,
) -> Result<(), ViewError> {
    let Some(map) = maps.get(at).and_then(Option::as_ref) else {
        return Err(ViewError::Chain(format!(
            "pages {start:#x}..{end:#x} are in a parent that has no page map for the process"
        )));
    };
    let mut covered = start;
    let first = map.runs.partition_point(|(run, _)| run.end() <= start);
    for &(run, offset) in &map.runs[first..] {
        let (from, to) = (run.vaddr.max(start), run.end().min(end));
        if from >= to || from != covered {
            break;
        }
        if run.is(PE_PARENT) {
            resolve(layers, maps, at + 1, from, to, out)?;
        } else if let Some(offset) = offset {
            out.push(Piece {
                start: from,
                end: to,
                file: map.pages.clone(),
                offset: offset + (from - run.vaddr),
                lazy: run.is(PE_LAZY),
            });
        } else {
            return Err(ViewError::Chain(format!(
                "pages {from:#x}..{to:#x} are neither in the images nor in a parent"
            )));
        }
        covered = to;
    }
    if covered != end {
        return Err(ViewError::Chain(format!(
            "pages {covered:#x}..{end:#x} are missing from {}",
            if layers[at].rel.is_empty() {
                "the final dump"
            } else {
                &layers[at].rel
            }
        )));
    }
    Ok(())
}

/// A process's runs, followed down the chain.
fn flatten(unit_dir: &Path, layers: &[Layer], pid: u32) -> Result<Vec<Piece>, ViewError> {
    let maps = maps_of(unit_dir, layers, pid)?;
    let top = maps[0]
        .as_ref()
        .expect("the final dump has the process's page map");
    let mut pieces = Vec::new();
    for (run, _) in &top.runs {
        resolve(layers, &maps, 0, run.vaddr, run.end(), &mut pieces)?;
    }
    Ok(pieces)
}

/// The entries directly in `dir`: name and type, read once.
fn listing(dir: &Path) -> Result<Vec<(String, std::fs::FileType)>, ViewError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let kind = entry.file_type().map_err(io(dir))?;
        entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
    }
    Ok(entries)
}

/// N of an image named `{prefix}N.img`.
fn image_number(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_suffix(".img")?
        .parse()
        .ok()
}

/// The processes whose page maps the final dump holds.
fn pids(entries: &[(String, std::fs::FileType)]) -> Vec<u32> {
    let mut pids: Vec<u32> = entries
        .iter()
        .filter_map(|(name, _)| image_number(name, "pagemap-"))
        .collect();
    pids.sort_unstable();
    pids
}

/// The largest page image id in the final dump, so that the view's own
/// do not take one that a link names.
fn largest_pages_id(entries: &[(String, std::fs::FileType)]) -> u32 {
    entries
        .iter()
        .filter_map(|(name, _)| image_number(name, "pages-"))
        .max()
        .unwrap_or(0)
}

/// The most pages in one run of the view's page maps. CRIU 3.17's
/// lazy-pages daemon keeps a run's length in an int and allocates a
/// buffer as long as the longest run: a run of 2 GiB made it fail
/// (criu/uffd.c, collect_iovs). It asks for 4 MiB at most at a time, and
/// its pace does not restart at a run's start, so shorter runs cost
/// nothing.
pub const MAX_RUN_PAGES: u64 = (64 << 20) / PAGE_SIZE;

/// Appends `pages` pages at `vaddr` to `runs`: merged with the last run
/// when they follow it with the same flags, cut at [`MAX_RUN_PAGES`].
fn add_run(runs: &mut Vec<Run>, mut vaddr: u64, mut pages: u64, flags: u32) {
    while pages > 0 {
        let taken = match runs.last_mut() {
            Some(last)
                if last.end() == vaddr
                    && last.flags == flags
                    && u64::from(last.nr_pages) < MAX_RUN_PAGES =>
            {
                let taken = (MAX_RUN_PAGES - u64::from(last.nr_pages)).min(pages);
                last.nr_pages += taken as u32;
                taken
            }
            _ => {
                let taken = pages.min(MAX_RUN_PAGES);
                runs.push(Run {
                    vaddr,
                    nr_pages: taken as u32,
                    flags,
                });
                taken
            }
        };
        vaddr += taken * PAGE_SIZE;
        pages -= taken;
    }
}

/// Makes the view of the unit whose page images `source` reads, in
/// `dir` (made afresh, root-only).
pub fn make(source: &PageSource, dir: &Path) -> Result<View, ViewError> {
    let unit_dir = source.dir();
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let layers = chain(unit_dir)?;
    let entries = listing(unit_dir)?;
    let pids = pids(&entries);
    let mut view = View {
        dir: dir.to_owned(),
        lazy: LazyMap::new(),
        lazy_bytes: 0,
        eager_bytes: 0,
    };
    let first_id = largest_pages_id(&entries) + 1;
    for (next_id, &pid) in (first_id..).zip(&pids) {
        let pieces = flatten(unit_dir, &layers, pid)?;
        let pages_path = dir.join(format!("pages-{next_id}.img"));
        let mut pages = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&pages_path)
            .map_err(io(&pages_path))?;
        let mut runs: Vec<Run> = Vec::new();
        for piece in &pieces {
            let len = piece.end - piece.start;
            let flags = if piece.lazy {
                view.lazy_bytes += len;
                PE_LAZY
            } else {
                let mut data = vec![0u8; len as usize];
                source.read_checked(&piece.file, piece.offset, &mut data)?;
                pages.write_all(&data).map_err(io(&pages_path))?;
                view.eager_bytes += len;
                PE_PRESENT
            };
            add_run(&mut runs, piece.start, len / PAGE_SIZE, flags);
        }
        let map = Pagemap {
            pages_id: next_id,
            runs,
        };
        let map_path = dir.join(format!("pagemap-{pid}.img"));
        std::fs::write(&map_path, map.encode()).map_err(io(&map_path))?;
        view.lazy
            .insert(pid, pieces.into_iter().filter(|p| p.lazy).collect());
    }
    link_the_rest(unit_dir, &entries, dir, &pids)?;
    Ok(view)
}

/// Links every other image of the final dump, and its parent, into the
/// view (`dir`, directly inside `unit_dir`): CRIU reads them there (the
/// parent for shared memory's pages).
fn link_the_rest(
    unit_dir: &Path,
    entries: &[(String, std::fs::FileType)],
    dir: &Path,
    pids: &[u32],
) -> Result<(), ViewError> {
    let own: Vec<String> = pids
        .iter()
        .map(|pid| format!("pagemap-{pid}.img"))
        .collect();
    for (name, kind) in entries {
        let up = Path::new("..");
        let target = if name == "parent" && kind.is_symlink() {
            let link = unit_dir.join(name);
            // Relative to the unit's directory, so one level more.
            up.join(std::fs::read_link(&link).map_err(io(&link))?)
        } else if kind.is_file() && name.ends_with(".img") && !own.contains(name) {
            up.join(name)
        } else {
            continue;
        };
        let link = dir.join(name);
        std::os::unix::fs::symlink(&target, &link).map_err(io(&link))?;
    }
    Ok(())
}
