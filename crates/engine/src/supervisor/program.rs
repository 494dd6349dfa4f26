//! Starting a program the engine did not write, here: its own process group, its own view of
//! the system's files ([`Isolate`]), only the environment it is given.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;

use outage_lab_proto::Vocabulary;
use tokio::process::Command;

use super::process::signal_group;
use super::teller::Teller;
use crate::error::HarnessError;

/// What runs a program with its own view of the machine (its namespaces, its process group).
pub trait Isolate: std::fmt::Debug + Sync {
    /// The command that runs `program` (a path) with `args`, isolated.
    fn command(&self, program: &Path, args: &[String]) -> Command;
}

/// A program the lab did not write, ready to start ([`Supervisor::spawn_program`]).
#[derive(Debug)]
pub struct Program<'a> {
    /// The program and its arguments; not empty.
    pub argv: &'a [String],
    /// Its environment besides the inherited variables
    /// ([`outage_lab_host::AGENT_INHERITED_ENV`], from wherever it runs).
    pub env: &'a BTreeMap<String, String>,
    /// Its working directory.
    pub workdir: &'a Path,
    /// Its view of `/etc/resolv.conf` and `/etc/hosts` when it runs here; on a launcher host
    /// the container's own (compose's `dns:`) does that job.
    pub isolation: Option<&'a dyn Isolate>,
    /// Whether its exit on its own is expected (else the journal records a crash).
    pub may_exit: bool,
}

/// Starts an external agent here: its own process group and mount namespace, its whole
/// environment the inherited variables and `program.env`, its output appended to `log`.
pub(super) fn spawn_program_here<E: Vocabulary>(
    name: &str,
    program: &Program<'_>,
    log: &Path,
    mut teller: Teller<E>,
    data_limit: Option<u64>,
) -> Result<u32, HarnessError> {
    let isolation = program.isolation.ok_or_else(|| {
        HarnessError::Start(format!(
            "{name}: an external agent here needs its own resolv.conf"
        ))
    })?;
    let inherited: BTreeMap<String, String> = (outage_lab_host::AGENT_INHERITED_ENV.iter())
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    let path = (program.env.get("PATH").or(inherited.get("PATH"))).map_or("", String::as_str);
    let exe = resolve(&program.argv[0], program.workdir, path).ok_or_else(|| {
        HarnessError::Start(format!(
            "{name}: could not start {:?} (in {}): no such executable file{}",
            program.argv[0],
            program.workdir.display(),
            if program.argv[0].contains('/') {
                String::new()
            } else {
                format!(" on PATH ({path})")
            }
        ))
    })?;
    let mut cmd = isolation.command(&exe, &program.argv[1..]);
    cmd.current_dir(program.workdir)
        .env_clear()
        .envs(inherited)
        .envs(program.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(open_log(log)?))
        .stderr(Stdio::from(open_log(log)?));
    bind_to_harness(&mut cmd, data_limit);
    let mut child = cmd.spawn().map_err(|e| {
        HarnessError::Start(format!(
            "{name}: could not start {:?} (in {}): {e}",
            program.argv[0],
            program.workdir.display()
        ))
    })?;
    let pid = (child.id()).ok_or_else(|| HarnessError::Start(format!("{name}: exited at once")))?;
    teller.pid = pid;
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => outage_lab_host::describe_status(status),
            Err(e) => format!("wait failed: {e}"),
        };
        // What it forked dies with it. The group's id is not reused while any member lives,
        // so this reaches only the program's own processes.
        signal_group(pid, libc::SIGKILL);
        teller.exited(status);
    });
    Ok(pid)
}

/// Where `argv0` is, as `execvp` in `workdir` would find it: a name with a slash is a path
/// (relative to `workdir`), any other is looked up on `path`. `None`: no executable file there.
fn resolve(argv0: &str, workdir: &Path, path: &str) -> Option<std::path::PathBuf> {
    if argv0.contains('/') {
        let exe = workdir.join(argv0);
        super::isolation::is_executable(&exe).then_some(exe)
    } else {
        super::isolation::on_path(argv0, path)
    }
}

/// `log`, opened to append (created if need be): where a process's output goes.
pub(super) fn open_log(log: &Path) -> Result<std::fs::File, HarnessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| HarnessError::io(format!("open {}", log.display()), e))
}

/// What every child started here gets: killed when dropped, killed when the harness dies
/// (`PR_SET_PDEATHSIG`), and its heap capped at `data_limit` bytes when one is given.
pub(super) fn bind_to_harness(cmd: &mut Command, data_limit: Option<u64>) {
    cmd.kill_on_drop(true);
    outage_lab_host::die_with_parent(cmd);
    if let Some(limit) = data_limit {
        limit_data(cmd, limit);
    }
}

/// Sets `RLIMIT_DATA` in the child before exec: its heap cannot grow past `limit` bytes.
fn limit_data(cmd: &mut Command, limit: u64) {
    let rlim = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which
    // is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_DATA, &rlim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn a_program_is_found_as_execvp_finds_it_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not a program").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!("/nonexistent:{}", bin.display());
        assert_eq!(resolve("tool", dir.path(), &path), Some(tool.clone()));
        assert_eq!(resolve("bin/tool", dir.path(), ""), Some(tool));
        assert_eq!(resolve("tool", dir.path(), "/nonexistent"), None);
        assert_eq!(
            resolve("./plain", dir.path(), &path),
            None,
            "not executable"
        );
        assert_eq!(
            resolve("bin", dir.path(), dir.path().to_str().expect("utf-8")),
            None,
            "a directory"
        );
    }
}
