//! The logs a run leaves: each process's stderr in `logs/<name>.log`, each experiment cell's in
//! `<cell>.log`.

use std::path::Path;

/// The last `n` lines of a log file, for error messages (`(empty)` for none).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let out = lines[start..].join("\n");
    if out.is_empty() {
        "(empty)".into()
    } else {
        out
    }
}
