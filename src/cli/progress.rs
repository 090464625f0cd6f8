//! Progress bars on a terminal (indicatif); nothing when stderr is not one.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::format::label;
use crate::pipeline::Progress;

pub struct Bar {
    bar: Option<ProgressBar>,
    stored: AtomicU64,
    reused: AtomicU64,
}

impl Bar {
    /// A byte counter with throughput; hidden when `quiet` or not on a terminal.
    pub fn new(quiet: bool, total: Option<u64>, verb: &str) -> Bar {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar {
                bar: None,
                stored: AtomicU64::new(0),
                reused: AtomicU64::new(0),
            };
        }
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let tmpl = if total.is_some() {
            format!(
                "{verb} {{bytes}}/{{total_bytes}} {{wide_bar}} {{binary_bytes_per_sec}} eta {{eta}} {{msg}}"
            )
        } else {
            format!("{verb} {{spinner}} {{bytes}} {{binary_bytes_per_sec}} {{elapsed}} {{msg}}")
        };
        bar.set_style(ProgressStyle::with_template(&tmpl).unwrap());
        bar.set_prefix(verb.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar {
            bar: Some(bar),
            stored: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    fn show(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "stored {} new, {} reused",
                HumanBytes(self.stored.load(Ordering::Relaxed)),
                HumanBytes(self.reused.load(Ordering::Relaxed))
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn total(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_length(bytes);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap(),
            );
        }
    }
    fn objects(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{done}/{total} objects"));
        }
    }
    fn bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
    fn stored(&self, n: u64) {
        self.stored.fetch_add(n, Ordering::Relaxed);
        self.show();
    }
    fn reused(&self, n: u64) {
        self.reused.fetch_add(n, Ordering::Relaxed);
        self.show();
    }
    fn warn(&self, message: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("warning: {}", label::shown(message))),
            None => eprintln!("warning: {}", label::shown(message)),
        }
    }
}
