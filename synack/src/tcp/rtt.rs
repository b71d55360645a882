//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use std::time::Duration;

use crate::wire::SeqNum;
use crate::Instant;

/// SRTT, RTTVAR and RTO of one connection, plus the one segment being timed (Karn's rule).
#[derive(Clone, Debug)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min: Duration,
    max: Duration,
    /// The segment being timed: its end sequence number and when it left.
    timed: Option<(SeqNum, Instant)>,
}

impl RttEstimator {
    /// RFC 6298 2.1: before any measurement, RTO = the initial value (1 s).
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial.clamp(min, max),
            min,
            max,
            timed: None,
        }
    }

    /// The current retransmission timeout (without backoff).
    pub(crate) fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed round-trip time, once measured.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip time variation.
    pub(crate) fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// A new segment ending at `end` left at `now`: time it unless one is being timed.
    pub(crate) fn on_send(&mut self, now: Instant, end: SeqNum) {
        if self.timed.is_none() {
            self.timed = Some((end, now));
        }
    }

    /// RFC 6298 3 (Karn): a retransmission makes the timed sample ambiguous, drop it.
    pub(crate) fn on_retransmit(&mut self) {
        self.timed = None;
    }

    /// An ACK for everything below `ack` arrived at `now`: take a sample if it covers the timed segment.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: SeqNum) {
        if let Some((end, sent)) = self.timed {
            if ack >= end {
                self.timed = None;
                self.sample(now - sent);
            }
        }
    }

    /// RFC 6298 2.2 and 2.3: fold one measurement into SRTT and RTTVAR, recompute RTO.
    pub(crate) fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT = 7/8 SRTT + 1/8 R'
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        // RFC 6298 2.3: RTO = SRTT + max(G, 4*RTTVAR), with G = 1 ms here; 2.4: bounded below by the minimum.
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt + (self.rttvar * 4).max(Duration::from_millis(1));
        self.rto = rto.clamp(self.min, self.max);
    }

    /// RFC 6298 5.5: the timeout after `backoff` expirations, doubling each time, capped at the maximum.
    pub(crate) fn backed_off(&self, backoff: u32) -> Duration {
        let factor = 1u32 << backoff.min(16);
        (self.rto * factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn initial_rto_is_one_second_per_rfc6298() {
        assert_eq!(est().rto(), Duration::from_secs(1));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        // 100 + 4*50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn rto_never_goes_below_the_200ms_minimum() {
        let mut e = est();
        for _ in 0..20 {
            e.sample(Duration::from_millis(1));
        }
        assert_eq!(e.rto(), Duration::from_millis(200));
    }

    #[test]
    fn backoff_doubles_and_caps_at_max() {
        let e = est();
        assert_eq!(e.backed_off(0), Duration::from_secs(1));
        assert_eq!(e.backed_off(3), Duration::from_secs(8));
        assert_eq!(e.backed_off(10), Duration::from_secs(120));
    }

    #[test]
    fn retransmission_discards_the_timed_sample_karns_rule() {
        let mut e = est();
        e.on_send(Instant::ZERO, SeqNum::new(100));
        e.on_retransmit();
        e.on_ack(Instant::from_secs(3), SeqNum::new(100));
        assert_eq!(e.srtt(), None);
        e.on_send(Instant::from_secs(3), SeqNum::new(200));
        e.on_ack(Instant::from_millis(3050), SeqNum::new(200));
        assert_eq!(e.srtt(), Some(Duration::from_millis(50)));
    }
}
