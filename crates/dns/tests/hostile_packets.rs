//! Hostile packets: the DNS role survives malformed, truncated, oversized and random packets over
//! UDP and TCP, keeps answering correctly while they arrive, and still answers correctly, serves
//! its admin API and shuts down cleanly afterwards.
//!
//! The packets come from a seeded ChaCha8 generator, so a failure can be replayed:
//!
//! * `OUTAGE_LAB_FUZZ_SEED`: the seed (decimal, or hex with `0x`); the default is [`DEFAULT_SEED`].
//! * `OUTAGE_LAB_FUZZ_PACKETS`: how many hostile packets in all (default 100,000): nine tenths
//!   go over UDP, one tenth over TCP.
//!
//! The server runs in-process on 127.0.0.1 port 0; nothing is ever sent anywhere else.
//!
//! UDP is sent in bursts small enough for the server socket's receive buffer. Every burst ends with
//! a valid query from a separate socket whose answer must be exactly `127.0.0.10`: the server reads
//! its socket in order, so that answer also proves it has read every hostile packet before it.
//! Replies to the hostile packets are read and thrown away without waiting for them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use outage_lab_dns::EventSink;
use outage_lab_dns::{Config, Error, Listeners, run};
use outage_lab_proto::EngineEvent as Event;

/// A name in every server's zone here.
const COLLECTOR_NAME: &str = "collector.lab.internal.";
use outage_lab_proto::ZONE;
use outage_lab_proto::wire::RecordsMsg;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// The seed when `OUTAGE_LAB_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x0D15_EA5E_2012_0D05;

/// Hostile packets in all when `OUTAGE_LAB_FUZZ_PACKETS` is not set.
const DEFAULT_PACKETS: usize = 100_000;

/// The one address `collector.lab.internal.` has, before, during and after the storm.
const COLLECTOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);

/// A name in the zone without records.
const UNKNOWN_NAME: &str = "nosuch.lab.internal.";

/// Upper bound on every single network wait.
const WAIT: Duration = Duration::from_secs(5);

/// Client sockets the hostile UDP packets are spread over.
const UDP_CLIENTS: usize = 4;

/// Most hostile UDP packets per burst, and the most kernel memory (estimated) a burst may take in
/// the server's receive buffer (Linux's default is 208 KiB), so that the kernel drops none.
const BURST_PACKETS: usize = 64;
const BURST_BYTES: usize = 128 * 1024;

/// One UDP packet in this many is a jumbo of [`JUMBO_LEN`] random bytes, sent in a burst of its
/// own.
const JUMBO_EVERY: usize = 5_000;
const JUMBO_LEN: usize = 65_000;

/// Hostile TCP connections open at once, and how often (in connections) a valid TCP query checks
/// the answer while they run.
const TCP_PARALLEL: usize = 8;
const TCP_CHECK_EVERY: usize = 50;

/// Most hostile frames in one TCP connection (before its last, possibly broken, one).
const TCP_MAX_FRAMES: usize = 24;

/// Panics anywhere in the process (the server's tasks included) while the test runs.
static PANICS: AtomicUsize = AtomicUsize::new(0);

// --- what is sent ------------------------------------------------------------------------------

/// The kinds of hostile messages, for the tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Random bytes, 0 to 4096 of them.
    RandomBytes,
    /// 65,000 random bytes over UDP, a full 65,535-byte random frame over TCP.
    Jumbo,
    /// A plausible query header followed by random bytes.
    HeaderThenGarbage,
    /// A valid query cut at a random point.
    TruncatedQuery,
    /// A valid query with a few bits or bytes changed.
    FlippedQuery,
    /// A valid query whose section counts are absurd (one of them always 65535).
    AbsurdCounts,
    /// Compression pointers that loop, point outside the message, into the header, or chain.
    PointerLoop,
    /// A label longer than 63 bytes (or one running past the end of the message).
    LongLabel,
    /// A name longer than 255 bytes, plain or through compression (and one of exactly 255).
    LongName,
    /// An EDNS OPT record with a huge (or tiny) payload size, odd versions, broken options, two
    /// OPTs, an OPT with an owner name.
    HugeEdns,
    /// Opcodes other than QUERY: UPDATE (including one deleting the collector), NOTIFY, IQUERY,
    /// STATUS, unassigned ones.
    OddOpcode,
    /// Unusual query types and classes: ANY, AXFR and IXFR over UDP, CHAOS, HESIOD, NONE, 0, 65535.
    OddTypeOrClass,
    /// A "query" with the response bit, TC, Z, AD, CD or an rcode set, no question, or two.
    OddFlags,
    /// TCP: a frame of length 0 (after which hickory drops the connection).
    TcpZeroLength,
    /// TCP: a length prefix promising more bytes than follow, then the end of the connection.
    TcpShortFrame,
    /// TCP: half a length prefix, then the end of the connection.
    TcpHalfPrefix,
    /// TCP: a valid query frame followed by random bytes that are no frame.
    TcpGarbageAfterValid,
    /// TCP: a connection opened and closed without a byte.
    TcpEmptyConnection,
}

/// How many messages of each kind were sent.
type Tally = BTreeMap<Kind, usize>;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const OPCODE_SHIFT: u16 = 11;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_OPT: u16 = 41;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";

/// Writes a DNS header.
fn push_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn set_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `name` (dotted, labels of at most 63 bytes) in wire format, root label included.
fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|label| !label.is_empty()) {
        out.push(u8::try_from(label.len()).expect("a short label"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// Writes a compression pointer to `offset`.
fn push_pointer(out: &mut Vec<u8>, offset: usize) {
    let offset = u16::try_from(offset & 0x3FFF).expect("14 bits");
    push_u16(out, 0xC000 | offset);
}

/// Builds a valid query with hickory-proto.
fn build_query(id: u16, name: &str, rtype: RecordType, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("a valid name"),
        rtype,
    ));
    if let Some((payload, dnssec_ok)) = edns {
        let mut edns = Edns::new();
        edns.set_max_payload(payload).set_dnssec_ok(dnssec_ok);
        message.set_edns(edns);
    }
    message.to_vec().expect("a query encodes")
}

/// The seeded source of hostile packets.
struct Generator {
    rng: ChaCha8Rng,
    /// Seeded random bytes that random packets are cut from (fresh bytes for every packet would
    /// make a debug build spend seconds in ChaCha alone).
    pool: Vec<u8>,
    /// Valid queries (header and one question, nothing else), built with hickory-proto.
    queries: Vec<Vec<u8>>,
    /// Valid queries with an EDNS OPT record announcing a 65535-byte payload.
    edns_queries: Vec<Vec<u8>>,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pool = vec![0u8; 512 * 1024 + usize::from(u16::MAX)];
        rng.fill_bytes(&mut pool);
        let names = [
            COLLECTOR_NAME,
            "CoLLector.LAB.internal.",
            UNKNOWN_NAME,
            ZONE,
            "a.b.c.collector.lab.internal.",
            "*.lab.internal.",
            "_dns._udp.lab.internal.",
            "example.com.",
            ".",
        ];
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SOA,
            RecordType::NS,
            RecordType::ANY,
            RecordType::TXT,
            RecordType::MX,
            RecordType::CNAME,
            RecordType::PTR,
            RecordType::SRV,
            RecordType::AXFR,
            RecordType::IXFR,
            RecordType::NULL,
            RecordType::from(65_280),
        ];
        let mut queries = Vec::new();
        let mut edns_queries = Vec::new();
        for name in names {
            for rtype in types {
                queries.push(build_query(rng.random(), name, rtype, None));
            }
            for rtype in [RecordType::A, RecordType::SOA, RecordType::ANY] {
                for dnssec_ok in [false, true] {
                    edns_queries.push(build_query(
                        rng.random(),
                        name,
                        rtype,
                        Some((u16::MAX, dnssec_ok)),
                    ));
                }
            }
        }
        Self {
            rng,
            pool,
            queries,
            edns_queries,
        }
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    fn coin(&mut self) -> bool {
        self.rng.random()
    }

    fn id(&mut self) -> u16 {
        self.rng.random()
    }

    /// Appends `len` random bytes.
    fn push_random(&mut self, out: &mut Vec<u8>, len: usize) {
        let start = self.below(self.pool.len() - len + 1);
        out.extend_from_slice(&self.pool[start..start + len]);
        // Fresh bytes where they matter most: the header.
        let fresh = len.min(16);
        let at = out.len() - len;
        self.rng.fill_bytes(&mut out[at..at + fresh]);
    }

    fn push_letters(&mut self, out: &mut Vec<u8>, len: usize) {
        for _ in 0..len {
            let letter = LETTERS[self.below(LETTERS.len())];
            out.push(letter);
        }
    }

    /// Appends one of the plain valid queries, with a fresh id.
    fn push_query(&mut self, out: &mut Vec<u8>) {
        let at = out.len();
        let index = self.below(self.queries.len());
        out.extend_from_slice(&self.queries[index]);
        let id = self.id();
        set_u16(out, at, id);
    }

    /// Appends a valid query, plain or with EDNS, with a fresh id.
    fn push_any_query(&mut self, out: &mut Vec<u8>) {
        if self.coin() {
            self.push_query(out);
        } else {
            let at = out.len();
            let index = self.below(self.edns_queries.len());
            out.extend_from_slice(&self.edns_queries[index]);
            let id = self.id();
            set_u16(out, at, id);
        }
    }

    /// Replaces `out` with one hostile packet (at most 4096 bytes) and says what kind it is.
    fn packet(&mut self, out: &mut Vec<u8>) -> Kind {
        out.clear();
        match self.below(100) {
            0..30 => {
                let len = self.below(4097);
                self.push_random(out, len);
                Kind::RandomBytes
            }
            30..37 => {
                self.header_then_garbage(out);
                Kind::HeaderThenGarbage
            }
            37..49 => {
                self.push_any_query(out);
                let cut = self.below(out.len());
                out.truncate(cut);
                Kind::TruncatedQuery
            }
            49..63 => {
                self.flipped_query(out);
                Kind::FlippedQuery
            }
            63..69 => {
                self.absurd_counts(out);
                Kind::AbsurdCounts
            }
            69..75 => {
                self.pointer_loop(out);
                Kind::PointerLoop
            }
            75..80 => {
                self.long_label(out);
                Kind::LongLabel
            }
            80..85 => {
                self.long_name(out);
                Kind::LongName
            }
            85..91 => {
                self.huge_edns(out);
                Kind::HugeEdns
            }
            91..95 => {
                self.odd_opcode(out);
                Kind::OddOpcode
            }
            95..98 => {
                self.odd_type_or_class(out);
                Kind::OddTypeOrClass
            }
            _ => {
                self.odd_flags(out);
                Kind::OddFlags
            }
        }
    }

    fn header_then_garbage(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        // Any flags but QR and the opcode, so the server parses on.
        let flags = self.rng.random::<u16>() & 0x07FF;
        let counts = [
            1,
            u16::try_from(self.below(3)).expect("small"),
            u16::try_from(self.below(3)).expect("small"),
            u16::try_from(self.below(3)).expect("small"),
        ];
        push_header(out, id, flags, counts);
        let len = self.below(513);
        self.push_random(out, len);
    }

    fn flipped_query(&mut self, out: &mut Vec<u8>) {
        self.push_any_query(out);
        for _ in 0..=self.below(6) {
            let at = self.below(out.len());
            if self.coin() {
                out[at] ^= 1 << self.below(8);
            } else {
                out[at] = self.rng.random();
            }
        }
    }

    fn absurd_counts(&mut self, out: &mut Vec<u8>) {
        self.push_any_query(out);
        let choices = [0, 1, 2, 255, 256, 0x7FFF, 0xFFFE, u16::MAX];
        for section in 0..4 {
            if self.coin() {
                let count = if self.below(8) == 0 {
                    self.rng.random()
                } else {
                    choices[self.below(choices.len())]
                };
                set_u16(out, 4 + 2 * section, count);
            }
        }
        let huge = self.below(4);
        set_u16(out, 4 + 2 * huge, u16::MAX);
        let extra = self.below(65);
        self.push_random(out, extra);
    }

    fn pointer_loop(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        match self.below(9) {
            0 => {
                // The question's name is a pointer to itself.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                push_pointer(out, 12);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            1 => {
                // A label, then a pointer back to that label: a loop that grows the name.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                out.extend_from_slice(&[1, b'a']);
                push_pointer(out, 12);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            2 => {
                // Two pointers pointing at each other.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                push_pointer(out, 14);
                push_pointer(out, 12);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            3 => {
                // A pointer past the end of the message.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                let target = 20 + self.below(0x3FFF - 20);
                push_pointer(out, target);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            4 => {
                // A pointer into the header.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                let target = self.below(12);
                push_pointer(out, target);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            5 => {
                // A forward pointer to a name that points back to the question.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                push_pointer(out, 18);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&[1, b'a']);
                push_pointer(out, 12);
            }
            6 => {
                // A valid question, then an answer whose owner name points to itself.
                self.push_query(out);
                set_u16(out, 6, 1);
                let at = out.len();
                push_pointer(out, at);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&60u32.to_be_bytes());
                push_u16(out, 4);
                out.extend_from_slice(&[127, 0, 0, 66]);
            }
            7 => {
                // A valid question, then an additional CNAME whose target points to itself.
                self.push_query(out);
                set_u16(out, 10, 1);
                push_name(out, COLLECTOR_NAME);
                push_u16(out, TYPE_CNAME);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&60u32.to_be_bytes());
                push_u16(out, 2);
                let at = out.len();
                push_pointer(out, at);
            }
            _ => {
                // A long chain of pointers, each to the one before, ending in a real name.
                push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
                let links = 16 + self.below(240);
                let last = 18 + 3 + 2 * (links - 1);
                push_pointer(out, last);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&[1, b'a', 0]);
                let mut previous = 18;
                for _ in 0..links {
                    let at = out.len();
                    push_pointer(out, previous);
                    previous = at;
                }
            }
        }
    }

    fn long_label(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        push_header(out, id, FLAG_RD, [1, 0, 0, 0]);
        match self.below(3) {
            0 => {
                // A length byte of 64 to 191: too long for a label, and the reserved label types.
                let len = 64 + self.below(128);
                out.push(u8::try_from(len).expect("below 192"));
                self.push_letters(out, len);
                push_name(out, ZONE);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
            1 => {
                // A 63-byte label that runs past the end of the message.
                out.push(63);
                let len = self.below(63);
                self.push_letters(out, len);
            }
            _ => {
                // Labels of exactly 63 bytes: at the limit, still valid.
                for _ in 0..=self.below(3) {
                    out.push(63);
                    self.push_letters(out, 63);
                }
                push_name(out, ZONE);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
            }
        }
    }

    fn long_name(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        let variant = self.below(5);
        let questions = if variant == 4 { 2 } else { 1 };
        push_header(out, id, FLAG_RD, [questions, 0, 0, 0]);
        match variant {
            0 => {
                // Four to eight labels of 63 bytes, then the zone.
                for _ in 0..4 + self.below(5) {
                    out.push(63);
                    self.push_letters(out, 63);
                }
                push_name(out, ZONE);
            }
            1 => {
                // 128 to 200 one-letter labels.
                for _ in 0..128 + self.below(73) {
                    out.push(1);
                    self.push_letters(out, 1);
                }
                push_name(out, ZONE);
            }
            2 | 3 => {
                // Exactly 255 bytes on the wire (the longest valid name), or exactly 256.
                let last = if variant == 2 { 61 } else { 62 };
                for len in [63, 63, 63, last] {
                    out.push(u8::try_from(len).expect("short"));
                    self.push_letters(out, len);
                }
                out.push(0);
            }
            _ => {
                // A valid 254-byte name, then a name that adds labels in front of it through a
                // pointer: 258 bytes once decompressed.
                for len in [63, 63, 63, 60] {
                    out.push(u8::try_from(len).expect("short"));
                    self.push_letters(out, len);
                }
                out.push(0);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&[1, b'a', 1, b'b']);
                push_pointer(out, 12);
            }
        }
        push_u16(out, TYPE_A);
        push_u16(out, CLASS_IN);
    }

    /// Appends an OPT record with the given payload size and random everything else.
    fn push_opt(&mut self, out: &mut Vec<u8>, payload: u16) {
        let version = [0, 0, 0, 1, 255][self.below(5)];
        let extended_rcode = if self.below(4) == 0 {
            self.rng.random()
        } else {
            0
        };
        let flags: u16 = self.rng.random();
        out.push(0);
        push_u16(out, TYPE_OPT);
        push_u16(out, payload);
        out.extend_from_slice(&[extended_rcode, version]);
        push_u16(out, flags);
        match self.below(5) {
            0 => push_u16(out, 0),
            1 => {
                // One option whose length matches.
                let len = self.below(64);
                push_u16(out, u16::try_from(4 + len).expect("short"));
                let code = self.rng.random();
                push_u16(out, code);
                push_u16(out, u16::try_from(len).expect("short"));
                self.push_random(out, len);
            }
            2 => {
                // One option claiming more bytes than the record holds.
                let len = self.below(16);
                push_u16(out, u16::try_from(4 + len).expect("short"));
                push_u16(out, [3, 8, 10, 12, 15][self.below(5)]);
                push_u16(
                    out,
                    u16::try_from(len + 1 + self.below(1000)).expect("short"),
                );
                self.push_random(out, len);
            }
            3 => {
                // NSID (with a payload it must ignore) and a client subnet full of garbage.
                push_u16(out, 4 + 3 + 4 + 7);
                push_u16(out, 3);
                push_u16(out, 3);
                out.extend_from_slice(b"abc");
                push_u16(out, 8);
                push_u16(out, 7);
                self.push_random(out, 7);
            }
            _ => {
                // RDATA longer than the rest of the message.
                push_u16(out, u16::try_from(8 + self.below(60_000)).expect("short"));
                let len = self.below(8);
                self.push_random(out, len);
            }
        }
    }

    fn huge_edns(&mut self, out: &mut Vec<u8>) {
        let payloads = [u16::MAX, u16::MAX, 0, 1, 511, 512, 4096];
        match self.below(4) {
            0 => {
                // Built by hickory-proto: a valid query announcing a 65535-byte payload.
                let index = self.below(self.edns_queries.len());
                out.extend_from_slice(&self.edns_queries[index]);
                let id = self.id();
                set_u16(out, 0, id);
            }
            1 => {
                self.push_query(out);
                set_u16(out, 10, 1);
                let payload = if self.below(4) == 0 {
                    self.rng.random()
                } else {
                    payloads[self.below(payloads.len())]
                };
                self.push_opt(out, payload);
            }
            2 => {
                // Two OPT records.
                self.push_query(out);
                set_u16(out, 10, 2);
                self.push_opt(out, u16::MAX);
                self.push_opt(out, u16::MAX);
            }
            _ => {
                // An OPT record with an owner name other than the root.
                self.push_query(out);
                set_u16(out, 10, 1);
                push_name(out, COLLECTOR_NAME);
                push_u16(out, TYPE_OPT);
                push_u16(out, u16::MAX);
                out.extend_from_slice(&[0, 0, 0, 0]);
                push_u16(out, 0);
            }
        }
    }

    fn odd_opcode(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        match self.below(4) {
            0 => {
                // Any opcode but QUERY on an ordinary query.
                self.push_query(out);
                let opcode = 1 + u16::try_from(self.below(15)).expect("small");
                set_u16(out, 2, FLAG_RD | (opcode << OPCODE_SHIFT));
            }
            1 => {
                // RFC 2136 UPDATE of the zone: delete the collector's records and/or add an
                // address. The zone must not change.
                let delete = self.coin();
                let add = !delete || self.coin();
                let updates = u16::from(delete) + u16::from(add);
                push_header(out, id, 5 << OPCODE_SHIFT, [1, 0, updates, 0]);
                push_name(out, ZONE);
                push_u16(out, TYPE_SOA);
                push_u16(out, CLASS_IN);
                if delete {
                    push_name(out, COLLECTOR_NAME);
                    push_u16(out, TYPE_ANY);
                    push_u16(out, CLASS_ANY);
                    out.extend_from_slice(&0u32.to_be_bytes());
                    push_u16(out, 0);
                }
                if add {
                    push_name(out, COLLECTOR_NAME);
                    push_u16(out, TYPE_A);
                    push_u16(out, CLASS_IN);
                    out.extend_from_slice(&60u32.to_be_bytes());
                    push_u16(out, 4);
                    out.extend_from_slice(&[127, 0, 0, 66]);
                }
            }
            2 => {
                // NOTIFY for the zone.
                push_header(out, id, FLAG_AA | (4 << OPCODE_SHIFT), [1, 0, 0, 0]);
                push_name(out, ZONE);
                push_u16(out, TYPE_SOA);
                push_u16(out, CLASS_IN);
            }
            _ => {
                // UPDATE with a bad zone section: no zone, a zone that is not an SOA, two zones.
                let zones = [0, 1, 2][self.below(3)];
                push_header(out, id, 5 << OPCODE_SHIFT, [zones, 0, 1, 0]);
                for _ in 0..zones {
                    push_name(out, ZONE);
                    push_u16(out, if self.coin() { TYPE_A } else { TYPE_SOA });
                    push_u16(out, CLASS_IN);
                }
                push_name(out, COLLECTOR_NAME);
                push_u16(out, TYPE_A);
                push_u16(out, CLASS_IN);
                out.extend_from_slice(&60u32.to_be_bytes());
                push_u16(out, 4);
                out.extend_from_slice(&[127, 0, 0, 66]);
            }
        }
    }

    fn odd_type_or_class(&mut self, out: &mut Vec<u8>) {
        // ANY, AXFR, IXFR, MAILB, MAILA, 0, 65535, OPT, TSIG, TKEY, RRSIG.
        let types = [255, 252, 251, 253, 254, 0, u16::MAX, 41, 250, 249, 46];
        // IN, CHAOS, HESIOD, NONE, ANY, 0, 65535.
        let classes = [1, 3, 3, 4, 254, 255, 0, u16::MAX];
        self.push_query(out);
        let len = out.len();
        let rtype = if self.below(8) == 0 {
            self.rng.random()
        } else {
            types[self.below(types.len())]
        };
        let class = if self.below(8) == 0 {
            self.rng.random()
        } else {
            classes[self.below(classes.len())]
        };
        set_u16(out, len - 4, rtype);
        set_u16(out, len - 2, class);
    }

    fn odd_flags(&mut self, out: &mut Vec<u8>) {
        match self.below(4) {
            0 => {
                // A response sent to the server, with any rcode.
                self.push_query(out);
                let rcode = u16::try_from(self.below(16)).expect("small");
                set_u16(out, 2, FLAG_QR | FLAG_AA | rcode);
            }
            1 => {
                // TC, Z, AD, CD and an rcode set on a query.
                self.push_query(out);
                let flags = (self.rng.random::<u16>() & 0x07FF) | 0x0200;
                set_u16(out, 2, flags);
            }
            2 => {
                // A query without a question.
                let id = self.id();
                push_header(out, id, FLAG_RD, [0, 0, 0, 0]);
            }
            _ => {
                // Two questions.
                self.push_query(out);
                let question = out[12..].to_vec();
                out.extend_from_slice(&question);
                set_u16(out, 4, 2);
            }
        }
    }
}

// --- the server --------------------------------------------------------------------------------

/// The server under test, on a task of the test's runtime.
struct Running {
    dns: SocketAddr,
    admin: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
    /// Kept so the sink has a receiver for the whole run.
    _events: std::sync::mpsc::Receiver<Event>,
}

impl Running {
    async fn start() -> Self {
        let (udp, tcp) = bind_dns().await;
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (sink, events) = EventSink::channel();
        let shutdown = CancellationToken::new();
        let config = Config {
            records: BTreeMap::from([("collector".to_owned(), vec![COLLECTOR])]),
            ..Config::default()
        };
        let task = tokio::spawn(run(
            config,
            Listeners {
                udp,
                tcp,
                admin,
                also: None,
            },
            shutdown.clone(),
            sink,
        ));
        let ready = timeout(WAIT, async {
            loop {
                match events.try_recv() {
                    Ok(event) => return event,
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        panic!("the server stopped before it was ready")
                    }
                }
            }
        })
        .await
        .expect("Ready within the wait");
        let Event::Ready { addrs, .. } = ready else {
            panic!("the first event was not Ready: {ready:?}");
        };
        let (dns, admin) = (addrs["dns"], addrs["admin"]);
        assert!(dns.ip().is_loopback() && admin.ip().is_loopback());
        Self {
            dns,
            admin,
            shutdown,
            task,
            _events: events,
        }
    }
}

/// UDP and TCP on one port of 127.0.0.1.
async fn bind_dns() -> (UdpSocket, TcpListener) {
    for _ in 0..16 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let addr = udp.local_addr().expect("udp address");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

// --- valid queries -----------------------------------------------------------------------------

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// Checks that `bytes` answer query `id` for the collector with exactly [`COLLECTOR`].
fn assert_collector_answer(bytes: &[u8], id: u16, transport: &str) {
    let message = Message::from_vec(bytes).expect("a well-formed response");
    assert_eq!(message.id, id, "{transport}: the answer to our query");
    assert_eq!(message.message_type, MessageType::Response, "{transport}");
    assert_eq!(message.response_code, ResponseCode::NoError, "{transport}");
    assert_eq!(a_records(&message), vec![COLLECTOR], "{transport}");
}

/// Valid queries over UDP from their own socket (so hostile replies never fill its buffer).
struct UdpChecker {
    socket: UdpSocket,
    server: SocketAddr,
    query: Vec<u8>,
    id: u16,
    checks: usize,
    resends: usize,
}

impl UdpChecker {
    async fn new(server: SocketAddr) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.expect("bind checker"),
            server,
            query: build_query(0, COLLECTOR_NAME, RecordType::A, None),
            id: 0,
            checks: 0,
            resends: 0,
        }
    }

    /// Asks for the collector and checks the answer is exactly [`COLLECTOR`]. A query can be
    /// resent (half a second apart), but the server must answer within a few seconds.
    async fn check(&mut self) {
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            self.id = self.id.wrapping_add(1);
            let id = self.id;
            set_u16(&mut self.query, 0, id);
            self.socket
                .send_to(&self.query, self.server)
                .await
                .expect("send a valid query");
            if timeout(Duration::from_millis(500), self.answer(id))
                .await
                .is_ok()
            {
                self.checks += 1;
                return;
            }
            self.resends += 1;
            assert!(
                Instant::now() < deadline,
                "the server stopped answering over UDP"
            );
        }
    }

    /// Reads until the answer to `id` (earlier answers to resent queries are skipped) and checks
    /// it.
    async fn answer(&self, id: u16) {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, from) = self
                .socket
                .recv_from(&mut buf)
                .await
                .expect("receive an answer");
            if from != self.server || buf.get(..2) != Some(&id.to_be_bytes()[..]) {
                continue;
            }
            assert_collector_answer(&buf[..len], id, "UDP");
            return;
        }
    }
}

/// A valid query over a fresh TCP connection; the answer must be exactly [`COLLECTOR`].
async fn tcp_check(server: SocketAddr, id: u16) {
    let query = build_query(id, COLLECTOR_NAME, RecordType::A, None);
    let answer = timeout(WAIT, async {
        let mut stream = TcpStream::connect(server).await.expect("connect");
        let mut framed = u16::try_from(query.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(&query);
        stream.write_all(&framed).await.expect("send the query");
        let len = stream.read_u16().await.expect("the answer's length");
        let mut answer = vec![0u8; usize::from(len)];
        stream.read_exact(&mut answer).await.expect("the answer");
        answer
    })
    .await
    .expect("the server answered over TCP within the wait");
    assert_collector_answer(&answer, id, "TCP");
}

/// A fresh resolver (so no cache) that asks only `server`, over UDP or TCP, and never reads the
/// system's configuration or hosts file.
fn resolver(server: SocketAddr, tcp: bool) -> Resolver<TokioRuntimeProvider> {
    let mut ns = if tcp {
        NameServerConfig::tcp(server.ip())
    } else {
        NameServerConfig::udp(server.ip())
    };
    for connection in &mut ns.connections {
        connection.port = server.port();
    }
    let mut options = ResolverOpts::default();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(2);
    options.attempts = 2;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .expect("a resolver")
}

// --- UDP ---------------------------------------------------------------------------------------

#[derive(Default)]
struct UdpReport {
    sent: Tally,
    /// Replies to the hostile packets, by response code (from the header alone).
    replies: BTreeMap<u8, usize>,
}

/// Reads and throws away whatever has arrived on the hostile sockets, without waiting, counting
/// the replies by response code.
fn drain(sockets: &[UdpSocket], buf: &mut [u8], replies: &mut BTreeMap<u8, usize>) {
    for socket in sockets {
        while let Ok((len, _)) = socket.try_recv_from(buf) {
            let rcode = if len >= 12 { buf[3] & 0x0F } else { u8::MAX };
            *replies.entry(rcode).or_default() += 1;
        }
    }
}

/// Roughly the memory a datagram of `len` bytes takes in a receive buffer.
fn kernel_cost(len: usize) -> usize {
    (len + 64).next_power_of_two().max(512) + 768
}

async fn udp_storm(
    generator: &mut Generator,
    server: SocketAddr,
    target: usize,
    checker: &mut UdpChecker,
) -> UdpReport {
    let mut sockets = Vec::new();
    for _ in 0..UDP_CLIENTS {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.expect("bind client"));
    }
    let mut report = UdpReport::default();
    let mut packet = Vec::with_capacity(usize::from(u16::MAX));
    let mut scratch = vec![0u8; usize::from(u16::MAX)];
    let (mut burst_packets, mut burst_bytes) = (0, 0);
    for i in 0..target {
        let kind = if i % JUMBO_EVERY == JUMBO_EVERY / 2 {
            packet.clear();
            generator.push_random(&mut packet, JUMBO_LEN);
            Kind::Jumbo
        } else {
            generator.packet(&mut packet)
        };
        let cost = kernel_cost(packet.len());
        if burst_packets > 0 && (burst_packets >= BURST_PACKETS || burst_bytes + cost > BURST_BYTES)
        {
            drain(&sockets, &mut scratch, &mut report.replies);
            checker.check().await;
            (burst_packets, burst_bytes) = (0, 0);
        }
        let socket = &sockets[i % UDP_CLIENTS];
        let sent = timeout(WAIT, socket.send_to(&packet, server))
            .await
            .expect("a send within the wait")
            .expect("send a hostile packet");
        assert_eq!(sent, packet.len(), "the whole datagram went out");
        *report.sent.entry(kind).or_default() += 1;
        burst_packets += 1;
        burst_bytes += cost;
    }
    drain(&sockets, &mut scratch, &mut report.replies);
    checker.check().await;
    drain(&sockets, &mut scratch, &mut report.replies);
    report
}

/// The drop counter of the UDP socket on `port`, from `/proc/net/udp` (Linux only).
fn udp_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.get(1)?.ends_with(&local) {
            columns.last()?.parse().ok()
        } else {
            None
        }
    })
}

// --- TCP ---------------------------------------------------------------------------------------

/// One hostile TCP connection: the bytes it sends and the hostile messages among them.
struct Connection {
    bytes: Vec<u8>,
    kinds: Vec<Kind>,
    /// Where the bytes are split into separate writes.
    splits: Vec<usize>,
    /// Close at once after writing instead of sending FIN and reading the answers until the
    /// server closes.
    abort: bool,
    /// Close with a reset rather than FIN (only when aborting).
    reset: bool,
}

/// What became of one connection.
#[derive(Default)]
struct Outcome {
    /// Every byte was written: its messages count as sent.
    delivered: bool,
    reply_bytes: usize,
    /// We sent FIN and read, and the server did not close within the wait.
    left_open: bool,
}

#[derive(Default)]
struct TcpReport {
    sent: Tally,
    connections: usize,
    undelivered: usize,
    reply_bytes: usize,
    left_open: usize,
    checks: usize,
}

fn push_frame(out: &mut Vec<u8>, frame: &[u8]) {
    push_u16(
        out,
        u16::try_from(frame.len()).expect("a frame fits a length prefix"),
    );
    out.extend_from_slice(frame);
}

impl Generator {
    fn connection(&mut self) -> Connection {
        let mut bytes = Vec::new();
        let mut kinds = Vec::new();
        let mut frame = Vec::new();
        let mut ended = false;
        if self.below(25) != 0 {
            for _ in 0..self.below(TCP_MAX_FRAMES + 1) {
                if self.below(400) == 0 {
                    frame.clear();
                    self.push_random(&mut frame, usize::from(u16::MAX));
                    push_frame(&mut bytes, &frame);
                    kinds.push(Kind::Jumbo);
                } else if self.below(10) == 0 {
                    // A valid query among the hostile ones (not counted).
                    frame.clear();
                    self.push_any_query(&mut frame);
                    push_frame(&mut bytes, &frame);
                } else {
                    let kind = self.packet(&mut frame);
                    push_frame(&mut bytes, &frame);
                    if frame.is_empty() {
                        // hickory drops a connection after a zero-length frame.
                        kinds.push(Kind::TcpZeroLength);
                        ended = true;
                        break;
                    }
                    kinds.push(kind);
                }
            }
            if !ended {
                match self.below(6) {
                    0 => {
                        // A length prefix promising more than follows.
                        let promised = if self.coin() {
                            u16::MAX
                        } else {
                            self.rng.random_range(1..=u16::MAX)
                        };
                        push_u16(&mut bytes, promised);
                        let len = self.below(usize::from(promised).min(2048));
                        self.push_random(&mut bytes, len);
                        kinds.push(Kind::TcpShortFrame);
                    }
                    1 => {
                        bytes.push(self.rng.random());
                        kinds.push(Kind::TcpHalfPrefix);
                    }
                    2 => {
                        push_u16(&mut bytes, 0);
                        let len = self.below(64);
                        self.push_random(&mut bytes, len);
                        kinds.push(Kind::TcpZeroLength);
                    }
                    3 => {
                        frame.clear();
                        self.push_any_query(&mut frame);
                        push_frame(&mut bytes, &frame);
                        let len = 1 + self.below(64);
                        self.push_random(&mut bytes, len);
                        kinds.push(Kind::TcpGarbageAfterValid);
                    }
                    _ => {}
                }
            }
        }
        if kinds.is_empty() && bytes.is_empty() {
            kinds.push(Kind::TcpEmptyConnection);
        }
        let mut splits: Vec<usize> = (0..self.below(3))
            .map(|_| self.below(bytes.len() + 1))
            .collect();
        splits.sort_unstable();
        let abort = self.below(10) < 3;
        Connection {
            bytes,
            kinds,
            splits,
            abort,
            reset: abort && self.coin(),
        }
    }
}

/// Writes the connection's bytes in its chunks; false if a write failed or stalled.
async fn write_chunks(writer: &mut OwnedWriteHalf, connection: &Connection) -> bool {
    let mut start = 0;
    for end in connection
        .splits
        .iter()
        .copied()
        .chain([connection.bytes.len()])
    {
        let chunk = &connection.bytes[start..end];
        start = end;
        if chunk.is_empty() {
            continue;
        }
        if !matches!(timeout(WAIT, writer.write_all(chunk)).await, Ok(Ok(()))) {
            return false;
        }
        tokio::task::yield_now().await;
    }
    true
}

async fn hostile_connection(server: SocketAddr, connection: Connection) -> Outcome {
    let mut outcome = Outcome::default();
    let Ok(Ok(stream)) = timeout(WAIT, TcpStream::connect(server)).await else {
        return outcome;
    };
    if connection.reset {
        let _ = stream.set_zero_linger();
    }
    let (mut reader, mut writer) = stream.into_split();
    if connection.abort {
        outcome.delivered = write_chunks(&mut writer, &connection).await;
        return outcome;
    }
    let read = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0;
        let closed = timeout(WAIT, async {
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        })
        .await
        .is_ok();
        (total, closed)
    };
    let write_then_fin = async {
        let delivered = write_chunks(&mut writer, &connection).await;
        let _ = timeout(WAIT, writer.shutdown()).await;
        delivered
    };
    let (delivered, (reply_bytes, closed)) = tokio::join!(write_then_fin, read);
    outcome.delivered = delivered;
    outcome.reply_bytes = reply_bytes;
    outcome.left_open = !closed;
    outcome
}

async fn tcp_storm(generator: &mut Generator, server: SocketAddr, target: usize) -> TcpReport {
    let mut report = TcpReport::default();
    let mut running: JoinSet<(Vec<Kind>, Outcome)> = JoinSet::new();
    // Hostile messages in connections still running.
    let mut in_flight = 0;
    let mut check_id: u16 = 0x8000;
    loop {
        let sent: usize = report.sent.values().sum();
        if sent >= target && running.is_empty() {
            break;
        }
        if sent + in_flight < target && running.len() < TCP_PARALLEL {
            let connection = generator.connection();
            in_flight += connection.kinds.len();
            running.spawn(async move {
                let kinds = connection.kinds.clone();
                (kinds, hostile_connection(server, connection).await)
            });
            continue;
        }
        let (kinds, outcome) = running
            .join_next()
            .await
            .expect("a connection task")
            .expect("a connection task that did not panic");
        in_flight -= kinds.len();
        report.connections += 1;
        report.reply_bytes += outcome.reply_bytes;
        report.left_open += usize::from(outcome.left_open);
        if outcome.delivered {
            for kind in kinds {
                *report.sent.entry(kind).or_default() += 1;
            }
        } else {
            report.undelivered += 1;
        }
        if report.connections % TCP_CHECK_EVERY == 0 {
            check_id = check_id.wrapping_add(1);
            tcp_check(server, check_id).await;
            report.checks += 1;
        }
    }
    tcp_check(server, check_id.wrapping_add(1)).await;
    report.checks += 1;
    report
}

// --- the test ----------------------------------------------------------------------------------

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim().replace('_', "");
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={value:?} is not a number: {e}")))
}

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

fn show(tally: &Tally) -> String {
    tally
        .iter()
        .map(|(kind, n)| format!("    {kind:?}: {n}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_role_survives_hostile_packets_and_keeps_answering() {
    let started = Instant::now();
    count_panics();
    let seed = env_number("OUTAGE_LAB_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let total = env_number("OUTAGE_LAB_FUZZ_PACKETS").map_or(DEFAULT_PACKETS, |n| {
        usize::try_from(n).expect("a packet count that fits usize")
    });
    let tcp_target = total / 10;
    let udp_target = total - tcp_target;
    println!(
        "hostile packets: seed {seed:#x} (OUTAGE_LAB_FUZZ_SEED), {total} packets \
         (OUTAGE_LAB_FUZZ_PACKETS): {udp_target} over UDP, {tcp_target} over TCP"
    );

    let server = Running::start().await;
    let mut generator = Generator::new(seed);
    let mut checker = UdpChecker::new(server.dns).await;
    checker.check().await;
    tcp_check(server.dns, 1).await;

    let udp_started = Instant::now();
    let udp = udp_storm(&mut generator, server.dns, udp_target, &mut checker).await;
    let udp_took = udp_started.elapsed();
    let drops = udp_drops(server.dns.port());

    let tcp_started = Instant::now();
    let tcp = tcp_storm(&mut generator, server.dns, tcp_target).await;
    let tcp_took = tcp_started.elapsed();

    let udp_sent: usize = udp.sent.values().sum();
    let tcp_sent: usize = tcp.sent.values().sum();
    println!(
        "UDP: {udp_sent} hostile packets in {udp_took:.1?}, {} replies read and dropped ({}), \
         {} valid queries answered correctly during the storm ({} resent), server socket drops: \
         {}\n{}",
        udp.replies.values().sum::<usize>(),
        udp.replies
            .iter()
            .map(|(&rcode, n)| format!("{}: {n}", ResponseCode::from_low(rcode)))
            .collect::<Vec<_>>()
            .join(", "),
        checker.checks,
        checker.resends,
        drops.map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
        show(&udp.sent),
    );
    println!(
        "TCP: {tcp_sent} hostile messages over {} connections in {tcp_took:.1?} ({} not fully \
         written because the server closed first, {} reply bytes read, {} left open by the \
         server), {} valid TCP queries answered correctly during the storm\n{}",
        tcp.connections,
        tcp.undelivered,
        tcp.reply_bytes,
        tcp.left_open,
        tcp.checks,
        show(&tcp.sent),
    );
    assert!(
        udp_sent >= udp_target,
        "only {udp_sent} of {udp_target} UDP packets sent"
    );
    assert!(
        tcp_sent >= tcp_target,
        "only {tcp_sent} of {tcp_target} TCP messages sent"
    );
    assert!(udp_sent + tcp_sent >= total);
    assert_eq!(
        tcp.left_open, 0,
        "the server kept connections open after the client's FIN"
    );
    if let Some(drops) = drops {
        // The bursts fit the receive buffer; a few drops would be a busy machine, many would
        // mean the server did not see what the test claims to have sent.
        assert!(
            drops <= udp_target as u64 / 100,
            "the kernel dropped {drops} packets for the server"
        );
    }

    // Afterwards: fresh resolvers over UDP and TCP get the collector, an unknown name is
    // NXDOMAIN, the admin API answers and the zone is as configured.
    for tcp in [false, true] {
        let transport = if tcp { "TCP" } else { "UDP" };
        let lookup = timeout(
            2 * WAIT,
            resolver(server.dns, tcp).lookup_ip(COLLECTOR_NAME),
        )
        .await
        .expect("a resolver answer within the wait")
        .unwrap_or_else(|e| panic!("{transport}: the collector does not resolve: {e}"));
        assert_eq!(
            lookup.iter().collect::<Vec<_>>(),
            vec![IpAddr::V4(COLLECTOR)],
            "{transport}"
        );
        let error = timeout(2 * WAIT, resolver(server.dns, tcp).lookup_ip(UNKNOWN_NAME))
            .await
            .expect("a resolver answer within the wait")
            .expect_err("an unknown name does not resolve");
        assert!(error.is_nx_domain(), "{transport}: {error}");
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    let health = http
        .get(format!("http://{}/health", server.admin))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);
    let records: RecordsMsg = http
        .get(format!("http://{}/records", server.admin))
        .send()
        .await
        .expect("GET /records")
        .json()
        .await
        .expect("a records body");
    assert_eq!(
        records,
        RecordsMsg {
            serial: 1,
            records: BTreeMap::from([(COLLECTOR_NAME.to_owned(), vec![IpAddr::V4(COLLECTOR)])]),
        },
        "the zone changed under hostile packets"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked during the storm"
    );

    // The server is still running (run returns only on shutdown), then stops cleanly.
    assert!(
        !server.task.is_finished(),
        "the server task ended on its own"
    );
    server.shutdown.cancel();
    let result = timeout(Duration::from_secs(2), server.task)
        .await
        .expect("the server stopped within 2 s")
        .expect("the server task did not panic");
    assert!(result.is_ok(), "the server failed: {result:?}");
    println!("hostile packets: done in {:.1?}", started.elapsed());
}
