//! The names of the timeline's steps ([`StepKind`]) and of the fixes ([`FixName`]), as the
//! scenario, `--fix` and the journal write them. The run state records them and the steps' and
//! fixes' own modules read the run state, so the names sit below all three.
//!
//! Each is declared once, in a list here ([`step_list!`], [`fix_list!`]): this module makes the
//! names from it, and `steps!` in `crate::steps` and `fixes!` in `crate::fixes` make from the
//! same list the scenario's types and the dispatch to each step's and fix's module (a list
//! names each one's type by its path there). Adding a step or a fix is one line in its list and
//! one module.

/// The timeline's steps: each one's doc, its variant, its type in `crate::steps` and its name.
/// Hands the list to the macro `$then`.
macro_rules! step_list {
    ($then:ident) => {
        $then! {
            /// The collector fails and is replaced: the old collector process is killed (its address
            /// goes dead) and a replacement starts on a new address. DNS still names the old one.
            ReplaceCollector(replace_collector::ReplaceCollector) = "replace_collector",
            /// The collector's A record is changed to the replacement, but only on some DNS servers.
            DnsUpdate(dns_update::DnsUpdate) = "dns_update",
            /// The record is fixed on every DNS server.
            DnsRepair(dns_repair::DnsRepair) = "dns_repair",
            /// DNS breaks the collector's name: emptied, removed, SERVFAIL or slow, on some DNS
            /// servers.
            DnsFault(dns_fault::DnsFaultStep) = "dns_fault",
            /// Agents are restarted (which frees whatever they leaked).
            Restart(restart::Restart) = "restart",
            /// Processes die at once (SIGKILL), as when their hardware fails.
            Kill(kill::Kill) = "kill",
            /// The control plane's API switches its throttling policy.
            Throttle(throttle::Throttle) = "throttle",
        }
    };
}
pub(crate) use step_list;

/// The fixes: each one's doc, its module and field in `fixes:`, its type there and its variant.
/// Hands the list to the macro `$then`.
macro_rules! fix_list {
    ($then:ident) => {
        $then! {
            /// Per-process monitoring with an action: when the leak alarm fires on an agent, the agent
            /// is restarted `reaction` later (a page, a person, a restart).
            leak_alarm_action: LeakAlarmAction = LeakAlarmAction,
            /// Resource limits on storage servers: a kernel-enforced memory limit on each agent, which
            /// is restarted when the kernel kills it, as a service manager would.
            agent_memory_limit: AgentMemoryLimit = AgentMemoryLimit,
            /// DNS changes that propagate reliably: every DNS server is asked for the record after each
            /// change, and a server still answering the old address gets the record again.
            dns_verification: DnsVerification = DnsVerification,
            /// The agent fixed: bounded retry state and backoff (`agent.retry` becomes `mode: fixed`).
            agent_bounded_retry: AgentBoundedRetry = AgentBoundedRetry,
            /// More careful capacity planning: this share of slots filled at placement instead.
            spare_capacity: SpareCapacity = SpareCapacity,
            /// Better general monitoring: the per-server aggregate alarm counts memory in use minus what
            /// the storage cache could give back.
            cache_aware_aggregate_alarm: CacheAwareAggregateAlarm = CacheAwareAggregateAlarm,
            /// Throttling per customer: wherever the API's throttle would be region-wide (`global`), it
            /// is `per_customer` instead, so one customer's storm cannot use up everyone's allowance.
            per_customer_throttling: PerCustomerThrottling = PerCustomerThrottling,
        }
    };
}
pub(crate) use fix_list;

/// Makes [`StepKind`] from [`step_list!`].
macro_rules! step_kinds {
    ($($(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal,)*) => {
        /// Which step, without its settings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum StepKind {
            $($(#[$doc])* $variant,)*
        }

        impl StepKind {
            /// Every kind, in the order they are declared.
            pub const ALL: &[StepKind] = &[$(StepKind::$variant,)*];

            /// The name a scenario and the journal use.
            pub fn name(self) -> &'static str {
                match self {
                    $(StepKind::$variant => $name,)*
                }
            }
        }
    };
}

step_list!(step_kinds);

impl StepKind {
    /// The kind a journal's `fault_injected` names (`None` for a name this build does not know).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// Makes [`FixName`] from [`fix_list!`].
macro_rules! fix_names {
    ($($(#[$doc:meta])* $field:ident: $ty:ident = $variant:ident,)*) => {
        /// Which fix, as `fixes:`, `--fix` and the journal's `fix_applied` name it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FixName {
            $($(#[$doc])* $variant,)*
        }

        impl FixName {
            /// Every fix, in the order they are declared.
            pub const ALL: &[FixName] = &[$(FixName::$variant,)*];
            /// Every fix's name, in the same order.
            pub const NAMES: &[&str] = &[$(stringify!($field),)*];

            /// The name the scenario and the journal use.
            pub fn name(self) -> &'static str {
                match self {
                    $(FixName::$variant => stringify!($field),)*
                }
            }
        }
    };
}

fix_list!(fix_names);

impl FixName {
    /// The fix a name means (`None` for a name this build does not know).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl std::fmt::Display for FixName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
