//! Time-based loss detection after RACK (RFC 8985 section 6.2), used by SACK recovery in
//! place of RFC 6675's DupThresh: a hole is lost when a segment sent more than a
//! reordering window after it has already been delivered. The window starts at a quarter
//! of the minimum RTT and widens each time a D-SACK shows a retransmission was needless,
//! so segments that are only reordered (even by most of an RTT) are not resent, and a
//! lost one is still found within about an RTT, however small the window.

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
    min_rtt: Option<Duration>,
    /// RACK.reo_wnd_mult: the reordering window in quarters of the minimum RTT.
    reo_wnd_mult: u32,
}

impl Rack {
    /// A new segment starting at `seq` left at `now` (first transmissions only).
    pub(crate) fn on_send(&mut self, seq: SeqNum, now: Instant) {
        if self.sent.back().is_none_or(|(s, _)| *s < seq) {
            self.sent.push_back((seq, now));
        }
    }

    /// Everything below `una` is acknowledged: forget it, keeping the entry `una` is in.
    pub(crate) fn prune(&mut self, una: SeqNum) {
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
    /// was delivered (RFC 8985 6.2 step 2).
    pub(crate) fn on_delivered(&mut self, last: SeqNum) {
        if let Some(t) = self.sent_at(last) {
            self.xmit_ts = Some(self.xmit_ts.map_or(t, |x| x.max(t)));
        }
    }

    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }

    /// A D-SACK: we retransmitted something that was only late; widen the window.
    pub(crate) fn on_dsack(&mut self) {
        self.reo_wnd_mult = (self.reo_wnd_mult.max(1) + 1).min(MAX_REO_WND_MULT);
    }

    /// When the segment holding `seq` will have been out an RTT plus the window.
    pub(crate) fn deadline(&self, seq: SeqNum, srtt: Duration) -> Option<Instant> {
        // A microsecond after, so that the test (strictly older) holds when it fires.
        self.sent_at(seq)
            .map(|t| t + srtt + self.reo_wnd(srtt) + Duration::from_micros(1))
    }

    /// RFC 8985 6.2 step 4: reo_wnd = min_RTT / 4 * reo_wnd_mult, at most SRTT.
    fn reo_wnd(&self, srtt: Duration) -> Duration {
        let base = self.min_rtt.unwrap_or(srtt) / 4;
        (base * self.reo_wnd_mult.max(1)).min(srtt)
    }

    /// Unacknowledged bytes below the returned sequence number, if not SACKed, are lost:
    /// they were sent more than the reordering window before a segment that arrived
    /// (RFC 8985 6.2), or more than an RTT plus the window ago (6.3, the timer's test).
    pub(crate) fn lost_below(&self, srtt: Duration, max: SeqNum, now: Instant) -> Option<SeqNum> {
        let reo_wnd = self.reo_wnd(srtt);
        let by_delivery = self.xmit_ts.and_then(|x| x.checked_sub(reo_wnd));
        let by_time = now.checked_sub(srtt + reo_wnd);
        let before = match (by_delivery, by_time) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        let i = self.sent.partition_point(|(_, t)| *t < before);
        if i == 0 {
            return None;
        }
        Some(self.sent.get(i).map_or(max, |(s, _)| *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn a_hole_is_lost_once_a_later_segment_sent_a_window_after_it_arrives() {
        let mut r = Rack::default();
        r.on_rtt(Duration::from_millis(20));
        // Segments of 100 bytes sent 1 ms apart.
        for i in 0..10u32 {
            r.on_send(SeqNum::new(i * 100), ms(100 + i as u64));
        }
        let srtt = Duration::from_millis(20);
        // The segment sent 4 ms after the first is SACKed: 4 ms < 5 ms window, not yet.
        r.on_delivered(SeqNum::new(499));
        assert_eq!(r.lost_below(srtt, SeqNum::new(1000), ms(110)), None);
        // One sent 9 ms after: the first four (sent more than 5 ms before it) are lost.
        r.on_delivered(SeqNum::new(999));
        assert_eq!(
            r.lost_below(srtt, SeqNum::new(1000), ms(110)),
            Some(SeqNum::new(400))
        );
        // Reordering seen: the window widens to 10 ms (2 quarters of 20).
        r.on_dsack();
        assert_eq!(r.lost_below(srtt, SeqNum::new(1000), ms(110)), None);
        // Without further deliveries, the timer's test: an RTT plus the window later.
        assert_eq!(
            r.deadline(SeqNum::new(0), srtt),
            Some(ms(130) + Duration::from_micros(1))
        );
        assert_eq!(
            r.lost_below(srtt, SeqNum::new(1000), ms(131)),
            Some(SeqNum::new(100))
        );
        r.prune(SeqNum::new(350));
        assert_eq!(r.sent.front().map(|(s, _)| s.get()), Some(300));
    }
}
