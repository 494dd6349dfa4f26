//! The address plan of one run: which loopback address every process gets, which DNS server each
//! storage server's agent uses, and which servers end up stale.
//!
//! Addresses: each run takes its own `127.A.0.0/16` (A chosen per run, not from the seed: it only
//! keeps concurrent runs apart and visibly distinct), and every port is chosen by the kernel
//! (bind to port 0), so two runs on one machine never collide. Infrastructure lives in
//! `127.A.0.x`, storage server `i` at `127.A.(1 + i / 250).(1 + i % 250)`.
//!
//! Assignment: storage servers are shuffled with the scenario seed, then split between "behind a
//! DNS server the update reaches" and "behind one it misses" in proportion to how many DNS servers
//! are in each group (largest remainder between two groups, which is the scenario's share of the
//! fleet rounded to the nearest server, ties to the fresh side), then dealt round-robin to the DNS
//! servers of each group.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use outage_lab_proto::spread::splitmix64;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Most DNS servers a scenario may name (they share `127.A.0.2` to `127.A.0.199`).
pub const MAX_DNS_SERVERS: usize = 150;

/// Where everything of one run lives.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The run's second address octet: everything is in `127.<octet>.0.0/16`.
    pub octet: u8,
    /// The DNS servers, in scenario order.
    pub dns: Vec<DnsPlan>,
    /// The collector that fails.
    pub collector_old: Ipv4Addr,
    /// Its replacement.
    pub collector_new: Ipv4Addr,
    /// The watchdog's admin API.
    pub watchdog: Ipv4Addr,
    /// The control plane's HTTP API.
    pub control: Ipv4Addr,
    /// The storage servers, in id order.
    pub servers: Vec<ServerPlan>,
}

/// One DNS server.
#[derive(Debug, Clone, Serialize)]
pub struct DnsPlan {
    /// Name from the scenario.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Whether the scenario's `dns_update` misses it.
    pub stale: bool,
}

/// One storage server (storage process and agent).
#[derive(Debug, Clone, Serialize)]
pub struct ServerPlan {
    /// `s000`, `s001`, ...
    pub id: String,
    /// The storage process's address.
    pub ip: Ipv4Addr,
    /// The DNS server its agent resolves through.
    pub dns_server: String,
    /// Whether that DNS server is one the update misses.
    pub stale: bool,
    /// The agent's own seed, derived from the scenario seed and the server index.
    pub seed: u64,
}

impl Plan {
    /// Plans a run of `servers` storage servers over `dns_names`, of which `stale_dns` are missed
    /// by the update. `octet` is the run's address block.
    pub fn new(
        octet: u8,
        seed: u64,
        servers: usize,
        dns_names: &[String],
        stale_dns: &BTreeSet<String>,
    ) -> Self {
        let infra = |last: u8| Ipv4Addr::new(127, octet, 0, last);
        let dns: Vec<DnsPlan> = dns_names
            .iter()
            .enumerate()
            .map(|(i, name)| DnsPlan {
                name: name.clone(),
                // Validation caps the count, so `2 + i` stays below 200.
                ip: infra(2 + u8::try_from(i).unwrap_or(0)),
                stale: stale_dns.contains(name),
            })
            .collect();
        let fresh_dns: Vec<&str> = dns
            .iter()
            .filter(|d| !d.stale)
            .map(|d| d.name.as_str())
            .collect();
        let stale_dns_list: Vec<&str> = dns
            .iter()
            .filter(|d| d.stale)
            .map(|d| d.name.as_str())
            .collect();

        let stale_count = stale_count(servers, stale_dns_list.len(), dns.len());
        let mut order: Vec<usize> = (0..servers).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));

        let mut assignment = vec![String::new(); servers];
        for (k, &server) in order.iter().enumerate() {
            assignment[server] = if k < stale_count {
                stale_dns_list[k % stale_dns_list.len()].to_owned()
            } else {
                let j = k - stale_count;
                fresh_dns[j % fresh_dns.len()].to_owned()
            };
        }

        let servers = assignment
            .into_iter()
            .enumerate()
            .map(|(i, dns_server)| ServerPlan {
                id: server_id(i),
                ip: server_ip(octet, i),
                stale: stale_dns.contains(&dns_server),
                dns_server,
                seed: splitmix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            })
            .collect();
        Self {
            octet,
            dns,
            collector_old: infra(200),
            collector_new: infra(201),
            watchdog: infra(202),
            control: infra(203),
            servers,
        }
    }

    /// Servers behind a stale DNS server.
    pub fn stale_servers(&self) -> impl Iterator<Item = &ServerPlan> {
        self.servers.iter().filter(|s| s.stale)
    }
}

/// How many of `servers` go behind the `stale` of `total` DNS servers: the stale quota rounded by
/// largest remainder between the two groups (so floor or ceiling of the exact share).
fn stale_count(servers: usize, stale: usize, total: usize) -> usize {
    if stale == 0 || total == 0 {
        return 0;
    }
    if stale == total {
        return servers;
    }
    let exact = servers * stale;
    let floor = exact / total;
    let stale_rem = exact % total;
    let fresh_rem = (servers * (total - stale)) % total;
    // With two groups, exactly one extra seat exists when the remainders are non-zero; it goes to
    // the larger remainder, ties to the fresh side (fewer injected faults when it is a coin toss).
    if stale_rem > fresh_rem {
        floor + 1
    } else {
        floor
    }
}

/// `s000`-style id (wider when the fleet is larger).
pub fn server_id(i: usize) -> String {
    format!("s{i:03}")
}

fn server_ip(octet: u8, i: usize) -> Ipv4Addr {
    // Validation caps the fleet at 2,000, so the third octet stays below 10.
    let third = u8::try_from(1 + i / 250).unwrap_or(255);
    let fourth = u8::try_from(1 + i % 250).unwrap_or(255);
    Ipv4Addr::new(127, octet, third, fourth)
}

/// Picks this run's address block: a number in 16..=254 from the clock and the process id. Not
/// from the seed: two runs with one seed must still land in different blocks.
pub fn pick_octet() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = splitmix64(nanos ^ u64::from(std::process::id()).rotate_left(32));
    16 + (mixed % 239) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("dns-{i}")).collect()
    }

    fn stale(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_stale_count_is_the_share_rounded_to_the_nearest_for_every_fleet_size() {
        for total in 1..=6 {
            for stale_dns in 0..=total {
                for servers in 1..=250 {
                    let got = stale_count(servers, stale_dns, total);
                    let exact = servers as f64 * stale_dns as f64 / total as f64;
                    assert!(
                        (got as f64 - exact).abs() <= 0.5,
                        "servers={servers} stale={stale_dns}/{total}: got {got}, exact {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_third_of_the_fleet_is_stale_when_one_of_three_dns_servers_is_missed() {
        let plan = Plan::new(42, 7, 12, &names(3), &stale(&["dns-2"]));
        assert_eq!(plan.stale_servers().count(), 4);
        for s in &plan.servers {
            assert_eq!(s.stale, s.dns_server == "dns-2");
        }
    }

    #[test]
    fn assignment_is_a_function_of_the_seed() {
        let a = Plan::new(42, 7, 30, &names(3), &stale(&["dns-2"]));
        let b = Plan::new(99, 7, 30, &names(3), &stale(&["dns-2"]));
        let c = Plan::new(42, 8, 30, &names(3), &stale(&["dns-2"]));
        let dns = |p: &Plan| {
            p.servers
                .iter()
                .map(|s| s.dns_server.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            dns(&a),
            dns(&b),
            "the address block must not change the assignment"
        );
        assert_ne!(dns(&a), dns(&c), "another seed should shuffle differently");
    }

    #[test]
    fn every_address_is_distinct_and_inside_the_runs_block() {
        let plan = Plan::new(33, 1, 2_000, &names(3), &stale(&["dns-0"]));
        let mut seen = BTreeSet::new();
        let infra = plan.dns.iter().map(|d| d.ip).chain([
            plan.collector_old,
            plan.collector_new,
            plan.watchdog,
            plan.control,
        ]);
        for ip in infra.chain(plan.servers.iter().map(|s| s.ip)) {
            assert_eq!(ip.octets()[..2], [127, 33]);
            assert!(seen.insert(ip), "{ip} used twice");
        }
    }

    #[test]
    fn no_update_means_no_stale_servers() {
        let plan = Plan::new(42, 7, 10, &names(2), &BTreeSet::new());
        assert_eq!(plan.stale_servers().count(), 0);
    }

    #[test]
    fn picked_octets_stay_in_range() {
        for _ in 0..100 {
            let o = pick_octet();
            assert!((16..=254).contains(&o));
        }
    }
}
