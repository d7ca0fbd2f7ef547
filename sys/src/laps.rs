//! Where a step's time went: named laps of one stopwatch, printed as
//! "120 ms: freeze 10, dump 100, locks 10". The upgrade logs one such
//! line per unit parked and restored, so that a slow stoppage can be
//! read from the log without a profiler.

use std::fmt;
use std::time::Instant;

#[derive(Debug)]
pub struct Laps {
    started: Instant,
    last: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Laps {
    pub fn start() -> Laps {
        let now = Instant::now();
        Laps {
            started: now,
            last: now,
            laps: Vec::new(),
        }
    }

    /// Ends the lap `name`: the time since the previous one (or the start).
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        self.last = now;
        match self.laps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += ms,
            None => self.laps.push((name, ms)),
        }
    }

    /// Milliseconds since the start.
    pub fn total_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
}

impl fmt::Display for Laps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0} ms:", self.total_ms())?;
        for (i, (name, ms)) in self.laps.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma} {name} {ms:.0}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_by_name_in_their_first_order() {
        let mut laps = Laps::start();
        laps.lap("freeze");
        std::thread::sleep(std::time::Duration::from_millis(20));
        laps.lap("dump");
        laps.lap("freeze");
        let text = laps.to_string();
        assert!(text.contains(": freeze "), "{text}");
        let dump: f64 = text
            .split("dump ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(dump >= 20.0, "{text}");
        assert_eq!(text.matches("freeze").count(), 1, "{text}");
    }
}
