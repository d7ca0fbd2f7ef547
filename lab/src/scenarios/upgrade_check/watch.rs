//! What upgrade-check watches across every attempt, and the checks that
//! must hold after each: the counter, the echo connection, the
//! interactive ssh session, the redis keys, the preserved units' PIDs, and
//! the process attributes their units ask for.

use super::{Run, Verdicts, REDIS_VALUES};
use crate::output;
use crate::scenarios::echo_client::EchoClient;
use crate::scenarios::pids::Pids;
use crate::scenarios::upgrade;
use crate::vm::boot::Booted;
use crate::vm::shell::Shell;
use anyhow::Result;
use std::time::Duration;

/// Everything watched across the upgrades.
pub(super) struct Watch {
    pub(super) echo: EchoClient,
    pub(super) shell: Shell,
    pub(super) pids: Pids,
    /// (p) relive-feedwriter and relive-feedreader, as set up.
    pub(super) feed: Option<crate::scenarios::feed::State>,
}

impl Run<'_> {
    /// What must hold after the abort and after the upgrade alike.
    pub(super) fn common_checks(
        &self,
        booted: &Booted,
        v: &mut Verdicts,
        watch: &mut Watch,
        counter_before: &relive_workloads::Report,
        phase: &str,
    ) -> Result<()> {
        let port = booted.guest.ssh_port;
        let step = output::step(format!("checking the services after the {phase}"));
        let failed_before = v.failed();
        // (a)
        let counter = upgrade::counter(self.paths, port)?;
        v.record(
            &format!("{phase}: (a) counter continues"),
            counter.matches()
                && counter.pid == counter_before.pid
                && counter.started_unix == counter_before.started_unix
                && counter.counter >= counter_before.counter,
            format!(
                "before: {}; after: {}",
                counter_line(counter_before),
                counter_line(&counter)
            ),
        );
        // (b) so far
        let stats = watch.echo.wait_more(3, Duration::from_secs(60));
        v.record(
            &format!("{phase}: (b) echo connection alive"),
            stats.is_ok(),
            stats.map_or_else(|e| format!("{e:#}"), |s| s.summary()),
        );
        // (c) the same shell answers, on the kernel it should, and it is
        // in its login session's scope again (relive moved it into
        // ssh.service's cgroup for the checkpoint).
        let answer = watch.shell.ask(SESSION_PROBE, Duration::from_secs(60));
        let want = match phase {
            "abort" | "fallback" => self.from_release,
            _ => self.to_release,
        };
        let detail = match &answer {
            Ok(a) => format!("uname -r, scope, its state in the session opened before: {a}"),
            // The guest's view of the session's connection, as evidence.
            Err(e) => format!(
                "{e:#}; guest sockets: {}",
                self.sh(
                    booted,
                    "ss -tnmi state established '( sport = :22 or sport = :7000 )'"
                )
                .map_or_else(
                    |e| format!("{e:#}"),
                    |o| o.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            ),
        };
        v.record(
            &format!("{phase}: (c) interactive ssh session"),
            answer.as_deref().is_ok_and(|a| in_session_on(a, want)),
            detail,
        );
        // (d)
        let keys = self.sh(booted, "redis-cli mget relive:a relive:b relive:c")?;
        v.record(
            &format!("{phase}: (d) redis keys"),
            keys.stdout.trim() == REDIS_VALUES,
            keys.stdout.trim().replace('\n', " "),
        );
        // (e) The sessions that ran our commands (and the one that asked
        // for the upgrade) come and go; everything else must stay.
        let active = self.sh(
            booted,
            &format!("relivectl is-active {}", upgrade::PRESERVED.join(" ")),
        )?;
        let pids = Pids::read(self.paths, port)?;
        let diff = watch.pids.differences(&pids);
        v.record(
            &format!("{phase}: (e) preserved units active, same PIDs"),
            active.success() && diff.is_empty(),
            if diff.is_empty() {
                pids.summary()
            } else {
                format!("{diff} ({})", active.stdout.trim().replace('\n', " "))
            },
        );
        // (f) What the units asked of their processes still holds: Debian's
        // redis-server.service asks for NoNewPrivileges=; the lab's
        // relive-echo.service for a nice level, an OOM score, an I/O class,
        // a core limit and no_new_privs.
        let attrs = self.sh(booted, ATTRIBUTES)?;
        v.record(
            &format!("{phase}: (f) process attributes kept"),
            attrs.stdout.trim() == ATTRIBUTES_WANTED,
            attrs.stdout.trim().replace('\n', " | "),
        );
        // (p) The FIFO between two units: same processes, every line once.
        let feed = self.sh(booted, crate::scenarios::feed::STATE)?;
        let (fed, detail) = crate::scenarios::feed::after_verdict(watch.feed, &feed.stdout);
        v.record(
            &format!("{phase}: (p) FIFO between two units kept"),
            fed,
            detail,
        );
        // (g) The sandbox: namespace, private /tmp, filters, capabilities,
        // cgroup limits.
        let sandbox = self.sh(booted, super::sandbox::READ)?;
        v.record(
            &format!("{phase}: (g) sandbox kept"),
            sandbox.stdout.trim() == super::sandbox::WANTED,
            sandbox.stdout.trim().replace('\n', " | "),
        );
        // (h) In the new kernel, the restored counter's stdout still
        // reaches journald (restarted there): its lines in this boot's
        // journal (it prints every 10 s).
        if phase != "abort" {
            let lines = self.sh(booted, JOURNAL_LINES)?;
            v.record(
                &format!("{phase}: (h) restored output reaches the journal"),
                lines.stdout.trim().parse::<u32>().is_ok_and(|n| n > 0),
                format!(
                    "relive-counter lines in this boot's journal: {}",
                    lines.stdout.trim()
                ),
            );
        }
        step.finish(v.failed() == failed_before);
        Ok(())
    }
}

/// relive-counter's lines in the journal of this boot, waited for up to
/// 30 s.
const JOURNAL_LINES: &str = "for i in $(seq 30); do \
     n=$(journalctl -b -q -o cat -u relive-counter.service | wc -l); \
     [ \"$n\" -gt 0 ] && break; sleep 1; done; echo $n";

/// The attributes (f) reads from /proc and ionice, one line per unit.
const ATTRIBUTES: &str = "\
    r=$(head -1 /sys/fs/cgroup/system.slice/redis-server.service/cgroup.procs); \
    e=$(head -1 /sys/fs/cgroup/system.slice/relive-echo.service/cgroup.procs); \
    echo redis $(grep NoNewPrivs /proc/$r/status); \
    echo echo nice=$(cut -d' ' -f19 /proc/$e/stat) oom=$(cat /proc/$e/oom_score_adj) \
      io=$(ionice -p $e) core=$(grep 'Max core' /proc/$e/limits | awk '{print $5\"/\"$6}') \
      $(grep NoNewPrivs /proc/$e/status)";
const ATTRIBUTES_WANTED: &str = "redis NoNewPrivs: 1\n\
    echo nice=5 oom=200 io=best-effort: prio 6 core=0/0 NoNewPrivs: 1";

pub(super) fn counter_line(r: &relive_workloads::Report) -> String {
    format!(
        "counter={} pid={} match={}",
        r.counter,
        r.pid,
        if r.matches() { "yes" } else { "no" }
    )
}

/// What the interactive shell is asked: its kernel, the unit of its
/// cgroup, that unit's state, and the scope logind lists for its session
/// (`logind:SCOPE`, empty when logind does not know the session).
pub const SESSION_PROBE: &str =
    "echo $(uname -r) $(sed -n 's|^0::.*/||p' /proc/$$/cgroup) $(systemctl is-active $(sed -n 's|^0::.*/||p' /proc/$$/cgroup)) \
     logind:$(loginctl show-session \"$XDG_SESSION_ID\" -p Scope --value 2>/dev/null)";

/// The probe's answer: on `release`, in an active session scope, which
/// logind lists as that session's.
pub fn in_session_on(answer: &str, release: &str) -> bool {
    let words: Vec<&str> = answer.split_whitespace().collect();
    matches!(words.as_slice(), [r, scope, "active", logind]
        if *r == release && scope.starts_with("session-") && scope.ends_with(".scope")
            && logind.strip_prefix("logind:") == Some(*scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_must_be_in_its_scope_and_listed_by_logind() {
        let r = "6.12.117+deb12-amd64";
        assert!(in_session_on(
            &format!("{r} session-3.scope active logind:session-3.scope"),
            r
        ));
        assert!(!in_session_on(
            &format!("{r} session-3.scope active logind:"),
            r
        ));
        assert!(!in_session_on(
            &format!("{r} session-3.scope inactive logind:session-3.scope"),
            r
        ));
        assert!(!in_session_on(
            "6.1.0-47-amd64 session-3.scope active logind:session-3.scope",
            r
        ));
    }
}
