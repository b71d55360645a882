//! Packets in: parse an IP packet (or hold a fragment until its datagram is whole),
//! answer ICMP, demultiplex a TCP segment to its connection, else to the TIME_WAIT table,
//! else to the listen path (`listen.rs`).

use core::net::SocketAddr;

use super::md5::Md5Verdict;
use super::*;
use crate::tcp::{Disposition, Outgoing, TimeWaitVerdict};
use crate::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::{self, TcpFlags, TcpOptions, TcpRepr, WireError};
use crate::{Instant, TcpState};
use fragments::Verdict;
use tables::FourTuple;

impl Stack {
    /// Feed one IP packet (IPv4 or IPv6, no link header) that arrived at `now`.
    ///
    /// Anything may come in: a packet that is not for this stack, or does not parse, is
    /// counted in [`Stack::stats`] under its reason and otherwise ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
    /// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
    /// #     loop {
    /// #         let mut quiet = true;
    /// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
    /// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
    /// #         if quiet { break; }
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut client = Stack::new(Config::default());
    /// # client.add_address("198.18.0.1".parse()?);
    /// # let mut server = Stack::new(Config::default());
    /// # server.add_address("198.18.0.2".parse()?);
    /// # let now = Instant::ZERO;
    /// use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// // A SYN built by hand, as a device would deliver it.
    /// let mut options = TcpOptions::default();
    /// options.mss = Some(1460);
    /// let syn = TcpRepr {
    ///     src_port: 40000, dst_port: 80, seq: SeqNum::new(1000), ack: SeqNum::new(0),
    ///     flags: TcpFlags::SYN, window: 65535, urgent: 0, options, payload: &[],
    /// };
    /// let packet = wire::emit_tcp_packet("198.18.0.1".parse()?, "198.18.0.2".parse()?, 64, &syn)?;
    /// server.receive(now, &packet);
    /// // The answer: a SYN-ACK acknowledging the SYN.
    /// let reply = server.poll_transmit(now).unwrap();
    /// let (_, tcp) = wire::parse_tcp_packet(&reply)?;
    /// assert_eq!(tcp.flags, TcpFlags::SYN | TcpFlags::ACK);
    /// assert_eq!(tcp.ack, SeqNum::new(1001));
    ///
    /// // Bad input is counted, never a panic.
    /// server.receive(now, &packet[..30]);
    /// assert_eq!(server.stats().total_dropped(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn receive(&mut self, now: Instant, packet: &[u8]) {
        self.receive_packet(now, packet, false);
    }

    /// [`Stack::receive`] for a packet whose TCP checksum the device vouches for
    /// (receive checksum offload: verified by the hardware, or never computed because
    /// the packet was made on this host, as the kernel's `CHECKSUM_PARTIAL` packets
    /// reaching a TUN device are). Everything else is checked as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
    /// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
    /// #     loop {
    /// #         let mut quiet = true;
    /// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
    /// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
    /// #         if quiet { break; }
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut client = Stack::new(Config::default());
    /// # client.add_address("198.18.0.1".parse()?);
    /// # let mut server = Stack::new(Config::default());
    /// # server.add_address("198.18.0.2".parse()?);
    /// # let now = Instant::ZERO;
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// let mut syn = client.poll_transmit(now).unwrap();
    /// let last = syn.len() - 1;
    /// syn[last] ^= 0xff; // damage the TCP checksum
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// server.receive(now, &syn);
    /// assert_eq!(server.stats().dropped("bad_tcp_checksum"), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn receive_checksum_verified(&mut self, now: Instant, packet: &[u8]) {
        self.receive_packet(now, packet, true);
    }

    fn receive_packet(&mut self, now: Instant, packet: &[u8], verified: bool) {
        let (ip, payload) = match wire::parse_ip(packet) {
            Ok(parsed) => parsed,
            Err(WireError::Fragmented) => return self.fragment_input(now, packet),
            Err(e) => return self.stats.drop(e.reason()),
        };
        self.ip_input(now, &ip, payload, verified);
    }

    /// A fragment: held until its datagram is whole (RFC 791 3.2, RFC 8200 4.5), which
    /// then goes on as if it had arrived in one piece.
    pub(super) fn fragment_input(&mut self, now: Instant, packet: &[u8]) {
        let frag = match wire::parse_fragment(packet) {
            Ok(Some(frag)) => frag,
            Ok(None) => return self.stats.drop("frag_bad"),
            Err(e) => return self.stats.drop(e.reason()),
        };
        if !self.accepts_destination(frag.dst) && !self.udp_captures(frag.dst) {
            return self.stats.drop("not_our_address");
        }
        self.stats.fragments_in += 1;
        match self.fragments.push(now, &frag, &self.config) {
            Verdict::Held => {}
            Verdict::Dropped { reason, fragments } => self.stats.drop_many(reason, fragments),
            Verdict::Reassembled(whole) => {
                self.stats.reassembled += 1;
                match wire::parse_ip(&whole) {
                    Ok((ip, payload)) => self.ip_input(now, &ip, payload, false),
                    // RFC 8200 4.5: a Fragment header in the Fragmentable Part; no nesting.
                    Err(WireError::Fragmented) => self.stats.drop("frag_bad"),
                    Err(e) => self.stats.drop(e.reason()),
                }
            }
        }
    }

    /// A whole IP packet: to ICMP if it is addressed to one of our addresses, to TCP if
    /// to one of ours or to one a catch-all listener covers (see `tcp_input`).
    pub(super) fn ip_input(
        &mut self,
        now: Instant,
        ip: &wire::IpInfo,
        payload: &[u8],
        verified: bool,
    ) {
        let icmp = match ip.protocol {
            PROTO_ICMP => ip.src.is_ipv4(),
            PROTO_ICMPV6 => ip.src.is_ipv6(),
            _ => false,
        };
        if icmp && !self.addresses.contains(&ip.dst) {
            return self.stats.drop("not_our_address");
        }
        match ip.protocol {
            _ if icmp => self.icmp_input(now, ip, payload),
            crate::wire::PROTO_UDP => {
                let captured = self.udp_captures(ip.dst);
                if self.addresses.contains(&ip.dst) || captured {
                    self.udp_input(now, ip, payload, verified)
                } else {
                    self.stats.drop("not_our_address")
                }
            }
            _ if verified => match wire::parse_tcp_verified(ip, payload) {
                Ok(seg) => self.tcp_input(now, ip, payload, &seg, None),
                Err(e) => self.stats.drop(e.reason()),
            },
            _ => match wire::parse_tcp_deferred(ip, payload) {
                Ok((seg, pending)) => self.tcp_input(now, ip, payload, &seg, Some(pending)),
                Err(e) => self.stats.drop(e.reason()),
            },
        }
    }

    /// A TCP segment addressed to us: to its connection, else TIME_WAIT, else a listener.
    /// `pending` is the part of its checksum still to verify (the payload's): when the
    /// payload goes in order into a connection's receive buffer it is summed as it is
    /// copied there, else summed first. `raw` is the segment's bytes (for TCP-MD5).
    pub(super) fn tcp_input(
        &mut self,
        now: Instant,
        ip: &wire::IpInfo,
        raw: &[u8],
        seg: &TcpRepr<'_>,
        pending: Option<wire::PendingChecksum>,
    ) {
        let tuple = FourTuple {
            local: SocketAddr::new(ip.dst, seg.dst_port),
            remote: SocketAddr::new(ip.src, seg.src_port),
        };
        self.rx_ecn = ip.ecn;
        let index = self.by_tuple.get(&self.slots, &tuple);
        // A connection or TIME_WAIT entry may have a captured destination as its local
        // address; anything else must be to one of ours or to one a listener captures.
        if index.is_none()
            && !self.addresses.contains(&ip.dst)
            && !self.time_wait.contains(&tuple)
            && !self.accepts_destination(ip.dst)
        {
            return self.stats.drop("not_our_address");
        }
        let staged = match (pending, index) {
            (None, _) => false,
            (Some(pending), Some(index)) => match self.stage_payload(index, seg, pending) {
                Some(true) => true,
                Some(false) => return self.stats.drop(WireError::BadTcpChecksum.reason()),
                None => false,
            },
            (Some(_), None) => false,
        };
        if let Some(pending) = pending.filter(|_| !staged) {
            if !pending.verify(seg.payload) {
                return self.stats.drop(WireError::BadTcpChecksum.reason());
            }
        }
        // RFC 2385 as Linux's tcp_inbound_hash: only when a key was ever set, or the
        // segment carries the option.
        let mut signed_reply = false;
        if self.md5.is_some() || seg.options.md5.is_some() || seg.options.md5_malformed {
            match self.md5_inbound(ip, raw, seg, index, tuple) {
                Md5Verdict::Accept => {}
                Md5Verdict::Drop(reason) => {
                    if let Some(conn) = index
                        .filter(|_| staged)
                        .and_then(|i| self.slots[i as usize].conn.as_mut())
                    {
                        conn.rcv_buf.unstage();
                    }
                    return self.stats.drop(reason);
                }
                Md5Verdict::ReplySigned(key) => {
                    if let Some(state) = self.md5.as_mut() {
                        state.reply_key = Some(key);
                        signed_reply = true;
                    }
                }
            }
        }
        self.stats.segments_in += 1;
        if seg.flags.rst() {
            self.stats.resets_received += 1;
        }
        if let Some(index) = index {
            self.deliver(now, index, tuple, seg);
            if staged {
                // Staged bytes the connection did not take are forgotten.
                if let Some(conn) = self.slots[index as usize].conn.as_mut() {
                    conn.rcv_buf.unstage();
                }
            }
            return;
        }
        if self.time_wait.contains(&tuple) {
            return self.time_wait_input(now, tuple, seg);
        }
        self.listen_input(now, tuple, seg, None);
        if signed_reply {
            if let Some(state) = self.md5.as_mut() {
                state.reply_key = None;
            }
        }
    }

    /// Copy an in-order payload into the free room of its connection's receive buffer,
    /// summing it on the way, and say whether the checksum is right (`None`: not
    /// possible here, verify it apart). The bytes count only once the connection takes
    /// them (`ByteRing::commit_staged`).
    fn stage_payload(
        &mut self,
        index: u32,
        seg: &TcpRepr<'_>,
        pending: wire::PendingChecksum,
    ) -> Option<bool> {
        let conn = self.slots[index as usize].conn.as_mut()?;
        let in_order = conn.state.rcv().is_some_and(|rcv| rcv.nxt == seg.seq);
        if !in_order || seg.payload.is_empty() {
            return None;
        }
        let sum = conn.rcv_buf.stage(0, seg.payload)?;
        let ok = pending.verify_with(sum);
        if !ok {
            conn.rcv_buf.unstage();
        }
        Some(ok)
    }

    /// A segment for a connection in the table.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        index: u32,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) {
        let slot = &self.slots[index as usize];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        // Linux (tcp_abort_on_overflow = 0): when the accept queue is full, the ACK that
        // would complete a handshake is dropped; the SYN-ACK retransmission retries later.
        if conn.tcp_state() == TcpState::SynReceived
            && seg.flags.ack()
            && !seg.flags.rst()
            && !seg.flags.syn()
        {
            if let Some(l) = slot
                .listener
                .and_then(|l| self.listeners[l as usize].as_ref())
            {
                if l.accept_queue_full() {
                    return self.stats.drop("listen_overflow");
                }
            }
        }
        let Some(conn) = self.slots[index as usize].conn.as_mut() else {
            return;
        };
        conn.memory = self.memory_level;
        conn.ecn.rx = self.rx_ecn;
        self.scratch.lend(conn);
        let disposition = conn.on_segment(now, seg, &self.config);
        match disposition {
            Disposition::Done => {}
            Disposition::Dropped(reason) => self.stats.drop(reason),
            Disposition::Reopen(_) => {}
        }
        self.after_activity(now, index);
        if let Disposition::Reopen(isn) = disposition {
            self.listen_input(now, tuple, seg, Some(isn));
        }
    }

    /// A segment for a 4-tuple in the TIME_WAIT table.
    pub(super) fn time_wait_input(&mut self, now: Instant, tuple: FourTuple, seg: &TcpRepr<'_>) {
        let (duration, rfc1337) = (self.config.time_wait, self.config.tcp_rfc1337);
        let Some(mut tw) = self.time_wait.get(&tuple).map(|e| e.tw) else {
            return;
        };
        let verdict = tw.on_segment(now, seg, duration, rfc1337);
        if verdict != TimeWaitVerdict::Kill && !matches!(verdict, TimeWaitVerdict::Reopen(_)) {
            // Keep what the segment changed (TS.Recent, a restarted 2*MSL).
            self.time_wait.update(&tuple, tw);
        }
        match verdict {
            TimeWaitVerdict::Drop => self.stats.drop("time_wait"),
            TimeWaitVerdict::Ack => {
                let timestamps = tw
                    .timestamps(now)
                    .map(|(tsval, tsecr)| wire::Timestamps { tsval, tsecr });
                let out = Outgoing {
                    urgent: 0,
                    seq: tw.snd_nxt,
                    ack: tw.rcv_nxt,
                    flags: TcpFlags::ACK,
                    window: tw.rcv_wnd,
                    options: TcpOptions {
                        timestamps,
                        ..TcpOptions::default()
                    },
                    payload: 0..0,
                    segment_size: 0,
                    ecn: wire::Ecn::NotEct,
                };
                self.queue_ctl(tuple, &out);
            }
            TimeWaitVerdict::Reopen(isn) => {
                self.end_time_wait(now, tuple, "new SYN reopens the 4-tuple");
                self.listen_input(now, tuple, seg, Some(isn));
            }
            TimeWaitVerdict::Kill => {
                self.end_time_wait(now, tuple, "rcv RST in TIME_WAIT (tcp_rfc1337 off)")
            }
        }
    }

    pub(super) fn end_time_wait(&mut self, now: Instant, tuple: FourTuple, cause: &'static str) {
        if let Some(entry) = self.time_wait.remove(&tuple) {
            self.time_wait_closed(entry.conn, tuple, now, cause);
        }
    }

    /// Report the end of a TIME_WAIT kept outside the connection table.
    pub(super) fn time_wait_closed(
        &mut self,
        conn: ConnectionHandle,
        tuple: FourTuple,
        at: Instant,
        cause: &'static str,
    ) {
        self.events.push_back(Event::StateChanged {
            conn,
            local: tuple.local,
            remote: tuple.remote,
            from: TcpState::TimeWait,
            to: TcpState::Closed,
            at,
            cause,
        });
    }
}
