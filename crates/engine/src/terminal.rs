//! What the person watching a run sees in the terminal.
//!
//! On a terminal: the harness's lines scroll as before, and under them one live line shows the
//! current phase (or the last fault) and the key numbers the incident gives it, redrawn a few
//! times a second. Anywhere else (CI logs, a pipe, `TERM=dumb`): plain
//! lines only, the status line every 5 seconds, exactly as before, so logs stay readable.
//!
//! No thread is started: the live line is redrawn from the harness's own loop (the harness must
//! stay on one thread, see `harness::supervisor`).

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use outage_lab_proto::{EngineEvent, JournalEntry, Vocabulary};

/// How often the live line's numbers are recomputed at most.
const REFRESH: Duration = Duration::from_millis(250);

struct Live {
    bar: ProgressBar,
    last: Mutex<Option<Instant>>,
}

/// The live line, if stdout is a terminal that can redraw one.
fn live() -> Option<&'static Live> {
    static LIVE: OnceLock<Option<Live>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if !std::io::stdout().is_terminal() || dumb {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{prefix}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix("start-up");
        Some(Live {
            bar,
            last: Mutex::new(None),
        })
    })
    .as_ref()
}

/// Prints a line for the person watching (above the live line, if there is one).
pub fn say(line: &str) {
    match live() {
        Some(l) => l.bar.println(line),
        None => println!("{line}"),
    }
}

/// Follows the phases: the live line's prefix names the current phase or the last fault.
pub fn observe<E: Vocabulary>(entry: &JournalEntry<E>) {
    let Some(l) = live() else { return };
    match entry.event.engine() {
        Some(EngineEvent::Phase { name, .. }) => l.bar.set_prefix(name.name()),
        Some(EngineEvent::FaultInjected { action, .. }) => l.bar.set_prefix(action),
        _ => {}
    }
}

/// Redraws the live line with fresh numbers (computed by `numbers`, at most every 250 ms). Does
/// nothing without a terminal: there the periodic status lines carry the numbers.
pub fn tick(numbers: impl FnOnce() -> String) {
    let Some(l) = live() else { return };
    let mut last = l.last.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_some_and(|t| t.elapsed() < REFRESH) {
        return;
    }
    *last = Some(Instant::now());
    l.bar.set_message(numbers());
}

/// Removes the live line before the verdict table is printed.
pub fn finish() {
    if let Some(l) = live() {
        l.bar.finish_and_clear();
    }
}
