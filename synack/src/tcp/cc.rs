//! Congestion control behind one small trait, chosen per connection: NewReno (RFC 5681
//! with RFC 3465 byte counting) and CUBIC (RFC 9438, Linux's default). The loss
//! recovery in `input.rs` decides *when* a congestion event happens; a controller
//! decides what cwnd and ssthresh become and how cwnd grows outside recovery.

use alloc::boxed::Box;
use core::fmt::Debug;
use core::time::Duration;

pub use crate::config::CongestionControl;
use crate::time::Micros;
use crate::Instant;

impl CongestionControl {
    /// The controller this choice makes, for a connection whose MSS is `mss`.
    pub(crate) fn controller(self, mss: u32) -> Algorithm {
        match self {
            CongestionControl::Cubic => Algorithm::Cubic(Cubic::new(mss)),
            CongestionControl::NewReno => Algorithm::NewReno(NewReno::new(mss)),
        }
    }
}

/// A connection's congestion controller, held inline: no box and no virtual call per
/// ACK. Another algorithm is one more variant here and one more [`Controller`].
#[derive(Debug)]
pub(crate) enum Algorithm {
    Cubic(Cubic),
    NewReno(NewReno),
}

/// Call `$method` on whichever algorithm `$self` holds.
macro_rules! each {
    ($self:expr, $c:ident => $call:expr) => {
        match $self {
            Algorithm::Cubic($c) => $call,
            Algorithm::NewReno($c) => $call,
        }
    };
}

// Every method is passed on, the provided ones too, so that an algorithm's own version
// of one (CUBIC's `restore`) is the one that runs.
impl Controller for Algorithm {
    fn kind(&self) -> CongestionControl {
        each!(self, c => c.kind())
    }
    fn window(&self) -> &Window {
        each!(self, c => c.window())
    }
    fn window_mut(&mut self) -> &mut Window {
        each!(self, c => c.window_mut())
    }
    fn cwnd(&self) -> u32 {
        each!(self, c => c.cwnd())
    }
    fn ssthresh(&self) -> u32 {
        each!(self, c => c.ssthresh())
    }
    fn set_cwnd(&mut self, cwnd: u32) {
        each!(self, c => c.set_cwnd(cwnd))
    }
    fn on_ack(&mut self, now: Instant, acked: u32, min_rtt: Option<Duration>) {
        each!(self, c => c.on_ack(now, acked, min_rtt))
    }
    fn on_congestion(&mut self, now: Instant, flight: u32) {
        each!(self, c => c.on_congestion(now, flight))
    }
    fn on_rto(&mut self, now: Instant, flight: u32) {
        each!(self, c => c.on_rto(now, flight))
    }
    fn on_idle(&mut self) {
        each!(self, c => c.on_idle())
    }
    fn mss(&self) -> u32 {
        each!(self, c => c.mss())
    }
    fn set_mss(&mut self, mss: u32) {
        each!(self, c => c.set_mss(mss))
    }
    fn exit_slow_start(&mut self) {
        each!(self, c => c.exit_slow_start())
    }
    fn restore(&mut self, cwnd: u32, ssthresh: u32) {
        each!(self, c => c.restore(cwnd, ssthresh))
    }
}

/// RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)).
pub(crate) fn initial_window(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14_600))
}

/// What a congestion controller does. Windows are in bytes.
pub(crate) trait Controller: Debug + Send {
    /// Which algorithm this is.
    fn kind(&self) -> CongestionControl;
    /// The windows every algorithm keeps.
    fn window(&self) -> &Window;
    fn window_mut(&mut self) -> &mut Window;
    fn cwnd(&self) -> u32 {
        self.window().cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.window().ssthresh
    }
    /// Loss recovery sets cwnd directly (RFC 6675 and RFC 6582 manage it while recovering).
    fn set_cwnd(&mut self, cwnd: u32) {
        let w = self.window_mut();
        w.cwnd = cwnd.max(w.mss);
    }
    /// `acked` new bytes delivered outside recovery; `min_rtt`, the smallest RTT seen,
    /// when known.
    fn on_ack(&mut self, now: Instant, acked: u32, min_rtt: Option<Duration>);
    /// A loss detected by duplicate ACKs or SACK: set ssthresh and cwnd for recovery.
    fn on_congestion(&mut self, now: Instant, flight: u32);
    /// A retransmission timeout (RFC 5681 eq. 4: cwnd becomes one segment).
    fn on_rto(&mut self, now: Instant, flight: u32);
    /// Restart after an idle period (RFC 5681 4.1): cwnd back to at most the initial window.
    fn on_idle(&mut self) {
        let iw = initial_window(self.mss());
        if self.cwnd() > iw {
            self.set_cwnd(iw);
        }
    }
    fn mss(&self) -> u32 {
        self.window().mss
    }
    /// The MSS changed (path MTU).
    fn set_mss(&mut self, mss: u32) {
        self.window_mut().mss = mss;
    }
    /// Leave slow start now (HyStart++ saw the queue build): ssthresh = cwnd.
    fn exit_slow_start(&mut self) {
        let w = self.window_mut();
        w.ssthresh = w.cwnd;
    }
    /// Put back the window from before a congestion response that proved spurious.
    fn restore(&mut self, cwnd: u32, ssthresh: u32) {
        let w = self.window_mut();
        w.cwnd = cwnd;
        w.ssthresh = ssthresh;
    }
}

/// cwnd, ssthresh and the segment size they are counted in, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    pub(crate) mss: u32,
}

impl Window {
    /// RFC 6928 initial window, no ssthresh yet.
    fn new(mss: u32) -> Window {
        Window {
            cwnd: initial_window(mss),
            ssthresh: u32::MAX,
            mss,
        }
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// RFC 5681 3.1 slow start with byte counting (RFC 3465), not beyond ssthresh. As
    /// Linux's tcp_slow_start, an ACK grows cwnd by all it acknowledges (RFC 3465's limit
    /// L is not applied): a stretch ACK for four segments lets eight go, as on Linux;
    /// HyStart ends slow start before it overshoots.
    fn slow_start(&mut self, acked: u32) {
        self.cwnd = self
            .cwnd
            .saturating_add(acked)
            .min(self.ssthresh.max(self.cwnd));
    }
}

/// Leaving slow start before the bottleneck queue overflows, two ways as Linux's HyStart
/// does: the delay test of HyStart++ (RFC 9406: a round's minimum RTT rises by more than
/// max(4 ms, min(16 ms, last/8)) over the previous round's), and the ACK-train test
/// (a round's closely spaced ACKs last longer than half the minimum RTT: cwnd has reached
/// about half the path's bandwidth-delay product and the next doubling would overflow).
/// The second catches bursty rounds after which the queue drains, where the minimum RTT
/// never rises. RFC 9406's Conservative Slow Start is not done: we go to congestion avoidance.
///
/// The per-round state lives behind a pointer, allocated once slow start reaches the
/// window where HyStart decides (16 segments) and freed when it has decided: most
/// connections never get there.
#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    rounds: Option<Box<Rounds>>,
    /// Lowest RTT seen.
    min_rtt: Option<Micros>,
    done: bool,
}

#[derive(Clone, Debug, Default)]
struct Rounds {
    /// The round ends when SND.UNA passes this.
    round_end: Option<crate::wire::SeqNum>,
    last_round_min: Option<Micros>,
    current_round_min: Option<Micros>,
    samples: u32,
    /// First and latest ACK of the current train of closely spaced ACKs.
    train: Option<(Instant, Instant)>,
}

/// RFC 9406 4.3: N_RTT_SAMPLE, MIN_RTT_THRESH, MAX_RTT_THRESH.
const N_RTT_SAMPLE: u32 = 8;
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// Linux's hystart_low_window: HyStart decides nothing below 16 segments.
const LOW_WINDOW: u32 = 16;
/// ACKs this close together belong to one train (Linux's HYSTART_ACK_DELTA is 2 ms).
const ACK_DELTA: Duration = Duration::from_millis(2);

impl HyStart {
    /// One ACK in slow start with its RTT sample; true when slow start should end.
    /// `cwnd_segs` is cwnd in segments (as Linux, nothing is decided below 16), and
    /// `ack_delay` what a sender's own ACK spacing may add to a train (Linux's
    /// hystart_ack_delay: at most 1 ms).
    pub(crate) fn on_sample(
        &mut self,
        now: Instant,
        rtt: Duration,
        una: crate::wire::SeqNum,
        max: crate::wire::SeqNum,
        cwnd_segs: u32,
        ack_delay: Duration,
    ) -> bool {
        if self.done {
            return false;
        }
        let rtt = Micros::new(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        if cwnd_segs < LOW_WINDOW {
            return false;
        }
        let r = self.rounds.get_or_insert_with(Box::default);
        if r.round_end.is_none_or(|end| una >= end) {
            // RFC 9406 4.2: a new round starts.
            r.round_end = Some(max);
            r.last_round_min = r.current_round_min.take();
            r.samples = 0;
            r.train = Some((now, now));
        }
        r.samples += 1;
        r.current_round_min = Some(r.current_round_min.map_or(rtt, |m| m.min(rtt)));
        let delay_rose = match (r.last_round_min, r.current_round_min) {
            (Some(last), Some(current)) if r.samples >= N_RTT_SAMPLE => {
                let (last, current) = (last.get(), current.get());
                current >= last + (last / 8).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH)
            }
            _ => false,
        };
        let mut long_train = false;
        if let Some((first, latest)) = r.train {
            if now - latest <= ACK_DELTA {
                r.train = Some((first, now));
                // Linux: the train passes (delay_min + ack delay) / 2 without pacing.
                long_train = self
                    .min_rtt
                    .is_some_and(|m| now - first > (m.get() + ack_delay) / 2);
            } else {
                r.train = None;
            }
        }
        if delay_rose || long_train {
            self.done = true;
            self.rounds = None;
        }
        self.done
    }
}

/// RFC 5681 slow start and congestion avoidance with appropriate byte counting (RFC 3465).
#[derive(Debug)]
pub(crate) struct NewReno {
    w: Window,
    /// Bytes acknowledged towards the next one-MSS increase in congestion avoidance.
    acked_in_ca: u32,
}

impl NewReno {
    pub(crate) fn new(mss: u32) -> NewReno {
        NewReno {
            w: Window::new(mss),
            acked_in_ca: 0,
        }
    }
}

/// RFC 5681 eq. 4 / RFC 9438 4.6 floor: never below two segments after a loss.
fn floor(mss: u32, w: u32) -> u32 {
    w.max(2 * mss)
}

impl Controller for NewReno {
    fn kind(&self) -> CongestionControl {
        CongestionControl::NewReno
    }
    fn window(&self) -> &Window {
        &self.w
    }
    fn window_mut(&mut self) -> &mut Window {
        &mut self.w
    }

    fn on_ack(&mut self, _now: Instant, acked: u32, _srtt: Option<Duration>) {
        if self.w.in_slow_start() {
            self.w.slow_start(acked);
            return;
        }
        // RFC 5681 3.1 congestion avoidance: one MSS per cwnd of bytes acknowledged.
        self.acked_in_ca += acked;
        if self.acked_in_ca >= self.w.cwnd {
            self.acked_in_ca -= self.w.cwnd;
            self.w.cwnd = self.w.cwnd.saturating_add(self.w.mss);
        }
    }

    fn on_congestion(&mut self, _now: Instant, _flight: u32) {
        // RFC 5681 eq. 4 halves FlightSize; as Linux (tcp_reno_ssthresh) we halve cwnd:
        // in a long recovery without SACK, FlightSize counts what the receiver already
        // holds out of order and can be many times cwnd.
        self.w.ssthresh = floor(self.w.mss, self.w.cwnd / 2);
        self.w.cwnd = self.w.ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_rto(&mut self, _now: Instant, _flight: u32) {
        self.w.ssthresh = floor(self.w.mss, self.w.cwnd / 2);
        self.w.cwnd = self.w.mss;
        self.acked_in_ca = 0;
    }
}

/// RFC 9438 CUBIC, windows kept in segments as the RFC writes them.
#[derive(Debug)]
pub(crate) struct Cubic {
    w: Window,
    /// W_max: cwnd just before the last reduction, in segments.
    w_max: f64,
    /// W_max before that, for fast convergence (RFC 9438 4.7).
    w_last_max: f64,
    /// Start of the current congestion-avoidance epoch, with its K and origin.
    epoch: Option<(Instant, f64, f64)>,
    /// W_est: the Reno-friendly estimate (RFC 9438 4.3), in segments.
    w_est: f64,
}

/// RFC 9438 4.1: C = 0.4, beta_cubic = 0.7.
const C: f64 = 0.4;
const BETA: f64 = 0.7;

/// The cube root: std's (the platform's libm) with std, as every run so far has
/// computed K; the `libm` crate's without std, where `f64::cbrt` does not exist.
#[cfg(feature = "std")]
fn cbrt(x: f64) -> f64 {
    x.cbrt()
}

/// The cube root: std's (the platform's libm) with std, as every run so far has
/// computed K; the `libm` crate's without std, where `f64::cbrt` does not exist.
#[cfg(not(feature = "std"))]
fn cbrt(x: f64) -> f64 {
    libm::cbrt(x)
}

impl Cubic {
    pub(crate) fn new(mss: u32) -> Cubic {
        Cubic {
            w: Window::new(mss),
            w_max: 0.0,
            w_last_max: 0.0,
            epoch: None,
            w_est: 0.0,
        }
    }

    fn segments(&self) -> f64 {
        self.w.cwnd as f64 / self.w.mss as f64
    }

    /// Remember W_max (with fast convergence) and set ssthresh = beta * cwnd.
    fn reduce(&mut self) {
        let w = self.segments();
        // RFC 9438 4.7: a flow whose W_max keeps shrinking releases bandwidth faster.
        self.w_max = if w < self.w_last_max {
            w * (1.0 + BETA) / 2.0
        } else {
            w
        };
        self.w_last_max = w;
        self.w.ssthresh = floor(self.w.mss, (self.w.cwnd as f64 * BETA) as u32);
        self.epoch = None;
    }
}

impl Controller for Cubic {
    fn kind(&self) -> CongestionControl {
        CongestionControl::Cubic
    }
    fn window(&self) -> &Window {
        &self.w
    }
    fn window_mut(&mut self) -> &mut Window {
        &mut self.w
    }

    fn on_ack(&mut self, now: Instant, acked: u32, min_rtt: Option<Duration>) {
        if self.w.in_slow_start() {
            // Slow start as in RFC 5681 (RFC 9438 4.10).
            self.w.slow_start(acked);
            return;
        }
        let cwnd = self.segments();
        let (start, k, origin) = *self.epoch.get_or_insert_with(|| {
            // RFC 9438 4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C), or 0 above W_max.
            if cwnd < self.w_max {
                (now, cbrt((self.w_max - cwnd) / C), self.w_max)
            } else {
                (now, 0.0, cwnd)
            }
        });
        if self.w_est == 0.0 || self.w_est < cwnd * BETA {
            self.w_est = cwnd;
        }
        let rtt = min_rtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let t = (now - start).as_secs_f64();
        // RFC 9438 4.2 eq. 1 at t + RTT; RTT is the minimum RTT, as Linux's
        // bictcp_update (delay_min).
        let d = t + rtt - k;
        let target = (C * (d * d * d) + origin).max(cwnd);
        let acked_seg = acked as f64 / self.w.mss as f64;
        // RFC 9438 4.4/4.5: (target - cwnd) / cwnd per segment acknowledged.
        let mut per_segment = (target - cwnd) / cwnd;
        if self.w_max == 0.0 {
            // As Linux: before the first loss (W_max unknown, e.g. after HyStart left
            // slow start) grow at least 1/20 segment per segment acknowledged, 5 % a
            // round trip, to find the path's capacity.
            per_segment = per_segment.max(1.0 / 20.0);
        }
        // RFC 9438 4.3: the Reno-friendly region, alpha = 3 (1 - beta) / (1 + beta):
        // never slower than Reno would grow.
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * acked_seg / cwnd;
        per_segment = per_segment.max((self.w_est - cwnd) / cwnd);
        // At most half a segment per segment acknowledged: cwnd grows by at most 1.5x
        // a round trip (RFC 9438 4.4's limit; Linux's cnt >= 2).
        let next = cwnd + per_segment.min(0.5) * acked_seg;
        self.w.cwnd = (next * self.w.mss as f64) as u32;
    }

    fn restore(&mut self, cwnd: u32, ssthresh: u32) {
        self.w.cwnd = cwnd;
        self.w.ssthresh = ssthresh;
        // The reduction never should have happened: forget it.
        self.w_max = self.w_last_max;
        self.epoch = None;
    }

    fn on_congestion(&mut self, _now: Instant, _flight: u32) {
        self.reduce();
        self.w.cwnd = self.w.ssthresh;
        self.w_est = self.segments();
    }

    fn on_rto(&mut self, _now: Instant, _flight: u32) {
        self.reduce();
        self.w.cwnd = self.w.mss;
        self.w_est = 0.0;
        // As Linux (bictcp_state on TCP_CA_Loss): after a timeout the old W_max says
        // nothing about the path any more.
        self.w_max = 0.0;
        self.w_last_max = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    /// Ack `cwnd` bytes in MSS-sized pieces over one RTT; return the new cwnd.
    fn one_rtt(cc: &mut dyn Controller, now: &mut Instant, rtt: Duration) -> u32 {
        let cwnd = cc.cwnd();
        let acks = (cwnd / MSS).max(1);
        for _ in 0..acks {
            *now += rtt / acks;
            cc.on_ack(*now, MSS, Some(rtt));
        }
        cc.cwnd()
    }

    #[test]
    fn the_initial_window_is_ten_segments_within_14600_bytes() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(1000), 10_000);
        assert_eq!(initial_window(9000), 18_000);
    }

    #[test]
    fn newreno_doubles_per_rtt_in_slow_start_then_adds_one_mss() {
        let mut cc = NewReno::new(MSS);
        let mut now = Instant::from_secs(1);
        let rtt = Duration::from_millis(20);
        assert_eq!(one_rtt(&mut cc, &mut now, rtt), 20_000);
        cc.on_congestion(now, 20_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10_000, 10_000));
        assert_eq!(one_rtt(&mut cc, &mut now, rtt), 11_000);
        assert_eq!(one_rtt(&mut cc, &mut now, rtt), 12_000);
        cc.on_rto(now, 12_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 6_000));
    }

    #[test]
    fn cubic_backs_off_to_seventy_percent_and_follows_the_cubic_curve() {
        // A large window on a long path, where the cubic curve (not the Reno-friendly
        // estimate) sets the pace: W_max = 1000 segments, RTT 100 ms.
        let mut cc = Cubic::new(MSS);
        let start = Instant::from_secs(1);
        let mut now = start;
        let rtt = Duration::from_millis(100);
        cc.set_cwnd(1000 * MSS);
        cc.w.ssthresh = 1000 * MSS;
        cc.on_congestion(now, 1000 * MSS);
        assert_eq!(cc.cwnd(), 700 * MSS);
        // RFC 9438 eq. 1 and 2: W(t) = 0.4 (t - K)^3 + 1000, K = cbrt(300 / 0.4) = 9.09 s.
        let k = (300.0f64 / C).cbrt();
        let curve = |t: f64| C * (t - k).powi(3) + 1000.0;
        let mut checked = 0;
        for rtts in 1..=160 {
            one_rtt(&mut cc, &mut now, rtt);
            let t = (now - start).as_secs_f64();
            if rtts % 40 == 0 {
                // Concave below W_max, a plateau around K, convex above.
                let w = cc.cwnd() as f64 / MSS as f64;
                let want = curve(t);
                assert!(
                    (w - want).abs() / want < 0.02,
                    "at {t:.1} s: {w:.1} segments, curve {want:.1}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
        assert!(cc.cwnd() > 1000 * MSS, "past K it grows beyond W_max");
    }

    #[test]
    fn cubic_grows_at_least_like_reno_on_short_paths() {
        // RFC 9438 4.3: with 100 segments and a 20 ms RTT the Reno-friendly estimate
        // (alpha = 0.53 segments per RTT) is ahead of the cubic curve.
        let mut cc = Cubic::new(MSS);
        let mut now = Instant::from_secs(1);
        let rtt = Duration::from_millis(20);
        cc.set_cwnd(100 * MSS);
        cc.w.ssthresh = 100 * MSS;
        cc.on_congestion(now, 100 * MSS);
        for _ in 0..50 {
            one_rtt(&mut cc, &mut now, rtt);
        }
        let segments = cc.cwnd() as f64 / MSS as f64;
        assert!(
            segments >= 70.0 + 50.0 * 0.5,
            "{segments:.1} segments after 50 RTTs"
        );
    }

    #[test]
    fn cubic_fast_convergence_lowers_w_max_when_it_keeps_shrinking() {
        let mut cc = Cubic::new(MSS);
        let now = Instant::from_secs(1);
        cc.set_cwnd(100 * MSS);
        cc.on_congestion(now, 0);
        cc.set_cwnd(80 * MSS);
        cc.on_congestion(now, 0);
        assert!((cc.w_max - 80.0 * 1.7 / 2.0).abs() < 1e-9, "{}", cc.w_max);
    }

    #[test]
    fn hystart_ends_slow_start_when_the_round_minimum_rtt_rises() {
        let mut hs = HyStart::default();
        let ms = Duration::from_millis;
        let (mut una, mut max) = (crate::wire::SeqNum::new(0), crate::wire::SeqNum::new(10));
        let mut now = Instant::from_secs(1);
        // Round 1 at 20 ms, round 2 at 22 ms (below the 4 ms threshold), round 3 at 30 ms;
        // ACKs 3 ms apart, so no ACK train.
        for (round, rtt) in [(1, 20), (2, 22), (3, 30)] {
            for i in 0..10 {
                now += ms(3);
                let exit = hs.on_sample(now, ms(rtt), una, max, 20, Duration::ZERO);
                assert_eq!(
                    exit,
                    round == 3 && i == N_RTT_SAMPLE as usize - 1,
                    "round {round}, ack {i}"
                );
            }
            una = max;
            max += 20;
        }
        assert!(
            !hs.on_sample(now, ms(100), una, max, 20, Duration::ZERO),
            "only once"
        );
    }

    #[test]
    fn hystart_ends_slow_start_when_a_round_of_acks_spans_half_the_rtt() {
        let mut hs = HyStart::default();
        let ms = Duration::from_millis;
        let (una, max) = (crate::wire::SeqNum::new(0), crate::wire::SeqNum::new(1000));
        let start = Instant::from_secs(1);
        // RTT 20 ms throughout; ACKs 1 ms apart: the train passes 10 ms at the 12th.
        for i in 0..=11u64 {
            let exit = hs.on_sample(start + ms(i), ms(20), una, max, 20, Duration::ZERO);
            assert_eq!(exit, i == 11, "ack {i}");
        }
    }

    #[test]
    fn hystart_waits_for_16_segments_and_allows_the_ack_delay_as_linux() {
        let ms = Duration::from_micros;
        let (una, max) = (crate::wire::SeqNum::new(0), crate::wire::SeqNum::new(1000));
        let start = Instant::from_secs(1);
        // A 300 us path: ACKs 100 us apart. Below 16 segments nothing is decided.
        let mut hs = HyStart::default();
        for i in 0..20u64 {
            assert!(!hs.on_sample(start + ms(100 * i), ms(300), una, max, 10, ms(1000)));
        }
        // At 16 segments, the train must pass (300 us + 1 ms) / 2 = 650 us, not 150 us.
        let mut hs = HyStart::default();
        let exits: Vec<u64> = (0..10u64)
            .filter(|i| hs.on_sample(start + ms(100 * i), ms(300), una, max, 16, ms(1000)))
            .collect();
        assert_eq!(exits.first(), Some(&7), "{exits:?}");
    }

    #[test]
    fn names_parse_back() {
        for cc in [CongestionControl::Cubic, CongestionControl::NewReno] {
            assert_eq!(cc.name().parse::<CongestionControl>(), Ok(cc));
        }
        assert!("bbr".parse::<CongestionControl>().is_err());
    }
}
