//! relive's page server: what CRIU's lazy-pages daemon asks for the pages
//! a restored process touches, and then for all the rest.
//!
//! The protocol (CRIU 3.17, criu/page-xfer.c, as `criu page-server
//! --lazy-pages` answers it): 24-byte requests `{cmd u32, nr_pages u32,
//! vaddr u64, dst_id u64}` in host byte order. A GET (cmd 7) names the
//! process (dst_id: its PID in the images) and the pages by their address
//! at the dump; the answer is the same header, with 1 to nr_pages pages,
//! followed by their bytes. The daemon matches answers to requests in
//! order, so they are answered one by one. It ends with CLOSE (0x1023),
//! answered with a 4-byte 0, and hangs up.
//!
//! Every page is read through the manifest's block checksums
//! ([`PageSource::read_checked`]): a page that does not match is never
//! sent, and the server stops with the reason, before the daemon learns
//! anything, so that its caller can end the processes first.

use super::view::{LazyMap, Piece};
use relive_criu::pagemap::{PAGE_SIZE, PE_PRESENT};
use relive_store::pages::PageSource;
use std::io::{Read, Write};
use std::time::Instant;

const PS_IOV_ADD_F: u32 = 6;
const PS_IOV_GET: u32 = 7;
const PS_IOV_CLOSE: u32 = 0x1023;
const PS_IOV_FORCE_CLOSE: u32 = 0x1024;
const PS_CMD_MASK: u32 = 0xffff;
const PS_CMD_BITS: u32 = 16;

/// One request or answer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iov {
    pub cmd: u32,
    pub nr_pages: u32,
    pub vaddr: u64,
    pub dst_id: u64,
}

impl Iov {
    pub const SIZE: usize = 24;

    pub fn to_bytes(self) -> [u8; Iov::SIZE] {
        let mut bytes = [0u8; Iov::SIZE];
        bytes[0..4].copy_from_slice(&self.cmd.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.nr_pages.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.vaddr.to_ne_bytes());
        bytes[16..24].copy_from_slice(&self.dst_id.to_ne_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8; Iov::SIZE]) -> Iov {
        let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let long = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Iov {
            cmd: word(0),
            nr_pages: word(4),
            vaddr: long(8),
            dst_id: long(16),
        }
    }

    pub fn get(pid: u32, vaddr: u64, nr_pages: u32) -> Iov {
        Iov {
            cmd: PS_IOV_GET,
            nr_pages,
            vaddr,
            dst_id: u64::from(pid),
        }
    }

    pub fn close() -> Iov {
        Iov {
            cmd: PS_IOV_CLOSE,
            nr_pages: 0,
            vaddr: 0,
            dst_id: 0,
        }
    }
}

/// Why the server stopped before the daemon was done.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A page failed its check, or could not be read.
    #[error("its page source failed: {0}")]
    Source(#[from] relive_store::StoreError),
    #[error(
        "the lazy-pages daemon asked for pages the images do not have: PID {pid} at {vaddr:#x}"
    )]
    NoSuchPages { pid: u64, vaddr: u64 },
    #[error("the lazy-pages daemon sent command {0:#x}")]
    Unexpected(u32),
    #[error("the connection to the lazy-pages daemon: {0}")]
    Connection(std::io::Error),
}

/// What was served.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Served {
    pub requests: u64,
    pub bytes: u64,
    /// The daemon said it was done (CLOSE), rather than only hanging up.
    pub closed: bool,
    /// When the last page went out, since the server started (ms).
    pub last_page_ms: f64,
}

/// Answers the daemon on `connection` until it hangs up; `after_each`
/// sees the figures after each answer (the lab's fault injection).
pub fn serve(
    connection: &mut (impl Read + Write),
    lazy: &LazyMap,
    source: &PageSource,
    after_each: &mut dyn FnMut(&Served),
) -> Result<Served, ServeError> {
    let started = Instant::now();
    let mut served = Served::default();
    let mut header = [0u8; Iov::SIZE];
    let mut data = Vec::new();
    loop {
        match connection.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(served),
            Err(e) => return Err(ServeError::Connection(e)),
        }
        let asked = Iov::from_bytes(&header);
        match asked.cmd & PS_CMD_MASK {
            PS_IOV_GET => {
                let piece =
                    find(lazy, asked.dst_id, asked.vaddr).ok_or(ServeError::NoSuchPages {
                        pid: asked.dst_id,
                        vaddr: asked.vaddr,
                    })?;
                let left = (piece.end - asked.vaddr) / PAGE_SIZE;
                let pages = u64::from(asked.nr_pages.max(1)).min(left);
                data.resize((pages * PAGE_SIZE) as usize, 0);
                source.read_checked(
                    &piece.file,
                    piece.offset + (asked.vaddr - piece.start),
                    &mut data,
                )?;
                let answer = Iov {
                    cmd: (PE_PRESENT << PS_CMD_BITS) | PS_IOV_ADD_F,
                    nr_pages: pages as u32,
                    ..asked
                };
                connection
                    .write_all(&answer.to_bytes())
                    .and_then(|()| connection.write_all(&data))
                    .map_err(ServeError::Connection)?;
                served.requests += 1;
                served.bytes += data.len() as u64;
                served.last_page_ms = started.elapsed().as_secs_f64() * 1000.0;
                after_each(&served);
            }
            PS_IOV_CLOSE | PS_IOV_FORCE_CLOSE => {
                connection
                    .write_all(&0i32.to_ne_bytes())
                    .map_err(ServeError::Connection)?;
                served.closed = true;
            }
            other => return Err(ServeError::Unexpected(other)),
        }
    }
}

/// The piece of `pid`'s lazy pages that holds `vaddr`. A process forked
/// after the restore is asked for by its parent's PID, as CRIU does.
fn find(lazy: &LazyMap, pid: u64, vaddr: u64) -> Option<&Piece> {
    let pieces = lazy.get(&u32::try_from(pid).ok()?)?;
    let at = pieces.partition_point(|p| p.end <= vaddr);
    pieces.get(at).filter(|p| p.start <= vaddr)
}
