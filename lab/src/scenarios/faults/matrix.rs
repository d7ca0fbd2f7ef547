//! The fault matrix: each scenario, the faults it injects or the bad
//! input it gives, what must happen and how relive must name the cause.

use crate::scenarios::feed;
use relive_api::report::UpgradeReport;
use Cause::{Lost, Says};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The preflight (or the request) refuses; nothing changes.
    Refused,
    /// The upgrade starts and is undone on the running kernel.
    Undone,
    /// The upgrade completes; some units may be started afresh, reported.
    Completed,
    /// The new kernel cannot restore a unit with OnRestoreFailure=rollback:
    /// the machine goes back to the old kernel, every unit restored there.
    RolledBack,
}

pub struct Scenario {
    pub name: &'static str,
    /// Lines for the fault file.
    pub faults: &'static [&'static str],
    /// Guest commands run first (bad files...).
    pub setup: &'static str,
    /// `relivectl live-upgrade` arguments instead of the target kernel's;
    /// `{K}`/`{I}` stand for its kernel and initrd paths.
    pub args: Option<&'static str>,
    pub expect: Expect,
    /// How relive must name the cause.
    pub cause: Cause,
    /// Run by the test suite (`faults --suite`) as well as by the full
    /// matrix. Left to the full matrix: the scenarios whose path another
    /// suite scenario already takes and that cost minutes each (a hung
    /// CRIU waits out its 120 s reply timeout twice).
    pub suite: bool,
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "a truncated kernel image",
            faults: &[],
            setup: "head -c 4000000 {K} > /root/corrupt-vmlinuz",
            args: Some("--kernel /root/corrupt-vmlinuz --initrd {I} --reuse-cmdline"),
            expect: Expect::Refused,
            cause: Says("truncated x86 kernel image"),
            suite: true,
        },
        Scenario {
            name: "a kernel of another architecture",
            faults: &[],
            // An aarch64 ELF: /bin/true with e_machine = 183.
            setup: "cp /bin/true /root/arm64-vmlinuz && printf '\\267\\000' | dd of=/root/arm64-vmlinuz bs=1 seek=18 conv=notrunc status=none",
            args: Some("--kernel /root/arm64-vmlinuz --initrd {I} --reuse-cmdline"),
            expect: Expect::Refused,
            cause: Says("not an x86 kernel image"),
            suite: true,
        },
        Scenario {
            name: "a missing initrd",
            faults: &[],
            setup: "",
            args: Some("--kernel {K} --initrd /boot/no-such-initrd --reuse-cmdline"),
            expect: Expect::Refused,
            cause: Says("no-such-initrd"),
            suite: true,
        },
        Scenario {
            name: "--append that would not start relive",
            faults: &[],
            setup: "",
            args: Some("--kernel {K} --initrd {I} --append 'root=/dev/vda init=/bin/false'"),
            expect: Expect::Refused,
            cause: Says("not relive"),
            suite: true,
        },
        Scenario {
            name: "CRIU dump error in one unit",
            faults: &["dump-fail relive-idle.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: Says("relive-idle.service: CRIU dump failed"),
            suite: true,
        },
        Scenario {
            name: "CRIU killed during the final dump",
            faults: &["criu-kill-dump relive-counter.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: Says("relive-counter.service: CRIU dump failed"),
            suite: false,
        },
        Scenario {
            name: "a group's second member fails to dump",
            faults: &["dump-fail relive-slowfile.service"],
            // nginx and relive-slowfile are a group while a download
            // through nginx is under way; it must end intact.
            setup: "relivectl restart relive-fetch.service && sleep 3",
            args: None,
            expect: Expect::Undone,
            cause: Says("relive-slowfile.service: CRIU dump failed"),
            suite: true,
        },
        Scenario {
            name: "a FIFO group's second member fails to dump",
            faults: &["dump-fail relive-feedwriter.service"],
            // relive-feedreader is dumped first, with the lines waiting in
            // their FIFO taken out: the undo must put them back once.
            setup: feed::SETUP,
            args: None,
            expect: Expect::Undone,
            cause: Says("relive-feedwriter.service: CRIU dump failed"),
            suite: false,
        },
        Scenario {
            name: "CRIU hangs in the final dump",
            faults: &["dump-hangs relive-idle.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: Says("no message from CRIU within"),
            suite: false,
        },
        Scenario {
            name: "a failed final dump takes the process with it",
            faults: &["dump-kills relive-counter.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: Says("relive-counter.service: state lost: its main process"),
            suite: false,
        },
        Scenario {
            name: "the store full",
            faults: &["store-full any"],
            setup: "",
            args: Some("--kernel {K} --initrd {I} --reuse-cmdline --store disk"),
            expect: Expect::Undone,
            cause: Says("is full"),
            suite: true,
        },
        Scenario {
            name: "a panic in relive's upgrade code",
            faults: &["panic relive-busy.service"],
            setup: "",
            args: None,
            expect: Expect::Undone,
            cause: Says("panicked: injected fault (panic relive-busy.service)"),
            suite: true,
        },
        Scenario {
            name: "CRIU killed in a pre-dump; a fatal pre-dump; a corrupt image; a restore error",
            faults: &[
                "criu-kill-pre-dump relive-busy.service",
                "corrupt-image relive-idle.service",
                "restore-fail relive-counter.service",
                "pre-dump-kills redis-server.service",
            ],
            setup: "",
            args: None,
            expect: Expect::Completed,
            cause: Lost {
                unit: "relive-idle.service",
                reason: "images refused",
            },
            suite: true,
        },
        Scenario {
            name: "a rollback unit fails to restore in the new kernel",
            faults: &["restore-fail-new relive-counter.service"],
            setup: "mkdir -p /etc/systemd/system/relive-counter.service.d && printf '[X-LiveUpgrade]\nOnRestoreFailure=rollback\n' > /etc/systemd/system/relive-counter.service.d/rollback.conf && relivectl daemon-reload",
            args: None,
            expect: Expect::RolledBack,
            cause: Says("relive-counter.service could not be restored"),
            suite: true,
        },
        Scenario {
            name: "a lazily restored unit's page source damaged while it runs",
            faults: &["lazy-pages-damaged relive-idle.service"],
            setup: "",
            args: Some("--kernel {K} --initrd {I} --reuse-cmdline --lazy-restore"),
            expect: Expect::Completed,
            cause: Lost {
                unit: "relive-idle.service",
                reason: "restored lazily, its page source failed",
            },
            // Its own run of minutes; the suite's other scenarios restore
            // whole. Run with the full matrix (`relive-lab faults`).
            suite: false,
        },
        Scenario {
            name: "a panic in relive's resume code",
            faults: &["panic-resume relive-busy.service"],
            setup: "",
            args: None,
            expect: Expect::Completed,
            cause: Lost {
                unit: "relive-busy.service",
                reason: "relive's resume code panicked",
            },
            suite: true,
        },
    ]
}

/// How relive must name a scenario's cause.
#[derive(Debug, Clone, Copy)]
pub enum Cause {
    /// Its message says this: the refusal, the abort line on the serial
    /// console (an aborted upgrade writes no report), or the report's
    /// reason for a rollback.
    Says(&'static str),
    /// Its report has the unit's state lost, for a reason that starts so.
    Lost {
        unit: &'static str,
        reason: &'static str,
    },
}

impl Cause {
    /// Whether `message` (what relive said) or `report` names the cause.
    pub fn named(&self, message: &str, report: Option<&UpgradeReport>) -> bool {
        match *self {
            Says(text) => message.contains(text),
            Lost { unit, reason } => report.is_some_and(|r| {
                r.lost()
                    .any(|(lost, why)| lost == unit && why.starts_with(reason))
            }),
        }
    }

    /// The text to look for in relive's message.
    pub fn text(&self) -> &'static str {
        match *self {
            Says(text) => text,
            Lost { reason, .. } => reason,
        }
    }
}
