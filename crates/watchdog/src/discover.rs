//! Finding what to watch by scanning /proc, for runs where no harness can `PUT /targets`.
//!
//! Under `docker compose` the harness does not start the agents and storage processes: each
//! storage-server container starts its own pair. The containers share the watchdog's PID
//! namespace, so the watchdog sees every process in its own /proc and reads their resident
//! memory from the kernel exactly as in a local run. What it needs is which processes are agents
//! and storage servers, and of which server: that is on their command line,
//! `outage-lab agent|storage ... --server NAME ...`. Nothing here asks a process about itself:
//! a leaking process's own figure is never trusted, only the kernel's.
//!
//! Local runs keep using `PUT /targets`; this is the other way to fill the same list.

use std::path::Path;

use outage_lab_ebs_events::ProcessRole;
use outage_lab_ebs_events::wire::Target;

/// The binary name a watched process must run (the last component of `argv[0]`).
const BINARY: &str = "outage-lab";

/// What a command line says about a process: its role and its server, if it is one we watch.
pub fn parse_cmdline(cmdline: &[u8]) -> Option<(ProcessRole, String)> {
    // /proc/PID/cmdline is argv joined by NULs, with a trailing NUL.
    let mut args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| std::str::from_utf8(a).ok());
    let program = args.next()??;
    if program.rsplit('/').next() != Some(BINARY) {
        return None;
    }
    let role = match args.next()?? {
        "agent" => ProcessRole::Agent,
        "storage" => ProcessRole::Storage,
        _ => return None,
    };
    let mut server = None;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if arg == "--server" {
            server = Some(args.next()??.to_owned());
        } else if let Some(name) = arg.strip_prefix("--server=") {
            server = Some(name.to_owned());
        }
    }
    server.filter(|s| !s.is_empty()).map(|s| (role, s))
}

/// Every agent and storage process under `proc_root` (normally `/proc`) that names its server,
/// sorted by server then role, each with `budget_bytes` as its server's budget. Processes that
/// vanish during the scan, or whose command line cannot be read, are skipped: the next scan
/// sees the fleet as it is then.
pub fn scan(proc_root: &Path, budget_bytes: u64) -> std::io::Result<Vec<Target>> {
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if let Some((role, server)) = parse_cmdline(&cmdline) {
            targets.push(Target {
                server,
                role,
                pid,
                budget_bytes,
                // Only a metrics label; the command line does not say it. The compose harness
                // knows the assignment and can label the metrics itself.
                stale: false,
                cache_url: None,
                tree: false,
                reader: None,
            });
        }
    }
    targets.sort_by(|a, b| (&a.server, a.role, a.pid).cmp(&(&b.server, b.role, b.pid)));
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for a in args {
            out.extend_from_slice(a.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn an_agent_command_line_names_its_role_and_server() {
        let line = argv(&[
            "/outage-lab",
            "agent",
            "--config",
            "/c.json",
            "--server",
            "s007",
        ]);
        assert_eq!(
            parse_cmdline(&line),
            Some((ProcessRole::Agent, "s007".to_owned()))
        );
        let line = argv(&[
            "outage-lab",
            "storage",
            "--server=s012",
            "--listen",
            "0.0.0.0:0",
        ]);
        assert_eq!(
            parse_cmdline(&line),
            Some((ProcessRole::Storage, "s012".to_owned()))
        );
    }

    #[test]
    fn other_processes_and_unnamed_servers_are_not_watched() {
        for args in [
            &["/outage-lab", "watchdog", "--server", "s001"][..],
            &["/outage-lab", "agent", "--config", "/c.json"][..],
            &["/usr/bin/python3", "agent", "--server", "s001"][..],
            &["/outage-lab", "agent", "--server"][..],
            &[][..],
        ] {
            assert_eq!(parse_cmdline(&argv(args)), None, "{args:?}");
        }
    }

    #[test]
    fn a_scan_lists_every_agent_and_storage_process_by_server() {
        let root = tempfile::tempdir().expect("temp dir");
        let write = |pid: &str, args: &[&str]| {
            let dir = root.path().join(pid);
            std::fs::create_dir(&dir).expect("pid dir");
            std::fs::write(dir.join("cmdline"), argv(args)).expect("cmdline");
        };
        write("40", &["/outage-lab", "storage", "--server", "s002"]);
        write("41", &["/outage-lab", "agent", "--server", "s002"]);
        write("12", &["/outage-lab", "agent", "--server", "s001"]);
        write("1", &["/outage-lab", "watchdog"]);
        std::fs::create_dir(root.path().join("self")).expect("non-pid dir");
        std::fs::create_dir(root.path().join("99")).expect("pid without cmdline");

        let targets = scan(root.path(), 64 << 20).expect("scan");
        let seen: Vec<_> = targets
            .iter()
            .map(|t| (t.server.as_str(), t.role, t.pid, t.budget_bytes))
            .collect();
        assert_eq!(
            seen,
            [
                ("s001", ProcessRole::Agent, 12, 64 << 20),
                ("s002", ProcessRole::Agent, 41, 64 << 20),
                ("s002", ProcessRole::Storage, 40, 64 << 20),
            ]
        );
    }

    #[test]
    fn a_scan_of_the_live_proc_succeeds_and_skips_this_test_process() {
        // The test binary is not `outage-lab`, so nothing of this process is mistaken for a
        // target; the scan of a live /proc must also not fail on processes that come and go.
        let targets = scan(Path::new("/proc"), 1).expect("scan /proc");
        assert!(targets.iter().all(|t| t.pid != std::process::id()));
    }
}
