//! Time as the engine sees it: an [`Instant`] supplied by whoever drives the stack.
//!
//! The core never reads a clock. The simulator passes virtual time, the TUN driver
//! passes microseconds since it started; both are just a count of microseconds.

use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by the driver (up
/// to `u64::MAX - 1`: later instants saturate there).
///
/// Stored as the count plus one, so that `Option<Instant>` is as small as `Instant`
/// (a connection keeps a dozen optional times).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::Instant;
/// // From the wall clock: keep a start instant, pass the microseconds since.
/// let start = std::time::Instant::now();
/// let now = Instant::from_micros(start.elapsed().as_micros() as u64);
/// assert!(now < Instant::from_secs(60));
///
/// // Virtual time is just as good (the simulator's).
/// let t = Instant::from_millis(1500);
/// assert_eq!(t + Duration::from_millis(500), Instant::from_secs(2));
/// assert_eq!(Instant::from_secs(2) - t, Duration::from_millis(500));
/// assert_eq!(t - Instant::from_secs(10), Duration::ZERO); // saturates
/// assert_eq!(t.to_string(), "1.500000s");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(NonZeroU64);

impl Default for Instant {
    fn default() -> Instant {
        Instant::ZERO
    }
}

impl Instant {
    /// The epoch (time zero).
    pub const ZERO: Instant = Instant::from_micros(0);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        match NonZeroU64::new(micros.saturating_add(1)) {
            Some(v) => Instant(v),
            None => Instant(NonZeroU64::MAX),
        }
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant::from_micros(millis * 1000)
    }

    /// An instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0.get() - 1
    }

    /// Milliseconds since the epoch (truncated).
    pub const fn as_millis(self) -> u64 {
        self.as_micros() / 1000
    }

    /// `d` before `self`, if that is not before time zero.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        self.as_micros()
            .checked_sub(u64::try_from(d.as_micros()).ok()?)
            .map(Instant::from_micros)
    }

    /// The time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.as_micros().saturating_sub(earlier.as_micros()))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(self.as_micros().saturating_add(micros))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(self.as_micros().saturating_sub(micros))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.as_micros();
        write!(f, "{}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A duration in 32 bits of microseconds (up to about 71 minutes; longer saturates):
/// for the round-trip times and delays every connection keeps, where a `Duration`
/// takes 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Micros(u32);

impl Micros {
    pub(crate) fn new(d: Duration) -> Micros {
        Micros(u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
    }

    pub(crate) fn get(self) -> Duration {
        Duration::from_micros(u64::from(self.0))
    }
}

/// A duration in 32 bits of milliseconds (up to 49 days; longer saturates; rounded
/// up, so that a timeout never fires early): for the long timeouts a connection keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Millis(u32);

impl Millis {
    pub(crate) fn new(d: Duration) -> Millis {
        Millis(u32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX))
    }

    pub(crate) fn get(self) -> Duration {
        Duration::from_millis(u64::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_and_subtracting_durations_round_trips() {
        let t = Instant::from_millis(1500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_secs(2));
        assert_eq!((t + Duration::from_secs(1)) - t, Duration::from_secs(1));
        assert_eq!(t - Instant::from_secs(10), Duration::ZERO);
        assert_eq!(format!("{t}"), "1.500000s");
    }

    #[test]
    fn an_optional_instant_is_as_small_as_an_instant_and_the_end_of_time_saturates() {
        assert_eq!(core::mem::size_of::<Option<Instant>>(), 8);
        assert_eq!(Instant::default(), Instant::ZERO);
        let end = Instant::from_micros(u64::MAX);
        assert_eq!(end.as_micros(), u64::MAX - 1);
        assert_eq!(end + Duration::from_secs(1), end);
        assert!(Instant::ZERO < Instant::from_micros(1));
        assert_eq!(Instant::ZERO.checked_sub(Duration::from_micros(1)), None);
    }

    #[test]
    fn micros_and_millis_keep_durations_and_saturate_past_their_range() {
        let d = Duration::from_micros(123_456_789);
        assert_eq!(Micros::new(d).get(), d);
        assert_eq!(
            Micros::new(Duration::from_nanos(1_999)).get(),
            Duration::from_micros(1)
        );
        let long = Micros::new(Duration::from_secs(10_000)).get();
        assert_eq!(long, Duration::from_micros(u64::from(u32::MAX)));
        assert_eq!(
            Millis::new(Duration::from_secs(3600)).get(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            Millis::new(Duration::from_micros(1_001)).get(),
            Duration::from_millis(2)
        );
    }
}
