//! The stack's tables: connection slots, listeners and the timing wheel (the TIME_WAIT
//! table has its own module). Plain data structures; the rules live in `mod.rs` and in `crate::tcp`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::tcp::{ConnEvent, Connection};
use crate::Instant;

/// A connection's identity on the wire: (our address and port, the peer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FourTuple {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
}

/// One entry of the connection arena.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) conn: Option<Box<Connection>>,
    /// The application holds a handle (accepted or connected, not closed).
    pub(crate) app_owned: bool,
    /// In `by_tuple` (false once CLOSED or moved to the TIME_WAIT table).
    pub(crate) in_table: bool,
    /// Queued in `tx_ready`.
    pub(crate) in_tx: bool,
    /// The deadline of this slot's live entry in the timer queue.
    pub(crate) timer_at: Option<Instant>,
    /// The listener that created it, until accepted.
    pub(crate) listener: Option<u32>,
    /// Counted in the listener's SYN queue (handshake not complete).
    pub(crate) embryonic: bool,
    /// Counted as an orphan (`Config::tcp_max_orphans`).
    pub(crate) orphan: bool,
    /// Buffer bytes this connection was last counted for (`Config::tcp_mem`).
    pub(crate) memory: u32,
    /// Queued in `Stack::idle_release` (an empty buffer holds storage to give back).
    pub(crate) release_queued: bool,
    /// IP_MTU_DISCOVER set to IP_PMTUDISC_DONT: "fragmentation needed" is not acted on.
    pub(crate) pmtu_disc_off: bool,
    /// The error queue (zerocopy completions, transmit timestamps), once asked for.
    pub(crate) reports: Option<Box<super::tx_reports::TxReports>>,
    /// TCP-MD5 keys set on this connection (or the one its listener gave it).
    pub(crate) md5: Option<Box<super::md5::Md5Keys>>,
}

/// Count `held` bytes in a slot's `memory`; (what was counted, what is now), for
/// `Config::tcp_mem`. (A count stops at 4 GiB, far beyond any buffer.)
pub(crate) fn recount(memory: &mut u32, held: usize) -> (usize, usize) {
    let held = u32::try_from(held).unwrap_or(u32::MAX);
    let before = core::mem::replace(memory, held);
    (before as usize, held as usize)
}

/// The list a connection fills while the stack calls it (events, resets to send): one
/// list whose storage the stack lends to the connection it calls and takes back
/// afterwards, so that an idle connection holds no list storage and the busy path
/// allocates none.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    events: Vec<ConnEvent>,
}

impl Scratch {
    /// Lend the storage to `conn` (unless it has a list of its own already).
    pub(crate) fn lend(&mut self, conn: &mut Connection) {
        if conn.events.capacity() == 0 {
            conn.events = core::mem::take(&mut self.events);
        }
    }

    /// Take the storage back from a call that left the list empty (the stack's
    /// bookkeeping, which takes it otherwise, did not run).
    pub(crate) fn reclaim(&mut self, conn: &mut Connection) {
        if conn.events.is_empty() {
            self.keep(core::mem::take(&mut conn.events));
        }
    }

    /// Take back a drained list (the larger storage is kept).
    pub(crate) fn keep(&mut self, mut events: Vec<ConnEvent>) {
        events.clear();
        if events.capacity() > self.events.capacity() {
            self.events = events;
        }
    }
}

/// A listening socket: its SYN queue count and accept queue.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    pub(crate) backlog: usize,
    pub(crate) embryonic: usize,
    /// When it last answered a SYN with a cookie (its cookies are checked for two
    /// minutes after).
    pub(crate) last_cookie: Option<crate::Instant>,
    pub(crate) accept_queue: VecDeque<u32>,
    /// What connections it accepts start with (set on the listening socket).
    pub(crate) options: super::ListenerOptions,
    /// A catch-all listener's destinations (`Stack::listen_capture`).
    pub(crate) capture: Option<Box<super::Capture>>,
    /// Held connection requests the application has not taken yet (decide-first), and
    /// how many it holds in all.
    pub(crate) requests: VecDeque<u64>,
    pub(crate) pending: usize,
    /// Fast Open children not yet accepted or established (Linux's fastopenq.qlen).
    pub(crate) fastopen_pending: u32,
    /// TCP-MD5 keys set on the listener (`Stack::set_listener_md5_key`).
    pub(crate) md5: Option<Box<super::md5::Md5Keys>>,
}

impl Listener {
    /// Linux's sk_acceptq_is_full: more than `backlog` connections wait (so a backlog of
    /// N holds N + 1), and the SYN queue is bounded the same way.
    pub(crate) fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() > self.backlog
    }
}

/// Connection timers: a hierarchical timing wheel (as Linux's and tokio's timers), so
/// that arming a timer is O(1) and each entry is moved at most once per level on its
/// way to firing, however many connections there are. Deadlines stay exact to the
/// microsecond: level 0 has one bucket per microsecond, level `k` buckets of `64^k`.
///
/// Entries are placed relative to `elapsed` (the start of the last bucket processed,
/// never after the latest `now`): level `k` holds entries whose deadline first differs
/// from `elapsed` in bits `6k..6k+6`, so every bucket covers a later stretch of time
/// than the buckets before it. Buckets are lists linked through one pool of nodes, so
/// moving an entry allocates nothing and the pool stops growing at the most entries
/// ever held. Deletion is lazy: a slot's `timer_at` says which of its entries is live,
/// and stale ones are dropped when met (or by `compact`).
#[derive(Debug)]
pub(crate) struct TimerQueue {
    elapsed: u64,
    nodes: Vec<Node>,
    /// The first unused node (a list through `next`).
    free: u32,
    /// The first node of each bucket's list, level by level.
    heads: Vec<u32>,
    /// The entry with the earliest deadline placed in each bucket since it was last
    /// emptied or pruned: what `peek_live` reports for a bucket above level 0 while it is
    /// live.
    earliest: Vec<Option<TimerEntry>>,
    /// Per level, a bit per non-empty bucket.
    occupied: [u64; LEVELS],
    /// The list of entries of the level-0 bucket being fired.
    due: u32,
    len: usize,
}

/// (deadline, slot, generation).
type TimerEntry = (Instant, u32, u32);

#[derive(Clone, Copy, Debug)]
struct Node {
    entry: TimerEntry,
    next: u32,
}

/// The end of a list.
const NIL: u32 = u32::MAX;
/// The most entries `peek_live` walks to replace a bucket's stale earliest entry: small
/// buckets (a few connections) get exact deadlines, large ones (many connections) a
/// bound that costs nothing (an early wake-up at worst, when nothing fires).
const RESCAN_MAX: usize = 64;
/// Six bits per level: eleven levels cover every microsecond count.
const LEVELS: usize = 11;
const SLOTS: usize = 64;

impl Default for TimerQueue {
    fn default() -> TimerQueue {
        TimerQueue {
            elapsed: 0,
            nodes: Vec::new(),
            free: NIL,
            heads: vec![NIL; LEVELS * SLOTS],
            earliest: vec![None; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            due: NIL,
            len: 0,
        }
    }
}

impl TimerQueue {
    pub(crate) fn push(&mut self, at: Instant, index: u32, generation: u32) {
        let entry = (at, index, generation);
        let node = if self.free != NIL {
            let n = self.free;
            self.free = self.nodes[n as usize].next;
            self.nodes[n as usize].entry = entry;
            n
        } else {
            self.nodes.push(Node { entry, next: NIL });
            (self.nodes.len() - 1) as u32
        };
        self.place(node);
        self.len += 1;
    }

    /// Link a node into its bucket (a deadline already past goes in the current one).
    fn place(&mut self, node: u32) {
        let when = self.nodes[node as usize]
            .entry
            .0
            .as_micros()
            .max(self.elapsed);
        let masked = (self.elapsed ^ when) | (SLOTS as u64 - 1);
        let level = (63 - masked.leading_zeros() as usize) / 6;
        let slot = ((when >> (6 * level)) & 63) as usize;
        let n = level * SLOTS + slot;
        self.nodes[node as usize].next = self.heads[n];
        self.heads[n] = node;
        let entry = self.nodes[node as usize].entry;
        if self.earliest[n].is_none_or(|e| entry.0 < e.0) {
            self.earliest[n] = Some(entry);
        }
        self.occupied[level] |= 1 << slot;
    }

    fn release(&mut self, node: u32) {
        self.nodes[node as usize].next = self.free;
        self.free = node;
        self.len -= 1;
    }

    /// Whether bucket `n` holds more than `max` entries (walking at most that many).
    fn longer_than(&self, n: usize, max: usize) -> bool {
        let mut at = self.heads[n];
        for _ in 0..=max {
            if at == NIL {
                return false;
            }
            at = self.nodes[at as usize].next;
        }
        true
    }

    /// Unlink and release the stale nodes of the list starting at `*head`; the live
    /// entry with the earliest deadline left in it.
    fn prune(
        &mut self,
        head: ListHead,
        live: &impl Fn(u32, u32, Instant) -> bool,
    ) -> Option<TimerEntry> {
        let mut earliest: Option<TimerEntry> = None;
        let mut prev = NIL;
        let mut at = self.list(head);
        while at != NIL {
            let Node { entry, next } = self.nodes[at as usize];
            if live(entry.1, entry.2, entry.0) {
                if earliest.is_none_or(|e| entry.0 < e.0) {
                    earliest = Some(entry);
                }
                prev = at;
            } else {
                if prev == NIL {
                    self.set_list(head, next);
                } else {
                    self.nodes[prev as usize].next = next;
                }
                self.release(at);
            }
            at = next;
        }
        earliest
    }

    fn list(&self, head: ListHead) -> u32 {
        match head {
            ListHead::Due => self.due,
            ListHead::Bucket(n) => self.heads[n],
        }
    }

    fn set_list(&mut self, head: ListHead, node: u32) {
        match head {
            ListHead::Due => self.due = node,
            ListHead::Bucket(n) => self.heads[n] = node,
        }
    }

    /// The first non-empty bucket, as (level, slot, the time it begins).
    fn next_bucket(&self) -> Option<(usize, usize, u64)> {
        (0..LEVELS).find_map(|level| {
            let shift = 6 * level;
            let digit = (self.elapsed >> shift) & 63;
            let candidates = self.occupied[level] & (!0u64 << digit);
            if candidates == 0 {
                return None;
            }
            let slot = u64::from(candidates.trailing_zeros());
            let above = if shift + 6 >= 64 {
                0
            } else {
                self.elapsed & !((1u64 << (shift + 6)) - 1)
            };
            Some((level, slot as usize, above + (slot << shift)))
        })
    }

    /// The earliest instant there may be a live entry due: exact, stale entries being
    /// discarded on the way, except when the next bucket is above level 0, holds more
    /// than `RESCAN_MAX` entries and its earliest entry has gone stale: then that entry's
    /// deadline, a bound (`pop_due` at that time moves the bucket's entries down and
    /// nothing fires).
    pub(crate) fn peek_live(
        &mut self,
        live: impl Fn(u32, u32, Instant) -> bool,
    ) -> Option<Instant> {
        if let Some(e) = self.prune(ListHead::Due, &live) {
            return Some(e.0);
        }
        loop {
            let (level, slot, start) = self.next_bucket()?;
            let start = Instant::from_micros(start);
            if level > 0 {
                let n = level * SLOTS + slot;
                match self.earliest[n] {
                    Some(e) if live(e.1, e.2, e.0) => return Some(e.0.max(start)),
                    // A large bucket is not walked: its stale earliest is a bound.
                    Some(e) if self.longer_than(n, RESCAN_MAX) => return Some(e.0.max(start)),
                    _ => {}
                }
                self.earliest[n] = self.prune(ListHead::Bucket(n), &live);
                match self.earliest[n] {
                    Some(e) => return Some(e.0.max(start)),
                    None => {
                        self.occupied[level] &= !(1 << slot);
                        continue;
                    }
                }
            }
            if let Some(e) = self.prune(ListHead::Bucket(slot), &live) {
                return Some(e.0);
            }
            self.occupied[0] &= !(1 << slot);
        }
    }

    /// Entries held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Drop every stale entry (those of connections that are gone or re-armed) and give
    /// back the pool beyond what the live ones need, so that the wheel holds
    /// O(live connections) however fast connections come and go.
    pub(crate) fn compact(&mut self, live: impl Fn(u32, u32, Instant) -> bool) {
        let mut kept = Vec::new();
        for head in core::iter::once(self.due).chain(self.heads.iter().copied()) {
            let mut at = head;
            while at != NIL {
                let Node { entry, next } = self.nodes[at as usize];
                if live(entry.1, entry.2, entry.0) {
                    kept.push(entry);
                }
                at = next;
            }
        }
        let elapsed = self.elapsed;
        *self = TimerQueue {
            elapsed,
            nodes: Vec::with_capacity(kept.len()),
            ..TimerQueue::default()
        };
        for (at, index, generation) in kept {
            self.push(at, index, generation);
        }
    }

    /// Pop the next entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32, u32)> {
        loop {
            if self.due != NIL {
                let node = self.due;
                self.due = self.nodes[node as usize].next;
                let entry = self.nodes[node as usize].entry;
                self.release(node);
                return Some(entry);
            }
            let (level, slot, start) = self.next_bucket()?;
            if start > now.as_micros() {
                return None;
            }
            self.elapsed = start;
            self.occupied[level] &= !(1 << slot);
            let n = level * SLOTS + slot;
            let mut at = core::mem::replace(&mut self.heads[n], NIL);
            self.earliest[n] = None;
            if level == 0 {
                // Every entry of a level-0 bucket is due at its microsecond (or before).
                self.due = at;
            } else {
                // Move the bucket's entries down to where they belong from here.
                while at != NIL {
                    let next = self.nodes[at as usize].next;
                    self.place(at);
                    at = next;
                }
            }
        }
    }
}

/// Which list `prune` works on.
#[derive(Clone, Copy)]
enum ListHead {
    Due,
    Bucket(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Drive the wheel as the stack does: sleep until `peek_live`, fire what is due.
    /// Returns (deadline, time fired) for every entry.
    fn run(wheel: &mut TimerQueue, until: Instant) -> Vec<(Instant, Instant)> {
        let mut fired = Vec::new();
        while let Some(t) = wheel.peek_live(|_, _, _| true) {
            if t > until {
                break;
            }
            while let Some((at, _, _)) = wheel.pop_due(t) {
                fired.push((at, t));
            }
        }
        fired
    }

    #[test]
    fn timers_fire_at_their_microsecond_across_every_level() {
        let mut wheel = TimerQueue::default();
        let start = Instant::from_micros(12_345);
        wheel.pop_due(start);
        let waits = [
            0u64,
            1,
            63,
            64,
            4_095,
            4_096,
            200_000,
            1_000_000,
            3_600_000_000,
        ];
        for (i, w) in waits.iter().enumerate() {
            wheel.push(start + core::time::Duration::from_micros(*w), i as u32, 0);
        }
        let fired = run(&mut wheel, Instant::from_secs(100_000));
        assert_eq!(fired.len(), waits.len());
        for (at, t) in &fired {
            assert_eq!(at, t, "fired at {t:?}, due {at:?}");
        }
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn stale_entries_are_dropped_and_do_not_wake_the_stack_at_their_time() {
        let mut wheel = TimerQueue::default();
        wheel.push(Instant::from_micros(10), 1, 0);
        wheel.push(Instant::from_micros(20), 2, 0);
        // Slot 1 was re-armed: its entry at 10 us is stale.
        let live = |i: u32, _: u32, at: Instant| !(i == 1 && at == Instant::from_micros(10));
        assert_eq!(wheel.peek_live(live), Some(Instant::from_micros(20)));
        assert_eq!(wheel.len(), 1);
        wheel.push(Instant::from_secs(5), 3, 0);
        wheel.compact(|i, _, _| i != 3);
        assert_eq!(wheel.len(), 1);
    }

    proptest! {
        /// With entries going stale (re-armed timers), the wheel never reports a time
        /// after the earliest live deadline, and with few entries reports it exactly.
        #[test]
        fn peek_is_the_earliest_live_deadline(
            entries in proptest::collection::vec((0u64..(1 << 34), proptest::bool::ANY), 1..60),
            advance in 0u64..(1 << 30),
        ) {
            let mut wheel = TimerQueue::default();
            let start = Instant::from_micros(1 << 20);
            wheel.pop_due(start);
            let mut model = Vec::new();
            for (id, (wait, stale)) in entries.iter().enumerate() {
                let at = start + core::time::Duration::from_micros(*wait);
                wheel.push(at, id as u32, 0);
                model.push((at, core::cell::Cell::new(*stale)));
            }
            let live = |i: u32, _: u32, _: Instant| !model[i as usize].1.get();
            // Fire what is due after a while, then compare.
            let now = start + core::time::Duration::from_micros(advance);
            while let Some(t) = wheel.peek_live(live) {
                if t > now {
                    break;
                }
                while let Some((at, i, _)) = wheel.pop_due(t) {
                    prop_assert!(at <= now);
                    // Fired (a stale one the stack would skip): no longer live.
                    model[i as usize].1.set(true);
                }
            }
            let earliest = model.iter().filter(|e| !e.1.get()).map(|e| e.0).min();
            let peek = wheel.peek_live(live);
            match earliest {
                None => prop_assert!(peek.is_none_or(|t| t > now)),
                Some(e) => {
                    let p = peek.expect("a live entry is reported");
                    prop_assert!(p <= e, "reported {p:?} after the earliest live {e:?}");
                    prop_assert_eq!(p, e, "few entries: exact");
                }
            }
        }

        /// Against a model: every entry fires exactly at its deadline (or at once when
        /// armed in the past), none is lost or fired twice, with pushes between firings.
        #[test]
        fn the_wheel_fires_every_entry_at_its_deadline(
            steps in proptest::collection::vec(
                (0u64..5, proptest::collection::vec(0u64..(1 << 40), 0..4)), 1..60),
        ) {
            let mut wheel = TimerQueue::default();
            let mut now = Instant::ZERO;
            let mut expected = Vec::new();
            let mut fired = Vec::new();
            let mut id = 0u32;
            for (advance_bits, waits) in steps {
                for w in waits {
                    let at = now + core::time::Duration::from_micros(w >> (advance_bits * 8));
                    wheel.push(at, id, 0);
                    expected.push((id, at));
                    id += 1;
                }
                // Advance to the next deadline (or a little), firing what is due.
                let next = wheel.peek_live(|_, _, _| true);
                prop_assert!(next.is_none_or(|t| t >= now), "nothing is due in the past");
                if let Some(t) = next {
                    now = now.max(t);
                    while let Some((at, i, _)) = wheel.pop_due(now) {
                        prop_assert!(at <= now);
                        fired.push((i, at, now));
                    }
                }
            }
            for (at, t) in run(&mut wheel, Instant::from_micros(u64::MAX - 1)) {
                fired.push((u32::MAX, at, t));
            }
            prop_assert_eq!(fired.len(), expected.len());
            for (_, at, t) in &fired {
                prop_assert_eq!(at, t, "an entry fired late or early");
            }
            let mut got: Vec<Instant> = fired.iter().map(|f| f.1).collect();
            let mut want: Vec<Instant> = expected.iter().map(|e| e.1).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
