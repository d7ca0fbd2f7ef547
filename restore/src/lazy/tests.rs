//! A pre-dump chain made by hand: the view left to the page server, and
//! the page server answering as CRIU's lazy-pages daemon asks.

use super::server::{serve, Iov, ServeError};
use super::view;
use relive_criu::pagemap::{Pagemap, Run, PAGE_SIZE, PE_LAZY, PE_PARENT, PE_PRESENT};
use relive_store::Store;
use std::io::{Read, Write};
use std::path::Path;

fn page(tag: u8) -> Vec<u8> {
    vec![tag; PAGE_SIZE as usize]
}

fn run(vaddr: u64, nr_pages: u32, flags: u32) -> Run {
    Run {
        vaddr,
        nr_pages,
        flags,
    }
}

/// pre-1 holds four lazy pages at 0x10000 (tags 1-4) and a stack page at
/// 0x20000 (tag 9); the final dump keeps the first two and the stack in
/// the parent and has the last two again (tags 5-6, dirtied since).
fn chain(tag: &str) -> Store {
    let root = std::env::temp_dir().join(format!("relive-lazy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::create(root).unwrap();
    let unit = store.unit_dir("big.service").unwrap();
    let pre = unit.join("pre-1");
    std::fs::create_dir_all(&pre).unwrap();
    let pre_map = Pagemap {
        pages_id: 1,
        runs: vec![
            run(0x10000, 4, PE_PRESENT | PE_LAZY),
            run(0x20000, 1, PE_PRESENT),
        ],
    };
    std::fs::write(pre.join("pagemap-10.img"), pre_map.encode()).unwrap();
    let pre_pages: Vec<u8> = [1, 2, 3, 4, 9].iter().flat_map(|&t| page(t)).collect();
    std::fs::write(pre.join("pages-1.img"), pre_pages).unwrap();
    let top = Pagemap {
        pages_id: 2,
        runs: vec![
            run(0x10000, 2, PE_PARENT),
            run(0x12000, 2, PE_PRESENT | PE_LAZY),
            run(0x20000, 1, PE_PARENT),
        ],
    };
    std::fs::write(unit.join("pagemap-10.img"), top.encode()).unwrap();
    let top_pages: Vec<u8> = [5, 6].iter().flat_map(|&t| page(t)).collect();
    std::fs::write(unit.join("pages-2.img"), top_pages).unwrap();
    std::fs::write(unit.join("core-10.img"), b"core").unwrap();
    std::fs::write(unit.join("pagemap-shmem-77.img"), b"shared").unwrap();
    std::os::unix::fs::symlink("pre-1", unit.join("parent")).unwrap();
    store.seal_unit("big.service").unwrap();
    store
}

fn view_dir(store: &Store) -> std::path::PathBuf {
    let unit = store.unit_dir("big.service").unwrap();
    unit.join(relive_store::store::LAZY_VIEW)
}

#[test]
fn the_view_leaves_every_lazy_page_to_the_server_wherever_it_lies() {
    let store = chain("view");
    let source = store.page_source("big.service").unwrap();
    let made = view::make(&source, &view_dir(&store)).unwrap();
    let map = Pagemap::read(&made.dir.join("pagemap-10.img")).unwrap();
    assert_eq!(
        map.runs,
        [run(0x10000, 4, PE_LAZY), run(0x20000, 1, PE_PRESENT)],
        "the parent's and the final dump's lazy runs as one, the stack eager"
    );
    // The view's own page image: only the eager stack page, from pre-1.
    let own = std::fs::read(made.dir.join(format!("pages-{}.img", map.pages_id))).unwrap();
    assert_eq!(own, page(9));
    assert_eq!(
        (made.lazy_bytes, made.eager_bytes),
        (4 * PAGE_SIZE, PAGE_SIZE)
    );
    let pieces: Vec<(u64, u64, &str, u64)> = made.lazy[&10]
        .iter()
        .map(|p| (p.start, p.end, p.file.as_str(), p.offset))
        .collect();
    assert_eq!(
        pieces,
        [
            (0x10000, 0x12000, "pre-1/pages-1.img", 0),
            (0x12000, 0x14000, "pages-2.img", 0)
        ]
    );
    // The rest are relative links to the store's images (a restored
    // process follows `parent` from its own mount namespace); shared
    // memory's page map is not a process's.
    let link = |name: &str| std::fs::read_link(made.dir.join(name)).unwrap();
    assert_eq!(link("core-10.img"), Path::new("../core-10.img"));
    assert_eq!(
        link("pagemap-shmem-77.img"),
        Path::new("../pagemap-shmem-77.img")
    );
    assert_eq!(link("parent"), Path::new("../pre-1"));
    let parent = std::fs::canonicalize(made.dir.join("parent")).unwrap();
    assert_eq!(
        parent,
        std::fs::canonicalize(source.dir().join("pre-1")).unwrap()
    );
    assert!(!made.lazy.contains_key(&77));
    // The store's checks pass over the view.
    store.verify_unit("big.service").unwrap();
}

#[test]
fn a_chain_that_lacks_pages_has_no_view() {
    let store = chain("gap");
    let unit = store.unit_dir("big.service").unwrap();
    let pre_map = Pagemap {
        pages_id: 1,
        runs: vec![
            run(0x10000, 1, PE_PRESENT | PE_LAZY),
            run(0x20000, 1, PE_PRESENT),
        ],
    };
    std::fs::write(unit.join("pre-1/pagemap-10.img"), pre_map.encode()).unwrap();
    store.seal_unit("big.service").unwrap();
    let source = store.page_source("big.service").unwrap();
    let e = view::make(&source, &view_dir(&store)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pages 0x11000..0x12000 are missing from pre-1"
    );
}

/// Sends `request`, reads the answer's header and pages.
fn ask(daemon: &mut std::os::unix::net::UnixStream, request: Iov) -> (Iov, Vec<u8>) {
    daemon.write_all(&request.to_bytes()).unwrap();
    let mut header = [0u8; Iov::SIZE];
    daemon.read_exact(&mut header).unwrap();
    let answer = Iov::from_bytes(&header);
    let mut data = vec![0u8; (u64::from(answer.nr_pages) * PAGE_SIZE) as usize];
    daemon.read_exact(&mut data).unwrap();
    (answer, data)
}

fn serving(
    store: &Store,
) -> (
    std::os::unix::net::UnixStream,
    std::thread::JoinHandle<Result<super::server::Served, ServeError>>,
) {
    let source = store.page_source("big.service").unwrap();
    let made = view::make(&source, &view_dir(store)).unwrap();
    let (mut ours, daemon) = std::os::unix::net::UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || serve(&mut ours, &made.lazy, &source, &mut |_| {}));
    (daemon, server)
}

#[test]
fn the_server_answers_in_order_with_at_most_what_was_asked() {
    let store = chain("serve");
    let (mut daemon, server) = serving(&store);
    // A fault: one page, from the parent.
    let (answer, data) = ask(&mut daemon, Iov::get(10, 0x11000, 1));
    assert_eq!(
        (answer.nr_pages, answer.vaddr, answer.dst_id),
        (1, 0x11000, 10)
    );
    assert_eq!(data, page(2));
    // The background asks for more than the piece holds: it gets the
    // piece's end, and the rest is asked again.
    let (answer, data) = ask(&mut daemon, Iov::get(10, 0x10000, 16));
    assert_eq!(answer.nr_pages, 2);
    assert_eq!(data, [page(1), page(2)].concat());
    let (answer, data) = ask(&mut daemon, Iov::get(10, 0x12000, 16));
    assert_eq!(answer.nr_pages, 2);
    assert_eq!(data, [page(5), page(6)].concat());
    daemon.write_all(&Iov::close().to_bytes()).unwrap();
    let mut status = [0u8; 4];
    daemon.read_exact(&mut status).unwrap();
    assert_eq!(i32::from_ne_bytes(status), 0);
    drop(daemon);
    let served = server.join().unwrap().unwrap();
    assert!(served.closed);
    assert_eq!((served.requests, served.bytes), (3, 5 * PAGE_SIZE));
}

#[test]
fn a_damaged_page_is_never_served() {
    let store = chain("damaged");
    let (mut daemon, server) = serving(&store);
    let (_, data) = ask(&mut daemon, Iov::get(10, 0x12000, 1));
    assert_eq!(data, page(5));
    // The store is damaged while the unit runs.
    let pages = store
        .unit_dir("big.service")
        .unwrap()
        .join("pre-1/pages-1.img");
    let mut bytes = std::fs::read(&pages).unwrap();
    bytes[PAGE_SIZE as usize + 7] ^= 0x40;
    std::fs::write(&pages, bytes).unwrap();
    daemon
        .write_all(&Iov::get(10, 0x10000, 1).to_bytes())
        .unwrap();
    let e = server.join().unwrap().unwrap_err();
    assert!(
        e.to_string().starts_with(
            "its page source failed: big.service: image file pre-1/pages-1.img block 0"
        ),
        "{e}"
    );
    // Not a byte of it was sent: the server's end is gone, nothing came.
    let mut rest = Vec::new();
    daemon.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn pages_the_images_do_not_have_stop_the_server() {
    let store = chain("unknown");
    let (mut daemon, server) = serving(&store);
    daemon
        .write_all(&Iov::get(11, 0x10000, 1).to_bytes())
        .unwrap();
    let e = server.join().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "the lazy-pages daemon asked for pages the images do not have: PID 11 at 0x10000"
    );
}

#[test]
fn the_view_s_runs_stay_short_enough_for_criu_s_daemon() {
    let store = chain("long");
    let unit = store.unit_dir("big.service").unwrap();
    // 2.3 GiB of lazy pages in one run of the parent, and the final
    // dump's lazy pages right after it: one piece, cut into many runs.
    let huge = 600_000u32;
    let pre_map = Pagemap {
        pages_id: 1,
        runs: vec![run(0x1_0000_0000, huge, PE_PRESENT | PE_LAZY)],
    };
    std::fs::write(unit.join("pre-1/pagemap-10.img"), pre_map.encode()).unwrap();
    let end = 0x1_0000_0000 + u64::from(huge) * PAGE_SIZE;
    let top = Pagemap {
        pages_id: 2,
        runs: vec![
            run(0x1_0000_0000, huge, PE_PARENT),
            run(end, 2, PE_PRESENT | PE_LAZY),
        ],
    };
    std::fs::write(unit.join("pagemap-10.img"), top.encode()).unwrap();
    store.seal_unit("big.service").unwrap();
    let source = store.page_source("big.service").unwrap();
    let made = view::make(&source, &view_dir(&store)).unwrap();
    let map = Pagemap::read(&made.dir.join("pagemap-10.img")).unwrap();
    assert!(map
        .runs
        .iter()
        .all(|r| u64::from(r.nr_pages) <= view::MAX_RUN_PAGES));
    assert!(map.runs.windows(2).all(|w| w[0].end() == w[1].vaddr));
    let pages: u64 = map.runs.iter().map(|r| u64::from(r.nr_pages)).sum();
    assert_eq!(pages, u64::from(huge) + 2);
    assert_eq!(map.runs.len() as u64, pages.div_ceil(view::MAX_RUN_PAGES));
    assert_eq!(made.lazy_bytes, pages * PAGE_SIZE);
}
