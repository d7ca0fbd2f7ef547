//! Everything that drives a VM: the host's prerequisites, the binaries and
//! the image that go into it, QEMU, booting, ssh, stopping.
//!
//! - [`prereq`], [`apt`]: the host tools, Debian's kernel packages.
//! - [`distro`]: the Debian release an image is built from; [`newer_criu`]:
//!   forky's CRIU for a trixie guest.
//! - [`build`]: relive's binaries and the workloads, with cargo.
//! - [`image`]: the mkosi tree and the ext4 disk; [`disk`]: a writable copy.
//! - [`accel`], [`qemu`], [`boot`]: KVM or TCG, QEMU's guard, readiness.
//! - [`guest`]: the running guest, as later invocations find it.
//! - [`ssh`], [`shell`]: commands and an interactive session in the guest.
//! - [`stop`]: the guest's own poweroff, or QEMU killed.
//! - [`paths`], [`signals`]: where things live, Ctrl-C.

pub mod accel;
pub mod apt;
pub mod boot;
pub mod build;
pub mod disk;
pub mod distro;
pub mod guest;
pub mod image;
pub mod newer_criu;
pub mod paths;
pub mod prereq;
pub mod qemu;
pub mod shell;
pub mod signals;
pub mod ssh;
pub mod stop;

use anyhow::Result;
use image::Image;
use paths::Paths;
use signals::Interrupt;

/// The host tools and fresh binaries: what building the image needs.
pub fn prepare_host(paths: &Paths) -> Result<()> {
    prereq::ensure_prerequisites()?;
    build::build_binaries(paths)?;
    std::fs::create_dir_all(&paths.out)?;
    Ok(())
}

/// What every verb that boots a guest needs first: the host prepared,
/// the image built or reused, and the interrupt flag.
pub fn prepare(paths: &Paths) -> Result<(Image, Interrupt)> {
    prepare_host(paths)?;
    let image = image::build_or_reuse(paths, false)?;
    Ok((image, Interrupt::install()?))
}
