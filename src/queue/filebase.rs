//! `Filebase`: an entry's name without its extension, `<time>+<sha1 hex>`.
//!
//! The time is the enqueue time as Python's `repr(time.time())` prints it; it gives the
//! FIFO order. The digest is SHA-1 over the message bytes, the list id and the time
//! string, and places the entry in the hash space that slices divide.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::metadata::python_float_repr;

/// An entry's name: `<time>+<40 lower-case hex digits>`.
#[derive(Debug, Clone)]
pub struct Filebase {
    text: String,
    time: f64,
    /// The top 64 bits of the digest, for slice membership.
    digest_top: u64,
}

impl Filebase {
    /// Builds the filebase of a message from its hasher (fed with the message bytes),
    /// the list id and the time string, as Mailman's `Switchboard.enqueue` does.
    pub fn from_parts(mut hasher: Sha1, listid: &str, time: &Stamp) -> Filebase {
        hasher.update(listid.as_bytes());
        hasher.update(time.text.as_bytes());
        let digest = hasher.finalize();
        let mut text = String::with_capacity(time.text.len() + 41);
        text.push_str(&time.text);
        text.push('+');
        for b in digest.iter() {
            text.push(char::from_digit((b >> 4) as u32, 16).unwrap());
            text.push(char::from_digit((b & 15) as u32, 16).unwrap());
        }
        text.parse().expect("a generated filebase parses")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The enqueue time, seconds since the epoch.
    pub fn time(&self) -> f64 {
        self.time
    }

    /// FIFO order: by time as a number, ties broken by name (Mailman breaks them by
    /// directory order; a total order is kinder to tests and humans).
    pub fn fifo_cmp(&self, other: &Filebase) -> Ordering {
        self.time
            .total_cmp(&other.time)
            .then_with(|| self.text.cmp(&other.text))
    }

    pub fn in_slice(&self, slice: &Slice) -> bool {
        slice.contains(self.digest_top)
    }
}

impl FromStr for Filebase {
    type Err = Error;

    /// Parses `<time>+<40 hex>`; the time is digits with an optional fraction.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::data(
                format!("invalid filebase {s:?}"),
                "a filebase is <time>+<40 lower-case hex digits>, as `qtool list` shows",
            )
        };
        let (time, digest) = s.split_once('+').ok_or_else(bad)?;
        let (int, frac) = time.split_once('.').unwrap_or((time, "0"));
        let time_ok = !int.is_empty()
            && int.len() <= 20
            && frac.len() <= 20
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        let digest_ok = digest.len() == 40
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !time_ok || !digest_ok {
            return Err(bad());
        }
        let time: f64 = time.parse().map_err(|_| bad())?;
        let digest_top = u64::from_str_radix(&digest[..16], 16).map_err(|_| bad())?;
        Ok(Filebase {
            text: s.to_string(),
            time,
            digest_top,
        })
    }
}

impl PartialEq for Filebase {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Filebase {}

impl std::hash::Hash for Filebase {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl fmt::Display for Filebase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An enqueue time and its text, as `repr(time.time())`.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub secs: f64,
    pub text: String,
}

static LAST_STAMP: AtomicU64 = AtomicU64::new(0);

impl Stamp {
    /// The current time, strictly later than any stamp this process made before, so
    /// that entries one process enqueues one after another sort in that order.
    pub fn now() -> Stamp {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut last = LAST_STAMP.load(AtomicOrdering::Relaxed);
        loop {
            let prev = f64::from_bits(last);
            let secs = if now > prev { now } else { prev.next_up() };
            match LAST_STAMP.compare_exchange_weak(
                last,
                secs.to_bits(),
                AtomicOrdering::Relaxed,
                AtomicOrdering::Relaxed,
            ) {
                Ok(_) => {
                    return Stamp {
                        secs,
                        text: python_float_repr(secs),
                    }
                }
                Err(actual) => last = actual,
            }
        }
    }
}

/// A slice of the SHA-1 hash space: slice `index` of `count` (a power of two) owns the
/// digests in `[2^160·index/count, 2^160·(index+1)/count − 1]`, as Mailman computes them.
/// With a power of two that is exactly "the top log2(count) bits equal `index`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub index: u32,
    pub count: u32,
}

impl Slice {
    /// The whole hash space.
    pub const ALL: Slice = Slice { index: 0, count: 1 };

    /// The largest number of slices accepted.
    pub const MAX_COUNT: u32 = 1 << 16;

    pub fn new(index: u32, count: u32) -> Result<Slice> {
        if count == 0 || !count.is_power_of_two() || count > Slice::MAX_COUNT {
            return Err(Error::usage(
                format!(
                    "slice range {count} is not a power of two between 1 and {}",
                    Slice::MAX_COUNT
                ),
                "use RUNNER:SLICE:RANGE with RANGE 1, 2, 4, 8, ...",
            ));
        }
        if index >= count {
            return Err(Error::usage(
                format!("slice {index} is outside range {count}"),
                format!("SLICE goes from 0 to {}", count - 1),
            ));
        }
        Ok(Slice { index, count })
    }

    pub fn is_all(&self) -> bool {
        self.count == 1
    }

    fn contains(&self, digest_top: u64) -> bool {
        if self.count == 1 {
            return true;
        }
        let bits = self.count.trailing_zeros();
        (digest_top >> (64 - bits)) as u32 == self.index
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn parses_mailman_names() {
        let fb: Filebase = format!("1733342400.1234567+{D}").parse().unwrap();
        assert_eq!(fb.time(), 1733342400.1234567);
        for bad in [
            format!("1.5+{}", &D[..39]),
            format!("1.5+{}", D.to_uppercase()),
            format!("+{D}"),
            format!("1.5-{D}"),
            format!("../1+{D}"),
            format!("1e5+{D}"),
            "".into(),
        ] {
            assert!(bad.parse::<Filebase>().is_err(), "{bad}");
        }
    }

    #[test]
    fn stamps_increase() {
        let mut prev = Stamp::now();
        for _ in 0..1000 {
            let s = Stamp::now();
            assert!(s.secs > prev.secs);
            assert_ne!(s.text, prev.text);
            prev = s;
        }
    }

    #[test]
    fn slices_split_like_mailman() {
        // Mailman: lower = 2^160 * i / n, upper = 2^160 * (i+1) / n - 1.
        let at =
            |top: &str| -> Filebase { format!("1.0+{top}{}", &D[top.len()..]).parse().unwrap() };
        let s0 = Slice::new(0, 2).unwrap();
        let s1 = Slice::new(1, 2).unwrap();
        assert!(at("7fffffffffffffffffffffffffffffffffffffff").in_slice(&s0));
        assert!(at("8000000000000000000000000000000000000000").in_slice(&s1));
        let q3 = Slice::new(3, 4).unwrap();
        assert!(at("c000000000000000000000000000000000000000").in_slice(&q3));
        assert!(!at("bfffffffffffffffffffffffffffffffffffffff").in_slice(&q3));
        assert!(Slice::new(2, 2).is_err());
        assert!(Slice::new(0, 3).is_err());
    }
}
