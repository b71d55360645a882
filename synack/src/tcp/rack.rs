//! Time-based loss detection, RACK (RFC 8985 section 6.2), used by SACK recovery beside
//! RFC 6675's DupThresh: a segment is lost when one sent after it has been delivered and
//! it has been out for RACK.rtt (the RTT of the most recently sent delivered segment)
//! plus a reordering window. The window starts at a quarter of the minimum RTT and widens
//! each time a D-SACK shows a retransmission was needless, so segments that are only
//! reordered are not resent, and a lost one is still found within about an RTT; while
//! no reordering has been seen and DupThresh is met, it is zero (as Linux's).
//!
//! "Sent after" is judged by transmission order, not only by time: segments that leave
//! at one instant (a burst, retransmissions and new data answering one ACK) are ordered
//! as they left, which is what RACK's time-and-sequence tie-break approximates.

use alloc::collections::VecDeque;
use core::time::Duration;

use crate::time::Micros;
use crate::wire::SeqNum;
use crate::Instant;

/// RFC 8985 6.2: reo_wnd_mult grows by one per D-SACK round, up to this many quarters.
const MAX_REO_WND_MULT: u8 = 16;
/// Linux's `tcp_reordering` sysctl default: the reordering degree assumed at first.
const DEFAULT_REORDERING: u32 = 3;
/// Linux's `tcp_max_reordering` sysctl default.
const MAX_REORDERING: u32 = 300;

/// One segment sent and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct Sent {
    /// Its first sequence number (it ends where the next begins).
    seq: SeqNum,
    /// Its latest transmission: when, and its place in the order of transmissions.
    at: Instant,
    order: u64,
    /// Whether it was ever retransmitted (Karn: no RTT sample from it).
    rtx: bool,
    /// Deemed lost since its latest transmission: it stays so (as Linux's TCPCB_LOST)
    /// when the reordering window later widens, until it is sent again.
    lost: bool,
}

/// When each segment was sent, and what has been learned about the path.
#[derive(Debug, Default)]
pub(crate) struct Rack {
    sent: VecDeque<Sent>,
    /// Transmissions so far (gives each its order).
    transmissions: u64,
    /// RACK.xmit_ts: when the most recently sent of the delivered segments was sent,
    /// and its place in the order of transmissions.
    xmit_ts: Option<Instant>,
    xmit_order: u64,
    /// RACK.rtt: that segment's round-trip time.
    rtt: Option<Micros>,
    min_rtt: Option<Micros>,
    /// RACK.reo_wnd_mult: the reordering window in quarters of the minimum RTT (at most
    /// MAX_REO_WND_MULT).
    reo_wnd_mult: u8,
    /// Linux's `tp->reordering`: how far (in segments) the path has been seen to reorder,
    /// from `tcp_reordering` (3; 0 here standing for it) up to `tcp_max_reordering` (300).
    reordering: u16,
    /// Reordering events seen (Linux's `tcpi_reord_seen`, saturating): a hole filled by
    /// its first transmission after later data was SACKed, an undo. With `dsack_dups`,
    /// whether reordering has been seen at all ([`Rack::reord_seen`]).
    reord_events: u16,
    /// D-SACKed segments (Linux's `tcpi_dsack_dups`, saturating).
    dsack_dups: u16,
    /// DupThresh is met or recovery runs (set by the sender): with no reordering seen,
    /// the window is zero then (Linux's `tcp_rack_reo_wnd`).
    dupthresh_met: bool,
    /// Bumped on every change, so that answers derived from this can be cached.
    pub(crate) version: u64,
}

impl Rack {
    fn index_of(&self, seq: SeqNum) -> Option<usize> {
        self.sent.partition_point(|e| e.seq <= seq).checked_sub(1)
    }

    /// When the segment holding `una`, the oldest not yet acknowledged, was (last) sent.
    pub(crate) fn head_sent_at(&self, una: SeqNum) -> Option<Instant> {
        self.index_of(una).map(|i| self.sent[i].at)
    }

    /// A new segment starting at `seq` left at `now` (first transmissions only).
    pub(crate) fn on_send(&mut self, seq: SeqNum, now: Instant) {
        if self.sent.back().is_none_or(|e| e.seq < seq) {
            self.transmissions += 1;
            self.sent.push_back(Sent {
                seq,
                at: now,
                order: self.transmissions,
                rtx: false,
                lost: false,
            });
        }
    }

    /// `[start, end)` was sent again at `now`: from now on its loss is judged from this
    /// transmission (RFC 8985 keeps the latest transmission time of each segment), so
    /// a lost retransmission is found like any other loss.
    pub(crate) fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        self.version += 1;
        self.split_at(end);
        self.split_at(start);
        let first = self.index_of(start).unwrap_or(0);
        for e in self.sent.range_mut(first..) {
            if e.seq >= end {
                break;
            }
            if start <= e.seq {
                self.transmissions += 1;
                e.at = now;
                e.order = self.transmissions;
                e.rtx = true;
                e.lost = false;
            }
        }
    }

    /// Make an entry begin exactly at `seq` (inheriting what it splits).
    fn split_at(&mut self, seq: SeqNum) {
        let Some(j) = self.index_of(seq) else {
            return;
        };
        let e = self.sent[j];
        if e.seq != seq {
            self.sent.insert(j + 1, Sent { seq, ..e });
        }
    }

    /// RTT samples from `[from, to)` being acknowledged (or SACKed) at `now`, as Linux
    /// takes them (`tcp_clean_rtx_queue`): from the oldest and from the newest segment
    /// of the range, unless any of it was retransmitted (Karn, RFC 6298 3). None for a
    /// range that holds no segment start.
    pub(crate) fn rtt_samples(
        &self,
        from: SeqNum,
        to: SeqNum,
        now: Instant,
    ) -> Option<(Duration, Duration)> {
        let first = self.index_of(from).unwrap_or(0);
        let mut oldest: Option<Instant> = None;
        let mut newest: Option<Instant> = None;
        for e in self.sent.range(first..) {
            if e.seq >= to {
                break;
            }
            if e.rtx {
                return None;
            }
            oldest = Some(oldest.map_or(e.at, |o| o.min(e.at)));
            newest = Some(newest.map_or(e.at, |n| n.max(e.at)));
        }
        Some((
            now.saturating_duration_since(oldest?),
            now.saturating_duration_since(newest?),
        ))
    }

    /// Everything below `una` is acknowledged: forget it, keeping the entry `una` is in.
    pub(crate) fn prune(&mut self, una: SeqNum) {
        self.version += 1;
        while self.sent.len() >= 2 && self.sent[1].seq <= una {
            self.sent.pop_front();
        }
    }

    /// The segment holding `last` (the last byte of an acknowledged or SACKed range)
    /// was delivered at `now` (RFC 8985 6.2 steps 1-2: the most recently sent delivered
    /// segment sets RACK.xmit_ts and RACK.rtt).
    #[cfg(test)]
    pub(crate) fn on_delivered(&mut self, last: SeqNum, now: Instant) {
        self.on_delivered_range(last, last + 1, now);
    }

    /// The segments starting in `[from, to)` (or holding `from`) were delivered at
    /// `now`: the most recently sent of them sets RACK.xmit_ts and RACK.rtt (RFC 8985
    /// 6.2 steps 1-2), whatever its place in the range.
    pub(crate) fn on_delivered_range(&mut self, from: SeqNum, to: SeqNum, now: Instant) {
        self.version += 1;
        let Some(first) = self.index_of(from) else {
            return;
        };
        let min_rtt = self.min_rtt.map(Micros::get);
        let newest = self
            .sent
            .range(first..)
            .take_while(|e| e.seq < to)
            // A retransmission "delivered" faster than the path's minimum RTT was its
            // original arriving: not a sample (RFC 8985 6.2 step 2, as Linux).
            .filter(|e| {
                !(e.rtx && min_rtt.is_some_and(|m| now.saturating_duration_since(e.at) < m))
            })
            .max_by_key(|e| e.order)
            .copied();
        if let Some(e) = newest {
            if self.xmit_ts.is_none() || e.order > self.xmit_order {
                self.xmit_ts = Some(e.at);
                self.xmit_order = e.order;
                self.rtt = Some(Micros::new(now.saturating_duration_since(e.at)));
            }
        }
    }

    /// Whether a transmission was before that of the newest delivered segment.
    fn sent_before_delivered(&self, order: u64) -> bool {
        self.xmit_ts.is_some() && order < self.xmit_order
    }

    /// The smallest RTT seen.
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.map(Micros::get)
    }

    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.version += 1;
        let rtt = Micros::new(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// A D-SACK: we retransmitted something that was only late; widen the window.
    pub(crate) fn on_dsack(&mut self) {
        self.version += 1;
        self.dsack_dups = self.dsack_dups.saturating_add(1);
        self.reo_wnd_mult = (self.reo_wnd_mult.max(1) + 1).min(MAX_REO_WND_MULT);
    }

    /// The path reordered: a hole was filled by its first transmission after later data
    /// had been SACKed, or a congestion response was undone.
    pub(crate) fn on_reordering(&mut self) {
        self.version += 1;
        self.reord_events = self.reord_events.saturating_add(1);
    }

    /// Reordering of `distance` bytes seen (from the highest SACKed segment down to the
    /// first transmission that arrived late): widen Linux's reordering degree to it
    /// (tcp_input.c `tcp_check_sack_reordering`: ceil(distance / mss), at most 300).
    pub(crate) fn on_reordering_by(&mut self, distance: u32, mss: u32) {
        self.on_reordering();
        let mss = mss.max(1);
        if distance > self.reordering() * mss {
            self.reordering = distance.div_ceil(mss).min(MAX_REORDERING) as u16;
        }
    }

    /// Reordering has been seen on this connection (Linux's `reord_seen`, and here also a
    /// D-SACK): the window no longer drops to zero at DupThresh.
    fn reord_seen(&self) -> bool {
        self.reord_events > 0 || self.dsack_dups > 0
    }

    /// Linux's `tcpi_reordering`: `tcp_reordering` (3) until reordering widened it.
    pub(crate) fn reordering(&self) -> u32 {
        u32::from(self.reordering).max(DEFAULT_REORDERING)
    }

    /// (reordering events, D-SACKed segments) seen: `tcpi_reord_seen`, `tcpi_dsack_dups`.
    pub(crate) fn reordering_counts(&self) -> (u32, u32) {
        (u32::from(self.reord_events), u32::from(self.dsack_dups))
    }

    /// Whether DupThresh segments are SACKed above SND.UNA or recovery runs.
    pub(crate) fn set_dupthresh_met(&mut self, met: bool) {
        if self.dupthresh_met != met {
            self.version += 1;
            self.dupthresh_met = met;
        }
    }

    /// The part of a SACK block `[start, end)` made of whole segments as they were sent
    /// (`max`: where the last ends). Linux marks only segments a block covers entirely
    /// (tcp_match_skb_to_sack), so a block for a segment's last byte says nothing.
    pub(crate) fn whole_segments(
        &self,
        start: SeqNum,
        end: SeqNum,
        max: SeqNum,
    ) -> Option<(SeqNum, SeqNum)> {
        let i = self.sent.partition_point(|e| e.seq < start);
        let first = self.sent.get(i).map_or(max, |e| e.seq);
        let j = self.sent.partition_point(|e| e.seq <= end);
        let last = if end >= max {
            max
        } else {
            self.sent.get(j.checked_sub(1)?).map(|e| e.seq)?
        };
        (first < last).then_some((first, last))
    }

    /// Remember that the segments starting in `[from, to)` that are lost now are lost.
    pub(crate) fn mark_lost_between(
        &mut self,
        from: SeqNum,
        to: SeqNum,
        srtt: Duration,
        now: Instant,
    ) {
        let first = self.index_of(from).unwrap_or(0);
        let mut changed = false;
        for i in first..self.sent.len() {
            let e = self.sent[i];
            if e.seq >= to {
                break;
            }
            if e.seq >= from && !e.lost && self.lost(e.at, e.order, srtt, now) {
                self.sent[i].lost = true;
                changed = true;
            }
        }
        if changed {
            self.version += 1;
        }
    }

    /// How many bytes of `[from, to)` were retransmitted (`max`: SND.MAX, where the last
    /// segment ends).
    pub(crate) fn retransmitted_bytes(&self, from: SeqNum, max: SeqNum) -> u32 {
        let first = self.index_of(from).unwrap_or(0);
        let mut total = 0u32;
        let mut iter = self.sent.range(first..).peekable();
        while let Some(e) = iter.next() {
            let end = iter.peek().map_or(max, |n| n.seq);
            if e.rtx && end > from {
                total += (end - e.seq.max(from)).max(0) as u32;
            }
        }
        total
    }

    /// Whether any of `[from, to)` was retransmitted.
    pub(crate) fn retransmitted_in(&self, from: SeqNum, to: SeqNum) -> bool {
        let first = self.index_of(from).unwrap_or(0);
        self.sent
            .range(first..)
            .take_while(|e| e.seq < to)
            .any(|e| e.rtx)
    }

    /// RFC 8985 6.3: when the segment holding `seq`, if sent before a delivered one,
    /// will have been out RACK.rtt plus the window.
    pub(crate) fn deadline(&self, seq: SeqNum, srtt: Duration) -> Option<Instant> {
        let e = self.index_of(seq).map(|i| self.sent[i])?;
        self.sent_before_delivered(e.order)
            .then(|| e.at + self.rack_rtt(srtt) + self.reo_wnd(srtt))
    }

    fn rack_rtt(&self, srtt: Duration) -> Duration {
        self.rtt.map_or(srtt, Micros::get)
    }

    /// RFC 8985 6.2 step 4: reo_wnd = min_RTT / 4 * reo_wnd_mult, at most SRTT; zero
    /// while no reordering has been seen and DupThresh is met or recovery runs (RFC 8985
    /// 6.2 step 4's exception, Linux's `tcp_rack_reo_wnd`): then a hole with a later
    /// segment delivered is lost at once, as RFC 6675's DupThresh rule would have it.
    fn reo_wnd(&self, srtt: Duration) -> Duration {
        if self.dupthresh_met && !self.reord_seen() {
            return Duration::ZERO;
        }
        let base = self.min_rtt.map_or(srtt, Micros::get) / 4;
        (base * u32::from(self.reo_wnd_mult.max(1))).min(srtt)
    }

    /// Whether the (undelivered) segment holding `seq` is lost.
    pub(crate) fn is_lost(&self, seq: SeqNum, srtt: Duration, now: Instant) -> bool {
        self.index_of(seq).is_some_and(|i| {
            let e = &self.sent[i];
            e.lost || self.lost(e.at, e.order, srtt, now)
        })
    }

    /// The segments from the one holding `seq` on: (start, end or None for the last,
    /// whether RACK deems it lost at `now`).
    pub(crate) fn segments_from(
        &self,
        seq: SeqNum,
        srtt: Duration,
        now: Instant,
    ) -> impl Iterator<Item = (SeqNum, Option<SeqNum>, bool)> + '_ {
        let i = self.index_of(seq).unwrap_or(0);
        self.sent
            .range(i..)
            .zip(
                self.sent
                    .range(i + 1..)
                    .map(Some)
                    .chain(core::iter::once(None)),
            )
            .map(move |(e, next)| {
                (
                    e.seq,
                    next.map(|n| n.seq),
                    e.lost || self.lost(e.at, e.order, srtt, now),
                )
            })
    }

    /// RFC 8985 6.2 step 5: a segment sent at `t` (transmission `order`) is lost once one
    /// sent after it was delivered and it has been out RACK.rtt plus the reordering window.
    fn lost(&self, t: Instant, order: u64, srtt: Duration, now: Instant) -> bool {
        self.sent_before_delivered(order) && now >= t + self.rack_rtt(srtt) + self.reo_wnd(srtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn sq(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn a_segment_is_lost_once_a_later_one_arrived_and_rack_rtt_plus_the_window_passed() {
        let mut r = Rack::default();
        r.on_rtt(Duration::from_millis(20));
        // Segments of 100 bytes sent 1 ms apart, from 100 ms.
        for i in 0..10u32 {
            r.on_send(sq(i * 100), ms(100 + i as u64));
        }
        let srtt = Duration::from_millis(30);
        // Nothing delivered after it: RACK says nothing, however long it has been out.
        assert!(!r.is_lost(sq(0), srtt, ms(500)));
        assert_eq!(r.deadline(sq(0), srtt), None);
        // The segment sent at 109 ms arrives at 129 ms: RACK.rtt is 20 ms, the window
        // 5 ms (a quarter of the minimum RTT): the first is lost from 125 ms.
        r.on_delivered(sq(999), ms(129));
        assert!(r.is_lost(sq(0), srtt, ms(129)));
        assert!(
            !r.is_lost(sq(500), srtt, ms(129)),
            "sent at 105 ms: due at 130 ms"
        );
        assert_eq!(r.deadline(sq(500), srtt), Some(ms(130)));
        assert!(r.is_lost(sq(500), srtt, ms(130)));
        // A D-SACK widens the window to 10 ms: the same segment is due 5 ms later.
        r.on_dsack();
        assert!(!r.is_lost(sq(500), srtt, ms(130)));
        assert_eq!(r.deadline(sq(500), srtt), Some(ms(135)));
    }

    #[test]
    fn segments_sent_at_one_instant_are_ordered_as_they_left() {
        // As Linux's tcp_rack_sent_after: a burst leaves at one instant; delivering its
        // middle segment makes the earlier ones candidates, never the later ones.
        let mut r = Rack::default();
        for i in 0..4u32 {
            r.on_send(sq(i * 100), ms(100));
        }
        let srtt = Duration::from_millis(20);
        r.on_delivered(sq(199), ms(120));
        assert!(r.is_lost(sq(0), srtt, ms(200)));
        assert!(!r.is_lost(sq(200), srtt, ms(200)), "sent with it, after it");
        assert_eq!(r.deadline(sq(300), srtt), None);
    }

    #[test]
    fn with_dupthresh_met_and_no_reordering_seen_the_window_is_zero() {
        // RFC 8985 6.2 step 4 / Linux's tcp_rack_reo_wnd.
        let mut r = Rack::default();
        r.on_rtt(Duration::from_millis(20));
        r.on_send(sq(0), ms(100));
        r.on_send(sq(100), ms(101));
        let srtt = Duration::from_millis(20);
        r.on_delivered(sq(199), ms(121));
        assert!(
            !r.is_lost(sq(0), srtt, ms(121)),
            "5 ms window: due at 125 ms"
        );
        r.set_dupthresh_met(true);
        assert!(r.is_lost(sq(0), srtt, ms(121)), "no window: lost at once");
        // Once reordering is seen, the window is back.
        r.on_reordering();
        assert!(!r.is_lost(sq(0), srtt, ms(121)));
    }

    #[test]
    fn a_retransmission_is_judged_by_its_own_send_time() {
        let mut r = Rack::default();
        r.on_rtt(Duration::from_millis(20));
        // Segments sent 10 ms apart; the last (sent at 130 ms) arrives.
        for i in 0..4u32 {
            r.on_send(sq(i * 100), ms(100 + 10 * i as u64));
        }
        let srtt = Duration::from_millis(20);
        // The last, sent at 130 ms, arrives at 150 ms (RACK.rtt 20 ms, window 5 ms).
        r.on_delivered(sq(399), ms(150));
        assert!(r.is_lost(sq(50), srtt, ms(150)));
        // Resent at 150 ms (part of the first segment only): that part is fresh again,
        // and sent after the delivered one.
        r.on_retransmit(sq(0), sq(60), ms(150));
        assert!(!r.is_lost(sq(50), srtt, ms(200)));
        assert!(
            r.is_lost(sq(60), srtt, ms(150)),
            "the rest keeps its old time"
        );
        r.prune(sq(250));
        assert_eq!(r.sent.front().map(|e| e.seq.get()), Some(200));
    }

    #[test]
    fn a_retransmission_sent_after_new_data_at_one_instant_is_not_lost_by_it() {
        // New data and then a retransmission leave at one instant: the new data's SACK
        // says nothing about the retransmission, which left after it.
        let mut r = Rack::default();
        r.on_rtt(Duration::from_millis(20));
        r.on_send(sq(0), ms(100));
        r.on_send(sq(100), ms(100));
        r.on_send(sq(200), ms(120));
        r.on_retransmit(sq(0), sq(100), ms(120));
        r.set_dupthresh_met(true);
        let srtt = Duration::from_millis(20);
        r.on_delivered(sq(299), ms(140));
        assert!(!r.is_lost(sq(0), srtt, ms(140)));
        assert!(
            r.is_lost(sq(100), srtt, ms(140)),
            "sent before the delivered one"
        );
    }
}
