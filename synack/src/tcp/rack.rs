//! Time-based loss detection, RACK (RFC 8985 section 6.2), used by SACK recovery beside
//! RFC 6675's DupThresh: a segment is lost when one sent after it has been delivered and
//! it has been out for RACK.rtt (the RTT of the most recently sent delivered segment)
//! plus a reordering window. The window starts at a quarter of the minimum RTT and widens
//! each time a D-SACK shows a retransmission was needless, so segments that are only
//! reordered are not resent, and a lost one is still found within about an RTT.

use std::collections::VecDeque;
use std::time::Duration;

use crate::wire::SeqNum;
use crate::Instant;

/// RFC 8985 6.2: reo_wnd_mult grows by one per D-SACK round, up to this many quarters.
const MAX_REO_WND_MULT: u32 = 16;

/// When each segment was first sent, and what has been learned about the path.
#[derive(Debug, Default)]
pub(crate) struct Rack {
    /// (first sequence number, send time) of each segment sent and not yet acknowledged.
    sent: VecDeque<(SeqNum, Instant)>,
    /// RACK.xmit_ts: when the most recently sent of the delivered segments was sent.
    xmit_ts: Option<Instant>,
    /// RACK.rtt: that segment's round-trip time.
    rtt: Option<Duration>,
    min_rtt: Option<Duration>,
    /// RACK.reo_wnd_mult: the reordering window in quarters of the minimum RTT.
    reo_wnd_mult: u32,
    /// Bumped on every change, so that answers derived from this can be cached.
    pub(crate) version: u64,
}

impl Rack {
    /// A new segment starting at `seq` left at `now` (first transmissions only).
    pub(crate) fn on_send(&mut self, seq: SeqNum, now: Instant) {
        if self.sent.back().is_none_or(|(s, _)| *s < seq) {
            self.sent.push_back((seq, now));
        }
    }

    /// `[start, end)` was sent again at `now`: from now on its loss is judged from this
    /// transmission (RFC 8985 keeps the latest transmission time of each segment), so
    /// a lost retransmission is found like any other loss.
    pub(crate) fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        self.version += 1;
        self.split_at(end);
        self.split_at(start);
        for (s, t) in self.sent.iter_mut() {
            if start <= *s && *s < end {
                *t = now;
            }
        }
    }

    /// Make an entry begin exactly at `seq` (inheriting the time of the one it splits).
    fn split_at(&mut self, seq: SeqNum) {
        let i = self.sent.partition_point(|(s, _)| *s <= seq);
        match i.checked_sub(1).map(|j| self.sent[j]) {
            Some((s, _)) if s == seq => {}
            Some((_, t)) => self.sent.insert(i, (seq, t)),
            None => {}
        }
    }

    /// Everything below `una` is acknowledged: forget it, keeping the entry `una` is in.
    pub(crate) fn prune(&mut self, una: SeqNum) {
        self.version += 1;
        while self.sent.len() >= 2 && self.sent[1].0 <= una {
            self.sent.pop_front();
        }
    }

    /// When the segment holding `seq` was sent.
    fn sent_at(&self, seq: SeqNum) -> Option<Instant> {
        let i = self.sent.partition_point(|(s, _)| *s <= seq);
        i.checked_sub(1).map(|i| self.sent[i].1)
    }

    /// The segment holding `last` (the last byte of an acknowledged or SACKed range)
    /// was delivered at `now` (RFC 8985 6.2 steps 1-2: the most recently sent delivered
    /// segment sets RACK.xmit_ts and RACK.rtt).
    pub(crate) fn on_delivered(&mut self, last: SeqNum, now: Instant) {
        self.version += 1;
        if let Some(t) = self.sent_at(last) {
            if self.xmit_ts.is_none_or(|x| t >= x) {
                self.xmit_ts = Some(t);
                self.rtt = Some(now.saturating_duration_since(t));
            }
        }
    }

    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.version += 1;
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// A D-SACK: we retransmitted something that was only late; widen the window.
    pub(crate) fn on_dsack(&mut self) {
        self.version += 1;
        self.reo_wnd_mult = (self.reo_wnd_mult.max(1) + 1).min(MAX_REO_WND_MULT);
    }

    /// RFC 8985 6.3: when the segment holding `seq`, sent before a delivered one, will
    /// have been out RACK.rtt plus the window.
    pub(crate) fn deadline(&self, seq: SeqNum, srtt: Duration) -> Option<Instant> {
        let t = self.sent_at(seq)?;
        self.xmit_ts.filter(|x| t <= *x)?;
        Some(t + self.rack_rtt(srtt) + self.reo_wnd(srtt))
    }

    fn rack_rtt(&self, srtt: Duration) -> Duration {
        self.rtt.unwrap_or(srtt)
    }

    /// RFC 8985 6.2 step 4: reo_wnd = min_RTT / 4 * reo_wnd_mult, at most SRTT.
    fn reo_wnd(&self, srtt: Duration) -> Duration {
        let base = self.min_rtt.unwrap_or(srtt) / 4;
        (base * self.reo_wnd_mult.max(1)).min(srtt)
    }

    /// Whether the (undelivered) segment holding `seq` is lost.
    pub(crate) fn is_lost(&self, seq: SeqNum, srtt: Duration, now: Instant) -> bool {
        self.sent_at(seq)
            .is_some_and(|t| self.lost_at(t, srtt, now))
    }

    /// The segments from the one holding `seq` on: (start, end or None for the last, sent at).
    pub(crate) fn segments_from(
        &self,
        seq: SeqNum,
    ) -> impl Iterator<Item = (SeqNum, Option<SeqNum>, Instant)> + '_ {
        let i = self
            .sent
            .partition_point(|(s, _)| *s <= seq)
            .saturating_sub(1);
        self.sent
            .range(i..)
            .zip(
                self.sent
                    .range(i + 1..)
                    .map(Some)
                    .chain(std::iter::once(None)),
            )
            .map(|(&(s, t), next)| (s, next.map(|n| n.0), t))
    }

    /// RFC 8985 6.2 step 5: a segment sent at `t` is lost once one sent no earlier was
    /// delivered and it has been out RACK.rtt plus the reordering window.
    pub(crate) fn lost_at(&self, t: Instant, srtt: Duration, now: Instant) -> bool {
        self.xmit_ts.is_some_and(|x| t <= x) && now >= t + self.rack_rtt(srtt) + self.reo_wnd(srtt)
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
        assert_eq!(r.sent.front().map(|(s, _)| s.get()), Some(200));
    }
}
