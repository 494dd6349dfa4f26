//! A value that may differ between processes: one value (`64KiB`) or a range (`{ min: 64KiB,
//! max: 192KiB }`) from which each process draws its own, from its own seed. A real fleet's
//! agents do not all leak at one rate; a seeded spread makes them differ and keeps the run
//! repeatable.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ByteSize, HumanDuration};

/// A value, or the range a process draws its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread<T> {
    /// The smallest value.
    pub min: T,
    /// The largest value (equal to `min` for a single value).
    pub max: T,
}

/// Values a spread can be drawn from: anything with a straight line between two of them.
pub trait Drawable: Copy + PartialOrd {
    /// The value `share` (in [0, 1]) of the way from `min` to `max`.
    fn between(min: Self, max: Self, share: f64) -> Self;
}

impl Drawable for ByteSize {
    fn between(min: Self, max: Self, share: f64) -> Self {
        let span = max.bytes().saturating_sub(min.bytes()) as f64;
        ByteSize(min.bytes() + (span * share) as u64)
    }
}

impl Drawable for HumanDuration {
    fn between(min: Self, max: Self, share: f64) -> Self {
        HumanDuration(min.get() + (max.get().saturating_sub(min.get())).mul_f64(share))
    }
}

impl<T: Drawable> From<T> for Spread<T> {
    fn from(value: T) -> Self {
        Self::exactly(value)
    }
}

impl<T: Drawable> Spread<T> {
    /// Just this value.
    pub fn exactly(value: T) -> Self {
        Self {
            min: value,
            max: value,
        }
    }

    /// Whether it is one value.
    pub fn is_single(&self) -> bool {
        self.min >= self.max
    }

    /// The value a process with `seed` gets: the same seed always gets the same value.
    pub fn draw(&self, seed: u64) -> T {
        if self.is_single() {
            return self.min;
        }
        // The top 53 bits of a well-mixed seed, as a share in [0, 1).
        let share = (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64;
        T::between(self.min, self.max, share)
    }
}

impl<T: fmt::Display + Drawable> fmt::Display for Spread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// SplitMix64: a tiny, well-mixed way to derive independent numbers from one seed.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<T: Serialize + Drawable> Serialize for Spread<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_single() {
            return self.min.serialize(s);
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Spread", 2)?;
        st.serialize_field("min", &self.min)?;
        st.serialize_field("max", &self.max)?;
        st.end()
    }
}

impl<'de, T: Deserialize<'de> + Drawable> Deserialize<'de> for Spread<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SpreadVisitor(PhantomData))
    }
}

struct SpreadVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Drawable> de::Visitor<'de> for SpreadVisitor<T> {
    type Value = Spread<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value such as 64KiB, or a range such as { min: 64KiB, max: 192KiB }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Spread::exactly)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Spread::exactly)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Spread::exactly)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Spread::exactly)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut min, mut max) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "min" => min = Some(map.next_value::<T>()?),
                "max" => max = Some(map.next_value::<T>()?),
                other => return Err(de::Error::unknown_field(other, &["min", "max"])),
            }
        }
        let min = min.ok_or_else(|| de::Error::missing_field("min"))?;
        let max = max.ok_or_else(|| de::Error::missing_field("max"))?;
        if max < min {
            return Err(de::Error::custom("max is below min; expected min <= max"));
        }
        Ok(Spread { min, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_value_and_a_range_both_read_and_write_back() {
        let one: Spread<ByteSize> = serde_json::from_str("\"64KiB\"").expect("a value");
        assert_eq!(one, Spread::exactly(ByteSize::kib(64)));
        assert_eq!(serde_json::to_string(&one).expect("write"), "\"64KiB\"");
        let range: Spread<ByteSize> =
            serde_json::from_str(r#"{"min":"64KiB","max":"192KiB"}"#).expect("a range");
        assert_eq!(
            (range.min, range.max),
            (ByteSize::kib(64), ByteSize::kib(192))
        );
        let back: Spread<ByteSize> =
            serde_json::from_str(&serde_json::to_string(&range).expect("write")).expect("read");
        assert_eq!(back, range);
    }

    #[test]
    fn a_range_upside_down_is_refused() {
        let e = serde_json::from_str::<Spread<ByteSize>>(r#"{"min":"2KiB","max":"1KiB"}"#)
            .expect_err("refused");
        assert!(e.to_string().contains("max is below min"), "{e}");
    }

    #[test]
    fn draws_stay_in_range_repeat_per_seed_and_differ_between_seeds() {
        let range = Spread {
            min: HumanDuration::millis(80),
            max: HumanDuration::millis(120),
        };
        let draws: Vec<HumanDuration> = (0..50).map(|s| range.draw(s)).collect();
        assert!(draws.iter().all(|d| *d >= range.min && *d <= range.max));
        assert_eq!(range.draw(7), range.draw(7));
        let distinct: std::collections::BTreeSet<_> = draws.iter().map(|d| d.get()).collect();
        assert!(distinct.len() > 40, "{distinct:?}");
        assert_eq!(Spread::exactly(ByteSize::kib(1)).draw(9), ByteSize::kib(1));
    }
}
