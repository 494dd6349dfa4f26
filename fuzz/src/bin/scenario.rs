//! afl harness: `outage_lab_fuzz_targets::scenario` (crates/fuzz-targets), corpus in fuzz/corpus/scenario.

fn main() {
    afl::fuzz!(|data: &[u8]| outage_lab_fuzz_targets::scenario(data));
}
