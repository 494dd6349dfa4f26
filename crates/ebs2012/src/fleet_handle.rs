//! What a timeline step or a fix can do to the running fleet: the handle it acts through
//! ([`FleetHandle`]). The fleet (`crate::fleet::Fleet`) is the one implementation; it reads the
//! scenario, and the scenario holds the steps and the fixes, so they know the fleet only by
//! this trait and the scenario's types stay above them.

use std::net::SocketAddr;

use outage_lab_control::api::ThrottleConfig;
use outage_lab_proto::wire::DnsChange;

use crate::names::{Generation, ProcessName};
use crate::plan::{Plan, ServerPlan};
use outage_lab_engine::error::HarnessError;

/// Start a collector, kill processes, restart agents, point a DNS server's record, switch the
/// API's throttle: all through the supervisor and the roles' admin APIs.
// Only used through generic parameters, never as `dyn`, so the future's `Send` bound the lint
// warns about does not matter (the harness runs on one thread).
#[allow(async_fn_in_trait)]
pub trait FleetHandle<'a> {
    /// Where everything lives, and who is stale.
    fn plan(&self) -> &'a Plan;

    /// The scenario's `api.throttle` (what a `throttle` step's `rate` and `burst` default to).
    fn api_throttle(&self) -> ThrottleConfig;

    /// A DNS server's address (for queries), once it is up.
    fn dns_addr(&self, name: &str) -> Option<SocketAddr>;

    /// Why `name`'s exit with `status` was the memory limit's doing, if it was.
    fn limit_explains(&mut self, name: &ProcessName, status: &str) -> Option<String>;

    /// The port every collector serves on (the replacement takes the old one's).
    fn collector_port(&self) -> u16;

    /// Starts a collector listening on `listen`; returns its address.
    async fn start_collector(
        &mut self,
        generation: Generation,
        listen: SocketAddr,
    ) -> Result<SocketAddr, HarnessError>;

    /// SIGKILLs these processes at once (a hardware failure does not shut down cleanly) and
    /// forgets their endpoints. Returns the ones that were running, with their pids.
    async fn kill(
        &mut self,
        names: &[ProcessName],
    ) -> Result<Vec<(ProcessName, u32)>, HarnessError>;

    /// Stops these servers' agents (SIGTERM) and starts them again, each on its old metrics
    /// address; tells the watchdog the new pids.
    async fn restart_agents(&mut self, servers: &[&ServerPlan]) -> Result<(), HarnessError>;

    /// Points `dns_name`'s collector record at the replacement; a failure is a fault of `step`
    /// that could not be injected.
    async fn point_collector_record(&self, dns_name: &str, step: &str) -> Result<(), HarnessError> {
        let addrs = vec![self.plan().collector_new.into()];
        self.change_dns(dns_name, &DnsChange::Set(addrs), step)
            .await
    }

    /// Makes `change` to the collector's name on DNS server `dns_name`; a failure is a fault of
    /// `step` that could not be injected.
    async fn change_dns(
        &self,
        dns_name: &str,
        change: &DnsChange,
        step: &str,
    ) -> Result<(), HarnessError>;

    /// Puts `config`, as the fixes change it (`per_customer_throttling`), in force on control's
    /// API (`PUT /admin/throttle`); returns what control says is in force now.
    async fn set_throttle(&self, config: ThrottleConfig) -> Result<ThrottleConfig, HarnessError>;
}
