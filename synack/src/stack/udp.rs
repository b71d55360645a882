//! UDP sockets (RFC 768): bind (an address or all, port 0 picks an ephemeral port),
//! send_to/recv_from over per-socket receive queues bounded in datagrams and bytes
//! (counted drops past them), connected sockets (a default destination, and datagrams
//! from anyone else dropped), catch-all sockets that take datagrams to any captured
//! destination (a relay's), datagrams larger than the MTU sent in fragments (received
//! ones are reassembled by `fragments.rs` before they get here), ICMP port unreachable
//! for a datagram to a port nobody has (rate-limited as Linux's icmp_ratelimit), and
//! ICMP errors about what a connected socket sent reported to it as Linux does.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use super::keyed::{HashMap, Keyed};
use super::*;
use crate::wire::icmp::IcmpRepr;
use crate::wire::{UdpRepr, PROTO_UDP};
use crate::TcpState;

/// Packets waiting in the stack's UDP output queue at most; a send past it fails with
/// `NoBufferSpace` (Linux's ENOBUFS when a device queue is full).
const UDP_OUT_LIMIT: usize = 4096;
/// What a queued datagram costs besides its data (Linux counts an skb's true size).
const DATAGRAM_OVERHEAD: usize = 256;

/// Names one UDP socket of a [`Stack`]. Stale handles are detected.
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
/// let server_socket = server.udp_bind("198.18.0.2:53".parse()?)?;
/// let client_socket = client.udp_bind("0.0.0.0:0".parse()?)?; // an ephemeral port
/// client.udp_send_to(now, client_socket, b"query", "198.18.0.2:53".parse()?)?;
/// pump(now, &mut client, &mut server);
/// assert!(std::iter::from_fn(|| server.poll_event()).any(|e| e == Event::UdpReadable(server_socket)));
///
/// let datagram = server.udp_recv(server_socket)?;
/// assert_eq!(datagram.data, b"query");
/// server.udp_send_to(now, server_socket, b"answer", datagram.from)?;
/// pump(now, &mut client, &mut server);
/// assert_eq!(client.udp_recv(client_socket)?.data, b"answer");
/// assert_eq!(client.udp_recv(client_socket), Err(Error::WouldBlock));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpHandle {
    index: u32,
    generation: u32,
}

/// One UDP socket as `synack ss -u` shows it ([`Stack::udp_sockets`]).
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
/// let socket = server.udp_bind("198.18.0.2:53".parse()?)?;
/// let sockets = server.udp_sockets();
/// assert_eq!(sockets[0].local, server.udp_local_addr(socket)?);
/// assert_eq!((sockets[0].datagrams, sockets[0].catch_all), (0, false));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpSnapshot {
    /// Its address (unspecified for a catch-all socket).
    pub local: SocketAddr,
    /// The connected peer.
    pub peer: Option<SocketAddr>,
    /// Bytes of data waiting to be read.
    pub recv_q: usize,
    /// Datagrams waiting to be read.
    pub datagrams: usize,
    /// A catch-all socket (`udp_bind_capture`).
    pub catch_all: bool,
}

/// A datagram taken from a socket's queue.
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
/// let socket = server.udp_bind("198.18.0.2:9".parse()?)?;
/// let sender = client.udp_bind("198.18.0.1:5000".parse()?)?;
/// client.udp_send_to(now, sender, b"x", "198.18.0.2:9".parse()?)?;
/// pump(now, &mut client, &mut server);
/// let d = server.udp_recv(socket)?;
/// assert_eq!((d.from.to_string(), d.to.to_string()), ("198.18.0.1:5000".into(), "198.18.0.2:9".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Datagram {
    /// Who sent it.
    pub from: SocketAddr,
    /// Where it was sent: the socket's own address, or for a catch-all socket the
    /// destination the sender asked for.
    pub to: SocketAddr,
    /// The data.
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct UdpSocket {
    local: SocketAddr,
    peer: Option<SocketAddr>,
    capture: Option<Capture>,
    queue: VecDeque<Datagram>,
    /// Bytes the queue holds, overhead included.
    queued: usize,
    /// An error to report at the next call (an ICMP error about what a connected socket
    /// sent), as Linux's sk_err.
    error: Option<Error>,
}

/// The UDP sockets, the output queue and the ICMP rate limit.
#[derive(Debug)]
pub(super) struct UdpTable {
    sockets: Vec<(u32, Option<UdpSocket>)>,
    /// Bound sockets by port, and the catch-all ones: a datagram looks at the few
    /// sockets of its port and at the catch-alls, whatever the number of sockets.
    by_port: HashMap<u16, Vec<u32>>,
    capturing: Vec<u32>,
    pub(super) out: VecDeque<Vec<u8>>,
    /// Per-destination token buckets of ICMP errors: (tokens, last refill).
    icmp_tokens: HashMap<IpAddr, (u32, Instant)>,
    next_ident: u32,
}

/// Linux's icmp_ratelimit (1 s) with inet_peer's burst of 6: ICMP errors to one host.
const ICMP_BURST: u32 = 6;
const ICMP_INTERVAL: core::time::Duration = core::time::Duration::from_secs(1);

impl UdpTable {
    /// No sockets yet; the maps are hashed under `maps`.
    pub(super) fn new(maps: Keyed) -> UdpTable {
        UdpTable {
            sockets: Vec::new(),
            by_port: maps.map(),
            capturing: Vec::new(),
            out: VecDeque::new(),
            icmp_tokens: maps.map(),
            next_ident: 0,
        }
    }

    fn get(&self, h: UdpHandle) -> Option<&UdpSocket> {
        match self.sockets.get(h.index as usize) {
            Some((g, Some(s))) if *g == h.generation => Some(s),
            _ => None,
        }
    }

    fn get_mut(&mut self, h: UdpHandle) -> Option<&mut UdpSocket> {
        match self.sockets.get_mut(h.index as usize) {
            Some((g, Some(s))) if *g == h.generation => Some(s),
            _ => None,
        }
    }

    fn live(&self) -> impl Iterator<Item = (u32, &UdpSocket)> {
        self.sockets
            .iter()
            .enumerate()
            .filter_map(|(i, (_, s))| s.as_ref().map(|s| (i as u32, s)))
    }

    fn handle(&self, index: u32) -> UdpHandle {
        UdpHandle {
            index,
            generation: self.sockets[index as usize].0,
        }
    }

    /// Whether `addr` clashes with a bound socket (same port and family, overlapping
    /// addresses).
    fn in_use(&self, addr: SocketAddr) -> bool {
        self.live().any(|(_, s)| {
            s.capture.is_none()
                && s.local.port() == addr.port()
                && s.local.is_ipv4() == addr.is_ipv4()
                && (s.local.ip() == addr.ip()
                    || s.local.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        })
    }

    /// The live sockets among `indices`.
    fn among<'a>(&'a self, indices: &'a [u32]) -> impl Iterator<Item = (u32, &'a UdpSocket)> + 'a {
        indices
            .iter()
            .filter_map(|&i| self.sockets[i as usize].1.as_ref().map(|s| (i, s)))
    }

    /// The sockets bound to `port`, then the catch-all ones.
    fn candidates(&self, port: u16) -> impl Iterator<Item = (u32, &UdpSocket)> {
        let bound = self.by_port.get(&port).map_or(&[][..], Vec::as_slice);
        self.among(bound).chain(self.among(&self.capturing))
    }

    /// The socket a datagram to `dst` from `src` goes to: a connected socket whose peer
    /// it is, else one bound to the address, else to all addresses, else a catch-all.
    fn lookup(&self, dst: SocketAddr, src: SocketAddr) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for (i, s) in self.candidates(dst.port()) {
            let rank = if let Some(c) = &s.capture {
                if !c.matches(dst) {
                    continue;
                }
                1
            } else {
                if s.local.port() != dst.port() || s.local.is_ipv4() != dst.is_ipv4() {
                    continue;
                }
                if !(s.local.ip() == dst.ip() || s.local.ip().is_unspecified()) {
                    continue;
                }
                match s.peer {
                    Some(p) if p == src => 4,
                    Some(_) => continue,
                    None if s.local.ip() == dst.ip() => 3,
                    None => 2,
                }
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

impl Stack {
    /// Bind a UDP socket to `local` (one of the stack's addresses, or unspecified for
    /// all); port 0 picks a free port of [`Config::ephemeral_ports`].
    pub fn udp_bind(&mut self, local: SocketAddr) -> Result<UdpHandle, Error> {
        if !local.ip().is_unspecified() && !self.addresses.contains(&local.ip()) {
            return Err(Error::AddressNotAvailable);
        }
        let local = if local.port() == 0 {
            let range = self.config.ephemeral_ports.clone();
            let peer = SocketAddr::new(local.ip(), 0);
            let port = self
                .ports
                .candidates(local.ip(), peer, &range)
                .find(|&p| !self.udp.in_use(SocketAddr::new(local.ip(), p)))
                .ok_or(Error::NoEphemeralPorts)?;
            SocketAddr::new(local.ip(), port)
        } else if self.udp.in_use(local) {
            return Err(Error::AddressInUse);
        } else {
            local
        };
        Ok(self.udp_insert(UdpSocket {
            local,
            peer: None,
            capture: None,
            queue: VecDeque::new(),
            queued: 0,
            error: None,
        }))
    }

    /// A catch-all UDP socket: datagrams to any destination `capture` names that no
    /// bound socket takes (the relay's); [`Datagram::to`] tells where each was sent, and
    /// [`Stack::udp_send_from`] answers from that address.
    pub fn udp_bind_capture(&mut self, capture: Capture) -> Result<UdpHandle, Error> {
        let unspecified = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0);
        let h = self.udp_insert(UdpSocket {
            local: unspecified,
            peer: None,
            capture: Some(capture),
            queue: VecDeque::new(),
            queued: 0,
            error: None,
        });
        Ok(h)
    }

    fn udp_insert(&mut self, socket: UdpSocket) -> UdpHandle {
        let t = &mut self.udp;
        let (port, capture) = (socket.local.port(), socket.capture.is_some());
        let index = match t.sockets.iter().position(|(_, s)| s.is_none()) {
            Some(i) => {
                t.sockets[i].0 = t.sockets[i].0.wrapping_add(1);
                t.sockets[i].1 = Some(socket);
                i
            }
            None => {
                t.sockets.push((0, Some(socket)));
                t.sockets.len() - 1
            }
        } as u32;
        if capture {
            t.capturing.push(index);
        } else {
            t.by_port.entry(port).or_default().push(index);
        }
        t.handle(index)
    }

    /// Set a socket's default destination; it then takes datagrams from there only. A
    /// socket bound to all addresses gets one of the stack's of the peer's family.
    pub fn udp_connect(&mut self, socket: UdpHandle, peer: SocketAddr) -> Result<(), Error> {
        let ours = self
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == peer.is_ipv4());
        let s = self.udp.get_mut(socket).ok_or(Error::InvalidHandle)?;
        if s.capture.is_some() {
            return Err(Error::InvalidState(TcpState::Listen));
        }
        if s.local.ip().is_unspecified() {
            let ip = ours.ok_or(Error::AddressNotAvailable)?;
            s.local = SocketAddr::new(ip, s.local.port());
        }
        s.peer = Some(peer);
        s.error = None;
        Ok(())
    }

    /// The socket's address (with the port chosen for port 0).
    pub fn udp_local_addr(&self, socket: UdpHandle) -> Result<SocketAddr, Error> {
        Ok(self.udp.get(socket).ok_or(Error::InvalidHandle)?.local)
    }

    /// The connected socket's peer.
    pub fn udp_peer_addr(&self, socket: UdpHandle) -> Result<SocketAddr, Error> {
        self.udp
            .get(socket)
            .ok_or(Error::InvalidHandle)?
            .peer
            .ok_or(Error::NotConnected)
    }

    /// Send `data` to `to` as one datagram (fragmented if larger than the MTU).
    pub fn udp_send_to(
        &mut self,
        now: Instant,
        socket: UdpHandle,
        data: &[u8],
        to: SocketAddr,
    ) -> Result<usize, Error> {
        let s = self.udp.get_mut(socket).ok_or(Error::InvalidHandle)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let from = s.local;
        self.udp_send_from(now, socket, data, from, to)
    }

    /// Send `data` to the connected socket's peer.
    pub fn udp_send(
        &mut self,
        now: Instant,
        socket: UdpHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        let peer = self.udp_peer_addr(socket)?;
        self.udp_send_to(now, socket, data, peer)
    }

    /// Send `data` to `to` from `from`: for a catch-all socket, the address a client
    /// sent to (its reply comes from there); otherwise the socket's own address (an
    /// unspecified one becomes one of the stack's of `to`'s family).
    pub fn udp_send_from(
        &mut self,
        _now: Instant,
        socket: UdpHandle,
        data: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<usize, Error> {
        let s = self.udp.get(socket).ok_or(Error::InvalidHandle)?;
        let from = if s.capture.is_some() {
            if !s.capture.as_ref().is_some_and(|c| c.covers(from.ip())) {
                return Err(Error::AddressNotAvailable);
            }
            from
        } else if s.local.ip().is_unspecified() {
            let ip = self
                .addresses
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == to.is_ipv4())
                .ok_or(Error::AddressNotAvailable)?;
            SocketAddr::new(ip, s.local.port())
        } else {
            s.local
        };
        if from.is_ipv4() != to.is_ipv4() {
            return Err(Error::AddressNotAvailable);
        }
        let max = if to.is_ipv4() { 65_507 } else { 65_527 };
        if data.len() > max {
            return Err(Error::MessageTooLong);
        }
        if self.udp.out.len() >= UDP_OUT_LIMIT {
            return Err(Error::NoBufferSpace);
        }
        let repr = UdpRepr {
            src_port: from.port(),
            dst_port: to.port(),
            payload: data,
        };
        let packet = wire::emit_udp_packet(from.ip(), to.ip(), self.config.ttl, &repr)
            .map_err(|_| Error::MessageTooLong)?;
        if packet.len() <= self.config.mtu {
            self.udp.out.push_back(packet);
        } else {
            // RFC 791 / RFC 8200 4.5: cut the datagram at multiples of 8 that fit.
            let header = if to.is_ipv4() { 20 } else { 40 + 8 };
            let step = (self.config.mtu.saturating_sub(header) / 8 * 8).max(8);
            let body = packet.len() - if to.is_ipv4() { 20 } else { 40 };
            let cuts: Vec<usize> = (1..).map(|k| k * step).take_while(|&c| c < body).collect();
            self.udp.next_ident = self.udp.next_ident.wrapping_add(1);
            let ident = self.udp.next_ident ^ self.isn.ts_offset(from.ip(), to.ip());
            for f in wire::fragment_packet(&packet, &cuts, ident) {
                self.udp.out.push_back(f);
            }
            self.stats.fragments_out += cuts.len() as u64 + 1;
        }
        self.stats.datagrams_out += 1;
        Ok(data.len())
    }

    /// Take the next datagram (`WouldBlock` if none; a pending ICMP error first).
    pub fn udp_recv(&mut self, socket: UdpHandle) -> Result<Datagram, Error> {
        let s = self.udp.get_mut(socket).ok_or(Error::InvalidHandle)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let d = s.queue.pop_front().ok_or(Error::WouldBlock)?;
        s.queued -= d.data.len() + DATAGRAM_OVERHEAD;
        Ok(d)
    }

    /// The next datagram without taking it.
    pub fn udp_peek(&self, socket: UdpHandle) -> Result<&Datagram, Error> {
        let s = self.udp.get(socket).ok_or(Error::InvalidHandle)?;
        if let Some(e) = s.error {
            return Err(e);
        }
        s.queue.front().ok_or(Error::WouldBlock)
    }

    /// Every UDP socket, for `synack ss -u`.
    pub fn udp_sockets(&self) -> Vec<UdpSnapshot> {
        self.udp
            .live()
            .map(|(_, s)| UdpSnapshot {
                local: s.local,
                peer: s.peer,
                recv_q: s.queue.iter().map(|d| d.data.len()).sum(),
                datagrams: s.queue.len(),
                catch_all: s.capture.is_some(),
            })
            .collect()
    }

    /// Datagrams waiting in the socket's queue.
    pub fn udp_queue_len(&self, socket: UdpHandle) -> Result<usize, Error> {
        Ok(self
            .udp
            .get(socket)
            .ok_or(Error::InvalidHandle)?
            .queue
            .len())
    }

    /// Close the socket; what its queue held is dropped.
    pub fn udp_close(&mut self, socket: UdpHandle) -> Result<(), Error> {
        let t = &mut self.udp;
        let port = t.get(socket).ok_or(Error::InvalidHandle)?.local.port();
        t.sockets[socket.index as usize].1 = None;
        t.capturing.retain(|&i| i != socket.index);
        if let Some(v) = t.by_port.get_mut(&port) {
            v.retain(|&i| i != socket.index);
            if v.is_empty() {
                t.by_port.remove(&port);
            }
        }
        Ok(())
    }

    /// A UDP datagram addressed to us (or to a captured destination).
    /// `verified`: the device vouches for the checksum (see
    /// [`Stack::receive_checksum_verified`]).
    pub(super) fn udp_input(
        &mut self,
        now: Instant,
        ip: &wire::IpInfo,
        payload: &[u8],
        verified: bool,
    ) {
        let parsed = if verified {
            wire::udp::parse_udp_verified(ip, payload)
        } else {
            wire::parse_udp(ip, payload)
        };
        let d = match parsed {
            Ok(d) => d,
            Err(e) => return self.stats.drop(e.reason()),
        };
        self.stats.datagrams_in += 1;
        let dst = SocketAddr::new(ip.dst, d.dst_port);
        let src = SocketAddr::new(ip.src, d.src_port);
        let Some(index) = self.udp.lookup(dst, src) else {
            self.stats.drop("udp_no_socket");
            // RFC 1122 3.2.2.1 / RFC 4443 3.1: port unreachable, quoting the datagram,
            // but never about a broadcast or multicast one.
            if self.addresses.contains(&ip.dst) {
                self.port_unreachable(now, ip, payload);
            }
            return;
        };
        let (limit_bytes, limit_datagrams) =
            (self.config.udp_recv_buffer, self.config.udp_recv_datagrams);
        let handle = self.udp.handle(index);
        let s = self.udp.sockets[index as usize]
            .1
            .as_mut()
            .expect("a live socket");
        let cost = d.payload.len() + DATAGRAM_OVERHEAD;
        if s.queue.len() >= limit_datagrams || s.queued + cost > limit_bytes {
            return self.stats.drop("udp_queue_full");
        }
        s.queued += cost;
        let was_empty = s.queue.is_empty();
        s.queue.push_back(Datagram {
            from: src,
            to: dst,
            data: d.payload.to_vec(),
        });
        if was_empty {
            self.events.push_back(Event::UdpReadable(handle));
        }
    }

    /// ICMP destination unreachable, port unreachable, for a datagram nobody takes;
    /// at most `ICMP_BURST` at once to one host, then one a second.
    fn port_unreachable(&mut self, now: Instant, ip: &wire::IpInfo, datagram: &[u8]) {
        let entry = self
            .udp
            .icmp_tokens
            .entry(ip.src)
            .or_insert((ICMP_BURST, now));
        let refill =
            (now.saturating_duration_since(entry.1).as_micros() / ICMP_INTERVAL.as_micros()) as u32;
        if refill > 0 {
            entry.0 = (entry.0 + refill).min(ICMP_BURST);
            entry.1 = now;
        }
        if entry.0 == 0 {
            return self.stats.drop("icmp_rate_limited");
        }
        entry.0 -= 1;
        if self.udp.icmp_tokens.len() > 4096 {
            // Forget hosts whose buckets are full again.
            self.udp.icmp_tokens.retain(|_, (t, at)| {
                *t < ICMP_BURST && now.saturating_duration_since(*at) < ICMP_INTERVAL * ICMP_BURST
            });
        }
        // The datagram as it arrived, quoted as far as fits in a minimum MTU (RFC 1812
        // 4.3.2.3, RFC 4443 2.4 (c)).
        let Ok(packet) = wire::emit_raw_ip_packet(ip.src, ip.dst, ip.ttl, PROTO_UDP, datagram)
        else {
            return;
        };
        let quote = &packet[..packet.len().min(if ip.src.is_ipv4() { 548 } else { 1232 })];
        let msg = IcmpRepr::DestUnreachable {
            code: if ip.src.is_ipv4() { 3 } else { 4 },
            next_hop_mtu: 0,
            invoking: quote,
        };
        if self.queue_icmp(ip, &msg) {
            self.stats.icmp_unreachable_sent += 1;
        }
    }

    /// An ICMP error quoting a datagram a socket of ours sent: a connected socket whose
    /// peer it names gets it as its next call's error (Linux reports errors to connected
    /// UDP sockets only, without IP_RECVERR). Returns whether a socket took it.
    pub(super) fn udp_error(
        &mut self,
        quoted_src: SocketAddr,
        quoted_dst: SocketAddr,
        error: Error,
    ) -> bool {
        let Some(index) = self.udp.lookup_sender(quoted_src, quoted_dst) else {
            return false;
        };
        let handle = self.udp.handle(index);
        if let Some(s) = self.udp.sockets[index as usize].1.as_mut() {
            s.error = Some(error);
        }
        self.events.push_back(Event::UdpReadable(handle));
        true
    }
}

impl Stack {
    /// Whether a catch-all UDP socket covers `ip`.
    pub(super) fn udp_captures(&self, ip: IpAddr) -> bool {
        let t = &self.udp;
        t.among(&t.capturing)
            .any(|(_, s)| s.capture.as_ref().is_some_and(|c| c.covers(ip)))
    }
}

impl UdpTable {
    /// The connected socket that sent from `src` to `dst`.
    fn lookup_sender(&self, src: SocketAddr, dst: SocketAddr) -> Option<u32> {
        let bound = self.by_port.get(&src.port()).map_or(&[][..], Vec::as_slice);
        self.among(bound)
            .find(|(_, s)| {
                s.peer == Some(dst) && s.local.port() == src.port() && s.local.ip() == src.ip()
            })
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_goes_to_the_most_specific_socket() {
        let mut st = Stack::new(Config::deterministic(1));
        st.add_address("198.18.0.1".parse().unwrap());
        let any = st.udp_bind("0.0.0.0:53".parse().unwrap()).unwrap();
        let peer: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let dst: SocketAddr = "198.18.0.1:53".parse().unwrap();
        assert_eq!(st.udp.lookup(dst, peer), Some(any.index));
        assert_eq!(
            st.udp_bind("198.18.0.1:53".parse().unwrap()),
            Err(Error::AddressInUse),
            "overlaps the socket on all addresses"
        );
        let other = st.udp_bind("0.0.0.0:54".parse().unwrap()).unwrap();
        st.udp_connect(other, peer).unwrap();
        assert_eq!(st.udp_local_addr(other).unwrap().ip(), dst.ip());
        let to54: SocketAddr = "198.18.0.1:54".parse().unwrap();
        assert_eq!(st.udp.lookup(to54, peer), Some(other.index));
        assert_eq!(
            st.udp.lookup(to54, "198.18.0.3:1".parse().unwrap()),
            None,
            "not its peer"
        );
        let e = st.udp_bind("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = st.udp_local_addr(e).unwrap().port();
        assert!(st.config().ephemeral_ports.contains(&port));
        st.udp_close(e).unwrap();
        assert_eq!(
            st.udp_local_addr(e),
            Err(Error::InvalidHandle),
            "stale handle"
        );
    }
}
