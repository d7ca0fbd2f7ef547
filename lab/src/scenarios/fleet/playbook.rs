//! The rolling playbook of the repository's Ansible collection
//! (`ansible/`, relive.fleet), built and installed as a user would, run
//! from the host against the lab's guests.

use crate::output;
use crate::vm::paths::Paths;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// One guest as the inventory names it.
pub struct Target {
    pub name: String,
    pub ssh_port: u16,
}

/// The collection installed in a directory of its own, and an inventory.
pub struct Rollout {
    dir: PathBuf,
    inventory: PathBuf,
}

/// A host's line of the play recap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recap {
    pub changed: u32,
    pub failed: u32,
}

/// What a run of the playbook printed and how it ended.
pub struct Played {
    pub success: bool,
    pub recap: BTreeMap<String, Recap>,
    pub stdout: String,
}

impl Played {
    /// The summary line the role printed for `host`, if any.
    pub fn summary_line(&self, host: &str) -> Option<String> {
        let prefix = format!("\"{host}: ");
        self.stdout
            .lines()
            .rev()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&prefix[..]))
            .map(|l| format!("{host}: {}", l.trim_end_matches(',').trim_end_matches('"')))
    }
}

impl Rollout {
    pub fn prepare(paths: &Paths, targets: &[Target]) -> Result<Rollout> {
        let dir = paths.out.join("fleet");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let collection = paths.root.join("ansible");
        output::run(
            Command::new("ansible-galaxy")
                .args(["collection", "build", "--force", "--output-path"])
                .arg(&dir)
                .arg(&collection),
            "ansible-galaxy collection build",
        )?;
        let tarball = std::fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gz"))
            .context("ansible-galaxy built no collection")?;
        output::run(
            Command::new("ansible-galaxy")
                .args(["collection", "install", "--force", "-p"])
                .arg(&dir)
                .arg(&tarball),
            "ansible-galaxy collection install",
        )?;
        let ssh_args =
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
        let mut inventory = String::from("[fleet]\n");
        for t in targets {
            inventory += &format!(
                "{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root \
                 ansible_ssh_private_key_file={} ansible_ssh_common_args='{ssh_args}' \
                 ansible_python_interpreter=/usr/bin/python3\n",
                t.name,
                t.ssh_port,
                paths.ssh_key().display()
            );
        }
        let path = dir.join("inventory");
        std::fs::write(&path, inventory)?;
        Ok(Rollout {
            dir,
            inventory: path,
        })
    }

    /// `ansible-playbook relive.fleet.rolling_upgrade` with these extra
    /// variables.
    pub fn play(&self, vars: &serde_json::Value) -> Result<Played> {
        self.play_with(vars, &[])
    }

    /// The same with `--check`: the module runs relive's preflight only.
    pub fn play_check(&self, vars: &serde_json::Value) -> Result<Played> {
        self.play_with(vars, &["--check"])
    }

    fn play_with(&self, vars: &serde_json::Value, options: &[&str]) -> Result<Played> {
        let vars_file = self.dir.join("vars.json");
        std::fs::write(&vars_file, serde_json::to_string_pretty(vars)?)?;
        output::log(&format!("ansible-playbook {options:?} with {vars}"));
        let out = Command::new("ansible-playbook")
            .args(options)
            .arg("-i")
            .arg(&self.inventory)
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .arg("relive.fleet.rolling_upgrade")
            .env("ANSIBLE_COLLECTIONS_PATH", &self.dir)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .output()
            .context("running ansible-playbook")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        output::log(&format!(
            "ansible-playbook: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
        let recap = parse_recap(&stdout);
        if recap.is_empty() {
            bail!(
                "ansible-playbook printed no recap ({}): {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Played {
            success: out.status.success(),
            recap,
            stdout,
        })
    }
}

/// `host1 : ok=7 changed=1 unreachable=0 failed=0 ...` lines.
fn parse_recap(stdout: &str) -> BTreeMap<String, Recap> {
    let Some((_, recap)) = stdout.rsplit_once("PLAY RECAP") else {
        return BTreeMap::new();
    };
    recap
        .lines()
        .filter_map(|line| {
            let (host, counts) = line.split_once(" : ")?;
            let count = |key: &str| -> Option<u32> {
                counts
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            Some((
                host.trim().to_owned(),
                Recap {
                    changed: count("changed")?,
                    failed: count("failed")?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recap_and_the_summary_are_read_per_host() {
        let stdout = r#"TASK [relive.fleet.rolling_upgrade : Show which host runs which kernel] ***
ok: [host3] => {
    "msg": [
        "host1: 6.12.117+deb12-amd64 (upgraded from 6.1.0-47-amd64)",
        "host3: 6.1.0-47-amd64 (untouched)"
    ]
}

PLAY RECAP *********************************************************************
host1                      : ok=7    changed=1    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0
host2                      : ok=5    changed=1    unreachable=0    failed=1    skipped=0    rescued=1    ignored=0
"#;
        let played = Played {
            success: false,
            recap: parse_recap(stdout),
            stdout: stdout.into(),
        };
        assert_eq!(
            played.recap["host1"],
            Recap {
                changed: 1,
                failed: 0
            }
        );
        assert_eq!(played.recap["host2"].failed, 1);
        assert!(!played.recap.contains_key("host3"));
        assert_eq!(
            played.summary_line("host3").as_deref(),
            Some("host3: 6.1.0-47-amd64 (untouched)")
        );
        assert_eq!(
            played.summary_line("host1").as_deref(),
            Some("host1: 6.12.117+deb12-amd64 (upgraded from 6.1.0-47-amd64)")
        );
    }
}
