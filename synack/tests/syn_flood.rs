//! A SYN flood in the simulator: an attacker sends 100,000 SYNs per second from random
//! spoofed addresses for 10 s at a listener with backlog 128, while 1,000 legitimate
//! clients connect. With SYN cookies (RFC 4987 3.6, Linux's default) at least 99 % of
//! the clients complete their handshake within 3 s and the heap stays bounded: cookies
//! cost no memory per SYN. Without cookies the same flood shuts the clients out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, Event, Instant, Stack};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_heap;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SYNS_PER_MS: usize = 100;
const FLOOD: Duration = Duration::from_secs(10);
const CLIENTS: usize = 1000;

struct Outcome {
    /// Clients whose handshake completed within 3 s of connect().
    fast: usize,
    /// Highest live heap seen during the flood, and the heap after 2 s and at the end
    /// of the flood.
    peak_heap: usize,
    heap_at_2s: usize,
    heap_at_10s: usize,
    server_connections_max: usize,
    cookies_sent: u64,
    cookies_recv: u64,
    accepted: usize,
}

fn flood(syncookies: u8) -> Outcome {
    let config = {
        let mut config = Config::deterministic(1);
        config.tcp_syncookies = syncookies;
        config
    };
    let mut server = Stack::new(config.clone());
    server.add_address(IpAddr::V4(SERVER));
    let listener = server
        .listen(SocketAddr::new(IpAddr::V4(SERVER), 80), 128)
        .unwrap();
    let mut client = Stack::new({
        let mut config = config;
        config.secrets = synack::Secrets::Deterministic(99);
        config
    });
    client.add_address(IpAddr::V4(CLIENT));
    let mut rng = ChaCha8Rng::seed_from_u64(4987);
    let mut now = Instant::ZERO;
    let tick = Duration::from_millis(1);
    // Packets on the wire, delivered at the next tick (1 ms each way).
    let (mut to_server, mut to_client): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut started: HashMap<synack::ConnectionHandle, Instant> = HashMap::new();
    let mut fast = 0;
    let mut accepted = Vec::new();
    let (mut peak_heap, mut heap_at_2s, mut heap_at_10s) = (0, 0, 0);
    let mut server_connections_max = 0;
    let end = Instant::ZERO + FLOOD + Duration::from_secs(3);
    let mut step = 0u64;
    while now < end {
        // The attacker: SYNs from random addresses of 198.19.0.0/16 and random ports.
        if now < Instant::ZERO + FLOOD {
            for _ in 0..SYNS_PER_MS {
                let src = Ipv4Addr::new(198, 19, rng.random(), rng.random());
                let syn = TcpRepr {
                    src_port: rng.random_range(1024..65535),
                    dst_port: 80,
                    seq: SeqNum::new(rng.random()),
                    ack: SeqNum::new(0),
                    flags: TcpFlags::SYN,
                    window: 64240,
                    urgent: 0,
                    options: TcpOptions {
                        mss: Some(1460),
                        window_scale: Some(7),
                        sack_permitted: true,
                        timestamps: Some(Timestamps {
                            tsval: rng.random(),
                            tsecr: 0,
                        }),
                        ..TcpOptions::default()
                    },
                    payload: &[],
                };
                let p =
                    wire::emit_tcp_packet(IpAddr::V4(src), IpAddr::V4(SERVER), 64, &syn).unwrap();
                server.receive(now, &p);
            }
        }
        // A legitimate client connects every 10 ms during the flood.
        if step % 10 == 0 && started.len() < CLIENTS {
            let h = client
                .connect(now, SocketAddr::new(IpAddr::V4(SERVER), 80))
                .unwrap();
            started.insert(h, now);
        }
        for p in to_server.drain(..) {
            server.receive(now, &p);
        }
        for p in to_client.drain(..) {
            client.receive(now, &p);
        }
        server.on_timeout(now);
        client.on_timeout(now);
        // Answers to spoofed addresses go nowhere.
        while let Some(p) = server.poll_transmit(now) {
            if wire::parse_ip(&p).is_ok_and(|(ip, _)| ip.dst == IpAddr::V4(CLIENT)) {
                to_client.push(p);
            }
        }
        while let Some(p) = client.poll_transmit(now) {
            to_server.push(p);
        }
        while let Some(e) = client.poll_event() {
            if let Event::Connected(h) = e {
                let t0 = started[&h];
                if now.saturating_duration_since(t0) <= Duration::from_secs(3) {
                    fast += 1;
                }
            }
        }
        while server.poll_event().is_some() {}
        while let Ok(c) = server.accept(listener) {
            accepted.push(c);
        }
        server_connections_max = server_connections_max.max(server.connection_count());
        let heap = live_heap();
        peak_heap = peak_heap.max(heap);
        if now == Instant::from_secs(2) {
            heap_at_2s = heap;
        }
        if now == Instant::ZERO + FLOOD {
            heap_at_10s = heap;
        }
        now += tick;
        step += 1;
    }
    let stats = server.stats();
    Outcome {
        fast,
        peak_heap,
        heap_at_2s,
        heap_at_10s,
        server_connections_max,
        cookies_sent: stats.syncookies_sent,
        cookies_recv: stats.syncookies_recv,
        accepted: accepted.len(),
    }
}

#[test]
fn with_syn_cookies_legitimate_clients_get_through_a_syn_flood_in_bounded_memory() {
    let o = flood(1);
    // 1,000,000 spoofed SYNs: all but the first 129 (the SYN queue) were answered with
    // cookies, and so were the clients.
    assert!(
        o.cookies_sent >= 1_000_000 - 129,
        "{} cookies",
        o.cookies_sent
    );
    assert!(
        o.fast * 100 >= CLIENTS * 99,
        "only {} of {CLIENTS} clients connected within 3 s",
        o.fast
    );
    assert_eq!(o.cookies_recv as usize, o.accepted);
    assert!(o.accepted >= CLIENTS * 99 / 100);
    // The server holds the 129 embryonic connections of its SYN queue and the clients
    // it accepted: nothing per spoofed SYN.
    assert!(
        o.server_connections_max <= 129 + CLIENTS,
        "{} connections",
        o.server_connections_max
    );
    // The bound: the whole simulation (server, 1,000 client connections, packets in
    // flight) stays under 32 MiB, and 800,000 more SYNs between 2 s and 10 s add no
    // more than what the accepted clients need (about 1/5 of them arrive in that time).
    assert!(o.peak_heap < 32 << 20, "peak heap {} bytes", o.peak_heap);
    let growth = o.heap_at_10s.saturating_sub(o.heap_at_2s);
    assert!(
        growth < 8 << 20,
        "heap grew {growth} bytes between 2 s and 10 s of the flood"
    );
    eprintln!(
        "SYN flood: {} of {CLIENTS} clients within 3 s; peak heap {:.1} MiB; {} cookies sent",
        o.fast,
        o.peak_heap as f64 / (1 << 20) as f64,
        o.cookies_sent
    );
}

#[test]
fn without_syn_cookies_the_same_flood_shuts_clients_out() {
    let o = flood(0);
    assert_eq!(o.cookies_sent, 0);
    assert!(
        o.fast * 10 < CLIENTS,
        "{} of {CLIENTS} clients connected without cookies: the flood did not bite",
        o.fast
    );
}
