//! Everything the CLI shows a person: errors (`error:` / `caused by:` / `hint:`), progress bars, and
//! JSON progress lines. Bars and JSON lines are two renderers of the same `pipefetch_fetcher::Event`s.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipefetch_fetcher::{Event, Reporter, human_bytes};

/// Logs (tracing) go to stderr; `-v` and `RUST_LOG` raise the level. Warnings show by default.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PIPEFETCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Prints an error with its causes and, when one is known, a hint (the first any layer knows).
pub fn print_error(err: &anyhow::Error) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "error: {err}");
    let root: &(dyn std::error::Error + 'static) = err.as_ref();
    for cause in pipefetch_fetcher::distinct_causes(root) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    let hint = err.chain().find_map(|layer| {
        pipefetch_fetcher::hint_of_layer(layer).or_else(|| {
            layer
                .downcast_ref::<pipefetch_mirror::Error>()
                .and_then(pipefetch_mirror::Error::hint)
        })
    });
    if let Some(hint) = hint {
        let _ = writeln!(out, "  hint: {hint}");
    }
}

/// Writes each event as one JSON line on stderr.
pub struct JsonLines {
    out: Mutex<std::io::Stderr>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines {
            out: Mutex::new(std::io::stderr()),
        }
    }
}

impl Reporter for JsonLines {
    fn report(&self, event: &Event) {
        let line = event.to_json_line();
        if let Ok(out) = self.out.lock() {
            let mut out = out.lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Progress bars: one for the whole run (bytes, rate, ETA) and one per active file.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<u64, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.enable_steady_tick(Duration::from_millis(200));
        Bars {
            multi,
            total,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn file_style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

impl Reporter for Bars {
    fn report(&self, event: &Event) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        match event {
            Event::Plan {
                files: n,
                total_bytes,
                cached_files,
                cached_bytes,
            } => {
                self.total.set_length(*total_bytes);
                self.total.set_position(*cached_bytes);
                self.total.reset_eta();
                self.total.set_message(format!(
                    "{n} files, {cached_files} cached ({})",
                    human_bytes(*cached_bytes)
                ));
            }
            Event::FileStarted {
                file,
                path,
                size,
                resumed,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new(*size));
                bar.set_style(Bars::file_style());
                bar.set_prefix(if *resumed > 0 { "resume" } else { "get" });
                bar.set_message(path.clone());
                // Bytes from an earlier run are progress, not speed: move both bars without
                // letting the rate estimate see a jump.
                bar.set_position(*resumed);
                bar.reset_eta();
                self.total.set_position(self.total.position() + resumed);
                self.total.reset_eta();
                files.insert(*file, bar);
            }
            Event::Progress {
                file, bytes_done, ..
            } => {
                if let Some(bar) = files.get(file) {
                    let before = bar.position();
                    bar.set_position(*bytes_done);
                    if *bytes_done >= before {
                        self.total.inc(bytes_done - before);
                    } else {
                        self.total.set_position(
                            self.total.position().saturating_sub(before - bytes_done),
                        );
                    }
                }
            }
            Event::Retry {
                reason,
                attempt,
                wait_ms,
                ..
            } => {
                let _ = self.multi.println(format!(
                    "  retry: {reason} (attempt {attempt}, waiting {:.1}s)",
                    *wait_ms as f64 / 1000.0
                ));
            }
            Event::FileDone { file, .. } => {
                if let Some(bar) = files.remove(file) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            Event::FileFailed { file, error } => {
                if let Some(bar) = files.remove(file) {
                    bar.abandon_with_message(format!("failed: {error}"));
                }
            }
            Event::Heartbeat { stalled_ms, .. } if *stalled_ms >= 5_000 => {
                self.total
                    .set_message(format!("stalled for {}s", stalled_ms / 1000));
            }
            Event::Done { .. } => {
                self.total.finish_and_clear();
            }
            _ => {}
        }
    }
}

/// The reporter for a progress mode.
pub fn reporter(mode: crate::ProgressMode) -> std::sync::Arc<dyn Reporter> {
    use crate::ProgressMode::*;
    match mode {
        Json => std::sync::Arc::new(JsonLines::new()),
        Bars => std::sync::Arc::new(self::Bars::new()),
        Auto if std::io::stderr().is_terminal() => std::sync::Arc::new(self::Bars::new()),
        _ => std::sync::Arc::new(pipefetch_fetcher::NoProgress),
    }
}
