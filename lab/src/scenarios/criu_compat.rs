//! `relive-lab criu-compat`: Debian 12's CRIU (3.17.1) cannot restore on
//! kernels from 6.13 on. A bookworm guest is given trixie-backports'
//! newest kernel (from the trixie image, built if missing) as if apt had
//! installed it: relive's preflight must refuse the live upgrade before
//! anything is touched, naming both versions, and the kernel package's
//! hook must ask for a reboot instead.

use crate::output;
use crate::scenarios::check::{self, Verdicts};
use crate::vm::boot::{self, Options};
use crate::vm::distro::Distro;
use crate::vm::guest::Init;
use crate::vm::image::{self, Image};
use crate::vm::paths::Paths;
use crate::vm::signals::Interrupt;
use crate::vm::ssh;
use crate::vm::stop;
use anyhow::{Context, Result};
use std::time::Duration;

/// The bookworm kernel the guest runs, and trixie's it is given.
const RUNNING: &str = "6.12";
const GIVEN: &str = "6.19";

pub fn criu_compat(paths: &Paths, image: &Image, interrupt: &Interrupt) -> Result<bool> {
    let trixie_paths = paths.clone().with_distro(Distro::Trixie);
    let step = output::step(format!("trixie's {GIVEN} kernel"));
    let trixie = image::build_or_reuse(&trixie_paths, false)?;
    let given = trixie.kernel(GIVEN)?.clone();
    step.done_with(&given.release);
    let opts = Options::new(RUNNING, Some(Init::Relive));
    let booted = boot::start(paths, image, &opts, interrupt)?;
    let port = booted.guest.ssh_port;
    let mut v = Verdicts {
        label: format!("{RUNNING}+{GIVEN}"),
        all: Vec::new(),
    };
    v.push(check::boot_verdict(&booted.guest));
    let release = given.release.as_str();
    let copied = copy_in(
        paths,
        port,
        &given.vmlinuz,
        &format!("/boot/vmlinuz-{release}"),
    )
    .and_then(|()| {
        copy_in(
            paths,
            port,
            &given.initrd,
            &format!("/boot/initrd.img-{release}"),
        )
    });
    v.record(
        "kernel installed in /boot",
        copied.is_ok(),
        copied.map_or_else(|e| format!("{e:#}"), |()| release.to_owned()),
    );
    let out = ssh::run(
        paths,
        port,
        &format!("relivectl live-upgrade --release {release} --check; echo rc=$?"),
    )?;
    let refusal = format!("CRIU 3.17.1 cannot restore on kernel {release}");
    v.record(
        "relivectl --check refuses, naming both versions",
        out.stdout
            .starts_with(&format!("A live upgrade to {release} is not possible:\n"))
            && out.stdout.contains(&refusal)
            && out.stdout.trim_end().ends_with("rc=1"),
        out.stdout.trim().replace('\n', " | "),
    );
    let out = ssh::run(
        paths,
        port,
        &format!(
            "rm -f /run/reboot-required*; /etc/kernel/postinst.d/zz-relive {release} /boot/vmlinuz-{release}; \
             cat /run/reboot-required.pkgs"
        ),
    )?;
    v.record(
        "the kernel hook asks for a reboot",
        out.stdout.contains(&format!(
            "relive: no live upgrade to kernel {release}; a reboot is required:"
        )) && out.stdout.contains(&refusal)
            && out
                .stdout
                .trim_end()
                .ends_with(&format!("linux-image-{release}")),
        out.stdout.trim().replace('\n', " | "),
    );
    // Refused before anything was touched: no kernel loaded, the
    // services as they were.
    let out = ssh::run(
        paths,
        port,
        "cat /sys/kernel/kexec_loaded; relivectl is-active relive-counter.service redis-server.service ssh.service",
    )?;
    v.record(
        "nothing touched",
        out.stdout.split_whitespace().collect::<Vec<_>>() == ["0", "active", "active", "active"],
        out.stdout.trim().replace('\n', " "),
    );
    v.push(check::poweroff_verdict(stop::poweroff(
        paths,
        booted,
        Duration::from_secs(120),
        interrupt,
    )));
    let failed = v.failed();
    output::println(if failed == 0 {
        "criu-compat passed".to_owned()
    } else {
        format!("criu-compat FAILED: {failed} checks")
    });
    Ok(failed == 0)
}

/// Copies a host file into the guest over ssh.
fn copy_in(paths: &Paths, port: u16, from: &std::path::Path, to: &str) -> Result<()> {
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let status = ssh::command(paths, port)
        .arg(format!("cat > {to}"))
        .stdin(file)
        .status()
        .context("ssh")?;
    anyhow::ensure!(
        status.success(),
        "copying {} to {to}: {status}",
        from.display()
    );
    Ok(())
}
