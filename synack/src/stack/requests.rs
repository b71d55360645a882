//! Decide-first listeners: a SYN is held and reported as a connection request instead
//! of being answered, and the application accepts it (the SYN-ACK goes out then) or
//! refuses it (a RST, an ICMP destination unreachable, or nothing at all). A relay uses
//! it to dial the real destination first and give the client the true answer.
//!
//! Held requests are bounded per listener (`Decide::max_pending`, counted drops past
//! it) and in time (`Decide::timeout`, then `Decide::on_timeout`); a SYN repeated while
//! its request is held is absorbed.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use super::keyed::{HashMap, Keyed};
use super::*;
use crate::wire::icmp::IcmpRepr;

/// How a listener holds SYNs for the application's decision (see
/// [`ListenerOptions::decide`]).
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
/// use std::time::Duration;
/// use synack::{Capture, Decide, ListenerOptions, Refusal};
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let mut options = ListenerOptions::default();
/// options.decide = Some(Decide::new().timeout(Duration::from_secs(5)).on_timeout(Refusal::Reset));
/// server.set_listener_options(listener, options)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decide {
    /// How long a request waits for a decision (default 30 s).
    pub timeout: Duration,
    /// How many requests a listener holds undecided; SYNs past it are dropped and
    /// counted as `request_overflow` (default 1,024).
    pub max_pending: usize,
    /// The answer when the time is up (default [`Refusal::Drop`]: the client's SYN
    /// retransmissions then ask again).
    pub on_timeout: Refusal,
}

impl Default for Decide {
    fn default() -> Decide {
        Decide {
            timeout: Duration::from_secs(30),
            max_pending: 1024,
            on_timeout: Refusal::Drop,
        }
    }
}

impl Decide {
    /// The defaults.
    pub fn new() -> Decide {
        Decide::default()
    }

    /// Set [`Decide::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Decide {
        self.timeout = timeout;
        self
    }

    /// Set [`Decide::max_pending`].
    pub fn max_pending(mut self, max_pending: usize) -> Decide {
        self.max_pending = max_pending;
        self
    }

    /// Set [`Decide::on_timeout`].
    pub fn on_timeout(mut self, refusal: Refusal) -> Decide {
        self.on_timeout = refusal;
        self
    }
}

/// How a connection request is refused.
///
/// A `match` on it needs a `_` arm: more kinds may be added.
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
/// use synack::{Decide, ListenerOptions, Refusal, Unreachable};
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let mut options = ListenerOptions::default();
/// options.decide = Some(Decide::new());
/// server.set_listener_options(listener, options)?;
/// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// pump(now, &mut client, &mut server);
/// let request = server.take_request(listener)?;
/// // Answer as an unreachable host would: an ICMP error quoting the SYN.
/// server.refuse_request(now, request.handle, Refusal::Unreachable(Unreachable::Host))?;
/// pump(now, &mut client, &mut server);
/// assert_eq!(client.error(conn)?, Some(Error::HostUnreachable));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A RST (RFC 9293 3.10.7.2 as for a closed port): the client's connect fails with
    /// "connection refused".
    Reset,
    /// An ICMP (ICMPv6) destination unreachable quoting the SYN, from the destination
    /// address: the client's connect fails with the matching error (Linux aborts a
    /// SYN_SENT connection on any of them).
    Unreachable(Unreachable),
    /// Nothing: the client retransmits its SYN and times out in the end.
    Drop,
}

/// What an ICMP destination unreachable says.
///
/// # Examples
///
/// ```
/// use synack::{Refusal, Unreachable};
/// // What a relay answers when its own dial failed with EHOSTUNREACH.
/// let refusal = Refusal::Unreachable(Unreachable::Host);
/// assert_ne!(refusal, Refusal::Reset);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unreachable {
    /// Network unreachable (ICMP code 0; ICMPv6 "no route", 0): ENETUNREACH.
    Network,
    /// Host unreachable (ICMP 1; ICMPv6 "address unreachable", 3): EHOSTUNREACH.
    Host,
    /// Port unreachable (ICMP 3; ICMPv6 4): ECONNREFUSED.
    Port,
    /// Administratively prohibited (ICMP 13; ICMPv6 1): EHOSTUNREACH (Linux's EACCES
    /// for ICMPv6).
    Prohibited,
}

impl Unreachable {
    /// The ICMP (`v6` false) or ICMPv6 code.
    fn code(self, v6: bool) -> u8 {
        match (self, v6) {
            (Unreachable::Network, _) => 0,
            (Unreachable::Host, false) => 1,
            (Unreachable::Host, true) => 3,
            (Unreachable::Port, false) => 3,
            (Unreachable::Port, true) => 4,
            (Unreachable::Prohibited, false) => 13,
            (Unreachable::Prohibited, true) => 1,
        }
    }
}

/// Names one held connection request of a [`Stack`].
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
/// use synack::{Decide, ListenerOptions};
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let mut options = ListenerOptions::default();
/// options.decide = Some(Decide::new());
/// server.set_listener_options(listener, options)?;
/// client.connect(now, "198.18.0.2:80".parse()?)?;
/// pump(now, &mut client, &mut server);
/// let handle = server.take_request(listener)?.handle;
/// server.accept_request(now, handle)?;
/// // Decided once: the handle names nothing any more.
/// assert_eq!(server.accept_request(now, handle), Err(Error::InvalidHandle));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(u64);

/// A SYN a decide-first listener holds, as [`Stack::take_request`] reports it.
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
/// use synack::{Decide, ListenerOptions};
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let mut options = ListenerOptions::default();
/// options.decide = Some(Decide::new());
/// server.set_listener_options(listener, options)?;
/// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// pump(now, &mut client, &mut server);
/// // The SYN is held, unanswered: the listener reports a request.
/// assert!(std::iter::from_fn(|| server.poll_event()).any(|e| e == Event::Request(listener)));
/// let request = server.take_request(listener)?;
/// assert_eq!(request.remote, client.local_addr(conn)?);
/// assert_eq!(request.options.mss, Some(1460));
/// assert_eq!(client.state(conn)?, TcpState::SynSent);
///
/// // Accepted: the SYN-ACK goes out now, and the connection is the application's.
/// let accepted = server.accept_request(now, request.handle)?;
/// pump(now, &mut client, &mut server);
/// assert_eq!(client.state(conn)?, TcpState::Established);
/// assert!(std::iter::from_fn(|| server.poll_event()).any(|e| e == Event::Connected(accepted)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionRequest {
    /// Names it in [`Stack::accept_request`] and [`Stack::refuse_request`].
    pub handle: RequestHandle,
    /// The listener that holds it.
    pub listener: ListenerHandle,
    /// The destination the client asked for (what the connection's local address will be).
    pub local: SocketAddr,
    /// The client.
    pub remote: SocketAddr,
    /// The SYN's options (MSS, window scale, SACK permitted, timestamps).
    pub options: TcpOptions,
    /// When the SYN arrived.
    pub at: Instant,
}

/// One held SYN.
#[derive(Debug)]
struct Held {
    listener: u32,
    tuple: FourTuple,
    /// The SYN's sequence number, window and options, its ECN flags (ECE and CWR) and
    /// the ECN field of its IP header: accepted later, it negotiates what it would have
    /// at once.
    seq: SeqNum,
    window: u16,
    options: TcpOptions,
    ecn_flags: TcpFlags,
    rx_ecn: wire::Ecn,
    /// The ISN to answer with when the SYN reopened a TIME_WAIT 4-tuple.
    isn: Option<SeqNum>,
    at: Instant,
    deadline: Instant,
}

impl Held {
    /// The SYN as it arrived (without payload: data on a SYN is not taken).
    fn syn(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.tuple.remote.port(),
            dst_port: self.tuple.local.port(),
            seq: self.seq,
            ack: SeqNum::new(0),
            flags: TcpFlags::SYN | self.ecn_flags,
            window: self.window,
            urgent: 0,
            options: self.options,
            payload: &[],
        }
    }
}

/// The held requests of all listeners, by handle, by 4-tuple and by deadline.
#[derive(Debug)]
pub(super) struct Requests {
    held: HashMap<u64, Held>,
    by_tuple: HashMap<FourTuple, u64>,
    deadlines: BTreeSet<(Instant, u64)>,
    next: u64,
}

impl Requests {
    /// No requests held; the maps are hashed under `maps`.
    pub(super) fn new(maps: Keyed) -> Requests {
        Requests {
            held: maps.map(),
            by_tuple: maps.map(),
            deadlines: BTreeSet::new(),
            next: 0,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }

    /// Requests held for a listener (to forget them when it closes).
    fn of_listener(&self, lid: u32) -> Vec<u64> {
        self.held
            .iter()
            .filter(|(_, h)| h.listener == lid)
            .map(|(&id, _)| id)
            .collect()
    }

    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        self.by_tuple.remove(&held.tuple);
        self.deadlines.remove(&(held.deadline, id));
        Some(held)
    }

    /// Held requests, all listeners together.
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }
}

impl Stack {
    /// A SYN to a decide-first listener: hold it and tell the application, absorb it if
    /// its request is already held, or drop it past the listener's bound.
    pub(super) fn hold_request(
        &mut self,
        now: Instant,
        lid: u32,
        tuple: FourTuple,
        syn: &TcpRepr<'_>,
        isn: Option<SeqNum>,
        decide: Decide,
    ) {
        if let Some(&id) = self.requests.by_tuple.get(&tuple) {
            // A retransmitted SYN (or one with a new ISN: the client started over; the
            // answer, when it comes, is to the latest).
            if let Some(held) = self.requests.held.get_mut(&id) {
                held.seq = syn.seq;
                held.window = syn.window;
                held.options = syn.options;
                held.ecn_flags =
                    TcpFlags::from_bits(syn.flags.bits() & (TcpFlags::ECE | TcpFlags::CWR).bits());
                held.rx_ecn = self.rx_ecn;
            }
            return self.stats.drop("request_pending");
        }
        let Some(listener) = self.listeners[lid as usize].as_mut() else {
            return;
        };
        if listener.pending >= decide.max_pending {
            return self.stats.drop("request_overflow");
        }
        let id = self.requests.next;
        self.requests.next += 1;
        let deadline = now + decide.timeout;
        listener.pending += 1;
        listener.requests.push_back(id);
        self.requests.held.insert(
            id,
            Held {
                listener: lid,
                tuple,
                seq: syn.seq,
                window: syn.window,
                options: syn.options,
                ecn_flags: TcpFlags::from_bits(
                    syn.flags.bits() & (TcpFlags::ECE | TcpFlags::CWR).bits(),
                ),
                rx_ecn: self.rx_ecn,
                isn,
                at: now,
                deadline,
            },
        );
        self.requests.by_tuple.insert(tuple, id);
        self.requests.deadlines.insert((deadline, id));
        self.stats.requests += 1;
        self.events.push_back(Event::Request(ListenerHandle(lid)));
    }

    /// The next connection request a decide-first listener holds that the application
    /// has not seen yet, or `WouldBlock`. It stays held until accepted, refused or
    /// timed out.
    pub fn take_request(&mut self, listener: ListenerHandle) -> Result<ConnectionRequest, Error> {
        let l = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidHandle)?;
        while let Some(id) = l.requests.pop_front() {
            if let Some(held) = self.requests.held.get(&id) {
                return Ok(ConnectionRequest {
                    handle: RequestHandle(id),
                    listener,
                    local: held.tuple.local,
                    remote: held.tuple.remote,
                    options: held.options,
                    at: held.at,
                });
            }
        }
        Err(Error::WouldBlock)
    }

    /// Accept a held request: the SYN-ACK goes out now and the connection, already the
    /// application's, reports [`Event::Connected`] when the handshake completes (or
    /// [`Event::Error`] if it does not). `InvalidHandle` if the request is no longer
    /// held (it timed out, or its listener closed).
    pub fn accept_request(
        &mut self,
        now: Instant,
        request: RequestHandle,
    ) -> Result<ConnectionHandle, Error> {
        if !self.requests.held.contains_key(&request.0) {
            return Err(Error::InvalidHandle);
        }
        if self.live_connections >= self.config.max_connections {
            // Stays held: the application may refuse it, or try again.
            return Err(Error::NoBufferSpace);
        }
        let held = self
            .release_request(request.0)
            .ok_or(Error::InvalidHandle)?;
        let tuple = held.tuple;
        let iss = held
            .isn
            .unwrap_or_else(|| self.isn.isn(now, tuple.local, tuple.remote));
        let syn = (&held.syn(), Some(held.rx_ecn));
        let conn = self.new_passive(now, held.listener, tuple, iss, syn);
        let index = self.insert(conn, None, true);
        if self.md5.is_some() {
            self.md5_adopt(index, held.listener);
        }
        self.stats.passive_opens += 1;
        self.stats.requests_accepted += 1;
        self.after_activity(now, index);
        Ok(self.handle(index))
    }

    /// Refuse a held request as `refusal` says. `InvalidHandle` if it is no longer held.
    pub fn refuse_request(
        &mut self,
        _now: Instant,
        request: RequestHandle,
        refusal: Refusal,
    ) -> Result<(), Error> {
        let held = self
            .release_request(request.0)
            .ok_or(Error::InvalidHandle)?;
        self.stats.requests_refused += 1;
        self.answer_refusal(&held, refusal);
        Ok(())
    }

    /// Forget a held request, and count it out of its listener's.
    fn release_request(&mut self, id: u64) -> Option<Held> {
        let held = self.requests.remove(id)?;
        if let Some(l) = self.listeners[held.listener as usize].as_mut() {
            l.pending = l.pending.saturating_sub(1);
        }
        Some(held)
    }

    fn answer_refusal(&mut self, held: &Held, refusal: Refusal) {
        let syn = held.syn();
        match refusal {
            Refusal::Reset => self.reply_rst(held.tuple, &syn),
            Refusal::Drop => {}
            Refusal::Unreachable(what) => {
                // RFC 792 / RFC 4443 3.1: quote the invoking packet (its IP header and
                // the TCP header, which names the ports and the sequence number the
                // client's stack checks).
                let (client, dst) = (held.tuple.remote.ip(), held.tuple.local.ip());
                let Ok(quote) = wire::emit_tcp_packet(client, dst, self.config.ttl, &syn) else {
                    return;
                };
                let msg = IcmpRepr::DestUnreachable {
                    code: what.code(dst.is_ipv6()),
                    next_hop_mtu: 0,
                    invoking: &quote,
                };
                let ip = wire::IpInfo {
                    src: client,
                    dst,
                    protocol: 0,
                    ttl: self.config.ttl,
                    ecn: wire::Ecn::NotEct,
                };
                if self.queue_icmp(&ip, &msg) {
                    self.stats.icmp_unreachable_sent += 1;
                }
            }
        }
    }

    /// Answer the requests whose time is up as their listener says.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.requests.deadlines.first() {
            if deadline > now {
                break;
            }
            let Some(held) = self.release_request(id) else {
                continue;
            };
            let refusal = self.listeners[held.listener as usize]
                .as_ref()
                .and_then(|l| l.options.decide)
                .map_or(Refusal::Drop, |d| d.on_timeout);
            self.stats.requests_timed_out += 1;
            self.answer_refusal(&held, refusal);
        }
    }

    /// A listener closed: its held requests are forgotten (the client's next SYN finds
    /// no listener and is answered with a RST).
    pub(super) fn forget_requests(&mut self, lid: u32) {
        for id in self.requests.of_listener(lid) {
            self.requests.remove(id);
        }
    }

    /// Connection requests held, all listeners together.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }
}
