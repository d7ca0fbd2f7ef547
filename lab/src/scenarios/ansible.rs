//! Ansible against relive: playbooks run from the host over the lab's
//! ssh, with ansible-core's own systemd_service module (which drives
//! systemctl, which talks to relive's org.freedesktop.systemd1). A
//! converging playbook (a unit file, daemon-reload, enable, start) must
//! change things the first time and nothing the second; a second one
//! restarts, stops and disables, and systemctl must then say so.

use super::check::{Checks, Verdict};
use crate::vm::paths::Paths;
use std::process::Command;

const UNIT: &str = "relive-lab-ansible.service";

const CONVERGE: &str = r#"- hosts: guest
  gather_facts: false
  tasks:
    - name: A unit file
      ansible.builtin.copy:
        dest: /etc/systemd/system/UNIT
        content: |
          [Unit]
          Description=Started by Ansible
          [Service]
          ExecStart=/bin/sleep infinity
          [Install]
          WantedBy=multi-user.target
    - name: Loaded, enabled and started
      ansible.builtin.systemd_service:
        name: UNIT
        daemon_reload: true
        enabled: true
        state: started
    - name: cron enabled and running
      ansible.builtin.systemd_service:
        name: cron.service
        enabled: true
        state: started
"#;

const CHANGE: &str = r#"- hosts: guest
  gather_facts: false
  tasks:
    - name: cron restarted
      ansible.builtin.systemd_service:
        name: cron.service
        state: restarted
    - name: The unit stopped and disabled
      ansible.builtin.systemd_service:
        name: UNIT
        enabled: false
        state: stopped
"#;

/// The play recap's `changed=` and `failed=` counts, and the output.
fn play(paths: &Paths, port: u16, playbook: &str) -> Result<(u32, u32, String), String> {
    let dir = std::env::temp_dir().join(format!("relive-lab-ansible-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let inventory = dir.join("inventory");
    let book = dir.join("playbook.yml");
    let ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
    let write = std::fs::write(
        &inventory,
        format!(
            "guest ansible_host=127.0.0.1 ansible_port={port} ansible_user=root \
             ansible_ssh_private_key_file={} ansible_ssh_common_args='{ssh_args}' \
             ansible_python_interpreter=/usr/bin/python3\n",
            paths.ssh_key().display()
        ),
    )
    .and_then(|()| std::fs::write(&book, playbook.replace("UNIT", UNIT)));
    write.map_err(|e| e.to_string())?;
    let out = Command::new("ansible-playbook")
        .arg("-i")
        .arg(&inventory)
        .arg(&book)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .output()
        .map_err(|e| format!("cannot run ansible-playbook: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |key: &str| -> Option<u32> {
        let recap = text.lines().rev().find(|l| l.starts_with("guest"))?;
        recap
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))?
            .parse()
            .ok()
    };
    match (count("changed"), count("failed")) {
        (Some(changed), Some(failed)) => Ok((changed, failed, text)),
        _ => Err(format!(
            "no play recap: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

fn recap(changed: u32, failed: u32) -> String {
    format!("changed={changed} failed={failed}")
}

pub fn ansible_checks(c: &mut Checks, paths: &Paths) {
    let port = c.guest.ssh_port;
    let runs = [play(paths, port, CONVERGE), play(paths, port, CONVERGE)];
    let (ok, detail) = match &runs {
        [Ok((first, 0, _)), Ok((0, 0, _))] if *first >= 2 => (
            true,
            format!("first run {}, second {}", recap(*first, 0), recap(0, 0)),
        ),
        [Ok((c1, f1, t1)), Ok((c2, f2, t2))] => (
            false,
            format!(
                "first {} second {}: {t1} {t2}",
                recap(*c1, *f1),
                recap(*c2, *f2)
            ),
        ),
        [Err(e), _] | [_, Err(e)] => (false, e.clone()),
    };
    c.out.push(Verdict {
        name: "Ansible's systemd_service: daemon-reload, enable, start; idempotent".into(),
        ok,
        detail,
    });
    let changed = play(paths, port, CHANGE);
    let changed_ok = matches!(&changed, Ok((2, 0, _)));
    c.out.push(Verdict {
        name: "Ansible's systemd_service: restart, stop, disable".into(),
        ok: changed_ok,
        detail: match &changed {
            Ok((n, f, text)) if !changed_ok => format!("{}: {text}", recap(*n, *f)),
            Ok((n, f, _)) => recap(*n, *f),
            Err(e) => e.clone(),
        },
    });
    c.check(
        "what Ansible left, as systemctl says",
        &format!(
            "systemctl is-active {UNIT} cron.service; systemctl is-enabled {UNIT}; \
             rm /etc/systemd/system/{UNIT}; systemctl daemon-reload"
        ),
        &|o| {
            o.stdout
                .split_whitespace()
                .eq(["inactive", "active", "disabled"])
        },
    );
}
