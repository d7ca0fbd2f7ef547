//! The [Mount] and [Swap] sections (systemd.mount(5), systemd.swap(5)),
//! as data: what `mount`/`swapon` are asked to do.

use crate::model::Timeout;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSection {
    /// What=: a device, a file system's name (tmpfs), a remote share.
    pub what: String,
    /// Where=: the mount point, which the unit's name is.
    pub where_: PathBuf,
    /// Type= (mount's -t); None: let mount(8) find out.
    pub fs_type: Option<String>,
    /// Options= (mount's -o).
    pub options: Option<String>,
    /// SloppyOptions= (mount's -s).
    pub sloppy: bool,
    /// LazyUnmount=, ForceUnmount= (umount's -l, -f).
    pub lazy_unmount: bool,
    pub force_unmount: bool,
    /// DirectoryMode= of mount points made (default 0755).
    pub directory_mode: u32,
    /// TimeoutSec=.
    pub timeout: Timeout,
}

impl MountSection {
    /// A network file system (systemd's mount_is_network()): ordered
    /// after the network, before remote-fs.target.
    pub fn is_network(&self) -> bool {
        let netdev = self
            .options
            .as_deref()
            .is_some_and(|o| o.split(',').any(|o| o == "_netdev"));
        let remote = self.fs_type.as_deref().is_some_and(|t| {
            matches!(
                t,
                "nfs"
                    | "nfs4"
                    | "cifs"
                    | "smb3"
                    | "smbfs"
                    | "sshfs"
                    | "ncpfs"
                    | "ncp"
                    | "afs"
                    | "ceph"
                    | "glusterfs"
                    | "davfs"
                    | "9p"
                    | "lustre"
                    | "gfs"
                    | "gfs2"
                    | "ocfs2"
                    | "pvfs2"
                    | "fuse.sshfs"
                    | "fuse.glusterfs"
            )
        });
        netdev || remote
    }

    /// Has the option (nofail, noauto, x-systemd.*).
    pub fn has_option(&self, option: &str) -> bool {
        self.options
            .as_deref()
            .is_some_and(|o| o.split(',').any(|o| o == option))
    }
}

/// The [Automount] section (systemd.automount(5)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomountSection {
    /// Where=: the mount point; the .mount unit of the same name is
    /// started on the first access.
    pub where_: PathBuf,
    /// DirectoryMode= for directories made on the way (default 0755).
    pub directory_mode: u32,
    /// TimeoutIdleSec=: unmount after this long unused (zero: never).
    pub timeout_idle: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapSection {
    /// What=: a device or a swap file.
    pub what: PathBuf,
    /// Priority= (swapon's -p).
    pub priority: Option<i32>,
    /// Options= (swapon's -o).
    pub options: Option<String>,
    pub timeout: Timeout,
}
