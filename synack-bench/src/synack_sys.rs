//! synack's side of `bulk`, `connections` and `latency`: two `synack::Stack`s on one
//! thread, joined by queues of raw IP packets (what a TUN device or a VPN tunnel would
//! carry), with the wall clock as their time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as WallClock};

use synack::{Config, ConnectionHandle, Instant, Stack};

use crate::{BUFFER, CLIENT_IP, SERVER_IP};

/// Two stacks and the clock that drives them.
struct Pair {
    client: Stack,
    server: Stack,
    start: WallClock,
}

impl Pair {
    fn new(mtu: usize, client_addresses: u8) -> Pair {
        let config = {
            let mut config = Config::deterministic(1);
            config.mtu = mtu;
            config.recv_buffer = BUFFER;
            config.send_buffer = BUFFER;
            config.tcp_rmem_max = BUFFER;
            config.tcp_nodelay = true;
            config.somaxconn = 65535;
            config
        };
        let mut client = Stack::new({
            let mut config = config.clone();
            config.secrets = synack::Secrets::Deterministic(1);
            config
        });
        for i in 0..client_addresses {
            let [a, b, c, d] = CLIENT_IP.octets();
            client.add_address(IpAddr::V4(Ipv4Addr::new(a, b, c, d + i)));
        }
        let mut server = Stack::new(config);
        server.add_address(IpAddr::V4(SERVER_IP));
        Pair {
            client,
            server,
            start: WallClock::now(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Carry every packet both ways until both stacks are quiet; fire due timers.
    fn pump(&mut self) {
        let now = self.now();
        for s in [&mut self.client, &mut self.server] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.on_timeout(now);
            }
        }
        loop {
            let mut moved = false;
            while let Some(p) = self.client.poll_transmit(now) {
                self.server.receive(now, &p);
                moved = true;
            }
            while let Some(p) = self.server.poll_transmit(now) {
                self.client.receive(now, &p);
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }

    fn drain_events(&mut self) {
        while self.client.poll_event().is_some() {}
        while self.server.poll_event().is_some() {}
    }

    /// One established connection: (client handle, server handle).
    fn connect(&mut self) -> (ConnectionHandle, ConnectionHandle) {
        let listener = self
            .server
            .listen(SocketAddr::new(IpAddr::V4(SERVER_IP), 80), 1024)
            .expect("listen");
        let now = self.now();
        let c = self
            .client
            .connect(now, SocketAddr::new(IpAddr::V4(SERVER_IP), 80))
            .expect("connect");
        self.pump();
        let s = self
            .server
            .accept(listener)
            .expect("the handshake completes");
        self.drain_events();
        (c, s)
    }
}

/// `bulk`: one connection moves `bytes` from client to server; Gbit/s.
pub fn bulk(mtu: usize, bytes: u64) -> f64 {
    let mut p = Pair::new(mtu, 1);
    let (c, s) = p.connect();
    let t0 = WallClock::now();
    let (mut sent, mut received) = (0u64, 0u64);
    while received < bytes {
        let now = p.now();
        let want = (bytes - sent).min(BUFFER as u64) as usize;
        if want > 0 {
            if let Ok(n) = p.client.send_with(now, c, want, |buf| buf.len()) {
                sent += n as u64;
            }
        }
        p.pump();
        let now = p.now();
        while let Ok(n) = p.server.recv_with(now, s, |a, b| a.len() + b.len()) {
            if n == 0 {
                break;
            }
            received += n as u64;
        }
        p.pump();
        p.drain_events();
    }
    gbit(received, t0.elapsed())
}

/// `connections`: `n` lifecycles (connect, 100-byte request, 100-byte response, close by
/// the client first), 100 at a time; connections per second.
pub fn connections(n: usize) -> f64 {
    // Eight client addresses: room for the TIME_WAIT entries the client keeps.
    let mut p = Pair::new(1500, 8);
    let server_addr = SocketAddr::new(IpAddr::V4(SERVER_IP), 80);
    let listener = p.server.listen(server_addr, 4096).expect("listen");
    let clients: Vec<IpAddr> = p.client.addresses().to_vec();
    let request = [b'q'; 100];
    let response = [b'r'; 100];
    let mut buf = [0u8; 200];
    let t0 = WallClock::now();
    let mut done = 0;
    while done < n {
        let batch = 100.min(n - done);
        let now = p.now();
        let conns: Vec<ConnectionHandle> = (0..batch)
            .map(|i| {
                let local = SocketAddr::new(clients[(done + i) % clients.len()], 0);
                p.client
                    .connect_from(now, local, server_addr)
                    .expect("connect")
            })
            .collect();
        p.pump();
        let now = p.now();
        for &c in &conns {
            assert_eq!(p.client.send(now, c, &request), Ok(100));
        }
        p.pump();
        let now = p.now();
        let accepted: Vec<ConnectionHandle> =
            std::iter::from_fn(|| p.server.accept(listener).ok()).collect();
        assert_eq!(accepted.len(), batch, "every handshake completed");
        for &s in &accepted {
            assert_eq!(p.server.recv(now, s, &mut buf), Ok(100));
            assert_eq!(p.server.send(now, s, &response), Ok(100));
        }
        p.pump();
        let now = p.now();
        for &c in &conns {
            assert_eq!(p.client.recv(now, c, &mut buf), Ok(100));
            p.client.close(now, c).expect("close");
        }
        p.pump();
        let now = p.now();
        for &s in &accepted {
            assert_eq!(p.server.recv(now, s, &mut buf), Ok(0), "end of stream");
            p.server.close(now, s).expect("close");
        }
        p.pump();
        p.drain_events();
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
        let now = p.now();
        assert_eq!(p.client.send(now, c, &msg), Ok(64));
        p.pump();
        let now = p.now();
        assert_eq!(p.server.recv(now, s, &mut buf), Ok(64));
        assert_eq!(p.server.send(now, s, &buf), Ok(64));
        p.pump();
        let now = p.now();
        assert_eq!(p.client.recv(now, c, &mut buf), Ok(64));
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    p.drain_events();
    times
}

/// Gigabits per second.
pub fn gbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}
