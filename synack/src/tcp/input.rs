//! Arriving segments: RFC 9293 3.10.7 "SEGMENT ARRIVES", state by state, with the
//! RFC 5961 defences against blind resets and SYNs, and RFC 7323 PAWS.

use super::conn::{ConnEvent, Connection, MemoryLevel, RstOut};
use super::state::*;
use super::time_wait::TimeWaitVerdict;
use crate::config::Config;
use crate::error::Error;
use crate::wire::{SeqNum, TcpRepr};
use crate::Instant;
use core::time::Duration;

/// Receive memory a connection may always hold, over tcp_mem's hard limit too (Linux's
/// `tcp_rmem[0]`).
const RMEM_MIN: usize = 4096;

/// Linux's tcp_invalid_ratelimit: at most one ACK per this interval answers unacceptable
/// zero-length segments.
const OOW_ACK_INTERVAL: core::time::Duration = core::time::Duration::from_millis(500);

/// Linux's __tcp_oow_rate_limited: true when an answer went out less than 500 ms ago;
/// otherwise records `now` as the time of this one.
fn oow_rate_limited(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|t| now < t + OOW_ACK_INTERVAL) {
        return true;
    }
    *last = Some(now);
    false
}

/// What the stack must do after a connection has seen a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Handled.
    Done,
    /// Handled and dropped as unacceptable (counted).
    Dropped(&'static str),
    /// A SYN that ends TIME_WAIT: give it to a listener with this ISN.
    Reopen(SeqNum),
}

/// RFC 9293 3.10.7.4 first: the four cases of the segment acceptability test.
pub(crate) fn acceptable(seq: SeqNum, len: u32, rcv_nxt: SeqNum, rcv_wnd: u32) -> bool {
    let in_window = |s: SeqNum| rcv_nxt <= s && s < rcv_nxt + rcv_wnd;
    match (len, rcv_wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, _) => in_window(seq),
        (_, 0) => false,
        (_, _) => in_window(seq) || in_window(seq + (len - 1)),
    }
}

impl Connection {
    /// Process one arriving segment addressed to this connection.
    pub(crate) fn on_segment(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        cfg: &Config,
    ) -> Disposition {
        self.stats.segs_in = self.stats.segs_in.wrapping_add(1);
        self.keepalive_heard(now);
        // Linux's tcp_data_snd_check: an arriving segment pushes without MSG_MORE's cork.
        self.push_pending(false);
        match self.state {
            State::Closed(_) => Disposition::Dropped("closed"),
            State::SynSent(_) => self.on_segment_syn_sent(now, seg, cfg),
            State::SynRcvd(_) => self.on_segment_syn_rcvd(now, seg, cfg),
            State::TimeWait(ref mut tw) => {
                match tw.on_segment(now, seg, cfg.time_wait, cfg.tcp_rfc1337) {
                    TimeWaitVerdict::Drop => Disposition::Done,
                    TimeWaitVerdict::Ack => {
                        self.ack_now = true;
                        Disposition::Done
                    }
                    TimeWaitVerdict::Reopen(isn) => {
                        self.terminate(now, "new SYN reopens the 4-tuple", None);
                        Disposition::Reopen(isn)
                    }
                    TimeWaitVerdict::Kill => {
                        self.terminate(now, "rcv RST in TIME_WAIT (tcp_rfc1337 off)", None);
                        Disposition::Done
                    }
                }
            }
            _ => {
                let nospace = self.want_writable;
                let d = self.on_segment_synchronized(now, seg, cfg);
                self.expand_sndbuf(now, cfg, nospace);
                d
            }
        }
    }

    /// RFC 9293 3.10.7.3: SYN_SENT.
    fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        cfg: &Config,
    ) -> Disposition {
        let State::SynSent(ref s) = self.state else {
            return Disposition::Done;
        };
        let iss = s.iss;
        let fo = s.fo;
        let syn_data = fo.map_or(0, |f| f.syn_data);
        let syn_retransmitted = s.rtx.backoff > 0;
        let flags = seg.flags;
        // First: an ACK must acknowledge our SYN (and at most the data it carried,
        // RFC 7413 3), else <SEQ=SEG.ACK><CTL=RST>.
        let bad_ack = flags.ack() && (seg.ack <= iss || seg.ack > iss + 1 + syn_data);
        // An ACK whose TSecr echoes no timestamp of ours (from before our first SYN, or
        // from the future) is refused the same way (Linux's tcp_rcv_synsent_state_process,
        // PAWSACTIVEREJECTED); the connection stays in SYN_SENT.
        let tsecr = seg.options.timestamps.map_or(0, |t| t.tsecr);
        let paws_rejected = flags.ack() && s.ts_offer && tsecr != 0 && {
            let (first, latest) = (self.tsval(self.state_since), self.tsval(now));
            (tsecr.wrapping_sub(first) as i32) < 0 || (latest.wrapping_sub(tsecr) as i32) < 0
        };
        let refused = if bad_ack {
            Some("bad_ack")
        } else if paws_rejected {
            Some("paws_active_rejected")
        } else {
            None
        };
        if let Some(why) = refused {
            if !flags.rst() {
                self.events.push(ConnEvent::Reset(RstOut {
                    seq: seg.ack,
                    ack: None,
                    timestamps: None,
                }));
            }
            return Disposition::Dropped(why);
        }
        // Second: a RST counts only when its ACK acknowledges our SYN.
        if flags.rst() {
            if flags.ack() {
                self.terminate(now, "rcv RST", Some(Error::ConnectionRefused));
                return Disposition::Done;
            }
            return Disposition::Dropped("rst_without_ack");
        }
        // Fourth: neither SYN nor RST: drop.
        if !flags.syn() {
            return Disposition::Dropped("no_syn");
        }
        let (wscale_offer, ts_offer) = (s.wscale_offer, s.ts_offer);
        self.negotiate(seg, wscale_offer, ts_offer);
        self.ecn_on_syn_sent_reply(seg);
        let irs = seg.seq;
        let adv = irs + 1 + self.initial_window() as u32;
        if flags.ack() {
            // Our SYN is acknowledged: ESTABLISHED; ACK their SYN.
            let wnd = seg.window as u32; // RFC 7323 2.2: the window of a SYN is never scaled
            self.transition(now, "rcv SYN,ACK", |st| match st {
                State::SynSent(mut s) => {
                    s.rtt.on_ack(now, seg.ack);
                    let snd = new_snd(s.iss, s.rtt, seg, wnd);
                    State::Established(Established {
                        snd,
                        rcv: Connection::new_rcv(irs, adv),
                    })
                }
                st => st,
            });
            self.finish_snd_setup();
            if let Some(fo) = fo {
                self.fastopen_synack(now, seg, fo, syn_retransmitted);
            }
            self.last_ack_sent = irs + 1;
            // SYN data not acknowledged is resent at once, and carries the ACK.
            let resending = self
                .state
                .snd()
                .is_some_and(|s| s.nxt == s.una && s.una < s.max);
            if resending {
                // Linux's tcp_rcv_fastopen_synack resends and returns before looking
                // for a waiting writer.
                self.set_write_pending(false);
            }
            if self.write_pending() {
                // Linux: tcp_rcv_synsent_state_process saves the ACK for the waiting
                // writer's data: quick-ACK mode, the ACK timer at TCP_DELACK_MAX.
                self.pingpong = false;
                self.quick_acks = self.quick_acks.max(self.max_quick_acks);
                self.delack = Some(now + Duration::from_millis(200));
            } else {
                self.ack_now = true;
            }
            self.events.push(ConnEvent::Connected);
            if self.shut_wr {
                self.shut_wr = false;
                let _ = self.shutdown(now);
            }
            if !seg.payload.is_empty() || flags.fin() {
                // Data (or FIN) on the SYN-ACK: continue as in a synchronized state.
                let rest = TcpRepr {
                    seq: seg.seq + 1,
                    flags: flags_without_syn(seg),
                    ..seg.clone()
                };
                return self.on_segment_synchronized(now, &rest, cfg);
            }
        } else {
            // RFC 9293 3.10.7.3: SYN without ACK: simultaneous open, SYN_RECEIVED, send SYN,ACK.
            self.transition(now, "rcv SYN (simultaneous open)", |st| match st {
                State::SynSent(s) => State::SynRcvd(SynRcvd {
                    iss: s.iss,
                    irs,
                    passive: false,
                    rtx: Retransmit::default(),
                    rtt: s.rtt,
                    adv,
                    syn_data: 0,
                    // Data our SYN carried (Fast Open) stays sent: SND.NXT is past it,
                    // and the SYN-ACK we answer with carries none (Linux's
                    // tcp_send_synack resends the SYN alone).
                    data_sent: s.fo.map_or(0, |f| f.syn_data),
                    data_sent_at: None,
                    fo_reply: None,
                }),
                st => st,
            });
            self.syn_due = true;
        }
        Disposition::Done
    }

    /// TCP Fast Open, client side, when the SYN-ACK arrives (Linux's
    /// tcp_rcv_fastopen_synack): remember the server's MSS and cookie for next time
    /// (the stack keeps them), count the SYN's data that was acknowledged, and resend at
    /// once what was not (RFC 7413 3: a server without Fast Open acknowledges only
    /// the SYN), without a congestion response.
    fn fastopen_synack(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        fo: SynFastOpen,
        syn_retransmitted: bool,
    ) {
        let syn_data = fo.syn_data;
        let cookie = seg.options.fast_open;
        let requested = fo.option.is_some();
        let (syn_lost, try_exp) = if !requested && syn_data == 0 {
            (false, 0)
        } else if syn_retransmitted {
            // The SYN timed out and the SYN-ACK neither has a cookie nor acknowledges the
            // data: the server saw only a retransmitted (plain) SYN.
            (cookie.is_none() && syn_data > 0, 0)
        } else if cookie.is_none() && syn_data == 0 {
            // A request not answered: try the other form of the option next time.
            let exp = fo.option.is_some_and(|o| o.experimental);
            (false, if exp { 2 } else { 1 })
        } else {
            (false, 0)
        };
        // An unsolicited cookie is ignored: one our SYN did not ask for with an option
        // (as a SYN with data in no-cookie mode; Linux's tcp_rcv_fastopen_synack checks
        // syn_fastopen, which only the option sets).
        let cookie = cookie.filter(|_| requested);
        self.events.push(ConnEvent::FastOpenCache {
            mss: seg.options.mss.unwrap_or(0),
            cookie,
            syn_lost,
            try_exp,
        });
        let Some(snd) = self.state.snd_mut() else {
            return;
        };
        let end = snd.una + syn_data;
        snd.nxt = end;
        snd.max = end;
        snd.cwnd_usage_seq = end;
        self.ack_handshake_data(seg.ack);
        if let Some(snd) = self.state.snd_mut() {
            if snd.una < snd.max {
                // Not (all) acknowledged: resend from SND.UNA now. RACK knows the data
                // from here on (the resend is its latest transmission), so a later
                // segment SACKed before it proves it lost (Linux's tcp_mark_skb_lost
                // and retransmit of the SYN data).
                snd.rack.on_send(snd.una, now);
                snd.nxt = snd.una;
            } else if syn_data > 0 {
                self.tfo |= super::conn::TFO_SYN_DATA_ACKED;
                self.rare.get_or_insert_default().syn_data_acked = syn_data;
            }
        }
    }

    /// Data sent with or after our SYN (Fast Open), acknowledged by the segment that
    /// completes the handshake: `[SND.UNA, min(ack, SND.MAX))` leaves the send buffer.
    fn ack_handshake_data(&mut self, ack: SeqNum) {
        let Some(snd) = self.state.snd_mut() else {
            return;
        };
        let acked = (ack - snd.una).clamp(0, (snd.max - snd.una).max(0)) as u32;
        if acked > 0 {
            snd.una += acked;
            snd.sml = snd.una;
            snd.last_seg = snd.una;
            self.snd_buf.ack(acked as usize);
            self.stats.bytes_sent += u64::from(acked);
        }
    }

    /// The ACK that completes a Fast Open child's handshake acknowledges `[SND.UNA,
    /// SEG.ACK)` of the data it sent in SYN_RECEIVED.
    fn ack_fastopen_child_data(&mut self, seg: &TcpRepr<'_>) {
        self.ack_handshake_data(seg.ack);
        if let Some(snd) = self.state.snd_mut() {
            if snd.una < snd.max {
                snd.start_rtx_timer(self.last_now);
            }
        }
    }

    /// The send side's MSS/cwnd follow the negotiated MSS once it is known.
    fn finish_snd_setup(&mut self) {
        let mss = self.neg.snd_mss as u32;
        let shut_wr = self.shut_wr;
        let cc = self.cc_choice().controller(mss);
        if let Some(snd) = self.state.snd_mut() {
            // RFC 6928: the initial window is set by the controller.
            snd.cc = cc;
            snd.fin_queued = shut_wr;
        }
    }

    /// RFC 9293 3.10.7.4 for SYN_RECEIVED.
    fn on_segment_syn_rcvd(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        cfg: &Config,
    ) -> Disposition {
        let State::SynRcvd(ref s) = self.state else {
            return Disposition::Done;
        };
        let (iss, irs, passive, adv) = (s.iss, s.irs, s.passive, s.adv);
        let (syn_data, data_sent) = (s.syn_data, s.data_sent);
        let flags = seg.flags;
        // RFC 7413 4.2.2: a Fast Open child already took the SYN's data.
        let rcv_nxt = irs + 1 + syn_data;
        // The peer's SYN again: our SYN-ACK was lost. Resend it, never RST (Linux tcp_check_req).
        if flags.syn() && !flags.ack() && !flags.rst() && seg.seq == irs {
            self.syn_due = true;
            return Disposition::Done;
        }
        // RFC 9293 Figure 8 step 6 (as Linux's tcp_validate_incoming): in a simultaneous
        // open the peer's SYN,ACK acknowledges our SYN and completes the open; it is neither
        // out of the window nor a SYN to challenge.
        let crossing_synack = !passive
            && flags.syn()
            && flags.ack()
            && !flags.rst()
            && seg.seq + 1 == rcv_nxt
            && seg.ack == iss + 1 + data_sent
            && seg.payload.is_empty();
        if !crossing_synack
            && !acceptable(
                seg.seq,
                seg.seg_len(),
                rcv_nxt,
                (adv - rcv_nxt).max(0) as u32,
            )
        {
            if !flags.rst() {
                return self.answer_unacceptable(now, seg.seg_len());
            }
            return Disposition::Dropped("not_acceptable");
        }
        if flags.rst() {
            if seg.seq != rcv_nxt {
                return self.challenge_ack(now);
            }
            // RFC 9293 3.10.7.4: passive opens return to LISTEN (the listener stays; this
            // embryonic connection goes); active opens are refused.
            // A Fast Open child is the application's already: reset (Linux's tcp_reset).
            let err = if self.tfo & super::conn::TFO_CHILD != 0 {
                Some(Error::ConnectionReset)
            } else {
                (!passive).then_some(Error::ConnectionRefused)
            };
            self.terminate(now, "rcv RST", err);
            return Disposition::Done;
        }
        if flags.syn() && !crossing_synack {
            // RFC 5961 4.2: a SYN in the window gets a challenge ACK.
            return self.challenge_ack(now);
        }
        if !flags.ack() {
            return Disposition::Dropped("no_ack");
        }
        if !(iss < seg.ack && seg.ack <= iss + 1 + data_sent) {
            // RFC 9293 3.10.7.4: an unacceptable ACK in SYN_RECEIVED: <SEQ=SEG.ACK><CTL=RST>.
            self.events.push(ConnEvent::Reset(RstOut {
                seq: seg.ack,
                ack: None,
                timestamps: None,
            }));
            return Disposition::Dropped("bad_ack");
        }
        // RFC 7323 3.2 says SHOULD drop segments without timestamps once negotiated;
        // Linux accepts them, and so do we: a bare ACK must not strand SYN_RECEIVED.
        if let Some(ts) = seg.options.timestamps.filter(|_| self.neg.timestamps) {
            self.ts_recent = ts.tsval;
        }
        let wnd = (seg.window as u32) << self.neg.snd_wscale;
        self.syn_due = false;
        // RFC 9293 3.10.4: a CLOSE in SYN_RECEIVED was queued until our SYN is
        // acknowledged; now the FIN goes out and the state is FIN_WAIT_1.
        let closing = self.shut_wr;
        let cause = if closing {
            "rcv ACK of SYN, close() pending"
        } else {
            "rcv ACK of SYN"
        };
        let mss = (self.payload_mss() as u32).max(1);
        self.transition(now, cause, |st| match st {
            State::SynRcvd(mut s) => {
                s.rtt.on_ack(now, seg.ack);
                let mut snd = new_snd(s.iss, s.rtt, seg, wnd);
                // A Fast Open child's data sent before this ACK (RFC 7413 4.2.2), whose
                // loss RACK judges from when it went (RFC 8985).
                if let Some(at) = s.data_sent_at {
                    let mut sent = 0;
                    while sent < s.data_sent {
                        snd.rack.on_send(snd.nxt + sent, at);
                        sent += mss;
                    }
                }
                snd.nxt += s.data_sent;
                snd.max = snd.nxt;
                snd.cwnd_usage_seq = snd.nxt;
                let mut rcv = Connection::new_rcv(s.irs, s.adv);
                rcv.nxt += s.syn_data;
                let est = Established { snd, rcv };
                if closing {
                    State::FinWait1(est.close())
                } else {
                    State::Established(est)
                }
            }
            st => st,
        });
        self.finish_snd_setup();
        if data_sent > 0 {
            // The ACK may cover data the Fast Open child sent: as any ACK of data.
            self.ack_fastopen_child_data(seg);
        }
        self.last_ack_sent = rcv_nxt;
        if crossing_synack {
            // The peer's SYN,ACK repeats its SYN, already acknowledged: answer at once, as
            // any duplicate segment is (RFC 9293 3.10.7.4; Linux's tcp_data_queue), with a
            // D-SACK for the SYN when SACK is on (RFC 2883).
            self.ack_now = true;
            if self.neg.sack {
                self.pending_dsack = Some((irs, irs + 1));
            }
        }
        if self.tfo & super::conn::TFO_CHILD == 0 {
            self.events.push(if passive {
                ConnEvent::Established
            } else {
                ConnEvent::Connected
            });
        }
        // The ACK may carry data or FIN, or SACK blocks for a Fast Open child's data
        // (Linux's tcp_ack runs on it, and may start recovery at once): process the
        // rest as a synchronized state does.
        let sacks_child_data = data_sent > 0 && !seg.options.sack_blocks.is_empty();
        if !seg.payload.is_empty() || flags.fin() || sacks_child_data {
            self.stats.segs_in -= 1;
            return self.on_segment_synchronized(now, seg, cfg);
        }
        Disposition::Done
    }

    /// RFC 9293 3.10.7.4 first: an unacceptable segment is answered with an ACK. Like
    /// Linux (tcp_oow_rate_limited), answers to zero-length segments are limited to one
    /// per 500 ms, so two stacks that disagree cannot ping-pong ACKs forever.
    fn answer_unacceptable(&mut self, now: Instant, seg_len: u32) -> Disposition {
        if seg_len == 0
            && oow_rate_limited(&mut self.rare.get_or_insert_default().last_oow_ack, now)
        {
            return Disposition::Dropped("not_acceptable_rate_limited");
        }
        self.ack_now = true;
        Disposition::Dropped("not_acceptable")
    }

    /// RFC 5961 3.2 / 4.2: answer with `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`, at most
    /// one per 500 ms per connection (RFC 5961 7's throttling, done per connection as
    /// Linux's tcp_send_challenge_ack does since CVE-2016-5696: a global counter would let
    /// an off-path attacker learn, from the answers it steals, whether its guess hit).
    fn challenge_ack(&mut self, now: Instant) -> Disposition {
        if oow_rate_limited(&mut self.rare.get_or_insert_default().last_oow_ack, now) {
            return Disposition::Dropped("challenge_ack_rate_limited");
        }
        self.ack_now = true;
        self.stats.challenge_acks = self.stats.challenge_acks.wrapping_add(1);
        Disposition::Dropped("challenge_ack")
    }

    /// RFC 9293 3.10.7.4: the synchronized states.
    pub(crate) fn on_segment_synchronized(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        cfg: &Config,
    ) -> Disposition {
        let Some((rcv_nxt, adv)) = self.state.rcv_window() else {
            return Disposition::Done;
        };
        let flags = seg.flags;
        let seg_len = seg.seg_len();
        let seg_ts = seg.options.timestamps.filter(|_| self.neg.timestamps);
        // RFC 7323 5.3: PAWS: a TSval older than TS.Recent marks an old duplicate.
        if let Some(ts) = seg_ts {
            if !flags.rst() && (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                self.ack_now = true;
                return Disposition::Dropped("paws");
            }
        }
        // RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence number, gets
        // a challenge ACK and is dropped (RFC 9293 3.10.7.4 fourth, moved first).
        if flags.syn() && !flags.rst() {
            return self.challenge_ack(now);
        }
        // First: sequence number acceptability.
        let rcv_wnd = (adv - rcv_nxt).max(0) as u32;
        let bare_fin_at_edge =
            rcv_wnd == 0 && seg.seq == rcv_nxt && seg.payload.is_empty() && flags.fin();
        if !acceptable(seg.seq, seg_len, rcv_nxt, rcv_wnd) && !bare_fin_at_edge {
            if !flags.rst() {
                // RFC 2883: data we already have is reported back as a D-SACK block.
                if self.neg.sack
                    && !seg.payload.is_empty()
                    && seg.seq + seg.payload.len() as u32 <= rcv_nxt
                {
                    self.pending_dsack = Some((seg.seq, seg.seq + seg.payload.len() as u32));
                }
                return self.answer_unacceptable(now, seg_len);
            }
            return Disposition::Dropped("not_acceptable");
        }
        // RFC 7323 4.3: remember the TSval of the segment that fills RCV.NXT, unless the
        // ACK check below drops it for acknowledging data never sent (RFC 7323 Appendix D;
        // Linux's tcp_ack updates it only past that check).
        let acks_unsent = flags.ack() && self.state.snd().is_some_and(|s| seg.ack > s.max);
        if let (Some(ts), false) = (seg_ts, acks_unsent) {
            if seg.seq <= self.last_ack_sent {
                self.ts_recent = ts.tsval;
            }
        }
        // Second: RST. RFC 5961 3.2: only an exact RCV.NXT match resets; else challenge ACK.
        if flags.rst() {
            if seg.seq != rcv_nxt {
                return self.challenge_ack(now);
            }
            let err = match self.state {
                State::Closing(_) | State::LastAck(_) | State::TimeWait(_) => None,
                _ => Some(Error::ConnectionReset),
            };
            let err = if self.orphaned { None } else { err };
            self.terminate(now, "rcv RST", err);
            return Disposition::Done;
        }
        // Fifth: ACK.
        if !flags.ack() {
            return Disposition::Dropped("no_ack");
        }
        if self.state.snd().is_some() {
            match self.process_ack(now, seg) {
                AckOutcome::Drop(reason) => return Disposition::Dropped(reason),
                AckOutcome::FinAcked => {
                    if self.on_fin_acked(now, cfg) {
                        return Disposition::Done;
                    }
                }
                AckOutcome::Continue => {}
            }
            if self.has_urgent() {
                self.urgent_acked();
            }
        }
        // Seventh: segment text (only while the peer may still send).
        let mut fin_in = false;
        if self.state.rcv().is_some() {
            // Linux's tcp_rcv_state_process: with the reading half shut down, new data in
            // FIN_WAIT_1/FIN_WAIT_2 is answered the same way (TCPAbortOnData).
            let reading_shut =
                self.rcv_shutdown && matches!(self.state, State::FinWait1(_) | State::FinWait2(_));
            if (self.orphaned || reading_shut)
                && !seg.payload.is_empty()
                && seg.seq + seg.payload.len() as u32 > rcv_nxt
            {
                // RFC 9293 3.10.7.4 / RFC 1122 4.2.2.13: new data after close() gets a RST.
                self.events.push(ConnEvent::Reset(RstOut {
                    seq: seg.ack,
                    ack: None,
                    timestamps: None,
                }));
                if self.orphaned {
                    self.terminate(now, "data after close()", None);
                } else {
                    // The application still holds the socket: its next call sees the reset.
                    self.terminate(
                        now,
                        "data after shutdown(SHUT_RD)",
                        Some(Error::ConnectionReset),
                    );
                }
                return Disposition::Done;
            }
            // Sixth: the URG bit (Linux's tcp_urg, before the text is queued).
            let urgent = flags.urg() || self.has_urgent();
            if urgent {
                self.on_urgent(seg);
            }
            fin_in = self.process_text(now, seg);
            if urgent {
                self.urgent_delivered();
            }
        } else if seg_len > 0 {
            // CLOSE_WAIT, CLOSING, LAST_ACK: the peer already sent FIN; ignore text, ACK.
            self.ack_now = true;
        }
        // Eighth: FIN.
        if fin_in {
            self.on_fin(now, cfg);
        }
        Disposition::Done
    }

    /// RFC 9293 3.10.7.4 fifth: the ACK field, for states with a send sequence space.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr<'_>) -> AckOutcome {
        let buf_len = self.snd_buf.len() as u32;
        let mss = self.neg.snd_mss as u32;
        let sack_on = self.neg.sack;
        let seg_tsecr = seg
            .options
            .timestamps
            .filter(|_| self.neg.timestamps)
            .map(|t| t.tsecr);
        let seg_wnd = (seg.window as u32) << self.neg.snd_wscale;
        // RFC 7323 4: an RTT sample from the echoed timestamp (millisecond clock).
        let ts_rtt = seg_tsecr.filter(|ecr| *ecr != 0).map(|ecr| {
            let ms = self.tsval(now).wrapping_sub(ecr);
            Duration::from_millis(u64::from(ms.min(60_000)))
        });
        // RFC 3168 6.1.2: an ECE on an ECN connection (never on a SYN).
        let ece = self.ecn.ok() && seg.flags.ece() && !seg.flags.syn();
        let Some(snd) = self.state.snd_mut() else {
            return AckOutcome::Continue;
        };
        if seg.ack > snd.max {
            // Acknowledges something not yet sent: ACK and drop.
            self.ack_now = true;
            return AckOutcome::Drop("ack_unsent");
        }
        // RFC 5961 5.2: too old an ACK value is answered with a (challenge) ACK and dropped.
        if seg.ack < snd.una - snd.max_wnd.max(1) {
            // The same per-connection throttle as the other challenge ACKs.
            if oow_rate_limited(&mut self.rare.get_or_insert_default().last_oow_ack, now) {
                return AckOutcome::Drop("challenge_ack_rate_limited");
            }
            self.ack_now = true;
            self.stats.challenge_acks = self.stats.challenge_acks.wrapping_add(1);
            return AckOutcome::Drop("ack_too_old");
        }
        let data_end = snd.una + buf_len;
        let mut fin_acked = false;
        // Linux reacts to an ECE only with data in flight (tcp_ack's prior_packets).
        let ece = ece && snd.una < snd.max;
        // What the scoreboard said before this ACK: the highest SACKed byte (Linux's
        // fack), and what RACK deemed lost (to tell whether this ACK found new losses).
        let prior_fack = snd.sacked.highest();
        let in_recovery = matches!(snd.recovery, Recovery::Fast { .. } | Recovery::Cwr { .. });
        let lost_before = if in_recovery && sack_on {
            snd.lost_bytes(now)
        } else {
            0
        };
        // RFC 2018 / RFC 6675 3: record SACK blocks for data we sent and is not yet
        // cumulatively acknowledged (blocks below SND.UNA would be D-SACKs: ignored).
        let mut newly_sacked = 0;
        // RTT samples from newly SACKed segments (Linux's first_sackt/last_sackt).
        let mut sack_rtt: Option<(Duration, Duration)> = None;
        let blocks = seg.options.sack_blocks.as_slice();
        self.stats.sack_blocks_in = self.stats.sack_blocks_in.wrapping_add(blocks.len() as u32);
        // The lowest first transmission this ACK SACKs below the prior highest SACKed
        // byte: reordering (checked once per ACK, as Linux's tcp_sacktag_write_queue).
        let mut reordered_from: Option<SeqNum> = None;
        if sack_on {
            for &(start, end) in blocks {
                if !(snd.una.max(seg.ack) <= start && start < end && end <= snd.max) {
                    continue;
                }
                // Only whole segments count as SACKed (as Linux's tcp_match_skb_to_sack).
                if let Some((start, end)) = snd.rack.whole_segments(start, end, snd.max) {
                    // A first transmission below the highest SACKed byte arriving
                    // only now: the path reorders (Linux's tcp_check_sack_reordering).
                    if let Some(fack) = prior_fack.filter(|f| start < *f) {
                        let below = end.min(fack);
                        if snd.sacked.holes_bytes(start, below) > 0
                            && !snd.rack.retransmitted_in(start, below)
                        {
                            // From the first byte this block newly SACKs.
                            let low = snd.sacked.next_hole(start, below).map_or(start, |h| h.0);
                            reordered_from = Some(reordered_from.map_or(low, |r| r.min(low)));
                        }
                    }
                    let newly = snd.sacked.insert(start, end);
                    if newly > 0 {
                        if let Some((first, last)) = snd.rack.rtt_samples(start, end, now) {
                            let (f, l) = sack_rtt.get_or_insert((first, last));
                            *f = (*f).max(first);
                            *l = (*l).min(last);
                        }
                    }
                    newly_sacked += newly;
                    snd.rack.on_delivered_range(start, end, now);
                }
            }
        }
        if let Some(low) = reordered_from {
            let distance = reordering_distance(snd, low, snd.una);
            snd.rack.on_reordering_by(distance, snd.cc.mss());
        }
        // RFC 2883 4: a first block below the ACK, or inside the second block, reports a
        // duplicate. RFC 3708: once every retransmission of the episode is reported so,
        // the episode was reordering: undo it.
        let dsack = blocks.first().copied().filter(|&(s, e)| {
            sack_on && (e <= seg.ack || blocks.get(1).is_some_and(|&(s2, e2)| s2 <= s && e <= e2))
        });
        let episode = |u: &Undo, (s, e): (SeqNum, SeqNum)| u.from <= s && e <= u.to;
        if dsack.is_some() {
            // We resent something that was only late: widen the reordering window.
            snd.rack.on_dsack();
        }
        if let Some(undo) = snd
            .undo
            .as_mut()
            .filter(|u| dsack.is_some_and(|d| episode(u, d)))
        {
            undo.dsacks += 1;
            if undo.retransmits > 0 && undo.dsacks >= undo.retransmits {
                let undo = **undo;
                snd.undo(undo);
                self.stats.spurious_retransmits = self.stats.spurious_retransmits.wrapping_add(1);
            }
        }
        // RTT samples as Linux takes them (tcp_ack_update_rtt): from the send times of
        // what this ACK newly acknowledges (none if any of it was retransmitted: Karn),
        // else from what it newly SACKs, else from the echoed timestamp (RFC 7323 4.1:
        // only when the ACK acknowledges new data). (oldest segment's, newest segment's)
        let ack_rtt = (seg.ack > snd.una)
            .then(|| snd.rack.rtt_samples(snd.una, seg.ack, now))
            .flatten();
        let rtt_sample = ack_rtt
            .or(sack_rtt)
            .or(ts_rtt.filter(|_| seg.ack > snd.una).map(|r| (r, r)));
        if let Some((_, last)) = rtt_sample.or(ts_rtt.map(|r| (r, r))) {
            snd.rack.on_rtt(last);
        }
        // What this ACK delivered (Linux's `delivered`: newly SACKed bytes, and newly
        // acknowledged bytes that had not been SACKed; without SACK, a segment per
        // duplicate ACK, and of a cumulative ACK what duplicate ACKs had not already
        // counted): what slow start grows by and what PRR paces.
        let mut delivered = newly_sacked;
        let una_advanced = seg.ack > snd.una;
        if seg.ack > snd.una {
            let acked = (seg.ack - snd.una) as u32;
            let data_acked = acked.min(buf_len);
            fin_acked = snd.fin_queued && seg.ack == data_end + 1;
            if let Some(fack) = prior_fack.filter(|_| sack_on) {
                // A hole below the highest SACKed byte filled by its first transmission.
                let below = seg.ack.min(fack);
                if snd.sacked.holes_bytes(snd.una, below) > 0
                    && !snd.rack.retransmitted_in(snd.una, below)
                {
                    let distance = reordering_distance(snd, snd.una, seg.ack);
                    snd.rack.on_reordering_by(distance, snd.cc.mss());
                }
            }
            let sacked_before_prune = snd.sacked.bytes();
            let prior_una = snd.una;
            snd.una = seg.ack;
            if snd.nxt < snd.una {
                snd.nxt = snd.una;
            }
            snd.sacked.prune(snd.una);
            if sack_on {
                delivered += acked - (sacked_before_prune - snd.sacked.bytes()).min(acked);
            } else {
                // Linux's tcp_remove_reno_sacks: one ACK fills the hole, the rest of what
                // it covers was counted by duplicate ACKs already.
                let seg_size = mss.min(acked);
                delivered += acked.saturating_sub(snd.reno_sacked).max(seg_size);
                snd.reno_sacked = snd.reno_sacked.saturating_sub(acked - seg_size);
            }
            snd.tlp_out = false;
            snd.rack.on_delivered_range(prior_una, seg.ack, now);
            snd.rack.prune(snd.una);
            if let Some((first, _)) = rtt_sample {
                snd.rtt.sample(first, snd.una, snd.max);
            }
            snd.rtx.backoff = 0;
            // RFC 6298 5.2/5.3: stop the timer when all is acknowledged, else restart it.
            snd.rtx.deadline = (snd.una < snd.max).then(|| now + snd.rtt.rto());
            snd.rtx.since = (snd.una < snd.max).then_some(now);
            snd.dupacks = 0;
            // CUBIC's clock runs RTT ahead; Linux takes the minimum RTT seen (delay_min),
            // not SRTT, which a standing queue inflates.
            let min_rtt = match (snd.rack.min_rtt(), snd.rtt.srtt()) {
                (Some(m), Some(s)) => Some(m.min(s)),
                (m, s) => m.or(s),
            };
            let ack = super::cc::AckEvent {
                now,
                bytes_acked: delivered,
                mss: snd.cc.mss(),
                flight: snd.flight(),
                rtt: rtt_sample.map(|(_, rtt)| rtt),
                min_rtt,
                srtt: snd.rtt.srtt(),
            };
            // RFC 3522 (Eifel): the ACK of our retransmission echoes the TSval of the
            // original: it was reordered, not lost. Undo the reduction, expect more reordering.
            if let (Some(undo), Some(tsecr)) = (snd.undo.as_deref().copied(), seg_tsecr) {
                if let Some(rtx_tsval) = undo.rtx_tsval {
                    // (If the retransmission got there first, D-SACK may still tell.)
                    if (tsecr.wrapping_sub(rtx_tsval) as i32) < 0 {
                        snd.undo(undo);
                        snd.rack.on_dsack();
                        self.stats.spurious_retransmits =
                            self.stats.spurious_retransmits.wrapping_add(1);
                    }
                }
            }
            match snd.recovery {
                Recovery::Fast { recover } if seg.ack < recover => {
                    if !sack_on {
                        // RFC 6582 3.2 step 5: a partial ACK: the next hole is lost,
                        // resend it (PRR paces it, as Linux's tcp_newreno_mark_lost).
                        snd.resend_head = true;
                    }
                    // With SACK (RFC 6675) the send loop keeps filling holes.
                }
                Recovery::Fast { .. } => {
                    // RFC 6582 3.2 step 6 / RFC 6675 5: a full ACK ends recovery.
                    snd.recovery = Recovery::Open;
                    snd.cc.on_recovery_exit(now);
                }
                Recovery::Cwr { recover } => {
                    // Linux's CWR ends once something above its high_seq is ACKed (so
                    // that the CWR flag has reached the receiver): cwnd = ssthresh.
                    if seg.ack > recover {
                        snd.recovery = Recovery::Open;
                        snd.cc.on_recovery_exit(now);
                    }
                }
                Recovery::Timeout { recover } => {
                    if seg.ack >= recover {
                        snd.recovery = Recovery::Open;
                    }
                    // Slow start again after a timeout (RFC 5681 3.1).
                    if snd.may_grow_cwnd() {
                        snd.cc.on_ack(&ack);
                    }
                }
                Recovery::Open => {
                    // RFC 9406 with RFC 7323 RTT samples: leave slow start as the queue builds.
                    let in_slow_start = snd.cc.cwnd() < snd.cc.ssthresh();
                    if let (true, Some((_, rtt))) = (in_slow_start, rtt_sample) {
                        let (cwnd, mss) = (snd.cc.cwnd(), snd.cc.mss().max(1));
                        // Linux's hystart_ack_delay: 4 GSO packets (64 KiB) at the pacing
                        // rate (2 cwnd per SRTT in slow start), at most 1 ms.
                        let ack_delay = snd.rtt.srtt().map_or(Duration::ZERO, |srtt| {
                            let rate = 2.0 * f64::from(cwnd) / srtt.as_secs_f64().max(1e-6);
                            Duration::from_secs_f64(4.0 * 65_536.0 / rate)
                                .min(Duration::from_millis(1))
                        });
                        if snd
                            .hystart
                            .on_sample(now, rtt, snd.una, snd.max, cwnd / mss, ack_delay)
                        {
                            snd.cc.exit_slow_start(now);
                        }
                    }
                    // (An ACK with ECE reduces instead, below.)
                    if snd.may_grow_cwnd() && !ece {
                        snd.cc.on_ack(&ack)
                    }
                }
            }
            self.snd_buf.ack(data_acked as usize);
            self.stats.bytes_sent += data_acked as u64;
            if self.want_writable
                && self
                    .snd_buf
                    .write_space_with(super::push::skb_overhead(&self.marks))
                && !self.shut_wr
            {
                self.want_writable = false;
                self.events.push(ConnEvent::Writable);
            }
        } else if seg.ack == snd.una
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && (seg_wnd == snd.wnd || newly_sacked > 0)
            && snd.una < snd.max
        {
            // RFC 5681 3.2 duplicate ACK; with SACK, one that reports new data (RFC 6675 2).
            if !sack_on || newly_sacked > 0 {
                snd.dupacks += 1;
                if !sack_on {
                    // A segment has left the network (Linux's tcp_add_reno_sack), at
                    // most all but one of those in flight: RFC 3042's limited transmit
                    // outside recovery, PRR's delivered data inside it.
                    let room = snd.flight().saturating_sub(mss);
                    let before = snd.reno_sacked;
                    snd.reno_sacked = (snd.reno_sacked + mss).min(room);
                    delivered += snd.reno_sacked.saturating_sub(before);
                }
            }
        }
        // RFC 5681 3.2 / RFC 6675 5: DupThresh duplicate ACKs, or SACK evidence that the
        // first unacknowledged segment is lost, start fast recovery (once per window:
        // RFC 6582 4, not again until SND.UNA passes `recover`).
        // RFC 3168 6.1.2: an ECE reduces cwnd once per window (Linux's CWR state).
        let reducing = matches!(snd.recovery, Recovery::Cwr { .. });
        let cwr_entered = ece && snd.enter_cwr(now);
        snd.update_dupthresh();
        let dupack_loss = !sack_on && snd.dupacks >= 3;
        let entered = snd.maybe_enter_recovery(now, sack_on, dupack_loss);
        if sack_on {
            snd.mark_lost(now);
        }
        if matches!(snd.recovery, Recovery::Fast { .. } | Recovery::Cwr { .. }) {
            // RFC 6937: cwnd follows what this ACK delivered (Linux's tcp_cwnd_reduction).
            let newly_lost = if sack_on {
                entered || snd.lost_bytes(now) > lost_before
            } else {
                entered || (una_advanced && snd.resend_head)
            };
            snd.prr_on_ack(now, sack_on, delivered, una_advanced, newly_lost);
        }
        if (cwr_entered || (entered && !reducing)) && self.ecn.ok() {
            // RFC 3168 6.1.2: the next new data carries CWR (Linux's tcp_ecn_queue_cwr,
            // for a loss as for an ECE).
            self.ecn.set_queue_cwr(true);
        }
        if cwr_entered {
            self.ece_reductions = self.ece_reductions.wrapping_add(1);
        }
        let Some(snd) = self.state.snd_mut() else {
            return AckOutcome::Continue;
        };
        // RFC 8985 7.2: the probe timer moves on an ACK that delivered something (as
        // Linux's FLAG_SET_XMIT_TIMER); a duplicate ACK that reports nothing new leaves it.
        if una_advanced || newly_sacked > 0 || snd.recovery != Recovery::Open {
            snd.arm_tlp(now, sack_on, mss);
        }
        // RFC 9293 3.10.7.4: update the send window from the newest segment.
        let Some(snd) = self.state.snd_mut() else {
            return AckOutcome::Continue;
        };
        if snd.wl1 < seg.seq || (snd.wl1 == seg.seq && snd.wl2 <= seg.ack) {
            snd.wnd = seg_wnd;
            snd.wl1 = seg.seq;
            snd.wl2 = seg.ack;
            snd.max_wnd = snd.max_wnd.max(seg_wnd);
            if seg_wnd > 0 {
                snd.persist = Retransmit::default();
                snd.probes = 0;
            }
        }
        if !self.orphaned {
            // An answer from the peer: probes are not going unanswered.
            if let Some(snd) = self.state.snd_mut() {
                snd.probes = 0;
            }
        }
        if fin_acked {
            AckOutcome::FinAcked
        } else {
            AckOutcome::Continue
        }
    }

    /// Our FIN is acknowledged: FIN_WAIT_1 -> FIN_WAIT_2, CLOSING -> TIME_WAIT, LAST_ACK -> CLOSED.
    /// Returns true when the connection is finished with this segment.
    fn on_fin_acked(&mut self, now: Instant, cfg: &Config) -> bool {
        match self.state {
            State::FinWait1(_) => {
                let timeout = self.orphaned.then(|| now + cfg.tcp_fin_timeout);
                self.transition(now, "rcv ACK of FIN", |st| match st {
                    State::FinWait1(s) => State::FinWait2(s.on_fin_acked(timeout)),
                    st => st,
                });
                false
            }
            State::Closing(_) => {
                let tw = self.time_wait_params(now, cfg);
                self.transition(now, "rcv ACK of FIN", |st| match st {
                    State::Closing(s) => State::TimeWait(s.on_fin_acked(tw)),
                    st => st,
                });
                true
            }
            State::LastAck(_) => {
                self.terminate(now, "rcv ACK of FIN", None);
                true
            }
            _ => false,
        }
    }

    /// Linux's quick-ACK mode (tcp_incr_quickack): the first data of a connection, and
    /// data after more than an RTO of silence, are ACKed at once for up to
    /// `Config::quick_acks` segments (fewer when the window is small), so a sender in slow start is not held
    /// back by delayed ACKs.
    fn enter_quick_ack(&mut self, now: Instant, rcv_free: usize) {
        let rto = self
            .state
            .snd()
            .map_or(Duration::from_secs(1), |s| s.rtt.rto());
        let idle = match self.last_data_in {
            None => true,
            Some(t) => now.checked_sub(rto).is_some_and(|limit| t < limit),
        };
        self.last_data_in = Some(now);
        if idle {
            let mss = usize::from(self.local_mss).max(1);
            let quick = ((rcv_free / (2 * mss)).clamp(2, 16) as u8).min(self.max_quick_acks);
            self.quick_acks = self.quick_acks.max(quick);
        }
    }

    /// RFC 9293 3.10.7.4 seventh: take the segment's bytes into the receive buffer or the
    /// reassembly queue. Returns true when the peer's FIN is now in sequence.
    fn process_text(&mut self, now: Instant, seg: &TcpRepr<'_>) -> bool {
        let rcv_free = self.rcv_cap.saturating_sub(self.rcv_buf.len());
        let delayed_ack = self.delayed_ack.get();
        // RFC 3168 6.1.3: CE marks to echo, CWR ending the echo.
        self.ecn_on_data(seg);
        let Some(rcv) = self.state.rcv_mut() else {
            return false;
        };
        // RFC 5681 4.2: in-order data with no gap behind it may wait for a delayed ACK;
        // out-of-order data, data filling a gap (also one before an early FIN) and
        // duplicates are ACKed at once.
        let in_order = seg.seq == rcv.nxt && rcv.ooo.bytes() == 0 && rcv.fin.is_none();
        let mut seq = seg.seq;
        let mut data = seg.payload;
        let mut fin = seg.flags.fin();
        let fin_seq = seg.seq + seg.payload.len() as u32;
        // Trim what we already have (and report it: RFC 2883 D-SACK).
        if seq < rcv.nxt && !data.is_empty() {
            let dup_end = (seq + data.len() as u32).min(rcv.nxt);
            self.pending_dsack = Some((seq, dup_end));
        }
        if seq < rcv.nxt {
            let skip = ((rcv.nxt - seq) as usize).min(data.len());
            data = &data[skip..];
            seq += skip as u32;
        }
        // Trim what lies beyond the window; a FIN beyond it is not taken either.
        let right = rcv.adv.max(rcv.nxt);
        if seq + data.len() as u32 > right {
            let keep = (right - seq).max(0) as usize;
            data = &data[..keep.min(data.len())];
            fin = fin && fin_seq <= right;
        }
        if !seg.payload.is_empty() {
            self.enter_quick_ack(now, rcv_free);
            self.ack_for_data = true;
            // Linux's rcv_mss: the largest segment the peer sends, up to our MSS.
            let len = seg.payload.len().min(usize::from(self.local_mss)) as u16;
            self.rcv_mss = self.rcv_mss.max(len);
        }
        let quick = self.quick_acks > 0 && !self.pingpong;
        let Some(rcv) = self.state.rcv_mut() else {
            return false;
        };
        let mut delivered = 0usize;
        // Over tcp_mem's hard limit, new data that needs more memory is not taken (Linux's
        // tcp_try_rmem_schedule), unless the connection holds less than tcp_rmem[0]: every
        // connection still makes progress, and nothing acknowledged is ever dropped.
        if self.memory == MemoryLevel::Exhausted && !data.is_empty() {
            let held = self.rcv_buf.storage() + rcv.ooo.bytes();
            let grows = seq != rcv.nxt
                || self.rcv_buf.storage() < self.rcv_buf.len() + data.len().min(rcv_free);
            if grows && held >= RMEM_MIN {
                self.events.push(ConnEvent::Dropped("rcv_memory_exhausted"));
                data = &[];
                fin = false;
            }
        }
        if !data.is_empty() {
            if seq == rcv.nxt {
                let take = data.len().min(rcv_free);
                // Storage grows by doubling (a few allocations per burst, none per
                // segment), from what the first segment needs: a connection that
                // received only a small request holds little.
                let (len, room) = (self.rcv_buf.len(), self.rcv_buf.storage());
                if room < len + take {
                    // (Exactly what is needed under memory pressure.)
                    let double = if self.memory == MemoryLevel::Normal {
                        2 * room
                    } else {
                        0
                    };
                    let want = (len + take).max(double);
                    let want = want.min(self.rcv_cap.max(len + take));
                    self.rcv_buf.grow_to(want);
                }
                // A payload the stack already copied while summing it (`stage`) is
                // only committed; trimming here only ever shortens it at its end.
                if seq != seg.seq || !self.rcv_buf.commit_staged(take) {
                    self.rcv_buf.push(&data[..take]);
                }
                rcv.nxt += take as u32;
                delivered += take;
                while let Some(more) = rcv.ooo.pop_ready(rcv.nxt) {
                    rcv.nxt += more.len() as u32;
                    delivered += more.len();
                    self.rcv_buf.push(&more);
                }
            } else if seq > rcv.nxt {
                if rcv.ooo.insert(rcv.nxt, seq, data) {
                    rcv.last_ooo = Some(seq);
                } else {
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                }
            }
        }
        if fin && fin_seq >= rcv.nxt {
            // Remember the FIN even when it arrived ahead of missing data.
            rcv.fin = Some(fin_seq);
            if fin_seq > rcv.nxt && data.is_empty() {
                rcv.last_ooo = Some(fin_seq);
            }
        }
        let fin_now = rcv.fin == Some(rcv.nxt);
        if fin_now {
            rcv.nxt += 1;
            rcv.fin = None;
        }
        if delivered > 0 || fin_now {
            self.stats.bytes_received += delivered as u64;
            self.events.push(ConnEvent::Readable);
        }
        // RFC 5681 4.2 / RFC 1122 4.2.3.2: an ACK at least every second full-sized
        // segment; counted as Linux does, by bytes: more than one full segment (of the
        // largest the peer has sent) not yet ACKed.
        let unacked = (rcv.nxt - self.last_ack_sent).max(0) as u32;
        let full_segment_waits = unacked > u32::from(self.rcv_mss);
        if seg.seg_len() > 0 {
            let established = matches!(self.state, State::Established(_));
            if !in_order || delayed_ack.is_zero() || full_segment_waits {
                self.ack_now = true;
            } else if fin_now && established && self.last_data_in.is_some() {
                // Linux's tcp_fin: the peer's FIN puts the connection in interactive mode;
                // its ACK waits the delayed-ACK time, to ride on our own FIN if the
                // application closes. (With no data ever received it goes at once.)
                self.pingpong = true;
                if self.delack.is_none() {
                    self.delack = Some(now + delayed_ack);
                }
            } else if fin_now || quick {
                self.ack_now = true;
            } else if self.delack.is_none() {
                // Within the delayed-ACK time (Linux: 40 ms at first).
                self.delack = Some(now + delayed_ack);
            }
        }
        if fin_now && matches!(self.state, State::Established(_)) && !delayed_ack.is_zero() {
            self.pingpong = true;
        }
        fin_now
    }

    /// RFC 9293 3.10.7.4 eighth: the peer's FIN is in sequence.
    fn on_fin(&mut self, now: Instant, cfg: &Config) {
        self.fin_received = true;
        // As Linux's tcp_fin (tcp_sack_reset): with the stream complete, no SACK or
        // D-SACK information is left to report.
        self.pending_dsack = None;
        match self.state {
            State::Established(_) => self.transition(now, "rcv FIN", |st| match st {
                State::Established(s) => State::CloseWait(s.on_fin()),
                st => st,
            }),
            State::FinWait1(_) => self.transition(now, "rcv FIN", |st| match st {
                State::FinWait1(s) => State::Closing(s.on_fin()),
                st => st,
            }),
            State::FinWait2(_) => {
                let tw = self.time_wait_params(now, cfg);
                self.transition(now, "rcv FIN", |st| match st {
                    State::FinWait2(s) => State::TimeWait(s.on_fin(tw)),
                    st => st,
                })
            }
            _ => {}
        }
    }
}

/// Result of processing the ACK field.
enum AckOutcome {
    Continue,
    FinAcked,
    Drop(&'static str),
}

fn flags_without_syn(seg: &TcpRepr<'_>) -> crate::wire::TcpFlags {
    crate::wire::TcpFlags::from_bits(seg.flags.bits() & !crate::wire::TcpFlags::SYN.bits())
}

/// A send sequence space for a connection whose SYN (at `iss`) was just acknowledged.
fn new_snd(iss: SeqNum, rtt: super::rtt::RttEstimator, seg: &TcpRepr<'_>, wnd: u32) -> Snd {
    Snd {
        iss,
        una: iss + 1,
        nxt: iss + 1,
        max: iss + 1,
        wnd,
        wl1: seg.seq,
        wl2: seg.ack,
        max_wnd: wnd,
        rtt,
        rtx: Retransmit::default(),
        persist: Retransmit::default(),
        probes: 0,
        dupacks: 0,
        // Replaced by the connection's choice once the MSS is known (finish_snd_setup).
        cc: super::cc::CongestionControl::NewReno.controller(536),
        recovery: Recovery::Open,
        sacked: Scoreboard::default(),
        resend_head: false,
        sml: iss + 1,
        last_seg: iss + 1,
        reno_sacked: 0,
        gso: None,
        prior_cwnd: 0,
        prr_delivered: 0,
        prr_out: 0,
        last_send: None,
        hystart: Default::default(),
        rack: Default::default(),
        tlp: None,
        tlp_due: false,
        tlp_out: false,
        undo: None,
        fin_queued: false,
        is_cwnd_limited: false,
        max_flight: 0,
        cwnd_usage_seq: iss + 1,
    }
}

/// How far the path reordered, in bytes: from `low` (the first transmission that arrived
/// late) up to Linux's fack, the end of the highest SACKed segment, or `una` (SND.UNA after
/// this ACK) when nothing above it stays SACKed (tcp_input.c `tcp_highest_sack_seq`).
fn reordering_distance(snd: &super::state::Snd, low: SeqNum, una: SeqNum) -> u32 {
    let fack = snd.sacked.highest().filter(|h| *h > una).unwrap_or(una);
    (fack - low).max(0) as u32
}
