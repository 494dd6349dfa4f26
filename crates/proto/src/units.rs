//! Humane units for configuration: `"64KiB"`, `"48MiB"`, `"250ms"`, `"1m30s"`.
//!
//! Scenario files never carry bare numbers whose unit must be guessed. Both types serialize back
//! to the same humane string, so a config written by the harness reads like one a person wrote.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parse error for a humane unit string; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The string was not `<number><unit>`.
    #[error("invalid {what} {input:?}: expected {expected}")]
    Invalid {
        /// "size" or "duration".
        what: &'static str,
        /// The offending input.
        input: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// The value does not fit in 64 bits.
    #[error("{what} {input:?} is too large")]
    Overflow {
        /// "size" or "duration".
        what: &'static str,
        /// The offending input.
        input: String,
    },
}

const SIZE_EXPECTED: &str =
    "a whole number followed by a unit: B, KiB, MiB, GiB (or kB, MB, GB), e.g. \"64KiB\"";
const DURATION_EXPECTED: &str =
    "a number followed by a unit: ms, s, m or h, optionally chained, e.g. \"250ms\", \"1m30s\"";

/// A number of bytes, written with a unit (`"64KiB"`, `"48MiB"`, `"1GiB"`, `"500kB"`, `"0B"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` kibibytes.
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
    /// Mebibytes as a float, for display.
    pub fn as_mib(self) -> f64 {
        self.0 as f64 / (1024.0 * 1024.0)
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || UnitError::Invalid {
            what: "size",
            input: input.to_owned(),
            expected: SIZE_EXPECTED,
        };
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| UnitError::Overflow {
            what: "size",
            input: input.to_owned(),
        })?;
        let mult: u64 = match unit.trim() {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(invalid()),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or(UnitError::Overflow {
                what: "size",
                input: input.to_owned(),
            })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, mult) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= mult && n.is_multiple_of(mult) {
                return write!(f, "{}{unit}", n / mult);
            }
        }
        write!(f, "{n}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A span of time, written with units (`"250ms"`, `"5s"`, `"1m30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `n` milliseconds.
    pub const fn millis(n: u64) -> Self {
        Self(Duration::from_millis(n))
    }
    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Self(Duration::from_secs(n))
    }
    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
    /// Whole milliseconds.
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || UnitError::Invalid {
            what: "duration",
            input: input.to_owned(),
            expected: DURATION_EXPECTED,
        };
        let mut rest = input.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total_ms: u64 = 0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(invalid)?;
            let (num, tail) = rest.split_at(num_end);
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let value: f64 = num.parse().map_err(|_| invalid())?;
            let mult = match unit {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return Err(invalid()),
            };
            let ms = value * mult;
            if !ms.is_finite() || ms > u64::MAX as f64 / 2.0 {
                return Err(UnitError::Overflow {
                    what: "duration",
                    input: input.to_owned(),
                });
            }
            total_ms = total_ms.saturating_add(ms.round() as u64);
            rest = tail;
        }
        Ok(Self(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        if ms == 0 {
            write!(f, "0ms")
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("64KiB".parse::<ByteSize>(), Ok(ByteSize::kib(64)));
        assert_eq!("48MiB".parse::<ByteSize>(), Ok(ByteSize::mib(48)));
        assert_eq!("2GiB".parse::<ByteSize>(), Ok(ByteSize(2 << 30)));
        assert_eq!("500kB".parse::<ByteSize>(), Ok(ByteSize(500_000)));
        assert_eq!("0B".parse::<ByteSize>(), Ok(ByteSize(0)));
    }

    #[test]
    fn sizes_without_a_unit_or_with_a_sign_are_rejected() {
        for bad in [
            "64",
            "",
            "KiB",
            "-1MiB",
            "1.5MiB",
            "12 parsecs",
            "99999999999999999999B",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            "99999999999GiB".parse::<ByteSize>(),
            Err(UnitError::Overflow { .. })
        ));
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit_and_round_trip() {
        for s in ["64KiB", "48MiB", "1GiB", "1000B", "0B"] {
            let b: ByteSize = s.parse().expect("valid");
            assert_eq!(b.to_string(), s);
        }
    }

    #[test]
    fn durations_parse_chained_units() {
        assert_eq!(
            "250ms".parse::<HumanDuration>(),
            Ok(HumanDuration::millis(250))
        );
        assert_eq!("5s".parse::<HumanDuration>(), Ok(HumanDuration::secs(5)));
        assert_eq!(
            "1m30s".parse::<HumanDuration>(),
            Ok(HumanDuration::secs(90))
        );
        assert_eq!(
            "1.5s".parse::<HumanDuration>(),
            Ok(HumanDuration::millis(1500))
        );
        assert_eq!("0s".parse::<HumanDuration>(), Ok(HumanDuration::millis(0)));
    }

    #[test]
    fn durations_without_units_are_rejected() {
        for bad in ["5", "", "s", "5 parsecs", "-1s", "1e999s"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations_round_trip_through_display() {
        for s in ["250ms", "5s", "2m", "0ms", "1500ms"] {
            let d: HumanDuration = s.parse().expect("valid");
            assert_eq!(d.to_string(), s);
        }
    }
}
