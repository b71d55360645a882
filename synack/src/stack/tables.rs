//! The stack's tables: connection slots, listeners, the TIME_WAIT table and the timer
//! queue. Plain data structures; the rules live in `mod.rs` and in `crate::tcp`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use super::ConnectionHandle;
use crate::tcp::{Connection, TimeWait};
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
}

/// A listening socket: its SYN queue count and accept queue.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) local: SocketAddr,
    pub(crate) backlog: usize,
    pub(crate) embryonic: usize,
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

/// One TIME_WAIT table entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeWaitEntry {
    pub(crate) tw: TimeWait,
    /// The handle the connection had, to name it in events.
    pub(crate) conn: ConnectionHandle,
}

/// Connections in TIME_WAIT whose application is gone: just what TIME_WAIT needs.
#[derive(Debug, Default)]
pub(crate) struct TimeWaitTable {
    entries: HashMap<FourTuple, TimeWaitEntry>,
    expiries: BinaryHeap<Reverse<(Instant, u64)>>,
    keys: HashMap<u64, FourTuple>,
    next_key: u64,
}

impl TimeWaitTable {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, t: &FourTuple) -> Option<&TimeWaitEntry> {
        self.entries.get(t)
    }

    pub(crate) fn get_mut(&mut self, t: &FourTuple) -> Option<&mut TimeWaitEntry> {
        self.entries.get_mut(t)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&FourTuple, &TimeWaitEntry)> {
        self.entries.iter()
    }

    pub(crate) fn insert(&mut self, t: FourTuple, tw: TimeWait, conn: ConnectionHandle) {
        self.entries.insert(t, TimeWaitEntry { tw, conn });
        let key = self.next_key;
        self.next_key += 1;
        self.keys.insert(key, t);
        self.expiries.push(Reverse((tw.expiry, key)));
    }

    pub(crate) fn remove(&mut self, t: &FourTuple) -> Option<TimeWaitEntry> {
        self.entries.remove(t)
    }

    /// The earliest expiry on record (may be early if an entry was restarted: harmless).
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.peek().map(|Reverse((t, _))| *t)
    }

    /// Remove and return the entries whose TIME_WAIT is over at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(FourTuple, TimeWaitEntry)> {
        let mut done = Vec::new();
        while let Some(&Reverse((at, key))) = self.expiries.peek() {
            if at > now {
                break;
            }
            self.expiries.pop();
            let Some(t) = self.keys.remove(&key) else {
                continue;
            };
            match self.entries.get(&t) {
                // Restarted (a retransmitted FIN was re-ACKed): wait for the new expiry.
                Some(e) if e.tw.expiry > now => {
                    let expiry = e.tw.expiry;
                    self.keys.insert(key, t);
                    self.expiries.push(Reverse((expiry, key)));
                }
                Some(_) => {
                    if let Some(e) = self.entries.remove(&t) {
                        done.push((t, e));
                    }
                }
                None => {}
            }
        }
        done
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
