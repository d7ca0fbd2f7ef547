//! Where a stretch of time went on the whole machine: the CPUs' busy,
//! idle and I/O-wait time and the bytes read from disk, from two samples
//! of procfs' stat and diskstats. The resume logs it for the time before
//! its first restore: were the CPUs busy, or waiting for the disk?

use procfs::{CurrentSI, KernelStats};

/// One sample of the machine's CPU times and disk reads.
#[derive(Debug, Clone, Default)]
pub struct LoadSample {
    /// CPU time in clock ticks, all CPUs together.
    busy: u64,
    idle: u64,
    iowait: u64,
    /// Sectors (512 bytes) read from whole disks.
    sectors_read: u64,
    /// Where the CPU time went.
    cpu: crate::cpu_where::CpuWhere,
}

/// The CPUs' busy time in `cpu`, clock ticks: user, nice, system,
/// interrupts and steal.
pub(crate) fn busy_ticks(cpu: &procfs::CpuTime) -> u64 {
    cpu.user
        + cpu.nice
        + cpu.system
        + cpu.irq.unwrap_or(0)
        + cpu.softirq.unwrap_or(0)
        + cpu.steal.unwrap_or(0)
}

impl LoadSample {
    /// Now; None if procfs cannot be read.
    pub fn now() -> Option<LoadSample> {
        let cpu = KernelStats::current().ok()?.total;
        let busy = busy_ticks(&cpu);
        // Partitions' reads are counted in their disk's as well.
        let sectors_read = procfs::diskstats()
            .unwrap_or_default()
            .iter()
            .filter(|d| std::path::Path::new("/sys/block").join(&d.name).exists())
            .map(|d| d.sectors_read)
            .sum();
        Some(LoadSample {
            busy,
            idle: cpu.idle,
            iowait: cpu.iowait.unwrap_or(0),
            sectors_read,
            cpu: crate::cpu_where::CpuWhere::now(&cpu),
        })
    }

    /// Where the CPU time between `self` and `later` went: "4.10
    /// CPU-seconds: /system.slice/x.service 1.20 s, relive (PID 1) ...".
    pub fn cpu_until(&self, later: &LoadSample) -> String {
        self.cpu.until(&later.cpu)
    }

    /// "CPUs busy 92 %, idle 3 %, waiting for I/O 5 %; 340 MiB read from
    /// disk" between `self` and `later`.
    pub fn until(&self, later: &LoadSample) -> String {
        let busy = later.busy.saturating_sub(self.busy);
        let idle = later.idle.saturating_sub(self.idle);
        let iowait = later.iowait.saturating_sub(self.iowait);
        let total = (busy + idle + iowait).max(1) as f64;
        let percent = |ticks: u64| ticks as f64 * 100.0 / total;
        let read = later.sectors_read.saturating_sub(self.sectors_read) * 512;
        format!(
            "CPUs busy {:.0} %, idle {:.0} %, waiting for I/O {:.0} %; {:.1} MiB read from disk",
            percent(busy),
            percent(idle),
            percent(iowait),
            read as f64 / (1024.0 * 1024.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_the_cpu_time_between_two_samples() {
        let before = LoadSample {
            busy: 100,
            idle: 50,
            iowait: 10,
            sectors_read: 2048,
            ..LoadSample::default()
        };
        let after = LoadSample {
            busy: 190,
            idle: 55,
            iowait: 15,
            sectors_read: 2048 + 4096,
            ..LoadSample::default()
        };
        assert_eq!(
            before.until(&after),
            "CPUs busy 90 %, idle 5 %, waiting for I/O 5 %; 2.0 MiB read from disk"
        );
    }

    #[test]
    fn this_machine_can_be_sampled() {
        let (a, b) = (LoadSample::now().unwrap(), LoadSample::now().unwrap());
        assert!(a.until(&b).starts_with("CPUs busy"));
    }
}
