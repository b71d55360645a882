//! Congestion control, chosen per connection: NewReno (RFC 5681 with RFC 3465 byte
//! counting) and CUBIC (RFC 9438, Linux's default) built in, or any
//! [`CongestionController`] an embedder writes. The loss recovery in `input.rs` decides
//! *when* a congestion event happens; a controller decides what cwnd and ssthresh become
//! and how cwnd grows outside recovery.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt::{self, Debug};
use core::time::Duration;

pub use crate::config::CongestionControl;
use crate::time::Micros;
use crate::Instant;

/// A congestion controller an embedder can write: the stack tells it what happened on
/// the connection (ACKs, losses, timeouts, idle periods) and asks it how much may be in
/// flight. All windows are in bytes.
///
/// The stack keeps the parts of RFC 5681 that are about *detecting* loss and
/// *recovering* from it: duplicate ACKs, SACK and RACK (RFC 6675, RFC 8985), NewReno's
/// partial ACKs (RFC 6582), proportional rate reduction (RFC 6937) and HyStart++
/// (RFC 9406). A controller decides how the window *responds*:
///
/// | event | method | RFC |
/// |---|---|---|
/// | new data acknowledged outside fast recovery | [`on_ack`](Self::on_ack) | RFC 5681 3.1 slow start and congestion avoidance, RFC 3465 byte counting, RFC 9438 4.2-4.5 |
/// | loss detected, fast recovery begins | [`on_congestion`](Self::on_congestion) | RFC 5681 3.2 (ssthresh, eq. 4), RFC 9438 4.6 |
/// | the peer echoed a CE mark (ECE, on an ECN connection) | [`on_ecn_echo`](Self::on_ecn_echo) | RFC 3168 6.1.2 (by default as a loss) |
/// | fast recovery (or the ECN reduction) ends with a full ACK | [`on_recovery_exit`](Self::on_recovery_exit) | RFC 6582 3.2 step 6, RFC 6675 5 |
/// | retransmission timeout | [`on_rto`](Self::on_rto) | RFC 5681 3.1 eq. 4 and the loss window, RFC 6298 5.5, RFC 9438 4.8 |
/// | restart after idle | [`on_idle`](Self::on_idle) | RFC 5681 4.1 |
/// | HyStart++ saw the queue build | [`on_slow_start_exit`](Self::on_slow_start_exit) | RFC 9406 |
/// | a reduction proved spurious | [`on_spurious_congestion`](Self::on_spurious_congestion) | RFC 3522 (Eifel), RFC 2883 D-SACK |
/// | the path MTU shrank | [`on_mss_change`](Self::on_mss_change) | RFC 1191, RFC 8201 |
///
/// While fast recovery runs, the stack itself sets cwnd through
/// [`set_cwnd`](Self::set_cwnd) (RFC 6937 PRR towards the ssthresh the controller chose
/// in `on_congestion`), and it never sets cwnd below one MSS. The stack sends while
/// what is in flight is below [`cwnd`](Self::cwnd); it treats the connection as in slow
/// start while `cwnd < ssthresh`.
///
/// A controller is made per connection, when the handshake has fixed the MSS, by the
/// factory in a [`CustomController`], selected with [`CongestionControl::Custom`] in
/// [`crate::Config::congestion_control`] or per connection with
/// [`crate::Stack::set_congestion_control`]. It is called on the stack's thread, once
/// per ACK at most: it must not block, and should not allocate per call.
///
/// ```
/// use std::time::Duration;
/// use synack::tcp::{AckEvent, CongestionController, CustomController};
/// use synack::{CongestionControl, Config, Instant};
///
/// /// AIMD by whole segments per round trip, as RFC 5681 congestion avoidance alone.
/// #[derive(Debug)]
/// struct Aimd { cwnd: u32, ssthresh: u32, mss: u32, acked: u32 }
///
/// impl CongestionController for Aimd {
///     fn cwnd(&self) -> u32 { self.cwnd }
///     fn ssthresh(&self) -> u32 { self.ssthresh }
///     fn set_cwnd(&mut self, cwnd: u32) { self.cwnd = cwnd }
///     fn on_ack(&mut self, ack: &AckEvent) {
///         // One MSS per cwnd of bytes acknowledged.
///         self.acked += ack.bytes_acked;
///         if self.acked >= self.cwnd {
///             self.acked -= self.cwnd;
///             self.cwnd += self.mss;
///         }
///     }
///     fn on_congestion(&mut self, _now: Instant, _flight: u32) {
///         self.ssthresh = (self.cwnd / 2).max(2 * self.mss);
///         self.cwnd = self.ssthresh;
///     }
///     fn on_rto(&mut self, _now: Instant, _flight: u32, during_recovery: bool) {
///         if !during_recovery {
///             self.ssthresh = (self.cwnd / 2).max(2 * self.mss);
///         }
///         self.cwnd = self.mss;
///     }
///     fn on_mss_change(&mut self, mss: u32) { self.mss = mss }
/// }
///
/// let aimd = CustomController::new("aimd", |mss| {
///     let cwnd = synack::tcp::initial_window(mss);
///     Box::new(Aimd { cwnd, ssthresh: u32::MAX, mss, acked: 0 })
/// });
/// let mut config = Config::default();
/// config.congestion_control = CongestionControl::Custom(aimd);
/// assert_eq!(config.congestion_control.name(), "aimd");
///
/// // A controller can be driven by hand too, e.g. in its own unit tests.
/// let mut cc = Aimd { cwnd: 10_000, ssthresh: u32::MAX, mss: 1000, acked: 0 };
/// let now = Instant::from_secs(1);
/// for _ in 0..10 {
///     cc.on_ack(&AckEvent::new(now, 1000, 1000));
/// }
/// assert_eq!(cc.cwnd(), 11_000);
/// ```
pub trait CongestionController: Debug + Send {
    /// The congestion window: the most bytes the stack keeps in flight.
    fn cwnd(&self) -> u32;

    /// The slow-start threshold: while `cwnd < ssthresh` the connection is in slow
    /// start (RFC 5681 3.1), and fast recovery brings cwnd down to it. `u32::MAX`
    /// before the first loss.
    fn ssthresh(&self) -> u32;

    /// The stack sets cwnd directly: during fast recovery (RFC 6937 PRR), when a
    /// connection switches to this controller (it keeps its window), and after a
    /// timeout during recovery. Never below one MSS.
    fn set_cwnd(&mut self, cwnd: u32);

    /// New data was acknowledged outside fast recovery (including the slow start that
    /// follows a timeout): grow cwnd (RFC 5681 3.1, RFC 3465, RFC 9438 4.2-4.5). Not
    /// called while the application or the receive window, not cwnd, limits the sender
    /// (RFC 7661): the window would grow without having been tried.
    fn on_ack(&mut self, ack: &AckEvent);

    /// A loss was detected (three duplicate ACKs, SACK or RACK) and fast recovery
    /// begins (RFC 5681 3.2, RFC 6582, RFC 6675): set ssthresh (and cwnd; the stack's
    /// PRR then moves cwnd towards ssthresh). `flight` is RFC 5681's FlightSize, the
    /// bytes sent and not cumulatively acknowledged.
    fn on_congestion(&mut self, now: Instant, flight: u32);

    /// An ACK with ECE arrived on an ECN connection (RFC 3168 6.1.2): a router marked
    /// a packet CE instead of dropping it. The stack reduces as for a loss, once per
    /// window and resending nothing, with PRR towards the ssthresh set here, then
    /// calls [`on_recovery_exit`](Self::on_recovery_exit). By default the same
    /// response as a loss: [`on_congestion`](Self::on_congestion).
    fn on_ecn_echo(&mut self, now: Instant, flight: u32) {
        self.on_congestion(now, flight);
    }

    /// Fast recovery ended: an ACK covered everything outstanding when it began
    /// (RFC 6582 3.2 step 6, RFC 6675 5). By default cwnd becomes ssthresh.
    fn on_recovery_exit(&mut self, now: Instant) {
        let _ = now;
        let ssthresh = self.ssthresh();
        self.set_cwnd(ssthresh);
    }

    /// The retransmission timer expired (RFC 6298 5.5): RFC 5681 eq. 4 sets ssthresh
    /// to max(FlightSize / 2, 2 MSS) and cwnd to the loss window, one MSS. When
    /// `during_recovery` is true a recovery was already under way and ssthresh should
    /// stay (as Linux's `tcp_enter_loss`). Slow start follows: later ACKs come to
    /// [`on_ack`](Self::on_ack).
    fn on_rto(&mut self, now: Instant, flight: u32, during_recovery: bool);

    /// The connection sent nothing for longer than an RTO and is about to send again
    /// (RFC 5681 4.1): by default cwnd falls to the restart window,
    /// min(`initial_window`, cwnd), where `initial_window` is RFC 6928's.
    fn on_idle(&mut self, now: Instant, initial_window: u32) {
        let _ = now;
        if self.cwnd() > initial_window {
            self.set_cwnd(initial_window);
        }
    }

    /// The stack's HyStart++ (RFC 9406) saw the RTT rise or a long ACK train in slow
    /// start: the bottleneck queue is building. The built-ins set ssthresh to cwnd;
    /// by default nothing happens.
    fn on_slow_start_exit(&mut self, now: Instant) {
        let _ = now;
    }

    /// The last reduction was needless: the "lost" segment had only been reordered
    /// (RFC 3522 Eifel detection with timestamps, or a D-SACK, RFC 2883). `cwnd` and
    /// `ssthresh` are the values from just before the reduction. By default cwnd is
    /// put back.
    fn on_spurious_congestion(&mut self, cwnd: u32, ssthresh: u32) {
        let _ = ssthresh;
        self.set_cwnd(cwnd);
    }

    /// The sender's MSS changed (a smaller path MTU, RFC 1191 / RFC 8201): windows
    /// counted in segments should follow. By default nothing happens.
    fn on_mss_change(&mut self, mss: u32) {
        let _ = mss;
    }
}

/// What one ACK delivered, for [`CongestionController::on_ack`]. Fields may be added;
/// build one outside the crate with [`AckEvent::new`].
///
/// ```
/// use std::time::Duration;
/// use synack::tcp::AckEvent;
/// use synack::Instant;
/// // What a controller's unit test feeds it: 2 segments acked, 8 still in flight.
/// let mut ack = AckEvent::new(Instant::from_millis(250), 2 * 1460, 1460);
/// ack.flight = 8 * 1460;
/// ack.rtt = Some(Duration::from_millis(40));
/// assert_eq!(ack.bytes_acked / ack.mss, 2);
/// assert_eq!(ack.srtt, None); // not set: no smoothed RTT yet
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckEvent {
    /// When the ACK arrived.
    pub now: Instant,
    /// Bytes newly delivered by this ACK: cumulatively acknowledged or newly SACKed
    /// (RFC 3465 byte counting; RFC 6675's DeliveredData).
    pub bytes_acked: u32,
    /// The sender's MSS, in which windows are counted.
    pub mss: u32,
    /// RFC 5681 FlightSize after this ACK: bytes sent and not cumulatively acknowledged.
    pub flight: u32,
    /// This ACK's RTT sample (RFC 6298, RFC 7323), if it gave one.
    pub rtt: Option<Duration>,
    /// The lowest RTT the connection has seen (RACK's minimum RTT, or the smoothed RTT
    /// when that is lower or the only one): the path's propagation delay, without the
    /// queue (what CUBIC's RFC 9438 4.2 clock uses).
    pub min_rtt: Option<Duration>,
    /// The smoothed RTT (RFC 6298 SRTT), once there is a sample.
    pub srtt: Option<Duration>,
}

impl AckEvent {
    /// An ACK at `now` that delivered `bytes_acked` bytes with `mss`-byte segments;
    /// the other fields are empty (no flight, no RTT) and can be set afterwards.
    pub fn new(now: Instant, bytes_acked: u32, mss: u32) -> AckEvent {
        AckEvent {
            now,
            bytes_acked,
            mss,
            flight: 0,
            rtt: None,
            min_rtt: None,
            srtt: None,
        }
    }
}

/// The factory behind [`CongestionControl::Custom`]: a name (shown by
/// [`CongestionControl::name`] and in [`crate::ConnectionInfo`]) and a function that
/// makes one [`CongestionController`] per connection from the connection's MSS. Cloning
/// it shares the factory. Two are equal when they share the same factory.
///
/// ```
/// use synack::tcp::{AckEvent, CongestionController, CustomController};
/// use synack::{CongestionControl, Config, Instant};
///
/// /// A window that never moves (for a lab, not for the Internet).
/// #[derive(Debug)]
/// struct Fixed(u32);
///
/// impl CongestionController for Fixed {
///     fn cwnd(&self) -> u32 { self.0 }
///     fn ssthresh(&self) -> u32 { self.0 }
///     fn set_cwnd(&mut self, _cwnd: u32) {}
///     fn on_ack(&mut self, _ack: &AckEvent) {}
///     fn on_congestion(&mut self, _now: Instant, _flight: u32) {}
///     fn on_rto(&mut self, _now: Instant, _flight: u32, _during_recovery: bool) {}
/// }
///
/// let fixed = CustomController::new("fixed-10", |mss| Box::new(Fixed(10 * mss)));
/// assert_eq!(fixed.name(), "fixed-10");
/// assert_eq!(fixed.clone(), fixed); // clones share the factory
/// let mut config = Config::default();
/// config.congestion_control = CongestionControl::Custom(fixed);
/// ```
#[derive(Clone)]
pub struct CustomController(Arc<Factory>);

/// Behind one thin pointer: a connection keeps its choice in 16 bytes.
struct Factory {
    name: &'static str,
    make: Box<dyn Fn(u32) -> Box<dyn CongestionController> + Send + Sync>,
}

impl CustomController {
    /// A custom congestion control called `name`, whose controllers `make` builds from
    /// the connection's MSS (once per connection, when the handshake fixed the MSS).
    pub fn new(
        name: &'static str,
        make: impl Fn(u32) -> Box<dyn CongestionController> + Send + Sync + 'static,
    ) -> CustomController {
        CustomController(Arc::new(Factory {
            name,
            make: Box::new(make),
        }))
    }

    /// The name given to [`CustomController::new`].
    pub fn name(&self) -> &'static str {
        self.0.name
    }
}

impl Debug for CustomController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CustomController")
            .field(&self.0.name)
            .finish()
    }
}

impl PartialEq for CustomController {
    fn eq(&self, other: &CustomController) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CustomController {}

impl core::hash::Hash for CustomController {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

/// A connection's choice of congestion control, kept in two fields of the connection
/// (a built-in's byte fits its padding; a custom factory is one pointer, null when
/// unused) rather than a 16-byte [`CongestionControl`]: a connection's size is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Cubic,
    NewReno,
}

impl CongestionControl {
    /// The choice in the two parts a connection keeps.
    pub(crate) fn split(self) -> (Builtin, Option<CustomController>) {
        match self {
            CongestionControl::Cubic => (Builtin::Cubic, None),
            CongestionControl::NewReno => (Builtin::NewReno, None),
            CongestionControl::Custom(custom) => (Builtin::Cubic, Some(custom)),
        }
    }

    /// The choice [`CongestionControl::split`] took apart.
    pub(crate) fn join(builtin: Builtin, custom: Option<&CustomController>) -> CongestionControl {
        match (builtin, custom) {
            (_, Some(custom)) => CongestionControl::Custom(custom.clone()),
            (Builtin::Cubic, None) => CongestionControl::Cubic,
            (Builtin::NewReno, None) => CongestionControl::NewReno,
        }
    }

    /// The controller this choice makes, for a connection whose MSS is `mss`.
    pub(crate) fn controller(&self, mss: u32) -> Algorithm {
        match self {
            CongestionControl::Cubic => Algorithm::Cubic(Cubic::new(mss)),
            CongestionControl::NewReno => Algorithm::NewReno(NewReno::new(mss)),
            CongestionControl::Custom(custom) => Algorithm::Custom {
                cc: (custom.0.make)(mss),
                choice: custom.clone(),
                mss,
            },
        }
    }
}

/// A connection's congestion controller. The built-ins are held inline: no box and no
/// virtual call per ACK; a custom one is boxed (once per connection) and called through
/// [`CongestionController`]. Another built-in is one more variant here and one more
/// [`Controller`].
#[derive(Debug)]
pub(crate) enum Algorithm {
    Cubic(Cubic),
    NewReno(NewReno),
    Custom {
        cc: Box<dyn CongestionController>,
        /// What made it, for [`Algorithm::kind`].
        choice: CustomController,
        /// The sender's MSS, kept here for the stack (the built-ins keep it in [`Window`]).
        mss: u32,
    },
}

/// Call `$call` on whichever built-in `$self` holds, or `$custom` with the custom one.
macro_rules! each {
    ($self:expr, $c:ident => $call:expr, $cc:pat => $custom:expr) => {
        match $self {
            Algorithm::Cubic($c) => $call,
            Algorithm::NewReno($c) => $call,
            $cc => $custom,
        }
    };
}

// The calls the connection makes. For the built-ins every method is passed on, the
// provided ones too, so that an algorithm's own version of one (CUBIC's `restore`) is
// the one that runs.
impl Algorithm {
    /// Which congestion control this is.
    pub(crate) fn kind(&self) -> CongestionControl {
        each!(self, c => c.kind(),
            Algorithm::Custom { choice, .. } => CongestionControl::Custom(choice.clone()))
    }
    pub(crate) fn cwnd(&self) -> u32 {
        each!(self, c => c.cwnd(), Algorithm::Custom { cc, .. } => cc.cwnd())
    }
    pub(crate) fn ssthresh(&self) -> u32 {
        each!(self, c => c.ssthresh(), Algorithm::Custom { cc, .. } => cc.ssthresh())
    }
    /// Loss recovery sets cwnd directly (RFC 6675 and RFC 6582 manage it while recovering).
    pub(crate) fn set_cwnd(&mut self, cwnd: u32) {
        each!(self, c => c.set_cwnd(cwnd),
            Algorithm::Custom { cc, mss, .. } => cc.set_cwnd(cwnd.max(*mss)))
    }
    pub(crate) fn on_ack(&mut self, ack: &AckEvent) {
        each!(self, c => c.on_ack(ack.now, ack.bytes_acked, ack.min_rtt),
            Algorithm::Custom { cc, .. } => cc.on_ack(ack))
    }
    pub(crate) fn on_congestion(&mut self, now: Instant, flight: u32) {
        each!(self, c => c.on_congestion(now, flight),
            Algorithm::Custom { cc, .. } => cc.on_congestion(now, flight))
    }
    /// An ECE: the built-ins respond as to a loss (Linux's tcp_enter_cwr asks the
    /// same ssthresh).
    pub(crate) fn on_ecn_echo(&mut self, now: Instant, flight: u32) {
        each!(self, c => c.on_congestion(now, flight),
            Algorithm::Custom { cc, .. } => cc.on_ecn_echo(now, flight))
    }
    /// A full ACK ended fast recovery: cwnd = ssthresh (RFC 6582 3.2 step 6).
    pub(crate) fn on_recovery_exit(&mut self, now: Instant) {
        each!(self, c => c.set_cwnd(c.ssthresh()),
            Algorithm::Custom { cc, .. } => cc.on_recovery_exit(now))
    }
    /// A retransmission timeout; during a recovery already under way only cwnd falls
    /// to one segment (as Linux's tcp_enter_loss).
    pub(crate) fn on_rto(&mut self, now: Instant, flight: u32, during_recovery: bool) {
        each!(self, c => if during_recovery {
            c.set_cwnd(c.mss())
        } else {
            c.on_rto(now, flight)
        },
        Algorithm::Custom { cc, mss, .. } => {
            cc.on_rto(now, flight, during_recovery);
            // The stack never goes below one segment.
            if cc.cwnd() < *mss {
                cc.set_cwnd(*mss);
            }
        })
    }
    pub(crate) fn on_idle(&mut self, now: Instant) {
        each!(self, c => c.on_idle(),
            Algorithm::Custom { cc, mss, .. } => cc.on_idle(now, initial_window(*mss)))
    }
    pub(crate) fn mss(&self) -> u32 {
        each!(self, c => c.mss(), Algorithm::Custom { mss, .. } => *mss)
    }
    pub(crate) fn set_mss(&mut self, new: u32) {
        each!(self, c => c.set_mss(new), Algorithm::Custom { cc, mss, .. } => {
            *mss = new;
            cc.on_mss_change(new)
        })
    }
    pub(crate) fn exit_slow_start(&mut self, now: Instant) {
        each!(self, c => c.exit_slow_start(),
            Algorithm::Custom { cc, .. } => cc.on_slow_start_exit(now))
    }
    pub(crate) fn restore(&mut self, cwnd: u32, ssthresh: u32) {
        each!(self, c => c.restore(cwnd, ssthresh),
            Algorithm::Custom { cc, .. } => cc.on_spurious_congestion(cwnd, ssthresh))
    }
}

/// RFC 6928's initial window for a sender whose MSS is `mss`, in bytes:
/// min(10 MSS, max(2 MSS, 14600)). Where the built-in controllers start, and the
/// restart window after idle (RFC 5681 4.1).
///
/// ```
/// assert_eq!(synack::tcp::initial_window(1460), 14_600);
/// assert_eq!(synack::tcp::initial_window(9000), 18_000);
/// ```
pub fn initial_window(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14_600))
}

/// What a built-in congestion controller does. Windows are in bytes.
pub(crate) trait Controller: Debug + Send {
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
/// does: the delay test (tcp_cubic.c `hystart_update`: past its first 8 samples, a round's
/// minimum RTT exceeds the connection's minimum by more than max(4 ms, min(16 ms,
/// min/8)); RFC 9406's HyStart++ compares with the previous round's instead), and the
/// ACK-train test
/// (a round's closely spaced ACKs last longer than half the minimum RTT: cwnd has reached
/// about half the path's bandwidth-delay product and the next doubling would overflow).
/// The second catches bursty rounds after which the queue drains, where the minimum RTT
/// never rises. RFC 9406's Conservative Slow Start is not done: we go to congestion avoidance.
///
/// Rounds are counted through the whole of slow start, as Linux since 6.10 (commit
/// 25c1a9ca53db, "fix incorrect HyStart round start detection"): a round ends when
/// SND.UNA passes the SND.NXT its first ACK saw, whatever cwnd was. The per-round
/// samples live behind a pointer, allocated once slow start reaches the window where
/// HyStart decides (16 segments) and freed when it has decided: most connections never
/// get there.
#[derive(Clone, Debug, Default)]
pub(crate) struct HyStart {
    rounds: Option<Box<Rounds>>,
    /// The round ends when SND.UNA passes this (Linux's end_seq).
    round_end: Option<crate::wire::SeqNum>,
    /// Lowest RTT seen, in microseconds; 0 until the first sample (Linux's delay_min).
    min_rtt_us: u32,
    done: bool,
}

#[derive(Clone, Debug, Default)]
struct Rounds {
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
    /// `una` is SND.UNA after this ACK and `nxt` SND.NXT before the data it lets out;
    /// `cwnd_segs` is cwnd in segments (as Linux, nothing is decided below 16), and
    /// `ack_delay` what a sender's own ACK spacing may add to a train (Linux's
    /// hystart_ack_delay: at most 1 ms).
    pub(crate) fn on_sample(
        &mut self,
        now: Instant,
        rtt: Duration,
        una: crate::wire::SeqNum,
        nxt: crate::wire::SeqNum,
        cwnd_segs: u32,
        ack_delay: Duration,
    ) -> bool {
        if self.done {
            return false;
        }
        // Linux's cubictcp_acked: a zero sample counts as 1 us.
        let rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX).max(1);
        if self.min_rtt_us == 0 || rtt_us < self.min_rtt_us {
            self.min_rtt_us = rtt_us;
        }
        let rtt = Micros::new(Duration::from_micros(rtt_us.into()));
        let min_rtt = Duration::from_micros(self.min_rtt_us.into());
        // Linux's hystart_update: a new round once SND.UNA is past the last one's end.
        let new_round = self.round_end.is_none_or(|end| una > end);
        if new_round {
            self.round_end = Some(nxt);
        }
        if cwnd_segs < LOW_WINDOW {
            return false;
        }
        let r = match &mut self.rounds {
            Some(r) => {
                if new_round {
                    **r = Rounds::default();
                    r.train = Some((now, now));
                }
                r
            }
            // First ACK at 16 segments: mid-round unless it also starts one. Only an
            // ACK train started in this round is missed.
            none => none.insert(Box::new(Rounds {
                train: new_round.then_some((now, now)),
                ..Rounds::default()
            })),
        };
        r.current_round_min = Some(r.current_round_min.map_or(rtt, |m| m.min(rtt)));
        // Linux's hystart_update: once the round has N_RTT_SAMPLE samples, each further
        // ACK compares the round's minimum with the connection's (delay_min), by more
        // than max(4 ms, min(16 ms, delay_min / 8)).
        let delay_rose = match r.current_round_min {
            Some(current) if r.samples >= N_RTT_SAMPLE => {
                current.get() > min_rtt + (min_rtt / 8).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH)
            }
            _ => false,
        };
        r.samples += 1;
        let mut long_train = false;
        if let Some((first, latest)) = r.train {
            if now - latest <= ACK_DELTA {
                r.train = Some((first, now));
                // Linux: the train passes (delay_min + ack delay) / 2 without pacing.
                long_train = now - first > (min_rtt + ack_delay) / 2;
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

/// RFC 9438 CUBIC in Linux's integer form (tcp_cubic.c), windows in segments: the
/// cubic target is recomputed at most every 1/32 s (or when cwnd changed) into `cnt`,
/// the segments to acknowledge per one-segment increase, and cwnd grows by whole
/// segments (tcp_cong_avoid_ai). Time counts in milliseconds (Linux's jiffies at
/// HZ=1000).
#[derive(Debug)]
pub(crate) struct Cubic {
    w: Window,
    /// Segments acknowledged per one-segment increase (Linux's cnt).
    cnt: u32,
    /// W_max: cwnd just before the last reduction, in segments (last_max_cwnd).
    last_max_cwnd: u32,
    /// cwnd and time (ms) of the last recomputation of `cnt`.
    last_cwnd: u32,
    last_time: u32,
    /// The epoch's origin point (segments) and K (in 1/1024 s).
    origin_point: u32,
    k: u32,
    /// Start of the current congestion-avoidance epoch, in ms (None: a new one begins).
    epoch_start: Option<u32>,
    /// Segments acknowledged in this epoch towards the Reno-friendly estimate.
    ack_cnt: u32,
    /// W_est: the Reno-friendly estimate (RFC 9438 4.3), in segments (tcp_cwnd).
    tcp_cwnd: u32,
    /// Segments acknowledged towards the next increase (Linux's snd_cwnd_cnt).
    cwnd_cnt: u32,
    /// Bytes acknowledged short of a whole segment.
    acked_rem: u32,
}

/// RFC 9438 4.1: beta_cubic = 0.7 (Linux's beta 717/1024); C = 0.4 (bic_scale 41/1024
/// times 10).
const BETA_SCALE: u32 = 1024;
const BETA: u32 = 717;
const CUBE_RTT_SCALE: u64 = 41 * 10;
/// K = cbrt(CUBE_FACTOR * (W_max - cwnd)) in 1/1024 s: 2^40 / (C * 1024).
const CUBE_FACTOR: u64 = (1 << 40) / CUBE_RTT_SCALE;
/// The Reno-friendly estimate grows one segment per 15/8 cwnd acknowledged: RFC 9438
/// 4.3's alpha = 3 (1 - beta) / (1 + beta), as Linux's beta_scale.
const FRIENDLY_SCALE: u32 = 8 * (BETA_SCALE + BETA) / 3 / (BETA_SCALE - BETA);
/// How often `cnt` is recomputed at most while cwnd stays put (HZ / 32).
const RECOMPUTE_MS: u32 = 1000 / 32;

/// The integer cube root of `a`, rounded down.
fn cube_root(a: u64) -> u64 {
    let mut x = 0u64;
    for shift in (0..22).rev() {
        let y = x | (1 << shift);
        if y.checked_pow(3).is_some_and(|c| c <= a) {
            x = y;
        }
    }
    x
}

impl Cubic {
    pub(crate) fn new(mss: u32) -> Cubic {
        Cubic {
            w: Window::new(mss),
            cnt: 0,
            last_max_cwnd: 0,
            last_cwnd: 0,
            last_time: 0,
            origin_point: 0,
            k: 0,
            epoch_start: None,
            ack_cnt: 0,
            tcp_cwnd: 0,
            cwnd_cnt: 0,
            acked_rem: 0,
        }
    }

    fn segments(&self) -> u32 {
        (self.w.cwnd / self.w.mss.max(1)).max(1)
    }

    /// Remember W_max (with fast convergence) and set ssthresh = beta * cwnd (Linux's
    /// cubictcp_recalc_ssthresh).
    fn reduce(&mut self) {
        let w = self.segments();
        self.epoch_start = None;
        // RFC 9438 4.7: a flow whose W_max keeps shrinking releases bandwidth faster.
        self.last_max_cwnd = if w < self.last_max_cwnd {
            w * (BETA_SCALE + BETA) / (2 * BETA_SCALE)
        } else {
            w
        };
        let ssthresh = (w * BETA / BETA_SCALE).max(2);
        self.w.ssthresh = ssthresh * self.w.mss;
        self.cwnd_cnt = 0;
    }

    /// Linux's bictcp_update: recompute `cnt` for cwnd `cwnd` (segments) after `acked`
    /// segments at `now_ms`.
    fn update(&mut self, cwnd: u32, acked: u32, now_ms: u32, min_rtt: Option<Duration>) {
        self.ack_cnt = self.ack_cnt.wrapping_add(acked);
        if self.last_cwnd == cwnd && now_ms.wrapping_sub(self.last_time) <= RECOMPUTE_MS {
            return;
        }
        // The cubic function is evaluated at most once per millisecond.
        if self.epoch_start.is_none() || now_ms != self.last_time {
            self.last_cwnd = cwnd;
            self.last_time = now_ms;
            let epoch_start = *self.epoch_start.get_or_insert_with(|| {
                self.ack_cnt = acked;
                self.tcp_cwnd = cwnd;
                // RFC 9438 4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C), or 0 above W_max.
                if self.last_max_cwnd <= cwnd {
                    self.k = 0;
                    self.origin_point = cwnd;
                } else {
                    self.k = cube_root(CUBE_FACTOR * u64::from(self.last_max_cwnd - cwnd)) as u32;
                    self.origin_point = self.last_max_cwnd;
                }
                now_ms
            });
            // RFC 9438 4.2 eq. 1 at t + RTT (the minimum RTT, Linux's delay_min), in
            // 1/1024 s.
            let rtt_ms = min_rtt.map_or(0, |r| r.as_micros().div_ceil(1000) as u64);
            let t = (u64::from(now_ms.wrapping_sub(epoch_start)) + rtt_ms) * 1024 / 1000;
            let k = u64::from(self.k);
            let offs = u128::from(t.abs_diff(k));
            let delta = (u128::from(CUBE_RTT_SCALE) * offs * offs * offs) >> 40;
            let delta = u32::try_from(delta).unwrap_or(u32::MAX);
            let target = if t < k {
                self.origin_point.saturating_sub(delta)
            } else {
                self.origin_point.saturating_add(delta)
            };
            // RFC 9438 4.4/4.5: (target - cwnd) / cwnd per segment acknowledged.
            self.cnt = if target > cwnd {
                cwnd / (target - cwnd)
            } else {
                100 * cwnd
            };
            // Before the first loss (W_max unknown, e.g. after HyStart left slow start)
            // grow at least 5 % a round trip, to find the path's capacity.
            if self.last_max_cwnd == 0 && self.cnt > 20 {
                self.cnt = 20;
            }
        }
        // RFC 9438 4.3: the Reno-friendly region: never slower than Reno would grow.
        let delta = (cwnd * FRIENDLY_SCALE) >> 3;
        if delta > 0 {
            while self.ack_cnt > delta {
                self.ack_cnt -= delta;
                self.tcp_cwnd += 1;
            }
        }
        if self.tcp_cwnd > cwnd {
            let max_cnt = cwnd / (self.tcp_cwnd - cwnd);
            self.cnt = self.cnt.min(max_cnt);
        }
        // At most one segment per two acknowledged: cwnd grows by at most 1.5x a round
        // trip (RFC 9438 4.4's limit).
        self.cnt = self.cnt.max(2);
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
        let mss = self.w.mss.max(1);
        let mut acked = acked;
        if self.w.in_slow_start() {
            // Slow start as in RFC 5681 (RFC 9438 4.10); what takes cwnd past ssthresh
            // counts in congestion avoidance (Linux's tcp_slow_start).
            let before = self.w.cwnd;
            self.w.slow_start(acked);
            acked -= (self.w.cwnd - before).min(acked);
            if acked == 0 {
                return;
            }
        }
        let total = self.acked_rem + acked;
        let segs = total / mss;
        self.acked_rem = total % mss;
        if segs == 0 {
            return;
        }
        let cwnd = self.segments();
        self.update(cwnd, segs, now.as_millis() as u32, min_rtt);
        // Linux's tcp_cong_avoid_ai: one segment per `cnt` acknowledged.
        let w = self.cnt.max(1);
        let mut grow = 0;
        if self.cwnd_cnt >= w {
            self.cwnd_cnt = 0;
            grow += 1;
        }
        self.cwnd_cnt += segs;
        if self.cwnd_cnt >= w {
            let d = self.cwnd_cnt / w;
            self.cwnd_cnt -= d * w;
            grow += d;
        }
        self.w.cwnd = self.w.cwnd.saturating_add(grow.saturating_mul(mss));
    }

    fn restore(&mut self, cwnd: u32, ssthresh: u32) {
        self.w.cwnd = cwnd;
        self.w.ssthresh = ssthresh;
        self.epoch_start = None;
    }

    fn on_congestion(&mut self, _now: Instant, _flight: u32) {
        self.reduce();
        self.w.cwnd = self.w.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, _flight: u32) {
        self.reduce();
        self.w.cwnd = self.w.mss;
        // As Linux (bictcp_state on TCP_CA_Loss, bictcp_reset): after a timeout the old
        // W_max and epoch say nothing about the path any more.
        self.last_max_cwnd = 0;
        self.last_cwnd = 0;
        self.last_time = 0;
        self.origin_point = 0;
        self.k = 0;
        self.ack_cnt = 0;
        self.tcp_cwnd = 0;
        self.cnt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    /// RFC 9438 4.1's C.
    const C: f64 = 0.4;

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
        // W_max = 80 (1 + 0.7) / 2, in Linux's integer arithmetic.
        assert_eq!(cc.last_max_cwnd, 80 * 1741 / 2048);
    }

    #[test]
    fn hystart_ends_slow_start_when_a_rounds_minimum_rtt_rises_over_the_connections() {
        let mut hs = HyStart::default();
        let ms = Duration::from_millis;
        let (mut una, mut max) = (crate::wire::SeqNum::new(0), crate::wire::SeqNum::new(10));
        let mut now = Instant::from_secs(1);
        // Round 1 at 20 ms, round 2 at 22 ms (below the 4 ms threshold), round 3 at 30 ms;
        // ACKs 3 ms apart, so no ACK train. As Linux's hystart_update, the test runs from
        // the ACK after a round's first N_RTT_SAMPLE.
        for (round, rtt) in [(1, 20), (2, 22), (3, 30)] {
            for i in 0..10 {
                now += ms(3);
                let exit = hs.on_sample(now, ms(rtt), una, max, 20, Duration::ZERO);
                assert_eq!(
                    exit,
                    round == 3 && i == N_RTT_SAMPLE as usize,
                    "round {round}, ack {i}"
                );
            }
            una = max + 1;
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
