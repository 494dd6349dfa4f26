//! Fix `serve_stale`, as RFC 8767 has resolvers do: when a lookup fails or finds no address, the
//! client uses the last good answer it had for the name instead of failing. Without it, a name
//! emptied upstream fails every new connection for as long as the outage and the negative cache
//! last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The last good answer of each name.
#[derive(Debug, Default)]
pub(crate) struct LastGood {
    answers: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl LastGood {
    /// What the client uses for `name`, given what the lookup found (`None`: it failed or was
    /// empty): the fresh answer, kept as the last good one; else the last good one if there is
    /// one, flagged as stale.
    pub(crate) fn answer(
        &self,
        name: &str,
        found: Option<Vec<IpAddr>>,
    ) -> Option<(Vec<IpAddr>, bool)> {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        match found {
            Some(addrs) => {
                answers.insert(name.to_owned(), addrs.clone());
                Some((addrs, false))
            }
            None => answers.get(name).map(|addrs| (addrs.clone(), true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_lookup_gets_the_last_good_answer_and_a_name_never_seen_gets_none() {
        let last = LastGood::default();
        let good = vec![IpAddr::from([127, 0, 9, 1])];
        assert_eq!(last.answer("kv", None), None);
        assert_eq!(
            last.answer("kv", Some(good.clone())),
            Some((good.clone(), false))
        );
        assert_eq!(last.answer("kv", None), Some((good, true)));
        assert_eq!(last.answer("other", None), None);
    }
}
