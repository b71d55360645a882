//! TIME_WAIT: what remains of a connection after both FINs, kept for 2*MSL so that late
//! segments of the old connection are recognised (and a lost last ACK is repeated)
//! instead of being taken for a new one (RFC 9293 3.6.1). The same struct serves a
//! connection the application still holds and the stack's compact TIME_WAIT table.

use core::time::Duration;

use crate::wire::{SeqNum, TcpRepr};
use crate::Instant;

/// The whole of a TIME_WAIT connection: sequence numbers, timestamp and deadline.
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
/// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// # pump(now, &mut client, &mut server);
/// # let accepted = server.accept(listener)?;
/// # while client.poll_event().is_some() {}
/// # while server.poll_event().is_some() {}
/// let (local, remote) = (client.local_addr(conn)?, client.peer_addr(conn)?);
/// client.close(now, conn)?;
/// server.close(now, accepted)?;
/// pump(now, &mut client, &mut server);
/// let tw = client.time_wait_entry(local, remote).unwrap();
/// assert_eq!(tw.expiry, now + std::time::Duration::from_secs(60)); // 2*MSL
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    /// Our next sequence number (after our FIN).
    pub snd_nxt: SeqNum,
    /// The peer's next sequence number (after its FIN).
    pub rcv_nxt: SeqNum,
    /// Window advertised in re-ACKs (as on the wire).
    pub rcv_wnd: u16,
    /// TS.Recent when timestamps were on (RFC 7323).
    pub ts_recent: Option<u32>,
    /// Offset added to our millisecond clock to form TSval.
    pub ts_offset: u32,
    /// When TIME_WAIT ends.
    pub expiry: Instant,
}

/// What to do with a segment that arrived in TIME_WAIT.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use synack::tcp::{TimeWait, TimeWaitVerdict};
/// use synack::wire::{SeqNum, TcpFlags, TcpRepr};
/// use synack::Instant;
/// let mut tw = TimeWait {
///     snd_nxt: SeqNum::new(500), rcv_nxt: SeqNum::new(900), rcv_wnd: 512,
///     ts_recent: None, ts_offset: 0, expiry: Instant::from_secs(60),
/// };
/// // The peer's FIN again (our last ACK was lost): acknowledge it again.
/// let fin = TcpRepr {
///     src_port: 80, dst_port: 40000, seq: SeqNum::new(899), ack: SeqNum::new(500),
///     flags: TcpFlags::FIN | TcpFlags::ACK, window: 512, urgent: 0,
///     options: Default::default(), payload: &[],
/// };
/// let verdict = tw.on_segment(Instant::from_secs(1), &fin, Duration::from_secs(60), true);
/// assert_eq!(verdict, TimeWaitVerdict::Ack);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeWaitVerdict {
    /// Ignore it.
    Drop,
    /// Answer with an ACK (`<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`).
    Ack,
    /// A new SYN that may reopen the 4-tuple: end TIME_WAIT and hand the SYN to a
    /// listener, using this ISN (above anything the old connection sent).
    Reopen(SeqNum),
    /// End TIME_WAIT now (a RST, when RFC 1337 protection is off).
    Kill,
}

impl TimeWait {
    /// Process one segment, following RFC 9293 3.10.7.4 and Linux's tcp_timewait_state_process.
    pub fn on_segment(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        duration: Duration,
        rfc1337: bool,
    ) -> TimeWaitVerdict {
        let flags = seg.flags;
        let seg_ts = seg.options.timestamps.map(|t| t.tsval);
        // RFC 7323 5.3: PAWS rejects a segment whose TSval is older than TS.Recent.
        let paws_reject = match (self.ts_recent, seg_ts) {
            (Some(recent), Some(val)) => (val.wrapping_sub(recent) as i32) < 0 && !flags.rst(),
            _ => false,
        };
        let seg_len = seg.seg_len();
        if !paws_reject && seg.seq == self.rcv_nxt && (seg_len == 0 || flags.rst()) {
            if flags.rst() {
                // RFC 1337: a RST must not cut TIME_WAIT short (TIME_WAIT assassination).
                return if rfc1337 {
                    TimeWaitVerdict::Drop
                } else {
                    TimeWaitVerdict::Kill
                };
            }
            // An in-window bare ACK: the peer is still there; keep the full 2*MSL.
            self.expiry = now + duration;
            if let Some(v) = seg_ts {
                self.ts_recent = Some(v);
            }
            return TimeWaitVerdict::Drop;
        }
        // RFC 9293 3.10.7.4 and RFC 6191: a new SYN may reopen the connection if its
        // sequence number is above RCV.NXT, or (with timestamps) its TSval is newer.
        let newer_ts = matches!((self.ts_recent, seg_ts), (Some(r), Some(v)) if (r.wrapping_sub(v) as i32) < 0);
        if flags.syn()
            && !flags.rst()
            && !flags.ack()
            && !paws_reject
            && (seg.seq > self.rcv_nxt || newer_ts)
        {
            let mut isn = self.snd_nxt + 65535 + 2;
            if isn.get() == 0 {
                isn += 1;
            }
            return TimeWaitVerdict::Reopen(isn);
        }
        if flags.rst() {
            return TimeWaitVerdict::Drop;
        }
        // RFC 9293 3.10.7.4: a retransmitted FIN (or anything else out of window) is
        // acknowledged, and the 2*MSL timeout restarts.
        if paws_reject || flags.ack() {
            self.expiry = now + duration;
        }
        TimeWaitVerdict::Ack
    }

    /// Our TSval and TSecr for a re-ACK at `now`, when timestamps are on.
    pub fn timestamps(&self, now: Instant) -> Option<(u32, u32)> {
        self.ts_recent.map(|recent| {
            (
                (now.as_millis() as u32).wrapping_add(self.ts_offset),
                recent,
            )
        })
    }
}
