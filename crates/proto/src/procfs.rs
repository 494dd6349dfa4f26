//! Reading the kernel's accounting of processes from `/proc`: the one place the watchdog (which
//! judges memory) and the storage server (which sizes its cache beside its agent) read a
//! process's resident memory, and find a process tree's members.
//!
//! A process tree is a process and every descendant alive at the moment it is read, found from
//! the parent field of `/proc/PID/stat`; an agent the lab did not write may fork, and its memory
//! is the sum of its processes.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Resident pages from the text of `/proc/PID/statm` ("size resident shared text lib data dt").
pub fn parse_resident_pages(statm: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(statm).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Field 22 (starttime) of `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state); starttime is field 22, the 20th after the name.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Field 4 (the parent pid) of `/proc/PID/stat`, counted after the command name's last `)`.
pub fn parse_parent(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Field 5 (the process group) of `/proc/PID/stat`, counted after the command name's last `)`.
pub fn parse_group(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// Every live process in process group `pgid`, as `/proc` shows them now.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    (entries.flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            parse_group(&stat) == Some(pgid)
        })
        .collect()
}

/// Resident pages from a `/proc/PID/statm` descriptor kept open between reads, read again with
/// `pread` at offset 0 (about a microsecond, against 25 µs to open, read and close it). `None`
/// once the process it was opened for is reaped: the descriptor stays tied to that process even
/// if its pid is reused. A zombie reads 0.
pub fn pread_resident_pages(statm: &File) -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = statm.read_at(&mut buf, 0).ok()?;
    parse_resident_pages(buf.get(..n)?)
}

/// Resident bytes of the process whose statm file is at `path` (`/proc/self/statm`,
/// `/proc/1234/statm`), with pages of `page_size` bytes. `None` if the file cannot be read or
/// parsed, e.g. the process is gone.
pub fn resident_bytes(path: &str, page_size: u64) -> Option<u64> {
    let text = std::fs::read(path).ok()?;
    Some(parse_resident_pages(&text)?.saturating_mul(page_size))
}

/// Every process's children, by parent pid, as `/proc` shows them now.
pub fn children() -> io::Result<HashMap<u32, Vec<u32>>> {
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

/// Resident bytes of `pid`'s descendants alive now, summed (0 when it has none).
pub fn descendants_resident_bytes(
    children: &HashMap<u32, Vec<u32>>,
    pid: u32,
    page_size: u64,
) -> u64 {
    (descendants(children, pid).into_iter())
        .filter_map(|child| resident_bytes(&format!("/proc/{child}/statm"), page_size))
        .sum()
}

/// Resident bytes of `pid` and every descendant alive now; `None` when `pid` itself cannot be
/// read (gone).
pub fn tree_resident_bytes(pid: u32, page_size: u64) -> Option<u64> {
    let own = resident_bytes(&format!("/proc/{pid}/statm"), page_size)?;
    let children = children().unwrap_or_default();
    Some(own + descendants_resident_bytes(&children, pid, page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_pages_are_the_second_statm_field() {
        assert_eq!(
            parse_resident_pages(b"3054 894 712 184 0 299 0\n"),
            Some(894)
        );
        assert_eq!(parse_resident_pages(b"3054"), None);
        assert_eq!(parse_resident_pages(b""), None);
    }

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parens() {
        let stat = "42 (my (odd) agent) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876 0";
        assert_eq!(parse_parent(stat), Some(7));
        assert_eq!(parse_group(stat), Some(42));
        assert_eq!(parse_start_time(stat), Some(9876));
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
    fn this_process_reads_as_resident() {
        assert!(resident_bytes("/proc/self/statm", 4096).is_some_and(|b| b > 0));
        assert_eq!(resident_bytes("/nonexistent/statm", 4096), None);
        assert!(tree_resident_bytes(std::process::id(), 4096).is_some_and(|b| b > 0));
    }
}
