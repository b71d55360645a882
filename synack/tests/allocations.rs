//! What the engine allocates: nothing per segment once a transfer is under way (the
//! packet is written into a buffer the caller keeps, the payload read out of the send
//! buffer into it in one pass), storage given back once buffers stay empty, and a fixed
//! small number of allocations per connection lifecycle.
//! Per lifecycle (both ends, 12.3 measured): each end's connection, its send ring,
//! its receive storage, RACK's list of segments in flight and one small record made at
//! open, plus the stack's event list and a control packet (the last ACK).
//! One test in its own binary: the allocation counter is process-wide.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations, live_heap};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use synack::{Config, ConnectionHandle, Instant, Stack};

const CLIENT: &str = "198.18.0.1";
const SERVER: &str = "198.18.0.2";

/// Two stacks joined by a link with a delay of one round (1 ms): what one sends in a
/// round arrives in the next, so a sender keeps data in flight as on a real path. The
/// packets travel in buffers that are reused (the test allocates nothing per packet
/// either).
struct Pair {
    a: Stack,
    b: Stack,
    now: Instant,
    /// Packets on the way to `b` and to `a`, as (buffer, length in use).
    to_b: Vec<(Vec<u8>, usize)>,
    to_a: Vec<(Vec<u8>, usize)>,
    free: Vec<Vec<u8>>,
}

impl Pair {
    fn new() -> Pair {
        let stack = |seed: u64, ip: &str| {
            let mut s = Stack::new(Config::deterministic(seed));
            s.add_address(ip.parse().unwrap());
            s
        };
        Pair {
            a: stack(1, CLIENT),
            b: stack(2, SERVER),
            now: Instant::from_secs(1),
            to_b: Vec::new(),
            to_a: Vec::new(),
            free: Vec::new(),
        }
    }

    /// One round: 1 ms passes, the packets sent last round arrive, timers fire, and
    /// what the stacks send now is taken onto the link.
    fn pump(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        for (p, len) in self.to_b.drain(..) {
            self.b.receive(now, &p[..len]);
            self.free.push(p);
        }
        for (p, len) in self.to_a.drain(..) {
            self.a.receive(now, &p[..len]);
            self.free.push(p);
        }
        for s in [&mut self.a, &mut self.b] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.on_timeout(now);
            }
        }
        for (from, link) in [(&mut self.a, &mut self.to_b), (&mut self.b, &mut self.to_a)] {
            loop {
                let max = from.max_packet_size();
                let mut buf = self.free.pop().unwrap_or_else(|| vec![0; max]);
                let Some(t) = from.poll_transmit_into(now, &mut buf) else {
                    self.free.push(buf);
                    break;
                };
                link.push((buf, t.len));
            }
        }
        while self.a.poll_event().is_some() {}
        while self.b.poll_event().is_some() {}
    }

    /// Rounds until nothing is on the link.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.pump();
            if self.to_a.is_empty() && self.to_b.is_empty() {
                return;
            }
        }
    }

    fn connect(&mut self, port: u16) -> (ConnectionHandle, ConnectionHandle) {
        let server: IpAddr = SERVER.parse().unwrap();
        let listener = self.b.listen(SocketAddr::new(server, port), 128).unwrap();
        let c = self
            .a
            .connect(self.now, SocketAddr::new(server, port))
            .unwrap();
        self.settle();
        let s = self.b.accept(listener).expect("the handshake completes");
        (c, s)
    }
}

/// Move data both ways for `rounds` round trips; the bytes each side received.
fn exchange(p: &mut Pair, c: ConnectionHandle, s: ConnectionHandle, rounds: usize) -> u64 {
    let chunk = [0x5Au8; 16 * 1024];
    let mut received = 0u64;
    for _ in 0..rounds {
        let now = p.now;
        while p.a.send(now, c, &chunk).is_ok_and(|n| n > 0) {}
        while p.b.send(now, s, &chunk).is_ok_and(|n| n > 0) {}
        p.pump();
        let now = p.now;
        for (stack, h) in [(&mut p.a, c), (&mut p.b, s)] {
            while let Ok(n) = stack.recv_with(now, h, |x, y| x.len() + y.len()) {
                if n == 0 {
                    break;
                }
                received += n as u64;
            }
        }
    }
    received
}

#[test]
fn a_bulk_transfer_allocates_nothing_per_segment_and_a_lifecycle_a_fixed_few() {
    let mut p = Pair::new();
    let (c, s) = p.connect(80);
    // Warm-up: buffers, windows and tables reach their working sizes.
    assert!(exchange(&mut p, c, s, 300) > 8 << 20);
    let segments = |p: &Pair| p.a.stats().segments_out + p.b.stats().segments_out;
    let (allocs0, segs0) = (allocations(), segments(&p));
    let rounds = 300;
    let moved = exchange(&mut p, c, s, rounds);
    let (allocs, segs) = (allocations() - allocs0, segments(&p) - segs0);
    println!("bulk: {moved} bytes in {segs} segments over {rounds} rounds, {allocs} allocations");
    assert!(
        moved > 8 << 20 && segs > 100 * rounds as u64,
        "the transfer ran: {moved} B, {segs} segments"
    );
    assert_eq!(
        allocs, 0,
        "allocations during {segs} segments of a bulk transfer both ways"
    );

    // Memory follows use: once the transfer stops and the buffers stay empty for a
    // second, what they grew to is given back.
    p.settle();
    exchange(&mut p, c, s, 0);
    let busy = live_heap();
    p.now += Duration::from_secs(2);
    p.settle();
    let idle = live_heap();
    println!("buffers: {busy} bytes of heap while busy, {idle} after a second idle");
    assert!(
        busy - idle > 1 << 20,
        "idle buffers kept their storage: {busy} -> {idle}"
    );

    // Lifecycles: connect, a request and an answer, close from both sides, TIME_WAIT
    // over. The first few size the tables; then each costs the same few allocations.
    let lifecycle = |p: &mut Pair, port: u16| {
        let (c, s) = p.connect(port);
        let now = p.now;
        p.a.send(now, c, &[1u8; 1000]).unwrap();
        p.settle();
        let now = p.now;
        p.b.recv_with(now, s, |x, y| x.len() + y.len()).unwrap();
        p.b.send(now, s, &[2u8; 1000]).unwrap();
        p.b.close(now, s).unwrap();
        p.settle();
        let now = p.now;
        p.a.recv_with(now, c, |x, y| x.len() + y.len()).unwrap();
        p.a.close(now, c).unwrap();
        p.settle();
    };
    for port in 1000..1010 {
        lifecycle(&mut p, port);
    }
    let before = allocations();
    let n = 50;
    for port in 2000..2000 + n {
        lifecycle(&mut p, port);
    }
    // Let every TIME_WAIT end, so that what it holds is counted as well.
    p.now += Duration::from_secs(61);
    p.settle();
    let per = (allocations() - before) as f64 / f64::from(n);
    println!("lifecycle: {per:.1} allocations each");
    assert!(per <= 16.0, "{per} allocations per connection lifecycle");
}
