//! Outgoing segments: what a connection sends next (SYN, SYN-ACK, data, FIN, ACKs,
//! window probes), in RFC 9293 3.10.7 and RFC 5681 order of priority.

use super::conn::{Connection, MemoryLevel};
use super::ecn::ecn_flags;
use super::state::*;
use crate::wire::{Ecn, SeqNum, TcpFlags, TcpOptions, Timestamps, MAX_TCP_HEADERS};
use crate::Instant;

/// A segment ready to be wrapped in TCP/IP headers by the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub(crate) seq: SeqNum,
    pub(crate) ack: SeqNum,
    pub(crate) flags: TcpFlags,
    pub(crate) window: u16,
    pub(crate) options: TcpOptions,
    /// The bytes it carries, as offsets into the connection's send buffer (0 is
    /// SND.UNA's byte), valid until the buffer next changes:
    /// [`Connection::payload`] reads them while the stack writes the packet.
    pub(crate) payload: core::ops::Range<usize>,
    /// Non-zero: a super-segment of several segments of this payload size (the last
    /// may be shorter), for a device with segmentation offload to cut.
    pub(crate) segment_size: u16,
    /// The IP header's ECN field (RFC 3168): ECT(0) on new data of an ECN connection.
    pub(crate) ecn: Ecn,
    /// The urgent pointer (with URG in `flags`; RFC 9293 3.8.5).
    pub(crate) urgent: u16,
}

impl Outgoing {
    /// Segments it makes on the wire.
    pub(crate) fn segments(&self) -> usize {
        match self.segment_size {
            0 => 1,
            s => self.payload.len().div_ceil(usize::from(s)).max(1),
        }
    }
}

impl Connection {
    /// The bytes of `out.payload` in the send buffer, as two slices (the second
    /// non-empty when they wrap around its ring).
    pub(crate) fn payload(&self, out: &Outgoing) -> (&[u8], &[u8]) {
        self.snd_buf.slices(out.payload.start, out.payload.len())
    }

    /// True when [`Connection::poll_segment`] has something to send.
    pub(crate) fn wants_transmit(&self) -> bool {
        match &self.state {
            State::Closed(_) => false,
            State::SynSent(_) => self.syn_due || self.ack_now,
            State::SynRcvd(s) => {
                self.syn_due
                    || self.ack_now
                    // A Fast Open child's data (RFC 7413 4.2.2).
                    || (self.tfo & super::conn::TFO_CHILD != 0
                        && self.snd_buf.len() > s.data_sent as usize)
            }
            State::FinWait2(_) | State::TimeWait(_) => self.ack_now,
            st => {
                let Some(snd) = st.snd() else { return false };
                self.ack_now
                    || self.probe_due
                    || snd.tlp_due
                    || snd.resend_head
                    || self.hole_due(snd, self.last_now)
                    || self.sendable(snd, self.last_now).0 > 0
                    || self.fin_sendable(snd)
            }
        }
    }

    /// The segment size for new data: the MSS, bounded to half the largest window the
    /// peer has offered (Linux's tcp_bound_to_half_wnd): RFC 9293 3.8.6.2.1's sender
    /// SWS rule that a segment should fill at least a fraction Fs = 1/2 of it.
    pub(crate) fn send_mss(&self, snd: &Snd) -> usize {
        let mss = self.payload_mss();
        let max_wnd = snd.max_wnd as usize;
        let cutoff = if max_wnd > 536 { max_wnd / 2 } else { max_wnd };
        if cutoff == 0 {
            mss
        } else {
            mss.min(cutoff.max(64))
        }
    }

    /// The most payload a segment may carry now: the MSS less the SACK option the ACK it
    /// carries will hold (Linux's tcp_current_mss), so that no packet outgrows the MTU.
    pub(crate) fn payload_mss(&self) -> usize {
        let mut blocks = self.pending_dsack.is_some() as usize;
        if self.neg.sack {
            if let Some(rcv) = self.state.rcv() {
                let max = if self.neg.timestamps { 3 } else { 4 };
                blocks += rcv.ooo.block_count(rcv.fin, max - blocks.min(max));
            }
        }
        let option = if self.neg.sack && blocks > 0 {
            // TCPOLEN_SACK_BASE_ALIGNED + TCPOLEN_SACK_PERBLOCK per block.
            4 + 8 * blocks.min(4)
        } else {
            0
        };
        self.neg.snd_mss.saturating_sub(option).max(32)
    }

    /// New bytes a segment would carry now if the windows allowed it, and whether the
    /// peer's window has room for it.
    fn window_fits(&self, snd: &Snd) -> (usize, bool) {
        let off = ((snd.nxt - snd.una).max(0) as usize).min(self.snd_buf.len());
        let mut want = (self.snd_buf.len() - off).min(self.send_mss(snd));
        // A segment ends where a pushed write or a record (MSG_EOR) ended: Linux sends
        // each skb on its own.
        if let Some(room) = self.mark_room(snd.nxt).filter(|r| *r > 0) {
            want = want.min(room);
        }
        let wnd_room = snd.wnd as i64 - snd.flight() as i64;
        (want, wnd_room >= want as i64)
    }

    /// (bytes of new data we may send now, whether the window/cwnd is what limits it).
    fn sendable(&self, snd: &Snd, now: Instant) -> (usize, bool) {
        let (want, fits) = self.window_fits(snd);
        if want == 0 {
            return (0, false);
        }
        // RFC 9293 3.8.6.2.1 (sender SWS avoidance) as Linux's tcp_snd_wnd_test: send
        // a full segment, or all that is queued, only when it fits in the peer's window;
        // otherwise wait for the window to open (the persist timer probes it).
        if !fits {
            return (0, true);
        }
        // cwnd against what is in the network (Linux's packets in flight: SACKed bytes,
        // and without SACK one segment per duplicate ACK, have left the network, which
        // is RFC 3042's limited transmit). As Linux counts in packets, a segment may go
        // while any room is left.
        let in_network = match snd.recovery {
            Recovery::Timeout { .. } => snd.flight(),
            _ => snd.in_flight(now, self.neg.sack),
        };
        // Counted in whole segments, as Linux's packet-counted cwnd: the fraction of a
        // segment congestion avoidance has added does not let another one out yet.
        let mss = self.neg.snd_mss.max(1) as u32;
        if in_network.div_ceil(mss) >= snd.cwnd() / mss {
            return (0, true);
        }
        if self.tso_defers(snd, now, in_network) {
            return (0, true);
        }
        let len = want;
        let off = ((snd.nxt - snd.una).max(0) as usize).min(self.snd_buf.len());
        let partial = len < self.send_mss(snd) && snd.nxt >= snd.max && !snd.fin_queued;
        // Only the last skb waits (Linux's tcp_write_xmit pushes all before it).
        let last = !self.keeps_marks() || off + len == self.snd_buf.len();
        // RFC 1122 4.2.3.4 (Nagle), with Minshall's refinement as Linux has it: a segment
        // smaller than the MSS waits while an earlier small segment is unacknowledged,
        // unless TCP_NODELAY is set or the FIN is queued behind it. (Retransmissions,
        // from below SND.MAX, are never held.) TCP_CORK and MSG_MORE hold it whatever is
        // in flight (Linux's tcp_nagle_check with TCP_NAGLE_CORK).
        // (Nor in urgent mode: Linux's tcp_nagle_test.)
        let nagle_holds = partial
            && last
            && ((!self.nodelay && snd.sml > snd.una) || self.cork_holds())
            && !(self.has_urgent() && self.urgent_mode());
        if nagle_holds {
            (0, true)
        } else {
            (len, false)
        }
    }

    /// Whether new data waits for a bigger packet (Linux's tcp_tso_should_defer, where
    /// Linux's skbs are modelled): at the start of a packet, when the windows let only
    /// part of the send head's skb go, less than a full packet and less than a third of
    /// the window (tcp_tso_win_divisor), while sending goes on (the last send within a
    /// millisecond) and the oldest segment out has been out half an RTT, so that its
    /// ACK comes soon. Never in recovery, nor for the skb that ends a record or carries
    /// the FIN.
    fn tso_defers(&self, snd: &Snd, now: Instant, in_network: u32) -> bool {
        if snd.nxt < snd.max {
            return false;
        }
        if matches!(snd.gso, Some((at, left, _)) if at == now && left > 0) {
            return false; // a packet is being built
        }
        if snd
            .last_send
            .is_none_or(|t| now - t > core::time::Duration::from_millis(1))
        {
            return false;
        }
        let mss = self.neg.snd_mss.max(1) as u64;
        let in_flight = u64::from(in_network).div_ceil(mss);
        self.tso_defers_at(snd, now, snd.nxt, in_flight, Self::head_sent(snd))
    }

    /// [`Connection::tso_defers`] for the skb piece from `seq`, with `in_flight` segments
    /// out and the oldest of them sent at `head`, the last send recent.
    fn tso_defers_at(
        &self,
        snd: &Snd,
        now: Instant,
        seq: SeqNum,
        in_flight: u64,
        head: Option<Instant>,
    ) -> bool {
        if matches!(
            snd.recovery,
            Recovery::Fast { .. } | Recovery::Timeout { .. }
        ) {
            return false;
        }
        let Some((skb_end, eor)) = self.skb_of(seq) else {
            return false;
        };
        let mss = self.neg.snd_mss.max(1) as u64;
        let cwnd_segs = u64::from(snd.cwnd()) / mss;
        let send_win = (snd.una + snd.wnd - seq).max(0) as u64;
        let cong_win = cwnd_segs.saturating_sub(in_flight) * mss;
        let limit = send_win.min(cong_win);
        if limit >= self.tso_max_segs(snd) * mss {
            return false;
        }
        let skb_len = (skb_end - seq).max(0) as u64;
        if skb_len <= mss {
            return false; // (a one-segment skb is only subject to Nagle)
        }
        let tail = skb_end == snd.una + self.snd_buf.len() as u32;
        if !tail && limit >= skb_len {
            return false;
        }
        let chunk = u64::from(snd.wnd).min(cwnd_segs * mss) / 3;
        if limit >= chunk {
            return false;
        }
        let Some(head) = head else {
            return false;
        };
        // (Linux's srtt_us >> 4: half the SRTT in whole microseconds.)
        // (A real path's SRTT is some microseconds at least: data sent in this very push
        // never lets the next skb wait.)
        let half_srtt =
            core::time::Duration::from_micros((snd.srtt().as_micros() as u64 / 2).max(1));
        if now - head < half_srtt {
            return false;
        }
        !(eor || (tail && snd.fin_queued))
    }

    /// When the oldest segment out was sent (None: nothing is out).
    fn head_sent(snd: &Snd) -> Option<Instant> {
        (snd.una < snd.max)
            .then(|| snd.rack.head_sent_at(snd.una))
            .flatten()
    }

    /// Whether the new data the windows let go now fills the congestion window (Linux's
    /// tcp_write_xmit, skb by skb, up to cwnd, the peer's window, or a deferral).
    pub(crate) fn push_fills_cwnd(&self, now: Instant) -> bool {
        let Some(snd) = self.state.snd() else {
            return true;
        };
        let mss = self.neg.snd_mss.max(1) as u64;
        let cwnd_segs = u64::from(snd.cwnd()) / mss;
        let mut in_flight = u64::from(snd.in_flight(now, self.neg.sack)).div_ceil(mss);
        let end = snd.una + self.snd_buf.len() as u32;
        let wnd_end = snd.una + snd.wnd;
        let mut head = Self::head_sent(snd);
        let mut recent = snd
            .last_send
            .is_some_and(|t| now - t <= core::time::Duration::from_millis(1));
        let mut seq = snd.max;
        while seq < end && in_flight < cwnd_segs {
            let skb_end = self.skb_of(seq).map_or(end, |(e, _)| e).min(end);
            let win = (wnd_end - seq).max(0) as u64;
            let piece = ((skb_end - seq).max(0) as u64).min((cwnd_segs - in_flight) * mss);
            if win < piece.min(mss)
                || (recent && self.tso_defers_at(snd, now, seq, in_flight, head))
            {
                break;
            }
            let piece = piece.min(win);
            if piece == 0 {
                break;
            }
            in_flight += piece.div_ceil(mss);
            seq += piece as u32;
            head = head.or(Some(now));
            recent = true;
        }
        in_flight >= cwnd_segs
    }

    /// Our FIN is queued and everything before it has been sent.
    fn fin_sendable(&self, snd: &Snd) -> bool {
        snd.fin_queued && snd.nxt == snd.una + self.snd_buf.len() as u32
    }

    /// The next segment to send, if any.
    pub(crate) fn poll_segment(&mut self, now: Instant) -> Option<Outgoing> {
        let out = match self.state {
            State::Closed(_) => None,
            State::SynSent(_) | State::SynRcvd(_) => self.poll_handshake(now),
            State::FinWait2(_) | State::TimeWait(_) => self.ack_now.then(|| self.ack_segment(now)),
            _ => self.poll_data(now),
        };
        if let Some(o) = &out {
            self.stats.segs_out = self.stats.segs_out.wrapping_add(o.segments() as u32);
        }
        out
    }

    /// SYN (SYN_SENT) or SYN,ACK (SYN_RECEIVED).
    fn poll_handshake(&mut self, now: Instant) -> Option<Outgoing> {
        if !self.syn_due {
            if let Some(out) = self.fastopen_child_data(now) {
                return Some(out);
            }
            return self.ack_now.then(|| self.ack_segment(now));
        }
        self.syn_due = false;
        self.ack_now = false;
        let tsval = self.tsval(now);
        let window = self.initial_window();
        let mss = self.local_mss;
        match &mut self.state {
            State::SynSent(s) => {
                let first = s.rtx.backoff == 0 && !s.fo.is_some_and(|f| f.retried);
                if first {
                    s.rtt.on_send(now, s.iss + 1);
                }
                s.rtx.deadline = Some(now + s.rtt.backed_off(s.rtx.backoff));
                // RFC 7413 3: the first SYN carries the Fast Open option and the data;
                // a retransmitted SYN neither (Linux: SYN retries are plain SYNs, the
                // data is resent once the handshake completes).
                let fo = s.fo.filter(|_| first);
                let payload = 0..fo.map_or(0, |f| f.syn_data as usize);
                let options = TcpOptions {
                    mss: Some(mss),
                    window_scale: s.wscale_offer,
                    sack_permitted: self.sack_offer,
                    timestamps: s.ts_offer.then_some(Timestamps { tsval, tsecr: 0 }),
                    fast_open: fo.and_then(|f| f.option),
                    ..TcpOptions::default()
                };
                self.stats.bytes_out += payload.len() as u64;
                let flags = TcpFlags::SYN | ecn_flags(self.ecn.ok(), false, first);
                Some(Outgoing {
                    urgent: 0,
                    seq: s.iss,
                    ack: SeqNum::new(0),
                    flags,
                    window,
                    options,
                    payload,
                    segment_size: 0,
                    ecn: Ecn::NotEct,
                })
            }
            State::SynRcvd(s) => {
                if s.rtx.backoff == 0 {
                    s.rtt.on_send(now, s.iss + 1);
                }
                s.rtx.deadline = Some(now + s.rtt.backed_off(s.rtx.backoff));
                // RFC 7323 1.3: answer only the options the peer offered.
                let wscaled = self.neg.snd_wscale != 0 || self.neg.rcv_wscale != 0;
                let options = TcpOptions {
                    mss: Some(mss),
                    window_scale: wscaled.then_some(self.neg.rcv_wscale),
                    sack_permitted: self.neg.sack,
                    timestamps: self.neg.timestamps.then_some(Timestamps {
                        tsval,
                        tsecr: self.ts_recent,
                    }),
                    fast_open: s.fo_reply,
                    ..TcpOptions::default()
                };
                let ack = s.irs + 1 + s.syn_data;
                self.last_ack_sent = ack;
                Some(Outgoing {
                    urgent: 0,
                    seq: s.iss,
                    ack,
                    flags: TcpFlags::SYN | TcpFlags::ACK | ecn_flags(self.ecn.ok(), true, true),
                    window,
                    options,
                    payload: 0..0,
                    segment_size: 0,
                    ecn: Ecn::NotEct,
                })
            }
            _ => None,
        }
    }

    /// A Fast Open child may send data before the client's ACK of its SYN-ACK (RFC
    /// 7413 4.2.2; Linux's tcp_sendmsg for a passive Fast Open socket in SYN_RECV):
    /// new data within the initial window and the client's window, once each; the
    /// retransmission timer resends the SYN-ACK, and what is lost of this data goes
    /// again once the connection is established.
    fn fastopen_child_data(&mut self, now: Instant) -> Option<Outgoing> {
        if self.tfo & super::conn::TFO_CHILD == 0 {
            return None;
        }
        let mss = self.payload_mss();
        let State::SynRcvd(s) = &self.state else {
            return None;
        };
        let sent = s.data_sent as usize;
        let room_total = crate::tcp::initial_window(mss as u32) as usize;
        let room = room_total.saturating_sub(sent);
        let len = self.snd_buf.len().saturating_sub(sent).min(room).min(mss);
        if len == 0 {
            return None;
        }
        let mut out = self.ack_segment(now);
        if let State::SynRcvd(s) = &mut self.state {
            out.seq = s.iss + 1 + s.data_sent;
            s.data_sent += len as u32;
            s.data_sent_at = Some(now);
        }
        out.payload = sent..sent + len;
        // PSH where the written data ends, and on the last segment of each packet of
        // more than one segment (Linux's __tcp_transmit_skb), packets being half the
        // initial window (tcp_cwnd_test's quota) or what is left of it.
        let end = sent + len;
        let packet = (room_total / 2 / mss).max(1) * mss;
        if end == self.snd_buf.len() || (packet > mss && (end % packet == 0 || len == room)) {
            out.flags |= TcpFlags::PSH;
        }
        self.stats.bytes_out += len as u64;
        Some(out)
    }

    /// Data, FIN, retransmissions, probes and ACKs of the synchronized states.
    fn poll_data(&mut self, now: Instant) -> Option<Outgoing> {
        if let (Some(m), Some(snd)) = (self.marks.as_mut(), self.state.snd()) {
            m.acked(snd.una);
        }
        let snd = self.state.snd()?;
        let buf_len = self.snd_buf.len();
        // Fast retransmit / NewReno partial ACK: resend the segment at SND.UNA.
        // Fast retransmit (no SACK): the head goes when PRR's cwnd has room for it.
        let head_room = !matches!(snd.recovery, Recovery::Fast { .. })
            || snd.in_flight(now, self.neg.sack) < snd.cwnd();
        if snd.resend_head && head_room {
            let mut len = buf_len.min(self.payload_mss());
            if let Some(room) = self.mark_room(snd.una).filter(|r| *r > 0) {
                len = len.min(room);
            }
            let with_fin =
                snd.fin_queued && len == buf_len && snd.max == snd.una + buf_len as u32 + 1;
            let una = snd.una;
            let out = self.data_segment(now, una, len, with_fin);
            let snd = self.state.snd_mut()?;
            snd.resend_head = false;
            Undo::on_retransmit(&mut snd.undo, out.options.timestamps.map(|t| t.tsval));
            let end = una + out.payload.len() as u32 + with_fin as u32;
            if snd.nxt < end {
                snd.nxt = end;
            }
            snd.on_retransmit(now, una, end);
            snd.on_recovery_send((end - una) as u32);
            self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
            return Some(out);
        }
        if let Some(out) = self.retransmit_hole(now) {
            return Some(out);
        }
        if let Some(out) = self.tail_loss_probe(now) {
            return Some(out);
        }
        let snd = self.state.snd_mut()?;
        let rto = snd.rtt.rto();
        // Going back N after a timeout: what the peer SACKed need not be sent again.
        while snd.nxt < snd.max {
            match snd.sacked.covering(snd.nxt) {
                Some(end) => snd.nxt = end.min(snd.max),
                None => break,
            }
        }
        // RFC 5681 4.1: after an idle period longer than the RTO, restart from the initial
        // window, when new data goes out (as Linux's tcp_event_data_sent: a window that
        // stays closed, probes and all, leaves cwnd as it was until then).
        if snd.una == snd.max && snd.last_send.is_some_and(|t| now - t > rto) {
            let snd = self.state.snd()?;
            if self.sendable(snd, now).0 > 0 {
                self.state.snd_mut()?.cc.on_idle(now);
            }
        }
        let (sack, mss) = (self.neg.sack, self.neg.snd_mss as u32);
        let snd = self.state.snd()?;
        let (len, _) = self.sendable(snd, now);
        let fin_ready = self.fin_sendable(snd);
        let off = ((snd.nxt - snd.una).max(0) as usize).min(buf_len);
        let with_fin = snd.fin_queued && off + len == buf_len && (len > 0 || fin_ready);
        if len > 0 || with_fin {
            let seq = snd.nxt;
            let (packet_segs, packet_full) = if seq >= snd.max && len > 0 {
                self.gso_place(now)
            } else {
                (1, true)
            };
            // Going back N: the resent packet ends at the next SACKed block at the latest
            // (packets are followed only where Linux's skbs are).
            let snd = self.state.snd()?;
            let resend = (seq < snd.max && self.keeps_skbs()).then(|| {
                let limit = snd.sacked.next_hole(seq, snd.max).map_or(snd.max, |h| h.1);
                let room = snd.cwnd().saturating_sub(snd.in_flight(now, sack)) / mss.max(1);
                (limit, room.min(self.tso_max_segs(snd) as u32))
            });
            if seq >= snd.max && len > 0 && packet_segs == 1 {
                self.split_skb_at(seq);
            }
            let mut out = self.data_segment(now, seq, len, with_fin);
            if let Some((limit, segs)) = resend {
                if self.rtx_packet_psh(seq, len, limit, segs) {
                    out.flags |= TcpFlags::PSH;
                }
            }
            let snd = self.state.snd_mut()?;
            let prior_max = snd.max;
            let end = seq + len as u32 + with_fin as u32;
            if seq < snd.max {
                let resent_end = end.min(snd.max);
                snd.on_retransmit(now, seq, resent_end);
                self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
            } else {
                snd.rack.on_send(seq, now);
                snd.last_seg = seq;
                if len < mss as usize {
                    snd.sml = end;
                }
            }
            snd.nxt = end;
            snd.on_recovery_send((end - seq) as u32);
            snd.last_send = Some(now);
            let new_data = end > snd.max;
            if new_data {
                snd.max = end;
            }
            self.ecn_mark(&mut out, seq >= prior_max);
            let (mut packet_segs, mut packet_full) = (packet_segs, packet_full);
            // (A segment carrying CWR goes alone: a device copying its header onto every
            // segment would repeat the flag.)
            if self.tso_max > 0
                && new_data
                && !with_fin
                && !out.flags.cwr()
                && len == self.send_mss(self.state.snd()?)
            {
                // Segmentation offload: the rest of this Linux packet joins it.
                (packet_segs, packet_full) =
                    self.extend_super(now, &mut out, packet_segs, packet_full);
            }
            // A packet ends with its skb (Linux's tcp_write_xmit sends a piece of one skb
            // at a time): the next segment starts a new one.
            let out_end = seq + out.payload.len() as u32;
            let skb_end = len > 0 && new_data && self.skb_ends_at(out_end);
            if skb_end {
                packet_full = true;
                if let Some(snd) = self.state.snd_mut() {
                    snd.gso = snd.gso.map(|(at, _, segs)| (at, 0, segs));
                }
            }
            let snd = self.state.snd_mut()?;
            // RFC 8985 7.2: (re)schedule the probe timer when new data goes out, with the
            // flight it now has.
            if new_data || snd.tlp.is_none() {
                snd.arm_tlp(now, sack, mss);
            }
            snd.start_rtx_timer(now);
            snd.track_cwnd_use(now, sack, mss);
            // PSH as Linux's segments carry it: besides the end of the written data
            // (data_segment), on the last segment of each multi-segment packet, since
            // Linux forces PSH on every TSO/GSO packet of more than one segment and
            // segmentation leaves it on the packet's last segment (a super-segment's PSH
            // is kept by the device for its last segment).
            if len > 0 && packet_segs >= 2 && !out.flags.psh() {
                let snd = self.state.snd()?;
                // (Not when a cork holds the rest: Linux's split leaves it unpushed.)
                if packet_full || (self.sendable(snd, now).0 == 0 && !self.cork_holds()) {
                    out.flags |= TcpFlags::PSH;
                }
            }
            return Some(out);
        }
        if self.probe_due {
            self.probe_due = false;
            let snd = self.state.snd()?;
            let room = (snd.wnd as i64 - snd.flight() as i64).max(0) as usize;
            let (want, _) = self.window_fits(snd);
            if room > 0 && want > 0 && snd.nxt == snd.max {
                // A window too small for a segment (RFC 9293 3.8.6.2.1's override
                // timeout, Linux's tcp_write_wakeup): send what fits, pushed.
                let seq = snd.nxt;
                let len = want.min(room);
                let mut out = self.data_segment(now, seq, len, false);
                out.flags |= TcpFlags::PSH;
                self.ecn_mark(&mut out, true);
                let snd = self.state.snd_mut()?;
                snd.rack.on_send(seq, now);
                snd.nxt = seq + len as u32;
                snd.max = snd.nxt;
                snd.last_send = Some(now);
                snd.start_rtx_timer(now);
                return Some(out);
            }
            // A zero-window probe: an old sequence number elicits an ACK with the window.
            let una = snd.una;
            let mut out = self.ack_segment(now);
            out.seq = una - 1;
            return Some(out);
        }
        if self.ack_now {
            return Some(self.ack_segment(now));
        }
        None
    }

    /// With segmentation offload (`tso_max`), add to `out` (a full segment of new data,
    /// segment `segs` of a Linux packet, `full` when that is its last) the next full
    /// segments of the same packet that may go now, doing each one's bookkeeping as if
    /// it had been sent on its own. Returns the packet's segments and whether it is
    /// complete, as [`Connection::gso_place`] does for one segment.
    fn extend_super(
        &mut self,
        now: Instant,
        out: &mut Outgoing,
        mut segs: u32,
        mut full: bool,
    ) -> (u32, bool) {
        let mss = out.payload.len();
        let mut joined = 1;
        while !full && MAX_TCP_HEADERS + (joined + 1) * mss <= self.tso_max as usize {
            let Some(snd) = self.state.snd() else { break };
            let off = ((snd.nxt - snd.una).max(0) as usize).min(self.snd_buf.len());
            // Only full segments, and not the one the FIN would ride on, nor past the
            // end of an skb.
            if self.sendable(snd, now).0 != mss
                || self.skb_ends_at(snd.nxt)
                || (snd.fin_queued && off + mss == self.snd_buf.len())
            {
                break;
            }
            let (_, last) = self.gso_place(now);
            full = last;
            let snd = self.state.snd_mut().expect("checked above");
            let seq = snd.nxt;
            snd.rack.on_send(seq, now);
            snd.last_seg = seq;
            snd.nxt = seq + mss as u32;
            snd.max = snd.nxt;
            snd.on_recovery_send(mss as u32);
            out.payload.end += mss;
            self.stats.bytes_out += mss as u64;
            joined += 1;
            segs += 1;
        }
        if joined > 1 {
            out.segment_size = mss as u16;
        }
        (segs, full)
    }

    /// Put the next new segment into the packet Linux would be building now (its TSO
    /// sizing: tcp_tso_autosize within tcp_cwnd_test's quota), starting a packet when
    /// none is open at this instant: (segments in the packet with this one, whether it
    /// is the packet's last).
    fn gso_place(&mut self, now: Instant) -> (u32, bool) {
        let mss = self.neg.snd_mss.max(1) as u64;
        let Some(snd) = self.state.snd() else {
            return (1, true);
        };
        let (left, segs) = match snd.gso {
            Some((at, left, segs)) if at == now && left > 0 => (left, segs),
            _ => {
                let cwnd = u64::from(snd.cwnd()) / mss;
                let in_flight = u64::from(snd.in_flight(now, self.neg.sack)) / mss;
                // tcp_cwnd_test: at most half the window per packet, and what it allows.
                let quota = (cwnd / 2).max(1).min(cwnd.saturating_sub(in_flight).max(1));
                (quota.min(self.tso_max_segs(snd)) as u32, 0)
            }
        };
        let snd = self.state.snd_mut().expect("checked above");
        let (left, segs) = (left - 1, segs + 1);
        snd.gso = Some((now, left, segs));
        (segs, left == 0)
    }

    /// Linux's tcp_tso_autosize: the segments of a packet, about a millisecond of the
    /// pacing rate (cwnd per SRTT, times 2 in slow start, 1.2 after), plus a share of
    /// 64 KiB on paths under a few milliseconds, at least tcp_min_tso_segs.
    fn tso_max_segs(&self, snd: &Snd) -> u64 {
        let mss = self.neg.snd_mss.max(1) as u64;
        let cwnd = u64::from(snd.cwnd()) / mss;
        let srtt_us = snd.srtt().as_micros().max(1) as u64;
        let ratio = if u64::from(snd.cwnd()) < u64::from(snd.cc.ssthresh()) / 2 {
            200
        } else {
            120
        };
        let rate = mss * cwnd.max(1) * ratio * 10_000 / srtt_us; // bytes per second
        let mut bytes = rate >> 10;
        let min_rtt_us = snd.rack.min_rtt().unwrap_or(snd.srtt()).as_micros() as u64;
        let shift = min_rtt_us >> 9;
        if shift < 32 {
            bytes += 65_536 >> shift;
        }
        (bytes.min(65_536) / mss).max(u64::from(self.min_tso_segs))
    }

    /// RFC 8985 7.3: the probe is one new segment if the peer's window has room for it
    /// (cwnd notwithstanding), else the last segment sent again.
    fn tail_loss_probe(&mut self, now: Instant) -> Option<Outgoing> {
        let mss = self.payload_mss();
        let buf_len = self.snd_buf.len();
        let mark_room = self.state.snd().and_then(|s| self.mark_room(s.max));
        let snd = self.state.snd_mut()?;
        if !snd.tlp_due {
            return None;
        }
        snd.tlp_due = false;
        let sent = (snd.max - snd.una).max(0) as usize;
        let unsent = buf_len.saturating_sub(sent);
        let wnd_room = (snd.wnd as usize).saturating_sub(sent);
        let (start, len, fin, new) = if unsent > 0 && wnd_room > 0 && snd.nxt == snd.max {
            let room = mark_room.filter(|r| *r > 0).unwrap_or(mss);
            (
                snd.max,
                unsent.min(mss).min(wnd_room).min(room),
                false,
                true,
            )
        } else {
            // The newest segment sent, again (a FIN sent on its own is probed alone).
            let data_sent = sent.min(buf_len);
            let fin = snd.fin_queued && sent > buf_len;
            let from = ((snd.last_seg - snd.una).max(0) as usize).min(data_sent);
            let len = (data_sent - from).min(mss);
            let from = data_sent - len;
            (snd.una + from as u32, len, fin, false)
        };
        if len == 0 && !fin {
            return None;
        }
        let mut out = self.data_segment(now, start, len, fin);
        self.ecn_mark(&mut out, new);
        let snd = self.state.snd_mut()?;
        let end = start + len as u32 + fin as u32;
        if new {
            snd.rack.on_send(start, now);
            snd.nxt = end;
            snd.max = end;
            snd.last_send = Some(now);
        } else {
            snd.on_retransmit(now, start, end);
            self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        }
        snd.start_rtx_timer(now);
        self.stats.tail_loss_probes = self.stats.tail_loss_probes.wrapping_add(1);
        Some(out)
    }

    /// Whether SACK recovery has a lost hole to resend and cwnd has room for it.
    fn hole_due(&self, snd: &Snd, now: Instant) -> bool {
        self.neg.sack
            && matches!(snd.recovery, Recovery::Fast { .. })
            && snd.pipe(now) < snd.cwnd()
            && snd.next_lost(now).is_some()
    }

    /// RFC 6675 NextSeg() rule 1: while SACK recovery runs and pipe leaves room in cwnd,
    /// resend the first hole, at or after HighRxt, that the scoreboard deems lost.
    fn retransmit_hole(&mut self, now: Instant) -> Option<Outgoing> {
        let mss = self.payload_mss() as u32;
        let buf_len = self.snd_buf.len() as u32;
        let snd = self.state.snd()?;
        if !self.hole_due(snd, now) {
            return None;
        }
        let pipe = snd.pipe(now);
        let (start, end) = snd.next_lost(now)?;
        let end = end.min(snd.una + buf_len);
        if end <= start {
            return None;
        }
        let mut len = ((end - start) as u32).min(mss) as usize;
        if let Some(room) = self.mark_room(start).filter(|r| *r > 0) {
            len = len.min(room);
        }
        // The packet ends where the peer's SACKs resume (Linux resends whole lost skbs;
        // packets are followed only where its skbs are).
        let packet = self.keeps_skbs().then(|| {
            let hole_end = snd.sacked.next_hole(start, snd.max).map_or(end, |h| h.1);
            let room = snd.cwnd().saturating_sub(pipe) / mss.max(1);
            (hole_end, room.min(self.tso_max_segs(snd) as u32))
        });
        let mut out = self.data_segment(now, start, len, false);
        if let Some((hole_end, segs)) = packet {
            if self.rtx_packet_psh(start, len, hole_end, segs) {
                out.flags |= TcpFlags::PSH;
            }
        }
        let snd = self.state.snd_mut()?;
        snd.on_retransmit(now, start, start + len as u32);
        snd.pipe_after_retransmit(now, pipe, len as u32);
        snd.on_recovery_send(len as u32);
        Undo::on_retransmit(&mut snd.undo, out.options.timestamps.map(|t| t.tsval));
        self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        Some(out)
    }

    /// A segment carrying `len` bytes from `seq` (and FIN when asked), with ACK.
    fn data_segment(&mut self, now: Instant, seq: SeqNum, len: usize, fin: bool) -> Outgoing {
        // Linux's interactive ("pingpong") mode: data sent within the delayed-ACK time of
        // data received looks like request/response; ACKs are delayed to ride on replies.
        // Linux's lrcvtime also starts when the connection is established
        // (tcp_finish_connect, tcp_create_openreq_child): a request written at once
        // after the handshake counts too.
        // The delayed-ACK timeout (icsk_ack.ato) is 0 until the first data arrives or a
        // SYN-ACK finds a writer waiting: until then nothing counts (Linux:
        // tcp_event_data_sent).
        let established_at =
            matches!(self.state, State::Established(_)).then_some(self.state_since);
        let heard = if self.last_data_in.is_some() || self.write_pending() {
            self.last_data_in.max(established_at)
        } else {
            None
        };
        if len > 0
            && heard.is_some_and(|t| {
                now.checked_sub(self.delayed_ack.get())
                    .is_none_or(|l| t >= l)
            })
        {
            self.pingpong = true;
        }
        let mut out = self.ack_segment(now);
        let una = self.state.snd().map_or(seq, |s| s.una);
        let off = (seq - una).max(0) as usize;
        let carried = len.min(self.snd_buf.len().saturating_sub(off));
        out.payload = off..off + carried;
        self.stats.bytes_out += carried as u64;
        out.seq = seq;
        if self.has_urgent() {
            self.set_urgent(&mut out);
        }
        if fin {
            out.flags |= TcpFlags::FIN;
        }
        if len > 0 && self.psh_for(seq + len as u32, una + self.snd_buf.len() as u32) {
            out.flags |= TcpFlags::PSH;
        }
        out
    }

    /// `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` with our window and timestamps; clears `ack_now`.
    pub(crate) fn ack_segment(&mut self, now: Instant) -> Outgoing {
        // Every segment carries the ACK: nothing is left to delay.
        self.ack_now = false;
        self.delack = None;
        if core::mem::take(&mut self.ack_for_data) {
            // A quick ACK spent (Linux's tcp_dec_quickack_mode counts ACKs of new data).
            self.quick_acks = self.quick_acks.saturating_sub(1);
        }
        let window = self.update_window();
        let seq = self.state.snd_nxt().unwrap_or(SeqNum::new(0));
        let ack = self
            .state
            .rcv_window()
            .map_or(SeqNum::new(0), |(nxt, _)| nxt);
        self.last_ack_sent = ack;
        let timestamps = match &self.state {
            State::TimeWait(tw) => tw
                .timestamps(now)
                .map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
            _ => self.neg.timestamps.then(|| Timestamps {
                tsval: self.tsval(now),
                tsecr: self.ts_recent,
            }),
        };
        let mut options = TcpOptions {
            timestamps,
            ..TcpOptions::default()
        };
        let dsack = self.pending_dsack.take();
        if self.neg.sack {
            // RFC 2018 3: 4 blocks fit in the option space, 3 beside timestamps; a
            // D-SACK block goes first (RFC 2883 4).
            let max = if timestamps.is_some() { 3 } else { 4 };
            if let Some(d) = dsack {
                options.sack_blocks.push(d);
            }
            if let Some(rcv) = self.state.rcv() {
                let max = max - dsack.is_some() as usize;
                rcv.ooo
                    .sack_blocks(rcv.last_ooo, rcv.fin, max, &mut options.sack_blocks);
            }
        }
        let mut out = Outgoing {
            urgent: 0,
            seq,
            ack,
            flags: TcpFlags::ACK,
            window,
            options,
            payload: 0..0,
            segment_size: 0,
            ecn: Ecn::NotEct,
        };
        self.ecn_mark(&mut out, false);
        if self.has_urgent() {
            self.set_urgent(&mut out);
        }
        out
    }

    /// URG and the urgent pointer on a segment that starts before SND.UP.
    fn set_urgent(&self, out: &mut Outgoing) {
        out.flags = TcpFlags::from_bits(out.flags.bits() & !TcpFlags::URG.bits());
        out.urgent = 0;
        if let Some(up) = self.urgent_field(out.seq) {
            out.flags |= TcpFlags::URG;
            out.urgent = up;
        }
    }

    /// Move the advertised right edge forward when the buffer has room (never back:
    /// RFC 9293 3.8.6.2.2), and return the window field to send.
    fn update_window(&mut self) -> u16 {
        // Under memory pressure windows open little or not at all (never shrink).
        let free = match self.memory {
            MemoryLevel::Normal => self.rcv_free() as u32,
            MemoryLevel::Pressure => self.rcv_free().min(4 * self.local_mss as usize) as u32,
            MemoryLevel::Exhausted => 0,
        };
        let threshold = ((self.rcv_cap / 2) as u32).min(self.local_mss as u32);
        let scale = self.neg.rcv_wscale;
        if let Some(rcv) = self.state.rcv_mut() {
            let candidate = rcv.nxt + free;
            // Receiver SWS avoidance: only open the window by a worthwhile amount.
            if candidate > rcv.adv && (candidate - rcv.adv) as u32 >= threshold {
                rcv.adv = candidate;
            }
        }
        if let State::TimeWait(tw) = &self.state {
            return tw.rcv_wnd;
        }
        match self.state.rcv_window() {
            // A Fast Open child's data before the handshake ends: the window offered in
            // the SYN-ACK, rounded up to the scale's unit (Linux's __tcp_select_window
            // aligns the free space so that scaling does not take it away).
            Some((nxt, adv)) if matches!(self.state, State::SynRcvd(_)) => {
                ((adv - nxt).max(0) as u32).div_ceil(1 << scale).min(65535) as u16
            }
            Some((nxt, adv)) => (((adv - nxt).max(0) as u32) >> scale).min(65535) as u16,
            None => self.initial_window(),
        }
    }

    /// Arm or disarm the persist timer after anything changed (RFC 9293 3.8.6.1): it runs
    /// while the peer's window is too small for the next segment (zero, or less than
    /// sender SWS avoidance sends), data waits, and nothing is in flight to bring an ACK.
    pub(crate) fn settle(&mut self, now: Instant) {
        self.last_now = now;
        let fits = self.state.snd().map(|snd| self.window_fits(snd));
        // Corked data with nothing in flight: Linux's probe timer (tcp_check_probe_timer)
        // sends it when it fires, as the persist timer here.
        let corked = self.cork_holds()
            && self
                .state
                .snd()
                .is_some_and(|snd| self.sendable(snd, now).0 == 0);
        self.update_chrono(now, fits.is_some_and(|(want, fits)| want > 0 && !fits));
        if let (Some(snd), Some((want, fits))) = (self.state.snd_mut(), fits) {
            let stalled = want > 0 && (!fits || corked) && snd.una == snd.max;
            if stalled && snd.persist.deadline.is_none() {
                snd.persist.deadline = Some(now + snd.rtt.backed_off(snd.persist.backoff));
            } else if !stalled && snd.persist.deadline.is_some() {
                snd.persist = Retransmit::default();
            }
        }
    }

    /// Charge the time from now on to what limits sending (Linux's chrono statistics):
    /// `rwnd_limited`, new data waits for the peer's window.
    fn update_chrono(&mut self, now: Instant, rwnd_limited: bool) {
        let queued = self.snd_buf.len() > 0;
        if !queued && self.rare.is_none() {
            return;
        }
        let limit = super::chrono::limit_for(queued, self.want_writable, rwnd_limited);
        self.rare.get_or_insert_default().chrono.set(now, limit);
    }
}
