//! Throughput of the unit file parser and the loader.
//!
//! `cargo run --release -p relive-units --example parse_bench [DIR]`
//! (default /lib/systemd/system). Each phase repeats until it has run for
//! about a second. Figures go to stdout, one per line.

use relive_units::parse::parse_bytes;
use relive_units::unit_name;
use relive_units::{LoadError, Loader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs `f` until `min` has passed (at least 3 rounds); returns rounds and time.
fn repeat(min: Duration, mut f: impl FnMut()) -> (u32, Duration) {
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < 3 || start.elapsed() < min {
        f();
        rounds += 1;
    }
    (rounds, start.elapsed())
}

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/lib/systemd/system".into()),
    );
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("parse_bench: cannot read {}", dir.display());
        return ExitCode::FAILURE;
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(unit_name::is_valid))
        .filter_map(|e| std::fs::read(e.path()).ok().map(|data| (e.path(), data)))
        .filter(|(_, data)| !data.is_empty())
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("parse_bench: no unit files in {}", dir.display());
        return ExitCode::FAILURE;
    }
    let bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
    let second = Duration::from_secs(1);

    let mut parse_errors = 0;
    let (rounds, took) = repeat(second, || {
        for (path, data) in &files {
            if parse_bytes(data, path).is_err() {
                parse_errors += 1;
            }
        }
    });
    let secs = took.as_secs_f64();
    let n = f64::from(rounds);
    println!("dir: {}", dir.display());
    println!("unit files: {} ({} bytes)", files.len(), bytes);
    println!(
        "raw parser: {:.0} files/s, {:.1} MB/s ({rounds} rounds)",
        files.len() as f64 * n / secs,
        bytes as f64 * n / secs / 1e6
    );
    if parse_errors > 0 {
        println!(
            "raw parser: {} syntax errors per round",
            parse_errors / rounds
        );
    }

    let (index_rounds, index_took) = repeat(second / 4, || drop(Loader::new([&dir])));
    println!(
        "loader index: {:.3} ms per Loader::new",
        index_took.as_secs_f64() * 1e3 / f64::from(index_rounds)
    );

    let loader = Loader::new([&dir]);
    let names = loader.unit_names();
    let (mut loaded, mut masked, mut failed) = (0, 0, 0);
    for name in &names {
        match loader.load(name) {
            Ok(_) => loaded += 1,
            Err(LoadError::Masked { .. }) => masked += 1,
            Err(_) => failed += 1,
        }
    }
    let (rounds, took) = repeat(second, || {
        for name in &names {
            let _ = loader.load(name);
        }
    });
    println!(
        "full loader: {:.0} units/s ({} names: {loaded} loaded, {masked} masked, {failed} failed; {rounds} rounds)",
        names.len() as f64 * f64::from(rounds) / took.as_secs_f64(),
        names.len()
    );
    ExitCode::SUCCESS
}
