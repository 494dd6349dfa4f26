//! afl harness: `outage_lab_fuzz_targets::dns_admin` (crates/fuzz-targets), corpus in fuzz/corpus/dns_admin.

fn main() {
    afl::fuzz!(|data: &[u8]| outage_lab_fuzz_targets::dns_admin(data));
}
