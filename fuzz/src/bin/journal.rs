//! afl harness: `outage_lab_fuzz_targets::journal` (crates/fuzz-targets), corpus in fuzz/corpus/journal.

fn main() {
    afl::fuzz!(|data: &[u8]| outage_lab_fuzz_targets::journal(data));
}
