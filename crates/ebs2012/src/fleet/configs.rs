//! The config file of every role process, made from the scenario: the one place where a
//! scenario's sections turn into the role crates' `Config`s. Anything a section does not set
//! keeps the role's own default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use outage_lab_proto::spread::splitmix64;

use crate::plan::ServerPlan;
use crate::scenario::Scenario;

/// A probe is one request with the storage deadline; the network gets this much more.
const PROBE_SLACK: Duration = Duration::from_millis(150);

/// The agent of `server`, resolving through `dns` and reporting to `collector_port`.
pub fn agent(
    scenario: &Scenario,
    server: &ServerPlan,
    dns: SocketAddr,
    collector_port: u16,
) -> outage_lab_agent::Config {
    let retry = scenario.fixes.agent_retry(&scenario.agent.retry);
    outage_lab_agent::Config {
        server: server.id.clone(),
        dns_server: dns,
        collector_port,
        // Each agent's own draw from the fleet's ranges, from its own seed.
        report_interval: (scenario.agent.report_interval.value).draw(splitmix64(server.seed ^ 1)),
        request_timeout: scenario.agent.request_timeout,
        retry: retry.draw(splitmix64(server.seed ^ 2)),
        seed: server.seed,
        ..outage_lab_agent::Config::default()
    }
}

/// The storage process of server `id`, which finds its agent's pid in `pid_file`.
pub fn storage(scenario: &Scenario, id: &str, pid_file: PathBuf) -> outage_lab_storage::Config {
    outage_lab_storage::Config {
        server: id.to_owned(),
        budget: scenario.fleet.memory_budget.value,
        fill_fraction: scenario.storage.fill_fraction.value,
        agent_pid_file: Some(pid_file),
        agent_tree: scenario.agent.command.is_some(),
        working_set: scenario.storage.working_set.value,
        miss_penalty: scenario.storage.miss_penalty,
        request_deadline: scenario.storage.request_deadline,
        replica_size: scenario.volumes.replica_size,
        probe_blocks: scenario.volumes.probe.blocks,
        ..outage_lab_storage::Config::default()
    }
}

/// The control plane, for these storage servers.
pub fn control(
    scenario: &Scenario,
    servers: Vec<outage_lab_control::ServerEntry>,
    seed: u64,
) -> outage_lab_control::Config {
    let v = &scenario.volumes;
    outage_lab_control::Config {
        servers,
        slots_per_server: v.slots_per_server,
        placement_fill: scenario.fixes.placement_fill(v.placement_fill),
        blocks_per_volume: v.blocks_per_volume,
        probe_interval: v.probe.interval,
        probe_timeout: HumanDuration(scenario.storage.request_deadline.get() + PROBE_SLACK),
        probe_window: v.probe.window,
        fail_after: v.probe.fail_after,
        recover_after: v.probe.recover_after,
        failovers_per_second: v.failovers_per_second,
        seed,
        api: outage_lab_control::api::ApiConfig {
            throttle: scenario.fixes.throttle(scenario.api.throttle),
            ..scenario.api.config(&scenario.customers)
        },
        ..outage_lab_control::Config::new(Vec::new())
    }
}

/// The watchdog.
pub fn watchdog(scenario: &Scenario) -> outage_lab_watchdog::Config {
    let mut aggregate = scenario.watchdog.aggregate.clone();
    if let Some(fix) = &scenario.fixes.cache_aware_aggregate_alarm {
        aggregate.net_of_cache = true;
        aggregate.threshold = fix.threshold;
    }
    outage_lab_watchdog::Config {
        sample_interval: scenario.watchdog.sample_interval,
        leak: scenario.watchdog.leak.clone(),
        aggregate,
        admin_token: None,
    }
}

/// `outage-lab <role> --config <file> [--flag value]...`.
pub fn role_args(role: &str, config: &Path, flags: &[(&str, String)]) -> Vec<String> {
    let mut args = vec![
        role.to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ];
    for (flag, value) in flags {
        args.push((*flag).to_owned());
        args.push(value.clone());
    }
    args
}
