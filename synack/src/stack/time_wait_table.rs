//! The TIME_WAIT table: connections whose application is gone, kept for 2*MSL with just
//! what TIME_WAIT needs (RFC 9293 3.6.1). Compact by design, since a busy server holds
//! hundreds of thousands (Linux's inet_timewait_sock idea, smaller):
//!
//! - entries live in a ring in order of expiry (every TIME_WAIT lasts the same time, and
//!   a restarted one moves to the back), so expiry is a look at the front, no heap;
//! - the 4-tuple is found through a hash table of 4-byte ring positions, hashed with a
//!   keyed SipHash so that a remote attacker cannot aim collisions;
//! - local addresses are interned (a host has few), and IPv4 and IPv6 entries live in
//!   separate rings so an IPv4 entry does not carry 16-byte addresses.
//!
//! An IPv4 entry costs 40 bytes in the ring plus 6 to 11 in the index (measured by the
//! test `time_wait_entries_cost_at_most_64_bytes_each`, and with a counting allocator
//! by synack/tests/limits.rs).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::hash::Hasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hashbrown::HashTable;
use siphasher::sip::SipHasher13;

use super::tables::FourTuple;
use super::ConnectionHandle;
use crate::tcp::TimeWait;
use crate::wire::SeqNum;
use crate::Instant;

/// One TIME_WAIT table entry, as the stack sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeWaitEntry {
    pub(crate) tw: TimeWait,
    /// The handle the connection had, to name it in events.
    pub(crate) conn: ConnectionHandle,
}

/// An address family's remote address as stored.
trait Family: Copy + Eq {
    fn from_ip(ip: IpAddr) -> Option<Self>;
    fn to_ip(self) -> IpAddr;
    fn bytes(&self) -> &[u8];
}

impl Family for [u8; 4] {
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a.octets()),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl Family for [u8; 16] {
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a.octets()),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Bits of `Packed::local` above the local address index.
const LIVE: u16 = 1 << 15;
const HAS_TS: u16 = 1 << 14;
const LOCAL_INDEX: u16 = HAS_TS - 1;

/// Milliseconds, rounded up (an expiry is never brought forward).
fn ms_ceil(t: Instant) -> u64 {
    t.as_micros().div_ceil(1000)
}

/// The full expiry of a stored one: the 32-bit millisecond count wraps every 49 days,
/// so it is read relative to `anchor`, the latest expiry stored (every live entry
/// expires within 24 days before it).
fn unwrap_ms(anchor: u64, stored: u32) -> Instant {
    let back = u64::from((anchor as u32).wrapping_sub(stored));
    Instant::from_millis(anchor.saturating_sub(back))
}

/// The packed entry: 40 bytes for IPv4, 52 for IPv6.
#[derive(Clone, Copy, Debug)]
struct Packed<A> {
    /// Expiry in milliseconds, wrapping (see `unwrap_ms`).
    expiry: u32,
    conn_index: u32,
    conn_generation: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    ts_recent: u32,
    ts_offset: u32,
    remote: A,
    remote_port: u16,
    local_port: u16,
    /// The local address's index, and the LIVE and HAS_TS bits.
    local: u16,
    rcv_wnd: u16,
}

/// The lookup key of one entry.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key<A> {
    remote: A,
    remote_port: u16,
    local: u16,
    local_port: u16,
}

impl<A: Family> Packed<A> {
    fn key(&self) -> Key<A> {
        Key {
            remote: self.remote,
            remote_port: self.remote_port,
            local: self.local & LOCAL_INDEX,
            local_port: self.local_port,
        }
    }

    fn live(&self) -> bool {
        self.local & LIVE != 0
    }

    fn expiry(&self, anchor: u64) -> Instant {
        unwrap_ms(anchor, self.expiry)
    }

    fn time_wait(&self, anchor: u64) -> TimeWait {
        TimeWait {
            snd_nxt: SeqNum::new(self.snd_nxt),
            rcv_nxt: SeqNum::new(self.rcv_nxt),
            rcv_wnd: self.rcv_wnd,
            ts_recent: (self.local & HAS_TS != 0).then_some(self.ts_recent),
            ts_offset: self.ts_offset,
            expiry: self.expiry(anchor),
        }
    }

    fn entry(&self, anchor: u64) -> TimeWaitEntry {
        TimeWaitEntry {
            tw: self.time_wait(anchor),
            conn: ConnectionHandle {
                index: self.conn_index,
                generation: self.conn_generation,
            },
        }
    }

    fn new(key: Key<A>, tw: &TimeWait, conn: ConnectionHandle) -> Packed<A> {
        Packed {
            expiry: ms_ceil(tw.expiry) as u32,
            conn_index: conn.index,
            conn_generation: conn.generation,
            snd_nxt: tw.snd_nxt.get(),
            rcv_nxt: tw.rcv_nxt.get(),
            ts_recent: tw.ts_recent.unwrap_or(0),
            ts_offset: tw.ts_offset,
            remote: key.remote,
            remote_port: key.remote_port,
            local_port: key.local_port,
            local: key.local | LIVE | if tw.ts_recent.is_some() { HAS_TS } else { 0 },
            rcv_wnd: tw.rcv_wnd,
        }
    }
}

/// One family's entries: a ring in expiry order and an index of ring positions.
#[derive(Debug)]
struct Ring<A> {
    ring: VecDeque<Packed<A>>,
    /// The position (a counter that wraps) of `ring[0]`.
    head: u32,
    index: HashTable<u32>,
    live: usize,
}

impl<A> Default for Ring<A> {
    fn default() -> Self {
        Ring {
            ring: VecDeque::new(),
            head: 0,
            index: HashTable::new(),
            live: 0,
        }
    }
}

impl<A: Family> Ring<A> {
    fn at(&self, pos: u32) -> &Packed<A> {
        &self.ring[pos.wrapping_sub(self.head) as usize]
    }

    fn find(&self, hash: u64, key: &Key<A>) -> Option<u32> {
        self.index
            .find(hash, |&p| self.at(p).key() == *key)
            .copied()
    }

    fn push(&mut self, hash: u64, packed: Packed<A>, hasher: &impl Fn(&Key<A>) -> u64) {
        let pos = self.head.wrapping_add(self.ring.len() as u32);
        if self.ring.len() == self.ring.capacity() {
            // Grow by an eighth, not by doubling: a big table wastes little.
            self.ring.reserve_exact(self.ring.len() / 8 + 64);
        }
        self.ring.push_back(packed);
        let (ring, head) = (&self.ring, self.head);
        self.index.insert_unique(hash, pos, |&p| {
            hasher(&ring[p.wrapping_sub(head) as usize].key())
        });
        self.live += 1;
    }

    /// Take an entry out: its ring slot stays as a dead slot until it reaches the front.
    fn remove(&mut self, hash: u64, key: &Key<A>) -> Option<Packed<A>> {
        let (ring, head) = (&self.ring, self.head);
        let found = self
            .index
            .find_entry(hash, |&p| ring[p.wrapping_sub(head) as usize].key() == *key)
            .ok()?;
        let (pos, _) = found.remove();
        let slot = &mut self.ring[pos.wrapping_sub(self.head) as usize];
        let packed = *slot;
        slot.local &= !LIVE;
        self.live -= 1;
        self.trim();
        Some(packed)
    }

    /// Rebuild the ring without its dead slots (and the index to match) once they are
    /// more than an eighth of the live ones: entries removed out of order (reopened,
    /// reset) must not hold memory until they reach the front. Each rebuild removes at
    /// least live/8 dead slots, so the cost per removal stays constant.
    fn compact_if_sparse(&mut self, hasher: &impl Fn(&Key<A>) -> u64) {
        if self.ring.len() <= self.live + self.live / 8 + 1024 {
            return;
        }
        self.ring.retain(|p| p.live());
        self.ring.shrink_to_fit();
        self.head = 0;
        self.index.clear();
        let ring = &self.ring;
        for (i, p) in ring.iter().enumerate() {
            self.index.insert_unique(hasher(&p.key()), i as u32, |&q| {
                hasher(&ring[q as usize].key())
            });
        }
    }

    /// Drop dead slots from the front.
    fn trim(&mut self) {
        while self.ring.front().is_some_and(|p| !p.live()) {
            self.ring.pop_front();
            self.head = self.head.wrapping_add(1);
        }
        if self.ring.is_empty() && self.ring.capacity() > 64 {
            self.ring.shrink_to(64);
        }
    }

    fn next_expiry(&self, anchor: u64) -> Option<Instant> {
        self.ring.front().map(|p| p.expiry(anchor))
    }
}

/// Connections in TIME_WAIT whose application is gone.
#[derive(Debug)]
pub(crate) struct TimeWaitTable {
    v4: Ring<[u8; 4]>,
    v6: Ring<[u8; 16]>,
    locals: Vec<IpAddr>,
    key: (u64, u64),
    /// The latest expiry stored, in milliseconds (reads the wrapped expiries).
    anchor: u64,
}

impl TimeWaitTable {
    /// An empty table whose index hash is keyed by `key`.
    pub(crate) fn new(key: [u8; 16]) -> TimeWaitTable {
        let key = u128::from_le_bytes(key);
        TimeWaitTable {
            v4: Ring::default(),
            v6: Ring::default(),
            locals: Vec::new(),
            key: (key as u64, (key >> 64) as u64),
            anchor: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.live + self.v6.live
    }

    fn local_index(&self, ip: IpAddr) -> Option<u16> {
        self.locals.iter().position(|&a| a == ip).map(|i| i as u16)
    }

    fn hasher<A: Family>(&self) -> impl Fn(&Key<A>) -> u64 {
        let (k0, k1) = self.key;
        move |k: &Key<A>| {
            let mut h = SipHasher13::new_with_keys(k0, k1);
            h.write(k.remote.bytes());
            h.write_u16(k.remote_port);
            h.write_u16(k.local);
            h.write_u16(k.local_port);
            h.finish()
        }
    }

    fn key<A: Family>(&self, t: &FourTuple) -> Option<Key<A>> {
        Some(Key {
            remote: A::from_ip(t.remote.ip())?,
            remote_port: t.remote.port(),
            local: self.local_index(t.local.ip())?,
            local_port: t.local.port(),
        })
    }

    fn tuple<A: Family>(&self, p: &Packed<A>) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(
                self.locals[usize::from(p.local & LOCAL_INDEX)],
                p.local_port,
            ),
            remote: SocketAddr::new(p.remote.to_ip(), p.remote_port),
        }
    }

    pub(crate) fn get(&self, t: &FourTuple) -> Option<TimeWaitEntry> {
        match t.remote.ip() {
            IpAddr::V4(_) => {
                let k = self.key(t)?;
                let pos = self.v4.find(self.hasher()(&k), &k)?;
                Some(self.v4.at(pos).entry(self.anchor))
            }
            IpAddr::V6(_) => {
                let k = self.key(t)?;
                let pos = self.v6.find(self.hasher()(&k), &k)?;
                Some(self.v6.at(pos).entry(self.anchor))
            }
        }
    }

    pub(crate) fn contains(&self, t: &FourTuple) -> bool {
        self.get(t).is_some()
    }

    /// Every entry, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (FourTuple, TimeWaitEntry)> + '_ {
        let v4 = self.v4.ring.iter().filter(|p| p.live());
        let v6 = self.v6.ring.iter().filter(|p| p.live());
        v4.map(|p| (self.tuple(p), p.entry(self.anchor)))
            .chain(v6.map(|p| (self.tuple(p), p.entry(self.anchor))))
    }

    /// Add an entry (its expiry must be no earlier than any entry's already here, as
    /// `now + time_wait` always is; a replaced entry for the same tuple is removed first).
    pub(crate) fn insert(&mut self, t: FourTuple, tw: TimeWait, conn: ConnectionHandle) {
        self.remove(&t);
        let local = match self.local_index(t.local.ip()) {
            Some(i) => i,
            None if self.locals.len() < usize::from(LOCAL_INDEX) => {
                self.locals.push(t.local.ip());
                (self.locals.len() - 1) as u16
            }
            None => return, // 16,383 local addresses in TIME_WAIT at once: not kept
        };
        self.anchor = self.anchor.max(ms_ceil(tw.expiry));
        match (t.local.ip(), t.remote.ip()) {
            (IpAddr::V4(_), IpAddr::V4(r)) => {
                let key = Key {
                    remote: r.octets(),
                    remote_port: t.remote.port(),
                    local,
                    local_port: t.local.port(),
                };
                let hasher = self.hasher();
                self.v4
                    .push(hasher(&key), Packed::new(key, &tw, conn), &hasher);
            }
            (IpAddr::V6(_), IpAddr::V6(r)) => {
                let key = Key {
                    remote: r.octets(),
                    remote_port: t.remote.port(),
                    local,
                    local_port: t.local.port(),
                };
                let hasher = self.hasher();
                self.v6
                    .push(hasher(&key), Packed::new(key, &tw, conn), &hasher);
            }
            _ => {}
        }
    }

    pub(crate) fn remove(&mut self, t: &FourTuple) -> Option<TimeWaitEntry> {
        match t.remote.ip() {
            IpAddr::V4(_) => {
                let k = self.key(t)?;
                let hasher = self.hasher();
                let removed = self.v4.remove(hasher(&k), &k).map(|p| p.entry(self.anchor));
                self.v4.compact_if_sparse(&hasher);
                removed
            }
            IpAddr::V6(_) => {
                let k = self.key(t)?;
                let hasher = self.hasher();
                let removed = self.v6.remove(hasher(&k), &k).map(|p| p.entry(self.anchor));
                self.v6.compact_if_sparse(&hasher);
                removed
            }
        }
    }

    /// Store an entry's TIME_WAIT after a segment changed it: in place, or, when its
    /// 2*MSL restarted, at the back of the ring (so the ring stays in expiry order).
    pub(crate) fn update(&mut self, t: &FourTuple, tw: TimeWait) {
        fn in_place<A: Family>(
            ring: &mut Ring<A>,
            key: Option<Key<A>>,
            hash: impl Fn(&Key<A>) -> u64,
            tw: &TimeWait,
        ) -> Option<ConnectionHandle> {
            let key = key?;
            let pos = ring.find(hash(&key), &key)?;
            let i = pos.wrapping_sub(ring.head) as usize;
            let old = ring.ring[i];
            let conn = ConnectionHandle {
                index: old.conn_index,
                generation: old.conn_generation,
            };
            if old.expiry != ms_ceil(tw.expiry) as u32 {
                return Some(conn);
            }
            ring.ring[i] = Packed::new(key, tw, conn);
            None
        }
        let moved = match t.remote.ip() {
            IpAddr::V4(_) => {
                let (key, hasher) = (self.key(t), self.hasher());
                in_place(&mut self.v4, key, hasher, &tw)
            }
            IpAddr::V6(_) => {
                let (key, hasher) = (self.key(t), self.hasher());
                in_place(&mut self.v6, key, hasher, &tw)
            }
        };
        if let Some(conn) = moved {
            self.remove(t);
            self.insert(*t, tw, conn);
        }
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        match (
            self.v4.next_expiry(self.anchor),
            self.v6.next_expiry(self.anchor),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Remove and return the entries whose TIME_WAIT is over at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(FourTuple, TimeWaitEntry)> {
        let mut done = Vec::new();
        let anchor = self.anchor;
        while let Some(p) = self
            .v4
            .ring
            .front()
            .filter(|p| p.expiry(anchor) <= now)
            .copied()
        {
            let t = self.tuple(&p);
            if let Some(e) = self.remove(&t) {
                done.push((t, e));
            }
        }
        while let Some(p) = self
            .v6
            .ring
            .front()
            .filter(|p| p.expiry(anchor) <= now)
            .copied()
        {
            let t = self.tuple(&p);
            if let Some(e) = self.remove(&t) {
                done.push((t, e));
            }
        }
        done
    }

    /// Bytes the table holds on the heap (ring and index capacity).
    pub(crate) fn heap_bytes(&self) -> usize {
        fn ring<A>(r: &Ring<A>) -> usize {
            // hashbrown keeps 7/8 of its buckets usable; each bucket is a u32 and a
            // control byte, plus one group of control bytes.
            let buckets = match r.index.capacity() {
                0 => 0,
                c if c < 8 => c.next_power_of_two() * 2,
                c => c / 7 * 8,
            };
            r.ring.capacity() * core::mem::size_of::<Packed<A>>()
                + buckets * (core::mem::size_of::<u32>() + 1)
                + 16
        }
        ring(&self.v4) + ring(&self.v6) + self.locals.capacity() * 17
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn tw(expiry: Instant) -> TimeWait {
        TimeWait {
            snd_nxt: SeqNum::new(1),
            rcv_nxt: SeqNum::new(2),
            rcv_wnd: 100,
            ts_recent: Some(7),
            ts_offset: 9,
            expiry,
        }
    }

    fn tuple(i: u32) -> FourTuple {
        FourTuple {
            local: "198.18.0.1:80".parse().unwrap(),
            remote: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(0xC612_0000 | (i >> 16))),
                (i & 0xffff) as u16,
            ),
        }
    }

    const H: ConnectionHandle = ConnectionHandle {
        index: 3,
        generation: 4,
    };

    #[test]
    fn packed_entries_are_40_bytes_for_ipv4_and_52_for_ipv6() {
        assert_eq!(core::mem::size_of::<Packed<[u8; 4]>>(), 40);
        assert_eq!(core::mem::size_of::<Packed<[u8; 16]>>(), 52);
    }

    #[test]
    fn expiries_read_back_across_the_32_bit_millisecond_wrap() {
        let mut table = TimeWaitTable::new([1; 16]);
        let late = Instant::from_millis((1 << 32) + 5_000);
        let early = Instant::from_millis((1 << 32) - 5_000);
        table.insert(tuple(1), tw(early), H);
        table.insert(tuple(2), tw(late), H);
        assert_eq!(table.get(&tuple(1)).unwrap().tw.expiry, early);
        assert_eq!(table.get(&tuple(2)).unwrap().tw.expiry, late);
        assert_eq!(table.expire(early).len(), 1);
        assert_eq!(table.next_expiry(), Some(late));
    }

    #[test]
    fn entries_round_trip_and_expire_in_order() {
        let mut table = TimeWaitTable::new([1; 16]);
        let v6 = FourTuple {
            local: "[2001:db8::1]:80".parse().unwrap(),
            remote: "[2001:db8::2]:5000".parse().unwrap(),
        };
        table.insert(tuple(1), tw(Instant::from_secs(60)), H);
        table.insert(v6, tw(Instant::from_secs(61)), H);
        table.insert(tuple(2), tw(Instant::from_secs(62)), H);
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(&tuple(1)).unwrap().tw, tw(Instant::from_secs(60)));
        assert_eq!(table.get(&v6).unwrap().conn, H);
        assert!(table.get(&tuple(3)).is_none());
        assert_eq!(table.next_expiry(), Some(Instant::from_secs(60)));
        let gone = table.expire(Instant::from_secs(61));
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[0].0, tuple(1));
        assert_eq!(gone[1].0, v6);
        assert_eq!(table.len(), 1);
        assert!(table.contains(&tuple(2)));
    }

    #[test]
    fn a_restarted_entry_moves_behind_the_others() {
        let mut table = TimeWaitTable::new([1; 16]);
        table.insert(tuple(1), tw(Instant::from_secs(60)), H);
        table.insert(tuple(2), tw(Instant::from_secs(61)), H);
        table.update(&tuple(1), tw(Instant::from_secs(100)));
        assert_eq!(table.expire(Instant::from_secs(61)).len(), 1);
        assert!(table.contains(&tuple(1)));
        assert_eq!(table.next_expiry(), Some(Instant::from_secs(100)));
        assert_eq!(table.expire(Instant::from_secs(100)).len(), 1);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn removed_entries_leave_no_live_trace() {
        let mut table = TimeWaitTable::new([1; 16]);
        for i in 0..1000 {
            table.insert(tuple(i), tw(Instant::from_secs(60)), H);
        }
        for i in (0..1000).step_by(2) {
            assert!(table.remove(&tuple(i)).is_some());
        }
        assert_eq!(table.len(), 500);
        assert_eq!(table.iter().count(), 500);
        assert!(table.iter().all(|(t, _)| t.remote.port() % 2 == 1));
        assert_eq!(table.expire(Instant::from_secs(60)).len(), 500);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn entries_removed_out_of_order_do_not_hold_memory() {
        let mut table = TimeWaitTable::new([1; 16]);
        for i in 0..100_000 {
            table.insert(tuple(i), tw(Instant::from_secs(60)), H);
            if i % 10 != 0 {
                table.remove(&tuple(i));
            }
        }
        assert_eq!(table.len(), 10_000);
        assert!(
            table.v4.ring.len() <= 2 * 10_000 + 1024,
            "{}",
            table.v4.ring.len()
        );
        assert!((0..100_000).step_by(10).all(|i| table.contains(&tuple(i))));
        assert_eq!(table.expire(Instant::from_secs(60)).len(), 10_000);
    }

    #[test]
    fn time_wait_entries_cost_at_most_64_bytes_each() {
        let mut table = TimeWaitTable::new([1; 16]);
        let n = 1_000_000u32;
        for i in 0..n {
            let at = Instant::ZERO + Duration::from_secs(60);
            table.insert(tuple(i), tw(at), H);
        }
        let per_entry = table.heap_bytes() as f64 / f64::from(n);
        assert!(
            per_entry <= 64.0,
            "{per_entry:.1} bytes per TIME_WAIT entry"
        );
    }
}
