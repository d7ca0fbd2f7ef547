//! Where the lab keeps things. Everything it generates lives under
//! `lab/out/` (gitignored): bookworm's image right there, another
//! release's in `lab/out/NAME/` (each stays cached while the other is
//! built); logs, the ssh key and the running guest's state are shared.

use crate::vm::distro::Distro;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root (holds `mkosi/`, `lab/`, `target/`).
    pub root: PathBuf,
    /// `lab/out/`.
    pub out: PathBuf,
    /// The running guest's state and disk copies: `lab/out/run/`, or one
    /// directory per guest when several run at once ([`Paths::for_guest`]).
    pub run: PathBuf,
    /// The release whose image the paths below name (`--distro`).
    pub distro: Distro,
}

impl Paths {
    /// The workspace this binary was built from (or `$RELIVE_ROOT`).
    pub fn discover() -> Paths {
        let root = std::env::var_os("RELIVE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
        let root = root.canonicalize().unwrap_or(root);
        let out = root.join("lab/out");
        let run = out.join("run");
        Paths {
            root,
            out,
            run,
            distro: Distro::default(),
        }
    }

    /// The same lab with `distro`'s image.
    pub fn with_distro(self, distro: Distro) -> Paths {
        Paths { distro, ..self }
    }

    /// The same lab for one of several guests running at once (`fleet`):
    /// its own state and disk copies, in `lab/out/run-NAME/`.
    pub fn for_guest(&self, name: &str) -> Paths {
        Paths {
            run: self.out.join(format!("run-{name}")),
            ..self.clone()
        }
    }

    /// The committed mkosi configuration (shared by the releases).
    pub fn mkosi_config(&self) -> PathBuf {
        self.root.join("mkosi")
    }
    /// What is built for the selected release: `lab/out/` for bookworm,
    /// `lab/out/NAME/` for another.
    pub fn image_out(&self) -> PathBuf {
        match self.distro {
            Distro::Bookworm => self.out.clone(),
            other => self.out.join(other.name()),
        }
    }
    /// A private apt state for the release's kernels (not bookworm's:
    /// the host's apt serves those).
    pub fn apt_state(&self) -> PathBuf {
        self.image_out().join("apt")
    }
    /// Kernel packages the archive's index no longer lists, fetched from
    /// its pool, as a local repository for mkosi's apt.
    pub fn kernel_debs(&self) -> PathBuf {
        self.image_out().join("kernel-debs")
    }
    /// The skeleton tree mkosi copies in before its apt runs (extra
    /// sources lists).
    pub fn skeleton(&self) -> PathBuf {
        self.image_out().join("skeleton")
    }
    /// mkosi's output and workspace directory.
    pub fn mkosi_out(&self) -> PathBuf {
        self.image_out().join("mkosi")
    }
    /// The image as a directory tree (mkosi's `Format=directory` output).
    pub fn tree(&self) -> PathBuf {
        self.mkosi_out().join("image")
    }
    /// The ext4 disk made from the tree.
    pub fn disk(&self) -> PathBuf {
        self.image_out().join("disk.raw")
    }
    /// The second disk (ext4, label relive-data), mounted on /srv/data
    /// from the guest's /etc/fstab.
    pub fn data_disk(&self) -> PathBuf {
        self.image_out().join("data.raw")
    }
    /// Kernels and initrds copied out of the tree's /boot.
    pub fn boot(&self) -> PathBuf {
        self.image_out().join("boot")
    }
    /// What `image` built last (hashes, kernels): see image.rs.
    pub fn image_stamp(&self) -> PathBuf {
        self.image_out().join("image.json")
    }
    /// The lab's ssh key pair (generated, never committed).
    pub fn ssh_key(&self) -> PathBuf {
        self.out.join("ssh/id_ed25519")
    }
    /// State of the running guest, for later invocations.
    pub fn run_dir(&self) -> PathBuf {
        self.run.clone()
    }
    /// The disk copy a `--writable` boot runs on.
    pub fn writable_disk(&self) -> PathBuf {
        self.run_dir().join("disk.raw")
    }
    /// The data disk copy a `--writable` boot runs on.
    pub fn writable_data_disk(&self) -> PathBuf {
        self.run_dir().join("data.raw")
    }
    pub fn guest_state(&self) -> PathBuf {
        self.run_dir().join("guest.json")
    }
    /// Serial console logs and QEMU's stderr, one pair per run.
    pub fn logs(&self) -> PathBuf {
        self.out.join("logs")
    }
    /// Cargo's target directory, where relive's binaries come from.
    pub fn target(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"))
    }
}
