//! How launchers and the harness find each other: a state directory every container mounts (a
//! compose volume). Each launcher writes a [`Registration`] there once it listens; the harness
//! reads them. The admin token lives there too, created by whichever process needs it first.
//!
//! No DNS and no fixed addresses are needed, so the storage service can be scaled to any size
//! and compose may give containers any address.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The token file's name in the state directory.
pub const TOKEN_FILE: &str = "admin-token";

/// The registrations' subdirectory of the state directory.
const HOSTS_DIR: &str = "hosts";

/// One launcher, as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The compose service it belongs to (`dns`, `storage`, ...).
    pub service: String,
    /// Its host name (the container's, unique per replica).
    pub host: String,
    /// Where its HTTP API listens, on the container's own address.
    pub addr: SocketAddr,
}

/// Writes `reg` into `state/hosts/` atomically (a reader never sees half a file) and returns
/// the file's path. A launcher that restarts overwrites its own entry.
pub fn register(state: &Path, reg: &Registration) -> io::Result<PathBuf> {
    let dir = state.join(HOSTS_DIR);
    std::fs::create_dir_all(&dir)?;
    // Host and address both name the file: containers have distinct host names, launchers
    // started by hand on one machine have distinct addresses.
    let stem = format!(
        "{}.{}.{}-{}",
        reg.service,
        reg.host,
        reg.addr.ip(),
        reg.addr.port()
    );
    let path = dir.join(format!("{stem}.json"));
    let tmp = dir.join(format!(".{stem}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(reg).map_err(io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Every registration in `state/hosts/`, sorted by service and host. Files that do not parse
/// (a foreign file, a partial write from another tool) are skipped.
pub fn registrations(state: &Path) -> io::Result<Vec<Registration>> {
    let dir = state.join(HOSTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        if let Ok(text) = std::fs::read(&path)
            && let Ok(reg) = serde_json::from_slice::<Registration>(&text)
        {
            found.push(reg);
        }
    }
    found.sort_by(|a, b| (&a.service, &a.host).cmp(&(&b.service, &b.host)));
    Ok(found)
}

/// The admin token in `state/admin-token`, created with 128 random bits if absent. Several
/// processes may race here; exactly one file wins (it is linked into place, which fails if the
/// name exists) and all of them return its content.
pub fn load_or_create_token(state: &Path) -> io::Result<String> {
    let path = state.join(TOKEN_FILE);
    if let Some(token) = read_token(&path)? {
        return Ok(token);
    }
    std::fs::create_dir_all(state)?;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = state.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    std::fs::write(&tmp, &token)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    read_token(&path)?.ok_or_else(|| io::Error::other(format!("{} is empty", path.display())))
}

/// The admin token in a file someone else made (a Docker secret, /run/secrets/NAME): its text
/// without surrounding whitespace. An empty file is an error.
pub fn read_token_file(path: &Path) -> io::Result<String> {
    read_token(path)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no token", path.display()),
        )
    })
}

fn read_token(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// This machine's own IPv4 address as other containers reach it: the address `/etc/hosts` gives
/// for this host's name (Docker writes that line for every container).
pub fn advertised_ipv4() -> io::Result<Ipv4Addr> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    let hostname = hostname.trim();
    let hosts = std::fs::read_to_string("/etc/hosts")?;
    parse_hosts_file(&hosts, hostname).ok_or_else(|| {
        io::Error::other(format!(
            "/etc/hosts names no non-loopback IPv4 address for this host ({hostname}); pass --advertise"
        ))
    })
}

/// The first non-loopback IPv4 address that `hosts` (the text of an /etc/hosts file) gives for
/// `hostname`.
pub fn parse_hosts_file(hosts: &str, hostname: &str) -> Option<Ipv4Addr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let ip: Ipv4Addr = fields.next()?.parse().ok()?;
        (!ip.is_loopback() && fields.any(|name| name == hostname)).then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_own_line_in_etc_hosts_gives_its_address() {
        let hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n\
                     # 10.0.0.9 a1b2c3\n127.0.1.1 a1b2c3\n172.18.0.5\ta1b2c3\n";
        assert_eq!(
            parse_hosts_file(hosts, "a1b2c3"),
            Some(Ipv4Addr::new(172, 18, 0, 5))
        );
        assert_eq!(parse_hosts_file(hosts, "other"), None);
    }

    #[test]
    fn registrations_round_trip_and_skip_foreign_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = Registration {
            service: "storage".into(),
            host: "c0ffee".into(),
            addr: "172.18.0.7:7070".parse().expect("addr"),
        };
        register(dir.path(), &reg).expect("register");
        std::fs::write(dir.path().join("hosts/junk.json"), "{").expect("junk");
        assert_eq!(registrations(dir.path()).expect("read"), vec![reg]);
    }

    #[test]
    fn racing_processes_all_get_the_one_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_token(dir.path()).expect("create");
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create_token(dir.path()).expect("load"), first);
    }
}
