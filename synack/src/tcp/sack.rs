//! The sender's SACK scoreboard (RFC 2018, RFC 6675 section 3): which bytes above
//! SND.UNA the peer has reported holding, so that recovery resends only the holes,
//! decides which holes are lost, and estimates what is still in the network (pipe).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::Cell;

use super::state::PipeKey;
use crate::wire::SeqNum;

/// Most separate ranges tracked; more are ignored (the peer repeats what matters).
const MAX_RANGES: usize = 4096;

/// Sorted, disjoint, non-adjacent SACKed ranges `[start, end)` above SND.UNA, with the
/// last pipe() answer derived from them. Most connections never see a SACK block, so
/// all of it lives behind one pointer, allocated at the first block and given back
/// when the connection goes idle with the scoreboard empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scoreboard {
    inner: Option<Box<Inner>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Inner {
    ranges: Vec<(SeqNum, SeqNum)>,
    /// The last pipe() answer and what it depended on (it walks every hole).
    pipe_cache: Cell<Option<(PipeKey, u32)>>,
}

impl Scoreboard {
    fn ranges_slice(&self) -> &[(SeqNum, SeqNum)] {
        self.inner.as_ref().map_or(&[], |i| &i.ranges)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges_slice().is_empty()
    }

    /// SACKed bytes.
    pub(crate) fn bytes(&self) -> u32 {
        self.ranges_slice()
            .iter()
            .map(|(s, e)| (*e - *s) as u32)
            .sum()
    }

    /// The ranges, lowest first.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        self.ranges_slice()
    }

    /// The cached pipe() answer, if it was computed for `key`.
    pub(crate) fn cached_pipe(&self, key: PipeKey) -> Option<u32> {
        let (k, v) = self.inner.as_ref()?.pipe_cache.get()?;
        (k == key).then_some(v)
    }

    /// Remember pipe() for `key` (nothing to remember with no SACK blocks).
    pub(crate) fn cache_pipe(&self, key: PipeKey, pipe: u32) {
        if let Some(i) = self.inner.as_ref() {
            i.pipe_cache.set(Some((key, pipe)));
        }
    }

    /// Empty, yet holding storage (given back by `release_idle`).
    pub(crate) fn idle_storage(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.ranges.is_empty())
    }

    pub(crate) fn release_idle(&mut self) {
        if self.idle_storage() {
            self.inner = None;
        }
    }

    /// Record a SACK block; returns how many bytes it newly covered.
    pub(crate) fn insert(&mut self, start: SeqNum, end: SeqNum) -> u32 {
        if end <= start {
            return 0;
        }
        let ranges = &mut self.inner.get_or_insert_with(Box::default).ranges;
        // The ranges it touches or joins (they are sorted and disjoint): [first, last).
        let first = ranges.partition_point(|&(_, re)| re < start);
        let last = ranges.partition_point(|&(rs, _)| rs <= end);
        if first == last {
            if ranges.len() >= MAX_RANGES {
                return 0;
            }
            ranges.insert(first, (start, end));
            return (end - start) as u32;
        }
        let s = start.min(ranges[first].0);
        let e = end.max(ranges[last - 1].1);
        let before: u32 = ranges[first..last]
            .iter()
            .map(|(rs, re)| (*re - *rs) as u32)
            .sum();
        ranges[first] = (s, e);
        ranges.drain(first + 1..last);
        (e - s) as u32 - before
    }

    /// Forget everything below the new SND.UNA.
    pub(crate) fn prune(&mut self, una: SeqNum) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        inner.ranges.retain(|(_, e)| *e > una);
        if let Some(first) = inner.ranges.first_mut() {
            if first.0 < una {
                first.0 = una;
            }
        }
    }

    /// The end of the highest SACKed range.
    pub(crate) fn highest(&self) -> Option<SeqNum> {
        self.ranges_slice().last().map(|(_, e)| *e)
    }

    /// If `seq` is SACKed, the end of its range.
    pub(crate) fn covering(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges_slice()
            .iter()
            .find(|(s, e)| *s <= seq && seq < *e)
            .map(|(_, e)| *e)
    }

    /// Bytes in `[from, to)` that are not SACKed.
    pub(crate) fn holes_bytes(&self, from: SeqNum, to: SeqNum) -> u32 {
        if to <= from {
            return 0;
        }
        let covered: u32 = self
            .ranges_slice()
            .iter()
            .map(|(s, e)| {
                let (a, b) = ((*s).max(from), (*e).min(to));
                if b > a {
                    (b - a) as u32
                } else {
                    0
                }
            })
            .sum();
        (to - from) as u32 - covered
    }

    /// The first unSACKed stretch at or after `from` and below `limit`.
    pub(crate) fn next_hole(&self, from: SeqNum, limit: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let mut at = from;
        for &(s, e) in self.ranges_slice() {
            if e <= at {
                continue;
            }
            if s > at {
                let end = s.min(limit);
                return (at < end).then_some((at, end));
            }
            at = e;
        }
        (at < limit).then_some((at, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn blocks_merge_and_count_only_new_bytes() {
        let mut sb = Scoreboard::default();
        assert_eq!(sb.insert(sq(200), sq(300)), 100);
        assert_eq!(sb.insert(sq(400), sq(500)), 100);
        assert_eq!(sb.insert(sq(250), sq(420)), 100, "fills 300..400");
        assert_eq!(sb.ranges(), &[(sq(200), sq(500))]);
        assert_eq!(
            sb.insert(sq(200), sq(500)),
            0,
            "a repeated block adds nothing"
        );
        sb.prune(sq(350));
        assert_eq!(sb.ranges(), &[(sq(350), sq(500))]);
        sb.prune(sq(600));
        assert!(sb.is_empty());
    }

    #[test]
    fn holes_and_sacked_ranges_are_told_apart() {
        let mut sb = Scoreboard::default();
        // una = 0, MSS 100: segments 0 and 300 lost; 100..300 and 400..700 SACKed.
        sb.insert(sq(100), sq(300));
        sb.insert(sq(400), sq(700));
        assert_eq!(sb.holes_bytes(sq(0), sq(400)), 200);
        assert_eq!(sb.next_hole(sq(0), sq(400)), Some((sq(0), sq(100))));
        assert_eq!(sb.next_hole(sq(100), sq(400)), Some((sq(300), sq(400))));
        assert_eq!(sb.next_hole(sq(400), sq(400)), None);
        assert_eq!(sb.covering(sq(450)), Some(sq(700)));
        assert_eq!(sb.covering(sq(350)), None);
    }
}
