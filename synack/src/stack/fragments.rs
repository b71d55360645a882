//! IP fragment reassembly: fragments addressed to us wait, per datagram, until the
//! datagram is whole (RFC 791 3.2 and RFC 815 for IPv4, RFC 8200 4.5 for IPv6), then
//! come back as one ordinary IP packet for the normal receive path.
//!
//! Defended as Linux is since the FragmentSmack fixes: a fragment that overlaps another
//! discards its whole datagram (RFC 5722), the memory incomplete datagrams hold is
//! bounded (`Config::ipfrag_high_thresh`), and each datagram has a time limit
//! (`ipfrag_time`, `ip6frag_time`), a fragment count limit (`ipfrag_max_fragments`) and
//! the 65535-byte size limit. Nothing here allocates more than the limits allow.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::mem::size_of;
use core::net::IpAddr;

use super::keyed::{HashMap, Keyed};
use super::Config;
use crate::wire::icmp::PROTO_ICMPV6;
use crate::wire::ipv6::{self, FRAGMENT_HEADER_LEN, NEXT_HEADER_FRAGMENT};
use crate::wire::{IpFragment, Ipv4Packet, Ipv6FragmentHeader, PROTO_TCP};
use crate::Instant;

/// Largest IPv4 datagram (16-bit Total Length, RFC 791 3.1) and largest IPv6 payload
/// without jumbograms (16-bit Payload Length, RFC 8200 4.5).
const MAX_DATAGRAM: usize = 65535;

/// Memory a datagram holds besides its bytes: its entry in the table (key and state,
/// counted twice because a hash table runs at most about half full after it grows) and
/// its timer entry.
const DATAGRAM_OVERHEAD: usize = 2 * (size_of::<DatagramKey>() + size_of::<Datagram>())
    + size_of::<(Instant, u64, DatagramKey)>();

/// Largest ICMPv4 error: 576 bytes (RFC 1812 4.3.2.3); ICMPv6: the minimum MTU, 1280
/// bytes (RFC 4443 2.4 (c)). Less the IP and ICMP headers, it is what may be quoted.
const V4_QUOTE_MAX: usize = 576 - 20 - 8;
const V6_QUOTE_MAX: usize = 1280 - 40 - 8;

/// What identifies a datagram: RFC 791 3.2 (source, destination, protocol,
/// identification) and RFC 8200 4.5 (source, destination, identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    /// IPv4 only; None for IPv6, whose key has no protocol.
    protocol: Option<u8>,
    ident: u32,
}

/// One fragment's data and where it goes.
#[derive(Debug)]
struct Fragment {
    offset: u32,
    data: Box<[u8]>,
}

impl Fragment {
    fn end(&self) -> u32 {
        self.offset + self.data.len() as u32
    }
}

/// The header of the fragment at offset 0, which the reassembled packet takes (RFC 791
/// 3.2: the first fragment's header; RFC 8200 4.5: its Unfragmentable Part).
#[derive(Debug)]
struct First {
    /// As received (IPv6: without the Fragment header).
    header: Box<[u8]>,
    /// IPv6: where the Next Header field naming the Fragment header is.
    next_header_at: Option<usize>,
    /// IPv4: the protocol; IPv6: the Fragment header's Next Header.
    protocol: u8,
}

/// A datagram being reassembled.
#[derive(Debug)]
struct Datagram {
    /// Sorted by offset; never overlapping.
    fragments: Vec<Fragment>,
    first: Option<First>,
    /// The Fragmentable Part's length, known once the last fragment (MF = 0) arrived.
    total_len: Option<u32>,
    /// Bytes held: the datagram is whole when they reach `total_len` (no overlaps).
    received: u32,
    /// The key of its timer entry.
    timer: (Instant, u64),
    /// Set when the datagram was discarded: its later fragments are dropped for this
    /// reason until the timer ends (RFC 5722 4: "including those not yet received").
    discarded: Option<&'static str>,
    /// Its share of [`Reassembler::memory`].
    memory: usize,
}

impl Datagram {
    /// What it holds, from what is really allocated.
    fn held(&self) -> usize {
        DATAGRAM_OVERHEAD
            + self.fragments.capacity() * size_of::<Fragment>()
            + self.fragments.iter().map(|f| f.data.len()).sum::<usize>()
            + self.first.as_ref().map_or(0, |f| f.header.len())
    }

    fn max_end(&self) -> u32 {
        self.fragments.last().map_or(0, Fragment::end)
    }
}

/// What became of one fragment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Held until the rest of its datagram arrives.
    Held,
    /// It completed its datagram: here is the whole IP packet.
    Reassembled(Vec<u8>),
    /// Dropped under `reason`, with `fragments` counting it and any held fragments of
    /// its datagram discarded with it.
    Dropped {
        /// The drop counter's key.
        reason: &'static str,
        /// Fragments dropped.
        fragments: u64,
    },
}

impl Verdict {
    fn dropped(reason: &'static str) -> Verdict {
        Verdict::Dropped {
            reason,
            fragments: 1,
        }
    }
}

/// A datagram whose time ran out before it was whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The sender.
    pub(crate) src: IpAddr,
    /// Our address it was sent to.
    pub(crate) dst: IpAddr,
    /// Fragments freed.
    pub(crate) fragments: u64,
    /// The first fragment as received, cut to fit an ICMP error, when it had arrived
    /// (RFC 792, RFC 8200 4.5: then an ICMP Time Exceeded, code 1, goes to the sender)
    /// and was not itself an ICMP error (RFC 1122 3.2.2, RFC 4443 2.4 (e)).
    pub(crate) quote: Option<Vec<u8>>,
}

/// Incomplete datagrams, their timers and the memory they hold.
#[derive(Debug)]
pub(crate) struct Reassembler {
    datagrams: HashMap<DatagramKey, Datagram>,
    timers: BTreeMap<(Instant, u64), DatagramKey>,
    next_timer: u64,
    memory: usize,
}

impl Reassembler {
    /// An empty table whose map is hashed under `maps`.
    pub(crate) fn new(maps: Keyed) -> Reassembler {
        Reassembler {
            datagrams: maps.map(),
            timers: BTreeMap::new(),
            next_timer: 0,
            memory: 0,
        }
    }

    /// Bytes held by incomplete (and discarded, until their timer ends) datagrams.
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }

    /// Datagrams in the table.
    pub(crate) fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// When the oldest datagram's time runs out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    /// Take one fragment addressed to us that arrived at `now`.
    pub(crate) fn push(&mut self, now: Instant, frag: &IpFragment<'_>, config: &Config) -> Verdict {
        let v6 = frag.next_header_at.is_some();
        let len = frag.data.len() as u32;
        let offset = u32::from(frag.offset);
        let end = offset + len;
        // RFC 6946 4: an atomic fragment (offset 0, M clear) is processed in isolation,
        // never reassembled with other fragments.
        if offset == 0 && !frag.more_frags {
            let first = First {
                header: frag.header.into(),
                next_header_at: frag.next_header_at,
                protocol: frag.protocol,
            };
            return match build(&first, &[frag.data], len) {
                Some(p) => Verdict::Reassembled(p),
                None => Verdict::dropped("frag_too_big"),
            };
        }
        // RFC 791 3.2 / RFC 8200 4.5: every fragment but the last carries a multiple of 8
        // bytes (Linux trims an IPv4 one; dropping it is simpler and as safe). An empty
        // fragment fills nothing.
        if len == 0 || (frag.more_frags && len % 8 != 0) {
            return Verdict::dropped("frag_bad");
        }
        // RFC 791 3.1 (16-bit Total Length), RFC 8200 4.5 (Payload Length over 65,535).
        let unfragmentable = if v6 {
            frag.header.len().saturating_sub(ipv6::HEADER_LEN)
        } else {
            frag.header.len()
        };
        if unfragmentable + end as usize > MAX_DATAGRAM {
            return Verdict::dropped("frag_too_big");
        }
        // RFC 1858 (the indirect method) as RFC 3128 recommends: a TCP fragment at offset
        // 8 bytes (FO = 1) can only serve to rewrite the TCP header of the first fragment.
        if frag.protocol == PROTO_TCP && offset == 8 {
            return Verdict::dropped("frag_tiny");
        }
        // RFC 8200 4.5: an IPv6 first fragment must hold every header through the
        // upper-layer header.
        if v6 && offset == 0 && !header_chain_complete(frag.protocol, frag.data) {
            return Verdict::dropped("frag_tiny");
        }
        let key = DatagramKey {
            src: frag.src,
            dst: frag.dst,
            protocol: (!v6).then_some(frag.protocol),
            ident: frag.ident,
        };
        // Cost of a new fragment slot: the fragment list doubles when full.
        let mut cost = len as usize;
        if offset == 0 {
            cost += frag.header.len();
        }
        match self.datagrams.get(&key) {
            None => cost += DATAGRAM_OVERHEAD + size_of::<Fragment>(),
            Some(d) => {
                if let Some(reason) = d.discarded {
                    return Verdict::dropped(reason);
                }
                if d.fragments.len() >= config.ipfrag_max_fragments {
                    return self.discard(&key, "frag_too_many");
                }
                // RFC 815 (and Linux): the last fragment fixes the datagram's length; a
                // fragment that contradicts it, or data beyond it, means corruption.
                let contradicts = if frag.more_frags {
                    d.total_len.is_some_and(|t| end > t)
                } else {
                    d.total_len.is_some_and(|t| end != t) || d.max_end() > end
                };
                if contradicts {
                    return self.discard(&key, "frag_bad");
                }
                let i = d.fragments.partition_point(|f| f.offset < offset);
                // RFC 5722 4 allows dropping an exact duplicate (same place, same bytes)
                // while keeping the datagram, as Linux does: the network duplicates
                // packets. Same place with other bytes is an overlap.
                if d.fragments
                    .get(i)
                    .is_some_and(|f| f.offset == offset && *f.data == *frag.data)
                {
                    return Verdict::dropped("frag_duplicate");
                }
                // RFC 5722 4 (and RFC 8200 4.5): an overlapping fragment discards the
                // whole datagram. Linux does the same for IPv4.
                let overlaps_prev = i > 0 && d.fragments[i - 1].end() > offset;
                let overlaps_next = d.fragments.get(i).is_some_and(|f| f.offset < end);
                if overlaps_prev || overlaps_next {
                    return self.discard(&key, "frag_overlap");
                }
                if d.fragments.len() == d.fragments.capacity() {
                    cost += d.fragments.capacity().max(1) * size_of::<Fragment>();
                }
            }
        }
        if self.memory.saturating_add(cost) > config.ipfrag_high_thresh {
            return Verdict::dropped("frag_memory_limit");
        }
        let timers = &mut self.timers;
        let next_timer = &mut self.next_timer;
        let d = self.datagrams.entry(key).or_insert_with(|| {
            let time = if v6 {
                config.ip6frag_time
            } else {
                config.ipfrag_time
            };
            let timer = (now + time, *next_timer);
            *next_timer += 1;
            timers.insert(timer, key);
            Datagram {
                fragments: Vec::new(),
                first: None,
                total_len: None,
                received: 0,
                timer,
                discarded: None,
                memory: 0,
            }
        });
        if d.fragments.len() == d.fragments.capacity() {
            let grow = d.fragments.capacity().max(1);
            d.fragments.reserve_exact(grow);
        }
        let i = d.fragments.partition_point(|f| f.offset < offset);
        d.fragments.insert(
            i,
            Fragment {
                offset,
                data: frag.data.into(),
            },
        );
        d.received += len;
        if !frag.more_frags {
            d.total_len = Some(end);
        }
        if offset == 0 {
            d.first = Some(First {
                header: frag.header.into(),
                next_header_at: frag.next_header_at,
                protocol: frag.protocol,
            });
        }
        let held = d.held();
        self.memory = self.memory - d.memory + held;
        d.memory = held;
        // The projection above is exact unless the allocator gave more than asked for;
        // even then the bound holds.
        if self.memory > config.ipfrag_high_thresh {
            return self.discard(&key, "frag_memory_limit");
        }
        if d.first.is_none() || d.total_len != Some(d.received) {
            return Verdict::Held;
        }
        // Whole: no overlaps and `received` bytes within [0, total_len).
        let Some(d) = self.remove(&key) else {
            return Verdict::Held;
        };
        let n = d.fragments.len() as u64;
        let Some(first) = d.first.as_ref() else {
            return Verdict::Held;
        };
        let pieces: Vec<&[u8]> = d.fragments.iter().map(|f| &f.data[..]).collect();
        match build(first, &pieces, d.received) {
            Some(p) => Verdict::Reassembled(p),
            // The first fragment's header was longer than the others': over 65535.
            None => Verdict::Dropped {
                reason: "frag_too_big",
                fragments: n,
            },
        }
    }

    /// Free the datagrams whose time is up at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let mut out = Vec::new();
        while let Some((&(at, seq), &key)) = self.timers.first_key_value() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, seq));
            let Some(d) = self.remove(&key) else {
                continue;
            };
            // A discarded datagram's fragments were counted when it was discarded.
            if d.discarded.is_some() {
                continue;
            }
            let quote = match (&d.first, d.fragments.first()) {
                (Some(first), Some(f)) if f.offset == 0 => quote(first, &f.data, key.ident),
                _ => None,
            };
            out.push(Expired {
                src: key.src,
                dst: key.dst,
                fragments: d.fragments.len() as u64,
                quote,
            });
        }
        // Give back the table's room after a flood.
        if self.datagrams.capacity() > 64 && self.datagrams.len() * 4 < self.datagrams.capacity() {
            self.datagrams.shrink_to(self.datagrams.len() * 2);
        }
        out
    }

    /// Take a datagram out of the table and its timer, and its memory out of the count.
    fn remove(&mut self, key: &DatagramKey) -> Option<Datagram> {
        let d = self.datagrams.remove(key)?;
        self.timers.remove(&d.timer);
        self.memory -= d.memory;
        Some(d)
    }

    /// Discard a datagram's fragments, and with them the one that just arrived; keep a
    /// marker until its timer ends so its later fragments are dropped too (RFC 5722 4).
    fn discard(&mut self, key: &DatagramKey, reason: &'static str) -> Verdict {
        let Some(d) = self.datagrams.get_mut(key) else {
            return Verdict::dropped(reason);
        };
        let held = d.fragments.len() as u64;
        d.fragments = Vec::new();
        d.first = None;
        d.received = 0;
        d.discarded = Some(reason);
        let now_held = d.held();
        self.memory = self.memory - d.memory + now_held;
        d.memory = now_held;
        Verdict::Dropped {
            reason,
            fragments: held + 1,
        }
    }
}

/// The whole packet: the first fragment's header, fixed, then the data in order.
fn build(first: &First, pieces: &[&[u8]], total_len: u32) -> Option<Vec<u8>> {
    let hl = first.header.len();
    let total = hl + total_len as usize;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&first.header);
    for piece in pieces {
        p.extend_from_slice(piece);
    }
    match first.next_header_at {
        None => {
            // RFC 791 3.2: the first fragment's header, with MF clear, offset 0 and the
            // datagram's total length.
            let total = u16::try_from(total).ok()?;
            let mut h = Ipv4Packet::new_unchecked(&mut p[..]);
            h.set_more_frags(false);
            h.set_frag_offset(0);
            h.set_total_len(total);
            h.fill_checksum();
        }
        Some(at) => {
            // RFC 8200 4.5: the Unfragmentable Part of the first fragment; the Next Header
            // field that named the Fragment header takes the Fragment header's Next
            // Header, and the Payload Length covers the whole.
            let payload = u16::try_from(total.checked_sub(ipv6::HEADER_LEN)?).ok()?;
            *p.get_mut(at)? = first.protocol;
            p.get_mut(4..6)?.copy_from_slice(&payload.to_be_bytes());
        }
    }
    Some(p)
}

/// RFC 8200 4.5: do the first fragment's data hold every extension header and the
/// upper-layer header (for TCP, its 20 fixed bytes)?
fn header_chain_complete(mut next: u8, data: &[u8]) -> bool {
    let mut rest = data;
    loop {
        match next {
            0 | 43 | 60 => {
                let Some(h) = rest.get(..2) else {
                    return false;
                };
                let len = (usize::from(h[1]) + 1) * 8;
                let Some(after) = rest.get(len..) else {
                    return false;
                };
                next = h[0];
                rest = after;
            }
            // A second Fragment header inside the Fragmentable Part: no nesting.
            NEXT_HEADER_FRAGMENT => return false,
            PROTO_TCP => return rest.len() >= 20,
            _ => return true,
        }
    }
}

/// The first fragment as it was received, cut to fit an ICMP error; None if it is itself
/// an ICMP error, which is never answered with one (RFC 1122 3.2.2, RFC 4443 2.4 (e)).
fn quote(first: &First, data: &[u8], ident: u32) -> Option<Vec<u8>> {
    let mut q = first.header.to_vec();
    match first.next_header_at {
        None => {
            let is_icmp_error = first.protocol == crate::wire::icmp::PROTO_ICMP
                && data
                    .first()
                    .is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12));
            if is_icmp_error {
                return None;
            }
            q.extend_from_slice(data);
            q.truncate(V4_QUOTE_MAX);
        }
        Some(_) => {
            let is_icmp_error =
                first.protocol == PROTO_ICMPV6 && data.first().is_some_and(|&t| t < 128);
            if is_icmp_error {
                return None;
            }
            let mut h = [0u8; FRAGMENT_HEADER_LEN];
            let mut fh = Ipv6FragmentHeader::new_unchecked(&mut h[..]);
            fh.set_next_header(first.protocol);
            fh.set_frag_offset(0);
            fh.set_more_frags(true);
            fh.set_ident(ident);
            q.extend_from_slice(&h);
            q.extend_from_slice(data);
            q.truncate(V6_QUOTE_MAX);
        }
    }
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, SeqNum, TcpFlags, TcpRepr};
    use core::time::Duration;

    /// The tests' tables, under a fixed key.
    impl Default for Reassembler {
        fn default() -> Reassembler {
            Reassembler::new(Keyed::new([7; 16]))
        }
    }

    fn tcp_packet(v6: bool, payload: &[u8]) -> Vec<u8> {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::2".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            )
        } else {
            ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap())
        };
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum::new(1000),
            ack: SeqNum::new(2000),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 512,
            urgent: 0,
            options: Default::default(),
            payload,
        };
        wire::emit_tcp_packet(s, d, 64, &repr).unwrap()
    }

    fn push(r: &mut Reassembler, now: Instant, packet: &[u8], config: &Config) -> Verdict {
        let frag = wire::parse_fragment(packet).unwrap().expect("a fragment");
        r.push(now, &frag, config)
    }

    /// The whole packet as an unfragmented sender would have sent it (DF as the
    /// fragmenter left it: clear).
    fn expected(packet: &[u8]) -> Vec<u8> {
        let mut p = packet.to_vec();
        if p[0] >> 4 == 4 {
            let mut h = Ipv4Packet::new_unchecked(&mut p[..]);
            h.set_dont_frag(false);
            h.set_ident(7);
            h.fill_checksum();
        }
        p
    }

    #[test]
    fn fragments_in_any_order_reassemble_to_the_whole_packet() {
        let config = Config::default();
        for v6 in [false, true] {
            let whole = tcp_packet(v6, &[0x5a; 100]);
            let frags = wire::fragment_packet(&whole, &[24, 48, 96], 7);
            for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
                let mut r = Reassembler::default();
                for (n, &i) in order.iter().enumerate() {
                    let v = push(&mut r, Instant::ZERO, &frags[i], &config);
                    if n < 3 {
                        assert_eq!(v, Verdict::Held);
                    } else {
                        assert_eq!(v, Verdict::Reassembled(expected(&whole)), "v6 {v6}");
                    }
                }
                assert_eq!((r.len(), r.memory(), r.next_deadline()), (0, 0, None));
            }
        }
    }

    #[test]
    fn an_overlapping_fragment_discards_the_datagram_and_its_later_fragments() {
        let config = Config::default();
        for v6 in [false, true] {
            let whole = tcp_packet(v6, &[1; 64]);
            let frags = wire::fragment_packet(&whole, &[40], 9);
            let mut r = Reassembler::default();
            assert_eq!(
                push(&mut r, Instant::ZERO, &frags[0], &config),
                Verdict::Held
            );
            // Bytes 32..48 again, other data: overlaps the first fragment.
            let other = tcp_packet(v6, &[2; 64]);
            let overlap = wire::fragment_packet(&other, &[32, 48], 9);
            assert_eq!(
                push(&mut r, Instant::ZERO, &overlap[1], &config),
                Verdict::Dropped {
                    reason: "frag_overlap",
                    fragments: 2
                }
            );
            assert_eq!(r.memory(), DATAGRAM_OVERHEAD, "only the marker is held");
            assert_eq!(
                push(&mut r, Instant::ZERO, &frags[1], &config),
                Verdict::Dropped {
                    reason: "frag_overlap",
                    fragments: 1
                }
            );
            // The marker goes at the timeout, silently.
            assert!(r.expire(Instant::from_secs(61)).is_empty());
            assert_eq!((r.len(), r.memory()), (0, 0));
        }
    }

    #[test]
    fn an_exact_duplicate_is_dropped_and_the_datagram_kept() {
        let config = Config::default();
        let whole = tcp_packet(false, &[3; 64]);
        let frags = wire::fragment_packet(&whole, &[40], 11);
        let mut r = Reassembler::default();
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[0], &config),
            Verdict::Held
        );
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[0], &config),
            Verdict::dropped("frag_duplicate")
        );
        assert!(matches!(
            push(&mut r, Instant::ZERO, &frags[1], &config),
            Verdict::Reassembled(_)
        ));
    }

    #[test]
    fn a_last_fragment_contradicting_the_length_discards_the_datagram() {
        let config = Config::default();
        let whole = tcp_packet(false, &[3; 64]);
        let frags = wire::fragment_packet(&whole, &[40], 12);
        let mut r = Reassembler::default();
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[1], &config),
            Verdict::Held
        );
        // Another "last" fragment ending earlier.
        let shorter = tcp_packet(false, &[3; 56]);
        let other = wire::fragment_packet(&shorter, &[40], 12);
        assert_eq!(
            push(&mut r, Instant::ZERO, &other[1], &config),
            Verdict::Dropped {
                reason: "frag_bad",
                fragments: 2
            }
        );
    }

    #[test]
    fn an_incomplete_datagram_expires_after_its_time_with_a_quote_of_the_first_fragment() {
        let config = Config::default();
        for v6 in [false, true] {
            let whole = tcp_packet(v6, &[4; 64]);
            let frags = wire::fragment_packet(&whole, &[40], 13);
            let mut r = Reassembler::default();
            let t0 = Instant::from_secs(5);
            push(&mut r, t0, &frags[0], &config);
            let time = if v6 { 60 } else { 30 };
            assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(time)));
            assert!(r.expire(t0 + Duration::from_secs(time - 1)).is_empty());
            let e = r.expire(t0 + Duration::from_secs(time));
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].fragments, 1);
            assert_eq!(e[0].quote.as_deref(), Some(&frags[0][..]));
            assert_eq!((r.len(), r.memory(), r.next_deadline()), (0, 0, None));
            // Without the first fragment: no quote.
            push(&mut r, t0, &frags[1], &config);
            let e = r.expire(Instant::from_secs(1000));
            assert_eq!((e[0].fragments, e[0].quote.as_ref()), (1, None));
        }
    }

    #[test]
    fn memory_never_exceeds_the_threshold() {
        let config = Config {
            ipfrag_high_thresh: 10_000,
            ..Config::default()
        };
        let whole = tcp_packet(false, &[5; 200]);
        let mut r = Reassembler::default();
        let mut dropped = 0;
        for ident in 0..1000 {
            let frags = wire::fragment_packet(&whole, &[64], ident);
            if let Verdict::Dropped { reason, .. } = push(&mut r, Instant::ZERO, &frags[1], &config)
            {
                assert_eq!(reason, "frag_memory_limit");
                dropped += 1;
            }
            assert!(r.memory() <= 10_000, "{}", r.memory());
        }
        assert!(dropped > 900, "{dropped}");
        assert!(r.memory() > 10_000 - 2 * (DATAGRAM_OVERHEAD + 200));
    }

    #[test]
    fn more_fragments_than_the_limit_discard_the_datagram() {
        let config = Config {
            ipfrag_max_fragments: 4,
            ..Config::default()
        };
        let whole = tcp_packet(false, &[6; 100]);
        let frags = wire::fragment_packet(&whole, &[24, 32, 40, 48, 56], 14);
        let mut r = Reassembler::default();
        for f in &frags[..4] {
            assert_eq!(push(&mut r, Instant::ZERO, f, &config), Verdict::Held);
        }
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[4], &config),
            Verdict::Dropped {
                reason: "frag_too_many",
                fragments: 5
            }
        );
    }

    #[test]
    fn bad_tiny_and_oversized_fragments_are_dropped_each_under_its_reason() {
        let config = Config::default();
        let whole = tcp_packet(false, &[7; 64]);
        let mut r = Reassembler::default();
        // A non-last fragment of 12 bytes: not a multiple of 8.
        let bad = wire::fragment_packet(&whole, &[12], 15);
        assert_eq!(
            push(&mut r, Instant::ZERO, &bad[0], &config),
            Verdict::dropped("frag_bad")
        );
        // RFC 3128: TCP at offset 8.
        let tiny = wire::fragment_packet(&whole, &[8], 15);
        assert_eq!(
            push(&mut r, Instant::ZERO, &tiny[1], &config),
            Verdict::dropped("frag_tiny")
        );
        // A fragment at offset 65528 with 16 bytes: beyond 65535.
        let mut far = wire::fragment_packet(&whole, &[40], 15)[1].clone();
        let mut p = Ipv4Packet::new_unchecked(&mut far[..]);
        p.set_frag_offset(65528);
        p.fill_checksum();
        assert_eq!(
            push(&mut r, Instant::ZERO, &far, &config),
            Verdict::dropped("frag_too_big")
        );
        // IPv6: a first fragment without the whole TCP header.
        let whole6 = tcp_packet(true, &[7; 64]);
        let short = wire::fragment_packet(&whole6, &[16], 15);
        assert_eq!(
            push(&mut r, Instant::ZERO, &short[0], &config),
            Verdict::dropped("frag_tiny")
        );
        assert_eq!((r.len(), r.memory()), (0, 0));
    }

    #[test]
    fn an_ipv6_atomic_fragment_is_processed_alone() {
        let config = Config::default();
        let whole = tcp_packet(true, &[8; 30]);
        let frags = wire::fragment_packet(&whole, &[], 16);
        assert_eq!(frags.len(), 1);
        let mut r = Reassembler::default();
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[0], &config),
            Verdict::Reassembled(whole)
        );
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_ipv6_fragment_header_after_destination_options_reassembles() {
        let config = Config::default();
        let whole = tcp_packet(true, &[9; 40]);
        // Insert destination options (8 bytes, next header TCP) before the TCP header.
        let mut with_opts = whole[..40].to_vec();
        with_opts[6] = 60;
        with_opts.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        with_opts.extend_from_slice(&whole[40..]);
        let len = (with_opts.len() - 40) as u16;
        with_opts[4..6].copy_from_slice(&len.to_be_bytes());
        // Fragment it by hand: Unfragmentable Part = fixed header + options.
        let unfrag = &with_opts[..48];
        let body = &with_opts[48..];
        let mut frags = Vec::new();
        for (start, end) in [(0, 32), (32, body.len())] {
            let mut f = unfrag.to_vec();
            f[40] = NEXT_HEADER_FRAGMENT;
            let mut h = [0u8; 8];
            let mut fh = Ipv6FragmentHeader::new_unchecked(&mut h[..]);
            fh.set_next_header(6);
            fh.set_frag_offset(start as u16);
            fh.set_more_frags(end < body.len());
            fh.set_ident(17);
            f.extend_from_slice(&h);
            f.extend_from_slice(&body[start..end]);
            let len = (f.len() - 40) as u16;
            f[4..6].copy_from_slice(&len.to_be_bytes());
            frags.push(f);
        }
        let mut r = Reassembler::default();
        assert_eq!(
            push(&mut r, Instant::ZERO, &frags[1], &config),
            Verdict::Held
        );
        let Verdict::Reassembled(p) = push(&mut r, Instant::ZERO, &frags[0], &config) else {
            panic!("not reassembled");
        };
        assert_eq!(p, with_opts);
        let (ip, tcp) = wire::parse_tcp_packet(&p).unwrap();
        assert_eq!((ip.protocol, tcp.payload), (6, &[9u8; 40][..]));
    }

    impl Reassembler {
        /// Every invariant the limits rely on.
        fn check(&self, config: &Config) {
            assert!(self.memory <= config.ipfrag_high_thresh);
            assert_eq!(
                self.memory,
                self.datagrams.values().map(|d| d.memory).sum::<usize>()
            );
            assert_eq!(self.timers.len(), self.datagrams.len());
            for d in self.datagrams.values() {
                assert_eq!(d.memory, d.held());
                assert!(d.fragments.len() <= config.ipfrag_max_fragments);
                assert!(d.fragments.windows(2).all(|w| w[0].end() <= w[1].offset));
                let bytes: u32 = d.fragments.iter().map(|f| f.data.len() as u32).sum();
                assert_eq!(bytes, d.received);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_fragments_keep_every_limit(
            frags in proptest::collection::vec(
                (0u32..3, 0u16..12, 0usize..40, proptest::prelude::any::<bool>(),
                 proptest::prelude::any::<bool>(), 0u8..4),
                1..200,
            )
        ) {
            let config = Config {
                ipfrag_high_thresh: 4000,
                ipfrag_max_fragments: 6,
                ..Config::default()
            };
            let mut v4_header = tcp_packet(false, &[])[..20].to_vec();
            v4_header[9] = 17;
            let v6_header = tcp_packet(true, &[])[..40].to_vec();
            let mut r = Reassembler::default();
            for (n, (ident, units, len, more, v6, fill)) in frags.into_iter().enumerate() {
                let data = vec![fill; len];
                let header = if v6 { &v6_header } else { &v4_header };
                let frag = IpFragment {
                    src: (if v6 { "2001:db8::2" } else { "198.18.0.2" }).parse().unwrap(),
                    dst: (if v6 { "2001:db8::1" } else { "198.18.0.1" }).parse().unwrap(),
                    protocol: 17,
                    ident,
                    offset: units * 8,
                    more_frags: more,
                    header,
                    next_header_at: v6.then_some(6),
                    data: &data,
                };
                let now = Instant::from_secs(n as u64);
                if let Verdict::Reassembled(p) = r.push(now, &frag, &config) {
                    let (ip, payload) = wire::parse_ip(&p).expect("a whole packet parses");
                    proptest::prop_assert_eq!(ip.protocol, 17);
                    proptest::prop_assert!(payload.iter().all(|&b| b < 4));
                }
                r.check(&config);
                r.expire(now);
                r.check(&config);
            }
        }
    }

    #[test]
    fn an_icmp_error_in_a_first_fragment_is_never_quoted() {
        let first = First {
            header: vec![0x45; 20].into(),
            next_header_at: None,
            protocol: crate::wire::icmp::PROTO_ICMP,
        };
        assert_eq!(quote(&first, &[11, 0, 0, 0, 0, 0, 0, 0], 1), None);
        assert!(quote(&first, &[8, 0, 0, 0, 0, 0, 0, 0], 1).is_some());
    }
}
