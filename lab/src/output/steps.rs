//! A verb's steps as a person sees them on stderr. On a terminal each
//! running step has a spinner with its elapsed time (nested steps stack
//! below it), and a finished one leaves a line: `✓ title (12 s)` or
//! `✗ title (3.0 s)`. When stderr is not a terminal (CI) indicatif would
//! draw nothing, so the steps are plain lines: `relive-lab: title ...`
//! when one starts, `relive-lab: title [ok, 12 s]` when it ends.

use super::log::log;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Spinners or plain lines, decided once.
static TERMINAL: LazyLock<bool> = LazyLock::new(|| std::io::stderr().is_terminal());
/// Colours unless NO_COLOR is set (<https://no-color.org>).
static COLOUR: LazyLock<bool> =
    LazyLock::new(|| *TERMINAL && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()));
static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

/// A running step's spinner and what it shows.
struct Spinner {
    id: u64,
    title: String,
    /// What the step is doing now ([`Step::detail`], [`note`]).
    detail: Option<String>,
    bar: ProgressBar,
}

impl Spinner {
    /// `title: detail`, then `· activity` (a tool's last line).
    fn show(&self, activity: Option<&str>) {
        let mut message = self.title.clone();
        if let Some(detail) = &self.detail {
            let _ = write!(message, ": {detail}");
        }
        if let Some(activity) = activity {
            let _ = write!(message, " · {activity}");
        }
        self.bar.set_message(message);
    }
}

/// The running steps' spinners, innermost last (notes go beside it).
static RUNNING: Mutex<Vec<Spinner>> = Mutex::new(Vec::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);

fn running() -> MutexGuard<'static, Vec<Spinner>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// One step of a verb, shown while it runs. It ends with [`Step::done`]
/// (✓) or [`Step::failed`] (✗); dropped without either, as when an error
/// returns early, it ends as failed.
#[derive(Debug)]
pub struct Step {
    id: u64,
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    ended: bool,
}

/// Starts a step.
pub fn step(title: impl Into<String>) -> Step {
    let title = title.into();
    log(&format!("step: {title}"));
    let id = {
        let mut next = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
        *next += 1;
        *next
    };
    let bar = if *TERMINAL {
        let bar = BARS.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        bar.set_message(title.clone());
        bar.enable_steady_tick(Duration::from_millis(100));
        running().push(Spinner {
            id,
            title: title.clone(),
            detail: None,
            bar: bar.clone(),
        });
        Some(bar)
    } else {
        eprintln!("relive-lab: {title} ...");
        None
    };
    Step {
        id,
        title,
        started: Instant::now(),
        bar,
        ended: false,
    }
}

fn spinner_style() -> ProgressStyle {
    // wide_msg: cut to the terminal's width (a wrapped line would break
    // the redraw), the time at the right edge.
    let template = if *COLOUR {
        "{spinner:.cyan} {wide_msg} {took:.dim}"
    } else {
        "{spinner} {wide_msg} {took}"
    };
    ProgressStyle::with_template(template)
        .expect("the spinner template is valid")
        .with_key(
            "took",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&format!("({})", super::duration(state.elapsed())));
            },
        )
}

impl Step {
    /// What the step is doing now, beside its spinner (and in the log).
    pub fn detail(&self, text: &str) {
        log(&format!("  {}: {text}", self.title));
        if let Some(spinner) = running().iter_mut().find(|s| s.id == self.id) {
            spinner.detail = Some(text.to_owned());
            spinner.show(None);
        }
    }

    /// Ends the step as done.
    pub fn done(mut self) {
        self.end(true, None);
    }

    /// Ends the step as done, with what came of it: `✓ title: note`.
    pub fn done_with(mut self, note: &str) {
        self.end(true, Some(note));
    }

    /// Ends the step as failed, with why: `✗ title: note`.
    pub fn failed(mut self, note: &str) {
        self.end(false, Some(note));
    }

    /// Ends the step as `ok` says.
    pub fn finish(mut self, ok: bool) {
        self.end(ok, None);
    }

    fn end(&mut self, ok: bool, note: Option<&str>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let took = super::duration(self.started.elapsed());
        let what = match note {
            Some(note) => format!("{}: {note}", self.title),
            None => self.title.clone(),
        };
        log(&format!(
            "{} {what} ({took})",
            if ok { "done:" } else { "FAILED:" }
        ));
        match self.bar.take() {
            Some(bar) => {
                running().retain(|s| s.id != self.id);
                bar.finish_and_clear();
                BARS.remove(&bar);
                let mark = match (ok, *COLOUR) {
                    (true, true) => "\x1b[32m✓\x1b[0m",
                    (false, true) => "\x1b[31m✗\x1b[0m",
                    (true, false) => "✓",
                    (false, false) => "✗",
                };
                let took = if *COLOUR {
                    format!("\x1b[2m({took})\x1b[0m")
                } else {
                    format!("({took})")
                };
                above_spinners(|| eprintln!("{mark} {what} {took}"));
            }
            None => eprintln!(
                "relive-lab: {what} [{}, {took}]",
                if ok { "ok" } else { "FAILED" }
            ),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.end(false, None);
    }
}

/// Runs `print` with the spinners cleared away, then draws them again.
fn above_spinners<R>(print: impl FnOnce() -> R) -> R {
    if *TERMINAL {
        BARS.suspend(print)
    } else {
        print()
    }
}

/// A result line on stdout (also in the log), above any spinner.
pub fn println(line: impl std::fmt::Display) {
    let line = line.to_string();
    for l in line.lines() {
        log(&format!("| {l}"));
    }
    above_spinners(|| std::println!("{line}"));
}

/// Something a person should see now, on stderr (also in the log).
pub fn warn(text: &str) {
    log(&format!("warning: {text}"));
    above_spinners(|| eprintln!("relive-lab: {text}"));
}

/// A note in the log, shown beside the innermost running spinner.
pub fn note(text: &str) {
    log(text);
    if let Some(spinner) = running().last_mut() {
        spinner.detail = Some(text.to_owned());
        spinner.show(None);
    }
}

/// What a tool is doing now (its last line), beside the innermost
/// spinner until the next one; not logged (the tool's output is).
pub fn activity(text: &str) {
    if let Some(spinner) = running().last() {
        spinner.show(Some(text));
    }
}
