//! Where a store can survive the kexec, and which of those places the
//! running kernel and the next one offer.
//!
//! Two backends exist: the disk (a directory on the root file system,
//! always there) and memory (a `memmap=SIZE!OFFSET` region that both
//! kernels leave alone and expose as a legacy pmem device, see
//! [`crate::memory`]). The kernel's own way, the Live Update Orchestrator
//! (KHO and `/dev/liveupdate`, merged in 6.19, memfds preserved across
//! the kexec), is the third: relive cannot use it yet, and Debian's
//! kernels build it off, but the preflight already tells whether both
//! kernels offer it, so that an administrator can see what a LUO backend
//! would need. A new backend is a new [`Backend`], an implementation of
//! [`crate::carrier::Carrier`] (the steps the upgrade asks of it), and a
//! new arm in [`offers`] and in `memory::choose`.

use std::path::Path;

/// A place the store's files can cross the kexec in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Disk,
    Memory,
    /// The Live Update Orchestrator: memfds preserved by the kernel.
    LiveUpdate,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Disk => "disk",
            Backend::Memory => "memory",
            Backend::LiveUpdate => "live update (LUO)",
        })
    }
}

/// What one kernel offers for one backend: `Err` says why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub backend: Backend,
    pub running: Result<(), String>,
    pub next: Result<(), String>,
}

impl Offer {
    pub fn usable(&self) -> bool {
        self.running.is_ok() && self.next.is_ok()
    }
}

/// What the running kernel shows of itself: its command line and
/// whether `/dev/liveupdate` exists.
#[derive(Debug, Clone, Default)]
pub struct RunningKernel<'a> {
    pub cmdline: &'a str,
    pub liveupdate_device: bool,
}

/// The next kernel: the command line it will get and its build
/// configuration (`/boot/config-RELEASE`, when installed).
#[derive(Debug, Clone, Default)]
pub struct NextKernel<'a> {
    pub cmdline: &'a str,
    pub config: Option<&'a str>,
}

/// Every backend, with what each kernel offers.
pub fn offers(running: &RunningKernel<'_>, next: &NextKernel<'_>) -> Vec<Offer> {
    let reserved_now = crate::memory::reservations(running.cmdline);
    let reserved_next = crate::memory::reservations(next.cmdline);
    let memory_running = match reserved_now.first() {
        Some(_) => Ok(()),
        None => Err("no memmap=SIZE!OFFSET region on its command line".to_owned()),
    };
    let memory_next = match reserved_now.first() {
        Some(region) if !reserved_next.contains(region) => {
            Err(format!("its command line does not reserve {region}"))
        }
        _ => built(
            next.config,
            &["CONFIG_X86_PMEM_LEGACY", "CONFIG_BLK_DEV_PMEM"],
        ),
    };
    let luo_running = if running.liveupdate_device {
        Ok(())
    } else {
        Err("no /dev/liveupdate (a kernel built with CONFIG_LIVEUPDATE)".to_owned())
    };
    let luo_next = built(next.config, &["CONFIG_KEXEC_HANDOVER", "CONFIG_LIVEUPDATE"]);
    vec![
        Offer {
            backend: Backend::Disk,
            running: Ok(()),
            next: Ok(()),
        },
        Offer {
            backend: Backend::Memory,
            running: memory_running,
            next: memory_next,
        },
        Offer {
            backend: Backend::LiveUpdate,
            running: luo_running,
            next: luo_next,
        },
    ]
}

/// Whether every option is built in or a module; without the file, no
/// claim either way (`Ok`: the kernel's own loading will tell).
fn built(config: Option<&str>, options: &[&str]) -> Result<(), String> {
    let Some(config) = config else {
        return Ok(());
    };
    let missing: Vec<&str> = options
        .iter()
        .copied()
        .filter(|option| {
            !config.lines().any(|line| {
                line.strip_prefix(option)
                    .is_some_and(|rest| rest == "=y" || rest == "=m")
            })
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("built without {}", missing.join(", ")))
    }
}

/// The offers in one line, for the preflight: what both kernels offer,
/// then each backend that one of them lacks, and why.
pub fn describe(offers: &[Offer]) -> String {
    let usable: Vec<String> = offers
        .iter()
        .filter(|o| o.usable())
        .map(|o| o.backend.to_string())
        .collect();
    let mut text = format!("both kernels offer {}", usable.join(", "));
    for offer in offers.iter().filter(|o| !o.usable()) {
        let why: Vec<String> = [("running", &offer.running), ("next", &offer.next)]
            .into_iter()
            .filter_map(|(which, r)| r.as_ref().err().map(|e| format!("{which} kernel: {e}")))
            .collect();
        text.push_str(&format!("; not {} ({})", offer.backend, why.join("; ")));
    }
    text
}

/// The running kernel, as this machine shows it.
pub fn running_kernel(cmdline: &str) -> RunningKernel<'_> {
    RunningKernel {
        cmdline,
        liveupdate_device: Path::new("/dev/liveupdate").exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_6_19: &str = "CONFIG_KEXEC_FILE=y\nCONFIG_X86_PMEM_LEGACY=m\nCONFIG_BLK_DEV_PMEM=m\n# CONFIG_KEXEC_HANDOVER is not set\n";
    const LUO_KERNEL: &str = "CONFIG_X86_PMEM_LEGACY=m\nCONFIG_BLK_DEV_PMEM=m\nCONFIG_KEXEC_HANDOVER=y\nCONFIG_LIVEUPDATE=y\n";

    #[test]
    fn debian_kernels_offer_disk_and_memory_but_not_luo() {
        let cmdline = "root=/dev/vda memmap=1G!4G";
        let running = RunningKernel {
            cmdline,
            liveupdate_device: false,
        };
        let next = NextKernel {
            cmdline,
            config: Some(DEBIAN_6_19),
        };
        let offers = offers(&running, &next);
        let usable: Vec<Backend> = offers
            .iter()
            .filter(|o| o.usable())
            .map(|o| o.backend)
            .collect();
        assert_eq!(usable, [Backend::Disk, Backend::Memory]);
        assert_eq!(
            describe(&offers),
            "both kernels offer disk, memory; not live update (LUO) (running kernel: no \
             /dev/liveupdate (a kernel built with CONFIG_LIVEUPDATE); next kernel: built \
             without CONFIG_KEXEC_HANDOVER, CONFIG_LIVEUPDATE)"
        );
    }

    #[test]
    fn a_region_must_be_reserved_on_both_command_lines() {
        let running = RunningKernel {
            cmdline: "memmap=1G!4G",
            liveupdate_device: true,
        };
        let next = NextKernel {
            cmdline: "root=/dev/vda",
            config: Some(LUO_KERNEL),
        };
        let offers = offers(&running, &next);
        assert_eq!(
            offers[1].next,
            Err("its command line does not reserve memmap=1G!4G".to_owned())
        );
        assert!(offers[2].usable(), "{offers:?}");
        let none = NextKernel {
            cmdline: "",
            config: None,
        };
        let bare = RunningKernel::default();
        let offers = super::offers(&bare, &none);
        assert!(offers[1].running.is_err() && offers[1].next.is_ok());
    }
}
