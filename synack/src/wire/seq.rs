//! TCP sequence numbers: 32-bit values compared with serial-number arithmetic (RFC 1982,
//! RFC 9293 3.4), so that comparisons stay right across the wrap from 2^32-1 to 0.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A sequence or acknowledgment number. `a < b` means `b` is ahead of `a` by less than
/// 2^31; this is the only way sequence numbers are compared in synack.
///
/// # Examples
///
/// ```
/// use synack::wire::SeqNum;
/// let near_wrap = SeqNum::new(u32::MAX - 10);
/// let after = near_wrap + 20; // wraps around 2^32
/// assert_eq!(after, SeqNum::new(9));
/// assert!(after > near_wrap); // RFC 1982 comparison: later despite the smaller number
/// assert_eq!(after - near_wrap, 20);
/// assert!(SeqNum::new(5).in_range(near_wrap, after));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(u32);

impl SeqNum {
    /// The sequence number `v`.
    pub const fn new(v: u32) -> SeqNum {
        SeqNum(v)
    }

    /// The raw 32-bit value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self >= other {
            self
        } else {
            other
        }
    }

    /// The earlier of two sequence numbers.
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self <= other {
            self
        } else {
            other
        }
    }

    /// `start <= self < end`, in serial arithmetic.
    pub fn in_range(self, start: SeqNum, end: SeqNum) -> bool {
        start <= self && self < end
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}

impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    /// The signed distance from `rhs` to `self`.
    fn sub(self, rhs: SeqNum) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl PartialOrd for SeqNum {
    // RFC 1982 3.2: i1 < i2 iff (i2 - i1) mod 2^32 is in (0, 2^31).
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some((*self - *other).cmp(&0))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparison_holds_across_the_wrap() {
        let a = SeqNum::new(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b.get(), 4);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
        assert_eq!(a.max(b), b);
        assert!((a + 3).in_range(a, b));
    }

    proptest! {
        #[test]
        fn adding_less_than_half_the_space_moves_forward(v in any::<u32>(), n in 1u32..(1 << 31)) {
            let a = SeqNum::new(v);
            prop_assert!(a + n > a);
            prop_assert!(a < a + n);
            prop_assert_eq!((a + n) - a, n as i32);
        }

        #[test]
        fn ordering_is_antisymmetric(x in any::<u32>(), y in any::<u32>()) {
            let (a, b) = (SeqNum::new(x), SeqNum::new(y));
            if (b - a) != i32::MIN {
                prop_assert_eq!(a < b, b > a);
                prop_assert!(!(a < b && b < a));
            }
        }
    }
}
