//! Containment: the harness makes real processes leak real memory, so it must never take the
//! machine down with them.
//!
//! Two lines of defence:
//! 1. **Before anything starts**, [`worst_case`] bounds what the scenario can use (every server
//!    at its budget, or its agent at the leak ceiling beside an idle storage process, whichever is
//!    larger, plus the infrastructure) and the run is refused with exit 2 if that exceeds the
//!    limit: by default three quarters of the memory available now, or `--memory-limit`.
//! 2. **During the run**, [`MemoryGuard`] adds up every watchdog sweep; if the real total ever
//!    crosses the limit (an estimate was wrong), the run is stopped cleanly and fails with
//!    `memory_contained`.

use std::fmt;

use outage_lab_agent::RetryPolicyOf;
use outage_lab_proto::ByteSize;

use crate::scenario::Scenario;

/// Resident memory allowed for an idle agent in the estimate (measured: about 8MiB in a release
/// build, 16MiB in a debug build).
pub const AGENT_IDLE: ByteSize = ByteSize::mib(16);
/// Resident memory allowed for a storage process without its cache (measured: about 7MiB
/// release, 14MiB debug).
pub const STORAGE_BASE: ByteSize = ByteSize::mib(16);
/// Allowance per infrastructure process (DNS servers, collectors, watchdog).
pub const INFRA_PROCESS: ByteSize = ByteSize::mib(32);
/// Allowance for the harness itself.
pub const HARNESS: ByteSize = ByteSize::mib(64);
/// Share of the memory available now that a run may use by default.
pub const DEFAULT_SHARE: f64 = 0.75;

/// The estimate, with its parts, so a refusal can show the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Storage servers.
    pub servers: u64,
    /// Worst case of one server.
    pub per_server: u64,
    /// Worst case of the infrastructure and the harness.
    pub infra: u64,
}

impl Estimate {
    /// The total.
    pub fn total(&self) -> u64 {
        self.servers
            .saturating_mul(self.per_server)
            .saturating_add(self.infra)
    }
}

/// The most memory a run of `scenario` can use.
pub fn worst_case(scenario: &Scenario) -> Estimate {
    let retry = scenario.fixes.agent_retry(&scenario.agent.retry);
    let leak_ceiling = match &retry {
        // The spool is on disk (page cache the kernel can reclaim): only the leak counts.
        RetryPolicyOf::Leaky { ceiling, .. } => ceiling.bytes(),
        // Bounded retry state: a few reports, no payload.
        RetryPolicyOf::Fixed { .. } => ByteSize::mib(1).bytes(),
    };
    let budget = scenario.fleet.memory_budget.value.bytes();
    // The storage cache fills what the budget leaves, so a server sits at its budget, unless the
    // agent alone outgrows it: then it is the agent at its ceiling beside a cache-less storage.
    // Volume replicas are real memory too: a server full of them may hold every slot.
    let replicas = u64::from(scenario.volumes.slots_per_server)
        .saturating_mul(scenario.volumes.replica_size.bytes());
    let leaking = AGENT_IDLE
        .bytes()
        .saturating_add(leak_ceiling)
        .saturating_add(STORAGE_BASE.bytes())
        .saturating_add(replicas);
    let per_server = budget.max(leaking);
    // DNS servers, two collectors, the watchdog and control.
    let infra_processes = scenario.dns.servers.len() as u64 + 4;
    Estimate {
        servers: scenario.servers() as u64,
        per_server,
        infra: infra_processes * INFRA_PROCESS.bytes() + HARNESS.bytes(),
    }
}

/// `MemAvailable` from /proc/meminfo, in bytes.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory a run may use, and where that number comes from (a refusal says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The limit, in bytes.
    pub bytes: u64,
    /// Where it comes from.
    pub from: LimitFrom,
}

/// Where a [`Limit`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitFrom {
    /// `--memory-limit`, as given.
    Flag(ByteSize),
    /// [`DEFAULT_SHARE`] of the memory available now (`MemAvailable`, in bytes).
    Available(u64),
}

impl fmt::Display for LimitFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(limit) => write!(f, "--memory-limit {limit}"),
            Self::Available(available) => write!(
                f,
                "{:.0}% of the {} available now",
                DEFAULT_SHARE * 100.0,
                gib(*available)
            ),
        }
    }
}

/// Why a run may not start: it could outgrow the machine, or the machine's memory is unknown.
/// Bad input either way (exit 2): nothing was started, and a flag changes the answer.
#[derive(Debug, thiserror::Error)]
pub enum ContainmentError {
    /// No `--memory-limit`, and /proc/meminfo does not say what is available.
    #[error("cannot read MemAvailable from /proc/meminfo; pass --memory-limit")]
    NoMemAvailable,
    /// The scenario's worst case is over the limit; the message shows the arithmetic.
    #[error(
        "the worst case of this scenario is {} ({} servers x {} each: the larger of the {budget} budget and an agent at its leak ceiling beside an idle storage process; plus {} for DNS servers, collectors, watchdog and harness), over the limit of {} ({}). Lower fleet.servers, fleet.memory_budget or agent.retry.ceiling, or raise --memory-limit knowingly.",
        gib(.estimate.total()),
        .estimate.servers,
        ByteSize(.estimate.per_server.next_multiple_of(1024 * 1024)),
        gib(.estimate.infra),
        gib(.limit.bytes),
        .limit.from
    )]
    OverLimit {
        /// The worst case, with its parts.
        estimate: Estimate,
        /// Each server's memory budget (`fleet.memory_budget`).
        budget: ByteSize,
        /// The limit it is over.
        limit: Limit,
    },
}

/// The limit a run may use: `--memory-limit`, or [`DEFAULT_SHARE`] of what is available now.
pub fn limit(explicit: Option<ByteSize>) -> Result<Limit, ContainmentError> {
    if let Some(limit) = explicit {
        return Ok(Limit {
            bytes: limit.bytes(),
            from: LimitFrom::Flag(limit),
        });
    }
    let available = available_memory().ok_or(ContainmentError::NoMemAvailable)?;
    Ok(Limit {
        bytes: (available as f64 * DEFAULT_SHARE) as u64,
        from: LimitFrom::Available(available),
    })
}

/// Refuses a scenario whose worst case exceeds the limit, with the arithmetic.
pub fn check(
    scenario: &Scenario,
    explicit: Option<ByteSize>,
) -> Result<Estimate, ContainmentError> {
    let estimate = worst_case(scenario);
    let limit = limit(explicit)?;
    if estimate.total() > limit.bytes {
        return Err(ContainmentError::OverLimit {
            estimate,
            budget: scenario.fleet.memory_budget.value,
            limit,
        });
    }
    Ok(estimate)
}

fn gib(bytes: u64) -> String {
    format!("{:.1}GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Watches the real total during a run.
#[derive(Debug, Clone, Copy)]
pub struct MemoryGuard {
    limit: u64,
}

impl MemoryGuard {
    /// A guard that trips above `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { limit }
    }

    /// Checks one sweep's total (every agent and storage process); `Some(reason)` means stop.
    pub fn check(&self, total: u64) -> Option<String> {
        (total > self.limit).then(|| {
            format!(
                "the run's processes reached {} resident, over the limit of {}; stopped before the machine was in trouble",
                gib(total),
                gib(self.limit)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "name: t\nduration: 10s\nfleet: {{ servers: 100, memory_budget: 48MiB }}\ndns: {{ servers: [a, b, c] }}\n{extra}"
        );
        Scenario::parse(&text, "t.yaml").expect("valid")
    }

    #[test]
    fn a_leaking_server_is_bounded_by_its_agent_ceiling_when_that_exceeds_the_budget() {
        let e = worst_case(&scenario(""));
        // Default leak ceiling 32MiB + 16MiB idle agent + 16MiB storage + 8 replica slots of
        // 256KiB = 66MiB > 48MiB budget.
        assert_eq!(e.per_server, ByteSize::mib(66).bytes());
        assert_eq!(e.servers, 100);
        assert_eq!(
            e.infra,
            7 * ByteSize::mib(32).bytes() + ByteSize::mib(64).bytes()
        );
    }

    #[test]
    fn a_fixed_agent_server_is_bounded_by_its_budget() {
        let e = worst_case(&scenario(
            "agent: { retry: { mode: fixed, max_pending: 8, backoff_base: 100ms, backoff_max: 2s } }\n",
        ));
        assert_eq!(e.per_server, ByteSize::mib(48).bytes());
    }

    #[test]
    fn an_oom_sized_agent_is_refused_with_the_numbers() {
        let s = scenario(
            "agent: { retry: { mode: leaky, retained_per_failure: 64KiB, ceiling: 64GiB } }\n",
        );
        let err = check(&s, Some(ByteSize(16 << 30)))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("over the limit of 16.0GiB"), "{err}");
        assert!(err.contains("100 servers"), "{err}");
        assert!(err.contains("--memory-limit"), "{err}");
    }

    #[test]
    fn the_default_scenario_fits_the_default_limit_on_a_24_gib_machine() {
        let e = worst_case(&scenario(""));
        assert!(e.total() < (0.75 * 22.0 * (1u64 << 30) as f64) as u64);
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(23_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_guard_trips_only_above_the_limit() {
        let g = MemoryGuard::new(1000);
        assert!(g.check(1000).is_none());
        assert!(g.check(1001).is_some());
    }
}
