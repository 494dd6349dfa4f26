//! A watched process's whole tree: an agent the lab did not write may fork (a supervisor and its
//! workers, a shell and its children), and its memory is the sum of its processes. A target
//! with `tree: true` is read as its own RSS plus that of every descendant alive at the sweep.
//!
//! Descendants are found each sweep ([`outage_lab_proto::procfs`]), so a child forked between two
//! sweeps counts from the next one.

use std::collections::HashMap;

use outage_lab_proto::procfs;

use crate::statm::Reading;

/// Adds to each root's reading the resident memory of its descendants. Roots that were not
/// read (gone) stay absent.
pub fn add_descendants(readings: &mut HashMap<u32, Reading>, roots: &[u32], page_size: u64) {
    if roots.is_empty() {
        return;
    }
    let Ok(children) = procfs::children() else {
        tracing::warn!("could not list /proc: process trees are read as their roots only");
        return;
    };
    for &root in roots {
        let Some(reading) = readings.get_mut(&root) else {
            continue;
        };
        reading.rss += procfs::descendants_resident_bytes(&children, root, page_size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
