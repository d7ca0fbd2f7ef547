//! Where a run's floor went: the kexec to relive running in the new
//! kernel, split by the new kernel's own clock and log (relive's
//! report): before that clock started (the kexec's purgatory, the
//! kernel's decompression), the kernel to /init, the initramfs to the
//! root mounted, and on to relive.

use super::figures::Run;

/// "64M idle two: floor 9.44 = 1.20 before the kernel's clock + 2.40 to
/// /init (initramfs unpacked at 2.05) + 2.40 to the root mounted + 3.44
/// to relive"; None without the figures.
pub fn line(run: &Run) -> Option<String> {
    let floor = run.units.iter().find_map(|u| u.boot_floor_ms)? / 1000.0;
    let boot = run.kernel_boot.as_ref()?;
    let relive = boot.relive_started_ms / 1000.0;
    let mut parts = vec![format!(
        "{:.2} before the kernel's clock (the wall clocks' error is up to 1 s)",
        floor - relive
    )];
    let mut last = 0.0;
    let init = boot.init_started_ms.map(|ms| ms / 1000.0);
    if let Some(init) = init {
        let unpacked = boot
            .initramfs_unpacked_ms
            .map(|ms| format!(" (initramfs unpacked at {:.2})", ms / 1000.0))
            .unwrap_or_default();
        parts.push(format!("{:.2} to /init{unpacked}", init - last));
        last = init;
    }
    if let Some(mounted) = boot.root_mounted_ms.map(|ms| ms / 1000.0) {
        if mounted >= last {
            parts.push(format!("{:.2} to the root mounted", mounted - last));
            last = mounted;
        }
    }
    parts.push(format!("{:.2} to relive", relive - last));
    let initrd = match run.minimal_initrd {
        true => "relive's minimal initrd",
        false => "the distribution's initrd",
    };
    Some(format!(
        "{}, {initrd}: floor {floor:.2} = {}",
        run.label(),
        parts.join(" + ")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::figures::UnitFigures;
    use super::super::matrix::Mode;
    use super::*;
    use relive_api::report::KernelBoot;

    #[test]
    fn the_floor_is_split_by_the_new_kernel_s_markers() {
        let run = Run {
            units: vec![UnitFigures {
                role: "critical".into(),
                boot_floor_ms: Some(9_440.0),
                ..UnitFigures::default()
            }],
            kernel_boot: Some(KernelBoot {
                initramfs_unpacked_ms: Some(2_050.0),
                init_started_ms: Some(2_400.0),
                root_mounted_ms: Some(4_800.0),
                relive_started_ms: 8_240.0,
            }),
            ..super::super::empty_run(64, 0.0, Mode::Two, "disk", 0, false)
        };
        assert_eq!(
            line(&run).unwrap(),
            "64M idle two, the distribution's initrd: floor 9.44 = 1.20 before the kernel's clock (the wall clocks' error is up to 1 s) \
             + 2.40 to /init (initramfs unpacked at 2.05) + 2.40 to the root mounted + 3.44 to relive"
        );
    }
}
