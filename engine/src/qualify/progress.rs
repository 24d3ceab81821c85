//! One progress bar per phase on a terminal; on anything else (a log file, the device machine's captured
//! output) a plain line when a phase starts and ends, so the log still says where time went.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running phase. Cheap to clone (the bar is shared), so a child's reader thread can move it.
#[derive(Clone)]
pub struct Phase {
    bar: ProgressBar,
    name: String,
    started: Instant,
    plain: bool,
}

impl Phase {
    /// Starts a phase of `total` steps.
    pub fn start(name: &str, total: u64, show_bars: bool) -> Phase {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let plain = !show_bars || bar.is_hidden();
        if plain {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            eprintln!("[qualify] {name} ...");
        } else {
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>22} [{bar:30}] {pos}/{len} {elapsed:>4} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
        }
        Phase {
            bar,
            name: name.to_string(),
            started: Instant::now(),
            plain,
        }
    }

    pub fn inc(&self, msg: &str) {
        self.bar.inc(1);
        self.bar.set_message(msg.to_string());
    }

    pub fn set_message(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }

    /// A step report from the reference child (`@progress` lines): the sub-phase name and its counts.
    pub fn child_progress(&self, sub: &str, done: u64, total: u64) {
        if self.plain {
            if done == total {
                eprintln!(
                    "[qualify]   {sub}: {done}/{total} ({:.0} s)",
                    self.started.elapsed().as_secs_f64()
                );
            }
        } else {
            self.bar.set_length(total.max(1));
            self.bar.set_position(done);
            self.bar.set_message(sub.to_string());
        }
    }

    /// Ends the phase with a one-line summary that stays on the terminal.
    pub fn finish(self, summary: &str) {
        let line = format!(
            "[qualify] {} done in {:.1} s: {summary}",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        if self.plain {
            eprintln!("{line}");
        } else {
            self.bar.finish_and_clear();
            eprintln!("{line}");
        }
    }
}
