//! Benchmark: N trivial units in the namespace sandbox.
//!
//! Prints the time from launching the sandbox until all N services are
//! active, next to a baseline measured in the same run: a shell starting the
//! same N processes in the same kind of sandbox, without any supervision.
//! Also relive's RSS with N units vs with one, for the cost per unit.
//!
//!     cargo run --release -p relive-tests --bin bench-units [N] [ROUNDS]

use relive_tests::Sandbox;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    if let Some(reason) = relive_tests::unavailable() {
        eprintln!("cannot run: {reason}");
        std::process::exit(2);
    }
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mut relive_times = Vec::new();
    let mut shell_times = Vec::new();
    let mut rss_n = Vec::new();
    let mut rss_1 = Vec::new();
    for _ in 0..rounds {
        let (t, rss) = boot_units(n);
        relive_times.push(t);
        rss_n.push(rss);
        rss_1.push(boot_units(1).1);
        shell_times.push(shell_baseline(n));
    }
    let (rt, st) = (median(&mut relive_times), median(&mut shell_times));
    let (rn, r1) = (median(&mut rss_n), median(&mut rss_1));
    println!("units: {n}, rounds: {rounds} (medians)");
    println!("relive: all {n} active after        {:>8.1} ms", rt * 1e3);
    println!("baseline: shell starts {n} processes {:>7.1} ms", st * 1e3);
    println!("ratio relive/baseline:              {:>8.2}", rt / st);
    println!("relive RSS with {n} units:           {:>8.0} KiB", rn);
    println!("relive RSS with 1 unit:              {:>8.0} KiB", r1);
    println!(
        "RSS per extra unit:                 {:>8.1} KiB",
        (rn - r1) / (n.max(2) - 1) as f64
    );
}

/// Boots the sandbox with `n` services; returns seconds until all are
/// active, and relive's RSS (KiB) then.
fn boot_units(n: usize) -> (f64, f64) {
    let unit = "[Service]\nExecStart=/bin/sleep infinity\n";
    let names: Vec<String> = (0..n).map(|i| format!("trivial-{i}.service")).collect();
    let target = format!("[Unit]\nWants={}\n", names.join(" "));
    let mut units: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), unit)).collect();
    units.push(("multi-user.target", &target));
    let start = Instant::now();
    let sandbox = Sandbox::boot(&units, "");
    loop {
        let out = sandbox.ctl(&["--json", "list-units"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let active = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|u| {
                        u["active_state"] == "active"
                            && u["name"].as_str().unwrap_or("").starts_with("trivial-")
                    })
                    .count()
            })
            .unwrap_or(0);
        if active == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not all units became active:\n{}",
            sandbox.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{}/status", sandbox.pid1())).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let _ = sandbox.poweroff();
    (elapsed, rss)
}

/// The same namespaces, a shell as PID 1 starting `n` sleeps.
fn shell_baseline(n: usize) -> f64 {
    let script = format!("for i in $(seq {n}); do sleep infinity & done; wait");
    let start = Instant::now();
    let mut child = Command::new("unshare")
        .args([
            "--pid",
            "--kill-child",
            "--mount-proc",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .expect("unshare");
    let init = loop {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            break pid.to_owned();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    loop {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        if children.split_whitespace().count() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
