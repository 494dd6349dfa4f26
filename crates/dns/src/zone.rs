//! The zone `lab.internal.`: a hickory in-memory zone handler, the rule that turns a name someone
//! typed into a fully qualified name of the zone, and the two writes the admin API needs:
//! replacing a name's whole A record set (an empty one leaves the name without an address:
//! NODATA), and taking a name out (NXDOMAIN).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use outage_lab_proto::ZONE;
use outage_lab_proto::wire::RecordsMsg;

use crate::faults::Faults;

/// Most addresses one name may hold. A UDP answer with this many A records still fits in an
/// EDNS-sized packet; the cap also bounds what one admin request can make the server store.
pub(crate) const MAX_ADDRS_PER_NAME: usize = 64;

/// Most names the zone may hold. A run needs a handful; the cap only stops a misbehaving admin
/// client from growing the zone without bound.
pub(crate) const MAX_NAMES: usize = 4096;

/// The zone's SOA serial when the server starts.
const INITIAL_SERIAL: u32 = 1;

/// The zone with its current records, shared by the DNS server (through the catalog) and the
/// admin API.
pub(crate) struct Zone {
    /// The hickory zone handler. The catalog holds another `Arc` to the same handler, so a change
    /// made here is what the next DNS query sees.
    handler: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    /// `lab.internal.`, as a name.
    origin: Name,
    /// TTL in seconds of every A record, and the SOA's negative-caching TTL.
    ttl: u32,
    /// The faults its names answer with, beside their records.
    pub(crate) faults: Arc<Faults>,
}

impl Zone {
    /// Builds the zone: an SOA with serial 1, then one A record set per name.
    ///
    /// `records` must already be valid (names in the zone, non-empty IPv4 sets): see [`fqdn`] and
    /// [`ipv4_set`].
    pub(crate) fn new(records: &BTreeMap<Name, Vec<Ipv4Addr>>, ttl: u32) -> Self {
        let origin = zone_origin();
        let mut handler: InMemoryZoneHandler<TokioRuntimeProvider> =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        {
            // We own the handler here, so the synchronous accessor needs no lock.
            let map = handler.records_get_mut();
            map.insert(
                soa_key(&origin),
                Arc::new(soa_set(&origin, INITIAL_SERIAL, ttl)),
            );
            for (name, addrs) in records {
                map.insert(
                    a_key(name),
                    Arc::new(a_set(name, addrs, ttl, INITIAL_SERIAL)),
                );
            }
        }
        Self {
            handler: Arc::new(handler),
            origin,
            ttl,
            faults: Arc::default(),
        }
    }

    /// A catalog that serves this zone (and refuses every other one).
    pub(crate) fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::new();
        let handler: Arc<dyn ZoneHandler> = self.handler.clone();
        catalog.upsert(LowerName::new(&self.origin), vec![handler]);
        catalog
    }

    /// Every A record set and the serial, as the DNS server would answer them right now.
    pub(crate) async fn snapshot(&self) -> RecordsMsg {
        let records = self.handler.records().await;
        snapshot_of(&records, &self.origin)
    }

    /// Whether `name` is in the zone (with addresses or without).
    pub(crate) async fn has(&self, name: &Name) -> bool {
        let records = self.handler.records().await;
        records.contains_key(&a_key(name)) || records.contains_key(&marker_key(name))
    }

    /// How many names the zone holds (the SOA's name, the zone's own, aside).
    pub(crate) async fn name_count(&self) -> usize {
        self.handler
            .records()
            .await
            .keys()
            .filter(|key| key.record_type == RecordType::A || key.record_type == MARKER_TYPE)
            .count()
    }

    /// Replaces the whole A record set of `name` with `addrs` and bumps the SOA serial, in one
    /// step: a query sees either the old set and old serial or the new set and new serial.
    ///
    /// Returns the zone after the change.
    pub(crate) async fn replace(&self, name: &Name, addrs: &[Ipv4Addr]) -> RecordsMsg {
        // Why not `InMemoryZoneHandler::upsert`? Because upsert means "insert this record into the
        // set at its name and type": for an A record with a new address it ADDS the address to
        // the existing set. After moving the collector from the old address to the new one, the
        // name would answer both, and a client could keep picking the dead machine: the opposite
        // of the update the incident's operators made. An RRset is the unit DNS answers with, so
        // the unit we change is the RRset: build the complete new set and put it in the map under
        // the set's key (name + type), dropping the old one.
        //
        // The serial is the zone's version number (secondaries and humans use it to tell that the
        // zone changed), so every change bumps it. Both writes happen under one write lock, so no
        // query can see the new addresses with the old serial or the other way round.
        let mut records = self.handler.records_mut().await;
        let key = soa_key(&self.origin);
        let serial = serial_of(&records, &self.origin).wrapping_add(1); // RFC 1982 serials wrap.
        records.insert(key, Arc::new(soa_set(&self.origin, serial, self.ttl)));
        if addrs.is_empty() {
            // A name without an address: no A set (an empty one would answer NOERROR without
            // the SOA a resolver needs to cache the absence), and a marker that keeps the name
            // in the zone, so the answer is NODATA rather than NXDOMAIN.
            records.remove(&a_key(name));
            records.insert(
                marker_key(name),
                Arc::new(marker_set(name, self.ttl, serial)),
            );
        } else {
            records.remove(&marker_key(name));
            records.insert(a_key(name), Arc::new(a_set(name, addrs, self.ttl, serial)));
        }
        snapshot_of(&records, &self.origin)
    }

    /// Takes `name` out of the zone and bumps the serial, in one step; `None` (nothing changed)
    /// if it was not in it. Returns the zone after the change.
    pub(crate) async fn remove(&self, name: &Name) -> Option<RecordsMsg> {
        let mut records = self.handler.records_mut().await;
        let had_addrs = records.remove(&a_key(name)).is_some();
        let had_marker = records.remove(&marker_key(name)).is_some();
        if !(had_addrs || had_marker) {
            return None;
        }
        let serial = serial_of(&records, &self.origin).wrapping_add(1);
        let soa = soa_set(&self.origin, serial, self.ttl);
        records.insert(soa_key(&self.origin), Arc::new(soa));
        Some(snapshot_of(&records, &self.origin))
    }
}

/// `lab.internal.` as a hickory name.
fn zone_origin() -> Name {
    // ZONE is a constant, valid, fully qualified name; this cannot fail, and the fallback (the
    // root) is only there so that no code path can panic.
    Name::from_ascii(ZONE).unwrap_or_else(|_| Name::root())
}

/// The map key of the zone's SOA record set.
fn soa_key(origin: &Name) -> RrKey {
    RrKey::new(LowerName::new(origin), RecordType::SOA)
}

/// The map key of `name`'s A record set.
fn a_key(name: &Name) -> RrKey {
    RrKey::new(LowerName::new(name), RecordType::A)
}

/// The type of the record that keeps a name without addresses in the zone.
const MARKER_TYPE: RecordType = RecordType::TXT;

/// What the marker says, to anyone who asks for it (`dig TXT`).
const MARKER_TEXT: &str = "outage-lab: this name has no address";

/// The map key of the marker of a name without addresses.
fn marker_key(name: &Name) -> RrKey {
    RrKey::new(LowerName::new(name), MARKER_TYPE)
}

/// The marker of a name without addresses: a TXT record saying so.
fn marker_set(name: &Name, ttl: u32, serial: u32) -> RecordSet {
    let mut set = RecordSet::new(name.clone(), MARKER_TYPE, serial);
    let txt = RData::TXT(TXT::new(vec![MARKER_TEXT.to_owned()]));
    set.insert(Record::from_rdata(name.clone(), ttl, txt), serial);
    set
}

/// The SOA record set of the zone with `serial`. `ttl` is also the SOA minimum, which resolvers
/// use as the negative-caching TTL (how long an NXDOMAIN is remembered).
fn soa_set(origin: &Name, serial: u32, ttl: u32) -> RecordSet {
    // `ns.` and `hostmaster.` under the origin: the server is its own primary, and nobody reads
    // the mailbox. Appending two labels to a short constant origin cannot exceed name limits; the
    // fallback to the origin itself is only there so that no code path can panic.
    let mname = Name::from_ascii("ns")
        .and_then(|n| n.append_domain(origin))
        .unwrap_or_else(|_| origin.clone());
    let rname = Name::from_ascii("hostmaster")
        .and_then(|n| n.append_domain(origin))
        .unwrap_or_else(|_| origin.clone());
    let soa = SOA::new(mname, rname, serial, 3600, 600, 86_400, ttl);
    let mut set = RecordSet::new(origin.clone(), RecordType::SOA, serial);
    set.insert(
        Record::from_rdata(origin.clone(), ttl, RData::SOA(soa)),
        serial,
    );
    set
}

/// A complete A record set for `name`. Duplicate addresses collapse into one record.
fn a_set(name: &Name, addrs: &[Ipv4Addr], ttl: u32, serial: u32) -> RecordSet {
    let mut set = RecordSet::new(name.clone(), RecordType::A, serial);
    for addr in addrs {
        // `insert` checks that the record's name and type match the set's; both come from the
        // same `name` and `RecordType::A` here.
        set.insert(
            Record::from_rdata(name.clone(), ttl, RData::A(A(*addr))),
            serial,
        );
    }
    set
}

/// The serial in the zone's SOA, or 0 if the SOA is missing (it never is: only this module writes
/// the map, and it always keeps one).
fn serial_of(records: &BTreeMap<RrKey, Arc<RecordSet>>, origin: &Name) -> u32 {
    records
        .get(&soa_key(origin))
        .and_then(|set| set.records_without_rrsigs().next())
        .and_then(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .unwrap_or(0)
}

/// The admin API's view of the zone: every A record set by fully qualified name, and the serial.
fn snapshot_of(records: &BTreeMap<RrKey, Arc<RecordSet>>, origin: &Name) -> RecordsMsg {
    let emptied = (records.values())
        .filter(|set| set.record_type() == MARKER_TYPE)
        .map(|set| (set.name().to_string(), Vec::new()));
    let sets = records
        .values()
        .filter(|set| set.record_type() == RecordType::A)
        .map(|set| {
            let addrs = set
                .records_without_rrsigs()
                .filter_map(|record| match &record.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    _ => None,
                })
                .collect();
            (set.name().to_string(), addrs)
        })
        .chain(emptied)
        .collect();
    RecordsMsg {
        serial: serial_of(records, origin),
        records: sets,
    }
}

/// Turns a name as a person or the harness writes it into a fully qualified, lower-case name of
/// the zone, or says why it cannot be one.
///
/// * `collector` (no dot): relative to the zone, `collector.lab.internal.`;
/// * `collector.lab.internal` or `collector.lab.internal.`: fully qualified (a name with a dot is
///   taken as absolute, trailing dot or not, so `example.com` is outside the zone rather than
///   `example.com.lab.internal.`).
///
/// Labels are letters, digits, `-` and `_` (no wildcards, no escapes), 1 to 63 characters each.
pub(crate) fn fqdn(input: &str) -> Result<Name, String> {
    if input.is_empty() {
        return Err("the name is empty".into());
    }
    let lower = input.to_ascii_lowercase();
    let zone = ZONE.trim_end_matches('.');
    let absolute = match lower.strip_suffix('.') {
        Some(stripped) => stripped.to_owned(),
        None if lower.contains('.') => lower,
        None => format!("{lower}.{zone}"),
    };
    if absolute.len() > 253 {
        return Err("the name is longer than 253 characters".into());
    }
    for label in absolute.split('.') {
        if label.is_empty() {
            return Err("the name has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{bad:?} is not allowed in a name (letters, digits, '-' and '_' only)"
            ));
        }
    }
    if absolute != zone && !absolute.ends_with(&format!(".{zone}")) {
        return Err(format!("{absolute}. is outside the zone {ZONE}"));
    }
    Name::from_ascii(format!("{absolute}.")).map_err(|e| e.to_string())
}

/// Checks an address set for an A record: IPv4 only, at most [`MAX_ADDRS_PER_NAME`] (none is
/// a name without an address). Duplicates are dropped, order is kept.
pub(crate) fn ipv4_set(addrs: &[IpAddr]) -> Result<Vec<Ipv4Addr>, String> {
    let mut out: Vec<Ipv4Addr> = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match addr {
            IpAddr::V4(v4) => {
                if !out.contains(v4) {
                    out.push(*v4);
                }
            }
            IpAddr::V6(v6) => {
                return Err(format!(
                    "{v6} is an IPv6 address: this zone serves A records only, give IPv4 addresses"
                ));
            }
        }
    }
    if out.len() > MAX_ADDRS_PER_NAME {
        return Err(format!(
            "{} addresses is too many for one name (at most {MAX_ADDRS_PER_NAME})",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_fully_qualified_names_mean_the_same_record() {
        for input in [
            "collector",
            "collector.lab.internal",
            "collector.lab.internal.",
            "Collector.LAB.internal.",
        ] {
            assert_eq!(
                fqdn(input).map(|n| n.to_string()),
                Ok("collector.lab.internal.".to_owned()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn names_outside_the_zone_or_malformed_are_rejected_with_a_reason() {
        for input in [
            "",
            ".",
            "collector.",
            "example.com",
            "evil-lab.internal",
            "a..lab.internal",
            "a b",
            "*.lab.internal",
            "a/b",
        ] {
            assert!(fqdn(input).is_err(), "{input:?} was accepted");
        }
        let long_label = "x".repeat(64);
        assert!(fqdn(&long_label).is_err());
        assert!(
            fqdn("example.com")
                .err()
                .is_some_and(|e| e.contains("outside the zone"))
        );
    }

    #[test]
    fn address_sets_must_be_ipv4_and_lose_duplicates() {
        let a: IpAddr = Ipv4Addr::new(127, 0, 0, 10).into();
        let b: IpAddr = Ipv4Addr::new(127, 0, 0, 11).into();
        assert_eq!(
            ipv4_set(&[a, b, a]),
            Ok(vec![
                Ipv4Addr::new(127, 0, 0, 10),
                Ipv4Addr::new(127, 0, 0, 11)
            ])
        );
        assert_eq!(ipv4_set(&[]), Ok(vec![]));
        assert!(ipv4_set(&[a, "::1".parse().expect("ipv6")]).is_err_and(|e| e.contains("IPv6")));
        let many: Vec<IpAddr> = (0..=MAX_ADDRS_PER_NAME)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 1, 0, i as u8)))
            .collect();
        assert!(ipv4_set(&many).is_err());
    }

    #[tokio::test]
    async fn replacing_a_set_drops_the_old_addresses_and_bumps_the_serial() {
        let name = fqdn("collector").expect("valid");
        let old = Ipv4Addr::new(127, 0, 0, 10);
        let new = Ipv4Addr::new(127, 0, 0, 11);
        let zone = Zone::new(&BTreeMap::from([(name.clone(), vec![old])]), 1);
        let before = zone.snapshot().await;
        assert_eq!(before.serial, 1);
        assert_eq!(
            before.records["collector.lab.internal."],
            vec![IpAddr::V4(old)]
        );

        let after = zone.replace(&name, &[new]).await;
        assert_eq!(after.serial, 2);
        assert_eq!(
            after.records["collector.lab.internal."],
            vec![IpAddr::V4(new)]
        );
        assert_eq!(zone.snapshot().await, after);
    }

    #[tokio::test]
    async fn removing_a_name_takes_it_out_and_bumps_the_serial_once() {
        let name = fqdn("collector").expect("valid");
        let zone = Zone::new(
            &BTreeMap::from([(name.clone(), vec![Ipv4Addr::LOCALHOST])]),
            1,
        );
        let after = zone.remove(&name).await.expect("it was there");
        assert_eq!(after.serial, 2);
        assert!(after.records.is_empty());
        assert_eq!(zone.remove(&name).await, None, "nothing left to remove");
        assert_eq!(zone.snapshot().await.serial, 2);
    }
}
