//! A watched process's whole tree: an agent the lab did not write may fork (a supervisor and its
//! workers, a shell and its children), and its memory is the sum of its processes. A target
//! with `tree: true` is read as its own RSS plus that of every descendant alive at the sweep.
//!
//! Descendants are found each sweep from the parent field of `/proc/PID/stat`, so a child forked
//! between two sweeps counts from the next one.

use std::collections::HashMap;
use std::io;

use crate::statm::{Reading, parse_resident_pages};

/// The parent pid from the text of `/proc/PID/stat` (field 4, counted after the command name's
/// last `)`, since the name may hold spaces and parentheses).
pub fn parse_parent(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Every process's children, by parent pid, as `/proc` shows them now.
fn children() -> io::Result<HashMap<u32, Vec<u32>>> {
    let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) =
            (entry.ok()).and_then(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        else {
            continue;
        };
        // A process gone since the listing is simply not counted.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(parent) = parse_parent(&stat) {
            out.entry(parent).or_default().push(pid);
        }
    }
    Ok(out)
}

/// Every descendant of `root` in `children` (not `root` itself).
pub fn descendants(children: &HashMap<u32, Vec<u32>>, root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            // A pid appears once in /proc; the guard only protects against a torn listing.
            if child != root && !out.contains(&child) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

/// Adds to each root's reading the resident memory of its descendants. Roots that were not
/// read (gone) stay absent.
pub fn add_descendants(readings: &mut HashMap<u32, Reading>, roots: &[u32], page_size: u64) {
    if roots.is_empty() {
        return;
    }
    let Ok(children) = children() else {
        tracing::warn!("could not list /proc: process trees are read as their roots only");
        return;
    };
    for &root in roots {
        let Some(reading) = readings.get_mut(&root) else {
            continue;
        };
        for pid in descendants(&children, root) {
            let pages = (std::fs::read(format!("/proc/{pid}/statm")).ok())
                .and_then(|text| parse_resident_pages(&text));
            reading.rss += pages.unwrap_or(0) * page_size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_is_the_second_field_after_a_name_with_spaces_and_parens() {
        assert_eq!(parse_parent("42 (my (odd) agent) S 7 42 42 0"), Some(7));
        assert_eq!(parse_parent("garbage"), None);
    }

    #[test]
    fn descendants_are_children_and_their_children_but_not_others() {
        let children = HashMap::from([(1, vec![2, 3]), (2, vec![4]), (9, vec![10])]);
        let mut found = descendants(&children, 1);
        found.sort_unstable();
        assert_eq!(found, vec![2, 3, 4]);
        assert!(descendants(&children, 4).is_empty());
    }

    #[test]
    fn a_forking_process_is_read_as_the_sum_of_its_tree() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let root = child.id();
        let mut reader = crate::statm::StatmReader::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (alone, summed) = loop {
            let mut readings = reader.read(&[root]);
            let alone = readings.get(&root).map(|r| r.rss).unwrap_or(0);
            add_descendants(&mut readings, &[root], reader.page_size());
            let summed = readings.get(&root).map(|r| r.rss).unwrap_or(0);
            if summed > alone || std::time::Instant::now() > deadline {
                break (alone, summed);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the group is the shell's own.
        unsafe { libc::kill(-(root as libc::pid_t), libc::SIGKILL) };
        let _ = child.wait();
        assert!(alone > 0, "the shell itself was read");
        assert!(
            summed > alone,
            "its two sleeps were added: {alone} -> {summed}"
        );
    }
}
