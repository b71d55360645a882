//! Out-of-order segments held until the gap before them fills (RFC 9293 3.10.7.4, seventh:
//! segments beyond RCV.NXT are kept, not dropped, so a retransmission of the gap is all
//! the peer has to send).

use crate::wire::{SackBlocks, SeqNum};
use alloc::vec::Vec;

/// Most separate out-of-order ranges kept; beyond this a new range is dropped (the peer resends it).
const MAX_RANGES: usize = 4096;

/// Non-overlapping ranges of received bytes beyond RCV.NXT, in sequence order.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    ranges: Vec<(SeqNum, Vec<u8>)>,
    bytes: usize,
}

impl Reassembly {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Ranges held, as (start, end) sequence numbers, in order.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.ranges.iter().map(|(s, d)| (*s, *s + d.len() as u32))
    }

    /// RFC 2018 4: SACK blocks for what is held, adjacent ranges joined; the block
    /// holding `latest` first, then the others from the highest down, at most `max`. A
    /// FIN held out of order (at `fin`) occupies its sequence number like a byte: the
    /// block that ends at it covers it, and a FIN alone has a block of its own (Linux
    /// queues the FIN with its segment, so its block ends after the FIN).
    pub(crate) fn sack_blocks(
        &self,
        latest: Option<SeqNum>,
        fin: Option<SeqNum>,
        max: usize,
        out: &mut SackBlocks,
    ) {
        let first = latest.and_then(|l| self.joined_rev(fin).find(|&(s, e)| s <= l && l < e));
        let rest = self.joined_rev(fin).filter(|&b| Some(b) != first);
        for block in first.into_iter().chain(rest).take(max) {
            if !out.push(block) {
                break;
            }
        }
    }

    /// How many SACK blocks (at most `max`) what is held makes.
    pub(crate) fn block_count(&self, fin: Option<SeqNum>, max: usize) -> usize {
        self.joined_rev(fin).take(max).count()
    }

    /// The held ranges and a held FIN's sequence number, adjacent ones joined, from the
    /// highest down (nothing allocated: every ACK asks).
    fn joined_rev(&self, fin: Option<SeqNum>) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let fin = fin.map(|f| (f, f + 1));
        let held = self
            .ranges
            .iter()
            .rev()
            .map(|(s, d)| (*s, *s + d.len() as u32));
        let mut blocks = fin.into_iter().chain(held).peekable();
        core::iter::from_fn(move || {
            let (mut start, end) = blocks.next()?;
            while let Some(&(s, e)) = blocks.peek() {
                if e != start {
                    break;
                }
                start = s;
                blocks.next();
            }
            Some((start, end))
        })
    }

    /// Keep `data` starting at `seq` (which is after `rcv_nxt`). Bytes already held win over
    /// new copies of the same sequence numbers. Returns false if the range had to be dropped.
    pub(crate) fn insert(&mut self, rcv_nxt: SeqNum, seq: SeqNum, data: &[u8]) -> bool {
        let off = |s: SeqNum| (s - rcv_nxt) as i64;
        let mut start = off(seq);
        let mut data = data;
        if start < 0 {
            let skip = (-start) as usize;
            if skip >= data.len() {
                return true;
            }
            data = &data[skip..];
            start = 0;
        }
        // Cut the new data into the pieces that fall in holes between held ranges.
        let mut pieces: Vec<(i64, &[u8])> = Vec::new();
        let mut cur = start;
        let mut rest = data;
        for (s, d) in &self.ranges {
            if rest.is_empty() {
                break;
            }
            let (rs, re) = (off(*s), off(*s) + d.len() as i64);
            if re <= cur {
                continue;
            }
            if rs > cur {
                let take = ((rs - cur) as usize).min(rest.len());
                pieces.push((cur, &rest[..take]));
                rest = &rest[take..];
                cur += take as i64;
            }
            // skip the overlap with this held range
            let overlap = ((re - cur).max(0) as usize).min(rest.len());
            rest = &rest[overlap..];
            cur += overlap as i64;
        }
        if !rest.is_empty() {
            pieces.push((cur, rest));
        }
        if pieces.is_empty() {
            return true;
        }
        if self.ranges.len() + pieces.len() > MAX_RANGES {
            return false;
        }
        for (o, d) in pieces {
            self.bytes += d.len();
            let s = rcv_nxt + o as u32;
            let at = self.ranges.partition_point(|(rs, _)| off(*rs) < o);
            self.ranges.insert(at, (s, d.to_vec()));
        }
        self.coalesce();
        true
    }

    /// Merge ranges that touch.
    fn coalesce(&mut self) {
        let mut i = 0;
        while i + 1 < self.ranges.len() {
            let end = self.ranges[i].0 + self.ranges[i].1.len() as u32;
            if end == self.ranges[i + 1].0 {
                let (_, next) = self.ranges.remove(i + 1);
                self.ranges[i].1.extend_from_slice(&next);
            } else {
                i += 1;
            }
        }
    }

    /// If the first held range starts at `rcv_nxt`, take it out (the gap before it is filled).
    pub(crate) fn pop_ready(&mut self, rcv_nxt: SeqNum) -> Option<Vec<u8>> {
        // Drop anything that RCV.NXT has already passed (it was delivered from another copy).
        while let Some((s, d)) = self.ranges.first_mut() {
            let end = *s + d.len() as u32;
            if end <= rcv_nxt {
                self.bytes -= d.len();
                self.ranges.remove(0);
            } else if *s < rcv_nxt {
                let skip = (rcv_nxt - *s) as usize;
                d.drain(..skip);
                self.bytes -= skip;
                *s = rcv_nxt;
            } else {
                break;
            }
        }
        match self.ranges.first() {
            Some((s, _)) if *s == rcv_nxt => {
                let (_, d) = self.ranges.remove(0);
                self.bytes -= d.len();
                Some(d)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn gap_fill_releases_ranges_in_order() {
        let mut r = Reassembly::default();
        assert!(r.insert(s(100), s(110), b"0123456789"));
        assert!(r.insert(s(100), s(105), b"abcde"));
        assert_eq!(r.ranges().collect::<Vec<_>>(), vec![(s(105), s(120))]);
        assert_eq!(r.pop_ready(s(100)), None);
        assert_eq!(r.pop_ready(s(105)).unwrap(), b"abcde0123456789");
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn sack_blocks_put_the_latest_first_then_the_highest_with_neighbours_joined() {
        let mut r = Reassembly::default();
        for (seq, data) in [
            (10, &b"0123456789"[..]),
            (20, b"0123456789"),
            (40, b"0123456789"),
        ] {
            assert!(r.insert(s(0), s(seq), data));
        }
        assert!(r.insert(s(0), s(60), b"0123456789"));
        let blocks = |latest: Option<u32>, fin: Option<u32>, max: usize| {
            let mut out = SackBlocks::default();
            r.sack_blocks(latest.map(s), fin.map(s), max, &mut out);
            out.as_slice().to_vec()
        };
        // RFC 2018 4: the block of the latest segment first; [10,20) and [20,30) are one;
        // a FIN held at 70 is covered by the block that ends at it.
        assert_eq!(
            blocks(Some(45), Some(70), 3),
            vec![(s(40), s(50)), (s(60), s(71)), (s(10), s(30))]
        );
        assert_eq!(
            blocks(Some(45), None, 2),
            vec![(s(40), s(50)), (s(60), s(70))]
        );
        assert_eq!(blocks(None, None, 4).len(), 3);
        assert_eq!(blocks(Some(15), None, 1), vec![(s(10), s(30))]);
    }

    #[test]
    fn overlapping_copy_keeps_the_bytes_already_held() {
        let mut r = Reassembly::default();
        r.insert(s(0), s(10), b"AAAA");
        r.insert(s(0), s(8), b"bbbbbbbb");
        assert_eq!(r.pop_ready(s(8)).unwrap(), b"bbAAAAbb");
    }

    #[test]
    fn ranges_work_across_sequence_wraparound() {
        let mut r = Reassembly::default();
        let base = s(u32::MAX - 2);
        r.insert(base, base + 5, b"xyz");
        assert_eq!(r.pop_ready(base + 5).unwrap(), b"xyz");
    }

    #[test]
    fn partially_delivered_range_is_trimmed() {
        let mut r = Reassembly::default();
        r.insert(s(0), s(10), b"0123456789");
        assert_eq!(r.pop_ready(s(15)).unwrap(), b"56789");
    }
}
