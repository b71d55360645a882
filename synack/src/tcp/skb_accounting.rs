//! How much a write takes under [`SendAccounting::LinuxSkb`]: Linux's send buffer counts
//! skbs, not bytes. `tcp_sendmsg_locked` appends to the unsent tail skb while it has room
//! (`size_goal`, tcp_xmit_size_goal) and starts a new skb only while
//! `sk_stream_memory_free` holds (queued bytes plus each skb's overhead below SO_SNDBUF,
//! unsent bytes below TCP_NOTSENT_LOWAT). A full skb is pushed at once (tcp_push_one),
//! and what the congestion and receive windows do not let go stays behind as a new,
//! shorter tail skb (tso_fragment) that the rest of the write fills again.

use super::conn::Connection;
use crate::{Config, SendAccounting};

/// What one skb costs beyond its payload (`skb->truesize` of an skb whose head holds
/// MAX_TCP_HEADER, x86-64: the 320-byte head and the 320-byte `struct skb_shared_info`
/// come from a 1024-byte kmalloc bucket, plus 256 for `struct sk_buff`; Linux's
/// __alloc_skb charges what kmalloc gave).
pub(crate) const SKB_OVERHEAD: usize = 1280;

/// What a write may take: at most `cap` bytes (None: no limit but the buffer's), and
/// whether the buffer's capacity was already judged (Linux's accounting lets the last skb
/// overshoot it).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Room {
    pub(crate) cap: Option<usize>,
    pub(crate) beyond_capacity: bool,
}

/// A connection's send queue as Linux's accounting sees it when a write begins.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SkbQueue {
    /// Bytes queued (sent and not acknowledged, plus unsent).
    pub(crate) queued: usize,
    /// Bytes queued and not sent (`write_seq - snd_nxt`).
    pub(crate) unsent: usize,
    /// Bytes in the unsent tail skb (0: none, the next byte starts a new skb).
    pub(crate) tail: usize,
    /// Bytes an skb holds at most (tcp_xmit_size_goal).
    pub(crate) size_goal: usize,
    /// SO_SNDBUF (`sk_sndbuf`).
    pub(crate) sndbuf: usize,
    /// TCP_NOTSENT_LOWAT in force, if any.
    pub(crate) lowat: Option<usize>,
    /// Bytes the congestion and receive windows let go now.
    pub(crate) send_room: usize,
    /// The sending MSS: a push that stops short of an skb's end sends whole segments.
    pub(crate) mss: usize,
}

/// `sk_wmem_queued` for `bytes` held in skbs of `size_goal`: the payload plus each skb's
/// overhead.
pub(crate) fn truesize(bytes: usize, size_goal: usize) -> usize {
    bytes + bytes.div_ceil(size_goal.max(1)) * SKB_OVERHEAD
}

impl SkbQueue {
    /// Linux's tcp_sendmsg_locked for a write of `want` bytes: how many it takes, and the
    /// length of the unsent tail skb afterwards.
    pub(crate) fn write(&self, want: usize) -> (usize, usize) {
        let goal = self.size_goal.max(1);
        let (mut queued, mut unsent, mut tail) = (self.queued, self.unsent, self.tail);
        let mut room = self.send_room;
        let mut taken = 0;
        while taken < want {
            if tail == 0 || tail >= goal {
                // A new skb (sk_stream_memory_free, tcp_stream_memory_free).
                if truesize(queued, goal) >= self.sndbuf || self.lowat.is_some_and(|l| unsent >= l)
                {
                    break;
                }
                tail = 0;
            }
            let copy = (goal - tail).min(want - taken);
            (tail, queued, unsent, taken) =
                (tail + copy, queued + copy, unsent + copy, taken + copy);
            if taken < want && tail == goal {
                // The skb is full: tcp_push_one sends what the windows let go, whole
                // segments unless all of it goes; the rest is the new tail skb.
                let mut sent = unsent.min(room);
                if sent < unsent {
                    sent -= sent % self.mss.max(1);
                }
                (unsent, room) = (unsent - sent, room - sent);
                tail = tail.min(unsent);
            }
        }
        (taken, tail.min(unsent))
    }
}

impl Connection {
    /// A write (send(2) with `flags`) of `data`, taking what the configured accounting
    /// lets in. `frags`: the page fragments of a zerocopy write's bytes (empty: a copying
    /// write), which bound Linux's skbs (MAX_SKB_FRAGS).
    pub(crate) fn send_accounted(
        &mut self,
        cfg: &Config,
        data: &[u8],
        flags: crate::SendFlags,
        frags: &[usize],
    ) -> Result<usize, crate::Error> {
        let before = self.snd_buf.len();
        let room = self.write_room(cfg, data.len());
        let skbs = cfg.send_accounting == SendAccounting::LinuxSkb;
        let n = self.send_flagged(data, room, flags, skbs.then_some(frags))?;
        self.note_skb_tail(cfg, before, n);
        if flags.oob && n > 0 && self.state.snd().is_some() {
            // Linux's tcp_mark_urg: SND.UP is the end of what was written.
            let write_seq = self.snd_una_raw().wrapping_add(self.snd_buf.len() as u32);
            self.mark_urgent(crate::wire::SeqNum::new(write_seq));
        }
        if skbs && !frags.is_empty() && n > 0 {
            // A zerocopy write's skbs end where their frags run out too: the newest
            // begins where the write's boundaries put it.
            if let Some(start) = self.newest_skb() {
                self.snd_buf.set_skb_tail(start.get());
            }
        }
        Ok(n)
    }

    /// What a write of `want` bytes may take: TCP_NOTSENT_LOWAT's room
    /// ([`Connection::notsent_room`]) with [`SendAccounting::Bytes`], Linux's skb
    /// accounting ([`SkbQueue::write`]) with [`SendAccounting::LinuxSkb`].
    pub(crate) fn write_room(&self, cfg: &Config, want: usize) -> Room {
        match (cfg.send_accounting, self.skb_queue(cfg)) {
            (SendAccounting::LinuxSkb, Some(q)) => Room {
                cap: Some(q.write(want).0),
                beyond_capacity: true,
            },
            _ => Room {
                cap: self.notsent_room(cfg),
                beyond_capacity: false,
            },
        }
    }

    /// After a write of `n` bytes under [`SendAccounting::LinuxSkb`], note where the newest
    /// skb begins (`before`: bytes queued before the write).
    pub(crate) fn note_skb_tail(&mut self, cfg: &Config, before: usize, n: usize) {
        if cfg.send_accounting != SendAccounting::LinuxSkb || n == 0 {
            return;
        }
        let Some(mut q) = self.skb_queue(cfg) else {
            return;
        };
        // The queue as it was before the write, replayed to learn the tail.
        let unsent_now = q.unsent;
        q.queued = before;
        q.unsent = unsent_now.saturating_sub(n);
        q.tail = self.tail_before(before, q.unsent, q.size_goal);
        let (_, tail) = q.write(n);
        let end = self.snd_una_raw().wrapping_add((before + n) as u32);
        self.snd_buf.set_skb_tail(end.wrapping_sub(tail as u32));
    }

    /// The unsent tail skb's length with `queued` bytes queued, `unsent` of them unsent:
    /// from where the newest skb began, counting only bytes not sent.
    fn tail_before(&self, queued: usize, unsent: usize, size_goal: usize) -> usize {
        let end = self.snd_una_raw().wrapping_add(queued as u32);
        let since_tail = end.wrapping_sub(self.snd_buf.skb_tail()) as usize;
        since_tail.min(unsent).min(size_goal)
    }

    fn snd_una_raw(&self) -> u32 {
        self.state.snd().map_or(0, |s| s.una.get())
    }

    /// The queue as Linux's accounting sees it now (None before the connection can send).
    fn skb_queue(&self, cfg: &Config) -> Option<SkbQueue> {
        let snd = self.state.snd()?;
        let mss = self.neg.snd_mss.max(1);
        let queued = self.snd_buf.len();
        let unsent = self.unsent();
        let size_goal = super::push::size_goal(mss, snd.max_wnd);
        let cwnd_room = snd.cwnd().saturating_sub(snd.flight()) as usize;
        let wnd_room = (snd.una + snd.wnd - snd.max).max(0) as usize;
        Some(SkbQueue {
            queued,
            unsent,
            tail: self.tail_before(queued, unsent, size_goal),
            size_goal,
            sndbuf: self.snd_buf.capacity(),
            lowat: self.notsent_limit(cfg).map(|l| l as usize),
            send_room: cwnd_room.min(wnd_room),
            mss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty queue: 50000-byte buffer, skbs of 16000 (half a 32896-byte window),
    /// ten 1000-byte segments of congestion window.
    fn fresh() -> SkbQueue {
        SkbQueue {
            queued: 0,
            unsent: 0,
            tail: 0,
            size_goal: 16_000,
            sndbuf: 50_000,
            lowat: None,
            send_room: 10_000,
            mss: 1000,
        }
    }

    #[test]
    fn a_write_fills_the_skb_left_behind_by_the_push_and_overshoots_the_buffer() {
        // 16000 pushed (10000 go), the 6000 left take 10000 more, then two new skbs:
        // the third starts at 42000 + overhead < 50000 and is filled.
        assert_eq!(fresh().write(59_000), (58_000, 16_000));
    }

    #[test]
    fn notsent_lowat_stops_new_skbs_but_not_the_tail_filling() {
        let q = SkbQueue {
            lowat: Some(4000),
            sndbuf: 262_144,
            ..fresh()
        };
        assert_eq!(q.write(59_000).0, 26_000);
        let q = SkbQueue {
            lowat: Some(32_000),
            ..q
        };
        assert_eq!(q.write(59_000).0, 42_000);
    }

    #[test]
    fn each_skb_costs_its_overhead() {
        // A 4608-byte buffer (SOCK_MIN_SNDBUF), skbs of one 988-byte segment, room for
        // two: the fourth skb would start at 2964 + 3 x 896 >= 4608.
        let q = SkbQueue {
            size_goal: 988,
            sndbuf: 4608,
            send_room: 1976,
            mss: 988,
            ..fresh()
        };
        assert_eq!(q.write(10_000), (2964, 988));
        assert_eq!(truesize(2964, 988), 2964 + 3 * SKB_OVERHEAD);
    }

    #[test]
    fn a_write_that_fits_ends_in_a_tail_later_writes_append_to() {
        let q = SkbQueue {
            send_room: 0,
            ..fresh()
        };
        assert_eq!(q.write(100), (100, 100));
        let q = SkbQueue {
            queued: 100,
            unsent: 100,
            tail: 100,
            ..q
        };
        // The tail takes 15900 more, then new skbs while the buffer has room: it holds
        // 48000 bytes after.
        assert_eq!(q.write(100_000).0, 47_900);
    }
}
