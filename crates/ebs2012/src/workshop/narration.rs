//! What happened at each link in October 2012, in our own words, from AWS's public post-mortem
//! ("Summary of the October 22, 2012 AWS Service Event in the US-East Region"); times are
//! Pacific, and approximate where the post-mortem is. Each link also carries one question for the
//! room and the answer the facilitator's guide (docs/src/workshop.md) gives.

use super::links::Link;

/// One link's story.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Narration {
    /// A short title.
    pub title: &'static str,
    /// When it happened in 2012.
    pub when_2012: &'static str,
    /// What happened then.
    pub then_2012: &'static str,
    /// The question for the room.
    pub question: &'static str,
    /// Its answer.
    pub answer: &'static str,
}

/// The story of `link`.
pub fn of(link: Link) -> Narration {
    match link {
        Link::CollectorReplaced => COLLECTOR_REPLACED,
        Link::DnsUpdated => DNS_UPDATED,
        Link::FirstFailedReport => FIRST_FAILED_REPORT,
        Link::FirstLeakAlarm => FIRST_LEAK_ALARM,
        Link::AggregateSilent => AGGREGATE_SILENT,
        Link::FirstServerCannotServe => FIRST_SERVER_CANNOT_SERVE,
        Link::FirstStuckVolume => FIRST_STUCK_VOLUME,
        Link::FailoverWithoutCapacity => FAILOVER_WITHOUT_CAPACITY,
        Link::Repair => REPAIR,
        Link::Recovery => RECOVERY,
    }
}

/// The story of [`Link::CollectorReplaced`].
const COLLECTOR_REPLACED: Narration = Narration {
    title: "A collector is replaced",
    when_2012: "the week before Monday 22 October",
    then_2012: "One of the servers that collect maintenance reports from an agent on every \
                EBS storage server failed and was replaced by a new machine on a new address.",
    question: "Which systems need to learn the new address, and how will they?",
    answer: "Every agent, through the internal DNS record; nothing else tells them.",
};

/// The story of [`Link::DnsUpdated`].
const DNS_UPDATED: Narration = Narration {
    title: "DNS changes on some servers only",
    when_2012: "the week before, right after the replacement",
    then_2012: "The record was changed to the new address, but the change did not reach \
                every internal DNS server. Agents behind the ones it missed kept the old, \
                dead address.",
    question: "How would you know a DNS change reached every server?",
    answer: "Ask each one (dig against every server) and alarm when they disagree: one of \
             the fixes AWS announced.",
};

/// The story of [`Link::FirstFailedReport`].
const FIRST_FAILED_REPORT: Narration = Narration {
    title: "Reports fail, and nobody is paged",
    when_2012: "from that week until Monday",
    then_2012: "Agents on the stale servers could not reach the collector. Collection \
                tolerates late and missing data, so the missing reports raised no alarm.",
    question: "Which monitor could have noticed, and why did it not page anyone?",
    answer: "The collector saw those agents go silent, but missing maintenance data is \
             normal for it, so silence was not an alert.",
};

/// The story of [`Link::FirstLeakAlarm`].
const FIRST_LEAK_ALARM: Narration = Narration {
    title: "The per-process leak alarm fires",
    when_2012: "none then: this alarm came after 2012",
    then_2012: "The agent kept every failed report and retried, slowly using more memory. \
                No alarm watched one process's memory: the per-process alarm you see is \
                the monitoring AWS added afterwards.",
    question: "Which agents is it firing on, and what do they have in common?",
    answer: "Exactly the agents behind the stale DNS server: the leak follows the DNS split.",
};

/// The story of [`Link::AggregateSilent`].
const AGGREGATE_SILENT: Narration = Narration {
    title: "The aggregate alarm stays silent",
    when_2012: "over the weekend",
    then_2012: "Memory was watched per server, in aggregate. EBS servers use all spare \
                memory to cache customer data, so the cache shrank as the agent grew and \
                the server's total stayed where it always was.",
    question: "Could any threshold on the server's total have caught this leak?",
    answer: "No: total memory sits near the cache's fill level on healthy and leaking \
             servers alike. Lower it and it fires on every server; keep it and it never does.",
};

/// The story of [`Link::FirstServerCannotServe`].
const FIRST_SERVER_CANNOT_SERVE: Narration = Narration {
    title: "A server cannot keep up",
    when_2012: "Monday, about 10:00",
    then_2012: "With the cache squeezed out by the leak, servers went to disk for more and \
                more reads and could no longer keep up with request handling.",
    question: "Why does a memory leak show up as slow I/O first?",
    answer: "The leak takes the cache's memory; misses go to the disk, whose queue grows \
             until requests miss their deadlines.",
};

/// The story of [`Link::FirstStuckVolume`].
const FIRST_STUCK_VOLUME: Narration = Narration {
    title: "Volumes get stuck",
    when_2012: "Monday, from about 10:00",
    then_2012: "Volumes on degraded servers could no longer process I/O: a few at first, \
                then quickly more.",
    question: "What do the customers of a stuck volume see, and what do they do next?",
    answer: "Their I/O hangs; many retry or ask the API for replacement volumes, adding load.",
};

/// The story of [`Link::FailoverWithoutCapacity`].
const FAILOVER_WITHOUT_CAPACITY: Narration = Narration {
    title: "Failover runs out of room",
    when_2012: "Monday, by about 11:00",
    then_2012: "The system moved volumes off degraded servers, but so many servers degraded \
                together that there was not enough healthy capacity, and more volumes got \
                stuck.",
    question: "Why does failover make a correlated failure worse?",
    answer: "Every failed server's volumes compete for the same little spare room, and \
             the copies load the servers that are still healthy.",
};

/// The story of [`Link::Repair`].
const REPAIR: Narration = Narration {
    title: "The root cause is found",
    when_2012: "Monday afternoon, roughly five hours in",
    then_2012: "Engineers traced the degradation to the agents' leak and the stale DNS \
                record, fixed the record and began freeing the leaked memory.",
    question: "What would have found it in minutes instead of hours?",
    answer: "A per-process memory alarm on the agents, and an alarm when DNS servers \
             disagree about a record.",
};

/// The story of [`Link::Recovery`].
const RECOVERY: Narration = Narration {
    title: "Recovery",
    when_2012: "Monday, about 16:15 for most volumes",
    then_2012: "With memory freed, most volumes were back about an hour after the root \
                cause was found; some effects (load balancers) lasted into the evening.",
    question: "Which single fix would have prevented the outage?",
    answer: "Any of: bounded retry in the agent, a memory limit on it, per-process \
             memory alarms, or verified DNS propagation; `outage-lab compare` measures each.",
};
/// 2012's time from the start of the degradation to the root cause, for the summary.
pub const ROOT_CAUSE_2012: &str = "about five hours";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_has_a_story_a_question_and_an_answer() {
        for link in Link::ALL {
            let n = of(link);
            for (what, text) in [
                ("title", n.title),
                ("when", n.when_2012),
                ("then", n.then_2012),
                ("question", n.question),
                ("answer", n.answer),
            ] {
                assert!(text.trim().len() >= 5, "{link:?} has no {what}");
            }
            assert!(n.question.ends_with('?'), "{link:?}");
        }
    }

    #[test]
    fn the_facilitators_guide_has_every_question_and_answer_as_the_run_tells_them() {
        let guide = include_str!("../../../../docs/src/workshop.md");
        for link in Link::ALL {
            let n = of(link);
            for text in [n.title, n.when_2012, n.question, n.answer] {
                assert!(
                    guide.contains(text),
                    "docs/src/workshop.md lacks {text:?} ({link:?})"
                );
            }
        }
    }
}
