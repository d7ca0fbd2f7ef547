//! What `relive-lab bench` runs: the matrix of memory sizes, dirty rates,
//! snapshot modes and stores, parsed from the command line; the guest's
//! RAM and disk for a size; the bench units' unit files.

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Which snapshot the upgrade takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `relivectl live-upgrade --single-phase`: everything dumped in the
    /// stoppage.
    Single,
    /// The default: background pre-dumps, then a final incremental dump.
    Two,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Two => "two",
        }
    }
}

/// What the benchmark runs: every (size, rate, mode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub sizes_mib: Vec<u64>,
    /// MiB/s; 0 is idle.
    pub rates: Vec<f64>,
    pub modes: Vec<Mode>,
    /// "disk" and/or "memory" (`relivectl live-upgrade --store`).
    pub stores: Vec<String>,
    /// Small idle units added to every run beside the bench units
    /// (`--small-units`), as on a real server: target (f).
    pub small_units: usize,
    /// CPU-bound units beside bench-busy, one per guest CPU
    /// (`--saturate`): phase 1 on a machine whose every CPU is busy.
    pub saturate: bool,
    /// Runs of each (size, rate, mode, store) (`--repeat`): the lab's
    /// figures vary by seconds from one run to the next.
    pub repeat: usize,
    /// The upgrades boot relive's minimal initrd (`relivectl live-upgrade
    /// --minimal-initrd`) instead of the distribution's.
    pub minimal_initrd: bool,
    /// The upgrades restore lazily (`--lazy-restore`).
    pub lazy_restore: bool,
}

impl Matrix {
    pub fn parse(sizes: &str, rates: &str, modes: &str, stores: &str) -> Result<Matrix> {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|w| w.trim().to_owned())
                .filter(|w| !w.is_empty())
                .collect()
        };
        let sizes_mib = list(sizes)
            .iter()
            .map(|s| parse_size(s))
            .collect::<Result<Vec<_>>>()?;
        let rates = list(rates)
            .iter()
            .map(|s| parse_rate(s))
            .collect::<Result<Vec<_>>>()?;
        let modes = list(modes)
            .iter()
            .map(|s| match s.as_str() {
                "single" | "single-phase" => Ok(Mode::Single),
                "two" | "two-phase" => Ok(Mode::Two),
                other => bail!("mode {other:?}: expected single or two"),
            })
            .collect::<Result<Vec<_>>>()?;
        let stores = list(stores);
        if let Some(bad) = stores
            .iter()
            .find(|s| !["disk", "memory"].contains(&s.as_str()))
        {
            bail!("store {bad:?}: expected disk or memory");
        }
        if sizes_mib.is_empty() || rates.is_empty() || modes.is_empty() || stores.is_empty() {
            bail!("--sizes, --rates, --modes and --store each need at least one value");
        }
        Ok(Matrix {
            sizes_mib,
            rates,
            modes,
            stores,
            small_units: 0,
            saturate: false,
            repeat: 1,
            minimal_initrd: false,
            lazy_restore: false,
        })
    }
}

/// "64M", "1G", "512" (MiB) -> MiB.
pub fn parse_size(s: &str) -> Result<u64> {
    let (digits, factor) = match s.strip_suffix(['G', 'g']) {
        Some(d) => (d, 1024),
        None => (s.strip_suffix(['M', 'm']).unwrap_or(s), 1),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("size {s:?}: expected e.g. 64M or 1G"))?;
    if n == 0 {
        bail!("size {s:?} is zero");
    }
    Ok(n * factor)
}

/// "idle", "0", "1M", "2.5M", "1G" (per second) -> MiB/s.
pub fn parse_rate(s: &str) -> Result<f64> {
    if s == "idle" {
        return Ok(0.0);
    }
    let (digits, factor) = match s.strip_suffix(['G', 'g']) {
        Some(d) => (d, 1024.0),
        None => (s.strip_suffix(['M', 'm']).unwrap_or(s), 1.0),
    };
    let n: f64 = digits
        .parse()
        .with_context(|| format!("rate {s:?}: expected idle or MiB/s like 1M, 50M"))?;
    if !n.is_finite() || n < 0.0 {
        bail!("rate {s:?} must be >= 0");
    }
    Ok(n * factor)
}

pub fn size_label(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{}G", mib / 1024)
    } else {
        format!("{mib}M")
    }
}

pub fn rate_label(mib_per_sec: f64) -> String {
    if mib_per_sec == 0.0 {
        "idle".into()
    } else {
        format!("{mib_per_sec}M/s")
    }
}

/// The bench-busy unit (two-phase runs with a non-idle rate) holds this
/// much, whatever the size under test.
pub const BUSY_MIB: u64 = 64;

/// The guest's CPUs (QEMU's -smp in vm/qemu.rs): `--saturate` runs a
/// CPU-bound unit for each, beside bench-busy.
pub const GUEST_CPUS: usize = 2;

/// What each of the `--small-units` holds (idle, Priority=500).
pub const SMALL_MIB: u64 = 4;

/// The memory `n` small units take in the guest: their own and each
/// process's binary, heap and stacks (~4 MiB of RSS).
pub fn small_units_mib(n: usize) -> u64 {
    n as u64 * (SMALL_MIB + 4)
}

/// The memory store for a run: a region for every unit's images with
/// their pre-dumps (twice the bench units' memory) and the lab's own
/// units, placed at 4 GiB (above QEMU's PCI hole, 128 MiB aligned), and
/// the guest RAM that holds it beside what the run needs anyway (at least
/// 3.5 GiB, so that RAM below 4 GiB ends at 3 GiB and the rest starts at 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryStore {
    pub region_mib: u64,
    pub vm_memory_mib: u64,
}

impl MemoryStore {
    /// For two bench units of `size_mib` and `small_mib` of small units.
    pub fn for_size(size_mib: u64, small_mib: u64) -> MemoryStore {
        let region_mib =
            (2 * size_mib * 2 + 2 * BUSY_MIB + 2 * small_mib + 512).div_ceil(128) * 128;
        MemoryStore {
            region_mib,
            vm_memory_mib: vm_memory_mib(size_mib, small_mib).max(3584) + region_mib,
        }
    }

    /// The kernel's `memmap=` value.
    pub fn memmap(&self) -> String {
        format!("{}M!4G", self.region_mib)
    }
}

/// Guest RAM: both bench units' memory twice over (CRIU's pages in flight
/// and the page cache of the images) plus the small units' and 1.5 GiB
/// for the system, in 256 MiB steps.
pub fn vm_memory_mib(size_mib: u64, small_mib: u64) -> u64 {
    (2 * size_mib + small_mib + 1536).div_ceil(256) * 256
}

/// The disk: the image's 4 GiB (~2.6 GiB free) plus room for two units'
/// images and pre-dumps (twice their memory each) and bench-busy's, in
/// whole GiB.
pub fn disk_bytes(size_mib: u64, small_mib: u64) -> u64 {
    let mib = 4 * 1024 + 2 * size_mib * 2 + 2 * BUSY_MIB + 2 * small_mib;
    (mib.div_ceil(1024) * 1024) << 20
}

/// One unit file of the benchmark, written into the guest.
pub fn unit_text(
    description: &str,
    size_mib: u64,
    rate: f64,
    busy: bool,
    port: u16,
    priority: u32,
) -> String {
    format!(
        "# Written by relive-lab bench (lab/src/bench/twophase/).\n\
         [Unit]\n\
         Description=relive-lab bench: {description}\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart=/usr/local/bin/relive-dirty --size-mib {size_mib} --dirty-mib-per-sec {rate}{busy} --report-port {port}\n\
         Restart=on-failure\n\
         \n\
         [X-LiveUpgrade]\n\
         Mode=preserve\n\
         Priority={priority}\n",
        busy = if busy { " --busy" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_parses() {
        let m = Matrix::parse("64M,1G, 2G", "idle,1M,50M,2.5", "single,two", "disk").unwrap();
        assert_eq!(m.sizes_mib, vec![64, 1024, 2048]);
        assert_eq!(m.rates, vec![0.0, 1.0, 50.0, 2.5]);
        assert_eq!(m.modes, vec![Mode::Single, Mode::Two]);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("1T").is_err());
        assert!(parse_size("0M").is_err());
        assert!(parse_rate("-1M").is_err());
        assert!(Matrix::parse("64M", "idle", "three", "disk").is_err());
        assert!(Matrix::parse("", "idle", "two", "disk").is_err());
        let err = Matrix::parse("64M", "idle", "two", "nfs").unwrap_err();
        assert!(err.to_string().contains("expected disk or memory"), "{err}");
    }

    #[test]
    fn labels_read_back() {
        assert_eq!(size_label(1024), "1G");
        assert_eq!(size_label(256), "256M");
        assert_eq!(rate_label(0.0), "idle");
        assert_eq!(rate_label(50.0), "50M/s");
        assert_eq!(parse_size(&size_label(2048)).unwrap(), 2048);
    }

    #[test]
    fn vm_memory_and_disk_grow_with_the_size() {
        // 2 * 64 + 1536 = 1664, rounded up to 1792.
        assert_eq!(vm_memory_mib(64, 0), 1792);
        assert_eq!(vm_memory_mib(256, 0), 2048);
        assert_eq!(vm_memory_mib(1024, 0), 3584);
        assert_eq!(vm_memory_mib(2048, 0), 5632);
        // 4096 + 256 + 128 MiB -> 5 GiB.
        assert_eq!(disk_bytes(64, 0), 5 << 30);
        // 4096 + 8192 + 128 MiB -> 13 GiB.
        assert_eq!(disk_bytes(2048, 0), 13 << 30);
    }

    #[test]
    fn unit_text_carries_size_rate_port_priority() {
        let text = unit_text("busy", 64, 50.0, true, 7012, 500);
        assert!(text.contains(
            "ExecStart=/usr/local/bin/relive-dirty --size-mib 64 --dirty-mib-per-sec 50 --busy --report-port 7012\n"
        ));
        assert!(text.contains("[X-LiveUpgrade]\nMode=preserve\nPriority=500\n"));
        let idle = unit_text("critical", 1024, 0.0, false, 7010, 900);
        assert!(idle.contains("--dirty-mib-per-sec 0 --report-port 7010"));
    }

    #[test]
    fn the_memory_store_region_holds_the_images_above_the_pci_hole() {
        let m = MemoryStore::for_size(1024, 0);
        assert_eq!(m.region_mib, 4736);
        assert_eq!(m.memmap(), "4736M!4G");
        // RAM above 4 GiB is vm - 3 GiB: the region fits, with room to spare.
        assert!(m.vm_memory_mib - 3072 >= m.region_mib + 512, "{m:?}");
        let with_smalls = MemoryStore::for_size(1024, small_units_mib(80));
        assert!(with_smalls.region_mib >= m.region_mib + 2 * 80 * SMALL_MIB);
        assert!(with_smalls.vm_memory_mib >= m.vm_memory_mib + 3 * 80 * SMALL_MIB);
        assert!(Matrix::parse("64M", "idle", "two", "disk,tape").is_err());
        assert_eq!(
            Matrix::parse("64M", "idle", "two", "disk,memory")
                .unwrap()
                .stores,
            ["disk", "memory"]
        );
    }
}
