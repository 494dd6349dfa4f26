//! Which storage servers a step acts on: a group the plan decides (`stale`, `fresh`, `all`) or a
//! list of server ids (`[s001, s004]`), optionally cut to the first `count` of them.

use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::plan::{Plan, ServerPlan, server_id};
use outage_lab_engine::located::{Locator, ScenarioError};

/// A set of storage servers named in a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Servers {
    /// Behind the DNS servers the `dns_update` misses (decided by the plan).
    Stale,
    /// Every other server.
    Fresh,
    /// Every server.
    All,
    /// These servers, by id.
    Ids(Vec<Spanned<String>>),
}

impl Servers {
    /// Checks that every id names a server of a fleet of `servers`, once.
    pub fn validate(&self, servers: usize, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let Servers::Ids(ids) = self else {
            return Ok(());
        };
        let mut seen = std::collections::BTreeSet::new();
        for id in ids {
            let known = (0..servers).any(|i| server_id(i) == id.value);
            if !known {
                return Err(loc.at(
                    id,
                    format!(
                        "unknown storage server {:?}; expected an id from {} to {} (the fleet has {servers})",
                        id.value,
                        server_id(0),
                        server_id(servers.saturating_sub(1))
                    ),
                ));
            }
            if !seen.insert(id.value.as_str()) {
                return Err(loc.at(id, format!("storage server {:?} listed twice", id.value)));
            }
        }
        if ids.is_empty() {
            return Err(loc.plain(
                "an empty list of storage servers; expected stale, fresh, all or at least one id"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The servers of `plan` this selects, in id order, at most `count` of them.
    pub fn pick<'p>(&self, plan: &'p Plan, count: Option<u32>) -> Vec<&'p ServerPlan> {
        let chosen = plan.servers.iter().filter(|s| match self {
            Servers::Stale => s.stale,
            Servers::Fresh => !s.stale,
            Servers::All => true,
            Servers::Ids(ids) => ids.iter().any(|id| id.value == s.id),
        });
        let limit = count.map_or(usize::MAX, |c| c as usize);
        chosen.take(limit).collect()
    }
}

impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Servers::Stale => f.write_str("stale"),
            Servers::Fresh => f.write_str("fresh"),
            Servers::All => f.write_str("all"),
            Servers::Ids(ids) => {
                let ids: Vec<&str> = ids.iter().map(|i| i.value.as_str()).collect();
                write!(f, "[{}]", ids.join(", "))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ServersVisitor)
    }
}

struct ServersVisitor;

const EXPECTED: &str = "stale, fresh, all, or a list of storage server ids such as [s001, s004]";

impl<'de> serde::de::Visitor<'de> for ServersVisitor {
    type Value = Servers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Servers, E> {
        match v {
            "stale" => Ok(Servers::Stale),
            "fresh" => Ok(Servers::Fresh),
            "all" => Ok(Servers::All),
            other => Err(E::custom(format!(
                "unknown group `{other}`; expected {EXPECTED}"
            ))),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Servers, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element::<Spanned<String>>()? {
            ids.push(id);
        }
        Ok(Servers::Ids(ids))
    }
}
