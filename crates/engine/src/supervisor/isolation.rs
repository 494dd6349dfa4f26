//! A program's own view of the lab's names: a private mount namespace in which
//! `/etc/resolv.conf` names the lab DNS server it is behind and `/etc/hosts` holds localhost
//! only, and its own process group.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::path::Path;

use super::Isolate;

/// The files a program's mount namespace shows at `/etc/resolv.conf` and `/etc/hosts`.
#[derive(Debug)]
pub struct Isolation {
    resolv_conf: CString,
    hosts: CString,
}

impl Isolation {
    /// Writes `resolv.conf` (naming `dns`) and `hosts` (localhost only) into `dir`.
    pub fn write(dir: &Path, dns: Ipv4Addr) -> std::io::Result<Self> {
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
        })
    }
}

impl Isolate for Isolation {
    /// Sets up the namespace in the forked child, before exec: a private mount namespace whose
    /// changes do not propagate back, the two files bind-mounted over the system's, and its own
    /// process group (so a forking agent is signalled whole).
    fn apply(&self, cmd: &mut tokio::process::Command) {
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
