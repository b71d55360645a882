//! The connection states as data: one struct per RFC 9293 state inside [`State`], so a
//! field exists only where the protocol has it (no send sequence space before the
//! handshake, no reassembly queue after the peer's FIN, only a handful of numbers in
//! TIME_WAIT). Transitions are methods that consume one state and return the next.

use alloc::boxed::Box;
use core::time::Duration;

use super::reassembly::Reassembly;
use super::rtt::RttEstimator;
pub(crate) use super::sack::Scoreboard;
use super::time_wait::TimeWait;
use super::TcpState;
use crate::wire::SeqNum;
use crate::Instant;

/// A retransmission timer with its backoff count (consecutive expirations without progress).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Retransmit {
    pub(crate) deadline: Option<Instant>,
    pub(crate) backoff: u32,
    /// Since when the oldest unacknowledged data has waited for an ACK (the clock of
    /// TCP_USER_TIMEOUT, RFC 5482).
    pub(crate) since: Option<Instant>,
}

/// What the handshake settled (RFC 9293 3.7.1 MSS, RFC 7323 window scale and timestamps).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Negotiated {
    /// Largest payload we put in one segment (peer's MSS, less our option bytes).
    pub(crate) snd_mss: usize,
    /// Shift applied to windows the peer advertises.
    pub(crate) snd_wscale: u8,
    /// Shift applied to windows we advertise.
    pub(crate) rcv_wscale: u8,
    /// Timestamps on every segment (RFC 7323 3).
    pub(crate) timestamps: bool,
    /// SACK permitted both ways (RFC 2018).
    pub(crate) sack: bool,
}

/// The send sequence space (RFC 9293 3.3.1), present from ESTABLISHED until our FIN is acknowledged.
#[derive(Debug)]
pub(crate) struct Snd {
    pub(crate) iss: SeqNum,
    /// Oldest unacknowledged sequence number.
    pub(crate) una: SeqNum,
    /// Next sequence number to send (moves back to `una` after a timeout: go-back-N).
    pub(crate) nxt: SeqNum,
    /// Highest sequence number ever sent, plus one.
    pub(crate) max: SeqNum,
    /// The peer's receive window, already scaled.
    pub(crate) wnd: u32,
    /// Segment sequence and ack numbers used for the last window update.
    pub(crate) wl1: SeqNum,
    pub(crate) wl2: SeqNum,
    /// Largest window the peer ever offered (RFC 5961 5.2 MAX.SND.WND).
    pub(crate) max_wnd: u32,
    pub(crate) rtt: RttEstimator,
    pub(crate) rtx: Retransmit,
    /// Zero-window probing (RFC 9293 3.8.6.1).
    pub(crate) persist: Retransmit,
    /// Probes sent without the window opening.
    pub(crate) probes: u32,
    /// Duplicate ACKs in a row (RFC 5681 3.2).
    pub(crate) dupacks: u32,
    /// Congestion control: cwnd and ssthresh live here (RFC 5681, RFC 9438).
    pub(crate) cc: super::cc::Algorithm,
    /// Loss recovery in progress, if any.
    pub(crate) recovery: Recovery,
    /// Bytes the peer has SACKed above `una` (RFC 2018, RFC 6675 scoreboard).
    pub(crate) sacked: Scoreboard,
    /// A segment at `una` to resend now (fast retransmit).
    pub(crate) resend_head: bool,
    /// End of the last segment smaller than the MSS that we sent (Minshall's Nagle).
    pub(crate) sml: SeqNum,
    /// Start of the newest segment sent: what a tail loss probe resends (RFC 8985 7.3).
    pub(crate) last_seg: SeqNum,
    /// Without SACK, the bytes duplicate ACKs say have left the network (one segment
    /// each, as Linux's `sacked_out` for Reno): what lets RFC 3042's limited transmit
    /// send a new segment per duplicate ACK.
    pub(crate) reno_sacked: u32,
    /// RFC 6937 PRR while fast recovery runs: cwnd when it began (Linux's
    /// `prior_cwnd`), bytes delivered since (`prr_delivered`) and bytes sent since
    /// (`prr_out`).
    pub(crate) prior_cwnd: u32,
    pub(crate) prr_delivered: u32,
    pub(crate) prr_out: u32,
    /// When data was last sent (for restart after idle, RFC 5681 4.1).
    pub(crate) last_send: Option<Instant>,
    /// The packet (in Linux's sense: a TSO/GSO unit) new segments are being put in:
    /// when it began, segments it may still take, segments in it.
    pub(crate) gso: Option<(Instant, u32, u32)>,
    /// Delay-based slow-start exit (RFC 9406).
    pub(crate) hystart: super::cc::HyStart,
    /// Send times and the reordering window: which holes are lost (RFC 8985).
    pub(crate) rack: super::rack::Rack,
    /// Tail loss probe (RFC 8985 7): when to probe, a probe to send now, one outstanding.
    pub(crate) tlp: Option<Instant>,
    pub(crate) tlp_due: bool,
    pub(crate) tlp_out: bool,
    /// How to undo the last congestion response if it proves spurious (RFC 3522 Eifel);
    /// allocated per loss episode.
    pub(crate) undo: Option<Box<Undo>>,
    /// Our FIN is queued (after the application's last byte).
    pub(crate) fin_queued: bool,
    /// Whether the congestion window limited sending in the current window of data, the
    /// most bytes in flight then, and the end of that window (Linux's is_cwnd_limited,
    /// max_packets_out, cwnd_usage_seq).
    pub(crate) is_cwnd_limited: bool,
    pub(crate) max_flight: u32,
    pub(crate) cwnd_usage_seq: SeqNum,
}

/// The window before a fast retransmit, and the evidence that would prove it needless:
/// an ACK echoing a TSval older than our retransmission's (RFC 3522), or D-SACKs for
/// every retransmission (RFC 3708).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Undo {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    pub(crate) rtx_tsval: Option<u32>,
    /// Retransmissions in this episode, and how many the peer reported as duplicates
    /// with D-SACK (RFC 2883, RFC 3708): when all were, none was needed.
    pub(crate) retransmits: u32,
    pub(crate) dsacks: u32,
    /// The sequence space the episode covered (SND.UNA to SND.MAX when it began).
    pub(crate) from: SeqNum,
    pub(crate) to: SeqNum,
}

/// What pipe() depends on: the time (to the millisecond), SND.UNA, SND.MAX, the
/// scoreboard and RACK's state.
pub(crate) type PipeKey = (u64, SeqNum, SeqNum, u32, u64);

/// Which loss recovery is running (RFC 6582 `recover`: until `una` passes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Sending normally.
    Open,
    /// Fast recovery after duplicate ACKs or SACK evidence (RFC 6675 / RFC 6582).
    Fast { recover: SeqNum },
    /// After a retransmission timeout: go back to `una` and resend what is not SACKed.
    Timeout { recover: SeqNum },
    /// RFC 3168 6.1.2: the peer echoed a CE mark (ECE): cwnd is reduced as for a loss,
    /// by PRR, but nothing is resent, until an ACK passes `recover` (SND.NXT when it
    /// began: Linux's CWR state, which ends once something above `high_seq` is ACKed).
    Cwr { recover: SeqNum },
}

impl Undo {
    /// One more retransmission in this episode, carrying `tsval` (the first one's is
    /// kept: an ACK echoing an older TSval shows the original arrived, RFC 3522).
    pub(crate) fn on_retransmit(undo: &mut Option<Box<Undo>>, tsval: Option<u32>) {
        if let Some(u) = undo.as_mut() {
            u.retransmits += 1;
            if let Some(ts) = tsval {
                u.rtx_tsval.get_or_insert(ts);
            }
        }
    }
}

impl Snd {
    /// After a segment went out: remember how fully the window of data now being sent
    /// uses the congestion window (Linux's tcp_cwnd_validate). A window is over once
    /// SND.UNA passes `cwnd_usage_seq`.
    pub(crate) fn track_cwnd_use(&mut self, now: Instant, sack: bool, mss: u32) {
        let flight = self.in_flight(now, sack);
        let mss = mss.max(1);
        let limited = flight.div_ceil(mss) >= self.cwnd() / mss;
        if self.una >= self.cwnd_usage_seq
            || limited
            || (!self.is_cwnd_limited && flight > self.max_flight)
        {
            self.is_cwnd_limited = limited;
            self.max_flight = flight;
            self.cwnd_usage_seq = self.nxt;
        }
    }

    /// RFC 7661 2 and Linux's tcp_is_cwnd_limited: the congestion window grows only when
    /// it is what limits sending (in slow start: until it is twice the most in flight),
    /// not while the application or the peer's window leaves it unused.
    pub(crate) fn may_grow_cwnd(&self) -> bool {
        self.is_cwnd_limited
            || (self.cwnd() < self.cc.ssthresh() && self.cwnd() < 2 * self.max_flight)
    }

    /// Bytes in flight (sent and not acknowledged).
    pub(crate) fn flight(&self) -> u32 {
        (self.nxt - self.una).max(0) as u32
    }

    pub(crate) fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// RFC 6298 5.1: start the retransmission timer when sending, if it is not running.
    pub(crate) fn start_rtx_timer(&mut self, now: Instant) {
        if self.rtx.deadline.is_none() {
            self.rtx.deadline = Some(now + self.rtt.backed_off(self.rtx.backoff));
        }
        self.rtx.since.get_or_insert(now);
    }

    /// `[start, end)` went out again at `now`: no RTT sample from it (Karn, RFC 6298 3),
    /// RACK judges it by this send time, and the timer runs.
    pub(crate) fn on_retransmit(&mut self, now: Instant, start: SeqNum, end: SeqNum) {
        self.rtt.on_retransmit();
        self.rack.on_retransmit(start, end, now);
        self.start_rtx_timer(now);
    }

    /// A congestion response proved needless (timestamps or D-SACK): put the window back
    /// and leave the recovery it started.
    pub(crate) fn undo(&mut self, undo: Undo) {
        self.undo = None;
        self.rack.on_reordering();
        self.cc.restore(undo.cwnd, undo.ssthresh);
        if matches!(self.recovery, Recovery::Fast { .. }) {
            self.recovery = Recovery::Open;
        }
    }

    /// RFC 6675 DupThresh (3, Linux's `tcp_reordering`): with that many segments SACKed
    /// above SND.UNA, or while recovery runs, and no reordering seen, RACK's reordering
    /// window is zero (RFC 8985 6.2; Linux's `tcp_rack_reo_wnd`).
    pub(crate) fn update_dupthresh(&mut self) {
        let met = matches!(self.recovery, Recovery::Fast { .. })
            || self.sacked.bytes() > 2 * self.cc.mss();
        self.rack.set_dupthresh_met(met);
    }

    /// Linux's `tcp_packets_in_flight` in bytes: what is in the network, against which
    /// cwnd is checked. With SACK, RFC 6675's pipe (sent, not SACKed, not deemed lost,
    /// plus retransmissions); without it, the flight less a segment per duplicate ACK
    /// and less the head segment while it waits to be resent.
    pub(crate) fn in_flight(&self, now: Instant, sack: bool) -> u32 {
        if sack {
            return self.pipe(now);
        }
        let head = if self.resend_head {
            self.cc.mss().min(self.flight())
        } else {
            0
        };
        self.flight().saturating_sub(self.reno_sacked + head)
    }

    /// Bytes in the holes below the highest SACKed byte that RACK deems lost.
    pub(crate) fn lost_bytes(&self, now: Instant) -> u32 {
        let mut lost = 0u32;
        self.walk_holes(now, |s, e, is_lost| {
            if is_lost {
                lost += (e - s) as u32;
            }
            true
        });
        lost
    }

    /// Bytes in the holes below the highest SACKed byte that are deemed lost now or were
    /// resent and are not yet delivered: Linux's `lost_out`, whose TCPCB_LOST mark stays
    /// on a segment through its retransmission until it is SACKed or acknowledged.
    pub(crate) fn lost_marked_bytes(&self, now: Instant) -> u32 {
        let mut lost = 0u32;
        self.walk_holes(now, |s, e, is_lost| {
            if is_lost || self.rack.retransmitted_in(s, e) {
                lost += (e - s) as u32;
            }
            true
        });
        lost
    }

    /// Bytes resent and not yet SACKed or acknowledged, in the holes below the highest
    /// SACKed byte or, with none SACKed, from SND.UNA on (Linux's `retrans_out`).
    pub(crate) fn retrans_out_bytes(&self, now: Instant) -> u32 {
        let mut out = 0u32;
        if self.sacked.highest().is_some() {
            self.walk_holes(now, |s, e, _| {
                if self.rack.retransmitted_in(s, e) {
                    out += (e - s) as u32;
                }
                true
            });
        } else {
            out = self.rack.retransmitted_bytes(self.una, self.max);
        }
        out
    }

    /// RFC 6937 proportional rate reduction, as Linux's `tcp_cwnd_reduction`: after an
    /// ACK that delivered `delivered` bytes during fast recovery, cwnd becomes what is
    /// in flight plus what PRR lets out: in proportion to what was delivered while pipe
    /// is above ssthresh, and (PRR-SSRB) as fast as slow start back towards ssthresh
    /// when it is below. At least one segment goes out when recovery begins.
    pub(crate) fn prr_on_ack(
        &mut self,
        now: Instant,
        sack: bool,
        delivered: u32,
        una_advanced: bool,
        newly_lost: bool,
    ) {
        if delivered == 0 || self.prior_cwnd == 0 {
            return;
        }
        let mss = self.cc.mss();
        self.prr_delivered = self.prr_delivered.saturating_add(delivered);
        let in_flight = self.in_flight(now, sack);
        let ssthresh = self.cc.ssthresh();
        let mut sndcnt: i64 = if in_flight > ssthresh {
            // RFC 6937: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let due = (u64::from(ssthresh) * u64::from(self.prr_delivered))
                .div_ceil(u64::from(self.prior_cwnd));
            due as i64 - i64::from(self.prr_out)
        } else {
            // PRR-SSRB: MAX(prr_delivered - prr_out, DeliveredData) (+ MSS when the ACK
            // advanced SND.UNA and found no new loss), at most ssthresh - pipe.
            let mut n =
                (i64::from(self.prr_delivered) - i64::from(self.prr_out)).max(i64::from(delivered));
            if una_advanced && !newly_lost {
                n += i64::from(mss);
            }
            n.min(i64::from(ssthresh - in_flight))
        };
        if self.prr_out == 0 {
            // Force the fast retransmit when recovery begins.
            sndcnt = sndcnt.max(i64::from(mss));
        }
        let cwnd = (i64::from(in_flight) + sndcnt.max(0)).clamp(0, i64::from(u32::MAX));
        self.cc.set_cwnd(cwnd as u32);
    }

    /// `len` bytes went out (new or again) while fast recovery (or CWR) runs.
    pub(crate) fn on_recovery_send(&mut self, len: u32) {
        if matches!(self.recovery, Recovery::Fast { .. } | Recovery::Cwr { .. }) {
            self.prr_out = self.prr_out.saturating_add(len);
        }
    }

    pub(crate) fn srtt(&self) -> Duration {
        self.rtt.srtt().unwrap_or(self.rtt.rto())
    }

    /// Walk the holes below the highest SACKed byte, segment by segment (as sent), and
    /// give each stretch with whether RACK deems it lost; stop when `visit` says so.
    fn walk_holes(&self, now: Instant, mut visit: impl FnMut(SeqNum, SeqNum, bool) -> bool) {
        let Some(highest) = self.sacked.highest() else {
            return;
        };
        let srtt = self.srtt();
        let mut at = self.una;
        while let Some((hs, he)) = self.sacked.next_hole(at, highest) {
            // One pass over the segments sent in this hole, in order.
            let mut p = hs;
            for (_, next, lost) in self.rack.segments_from(hs, srtt, now) {
                let end = next.map_or(he, |n| n.min(he));
                if end > p {
                    if !visit(p, end, lost) {
                        return;
                    }
                    p = end;
                }
                if p >= he {
                    break;
                }
            }
            if p < he && !visit(p, he, false) {
                return;
            }
            at = he;
        }
    }

    /// Remember what RACK deems lost now, so that a reordering window widened later
    /// (reordering seen) does not take it back before it is resent (as Linux's marks).
    pub(crate) fn mark_lost(&mut self, now: Instant) {
        let Some(highest) = self.sacked.highest() else {
            return;
        };
        let srtt = self.srtt();
        let mut at = self.una;
        while let Some((hs, he)) = self.sacked.next_hole(at, highest) {
            self.rack.mark_lost_between(hs, he, srtt, now);
            at = he;
        }
    }

    /// The first stretch of a hole that RACK deems lost.
    pub(crate) fn next_lost(&self, now: Instant) -> Option<(SeqNum, SeqNum)> {
        let mut found = None;
        self.walk_holes(now, |s, e, lost| {
            if lost {
                found = Some((s, e));
            }
            !lost
        });
        found
    }

    /// RFC 8985 6.3: when the first hole not yet deemed lost will be, if nothing else
    /// arrives (the RACK reordering timer).
    pub(crate) fn rack_deadline(&self, now: Instant) -> Option<Instant> {
        if matches!(self.recovery, Recovery::Timeout { .. }) {
            return None;
        }
        // The earliest over every stretch not yet lost: after a retransmission the
        // first such stretch is the resent one, sent after everything delivered, whose
        // own deadline is none, while later holes still have theirs.
        let srtt = self.srtt();
        let mut earliest: Option<Instant> = None;
        self.walk_holes(now, |s, _, lost| {
            if !lost {
                if let Some(d) = self.rack.deadline(s, srtt).filter(|d| *d > now) {
                    earliest = Some(earliest.map_or(d, |x| x.min(d)));
                }
            }
            true
        });
        // (Never a deadline already past: the caller would fire it again and again.) As
        // Linux 6.x, 2 ms after the deadline, in whole timer ticks.
        earliest.map(|d| self.rtt.reo_timer(now, d))
    }

    /// RFC 8985 7.2: arm the probe timeout, PTO = 2 SRTT (plus the worst delayed ACK when
    /// a single segment is out), while SACK is on, nothing is being recovered, data is in
    /// flight and no probe is outstanding.
    pub(crate) fn arm_tlp(&mut self, now: Instant, sack: bool, mss: u32) {
        // (Linux probes in its CWR state too.)
        let open = matches!(self.recovery, Recovery::Open | Recovery::Cwr { .. });
        if !sack || !open || self.una >= self.max || self.tlp_out {
            self.tlp = None;
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let mut pto = srtt * 2;
        if self.flight() <= mss {
            // RFC 8985 7.2: one segment out may wait for a delayed ACK.
            pto += Duration::from_millis(200);
        } else {
            // As Linux (TCP_TIMEOUT_MIN): never sooner than 2 ms, even on a path whose
            // RTT rounds to zero, where 2 * SRTT would probe every full window at once.
            pto += Duration::from_millis(2);
        }
        // RFC 8985 7.2 (as Linux): no later than the RTO would fire; the probe then
        // takes the timeout's place and the RTO is re-armed behind it.
        let rto_at = self
            .rtx
            .deadline
            .unwrap_or(now + self.rtt.backed_off(self.rtx.backoff));
        self.tlp = Some((now + pto).min(rto_at));
    }

    /// RFC 5681 3.2 / RFC 6675 5 / RFC 8985: start fast recovery when the first
    /// unacknowledged segment is lost: with SACK by RACK's time test, without it by three
    /// duplicate ACKs. Once per window (RFC 6582 4: not again until `una` passes `recover`).
    pub(crate) fn maybe_enter_recovery(
        &mut self,
        now: Instant,
        sack_on: bool,
        dupack_loss: bool,
    ) -> bool {
        let lost_head =
            sack_on && !self.sacked.is_empty() && self.rack.is_lost(self.una, self.srtt(), now);
        let cwr = matches!(self.recovery, Recovery::Cwr { .. });
        if !(self.recovery == Recovery::Open || cwr)
            || self.una >= self.max
            || !(dupack_loss || lost_head)
        {
            return false;
        }
        if cwr {
            // Already reducing for an ECE (Linux's tcp_enter_recovery in CWR): the window
            // is not cut twice, and PRR goes on from where it is.
            self.recovery = Recovery::Fast { recover: self.max };
            self.update_dupthresh();
            if !sack_on {
                self.resend_head = true;
            }
            return true;
        }
        let flight = (self.max - self.una).max(0) as u32;
        self.undo = Some(Box::new(Undo {
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            rtx_tsval: None,
            retransmits: 0,
            dsacks: 0,
            from: self.una,
            to: self.max,
        }));
        // RFC 6937: PRR paces what is sent from here on (cwnd set by prr_on_ack).
        self.prior_cwnd = self.cc.cwnd();
        self.prr_delivered = 0;
        self.prr_out = 0;
        self.cc.on_congestion(now, flight);
        self.recovery = Recovery::Fast { recover: self.max };
        self.update_dupthresh();
        if !sack_on {
            // RFC 6582 (Linux's tcp_newreno_mark_lost): the head is lost; resend it.
            // With SACK, RACK has marked what is lost and the hole loop resends it.
            self.resend_head = true;
        }
        true
    }

    /// RFC 3168 6.1.2: an ACK with ECE: reduce cwnd as for a loss (ssthresh from the
    /// controller, cwnd then by PRR, Linux's tcp_enter_cwr), resending nothing, once per
    /// window: only from Open, and CWR lasts until what is sent now is acknowledged.
    /// Returns whether the reduction began.
    pub(crate) fn enter_cwr(&mut self, now: Instant) -> bool {
        if self.recovery != Recovery::Open {
            return false;
        }
        let flight = (self.max - self.una).max(0) as u32;
        // An ECE reduction is never undone (Linux clears undo_marker).
        self.undo = None;
        self.prior_cwnd = self.cc.cwnd();
        self.prr_delivered = 0;
        self.prr_out = 0;
        self.cc.on_ecn_echo(now, flight);
        self.recovery = Recovery::Cwr { recover: self.max };
        true
    }

    /// RFC 6675 SetPipe(): bytes still in the network: sent, not SACKed, and not
    /// deemed lost, plus lost bytes already retransmitted.
    fn pipe_key(&self, now: Instant) -> PipeKey {
        let sacked = self.sacked.bytes();
        (
            now.as_millis(),
            self.una,
            self.max,
            sacked,
            self.rack.version,
        )
    }

    /// A lost stretch of `len` bytes was just resent: it is in the network again.
    pub(crate) fn pipe_after_retransmit(&self, now: Instant, before: u32, len: u32) {
        self.sacked.cache_pipe(self.pipe_key(now), before + len);
    }

    pub(crate) fn pipe(&self, now: Instant) -> u32 {
        if self.sacked.is_empty() {
            return self.flight();
        }
        let key = self.pipe_key(now);
        if let Some(v) = self.sacked.cached_pipe(key) {
            return v;
        }
        let outstanding = (self.max - self.una).max(0) as u32;
        let unsacked = outstanding.saturating_sub(self.sacked.bytes());
        // Lost stretches are not in the network (a retransmission puts them back, with
        // a fresh send time, so RACK no longer counts them lost).
        let mut lost = 0u32;
        self.walk_holes(now, |s, e, is_lost| {
            if is_lost {
                lost += (e - s) as u32;
            }
            true
        });
        let pipe = unsacked.saturating_sub(lost);
        self.sacked.cache_pipe(key, pipe);
        pipe
    }
}

/// The receive sequence space while the peer may still send data (until its FIN).
#[derive(Debug)]
pub(crate) struct Rcv {
    pub(crate) irs: SeqNum,
    /// Next sequence number expected.
    pub(crate) nxt: SeqNum,
    /// Right edge of the window we last advertised (never moves left: RFC 9293 3.8.6.2.2).
    pub(crate) adv: SeqNum,
    /// Segments beyond `nxt`.
    pub(crate) ooo: Reassembly,
    /// The peer's FIN, when it arrived ahead of data still missing.
    pub(crate) fin: Option<SeqNum>,
    /// The most recent out-of-order segment (its SACK block goes first: RFC 2018 4).
    pub(crate) last_ooo: Option<SeqNum>,
}

/// The receive side once the peer's FIN is in: only the numbers needed to ACK.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RcvFin {
    /// Sequence number after the peer's FIN.
    pub(crate) nxt: SeqNum,
    /// Right edge of the window we last advertised.
    pub(crate) adv: SeqNum,
}

/// The send side once our FIN is acknowledged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SndFin {
    /// Sequence number after our FIN.
    pub(crate) nxt: SeqNum,
}

/// CLOSED: nothing but the memory of why.
#[derive(Debug, Default)]
pub(crate) struct Closed;

/// SYN_SENT: our SYN is out (RFC 9293 3.10.7.3).
#[derive(Debug)]
pub(crate) struct SynSent {
    pub(crate) iss: SeqNum,
    pub(crate) rtx: Retransmit,
    pub(crate) rtt: RttEstimator,
    /// Window scale we offered (None: not offered).
    pub(crate) wscale_offer: Option<u8>,
    /// Whether we offered timestamps.
    pub(crate) ts_offer: bool,
    /// TCP Fast Open (RFC 7413), when this open uses it.
    pub(crate) fo: Option<SynFastOpen>,
}

/// An active open with TCP Fast Open (RFC 7413 3): what the first SYN carries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SynFastOpen {
    /// The option of the first SYN: the cached cookie, or a request (None: no option,
    /// data without a cookie: TFO_CLIENT_NO_COOKIE).
    pub(crate) option: Option<crate::wire::FastOpenCookie>,
    /// Most bytes the SYN may carry (Linux: the MSS less 40 bytes of option room).
    pub(crate) space: u32,
    /// Bytes of the send buffer the SYN carries.
    pub(crate) syn_data: u32,
    /// TCP_FASTOPEN_CONNECT: the SYN waits for the application's first write.
    pub(crate) deferred: bool,
    /// The SYN went again before its timer (an ICMP "packet too big" about it): the
    /// resent SYN is a plain one, as a timed-out one is.
    pub(crate) retried: bool,
}

/// SYN_RECEIVED: the peer's SYN is in, ours is out.
#[derive(Debug)]
pub(crate) struct SynRcvd {
    pub(crate) iss: SeqNum,
    pub(crate) irs: SeqNum,
    /// Came from a listener (a RST returns it to LISTEN: RFC 9293 3.10.7.4).
    pub(crate) passive: bool,
    pub(crate) rtx: Retransmit,
    pub(crate) rtt: RttEstimator,
    /// Where our advertised window ends.
    pub(crate) adv: SeqNum,
    /// TCP Fast Open (RFC 7413 4.2.2): bytes the SYN carried that we accepted (they
    /// are in the receive buffer already), and bytes we have sent after our SYN-ACK.
    pub(crate) syn_data: u32,
    pub(crate) data_sent: u32,
    /// When that data last went out (what RACK judges its loss from once established).
    pub(crate) data_sent_at: Option<Instant>,
    /// The Fast Open option our SYN-ACK carries (a fresh cookie for the client).
    pub(crate) fo_reply: Option<crate::wire::FastOpenCookie>,
}

/// ESTABLISHED.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) snd: Snd,
    pub(crate) rcv: Rcv,
}

/// FIN_WAIT_1: our FIN is queued or sent, not yet acknowledged.
#[derive(Debug)]
pub(crate) struct FinWait1 {
    pub(crate) snd: Snd,
    pub(crate) rcv: Rcv,
}

/// FIN_WAIT_2: our FIN is acknowledged; the peer may still send.
#[derive(Debug)]
pub(crate) struct FinWait2 {
    pub(crate) snd: SndFin,
    pub(crate) rcv: Rcv,
    /// When an orphaned connection gives up waiting (tcp_fin_timeout).
    pub(crate) timeout: Option<Instant>,
}

/// CLOSE_WAIT: the peer's FIN is in; waiting for our application to close.
#[derive(Debug)]
pub(crate) struct CloseWait {
    pub(crate) snd: Snd,
    pub(crate) rcv: RcvFin,
}

/// CLOSING: both FINs crossed; waiting for the ACK of ours.
#[derive(Debug)]
pub(crate) struct Closing {
    pub(crate) snd: Snd,
    pub(crate) rcv: RcvFin,
}

/// LAST_ACK: we sent our FIN after the peer's; waiting for its ACK.
#[derive(Debug)]
pub(crate) struct LastAck {
    pub(crate) snd: Snd,
    pub(crate) rcv: RcvFin,
}

/// A connection's state, with exactly the data that state needs.
#[derive(Debug)]
pub(crate) enum State {
    Closed(Closed),
    SynSent(SynSent),
    SynRcvd(SynRcvd),
    Established(Established),
    FinWait1(FinWait1),
    FinWait2(FinWait2),
    CloseWait(CloseWait),
    Closing(Closing),
    LastAck(LastAck),
    TimeWait(TimeWait),
}

impl State {
    /// The state's name.
    pub(crate) fn name(&self) -> TcpState {
        match self {
            State::Closed(_) => TcpState::Closed,
            State::SynSent(_) => TcpState::SynSent,
            State::SynRcvd(_) => TcpState::SynReceived,
            State::Established(_) => TcpState::Established,
            State::FinWait1(_) => TcpState::FinWait1,
            State::FinWait2(_) => TcpState::FinWait2,
            State::CloseWait(_) => TcpState::CloseWait,
            State::Closing(_) => TcpState::Closing,
            State::LastAck(_) => TcpState::LastAck,
            State::TimeWait(_) => TcpState::TimeWait,
        }
    }

    /// The send sequence space, in the states that still send.
    pub(crate) fn snd(&self) -> Option<&Snd> {
        match self {
            State::Established(s) => Some(&s.snd),
            State::FinWait1(s) => Some(&s.snd),
            State::CloseWait(s) => Some(&s.snd),
            State::Closing(s) => Some(&s.snd),
            State::LastAck(s) => Some(&s.snd),
            _ => None,
        }
    }

    /// Mutable [`State::snd`].
    pub(crate) fn snd_mut(&mut self) -> Option<&mut Snd> {
        match self {
            State::Established(s) => Some(&mut s.snd),
            State::FinWait1(s) => Some(&mut s.snd),
            State::CloseWait(s) => Some(&mut s.snd),
            State::Closing(s) => Some(&mut s.snd),
            State::LastAck(s) => Some(&mut s.snd),
            _ => None,
        }
    }

    /// The receive sequence space, in the states where the peer may still send data.
    pub(crate) fn rcv_mut(&mut self) -> Option<&mut Rcv> {
        match self {
            State::Established(s) => Some(&mut s.rcv),
            State::FinWait1(s) => Some(&mut s.rcv),
            State::FinWait2(s) => Some(&mut s.rcv),
            _ => None,
        }
    }

    /// The receive sequence space, shared view.
    pub(crate) fn rcv(&self) -> Option<&Rcv> {
        match self {
            State::Established(s) => Some(&s.rcv),
            State::FinWait1(s) => Some(&s.rcv),
            State::FinWait2(s) => Some(&s.rcv),
            _ => None,
        }
    }

    /// RCV.NXT and the right edge of our advertised window, in synchronized states.
    pub(crate) fn rcv_window(&self) -> Option<(SeqNum, SeqNum)> {
        match self {
            State::Established(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::FinWait1(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::FinWait2(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::CloseWait(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::Closing(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::LastAck(s) => Some((s.rcv.nxt, s.rcv.adv)),
            State::TimeWait(t) => Some((t.rcv_nxt, t.rcv_nxt + t.rcv_wnd as u32)),
            State::SynRcvd(s) => Some((s.irs + 1 + s.syn_data, s.adv)),
            _ => None,
        }
    }

    /// The sequence number an ACK (or RST) carries: the highest sequence number sent,
    /// even while a retransmission rewinds SND.NXT (Linux's tcp_acceptable_seq), so the
    /// peer never finds it below its RCV.NXT.
    pub(crate) fn snd_nxt(&self) -> Option<SeqNum> {
        match self {
            State::SynSent(s) => Some(s.iss + 1),
            State::SynRcvd(s) => Some(s.iss + 1 + s.data_sent),
            State::FinWait2(s) => Some(s.snd.nxt),
            State::TimeWait(t) => Some(t.snd_nxt),
            other => other.snd().map(|s| s.max),
        }
    }
}

impl Established {
    /// RFC 9293 3.10.7.4 eighth: the peer's FIN moves ESTABLISHED to CLOSE_WAIT.
    pub(crate) fn on_fin(self) -> CloseWait {
        CloseWait {
            snd: self.snd,
            rcv: RcvFin {
                nxt: self.rcv.nxt,
                adv: self.rcv.adv,
            },
        }
    }

    /// RFC 9293 3.10.4: CLOSE (or shutdown) in ESTABLISHED queues a FIN, enters FIN_WAIT_1.
    pub(crate) fn close(mut self) -> FinWait1 {
        self.snd.fin_queued = true;
        FinWait1 {
            snd: self.snd,
            rcv: self.rcv,
        }
    }
}

impl FinWait1 {
    /// RFC 9293 3.10.7.4 fifth: our FIN acknowledged, FIN_WAIT_1 becomes FIN_WAIT_2.
    pub(crate) fn on_fin_acked(self, timeout: Option<Instant>) -> FinWait2 {
        FinWait2 {
            snd: SndFin {
                nxt: self.snd.nxt.max(self.snd.una),
            },
            rcv: self.rcv,
            timeout,
        }
    }

    /// RFC 9293 3.10.7.4 eighth: the peer's FIN before the ACK of ours: CLOSING.
    pub(crate) fn on_fin(self) -> Closing {
        Closing {
            snd: self.snd,
            rcv: RcvFin {
                nxt: self.rcv.nxt,
                adv: self.rcv.adv,
            },
        }
    }
}

impl FinWait2 {
    /// RFC 9293 3.10.7.4 eighth: the peer's FIN in FIN_WAIT_2 starts TIME_WAIT.
    pub(crate) fn on_fin(self, tw: TimeWaitParams) -> TimeWait {
        tw.build(self.snd.nxt, self.rcv.nxt)
    }
}

impl CloseWait {
    /// RFC 9293 3.10.4: CLOSE in CLOSE_WAIT queues our FIN, enters LAST_ACK.
    pub(crate) fn close(mut self) -> LastAck {
        self.snd.fin_queued = true;
        LastAck {
            snd: self.snd,
            rcv: self.rcv,
        }
    }
}

impl Closing {
    /// RFC 9293 3.10.7.4 fifth: the ACK of our FIN in CLOSING starts TIME_WAIT.
    pub(crate) fn on_fin_acked(self, tw: TimeWaitParams) -> TimeWait {
        tw.build(self.snd.max.max(self.snd.una), self.rcv.nxt)
    }
}

/// What a connection hands over when it enters TIME_WAIT.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeWaitParams {
    pub(crate) now: Instant,
    pub(crate) duration: Duration,
    /// The window (raw, as sent on the wire) to advertise in re-ACKs.
    pub(crate) rcv_wnd: u16,
    /// (TS.Recent, our timestamp offset), when timestamps are on.
    pub(crate) ts: Option<(u32, u32)>,
}

impl TimeWaitParams {
    fn build(self, snd_nxt: SeqNum, rcv_nxt: SeqNum) -> TimeWait {
        TimeWait {
            snd_nxt,
            rcv_nxt,
            rcv_wnd: self.rcv_wnd,
            ts_recent: self.ts.map(|t| t.0),
            ts_offset: self.ts.map(|t| t.1).unwrap_or(0),
            expiry: self.now + self.duration,
        }
    }
}
