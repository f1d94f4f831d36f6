//! Transfer progress: a bar on stderr when it is a terminal and the transfer is big enough to
//! wait for; nothing at all otherwise (scripts and pipes get clean output).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Transfers smaller than this finish before a bar would be worth drawing.
pub const BAR_THRESHOLD: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` bytes labelled `label`, shown only on a terminal and for big transfers.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let show = !quiet && total >= BAR_THRESHOLD && std::io::stderr().is_terminal();
        let bar = if show {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            // Draw now: later draws are rate-limited, and a fast transfer would show nothing.
            bar.tick();
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    /// A progress that never draws (tests, small files).
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
