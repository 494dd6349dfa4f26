//! Where volumes go: the initial placement and the choice of a new mirror. Pure functions.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// One volume's two replicas, by index into the server list: `(primary, mirror)`.
pub(crate) type Pair = (usize, usize);

/// How many volumes `servers` servers with `slots` replica slots each hold when a `fill` share
/// of the slots is used: every volume takes two slots.
pub(crate) fn volume_count(servers: usize, slots: u32, fill: f64) -> usize {
    let total = servers as f64 * f64::from(slots) * fill;
    // f64 -> usize saturates; the inputs are validated to be small.
    (total / 2.0).floor() as usize
}

/// Places `volumes` volumes on `servers` servers: primary and mirror on two different servers,
/// no server above `slots` replicas, servers loaded evenly.
///
/// Placement goes in rounds: each round shuffles the servers (seeded) and pairs neighbours, so
/// every server gets one replica per round and the pairs differ from round to round (no two
/// servers are each other's only partners). `None` if the volumes cannot fit.
pub(crate) fn place(servers: usize, slots: u32, volumes: usize, seed: u64) -> Option<Vec<Pair>> {
    if volumes == 0 {
        return Some(Vec::new());
    }
    if servers < 2 || volumes.checked_mul(2)? > servers.checked_mul(slots as usize)? {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut load = vec![0_u32; servers];
    let mut pairs = Vec::with_capacity(volumes);
    let mut order: Vec<usize> = (0..servers).collect();
    while pairs.len() < volumes {
        order.shuffle(&mut rng);
        // Least loaded first (stable: the shuffle breaks ties), so an odd server left out of
        // one round goes first in the next.
        order.sort_by_key(|&s| load[s]);
        let mut progressed = false;
        for pair in order.chunks_exact(2) {
            if pairs.len() == volumes {
                break;
            }
            let (a, b) = (pair[0], pair[1]);
            if load[a] >= slots || load[b] >= slots {
                continue;
            }
            load[a] += 1;
            load[b] += 1;
            pairs.push((a, b));
            progressed = true;
        }
        if !progressed {
            return None;
        }
    }
    Some(pairs)
}

/// The server to receive a new mirror: healthy, not already holding the volume, with a free slot;
/// the least loaded one, then the lowest index (deterministic). `None`: no capacity anywhere.
pub(crate) fn choose_target(
    load: &BTreeMap<usize, u32>,
    healthy: &[bool],
    holders: &[usize],
    slots: u32,
) -> Option<usize> {
    (0..healthy.len())
        .filter(|s| healthy[*s] && !holders.contains(s))
        .map(|s| (load.get(&s).copied().unwrap_or(0), s))
        .filter(|(l, _)| *l < slots)
        .min()
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(servers: usize, pairs: &[Pair]) -> Vec<u32> {
        let mut l = vec![0; servers];
        for &(a, b) in pairs {
            l[a] += 1;
            l[b] += 1;
        }
        l
    }

    #[test]
    fn placement_stays_within_capacity_and_never_pairs_a_server_with_itself() {
        for servers in [2, 3, 12, 13, 200] {
            for fill in [0.4, 0.75, 1.0] {
                let n = volume_count(servers, 8, fill);
                let pairs = place(servers, 8, n, 7).expect("fits");
                assert_eq!(pairs.len(), n);
                assert!(pairs.iter().all(|(a, b)| a != b));
                let l = loads(servers, &pairs);
                assert!(l.iter().all(|&x| x <= 8), "{servers} {fill} {l:?}");
                let (min, max) = (l.iter().min(), l.iter().max());
                assert!(
                    max.zip(min).is_some_and(|(hi, lo)| hi - lo <= 1),
                    "loads are even: {l:?}"
                );
            }
        }
    }

    #[test]
    fn placement_is_seeded_and_spreads_partners() {
        assert_eq!(place(12, 8, 36, 1), place(12, 8, 36, 1));
        assert_ne!(place(12, 8, 36, 1), place(12, 8, 36, 2));
        let pairs = place(12, 8, 36, 1).expect("fits");
        let partners_of_0: std::collections::BTreeSet<usize> = pairs
            .iter()
            .filter_map(|&(a, b)| (a == 0).then_some(b).or((b == 0).then_some(a)))
            .collect();
        assert!(partners_of_0.len() >= 3, "{partners_of_0:?}");
    }

    #[test]
    fn placement_refuses_what_cannot_fit() {
        assert_eq!(place(1, 8, 1, 0), None);
        assert_eq!(place(4, 2, 5, 0), None);
        assert_eq!(place(4, 2, 4, 0).map(|p| p.len()), Some(4));
        assert_eq!(place(0, 2, 0, 0), Some(Vec::new()));
    }

    #[test]
    fn a_new_mirror_goes_to_the_least_loaded_healthy_server_with_room() {
        let load = BTreeMap::from([(0, 3), (1, 1), (2, 0), (3, 2)]);
        // Server 2 is the emptiest but unhealthy; server 1 holds the volume already.
        let healthy = [true, true, false, true];
        assert_eq!(choose_target(&load, &healthy, &[1], 3), Some(3));
        assert_eq!(
            choose_target(&load, &healthy, &[1, 3], 3),
            None,
            "0 is full"
        );
        assert_eq!(choose_target(&load, &healthy, &[1, 3], 4), Some(0));
    }
}
