//! afl harness: `outage_lab_fuzz_targets::control_api` (crates/fuzz-targets), corpus in fuzz/corpus/control_api.

fn main() {
    afl::fuzz!(|data: &[u8]| outage_lab_fuzz_targets::control_api(data));
}
