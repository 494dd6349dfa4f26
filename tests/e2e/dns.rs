//! The DNS role as a real DNS client sees it, before and after the collector's record changes.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use outage_lab_proto::Event;
use outage_lab_proto::wire::SetRecordMsg;

use crate::support::bin;

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

#[test]
fn dns_answers_change_from_the_old_to_the_new_collector_as_a_real_client_sees_them() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("dns.json");
    std::fs::write(
        &config,
        r#"{"records":{"collector":["127.0.0.10"]},"ttl":"1s"}"#,
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args([
            "dns",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill and reap on every path out of this test.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Reap(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(Event::Ready { addrs, .. }) = serde_json::from_str::<Event>(&line) {
                let _ = tx.send(addrs);
            }
        }
    });
    let addrs = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the dns role announced readiness");
    let dns = addrs["dns"];
    let admin = addrs["admin"];

    let old: IpAddr = "127.0.0.10".parse().unwrap();
    let new: IpAddr = "127.0.0.11".parse().unwrap();
    assert_eq!(ask(dns, false), vec![old], "UDP before the swap");
    assert_eq!(ask(dns, true), vec![old], "TCP before the swap");

    let resp = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(format!("http://{admin}/records/collector.lab.internal"))
        .json(&SetRecordMsg { addrs: vec![new] })
        .timeout(Duration::from_secs(5))
        .send()
        .unwrap();
    assert!(
        resp.status().is_success(),
        "admin update answered {}",
        resp.status()
    );

    // The set is replaced, not added to: a client sees only the new address.
    assert_eq!(ask(dns, false), vec![new], "UDP after the swap");
    assert_eq!(ask(dns, true), vec![new], "TCP after the swap");
}
