//! afl harness: `outage_lab_fuzz_targets::collector` (crates/fuzz-targets), corpus in fuzz/corpus/collector.

fn main() {
    afl::fuzz!(|data: &[u8]| outage_lab_fuzz_targets::collector(data));
}
