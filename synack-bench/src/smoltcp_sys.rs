//! smoltcp's side of `bulk`, `connections` and `latency`, over the same in-memory link
//! as synack's (raw IP packets in queues, the same MTU and buffer sizes, one thread).
//!
//! The harness: two smoltcp [`Interface`]s, a client (198.18.1.1, and 198.18.1.2 to .8
//! for `connections`) and a server (198.18.0.1), each with its own [`SocketSet`] and a
//! [`QueueDevice`] of `Medium::Ip` whose MTU is the benchmark's (the largest IP packet;
//! smoltcp takes 65535 as it is: MSS 65495, no cap below the 16-bit IP length).
//! [`Pair::pump`] polls both interfaces and moves every packet one end sent into the
//! other end's receive queue, until a round in which neither sent anything (one `poll`
//! takes in every queued packet, then sends all its sockets can send). Time is the wall
//! clock, read once per pump, as synack's harness does.
//!
//! smoltcp 0.13, not 0.12: 0.12.0 panics ("attempt to subtract sequence numbers with
//! underflow" in `Socket::window_to_update`, smoltcp issue #1048) as soon as a peer fills
//! a scaled receive window: it accepted bytes past the right edge it last advertised,
//! which the rounding of a scaled window can move back by up to 2^shift - 1 bytes. Every
//! bulk transfer here does that; 0.13.0 rejects such bytes (#1079).
//!
//! Settings, per socket ([`synack_bench::link::tcp_socket`]): receive and send buffers of
//! [`BUFFER`] (4 MiB) each, so smoltcp offers a window scale of 7 and the window is not
//! what limits `bulk` (checked: the server's receive queue goes past 64 KiB); Nagle's
//! algorithm off (`set_nagle_enabled(false)`, as synack runs with `tcp_nodelay`);
//! smoltcp's default ACK delay (10 ms; an ACK goes at once when more than one MSS is
//! unacknowledged, and the request/response benchmarks carry their ACKs on the next
//! data segment, so the delay never stalls them); no timestamps (smoltcp's default); no
//! congestion control (smoltcp's default when neither `socket-tcp-reno` nor
//! `socket-tcp-cubic` is on, which this crate does not turn on); checksums computed and
//! verified in software.
//!
//! `connections` keeps 100 client sockets and a pool of 100 server sockets listening
//! on port 80 (smoltcp has no listen backlog: one listening socket takes one SYN). The
//! sockets are reused, not reallocated: a client socket in TIME_WAIT, once the close
//! handshake is over, is `connect`ed again (smoltcp resets it without sending anything,
//! the same as dropping it), and a server socket back in CLOSED `listen`s again. Client
//! endpoints rotate over 8 addresses and ports 1024 to 65535, so no 4-tuple is used
//! twice in a run of up to 516,096 connections.
//!
//! Every benchmark checks what it measures: byte counts received equal to those sent,
//! every lifecycle through every state it should reach, every echo 64 bytes.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant as WallClock};

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;

use synack_bench::link::{self, QueueDevice};

use crate::synack_sys::gbit;
use crate::{BUFFER, CLIENT_IP, SERVER_IP};

/// How long a benchmark may go without progress before it is declared stalled.
const STALL: Duration = Duration::from_secs(10);

/// One interface, its device and its sockets.
struct End {
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
}

impl End {
    fn new(mtu: usize, addresses: &[Ipv4Addr], seed: u64, now: Instant) -> End {
        let mut dev = QueueDevice::new(mtu);
        let iface = link::interface(&mut dev, addresses, seed, now);
        End {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

/// Two interfaces and the clock that drives them.
struct Pair {
    client: End,
    server: End,
    start: WallClock,
}

/// The `i`-th client address: 198.18.1.1 + i.
fn client_ip(i: usize) -> Ipv4Addr {
    let [a, b, c, d] = CLIENT_IP.octets();
    Ipv4Addr::new(a, b, c, d + i as u8)
}

impl Pair {
    fn new(mtu: usize, client_addresses: usize) -> Pair {
        let start = WallClock::now();
        let addrs: Vec<Ipv4Addr> = (0..client_addresses).map(client_ip).collect();
        let now = Instant::from_micros(0);
        Pair {
            client: End::new(mtu, &addrs, 1, now),
            server: End::new(mtu, &[SERVER_IP], 2, now),
            start,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Poll both interfaces and carry every packet both ways until neither sends.
    fn pump(&mut self) {
        let now = self.now();
        loop {
            let c = &mut self.client;
            c.iface.poll(now, &mut c.dev, &mut c.sockets);
            let s = &mut self.server;
            s.iface.poll(now, &mut s.dev, &mut s.sockets);
            if c.dev.tx.is_empty() && s.dev.tx.is_empty() {
                break;
            }
            s.dev.rx.append(&mut c.dev.tx);
            c.dev.rx.append(&mut s.dev.tx);
        }
    }

    /// Pump until `done` holds; panic with `what` if it does not within [`STALL`].
    fn pump_until(&mut self, what: &str, mut done: impl FnMut(&mut Pair) -> bool) {
        let t0 = WallClock::now();
        loop {
            self.pump();
            if done(self) {
                return;
            }
            if t0.elapsed() > STALL {
                panic!("smoltcp: {what} did not happen within {STALL:?}");
            }
            std::thread::yield_now();
        }
    }

    /// One established connection at this MTU: (client socket, server socket).
    fn connect(&mut self) -> (SocketHandle, SocketHandle) {
        let mut server = link::tcp_socket(BUFFER);
        server.listen(80).expect("listen");
        let s = self.server.sockets.add(server);
        let mut client = link::tcp_socket(BUFFER);
        client
            .connect(
                self.client.iface.context(),
                (SERVER_IP, 80),
                (CLIENT_IP, 49152),
            )
            .expect("connect");
        let c = self.client.sockets.add(client);
        self.pump_until("the handshake", |p| {
            p.client.socket(c).state() == State::Established
                && p.server.socket(s).state() == State::Established
        });
        (c, s)
    }
}

/// `bulk`: one connection moves `bytes` from client to server; Gbit/s.
pub fn bulk(mtu: usize, bytes: u64) -> f64 {
    let mut p = Pair::new(mtu, 1);
    let (c, s) = p.connect();
    let t0 = WallClock::now();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut largest_queue = 0;
    let mut progress = WallClock::now();
    while received < bytes {
        let sock = p.client.socket(c);
        while sent < bytes {
            let left = (bytes - sent).min(usize::MAX as u64) as usize;
            // Zero-copy: take room in the send buffer without writing it (the bytes
            // are whatever the buffer holds), as synack's `send_with` does.
            let n = sock
                .send(|buf| {
                    let n = buf.len().min(left);
                    (n, n)
                })
                .expect("the client can send");
            if n == 0 {
                break;
            }
            sent += n as u64;
        }
        p.pump();
        let sock = p.server.socket(s);
        largest_queue = largest_queue.max(sock.recv_queue());
        let before = received;
        loop {
            // Read and discard, in place.
            let n = sock
                .recv(|buf| (buf.len(), buf.len()))
                .expect("the server can receive");
            if n == 0 {
                break;
            }
            received += n as u64;
        }
        if received > before {
            progress = WallClock::now();
        } else if progress.elapsed() > STALL {
            panic!(
                "smoltcp bulk at MTU {mtu} stalled: {received} of {bytes} bytes received, \
                 {sent} sent, client {}, server {}",
                p.client.socket(c).state(),
                p.server.socket(s).state()
            );
        }
        p.pump();
    }
    let elapsed = t0.elapsed();
    assert_eq!(
        received, bytes,
        "smoltcp bulk at MTU {mtu}: {received} bytes received, {bytes} sent"
    );
    assert_eq!(sent, bytes);
    assert!(
        largest_queue > 65535,
        "smoltcp bulk at MTU {mtu}: the receive queue never went past 64 KiB \
         (largest {largest_queue}): is window scaling off?"
    );
    gbit(received, elapsed)
}

/// Lifecycles in flight at once in `connections`.
const BATCH: usize = 100;
/// Client addresses `connections` rotates over.
const CLIENT_ADDRESSES: usize = 8;
/// Client ports: 1024 to 65535.
const PORTS: usize = 65536 - 1024;

/// The client endpoint of the `i`-th connection: the address changes every time, the
/// port every `CLIENT_ADDRESSES` connections.
fn client_endpoint(i: usize) -> (Ipv4Addr, u16) {
    let addr = client_ip(i % CLIENT_ADDRESSES);
    let port = 1024 + (i / CLIENT_ADDRESSES) % PORTS;
    (addr, port as u16)
}

/// `connections`: `n` lifecycles (connect, 100-byte request, 100-byte response, close by
/// the client first), 100 at a time; connections per second.
pub fn connections(n: usize) -> f64 {
    let mut p = Pair::new(1500, CLIENT_ADDRESSES);
    let clients: Vec<SocketHandle> = (0..BATCH)
        .map(|_| p.client.sockets.add(link::tcp_socket(BUFFER)))
        .collect();
    let servers: Vec<SocketHandle> = (0..BATCH)
        .map(|_| p.server.sockets.add(link::tcp_socket(BUFFER)))
        .collect();
    let request = [b'q'; 100];
    let response = [b'r'; 100];
    let mut buf = [0u8; 200];
    let t0 = WallClock::now();
    let mut done = 0;
    while done < n {
        let batch = BATCH.min(n - done);
        // The pool of listeners: every server socket is back in CLOSED (or still
        // listening, after a short batch) and listens again.
        for &h in &servers {
            let s = p.server.socket(h);
            assert!(
                matches!(s.state(), State::Closed | State::Listen),
                "smoltcp connections: a server socket is in {} before a batch",
                s.state()
            );
            s.listen(80).expect("listen");
        }
        for (i, &h) in clients[..batch].iter().enumerate() {
            let s = p.client.sockets.get_mut::<tcp::Socket>(h);
            assert!(
                matches!(s.state(), State::Closed | State::TimeWait),
                "smoltcp connections: a client socket is in {} before a batch",
                s.state()
            );
            s.connect(
                p.client.iface.context(),
                (SERVER_IP, 80),
                client_endpoint(done + i),
            )
            .expect("connect");
        }
        p.pump();
        for &h in &clients[..batch] {
            let s = p.client.socket(h);
            assert_eq!(
                s.state(),
                State::Established,
                "smoltcp connections: a handshake did not complete"
            );
            assert_eq!(s.send_slice(&request), Ok(100));
        }
        p.pump();
        let mut accepted = Vec::with_capacity(batch);
        for &h in &servers {
            let s = p.server.socket(h);
            if s.state() == State::Listen {
                continue;
            }
            assert_eq!(s.recv_slice(&mut buf), Ok(100), "the whole request");
            assert_eq!(s.send_slice(&response), Ok(100));
            accepted.push(h);
        }
        assert_eq!(
            accepted.len(),
            batch,
            "smoltcp connections: every connection reached a listener"
        );
        p.pump();
        for &h in &clients[..batch] {
            let s = p.client.socket(h);
            assert_eq!(s.recv_slice(&mut buf), Ok(100), "the whole response");
            s.close();
        }
        p.pump();
        for &h in &accepted {
            let s = p.server.socket(h);
            assert_eq!(
                s.recv_slice(&mut buf),
                Err(tcp::RecvError::Finished),
                "end of stream"
            );
            s.close();
        }
        p.pump();
        for &h in &clients[..batch] {
            assert_eq!(
                p.client.socket(h).state(),
                State::TimeWait,
                "smoltcp connections: the client's close completed"
            );
        }
        for &h in &accepted {
            assert_eq!(
                p.server.socket(h).state(),
                State::Closed,
                "smoltcp connections: the server's close completed"
            );
        }
        done += batch;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// `latency`: `rounds` round trips of a 64-byte message on one connection; every
/// round trip's time in microseconds.
pub fn latency(rounds: usize) -> Vec<f64> {
    let mut p = Pair::new(1500, 1);
    let (c, s) = p.connect();
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = WallClock::now();
        assert_eq!(p.client.socket(c).send_slice(&msg), Ok(64));
        p.pump();
        let server = p.server.socket(s);
        assert_eq!(server.recv_slice(&mut buf), Ok(64), "the whole message");
        assert_eq!(server.send_slice(&buf), Ok(64));
        p.pump();
        assert_eq!(
            p.client.socket(c).recv_slice(&mut buf),
            Ok(64),
            "the whole echo"
        );
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_moves_every_byte_at_each_mtu() {
        for mtu in [1500, 9000] {
            assert!(bulk(mtu, 8 << 20) > 0.0);
        }
    }

    #[test]
    fn connections_complete_every_lifecycle() {
        assert!(connections(250) > 0.0);
    }

    #[test]
    fn latency_echoes_every_message() {
        assert_eq!(latency(100).len(), 100);
    }

    #[test]
    fn client_endpoints_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            assert!(seen.insert(client_endpoint(i)));
        }
    }
}
