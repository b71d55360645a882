//! TCP urgent data (RFC 9293 3.8.5, MUST-30/MUST-31), as Linux implements it.
//!
//! Receiving: a segment with URG moves the urgent mark to the byte its pointer names.
//! As Linux (the default, `tcp_stdurg` off) and BSD read the pointer, it points to the
//! byte *after* the urgent data, so the urgent byte is `SEG.SEQ + SEG.UP - 1` (Linux:
//! tcp_check_urg). Only the last urgent byte is special: without SO_OOBINLINE it is taken
//! out of the stream and read with recv(MSG_OOB), once; with SO_OOBINLINE it stays in the
//! stream. Either way a read never crosses the mark in one call (it stops before it:
//! Linux's tcp_recvmsg), SIOCATMARK says whether the next byte read is the mark, and
//! splice (Linux's tcp_read_sock) stops at the mark altogether. A later URG that points
//! further moves the mark: the earlier urgent byte becomes ordinary data (unless it is the
//! very next byte to read, which is then dropped, as Linux does).
//!
//! Sending: send(MSG_OOB) makes the last byte written urgent (SND.UP, Linux's snd_up =
//! write_seq in tcp_mark_urg); every segment that starts before SND.UP carries URG with
//! the pointer SND.UP - SEG.SEQ (0xFFFF when SND.UP is further than the field can say),
//! until the peer has acknowledged SND.UP (Linux's tcp_urg_mode and __tcp_transmit_skb).
//! Nagle does not hold data back while in urgent mode (Linux's tcp_nagle_test).
//!
//! A connection keeps this state in a box hung from its other rarely needed state
//! (`Rare`), from the first URG received, send(MSG_OOB) or SO_OOBINLINE on; one bit of
//! `Connection::tfo` says it is there, so others pay one test of a byte (and `Rare` one
//! pointer).

use alloc::boxed::Box;

use super::chrono::Rare;
use super::conn::{ConnEvent, Connection, URGENT};
use crate::error::Error;
use crate::wire::{SeqNum, TcpRepr};

/// The urgent byte named by the latest URG (Linux's `urg_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UrgByte {
    /// Not received yet (TCP_URG_NOTYET).
    NotYet,
    /// Received, not read with MSG_OOB (TCP_URG_VALID).
    Valid(u8),
    /// Read with MSG_OOB (TCP_URG_READ); its place in the stream is still skipped.
    Read,
}

/// The receive side's mark: the urgent byte's sequence number (Linux's `urg_seq`) and
/// the application's read position (`copied_seq`), kept while a mark is pending.
#[derive(Clone, Copy, Debug)]
struct RcvMark {
    seq: SeqNum,
    byte: UrgByte,
    copied: SeqNum,
}

/// A connection's urgent-data state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Urgent {
    /// SO_OOBINLINE: the urgent byte stays in the stream.
    inline: bool,
    rcv: Option<RcvMark>,
    /// SND.UP: one past the last urgent byte we sent, while not yet acknowledged.
    snd_up: Option<SeqNum>,
}

/// What a read at the head of the receive buffer may take with a mark pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Skip this many bytes first (the out-of-band urgent byte: 0 or 1).
    pub(crate) skip: usize,
    /// Then read at most this many.
    pub(crate) limit: usize,
}

impl Urgent {
    /// How a read of the `avail` buffered bytes goes: stop before the mark, or (at the
    /// mark) skip the urgent byte unless it is inline (Linux's tcp_recvmsg).
    fn plan(&self, avail: usize) -> ReadPlan {
        let Some(m) = self.rcv else {
            return ReadPlan {
                skip: 0,
                limit: avail,
            };
        };
        let off = (m.seq - m.copied).max(0) as usize;
        if off > 0 {
            return ReadPlan {
                skip: 0,
                limit: avail.min(off),
            };
        }
        let skip = usize::from(!self.inline && avail > 0);
        ReadPlan {
            skip,
            limit: avail - skip,
        }
    }

    /// `n` bytes left the head of the stream: past the mark, it is forgotten.
    fn consumed(&mut self, n: usize) {
        if let Some(m) = self.rcv.as_mut() {
            m.copied += n as u32;
            if m.copied > m.seq {
                self.rcv = None;
            }
        }
    }
}

fn urg(rare: &Option<Box<Rare>>) -> Option<&Urgent> {
    rare.as_deref()?.urgent.as_deref()
}

fn urg_mut(rare: &mut Option<Box<Rare>>) -> Option<&mut Urgent> {
    rare.as_deref_mut()?.urgent.as_deref_mut()
}

impl Connection {
    /// The connection has urgent-data state (a flag bit: the fast path's one test).
    #[inline]
    pub(crate) fn has_urgent(&self) -> bool {
        self.tfo & URGENT != 0
    }

    fn urgent_box(&mut self) -> &mut Urgent {
        self.tfo |= URGENT;
        self.rare
            .get_or_insert_default()
            .urgent
            .get_or_insert_default()
    }

    /// The application's read position (Linux's copied_seq), where the receive side
    /// has one.
    fn copied_seq(&self) -> Option<SeqNum> {
        let rcv = self.state.rcv()?;
        Some(rcv.nxt - self.rcv_buf.len() as u32)
    }

    /// RFC 9293 3.10.7.4 sixth (check the URG bit), before the segment's text is taken:
    /// a new urgent pointer moves the mark (Linux's tcp_check_urg), and a pending mark
    /// whose byte this segment carries takes it (Linux's tcp_urg).
    pub(crate) fn on_urgent(&mut self, seg: &TcpRepr<'_>) {
        let (Some(rcv_nxt), Some(copied)) = (self.state.rcv().map(|r| r.nxt), self.copied_seq())
        else {
            return;
        };
        if seg.flags.urg() {
            // Linux's default (tcp_stdurg off): the pointer is one past the urgent byte.
            let up = u32::from(seg.urgent);
            let ptr = seg.seq + up.saturating_sub(1);
            let current = urg(&self.rare).and_then(|u| u.rcv);
            let fresh = ptr >= copied && ptr >= rcv_nxt && current.is_none_or(|m| ptr > m.seq);
            // (Linux: a pointer already read past, a replayed one below RCV.NXT, or one
            // no newer than the current mark changes nothing.)
            if fresh {
                let inline = urg(&self.rare).is_some_and(|u| u.inline);
                if let Some(m) = current {
                    // The old urgent byte is the next to read, out of band: it leaves the
                    // stream rather than turn into data (Linux's tcp_check_urg).
                    if m.seq == copied && !inline && copied != rcv_nxt {
                        self.rcv_buf.consume(1);
                    }
                }
                let copied = self.copied_seq().unwrap_or(copied);
                self.urgent_box().rcv = Some(RcvMark {
                    seq: ptr,
                    byte: UrgByte::NotYet,
                    copied,
                });
            }
        }
        let Some(u) = urg_mut(&mut self.rare) else {
            return;
        };
        if let Some(m) = u.rcv.as_mut().filter(|m| m.byte == UrgByte::NotYet) {
            let off = m.seq - seg.seq;
            if off >= 0 && (off as usize) < seg.payload.len() {
                m.byte = UrgByte::Valid(seg.payload[off as usize]);
                // (Linux wakes readers: sk_data_ready; poll reports EPOLLPRI.)
                self.events.push(ConnEvent::Readable);
            }
        }
    }

    /// After in-order data was added: a pending mark whose byte is now in the receive
    /// buffer takes it (a byte the URG segment did not carry, nor the segment that
    /// filled the gap before it).
    pub(crate) fn urgent_delivered(&mut self) {
        let Some(copied) = self.copied_seq() else {
            return;
        };
        let len = self.rcv_buf.len();
        let Some(u) = urg_mut(&mut self.rare) else {
            return;
        };
        if let Some(m) = u.rcv.as_mut().filter(|m| m.byte == UrgByte::NotYet) {
            let off = m.seq - copied;
            if off >= 0 && (off as usize) < len {
                let (a, _) = self.rcv_buf.slices(off as usize, 1);
                if let Some(&b) = a.first() {
                    m.byte = UrgByte::Valid(b);
                }
            }
        }
    }

    /// How the next read goes (see [`ReadPlan`]); None without a pending mark (the
    /// fast path: read everything).
    #[inline]
    pub(crate) fn urgent_plan(&self) -> Option<ReadPlan> {
        if !self.has_urgent() {
            return None;
        }
        let u = urg(&self.rare)?;
        u.rcv?;
        Some(u.plan(self.rcv_buf.len()))
    }

    /// Bytes before the urgent mark, with one pending (None: no mark).
    pub(crate) fn mark_distance(&self) -> Option<usize> {
        if !self.has_urgent() {
            return None;
        }
        let m = urg(&self.rare)?.rcv?;
        Some((m.seq - m.copied).max(0) as usize)
    }

    /// Read as Linux's tcp_read_sock does for splice(): up to the urgent mark and never
    /// past it (SO_OOBINLINE or not), so `Ok(0)` with bytes still queued means "at the
    /// mark"; otherwise as [`Connection::recv`].
    pub(crate) fn recv_to_mark(
        &mut self,
        now: crate::Instant,
        buf: &mut [u8],
        cfg: &crate::config::Config,
    ) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.rcv_buf.is_empty() {
            return self.recv_empty();
        }
        let limit = self
            .mark_distance()
            .map_or(self.rcv_buf.len(), |d| d.min(self.rcv_buf.len()))
            .min(buf.len());
        if limit == 0 {
            return Ok(0);
        }
        self.recv(now, &mut buf[..limit], cfg)
    }

    /// SIOCINQ and TCP_INQ as Linux counts them (tcp_inq): with an out-of-band urgent
    /// byte received and not yet passed, the bytes before it; else all that is queued.
    pub(crate) fn inq(&self) -> usize {
        let len = self.rcv_buf.len();
        if !self.has_urgent() {
            return len;
        }
        match urg(&self.rare) {
            Some(u) if !u.inline => u
                .rcv
                .map(|m| (m.seq - m.copied).max(0) as usize)
                .filter(|off| *off < len)
                .unwrap_or(len),
            _ => len,
        }
    }

    /// `n` bytes were taken from the head of the receive buffer.
    #[inline]
    pub(crate) fn urgent_consumed(&mut self, n: usize) {
        if !self.has_urgent() {
            return;
        }
        if let Some(u) = urg_mut(&mut self.rare) {
            u.consumed(n);
        }
    }

    /// recv(MSG_OOB): the urgent byte (Linux's tcp_recv_urg). InvalidState (EINVAL)
    /// with SO_OOBINLINE, with no mark, or once it was read; WouldBlock (EAGAIN: MSG_OOB
    /// never waits) while it has not arrived, `Ok(None)` (end-of-stream) then if the
    /// peer can send no more.
    pub(crate) fn recv_oob(&mut self, peek: bool) -> Result<Option<u8>, Error> {
        let invalid = Error::InvalidState(self.tcp_state());
        let ended = self.fin_received || self.rcv_shutdown || self.is_closed();
        let u = urg_mut(&mut self.rare).ok_or(invalid)?;
        let m = u.rcv.as_mut().filter(|_| !u.inline).ok_or(invalid)?;
        match m.byte {
            UrgByte::Read => Err(invalid),
            UrgByte::Valid(b) => {
                if !peek {
                    m.byte = UrgByte::Read;
                }
                Ok(Some(b))
            }
            UrgByte::NotYet if ended => Ok(None),
            UrgByte::NotYet => Err(Error::WouldBlock),
        }
    }

    /// SIOCATMARK: the next byte to read is the urgent mark.
    pub(crate) fn at_mark(&self) -> bool {
        urg(&self.rare)
            .and_then(|u| u.rcv)
            .is_some_and(|m| m.seq == m.copied)
    }

    /// An urgent byte waits to be read with MSG_OOB (poll's EPOLLPRI).
    pub(crate) fn urgent_ready(&self) -> bool {
        urg(&self.rare)
            .and_then(|u| u.rcv)
            .is_some_and(|m| matches!(m.byte, UrgByte::Valid(_)))
    }

    /// SO_OOBINLINE.
    pub(crate) fn set_oob_inline(&mut self, on: bool) {
        if on || self.has_urgent() {
            self.urgent_box().inline = on;
        }
    }

    /// SO_OOBINLINE as set.
    pub(crate) fn oob_inline(&self) -> bool {
        urg(&self.rare).is_some_and(|u| u.inline)
    }

    /// send(MSG_OOB) wrote up to `write_seq`: its last byte is urgent (Linux's
    /// tcp_mark_urg).
    pub(crate) fn mark_urgent(&mut self, write_seq: SeqNum) {
        self.urgent_box().snd_up = Some(write_seq);
    }

    /// In urgent mode: SND.UP not yet acknowledged (Linux's tcp_urg_mode).
    pub(crate) fn urgent_mode(&self) -> bool {
        match (urg(&self.rare).and_then(|u| u.snd_up), self.state.snd()) {
            (Some(up), Some(snd)) => up > snd.una,
            _ => false,
        }
    }

    /// After an ACK: SND.UP acknowledged ends urgent mode.
    pub(crate) fn urgent_acked(&mut self) {
        let Some(una) = self.state.snd().map(|s| s.una) else {
            return;
        };
        if let Some(u) = urg_mut(&mut self.rare) {
            if u.snd_up.is_some_and(|up| up <= una) {
                u.snd_up = None;
            }
        }
    }

    /// The urgent pointer of a segment from `seq` (None: no URG): SND.UP - SEG.SEQ for a
    /// segment that starts before SND.UP; 0xFFFF when that does not fit and the segment
    /// is within 64 KiB of SND.NXT (Linux's __tcp_transmit_skb).
    pub(crate) fn urgent_field(&self, seq: SeqNum) -> Option<u16> {
        let up = urg(&self.rare)?.snd_up?;
        let snd = self.state.snd()?;
        if up <= snd.una || seq >= up {
            return None;
        }
        let dist = (up - seq) as u32;
        if dist < 0x10000 {
            Some(dist as u16)
        } else if seq + 0xFFFF > snd.nxt {
            Some(0xFFFF)
        } else {
            None
        }
    }
}
