//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use core::time::Duration;

use crate::time::Micros;
use crate::wire::SeqNum;
use crate::Instant;

/// SRTT, RTTVAR and RTO of one connection, plus the handshake segment being timed.
///
/// RFC 6298's estimator with the refinements Linux makes (`tcp_rtt_estimator`), so the
/// timeout fires when Linux's would: the deviation gains less when the RTT falls (Eifel's
/// idea), the variance term is the largest deviation seen over the last round trip and
/// decays towards it once per round trip, and the minimum RTO is a floor on that term
/// rather than on the RTO itself: RTO = SRTT + max(4 * RTTVAR, RTO_min), never under
/// SRTT + 200 ms on Linux's defaults.
#[derive(Clone, Debug)]
pub(crate) struct RttEstimator {
    /// Linux's `srtt_us`: eight times the smoothed RTT, in microseconds (0: none yet).
    srtt8: i32,
    /// Linux's `mdev_us`: four times the mean deviation.
    mdev4: i32,
    /// Linux's `mdev_max_us`: the largest `mdev4` in the current round trip.
    mdev_max: i32,
    /// Linux's `rttvar_us`: the variance term of the RTO (at least the minimum RTO).
    rttvar: i32,
    /// The round trip being watched: when SND.UNA passes it, `rttvar` decays.
    rtt_seq: SeqNum,
    rto: Micros,
    min: Micros,
    max: Micros,
    /// The handshake segment being timed: its end sequence number and when it left.
    timed: Option<(SeqNum, Instant)>,
    /// The tick of Linux's timers, in microseconds (at least 1).
    tick_us: u32,
}

fn us(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// The largest RTT sample taken, in microseconds (see `sample`).
const MAX_SAMPLE_US: i64 = 200_000_000;

fn from_us(v: i64) -> Duration {
    Duration::from_micros(v.max(0) as u64)
}

impl RttEstimator {
    /// RFC 6298 2.1: before any measurement, RTO = the initial value (1 s).
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt8: 0,
            mdev4: 0,
            mdev_max: 0,
            rttvar: 0,
            rtt_seq: SeqNum::new(0),
            rto: Micros::new(initial.clamp(min, max)),
            min: Micros::new(min),
            max: Micros::new(max),
            timed: None,
            tick_us: 1,
        }
    }

    /// Count timers in ticks of `tick` (Linux's jiffies).
    pub(crate) fn with_tick(mut self, tick: Duration) -> RttEstimator {
        self.tick_us = tick.as_micros().clamp(1, u32::MAX as u128) as u32;
        self
    }

    /// When RACK's reordering timer, armed at `now` for `at`, fires on Linux: 2 ms later
    /// (TCP_REO_TIMEOUT_MIN), rounded up to whole ticks.
    pub(crate) fn reo_timer(&self, now: Instant, at: Instant) -> Instant {
        let tick = u64::from(self.tick_us);
        let wait = at.saturating_duration_since(now).as_micros() as u64 + 2000;
        now + Duration::from_micros(wait.div_ceil(tick) * tick)
    }

    /// The current retransmission timeout (without backoff).
    pub(crate) fn rto(&self) -> Duration {
        self.rto.get()
    }

    /// The smoothed round-trip time, once measured.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        (self.srtt8 > 0).then(|| from_us(i64::from(self.srtt8 >> 3)))
    }

    /// The round-trip time variation (TCP_INFO's `tcpi_rttvar`: Linux's `mdev_us / 4`).
    pub(crate) fn rttvar(&self) -> Duration {
        from_us(i64::from(self.mdev4 >> 2))
    }

    /// The SYN (or SYN-ACK) ending at `end` left at `now`: time it unless one is timed.
    pub(crate) fn on_send(&mut self, now: Instant, end: SeqNum) {
        if self.timed.is_none() {
            self.timed = Some((end, now));
        }
    }

    /// RFC 6298 3 (Karn): a retransmission makes the timed sample ambiguous, drop it.
    pub(crate) fn on_retransmit(&mut self) {
        self.timed = None;
    }

    /// An ACK of the handshake segment arrived at `now`: take a sample if it covers it.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: SeqNum) {
        if let Some((end, sent)) = self.timed {
            if ack >= end {
                self.timed = None;
                self.sample(now - sent, ack, ack);
            }
        }
    }

    /// Fold one measurement `r` into the estimate (Linux's `tcp_rtt_estimator`, the
    /// arithmetic of RFC 6298 2.2-2.3 in its fixed-point form), then recompute the RTO.
    /// `una` and `nxt` are SND.UNA (after this ACK) and SND.NXT: RTTVAR decays once per
    /// round trip, when SND.UNA passes the SND.NXT of the previous decay.
    pub(crate) fn sample(&mut self, r: Duration, una: SeqNum, nxt: SeqNum) {
        let min = us(self.min.get());
        // Samples beyond 200 s are taken as 200 s, so that eight times the smoothed RTT
        // fits the 32 bits it is kept in (Linux keeps it in 32 bits too).
        let mut m = us(r).clamp(1, MAX_SAMPLE_US);
        let (mut srtt8, mut mdev4, mut mdev_max, mut rttvar) = (
            i64::from(self.srtt8),
            i64::from(self.mdev4),
            i64::from(self.mdev_max),
            i64::from(self.rttvar),
        );
        if srtt8 != 0 {
            m -= srtt8 >> 3; // the error of the estimate
            srtt8 += m; // SRTT = 7/8 SRTT + 1/8 R'
            if m < 0 {
                // The RTT fell: a smaller gain for the deviation, so a falling RTT does
                // not raise the RTO (Linux's variant of Eifel's rule).
                m = -m - (mdev4 >> 2);
                if m > 0 {
                    m >>= 3;
                }
            } else {
                m -= mdev4 >> 2;
            }
            mdev4 += m; // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|
            if mdev4 > mdev_max {
                mdev_max = mdev4;
                rttvar = rttvar.max(mdev_max);
            }
            if una > self.rtt_seq {
                // A round trip has passed: let the variance term decay towards the
                // largest deviation of that round trip (never below the minimum RTO).
                if mdev_max < rttvar {
                    rttvar -= (rttvar - mdev_max) >> 2;
                }
                self.rtt_seq = nxt;
                mdev_max = min;
            }
        } else {
            // RFC 6298 2.2: the first measurement; RTO = 3 R.
            srtt8 = m << 3;
            mdev4 = m << 1;
            rttvar = mdev4.max(min);
            mdev_max = rttvar;
            self.rtt_seq = nxt;
        }
        srtt8 = srtt8.max(1);
        // RFC 6298 2.3 as Linux: RTO = SRTT + RTTVAR term (which holds the minimum), at
        // most the maximum.
        self.rto = Micros::new(from_us((srtt8 >> 3) + rttvar).min(self.max.get()));
        let narrow = |v: i64| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        (self.srtt8, self.mdev4, self.mdev_max, self.rttvar) = (
            narrow(srtt8),
            narrow(mdev4),
            narrow(mdev_max),
            narrow(rttvar),
        );
    }

    /// RFC 6298 5.5: the timeout after `backoff` expirations, doubling each time, capped at the maximum.
    pub(crate) fn backed_off(&self, backoff: u32) -> Duration {
        let factor = 1u32 << backoff.min(16);
        (self.rto.get() * factor).min(self.max.get())
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
    fn reordering_timer_fires_two_ms_late_in_whole_ticks_as_linux() {
        let now = Instant::ZERO;
        let ms = Duration::from_millis;
        // Linux 6.18, CONFIG_HZ=250: usecs_to_jiffies(25 ms + 2 ms) = 7 jiffies = 28 ms.
        let hz250 = est().with_tick(ms(4));
        assert_eq!(hz250.reo_timer(now, now + ms(25)), now + ms(28));
        assert_eq!(hz250.reo_timer(now, now + ms(26)), now + ms(28));
        assert_eq!(hz250.reo_timer(now, now + ms(27)), now + ms(32));
        // At HZ=1000 the same deadline is 27 ms away.
        assert_eq!(
            est().with_tick(ms(1)).reo_timer(now, now + ms(25)),
            now + ms(27)
        );
    }

    #[test]
    fn initial_rto_is_one_second_per_rfc6298() {
        assert_eq!(est().rto(), Duration::from_secs(1));
    }

    fn sq(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = est();
        e.sample(Duration::from_millis(100), sq(1), sq(1));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        // 100 + 4*50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn the_minimum_rto_is_a_floor_on_the_variance_term_as_on_linux() {
        // Linux: RTO = SRTT + max(4 RTTVAR, 200 ms), so a steady 1 ms path times out
        // after 201 ms, and a steady 100 ms path after 300 ms, not max(200, SRTT + 4 RTTVAR).
        let mut e = est();
        let mut una = 1u32;
        for _ in 0..50 {
            e.sample(Duration::from_millis(1), sq(una), sq(una + 1));
            una += 1;
        }
        assert_eq!(e.rto(), Duration::from_millis(201));
        let mut e = est();
        for _ in 0..50 {
            e.sample(Duration::from_millis(100), sq(una), sq(una + 1));
            una += 1;
        }
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn a_spike_raises_the_rto_for_a_round_trip_then_it_decays() {
        let mut e = est();
        let mut una = 1u32;
        for _ in 0..20 {
            e.sample(Duration::from_millis(10), sq(una), sq(una + 1));
            una += 1;
        }
        let calm = e.rto();
        e.sample(Duration::from_millis(300), sq(una), sq(una + 1));
        una += 1;
        let spiked = e.rto();
        assert!(
            spiked > calm + Duration::from_millis(100),
            "{calm:?} -> {spiked:?}"
        );
        for _ in 0..40 {
            e.sample(Duration::from_millis(10), sq(una), sq(una + 1));
            una += 1;
        }
        assert!(
            e.rto() < spiked && e.rto() >= Duration::from_millis(210),
            "{:?}",
            e.rto()
        );
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
