//! The stack's tables: connection slots, listeners and the timer queue (the TIME_WAIT
//! table has its own module). Plain data structures; the rules live in `mod.rs` and in `crate::tcp`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;

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
            conn.events = std::mem::take(&mut self.events);
        }
    }

    /// Take the storage back from a call that left the list empty (the stack's
    /// bookkeeping, which takes it otherwise, did not run).
    pub(crate) fn reclaim(&mut self, conn: &mut Connection) {
        if conn.events.is_empty() {
            self.keep(std::mem::take(&mut conn.events));
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
}

impl Listener {
    /// Linux's sk_acceptq_is_full: more than `backlog` connections wait (so a backlog of
    /// N holds N + 1), and the SYN queue is bounded the same way.
    pub(crate) fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() > self.backlog
    }
}

/// Connection timers: a min-heap of (deadline, slot, generation) with lazy deletion; a
/// slot's `timer_at` says which of its entries is live.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, at: Instant, index: u32, generation: u32) {
        self.heap.push(Reverse((at, index, generation)));
    }

    /// The earliest live deadline, discarding stale entries on the way.
    pub(crate) fn peek_live(
        &mut self,
        live: impl Fn(u32, u32, Instant) -> bool,
    ) -> Option<Instant> {
        while let Some(&Reverse((at, index, generation))) = self.heap.peek() {
            if live(index, generation, at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Entries held, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drop every stale entry (those of connections that are gone or re-armed), so that
    /// the queue holds O(live connections) however fast connections come and go.
    pub(crate) fn compact(&mut self, live: impl Fn(u32, u32, Instant) -> bool) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        let mut kept: Vec<_> = entries
            .into_iter()
            .filter(|&Reverse((at, index, generation))| live(index, generation, at))
            .collect();
        kept.shrink_to_fit();
        self.heap = BinaryHeap::from(kept);
    }

    /// Pop the next entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32, u32)> {
        match self.heap.peek() {
            Some(&Reverse((at, index, generation))) if at <= now => {
                self.heap.pop();
                Some((at, index, generation))
            }
            _ => None,
        }
    }
}
