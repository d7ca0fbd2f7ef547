//! Records the git commit relive is built from, for `--version`: a bug
//! report then names the exact source. RELIVE_GIT_COMMIT overrides it (a
//! build from a tarball); without git it is "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then_some(())?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=RELIVE_GIT_COMMIT");
    let commit = std::env::var("RELIVE_GIT_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    // Only files that exist: cargo takes a missing one as always changed.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        let watched = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
        for file in watched {
            let path = format!("{dir}/{file}");
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    println!("cargo:rustc-env=RELIVE_GIT_COMMIT={commit}");
}
