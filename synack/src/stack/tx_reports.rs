//! Transmit reports, Linux's socket error queue (`recvmsg(MSG_ERRQUEUE)`) for TCP:
//! MSG_ZEROCOPY completions and SO_TIMESTAMPING transmit timestamps.
//!
//! Both come from the same question, "how far has the stream been sent, how far
//! acknowledged?", which the stack answers after every activity of a connection
//! ([`Stack::after_activity`] calls [`TxReports::update`]). Positions are byte offsets
//! in the stream (0: the first data byte), so no sequence-number state leaks out. The
//! state sits beside the connection in its slot, not in the `Connection`, and only
//! once a connection asks for reports.

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use super::{ConnectionHandle, Error, Event, Stack};
use crate::tcp::Connection;
use crate::{Instant, TcpState};

/// Which transmit timestamps a connection records for each send (the recording flags of
/// Linux's SO_TIMESTAMPING). Each send is stamped at its last byte, as Linux's
/// `tcp_tx_timestamp` marks the last skb of a `sendmsg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxTimestamps {
    /// SOF_TIMESTAMPING_TX_SCHED: when the segment holding the byte is first handed to
    /// the network ([`TimestampKind::Scheduled`]).
    pub scheduled: bool,
    /// SOF_TIMESTAMPING_TX_SOFTWARE: when it leaves the stack ([`TimestampKind::Sent`];
    /// the same instant in synack, after the `Scheduled` report).
    pub sent: bool,
    /// SOF_TIMESTAMPING_TX_ACK: when the peer acknowledges it ([`TimestampKind::Acked`]).
    pub acked: bool,
}

impl TxTimestamps {
    /// Does it record anything?
    pub fn any(&self) -> bool {
        self.scheduled || self.sent || self.acked
    }
}

/// What a transmit timestamp marks (Linux's `SCM_TSTAMP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampKind {
    /// SCM_TSTAMP_SCHED.
    Scheduled,
    /// SCM_TSTAMP_SND.
    Sent,
    /// SCM_TSTAMP_ACK.
    Acked,
}

/// Options of one send ([`Stack::send_reported`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReport {
    /// MSG_ZEROCOPY: report a completion ([`TxReport::Zerocopy`]) once the peer has
    /// acknowledged every byte the call queued. synack copies the data anyway.
    pub zerocopy: bool,
    /// The call continues the previous one (a blocking send that waited for room):
    /// it takes no new zerocopy number and its timestamp replaces the previous one's.
    pub continues: bool,
    /// MSG_MORE and MSG_EOR of this send ([`crate::Stack::send_flags`]).
    pub flags: crate::SendFlags,
}

/// One entry of a connection's error queue ([`Stack::recv_error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxReport {
    /// The zerocopy sends numbered `first..=last` completed (Linux's
    /// SO_EE_ORIGIN_ZEROCOPY notification, `ee_info..=ee_data`). Sends are numbered
    /// from 0 per connection, one number per call that queued bytes; consecutive
    /// completions not read yet are merged into one range, as Linux's
    /// `skb_zerocopy_notify_extend` does. synack always copies, so every completion is
    /// what Linux calls SO_EE_CODE_ZEROCOPY_COPIED.
    Zerocopy {
        /// The first send completed.
        first: u32,
        /// The last send completed.
        last: u32,
    },
    /// A transmit timestamp of the send whose last byte is at `offset` (bytes from the
    /// start of the stream).
    Timestamp {
        /// Which moment.
        kind: TimestampKind,
        /// The stream offset of the byte stamped (Linux's `tskey`, before OPT_ID's
        /// rebasing, which the socket layer does).
        offset: u64,
        /// When.
        at: Instant,
    },
}

/// The most reports a queue holds, and the most zerocopy notifications a connection
/// has outstanding (pending and queued), so that an application that never reads its
/// error queue holds bounded memory. Linux bounds both by socket memory: a timestamp
/// that finds the receive buffer full is dropped (`sock_queue_err_skb`), a zerocopy
/// send that finds `optmem_max` spent fails with ENOBUFS (`sock_omalloc`).
const MAX_REPORTS: usize = 1024;

/// A timestamped send waiting for its moments.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// The stream offset of the send's last byte.
    offset: u64,
    /// Scheduled/Sent were reported (the byte went out).
    sent: bool,
}

/// A zerocopy range waiting for its bytes to be acknowledged.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The stream offset just past the range's last byte.
    end: u64,
    first: u32,
    last: u32,
}

/// The error-queue state of one connection.
#[derive(Debug, Default)]
pub(crate) struct TxReports {
    stamps: TxTimestamps,
    /// The next zerocopy number (Linux's `sk_zckey`).
    next_id: u32,
    zerocopy: VecDeque<Pending>,
    marks: VecDeque<Mark>,
    queue: VecDeque<TxReport>,
}

/// Where a connection's stream stands: (written, sent, acknowledged) byte offsets.
fn progress(conn: &Connection) -> (u64, u64, u64) {
    let acked = conn.stats.bytes_sent;
    let written = acked + conn.snd_buf.len() as u64;
    let sent = written - (conn.unsent() as u64).min(written - acked);
    (written, sent, acked)
}

impl TxReports {
    /// A send of `n` bytes was queued (written before: `before`, sent: `sent`).
    fn on_send(&mut self, before: u64, sent: u64, n: usize, how: SendReport) {
        if n == 0 {
            // Linux's msg_zerocopy_put_abort: a call that queued nothing takes no number.
            return;
        }
        let end = before + n as u64;
        if how.zerocopy {
            match self.zerocopy.back_mut() {
                Some(p) if p.end == before && how.continues => p.end = end,
                // msg_zerocopy_realloc: the previous zerocopy send's bytes are still
                // unsent at the tail of the queue, so this call joins its notification.
                Some(p)
                    if p.end == before
                        && sent < before
                        && p.last.wrapping_add(1) == self.next_id =>
                {
                    p.end = end;
                    p.last = self.next_id;
                    self.next_id = self.next_id.wrapping_add(1);
                }
                _ => {
                    self.zerocopy.push_back(Pending {
                        end,
                        first: self.next_id,
                        last: self.next_id,
                    });
                    self.next_id = self.next_id.wrapping_add(1);
                }
            }
        }
        if self.stamps.any() {
            match self.marks.back_mut() {
                // tcp_tx_timestamp stamps the queue's tail skb: a send appended to an
                // unsent one moves the stamp to its own last byte.
                Some(m) if m.offset + 1 == before && (how.continues || !m.sent) => {
                    m.offset = end - 1;
                    m.sent = false;
                }
                _ => self.marks.push_back(Mark {
                    offset: end - 1,
                    sent: false,
                }),
            }
        }
    }

    /// Report what the connection's progress completed; true if anything was queued
    /// (merged into a queued report included: Linux's `sk_error_report` wakes then too).
    pub(crate) fn update(&mut self, now: Instant, conn: &Connection) -> bool {
        let mut reported = false;
        let (_, sent, acked) = progress(conn);
        for m in self.marks.iter_mut().filter(|m| !m.sent && m.offset < sent) {
            m.sent = true;
            reported |= self.stamps.scheduled || self.stamps.sent;
            for (on, kind) in [
                (self.stamps.scheduled, TimestampKind::Scheduled),
                (self.stamps.sent, TimestampKind::Sent),
            ] {
                if on && self.queue.len() < MAX_REPORTS {
                    self.queue.push_back(TxReport::Timestamp {
                        kind,
                        offset: m.offset,
                        at: now,
                    });
                }
            }
        }
        // tcp_ack_tstamp: the stamped byte is now below SND.UNA.
        while let Some(m) = self.marks.front().filter(|m| m.offset < acked).copied() {
            self.marks.pop_front();
            reported |= self.stamps.acked;
            if self.stamps.acked && self.queue.len() < MAX_REPORTS {
                self.queue.push_back(TxReport::Timestamp {
                    kind: TimestampKind::Acked,
                    offset: m.offset,
                    at: now,
                });
            }
        }
        // The data is freed when acknowledged, or all at once when the connection ends
        // (tcp_write_queue_purge): either way its notification goes out.
        let ended = conn.tcp_state() == TcpState::Closed;
        while let Some(p) = self
            .zerocopy
            .front()
            .filter(|p| p.end <= acked || ended)
            .copied()
        {
            self.zerocopy.pop_front();
            self.notify_zerocopy(p.first, p.last);
            reported = true;
        }
        reported
    }

    /// Queue a zerocopy completion, merged into the queue's last one when it follows on
    /// (Linux's `skb_zerocopy_notify_extend`, which keeps a range under 2^32 numbers).
    fn notify_zerocopy(&mut self, first: u32, last: u32) {
        if let Some(TxReport::Zerocopy {
            first: lo,
            last: hi,
        }) = self.queue.back_mut()
        {
            let sum = u64::from(hi.wrapping_sub(*lo)) + 1 + u64::from(last.wrapping_sub(first)) + 1;
            if hi.wrapping_add(1) == first && sum < 1 << 32 {
                *hi = last;
                return;
            }
        }
        self.queue.push_back(TxReport::Zerocopy { first, last });
    }
}

impl Stack {
    /// Send, asking for reports on the connection's error queue (see [`SendReport`]);
    /// otherwise as [`Stack::send`]. A zerocopy send fails with
    /// [`Error::NoBufferSpace`] while 1024 notifications are outstanding (unread or
    /// waiting for their ACK), as Linux's fails with ENOBUFS when its option memory is
    /// spent. Timestamps set with [`Stack::set_tx_timestamps`]
    /// apply to every send, this one or [`Stack::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Instant, Stack};
    /// # use synack::stack::{SendReport, TxReport};
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
    /// # server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// let mut zerocopy = SendReport::default();
    /// zerocopy.zerocopy = true;
    /// client.send_reported(now, conn, b"first", zerocopy)?;
    /// assert_eq!(client.recv_error(conn)?, None); // not acknowledged yet
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.recv_error(conn)?, Some(TxReport::Zerocopy { first: 0, last: 0 }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_reported(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
        how: SendReport,
    ) -> Result<usize, Error> {
        self.send_reported_paged(now, conn, data, &[], how)
    }

    /// [`Stack::send_reported`] for a zerocopy send whose bytes come from user pages:
    /// `frags` lists the lengths of the page fragments `data` is gathered from, in
    /// order (each piece of an iovec within one memory page; a piece that continues the
    /// previous one in the same page joins it). Under
    /// [`crate::SendAccounting::LinuxSkb`] an skb of a zerocopy send holds at most 17 of
    /// them (Linux's MAX_SKB_FRAGS), so that 18 one-byte iovecs leave as a segment of 17
    /// bytes and one of 1, each with PSH. Ignored for a send that is not zerocopy.
    pub fn send_reported_paged(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
        frags: &[usize],
        how: SendReport,
    ) -> Result<usize, Error> {
        let frags = if how.zerocopy { frags } else { &[] };
        if how.zerocopy {
            let r = self.tx_reports(conn)?;
            if r.zerocopy.len() + r.queue.len() >= MAX_REPORTS {
                return Err(Error::NoBufferSpace);
            }
        }
        self.noting_send(conn, how, |s| {
            s.with_conn(now, conn, |c, cfg| {
                c.send_accounted(cfg, data, how.flags, frags)
            })?
        })
    }

    /// A send (`send` makes it) with its bytes noted for the error queue, if the
    /// connection has one.
    pub(super) fn noting_send(
        &mut self,
        conn: ConnectionHandle,
        how: SendReport,
        send: impl FnOnce(&mut Stack) -> Result<usize, Error>,
    ) -> Result<usize, Error> {
        let index = conn.index as usize;
        let before = self
            .slots
            .get(index)
            .filter(|s| s.reports.is_some() && s.generation == conn.generation)
            .and_then(|s| s.conn.as_deref())
            .map(progress);
        let n = send(self)?;
        if let (Some((written, sent, _)), Some(r)) =
            (before, self.slots[index].reports.as_deref_mut())
        {
            r.on_send(written, sent, n, how);
        }
        Ok(n)
    }

    /// Record transmit timestamps (SO_TIMESTAMPING) for every send from now on; an
    /// all-off [`TxTimestamps`] stops recording (reports already queued stay).
    pub fn set_tx_timestamps(
        &mut self,
        conn: ConnectionHandle,
        stamps: TxTimestamps,
    ) -> Result<(), Error> {
        self.tx_reports(conn)?.stamps = stamps;
        Ok(())
    }

    /// Take the oldest report of the connection's error queue (None: empty). Zerocopy
    /// completions and timestamps come in the order they happened.
    pub fn recv_error(&mut self, conn: ConnectionHandle) -> Result<Option<TxReport>, Error> {
        self.conn_ref(conn)?;
        let slot = &mut self.slots[conn.index as usize];
        Ok(slot.reports.as_mut().and_then(|r| r.queue.pop_front()))
    }

    /// How many reports wait in the connection's error queue (poll's POLLERR).
    pub fn error_queue_len(&self, conn: ConnectionHandle) -> Result<usize, Error> {
        self.conn_ref(conn)?;
        let slot = &self.slots[conn.index as usize];
        Ok(slot.reports.as_ref().map_or(0, |r| r.queue.len()))
    }

    /// The connection's report state, made on first use.
    fn tx_reports(&mut self, conn: ConnectionHandle) -> Result<&mut TxReports, Error> {
        self.conn_ref(conn)?;
        let slot = &mut self.slots[conn.index as usize];
        Ok(slot.reports.get_or_insert_with(Box::default))
    }

    /// After a connection's activity: queue what it completed, and say so.
    pub(super) fn update_tx_reports(&mut self, now: Instant, index: u32) {
        let slot = &mut self.slots[index as usize];
        let (Some(r), Some(conn)) = (slot.reports.as_deref_mut(), slot.conn.as_deref()) else {
            return;
        };
        if r.update(now, conn) {
            let handle = self.handle(index);
            self.events.push_back(Event::ErrorQueue(handle));
        }
    }
}
