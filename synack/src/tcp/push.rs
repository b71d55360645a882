//! Write boundaries as Linux's send queue keeps them: where PSH goes (tcp_push marks the
//! tail skb of a write not sent with MSG_MORE, and forced_push the skb filled past half the
//! peer's largest window), MSG_EOR records no later byte joins (tcp_skb_can_collapse_to), and
//! the holds of TCP_CORK and MSG_MORE (TCP_NAGLE_CORK). A connection keeps this state only once
//! it uses MSG_MORE, MSG_EOR or TCP_CORK; before that PSH goes where the written data ends.

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use super::conn::Connection;
use super::skb_accounting::Room;
use super::state::State;
use crate::wire::SeqNum;
use crate::Error;

/// Flags of one write (send(2)'s MSG_MORE, MSG_EOR and MSG_OOB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendFlags {
    /// MSG_MORE: more data follows; hold a partial segment back as TCP_CORK does, and do
    /// not mark the end of this write with PSH.
    pub more: bool,
    /// MSG_EOR: this write ends a record: no later byte is sent in a segment with it, not
    /// even when it is retransmitted.
    pub eor: bool,
    /// MSG_OOB: the last byte of this write is urgent data (RFC 9293 3.8.5): segments
    /// carry URG and the urgent pointer until the peer acknowledges it.
    pub oob: bool,
}

/// The end of a Linux skb that matters to the segments that cover it.
#[derive(Clone, Copy, Debug)]
struct Mark {
    end: SeqNum,
    psh: bool,
    eor: bool,
    /// Made by a packet taking part of an skb (tso_fragment), not by a write: it bounds
    /// retransmissions but is not counted in the send buffer's truesize (that
    /// accounting is not modelled; blocking-write's timing on Linux 6.18 matches
    /// without it).
    split: bool,
}

/// What the pushes of a write may send while it fills skbs (Linux's tcp_push_one and
/// forced_push inside tcp_sendmsg_locked): `room` bytes (the congestion and receive
/// windows' room), in whole segments of `mss`. `frags`: for a MSG_ZEROCOPY write, the
/// lengths of the page fragments its bytes are made of (empty: a copying write).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WritePush<'a> {
    pub(crate) room: usize,
    pub(crate) mss: usize,
    pub(crate) frags: &'a [usize],
}

/// The most page fragments an skb holds (Linux's MAX_SKB_FRAGS, CONFIG_MAX_SKB_FRAGS's
/// default).
pub(crate) const MAX_SKB_FRAGS: u8 = 17;

/// The page fragments of a zerocopy write, taken in order as its skbs are filled (Linux's
/// skb_zerocopy_iter_stream: each user page an iovec touches becomes a frag of the skb,
/// a piece contiguous with the skb's last frag in the same page joining it,
/// skb_append_pagefrags; a frag an skb boundary splits starts a frag in the next skb).
#[derive(Debug)]
struct FragCursor<'a> {
    lens: &'a [usize],
    /// Bytes of `lens[0]` already taken.
    used: usize,
    /// The first fragment left is already counted in the skb being filled.
    open: bool,
}

impl FragCursor<'_> {
    /// Of `want` bytes, how many an skb holding `nr` frags takes (__zerocopy_sg_from_iter
    /// stops at MAX_SKB_FRAGS); `nr` counts the frags they add.
    fn take(&mut self, want: u32, nr: &mut u8) -> u32 {
        let mut taken = 0u32;
        while taken < want {
            let Some((&len, rest)) = self.lens.split_first() else {
                // Bytes beyond the listed fragments: no limit known.
                return want;
            };
            if !self.open {
                if len > self.used && *nr >= MAX_SKB_FRAGS {
                    break;
                }
                *nr = nr.saturating_add(u8::from(len > self.used));
                self.open = true;
            }
            let step = (len - self.used).min((want - taken) as usize);
            taken += step as u32;
            self.used += step;
            if self.used >= len {
                (self.lens, self.used, self.open) = (rest, 0, false);
            }
        }
        taken
    }

    /// The skb being filled is left: a fragment it split counts again in the next.
    fn new_skb(&mut self) {
        self.open = false;
    }
}

/// A connection's write boundaries and cork state (boxed: most connections have none).
#[derive(Debug)]
pub(crate) struct SendMarks {
    /// Marked skb ends above SND.UNA, in order.
    marks: VecDeque<Mark>,
    /// Where the newest skb begins (later writes are appended to it while it has room).
    tail_start: SeqNum,
    /// Linux's pushed_seq: the write sequence number of the last PSH mark.
    pushed: SeqNum,
    /// Every skb end is kept (Linux's skb queue is modelled).
    pub(crate) skbs: bool,
    /// The page fragments the newest skb holds (counted for zerocopy writes), and
    /// whether its last one holds copied bytes (a copying write joins it).
    tail_frags: u8,
    tail_copied: bool,
    /// TCP_CORK is set.
    pub(crate) cork: bool,
    /// The newest write said MSG_MORE and nothing has pushed since (Linux pushes with
    /// TCP_NAGLE_CORK at the end of such a write only).
    pub(crate) more: bool,
    /// A setsockopt (TCP_NODELAY on) pushed the pending data through the cork
    /// (TCP_NAGLE_PUSH), until the next write.
    pub(crate) push_through: bool,
    /// The retransmitted packet being sent: (its start, where its next segment starts,
    /// its end), with `skbs`.
    rtx: Option<(SeqNum, SeqNum, SeqNum)>,
    /// How many of `marks` are splits (`Mark::split`).
    splits: usize,
}

impl SendMarks {
    /// State for a connection whose written data ends at `write_seq`.
    pub(crate) fn new(write_seq: SeqNum) -> SendMarks {
        SendMarks {
            marks: VecDeque::new(),
            tail_start: write_seq,
            pushed: write_seq,
            skbs: false,
            tail_frags: 0,
            tail_copied: false,
            cork: false,
            more: false,
            push_through: false,
            rtx: None,
            splits: 0,
        }
    }

    /// A packet of new data starts at `seq`: with `skbs`, an skb ends there (Linux's
    /// tso_fragment splits the skb a packet takes only part of, so the retransmission
    /// queue holds the packets as they were sent).
    fn split_at(&mut self, seq: SeqNum) {
        if !self.skbs {
            return;
        }
        let at = self.marks.partition_point(|m| m.end < seq);
        if self.marks.get(at).is_none_or(|m| m.end != seq) {
            self.marks.insert(
                at,
                Mark {
                    end: seq,
                    psh: false,
                    eor: false,
                    split: true,
                },
            );
            self.splits += 1;
        }
    }

    /// Whether the retransmitted segment `seq..seq + len` ends a packet of more than one
    /// `mss` (Linux's __tcp_retransmit_skb resends an skb, or its first `segs` segments,
    /// in one packet; a packet of more than one segment carries PSH). A packet ends at
    /// the skb's end, at `limit` (the hole's end) or after `segs` segments.
    fn rtx_ends_multi(
        &mut self,
        seq: SeqNum,
        len: u32,
        limit: SeqNum,
        segs: u32,
        mss: u32,
    ) -> bool {
        let (start, end) = match self.rtx {
            Some((start, next, end)) if next == seq && seq < end => (start, end),
            _ => {
                let mut end = limit.min(seq + segs.max(1) * mss);
                if let Some(skb_end) = self.next_end(seq) {
                    end = end.min(skb_end);
                }
                (seq, end)
            }
        };
        let next = seq + len;
        self.rtx = Some((start, next, end));
        next >= end && (end - start) as u32 > mss
    }

    /// Forget the marks the peer has acknowledged.
    pub(crate) fn acked(&mut self, una: SeqNum) {
        while self.marks.front().is_some_and(|m| m.end <= una) {
            if self.marks.pop_front().is_some_and(|m| m.split) {
                self.splits -= 1;
            }
        }
    }

    /// The write of `n` bytes at `write_seq` (Linux's tcp_sendmsg_locked): append to the
    /// unsent tail skb while it has room (`size_goal`, tcp_xmit_size_goal) and is not a
    /// record's end, clearing its PSH; mark PSH where forced_push asks (more than half
    /// `max_window` written since the last push); at the end mark EOR (when `complete`,
    /// all of the write was taken) and PSH (tcp_push, unless MSG_MORE).
    ///
    /// With `skbs` (Linux's skb queue is modelled, [`crate::SendAccounting::LinuxSkb`])
    /// every skb end is kept, PSH or not (no packet crosses one: Linux's tcp_write_xmit
    /// sends a piece of one skb at a time), and the pushes of a full skb during the write
    /// (tcp_push_one, forced_push) send what the windows let go, the rest of that skb
    /// staying the tail the write fills on (tso_fragment). A zerocopy write (`frags` of
    /// `skbs`) also ends an skb that holds MAX_SKB_FRAGS page fragments, with PSH.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_write(
        &mut self,
        write_seq: SeqNum,
        n: usize,
        snd_max: SeqNum,
        size_goal: usize,
        max_window: u32,
        flags: SendFlags,
        complete: bool,
        skbs: Option<WritePush<'_>>,
    ) {
        self.more = flags.more;
        self.push_through = false;
        self.skbs |= skbs.is_some();
        if n == 0 {
            return;
        }
        let size_goal = size_goal.max(1) as u32;
        let half_window = max_window / 2;
        let mut w = write_seq;
        let mut left = n as u32;
        let start = if self.tail_start > snd_max {
            self.tail_start
        } else {
            snd_max
        };
        let tail_len = (w - start).max(0) as u32;
        let tail_eor = self.marks.back().is_some_and(|m| m.end == w && m.eor);
        let appending = !(tail_len == 0 || tail_len >= size_goal || tail_eor);
        let (mut nr, mut copied_last) = if appending {
            (self.tail_frags, self.tail_copied)
        } else {
            (0, false)
        };
        let frags = skbs.map_or(&[][..], |p| p.frags);
        let zerocopy = !frags.is_empty();
        let mut cursor = FragCursor {
            lens: frags,
            used: 0,
            open: false,
        };
        let mut len = if !appending {
            self.tail_start = w;
            0
        } else {
            // Appending: the skb's PSH goes (tcp_sendmsg_locked's first copy).
            if self.marks.back().is_some_and(|m| m.end == w)
                && self.marks.pop_back().is_some_and(|m| m.split)
            {
                self.splits -= 1;
            }
            tail_len
        };
        let (mut room, mss) = skbs.map_or((0, 1), |p| (p.room as u32, p.mss.max(1) as u32));
        let mut unsent = (w - snd_max).max(0) as u32;
        // The skb being filled was marked PSH (forced_push) in this write.
        let mut psh = false;
        loop {
            let fits = (size_goal - len).min(left);
            let copy = if zerocopy {
                cursor.take(fits, &mut nr)
            } else if copied_last || fits == 0 {
                fits
            } else if nr >= MAX_SKB_FRAGS {
                0
            } else {
                // Copied bytes go to the socket's page fragment (sk_page_frag), one
                // more frag unless the skb's last is that page's already.
                nr += 1;
                fits
            };
            if copy > 0 {
                copied_last = !zerocopy;
            }
            w += copy;
            left -= copy;
            len += copy;
            unsent += copy;
            if left == 0 {
                break;
            }
            if copy < fits {
                // The skb holds MAX_SKB_FRAGS: Linux's tcp_sendmsg_locked marks it PSH
                // (tcp_mark_push) and starts a new one (skb_zerocopy_iter_stream's
                // -EMSGSIZE), pushing nothing yet.
                self.pushed = w;
                self.mark(w, true, false);
                self.tail_start = w;
                (len, nr, copied_last, psh) = (0, 0, false, false);
                cursor.new_skb();
                continue;
            }
            // The skb is full: forced_push marks it (Linux's tcp_mark_push).
            if w > self.pushed + half_window {
                psh = true;
                self.pushed = w;
            }
            if skbs.is_some() {
                // tcp_push_one / __tcp_push_pending_frames: what the windows let go
                // leaves, in whole segments unless all of it goes; the unsent rest of
                // this skb, PSH and all, is the tail the write goes on filling.
                let mut sent = unsent.min(room);
                if sent < unsent {
                    sent -= sent % mss;
                }
                room -= sent;
                unsent -= sent;
                if unsent > 0 && unsent < len {
                    len = unsent;
                    self.tail_start = w - len;
                    continue;
                }
            }
            if psh || skbs.is_some() {
                self.mark(w, psh, false);
            }
            psh = false;
            self.tail_start = w;
            len = 0; // the next copy fills a new skb
            (nr, copied_last) = (0, false);
            cursor.new_skb();
        }
        (self.tail_frags, self.tail_copied) = (nr, copied_last);
        let eor = flags.eor && complete;
        if !flags.more || w > self.pushed + half_window {
            psh = true;
            self.pushed = w;
        }
        if eor || psh || skbs.is_some() {
            self.mark(w, psh, eor);
        }
    }

    /// Whether an skb ends at `end` (where Linux's packets end).
    pub(crate) fn ends_at(&self, end: SeqNum) -> bool {
        self.marks.iter().any(|m| m.end == end)
    }

    fn mark(&mut self, end: SeqNum, psh: bool, eor: bool) {
        match self.marks.back_mut() {
            Some(m) if m.end == end => {
                m.psh |= psh;
                m.eor |= eor;
            }
            _ => self.marks.push_back(Mark {
                end,
                psh,
                eor,
                split: false,
            }),
        }
    }

    /// The first marked skb end after `seq`: a segment from `seq` ends there at the latest.
    pub(crate) fn next_end(&self, seq: SeqNum) -> Option<SeqNum> {
        self.marks.iter().find(|m| m.end > seq).map(|m| m.end)
    }

    /// Whether a segment ending at `end` carries PSH (it ends a PSH-marked skb).
    pub(crate) fn psh_at(&self, end: SeqNum) -> bool {
        self.marks.iter().any(|m| m.end == end && m.psh)
    }

    /// A partial segment at the end of the written data waits (Linux's tcp_nagle_check
    /// with TCP_NAGLE_CORK: TCP_CORK, or the push at the end of a MSG_MORE write).
    pub(crate) fn corked(&self) -> bool {
        (self.cork || self.more) && !self.push_through
    }
}

/// The truesize of the modelled skbs beyond their payload (none when not modelled).
pub(crate) fn skb_overhead(marks: &Option<Box<SendMarks>>) -> usize {
    marks.as_ref().filter(|m| m.skbs).map_or(0, |m| {
        (m.marks.len() - m.splits) * super::skb_accounting::SKB_OVERHEAD
    })
}

/// tcp_xmit_size_goal: the most bytes an skb holds, 64 KiB (sk_gso_max_size) but at most
/// half the largest window the peer offered (tcp_bound_to_half_wnd), in whole segments.
pub(crate) fn size_goal(mss: usize, max_wnd: u32) -> usize {
    let half = if max_wnd > 536 { max_wnd / 2 } else { max_wnd };
    let bound = if half == 0 {
        65_536
    } else {
        65_536.min(half as usize)
    };
    (bound / mss * mss).max(mss)
}

impl Connection {
    /// Queue data as send(2) with `flags` does (see [`Connection::send`] for `cap`).
    pub(crate) fn send_flagged(
        &mut self,
        data: &[u8],
        room: Room,
        flags: SendFlags,
        skbs: Option<&[usize]>,
    ) -> Result<usize, Error> {
        let before = self.snd_buf.len();
        let n = self.send(data, room)?;
        self.note_write(before, n, flags, n == data.len(), skbs);
        Ok(n)
    }

    /// Record the write of `n` bytes after the `before` already queued, once a connection
    /// uses write flags or TCP_CORK (before that, PSH goes where the written data ends),
    /// or from the first write when Linux's skbs are modelled (`skbs`: the page
    /// fragments of a zerocopy write's bytes, else empty).
    fn note_write(
        &mut self,
        before: usize,
        n: usize,
        flags: SendFlags,
        complete: bool,
        skbs: Option<&[usize]>,
    ) {
        let plain = SendFlags {
            oob: false,
            ..flags
        } == SendFlags::default();
        if self.marks.is_none() && plain && skbs.is_none() {
            return;
        }
        let mss = self.neg.snd_mss.max(1);
        let Some(snd) = self.state.snd() else {
            // A Fast Open child writing before the client's ACK (RFC 7413 4.2.2): its
            // skbs start after our SYN; nothing is pushed from inside the write (the
            // first flight goes per packet). max_window is still the SYN's window,
            // unscaled (at most 65,535).
            if let (State::SynRcvd(s), Some(frags)) = (&self.state, skbs) {
                let write_seq = s.iss + 1 + before as u32;
                let sent = s.iss + 1 + s.data_sent;
                let marks = self
                    .marks
                    .get_or_insert_with(|| Box::new(SendMarks::new(write_seq)));
                let push = WritePush {
                    room: 0,
                    mss,
                    frags,
                };
                let goal = size_goal(mss, 65_535);
                marks.on_write(
                    write_seq,
                    n,
                    sent,
                    goal,
                    65_535,
                    flags,
                    complete,
                    Some(push),
                );
            }
            return;
        };
        let (una, max, max_wnd) = (snd.una, snd.max, snd.max_wnd);
        let size_goal = size_goal(mss, max_wnd);
        let write_seq = una + before as u32;
        let push = skbs.map(|frags| WritePush {
            room: (snd.cwnd().saturating_sub(snd.flight()) as usize)
                .min((una + snd.wnd - max).max(0) as usize),
            mss,
            frags,
        });
        let fresh = self.marks.is_none();
        let marks = self
            .marks
            .get_or_insert_with(|| Box::new(SendMarks::new(write_seq)));
        if fresh && skbs.is_some() && before > 0 {
            // Data queued before there was a send state to note it in is a Fast Open
            // SYN's: Linux's tcp_send_syn_data makes it an skb of its own, with PSH (which
            // its retransmissions keep), that no later write joins.
            marks.mark(write_seq, true, false);
        }
        marks.acked(una);
        marks.on_write(write_seq, n, max, size_goal, max_wnd, flags, complete, push);
    }

    /// Where the newest skb begins, when Linux's skbs are modelled.
    pub(crate) fn newest_skb(&self) -> Option<SeqNum> {
        self.marks.as_ref().filter(|m| m.skbs).map(|m| m.tail_start)
    }

    /// The skb that holds `seq`, when Linux's skbs are modelled: where it ends, and
    /// whether it is a record's end (MSG_EOR).
    pub(crate) fn skb_of(&self, seq: SeqNum) -> Option<(SeqNum, bool)> {
        let m = self.marks.as_ref().filter(|m| m.skbs)?;
        m.marks.iter().find(|k| k.end > seq).map(|k| (k.end, k.eor))
    }

    /// Room enough to count as writable (Linux's `sk_stream_is_writeable`): what is
    /// queued counts each modelled skb's truesize beyond its payload.
    pub(crate) fn write_space(&self) -> bool {
        self.snd_buf.write_space_with(skb_overhead(&self.marks))
    }

    /// A Linux skb ends at `end` (no packet crosses it), when skbs are modelled.
    pub(crate) fn skb_ends_at(&self, end: SeqNum) -> bool {
        self.marks.as_ref().is_some_and(|m| m.ends_at(end))
    }

    /// TCP_CORK (Linux's tcp_sock_set_cork): while set, a partial segment at the end of
    /// the written data waits (for more data, or the persist timer, as Linux's probe timer
    /// sends it); clearing it sends what waited.
    pub(crate) fn set_cork(&mut self, on: bool) {
        let write_seq = self.state.snd().map(|s| s.una + self.snd_buf.len() as u32);
        if self.marks.is_none() && !on {
            return;
        }
        let Some(write_seq) = write_seq.or(self.state.snd_nxt()) else {
            return;
        };
        let marks = self
            .marks
            .get_or_insert_with(|| Box::new(SendMarks::new(write_seq)));
        marks.cork = on;
        if !on {
            marks.more = false;
        }
    }

    /// TCP_CORK as set.
    pub(crate) fn cork(&self) -> bool {
        self.marks.as_ref().is_some_and(|m| m.cork)
    }

    /// A push that ignores the cork: TCP_NODELAY turned on (TCP_NAGLE_PUSH), or an
    /// arriving segment (Linux's tcp_data_snd_check pushes without MSG_MORE's cork).
    pub(crate) fn push_pending(&mut self, through_cork: bool) {
        if let Some(m) = self.marks.as_mut() {
            m.more = false;
            m.push_through |= through_cork;
        }
    }

    /// The most bytes a segment from `seq` may carry before a marked skb end.
    pub(crate) fn mark_room(&self, seq: SeqNum) -> Option<usize> {
        let m = self.marks.as_ref()?;
        m.next_end(seq).map(|end| (end - seq).max(0) as usize)
    }

    /// A packet of new data starts at `seq` (see [`SendMarks::split_at`]).
    pub(crate) fn split_skb_at(&mut self, seq: SeqNum) {
        if let Some(m) = self.marks.as_mut() {
            m.split_at(seq);
        }
    }

    /// Linux's skb queue is modelled ([`crate::SendAccounting::LinuxSkb`]).
    pub(crate) fn keeps_skbs(&self) -> bool {
        self.marks.as_ref().is_some_and(|m| m.skbs)
    }

    /// Whether the retransmission `seq..seq + len` ends a multi-segment packet, which
    /// carries PSH as every such packet does (Linux's __tcp_transmit_skb), when Linux's
    /// skbs are modelled; `limit` ends the hole, `segs` is what cwnd lets go.
    pub(crate) fn rtx_packet_psh(
        &mut self,
        seq: SeqNum,
        len: usize,
        limit: SeqNum,
        segs: u32,
    ) -> bool {
        let mss = self.payload_mss() as u32;
        match self.marks.as_mut().filter(|m| m.skbs) {
            Some(m) if len > 0 => m.rtx_ends_multi(seq, len as u32, limit, segs, mss),
            _ => false,
        }
    }

    /// PSH for a segment ending at `end` (at `buf_end`, the end of the written data):
    /// where a write was pushed once marks are kept, else at the end of the data.
    pub(crate) fn psh_for(&self, end: SeqNum, buf_end: SeqNum) -> bool {
        match &self.marks {
            Some(m) => m.psh_at(end),
            None => end == buf_end,
        }
    }

    /// A partial segment ending at the end of the written data is held by the cork.
    pub(crate) fn cork_holds(&self) -> bool {
        self.marks.as_ref().is_some_and(|m| m.corked())
    }

    /// Marks are kept: a partial segment before a marked end is not the last skb and is
    /// never held by Nagle (Linux's tcp_write_xmit: TCP_NAGLE_PUSH for all but the last).
    pub(crate) fn keeps_marks(&self) -> bool {
        self.marks.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn a_write_after_an_eor_starts_a_new_skb_and_the_eor_write_joins_the_unsent_tail() {
        let mut m = SendMarks::new(seq(1));
        let plain = SendFlags::default();
        let eor = SendFlags { eor: true, ..plain };
        // 10400 written, 10000 sent: the 400 left are the tail skb.
        m.on_write(seq(1), 10_400, seq(1), 65_000, 1 << 19, plain, true, None);
        m.on_write(
            seq(10_401),
            400,
            seq(10_001),
            65_000,
            1 << 19,
            eor,
            true,
            None,
        );
        m.on_write(
            seq(10_801),
            10_000,
            seq(10_001),
            65_000,
            1 << 19,
            plain,
            true,
            None,
        );
        assert_eq!(m.next_end(seq(10_001)), Some(seq(10_801)));
        assert!(m.psh_at(seq(10_801)) && m.psh_at(seq(20_801)));
        assert!(
            !m.psh_at(seq(10_401)),
            "the appended write took the tail's PSH"
        );
    }

    #[test]
    fn msg_more_leaves_no_psh_and_corks_until_a_plain_write() {
        let mut m = SendMarks::new(seq(1));
        let more = SendFlags {
            more: true,
            ..SendFlags::default()
        };
        m.on_write(seq(1), 40, seq(1), 65_000, 1 << 16, more, true, None);
        assert!(m.corked() && !m.psh_at(seq(41)));
        m.on_write(
            seq(41),
            40,
            seq(1),
            65_000,
            1 << 16,
            SendFlags::default(),
            true,
            None,
        );
        assert!(!m.corked() && m.psh_at(seq(81)));
    }

    #[test]
    fn forced_push_marks_the_skb_filled_past_half_the_largest_window() {
        let mut m = SendMarks::new(seq(1));
        // Window 32 KB: skbs of 16000, PSH on the first that ends past 1 + 16384.
        m.on_write(
            seq(1),
            100_000,
            seq(1),
            16_000,
            32_768,
            SendFlags::default(),
            true,
            None,
        );
        assert!(!m.psh_at(seq(16_001)));
        assert!(m.psh_at(seq(32_001)));
        assert!(m.psh_at(seq(100_001)));
    }

    #[test]
    fn a_zerocopy_skb_ends_at_17_page_fragments_with_psh() {
        let mut m = SendMarks::new(seq(1));
        let frags = [1usize; 64];
        let push = WritePush {
            room: 0,
            mss: 1000,
            frags: &frags,
        };
        let plain = SendFlags::default();
        m.on_write(seq(1), 64, seq(1), 65_000, 1 << 19, plain, true, Some(push));
        for end in [18, 35, 52, 65] {
            assert!(m.psh_at(seq(end)), "an skb ends with PSH at {end}");
        }
        assert_eq!(m.next_end(seq(1)), Some(seq(18)));
        // A page split by an skb boundary is a fragment in each skb: skbs of 4000 take
        // 10 + 3990, 106 + 3894, then the third page's last 202 bytes.
        let mut m = SendMarks::new(seq(1));
        let frags = [10usize, 4096, 4096];
        let push = WritePush {
            frags: &frags,
            ..push
        };
        m.on_write(seq(1), 8202, seq(1), 4000, 1 << 19, plain, true, Some(push));
        assert_eq!(m.tail_frags, 1);
        assert!(m.ends_at(seq(4001)) && m.ends_at(seq(8001)));
    }
}
