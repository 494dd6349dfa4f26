//! The DNS role as real DNS clients see it (a resolver, `dig`), before and after its records
//! change and while a fault is on.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use outage_lab_proto::wire::SetRecordMsg;

use crate::support::role::RoleProcess;

/// Asks `server` for collector.lab.internal with a fresh resolver (no cache), over `tcp` or UDP.
fn ask(server: SocketAddr, tcp: bool) -> Vec<IpAddr> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ns = if tcp {
            NameServerConfig::tcp(server.ip())
        } else {
            NameServerConfig::udp(server.ip())
        };
        for c in &mut ns.connections {
            c.port = server.port();
        }
        let resolver = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .build()
        .unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            resolver.lookup_ip("collector.lab.internal."),
        )
        .await
        .expect("DNS answer within 5 s")
        .expect("collector.lab.internal resolves");
        answer.iter().collect()
    })
}

/// A `dns` role process of the real binary.
struct DnsRole {
    _process: RoleProcess,
    dns: SocketAddr,
    admin: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl DnsRole {
    /// Starts `outage-lab dns` with `config` (JSON) and waits for its readiness line.
    fn start(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let args = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
        let process = RoleProcess::start("dns", tmp.path(), config, &args);
        let (dns, admin) = (process.addrs["dns"], process.addrs["admin"]);
        Self {
            _process: process,
            dns,
            admin,
            _tmp: tmp,
        }
    }

    /// `method` on the admin API's `path` with a JSON `body`; panics unless it succeeds.
    fn admin(&self, method: &str, path: &str, body: &str) {
        let client = reqwest::blocking::Client::builder().no_proxy().build();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = (client
            .unwrap()
            .request(method, format!("http://{}{path}", self.admin)))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(5))
        .send()
        .unwrap();
        assert!(
            resp.status().is_success(),
            "{path} answered {}",
            resp.status()
        );
    }

    /// What `dig` says for collector.lab.internal A, asked once, without recursion.
    fn dig(&self) -> String {
        let port = self.dns.port().to_string();
        let server = format!("@{}", self.dns.ip());
        let out = Command::new("dig")
            .args([
                server.as_str(),
                "-p",
                port.as_str(),
                "collector.lab.internal",
                "A",
            ])
            .args(["+tries=1", "+time=5", "+norecurse"])
            .output()
            .expect("dig runs (Debian's bind9-dnsutils; scripts/test installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The `status:` of dig's header line (`NOERROR`, `NXDOMAIN`, `SERVFAIL`).
fn status(dig: &str) -> &str {
    let after = dig
        .split("status: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{dig}"));
    after.split(',').next().unwrap_or_default()
}

/// The number dig's header gives for a section (`ANSWER`, `AUTHORITY`).
fn count(dig: &str, section: &str) -> u32 {
    let after = dig
        .split(&format!("{section}: "))
        .nth(1)
        .unwrap_or_else(|| panic!("{dig}"));
    after.split(',').next().unwrap().trim().parse().unwrap()
}

/// dig's `Query time: N msec`.
fn query_ms(dig: &str) -> u64 {
    let after = dig
        .split("Query time: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{dig}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn dns_answers_change_from_the_old_to_the_new_collector_as_a_real_client_sees_them() {
    let role = DnsRole::start(r#"{"records":{"collector":["127.0.0.10"]},"ttl":"1s"}"#);
    let old: IpAddr = "127.0.0.10".parse().unwrap();
    let new: IpAddr = "127.0.0.11".parse().unwrap();
    assert_eq!(ask(role.dns, false), vec![old], "UDP before the swap");
    assert_eq!(ask(role.dns, true), vec![old], "TCP before the swap");

    let body = serde_json::to_string(&SetRecordMsg { addrs: vec![new] }).unwrap();
    role.admin("PUT", "/records/collector.lab.internal", &body);

    // The set is replaced, not added to: a client sees only the new address.
    assert_eq!(ask(role.dns, false), vec![new], "UDP after the swap");
    assert_eq!(ask(role.dns, true), vec![new], "TCP after the swap");
}

#[test]
fn every_record_fault_is_what_dig_sees() {
    let role = DnsRole::start(r#"{"records":{"collector":["127.0.0.10"]},"ttl":"5s"}"#);
    let seen = role.dig();
    assert_eq!(
        (status(&seen), count(&seen, "ANSWER")),
        ("NOERROR", 1),
        "{seen}"
    );

    // Set by hand.
    role.admin("PUT", "/records/collector", r#"{"addrs":["127.0.0.12"]}"#);
    let seen = role.dig();
    assert!(seen.contains("\tA\t127.0.0.12"), "{seen}");

    // Emptied: NODATA, with the zone's SOA (its minimum, 5, the negative-caching TTL).
    role.admin("PUT", "/records/collector", r#"{"addrs":[]}"#);
    let seen = role.dig();
    assert_eq!(status(&seen), "NOERROR", "{seen}");
    assert_eq!(
        (count(&seen, "ANSWER"), count(&seen, "AUTHORITY")),
        (0, 1),
        "{seen}"
    );
    let soa = (seen.lines())
        .find(|l| l.contains("\tSOA\t"))
        .unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(soa.split_whitespace().last(), Some("5"), "{soa}");

    // Removed: NXDOMAIN.
    role.admin("DELETE", "/records/collector", "");
    assert_eq!(status(&role.dig()), "NXDOMAIN");

    // SERVFAIL while the fault is on, the record's answer once it is off.
    role.admin("PUT", "/records/collector", r#"{"addrs":["127.0.0.13"]}"#);
    role.admin("PUT", "/faults/collector", r#"{"answer":"servfail"}"#);
    assert_eq!(status(&role.dig()), "SERVFAIL");
    role.admin("DELETE", "/faults/collector", "");
    assert_eq!(status(&role.dig()), "NOERROR");

    // Delayed: the answer, late.
    role.admin(
        "PUT",
        "/faults/collector",
        r#"{"answer":"delay","by":"800ms"}"#,
    );
    let seen = role.dig();
    assert_eq!(
        (status(&seen), count(&seen, "ANSWER")),
        ("NOERROR", 1),
        "{seen}"
    );
    // dig tells whole milliseconds, cut down, and the server's timer ticks in milliseconds: an
    // 800 ms delay was once told as 799 (in CI). An answer at once takes 0-1 ms here.
    assert!(query_ms(&seen) >= 790, "{seen}");
}
