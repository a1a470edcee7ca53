//! Human-written quantities in configuration: durations (`500ms`, `2s`, `1m`) and byte
//! sizes (`512KB`, `16MB`). Both keep the form they are written back in, so an export
//! reads like what a person would type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration `{s}` needs a unit: ms, s, m, h or d"))?;
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            return Err(format!(
                "duration `{s}` must start with a whole number, e.g. `2s`"
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("duration `{s}` is too large"))?;
        let ms_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "duration `{s}` has unknown unit `{unit}`; use ms, s, m, h or d"
                ));
            }
        };
        let ms = n
            .checked_mul(ms_per_unit)
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
        Ok(Duration::from_millis(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A size in bytes, written as a number with an optional unit: `B`, `KB`, `MB`, `GB`
/// (powers of 1024), e.g. `64KB`, or as a plain integer number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            format!("size `{s}` must be a whole number with an optional unit (B, KB, MB, GB)")
        })?;
        let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" | "K" | "KIB" => 1 << 10,
            "MB" | "M" | "MIB" => 1 << 20,
            "GB" | "G" | "GIB" => 1 << 30,
            other => {
                return Err(format!(
                    "size `{s}` has unknown unit `{other}`; use B, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GB", 1u64 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
            if n != 0 && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, ms, back) in [
            ("500ms", 500, "500ms"),
            ("2s", 2000, "2s"),
            ("1m", 60_000, "1m"),
            ("90s", 90_000, "90s"),
            ("1h", 3_600_000, "1h"),
            ("1d", 86_400_000, "1d"),
            ("0s", 0, "0ms"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), back);
        }
    }

    #[test]
    fn bad_durations_name_the_problem() {
        assert!("2".parse::<Duration>().unwrap_err().contains("unit"));
        assert!(
            "2 weeks"
                .parse::<Duration>()
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            "s".parse::<Duration>()
                .unwrap_err()
                .contains("whole number")
        );
        assert!("99999999999999999999s".parse::<Duration>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!("64KB".parse::<ByteSize>().unwrap().0, 65536);
        assert_eq!("1mb".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert_eq!(ByteSize(1 << 20).to_string(), "1MB");
        assert!("1TB".parse::<ByteSize>().is_err());
    }
}
