//! The sender's SACK scoreboard (RFC 2018, RFC 6675 section 3): which bytes above
//! SND.UNA the peer has reported holding, so that recovery resends only the holes,
//! decides which holes are lost, and estimates what is still in the network (pipe).

use crate::wire::SeqNum;

/// Most separate ranges tracked; more are ignored (the peer repeats what matters).
const MAX_RANGES: usize = 4096;

/// Sorted, disjoint, non-adjacent SACKed ranges `[start, end)` above SND.UNA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scoreboard {
    ranges: Vec<(SeqNum, SeqNum)>,
}

impl Scoreboard {
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// SACKed bytes.
    pub(crate) fn bytes(&self) -> u32 {
        self.ranges.iter().map(|(s, e)| (*e - *s) as u32).sum()
    }

    /// The ranges, lowest first.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        &self.ranges
    }

    /// Record a SACK block; returns how many bytes it newly covered.
    pub(crate) fn insert(&mut self, start: SeqNum, end: SeqNum) -> u32 {
        if end <= start {
            return 0;
        }
        let before = self.bytes();
        let (mut s, mut e) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(rs, re) in &self.ranges {
            if re < s || rs > e {
                kept.push((rs, re));
            } else {
                s = s.min(rs);
                e = e.max(re);
            }
        }
        let at = kept
            .iter()
            .position(|(rs, _)| *rs > s)
            .unwrap_or(kept.len());
        if kept.len() >= MAX_RANGES {
            return 0;
        }
        kept.insert(at, (s, e));
        self.ranges = kept;
        self.bytes() - before
    }

    /// Forget everything below the new SND.UNA.
    pub(crate) fn prune(&mut self, una: SeqNum) {
        self.ranges.retain(|(_, e)| *e > una);
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < una {
                first.0 = una;
            }
        }
    }

    /// The end of the highest SACKed range.
    pub(crate) fn highest(&self) -> Option<SeqNum> {
        self.ranges.last().map(|(_, e)| *e)
    }

    /// If `seq` is SACKed, the end of its range.
    pub(crate) fn covering(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges
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
            .ranges
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
        for &(s, e) in &self.ranges {
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
