//! The stage every scenario plays on: a client (198.18.0.1) and a server (198.18.0.2)
//! joined by a simulated link, with helpers to script both applications and to record
//! the trace.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::ScenarioOptions;
use crate::sim::{HostId, LinkConfig, Network};
use crate::trace::Trace;
use crate::{Config, ConnectionHandle, Error, Event, Instant, ListenerHandle, Stack, TcpState};

/// Index of the client in traces.
pub const CLIENT: usize = 0;
/// Index of the server in traces.
pub const SERVER: usize = 1;

/// Two hosts, a link, and everything that happened so far.
///
/// A scenario of your own: the server answers, the client reads to the end.
///
/// ```
/// use std::time::Duration;
/// use synack::scenario::{ScenarioOptions, World, CLIENT, SERVER};
/// let mut world = World::new(&ScenarioOptions::default());
/// let listener = world.listen();
/// let client = world.connect(World::server_addr());
/// let server = world.accept(listener, Duration::from_secs(5)).expect("accepted");
/// world.send_all(SERVER, server, b"hello")?;
/// world.close(SERVER, server);
/// let (got, eof) = world.read_to_end(CLIENT, client, Duration::from_secs(5));
/// assert_eq!((got.as_slice(), eof), (&b"hello"[..], true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct World {
    /// The network (its hosts are the two stacks).
    pub net: Network<Stack>,
    /// The client host.
    pub client: HostId,
    /// The server host.
    pub server: HostId,
    /// Every event of each host, in order.
    pub events: [Vec<Event>; 2],
    trace: Trace,
}

impl World {
    /// The client and server stacks, joined by a link with the options' delay, loss and
    /// reordering. Every segment is ACKed and sent at once (no delayed ACK, no Nagle) so
    /// that each ladder shows every ACK and each write as its own segment.
    pub fn new(opts: &ScenarioOptions) -> World {
        World::with_config(
            opts,
            Config {
                delayed_ack: Duration::ZERO,
                tcp_nodelay: true,
                ..Config::default()
            },
        )
    }

    /// Like [`World::new`] with a custom stack configuration (for both hosts).
    pub fn with_config(opts: &ScenarioOptions, config: Config) -> World {
        let mut net = Network::new(opts.seed);
        let mut c = Stack::new(Config {
            secrets: crate::Secrets::Deterministic(opts.seed),
            ..config.clone()
        });
        c.add_address(Self::client_ip());
        let mut s = Stack::new(Config {
            secrets: crate::Secrets::Deterministic(opts.seed.wrapping_mul(31).wrapping_add(7)),
            ..config
        });
        s.add_address(Self::server_ip());
        let client = net.add_host("client", &[Self::client_ip()], c);
        let server = net.add_host("server", &[Self::server_ip()], s);
        let link = LinkConfig {
            delay: opts.delay,
            loss: (opts.loss_pct / 100.0).clamp(0.0, 1.0),
            reorder: (opts.reorder_pct / 100.0).clamp(0.0, 1.0),
            reorder_delay: opts.delay,
            ..LinkConfig::default()
        };
        net.set_link_both(client, server, link);
        World {
            net,
            client,
            server,
            events: [Vec::new(), Vec::new()],
            trace: Trace::new(&["client", "server"]),
        }
    }

    /// 198.18.0.1
    pub fn client_ip() -> IpAddr {
        IpAddr::from([198, 18, 0, 1])
    }

    /// 198.18.0.2
    pub fn server_ip() -> IpAddr {
        IpAddr::from([198, 18, 0, 2])
    }

    /// The server's port-80 address.
    pub fn server_addr() -> SocketAddr {
        SocketAddr::new(Self::server_ip(), 80)
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The stack of `host` (CLIENT or SERVER).
    pub fn stack(&mut self, host: usize) -> &mut Stack {
        let id = if host == CLIENT {
            self.client
        } else {
            self.server
        };
        self.net.host_mut(id)
    }

    /// The server listens on port 80.
    pub fn listen(&mut self) -> ListenerHandle {
        self.stack(SERVER)
            .listen(Self::server_addr(), 16)
            .expect("the server's port 80 is free")
    }

    /// The client connects to `remote` now.
    pub fn connect(&mut self, remote: SocketAddr) -> ConnectionHandle {
        let now = self.now();
        let h = self
            .stack(CLIENT)
            .connect(now, remote)
            .expect("the client has an address and free ports");
        self.after_call();
        h
    }

    /// Drain events after an application call and put new segments on the wire.
    pub fn after_call(&mut self) {
        for host in [CLIENT, SERVER] {
            while let Some(e) = self.stack(host).poll_event() {
                self.trace.add_event(host, &e);
                self.events[host].push(e);
            }
        }
        self.net.flush();
    }

    /// Process one network event; false when nothing is pending.
    pub fn step(&mut self) -> bool {
        let more = self.net.step();
        self.after_call();
        more
    }

    /// Step until `done` holds (true) or `limit` of virtual time passes (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            match self.net.next_event_time() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.net.run_until(end);
                    self.after_call();
                    return done(self);
                }
            }
        }
    }

    /// Let `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now() + d;
        self.net.run_until(end);
        self.after_call();
    }

    /// Accept the next connection on `l`, running the network until one is ready.
    pub fn accept(&mut self, l: ListenerHandle, limit: Duration) -> Option<ConnectionHandle> {
        let mut got = None;
        self.run_until(limit, |w| {
            got = w.stack(SERVER).accept(l).ok();
            got.is_some()
        });
        got
    }

    /// Wait until `conn` of `host` is ESTABLISHED (or fails).
    pub fn wait_established(
        &mut self,
        host: usize,
        conn: ConnectionHandle,
        limit: Duration,
    ) -> bool {
        self.run_until(limit, |w| {
            !matches!(
                w.stack(host).state(conn),
                Ok(TcpState::SynSent | TcpState::SynReceived)
            )
        });
        self.stack(host)
            .state(conn)
            .is_ok_and(|s| s.is_synchronized())
    }

    /// Write all of `data`, running the network while the send buffer is full.
    pub fn send_all(
        &mut self,
        host: usize,
        conn: ConnectionHandle,
        data: &[u8],
    ) -> Result<(), Error> {
        let mut sent = 0;
        while sent < data.len() {
            let now = self.now();
            match self.stack(host).send(now, conn, &data[sent..]) {
                Ok(n) => sent += n,
                Err(Error::WouldBlock) => {
                    if !self.step() {
                        return Err(Error::WouldBlock);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.after_call();
        Ok(())
    }

    /// Read until `want` bytes or end-of-stream arrive, within `limit`; returns the bytes
    /// and whether end-of-stream was seen.
    pub fn read(
        &mut self,
        host: usize,
        conn: ConnectionHandle,
        want: usize,
        limit: Duration,
    ) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut eof = false;
        self.run_until(limit, |w| {
            let mut buf = [0u8; 4096];
            loop {
                let now = w.now();
                match w.stack(host).recv(now, conn, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            eof || got.len() >= want
        });
        self.after_call();
        (got, eof)
    }

    /// Read everything up to end-of-stream.
    pub fn read_to_end(
        &mut self,
        host: usize,
        conn: ConnectionHandle,
        limit: Duration,
    ) -> (Vec<u8>, bool) {
        self.read(host, conn, usize::MAX, limit)
    }

    /// Close `conn` of `host` now.
    pub fn close(&mut self, host: usize, conn: ConnectionHandle) {
        let now = self.now();
        let _ = self.stack(host).close(now, conn);
        self.after_call();
    }

    /// The state of the connection `local`-`remote` on `host` (None: gone).
    pub fn state_of(
        &mut self,
        host: usize,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<TcpState> {
        self.stack(host).state_of(local, remote)
    }

    /// The error events `host` received.
    pub fn errors(&self, host: usize) -> Vec<Error> {
        self.events[host]
            .iter()
            .filter_map(|e| match e {
                Event::Error { error, .. } => Some(*error),
                _ => None,
            })
            .collect()
    }

    /// Add a note to the trace at the current time.
    pub fn note(&mut self, host: usize, text: impl Into<String>) {
        let now = self.now();
        self.trace.add_note(now, host, text);
    }

    /// The trace so far (packets included), sorted.
    pub fn trace(&self) -> Trace {
        let mut t = self.trace.clone();
        t.add_packets(self.net.log());
        t.sort();
        t
    }
}
