//! Exit codes: part of the interface, documented in `--help` and the README. Every command of
//! every incident exits with these.

/// An expectation did not hold.
pub const EXPECTATION_FAILED: u8 = 1;
/// Bad input: scenario or flags. Nothing was started.
pub const BAD_INPUT: u8 = 2;
/// The harness itself failed.
pub const HARNESS_FAILED: u8 = 3;
/// Interrupted by SIGINT or SIGTERM (128 + 2, the shell's convention).
pub const INTERRUPTED: u8 = 130;
