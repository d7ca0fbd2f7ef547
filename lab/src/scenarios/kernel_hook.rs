//! A kernel package installed under relive: its postinst runs the hooks
//! in /etc/kernel/postinst.d, and relive's (zz-relive) says that a live
//! upgrade can replace the reboot, or, for a kernel relive cannot reach,
//! asks for the reboot the Debian way (/run/reboot-required).

use super::check::Checks;

/// The release of a broken kernel the second check installs by hand.
const BROKEN: &str = "0.0.1-relive-lab";

pub fn kernel_hook_checks(c: &mut Checks) {
    // The other installed kernel's package, configured again: what apt
    // does after unpacking it (initramfs-tools' hook, then relive's).
    c.check_with(
        "kernel postinst offers a live upgrade",
        "set -e; rm -f /run/reboot-required /run/reboot-required.pkgs; \
         other=$(ls /boot/vmlinuz-* | sed 's#^/boot/vmlinuz-##' | grep -vxF \"$(uname -r)\" | head -1); \
         echo \"other=$other\"; \
         DEBIAN_FRONTEND=noninteractive dpkg-reconfigure \"linux-image-$other\" 2>&1; \
         if [ -e /run/reboot-required ]; then echo reboot-required; else echo no-reboot; fi",
        &|o| {
            let other = o
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("other="))
                .unwrap_or("?");
            let offered = format!(
                "relive: kernel {other} can replace the running one without a reboot:\n\
                 relive:   relivectl live-upgrade --release {other}\n"
            );
            let ok = o.success()
                && o.stdout.contains(&offered)
                && o.stdout.trim_end().ends_with("no-reboot");
            (ok, last_lines(&o.stdout, 6))
        },
    );
    // A truncated image: the preflight refuses it, and the hook asks for
    // a reboot, naming the package.
    c.check_with(
        "kernel postinst asks for a reboot it cannot avoid",
        &format!(
            "rm -f /run/reboot-required /run/reboot-required.pkgs; \
             head -c 1000000 /boot/vmlinuz-$(uname -r) > /boot/vmlinuz-{BROKEN}; \
             /etc/kernel/postinst.d/zz-relive {BROKEN} /boot/vmlinuz-{BROKEN}; echo rc=$?; \
             cat /run/reboot-required /run/reboot-required.pkgs; \
             rm -f /boot/vmlinuz-{BROKEN} /run/reboot-required /run/reboot-required.pkgs"
        ),
        &|o| {
            let ok = o.success()
                && o.stdout.contains(&format!(
                    "relive: no live upgrade to kernel {BROKEN}; a reboot is required:\n"
                ))
                && o.stdout.contains("truncated x86 kernel image")
                && o.stdout.contains("rc=0\n*** System restart required ***\n")
                && o.stdout.contains(&format!("\nlinux-image-{BROKEN}\n"));
            (ok, last_lines(&o.stdout, 6))
        },
    );
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
