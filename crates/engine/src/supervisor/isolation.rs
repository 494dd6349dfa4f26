//! A program's own view of the lab: a private mount namespace in which `/etc/resolv.conf` names
//! the lab DNS server it is behind and `/etc/hosts` holds localhost only, its own process group,
//! and its own PID namespace.
//!
//! The PID namespace is what takes the program's whole tree down with the harness. Only the
//! process the supervisor started gets the parent-death signal; what a program forks would
//! outlive a SIGKILLed harness until the next run's reaper found it. So the program runs as
//! PID 1 of a namespace of its own, under util-linux's `unshare --fork --pid --kill-child`:
//! `unshare` gets the death signal, its death kills PID 1, and the kernel kills every other
//! process of a namespace whose PID 1 is gone. `unshare` passes on the program's exit status.
//! A signal to the process group reaches the program as before; as PID 1 it acts on SIGTERM
//! only if it handles it (the stop's SIGKILL follows after the grace), and what it forked gets
//! SIGTERM like any process. `unshare` costs about 2 MiB of resident memory, mostly file pages,
//! which the watchdog reads with the program's tree.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::Isolate;

/// The files a program's mount namespace shows at `/etc/resolv.conf` and `/etc/hosts`.
#[derive(Debug)]
pub struct Isolation {
    resolv_conf: CString,
    hosts: CString,
    /// util-linux's `unshare`, found on the harness's `PATH`.
    unshare: PathBuf,
}

impl Isolation {
    /// Writes `resolv.conf` (naming `dns`) and `hosts` (localhost only) into `dir`. Fails if
    /// util-linux's `unshare` is not on `PATH`.
    pub fn write(dir: &Path, dns: Ipv4Addr) -> std::io::Result<Self> {
        let path = std::env::var("PATH").unwrap_or_default();
        let unshare = on_path("unshare", &path).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "util-linux's unshare is not on PATH (each program runs in a PID namespace of its own)",
            )
        })?;
        let resolv = dir.join("resolv.conf");
        let hosts = dir.join("hosts");
        std::fs::write(
            &resolv,
            format!(
                "# written by outage-lab: this program resolves through its lab DNS server\nnameserver {dns}\noptions timeout:1 attempts:1\n"
            ),
        )?;
        std::fs::write(&hosts, "127.0.0.1 localhost\n::1 localhost\n")?;
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        Ok(Self {
            resolv_conf: c(&resolv)?,
            hosts: c(&hosts)?,
            unshare,
        })
    }
}

impl Isolate for Isolation {
    /// `unshare --fork --pid --kill-child -- PROGRAM ARGS`, with the mount namespace set up in
    /// the forked child before exec: a private mount namespace whose changes do not propagate
    /// back, the two files bind-mounted over the system's, and its own process group (so a
    /// forking program is signalled whole).
    fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.unshare);
        cmd.args(["--fork", "--pid", "--kill-child", "--"])
            .arg(program)
            .args(args);
        self.mount_namespace(&mut cmd);
        cmd
    }
}

impl Isolation {
    fn mount_namespace(&self, cmd: &mut Command) {
        let resolv = self.resolv_conf.clone();
        let hosts = self.hosts.clone();
        // SAFETY: runs in the forked child before exec; it only makes system calls (setpgid,
        // unshare, mount) on strings prepared before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let ok = |r: libc::c_int| {
                    if r == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                ok(libc::setpgid(0, 0))?;
                ok(libc::unshare(libc::CLONE_NEWNS))?;
                ok(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (source, target) in [(&resolv, c"/etc/resolv.conf"), (&hosts, c"/etc/hosts")] {
                    ok(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                Ok(())
            });
        }
    }
}

/// The first executable file named `name` in the directories of `path` (a `PATH` value).
pub fn on_path(name: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file someone may execute.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
