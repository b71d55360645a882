//! The relay (tun2socks): every TCP connection a catch-all listener takes from the TUN
//! device is carried to the destination its client asked for, over a kernel socket,
//! directly or through a SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929 user and password).
//!
//! What it gets right, where relays usually fail (the seed's subject):
//! - **Closes are carried exactly.** End-of-stream from one side becomes a FIN
//!   (`shutdown(Write)`) on the other while the other direction keeps flowing, so a
//!   client that half-closes after its request (HTTP/1.0, `nc -N`) still gets the whole
//!   answer; both directions done, both sockets are closed: nothing lingers in
//!   CLOSE_WAIT.
//! - **Resets are carried exactly.** A reset from the server (ECONNRESET on the kernel
//!   socket) resets the client's connection (a RST from synack), and a reset from the
//!   client closes the kernel socket with SO_LINGER 0 (a RST to the server).
//! - **Decide first** (optional): the client's SYN is answered only once the
//!   destination answered the relay's, so a refused or unreachable destination gives
//!   the client that answer (RST, ICMP unreachable) instead of a connection that is
//!   accepted and then reset.
//! - **Bounded.** Dials are bounded in time and number, relayed connections in number,
//!   an idle connection (and a half-closed one, sooner) is reset after a timeout, and
//!   never more is buffered than one copy buffer per direction.
//!
//! Routing loops are impossible when the kernel sockets cannot be routed back into the
//! TUN device: bind them to the outgoing interface (`bind_device`, SO_BINDTODEVICE) or
//! mark them (`mark`, SO_MARK) and route the mark around the device (`ip rule add
//! fwmark MARK lookup main` ahead of the rule that sends traffic to it). A SOCKS5 proxy
//! outside the captured prefixes needs neither.

use std::collections::{BTreeMap, HashMap};
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::{TcpSocket, TcpStream as KernelStream};

use crate::tokio::{Request, TcpListener, TcpStream};
use crate::{Refusal, Unreachable};

mod socks5_udp;
mod udp;

/// Where relayed connections go.
///
/// ```
/// use synack::relay::{RelayConfig, Upstream};
/// let proxy = Upstream::Socks5 {
///     proxy: "198.18.0.1:1080".parse()?,
///     auth: Some(("user".into(), "secret".into())), // sent only if the proxy asks
/// };
/// let config = RelayConfig::new(proxy.clone());
/// assert_eq!(config.upstream, proxy);
/// assert_ne!(config.upstream, Upstream::Direct);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upstream {
    /// Straight to the destination.
    Direct,
    /// Through a SOCKS5 proxy (RFC 1928 CONNECT), with a user name and password if the
    /// proxy asks for them (RFC 1929).
    Socks5 {
        /// The proxy.
        proxy: SocketAddr,
        /// User name and password.
        auth: Option<(String, String)>,
    },
}

/// How the relay works. [`RelayConfig::new`] gives the defaults.
///
/// ```
/// use std::time::Duration;
/// use synack::relay::{RelayConfig, Upstream};
/// let mut config = RelayConfig::new(Upstream::Direct);
/// assert_eq!(config.dial_timeout, Duration::from_secs(10));
/// assert_eq!(config.max_connections, 65_536);
/// assert!(!config.decide_first);
/// config.decide_first = true; // needs a decide-first listener
/// config.mark = Some(0x5a); // route the kernel sockets around the TUN device
/// config.dns = Some("198.18.0.53:53".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Where connections go.
    pub upstream: Upstream,
    /// Dial the destination before answering the client's SYN (the listener must be
    /// decide-first: [`crate::tokio::TcpListener::bind_capture`] with a `Decide`).
    pub decide_first: bool,
    /// Bind the kernel sockets to this interface (SO_BINDTODEVICE).
    pub bind_device: Option<String>,
    /// Mark the kernel sockets (SO_MARK) for policy routing.
    pub mark: Option<u32>,
    /// How long a dial may take (default 10 s).
    pub dial_timeout: Duration,
    /// A connection with no byte moved either way for this long is reset on both sides
    /// (default 10 minutes).
    pub idle_timeout: Duration,
    /// Once one direction is closed, the other is given this long without a byte
    /// moved before both are reset (default 60 s, Linux's tcp_fin_timeout): a peer that
    /// never closes its half cannot hold the relay's sockets forever.
    pub half_closed_timeout: Duration,
    /// Relayed connections at most (more are refused with a RST; default 65,536).
    pub max_connections: usize,
    /// Dials in progress at most (more are refused with a RST, or left unanswered when
    /// deciding first, so that the client's SYN retransmission asks again; default 1,024).
    pub max_pending_dials: usize,
    /// The copy buffer of each direction, in bytes (default 16 KiB).
    pub buffer_size: usize,
    /// A UDP mapping (one kernel socket per client address and port) with no datagram
    /// either way for this long is removed (default 60 s).
    pub udp_timeout: Duration,
    /// The same for DNS (datagrams to port 53; default 10 s).
    pub dns_timeout: Duration,
    /// UDP mappings at most (datagrams that would need another are dropped and
    /// counted; default 4,096).
    pub max_udp_mappings: usize,
    /// Send every DNS query (UDP to port 53) here instead of where it was sent; the
    /// answer comes back from the address the client asked.
    pub dns: Option<SocketAddr>,
}

impl RelayConfig {
    /// The defaults, relaying to `upstream`.
    pub fn new(upstream: Upstream) -> RelayConfig {
        RelayConfig {
            upstream,
            decide_first: false,
            bind_device: None,
            mark: None,
            dial_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            half_closed_timeout: Duration::from_secs(60),
            max_connections: 65_536,
            max_pending_dials: 1024,
            buffer_size: 16 * 1024,
            udp_timeout: Duration::from_secs(60),
            dns_timeout: Duration::from_secs(10),
            max_udp_mappings: 4096,
            dns: None,
        }
    }
}

/// The state of one side of a relayed connection, as `synack ss` shows it.
///
/// ```
/// use synack::relay::SideState;
/// assert_eq!(SideState::FinReceived.name(), "FIN_RECEIVED");
/// assert_eq!(SideState::Dialing.name(), "DIALING");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SideState {
    /// Being dialed (the upstream side only).
    Dialing,
    /// Both directions open.
    Open,
    /// It sent its FIN (we read end-of-stream from it).
    FinReceived,
    /// We sent it a FIN (its peer's end-of-stream).
    FinSent,
    /// FINs both ways.
    Closed,
    /// Reset (by it, or by us carrying the other side's reset).
    Reset,
}

impl SideState {
    /// The name `synack ss` prints.
    pub fn name(self) -> &'static str {
        match self {
            SideState::Dialing => "DIALING",
            SideState::Open => "OPEN",
            SideState::FinReceived => "FIN_RECEIVED",
            SideState::FinSent => "FIN_SENT",
            SideState::Closed => "CLOSED",
            SideState::Reset => "RESET",
        }
    }

    fn from_u8(v: u8) -> SideState {
        match v {
            0 => SideState::Dialing,
            1 => SideState::Open,
            2 => SideState::FinReceived,
            3 => SideState::FinSent,
            4 => SideState::Closed,
            _ => SideState::Reset,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            SideState::Dialing => 0,
            SideState::Open => 1,
            SideState::FinReceived => 2,
            SideState::FinSent => 3,
            SideState::Closed => 4,
            SideState::Reset => 5,
        }
    }
}

/// One relayed connection, as [`Relay::connections`] reports it.
///
/// ```
/// use synack::relay::{Relay, RelayConfig, Upstream};
/// let relay = Relay::new(RelayConfig::new(Upstream::Direct));
/// // What `synack ss` prints for a running relay (this one relays nothing yet).
/// for c in relay.connections() {
///     let (client, upstream) = (c.client_side.name(), c.upstream_side.name());
///     println!("{} -> {} {client}/{upstream} {} B up", c.client, c.destination, c.bytes_up);
/// }
/// assert!(relay.connections().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayedConnection {
    /// The client (the remote end of synack's connection).
    pub client: SocketAddr,
    /// The destination it asked for (the local end of synack's connection).
    pub destination: SocketAddr,
    /// The kernel socket's own address (None while dialing).
    pub upstream_local: Option<SocketAddr>,
    /// The kernel socket's peer: the destination, or the SOCKS5 proxy.
    pub upstream_peer: Option<SocketAddr>,
    /// synack's side.
    pub client_side: SideState,
    /// The kernel side.
    pub upstream_side: SideState,
    /// Bytes from the client to the destination.
    pub bytes_up: u64,
    /// Bytes from the destination to the client.
    pub bytes_down: u64,
    /// How long the dial took (None while dialing).
    pub dial_time: Option<Duration>,
    /// How long ago the relay took it.
    pub age: Duration,
}

/// The relay's counters.
///
/// ```
/// use synack::relay::{Relay, RelayConfig, RelayStats, Upstream};
/// let relay = Relay::new(RelayConfig::new(Upstream::Direct));
/// let stats = relay.stats();
/// assert_eq!(stats, RelayStats::default()); // nothing taken yet
/// assert!(stats.prometheus().contains("synack_relay_active 0"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Connections (or requests) taken from the listener.
    pub taken: u64,
    /// Connections relayed (dial and handshake both done).
    pub relayed: u64,
    /// Connections relayed now.
    pub active: u64,
    /// Dials in progress now.
    pub dialing: u64,
    /// Failed dials, by reason (`refused`, `host_unreachable`, `network_unreachable`,
    /// `timeout`, `proxy_unreachable`, `proxy_refused`, `not_allowed`, `error`).
    pub dial_failures: BTreeMap<&'static str, u64>,
    /// Refused at once: too many connections or dials.
    pub over_limit: u64,
    /// Bytes from clients to destinations, and back.
    pub bytes_up: u64,
    /// Bytes from destinations to clients.
    pub bytes_down: u64,
    /// Resets carried from the client to the destination, and the other way.
    pub resets_from_client: u64,
    /// Resets carried from the destination to the client.
    pub resets_from_upstream: u64,
    /// Connections closed cleanly (FINs both ways, both sides).
    pub closed: u64,
    /// Connections reset for being idle (or half-closed and idle) too long.
    pub timed_out: u64,
    /// UDP mappings now.
    pub udp_mappings: u64,
    /// UDP mappings made.
    pub udp_mappings_total: u64,
    /// UDP datagrams from clients sent on.
    pub udp_datagrams_up: u64,
    /// UDP datagrams carried back to clients.
    pub udp_datagrams_down: u64,
    /// DNS queries sent to the configured server instead of their destination.
    pub dns_redirected: u64,
    /// UDP datagrams not carried, by reason (`mapping_limit`, `send_failed`,
    /// `source_not_captured`, `upstream_failed`: no kernel socket or no SOCKS5 association).
    pub udp_dropped: BTreeMap<&'static str, u64>,
}

impl RelayStats {
    /// The counters in Prometheus' text exposition format (metric names `synack_relay_*`).
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP synack_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE synack_relay_{name} {kind}");
            let _ = writeln!(out, "synack_relay_{name} {v}");
        };
        metric(
            "taken_total",
            "counter",
            "Connections taken from the TUN device.",
            self.taken,
        );
        metric(
            "relayed_total",
            "counter",
            "Connections relayed.",
            self.relayed,
        );
        metric("active", "gauge", "Connections relayed now.", self.active);
        metric("dialing", "gauge", "Dials in progress.", self.dialing);
        metric(
            "over_limit_total",
            "counter",
            "Refused over the limits.",
            self.over_limit,
        );
        metric(
            "bytes_up_total",
            "counter",
            "Bytes from clients to destinations.",
            self.bytes_up,
        );
        metric(
            "bytes_down_total",
            "counter",
            "Bytes from destinations to clients.",
            self.bytes_down,
        );
        metric(
            "resets_from_client_total",
            "counter",
            "Client resets carried upstream.",
            self.resets_from_client,
        );
        metric(
            "resets_from_upstream_total",
            "counter",
            "Upstream resets carried to clients.",
            self.resets_from_upstream,
        );
        metric(
            "closed_total",
            "counter",
            "Connections closed cleanly both ways.",
            self.closed,
        );
        metric(
            "timed_out_total",
            "counter",
            "Connections reset after an idle timeout.",
            self.timed_out,
        );
        metric(
            "udp_mappings",
            "gauge",
            "UDP mappings now.",
            self.udp_mappings,
        );
        metric(
            "udp_mappings_total",
            "counter",
            "UDP mappings made.",
            self.udp_mappings_total,
        );
        metric(
            "udp_datagrams_up_total",
            "counter",
            "UDP datagrams from clients.",
            self.udp_datagrams_up,
        );
        metric(
            "udp_datagrams_down_total",
            "counter",
            "UDP datagrams to clients.",
            self.udp_datagrams_down,
        );
        metric(
            "dns_redirected_total",
            "counter",
            "DNS queries sent to --dns.",
            self.dns_redirected,
        );
        let _ = writeln!(
            out,
            "# HELP synack_relay_udp_dropped_total UDP datagrams not carried, by reason."
        );
        let _ = writeln!(out, "# TYPE synack_relay_udp_dropped_total counter");
        for (reason, n) in &self.udp_dropped {
            let _ = writeln!(
                out,
                "synack_relay_udp_dropped_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP synack_relay_dial_failures_total Failed dials, by reason."
        );
        let _ = writeln!(out, "# TYPE synack_relay_dial_failures_total counter");
        for (reason, n) in &self.dial_failures {
            let _ = writeln!(
                out,
                "synack_relay_dial_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out
    }
}

/// A relayed connection's live record (what `connections` reads).
#[derive(Debug)]
struct Entry {
    client: SocketAddr,
    destination: SocketAddr,
    upstream: Mutex<(Option<SocketAddr>, Option<SocketAddr>, Option<Duration>)>,
    client_side: AtomicU8,
    upstream_side: AtomicU8,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    since: Instant,
}

impl Entry {
    fn set(&self, client: Option<SideState>, upstream: Option<SideState>) {
        if let Some(s) = client {
            self.client_side.store(s.as_u8(), Ordering::Relaxed);
        }
        if let Some(s) = upstream {
            self.upstream_side.store(s.as_u8(), Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    stats: Mutex<RelayStats>,
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    next: AtomicU64,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut RelayStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A relay: takes connections from a catch-all listener and carries each to its
/// destination. Cheap to clone (clones share counters and the connection table).
///
/// `no_run`: it needs root (a TUN device) and the kernel's sockets towards the
/// destinations.
///
/// ```no_run
/// use synack::relay::{Relay, RelayConfig, Upstream};
/// use synack::tun::{Interface, InterfaceConfig};
/// use synack::{Capture, Decide};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut tun = InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?);
/// tun.routes.push("198.19.0.0/16".parse()?); // what the kernel sends into the device
/// let iface = Interface::open(tun)?;
/// let capture = Capture::all().prefix("198.19.0.0/16".parse()?);
/// let listener = synack::tokio::TcpListener::bind_capture(&iface, capture, Some(Decide::new()))?;
/// let mut config = RelayConfig::new(Upstream::Direct);
/// config.decide_first = true;
/// config.bind_device = Some("eth0".into()); // no routing loop back into tun0
/// let relay = Relay::new(config);
/// let watcher = relay.clone(); // shares the counters: report them elsewhere
/// relay.run(listener).await?;
/// println!("{}", watcher.stats().prometheus());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Relay {
    config: Arc<RelayConfig>,
    shared: Arc<Shared>,
}

/// Why a dial failed: the counter it goes under and the answer a deciding relay gives.
fn dial_failure(e: &io::Error) -> (&'static str, Refusal) {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ("refused", Refusal::Reset),
        io::ErrorKind::HostUnreachable => {
            ("host_unreachable", Refusal::Unreachable(Unreachable::Host))
        }
        io::ErrorKind::NetworkUnreachable => (
            "network_unreachable",
            Refusal::Unreachable(Unreachable::Network),
        ),
        io::ErrorKind::PermissionDenied => {
            ("not_allowed", Refusal::Unreachable(Unreachable::Prohibited))
        }
        io::ErrorKind::TimedOut => ("timeout", Refusal::Drop),
        _ => ("error", Refusal::Reset),
    }
}

/// A SOCKS5 reply that is not "succeeded", as the error a direct dial would have seen.
fn socks_error(e: tokio_socks::Error) -> io::Error {
    use tokio_socks::Error as S;
    let kind = match &e {
        S::ConnectionRefused => io::ErrorKind::ConnectionRefused,
        S::HostUnreachable | S::TtlExpired => io::ErrorKind::HostUnreachable,
        S::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
        S::ConnectionNotAllowedByRuleset => io::ErrorKind::PermissionDenied,
        S::Io(io) => io.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("SOCKS5: {e}"))
}

impl Relay {
    /// A relay working as `config` says.
    pub fn new(config: RelayConfig) -> Relay {
        Relay {
            config: Arc::new(config),
            shared: Arc::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// A snapshot of its counters.
    pub fn stats(&self) -> RelayStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The connections it relays now (and those it is dialing for).
    pub fn connections(&self) -> Vec<RelayedConnection> {
        let entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<RelayedConnection> = entries
            .values()
            .map(|e| {
                let (local, peer, dial) = *e.upstream.lock().unwrap_or_else(|p| p.into_inner());
                RelayedConnection {
                    client: e.client,
                    destination: e.destination,
                    upstream_local: local,
                    upstream_peer: peer,
                    client_side: SideState::from_u8(e.client_side.load(Ordering::Relaxed)),
                    upstream_side: SideState::from_u8(e.upstream_side.load(Ordering::Relaxed)),
                    bytes_up: e.bytes_up.load(Ordering::Relaxed),
                    bytes_down: e.bytes_down.load(Ordering::Relaxed),
                    dial_time: dial,
                    age: e.since.elapsed(),
                }
            })
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.age));
        v
    }

    /// Relay everything `listener` takes, each connection on a task of its own, until
    /// the listener fails (the interface closed). A decide-first relay needs a
    /// decide-first listener, and the other way round.
    pub async fn run(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            if self.config.decide_first {
                let request = listener.request().await?;
                self.take_request(request);
            } else {
                let (stream, _) = listener.accept().await?;
                self.take_stream(stream);
            }
        }
    }

    /// Whether there is room for one more relayed connection and one more dial.
    fn room(&self) -> bool {
        let stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        (stats.active + stats.dialing) < self.config.max_connections as u64
            && stats.dialing < self.config.max_pending_dials as u64
    }

    fn take_request(&self, request: Request) {
        self.shared.count(|s| s.taken += 1);
        if !self.room() {
            self.shared.count(|s| s.over_limit += 1);
            // Unanswered: the client's retransmitted SYN asks again in a second.
            let _ = request.refuse(Refusal::Drop);
            return;
        }
        let this = self.clone();
        ::tokio::spawn(async move {
            let entry = this.register(request.peer_addr(), request.local_addr());
            // The dial and the handshake (SOCKS5's included) are boxed: their state is
            // freed once done, instead of sizing the task of every idle connection.
            match Box::pin(this.dial(&entry)).await {
                Ok(upstream) => match Box::pin(request.accept()).await {
                    Ok(client) => this.relay(&entry, client, upstream).await,
                    Err(_) => {
                        // The client went away during its handshake.
                        let _ = upstream.set_zero_linger_and_drop();
                    }
                },
                Err(e) => {
                    let (_, refusal) = dial_failure(&e);
                    let _ = request.refuse(refusal);
                }
            }
            this.unregister(&entry);
        });
    }

    fn take_stream(&self, client: TcpStream) {
        self.shared.count(|s| s.taken += 1);
        let (Ok(client_addr), Ok(destination)) = (client.peer_addr(), client.local_addr()) else {
            return;
        };
        if !self.room() {
            self.shared.count(|s| s.over_limit += 1);
            let _ = client.abort();
            return;
        }
        let this = self.clone();
        ::tokio::spawn(async move {
            let entry = this.register(client_addr, destination);
            match Box::pin(this.dial(&entry)).await {
                Ok(upstream) => this.relay(&entry, client, upstream).await,
                // Already accepted: all that is left to tell the client is a reset.
                Err(_) => {
                    let _ = client.abort();
                }
            }
            this.unregister(&entry);
        });
    }

    fn register(&self, client: SocketAddr, destination: SocketAddr) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            client,
            destination,
            upstream: Mutex::new((None, None, None)),
            client_side: AtomicU8::new(SideState::Open.as_u8()),
            upstream_side: AtomicU8::new(SideState::Dialing.as_u8()),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            since: Instant::now(),
        });
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&entry));
        entry
    }

    fn unregister(&self, entry: &Arc<Entry>) {
        self.shared
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| !Arc::ptr_eq(e, entry));
    }

    /// Dial `entry`'s destination as the configuration says, within the dial timeout.
    async fn dial(&self, entry: &Entry) -> io::Result<KernelStream> {
        self.shared.count(|s| s.dialing += 1);
        let start = Instant::now();
        let r = match ::tokio::time::timeout(
            self.config.dial_timeout,
            self.dial_inner(entry.destination),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "dial timed out")),
        };
        self.shared.count(|s| {
            s.dialing -= 1;
            if let Err(e) = &r {
                *s.dial_failures.entry(dial_failure(e).0).or_default() += 1;
            }
        });
        if let Ok(stream) = &r {
            *entry.upstream.lock().unwrap_or_else(|e| e.into_inner()) = (
                stream.local_addr().ok(),
                stream.peer_addr().ok(),
                Some(start.elapsed()),
            );
            entry.set(None, Some(SideState::Open));
        }
        r
    }

    async fn dial_inner(&self, destination: SocketAddr) -> io::Result<KernelStream> {
        match &self.config.upstream {
            Upstream::Direct => self.kernel_connect(destination).await,
            Upstream::Socks5 { proxy, auth } => {
                let socket = self.kernel_connect(*proxy).await.map_err(|e| {
                    let kind = match e.kind() {
                        io::ErrorKind::TimedOut => io::ErrorKind::TimedOut,
                        _ => io::ErrorKind::Other,
                    };
                    io::Error::new(kind, format!("SOCKS5 proxy {proxy} unreachable: {e}"))
                })?;
                let stream = match auth {
                    None => {
                        tokio_socks::tcp::Socks5Stream::connect_with_socket(socket, destination)
                            .await
                    }
                    Some((user, pass)) => {
                        tokio_socks::tcp::Socks5Stream::connect_with_password_and_socket(
                            socket,
                            destination,
                            user,
                            pass,
                        )
                        .await
                    }
                }
                .map_err(socks_error)?;
                Ok(stream.into_inner())
            }
        }
    }

    /// A kernel socket to `to`, bound to the device or marked as configured.
    async fn kernel_connect(&self, to: SocketAddr) -> io::Result<KernelStream> {
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(device) = &self.config.bind_device {
            socket.bind_device(Some(device.as_bytes()))?;
        }
        if let Some(mark) = self.config.mark {
            socket2::SockRef::from(&socket).set_mark(mark)?;
        }
        let stream = socket.connect(to).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Copy both ways until both directions are closed, a side resets, or the
    /// connection stays idle too long.
    async fn relay(&self, entry: &Entry, mut client: TcpStream, mut upstream: KernelStream) {
        self.shared.count(|s| {
            s.relayed += 1;
            s.active += 1;
        });
        let _ = client.set_nodelay(true);
        let mut up = Half::new(self.config.buffer_size);
        let mut down = Half::new(self.config.buffer_size);
        let mut last_moved = Instant::now();
        let mut sleep = Box::pin(::tokio::time::sleep(self.config.idle_timeout));
        let outcome = poll_fn(|cx| {
            let (before_up, before_down) = (up.bytes, down.bytes);
            let r_up = up.poll(cx, Pin::new(&mut client), Pin::new(&mut upstream));
            let r_down = down.poll(cx, Pin::new(&mut upstream), Pin::new(&mut client));
            entry.bytes_up.store(up.bytes, Ordering::Relaxed);
            entry.bytes_down.store(down.bytes, Ordering::Relaxed);
            entry.set(
                Some(side_state(up.read_done, down.shut_done)),
                Some(side_state(down.read_done, up.shut_done)),
            );
            // A failure on either side ends the relay: carry it to the other.
            match (r_up, r_down) {
                (Poll::Ready(Err(Fail::Read(_))), _) | (_, Poll::Ready(Err(Fail::Write(_)))) => {
                    return Poll::Ready(Outcome::ClientReset);
                }
                (_, Poll::Ready(Err(Fail::Read(_)))) | (Poll::Ready(Err(Fail::Write(_))), _) => {
                    return Poll::Ready(Outcome::UpstreamReset);
                }
                (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => return Poll::Ready(Outcome::Closed),
                _ => {}
            }
            let half_closed = up.shut_done || down.shut_done;
            let timeout = if half_closed {
                self.config
                    .half_closed_timeout
                    .min(self.config.idle_timeout)
            } else {
                self.config.idle_timeout
            };
            if up.bytes != before_up || down.bytes != before_down {
                last_moved = Instant::now();
            }
            let deadline = ::tokio::time::Instant::from_std(last_moved + timeout);
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Outcome::Idle),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        self.shared.count(|s| {
            s.active -= 1;
            s.bytes_up += up.bytes;
            s.bytes_down += down.bytes;
            match outcome {
                Outcome::Closed => s.closed += 1,
                Outcome::ClientReset => s.resets_from_client += 1,
                Outcome::UpstreamReset => s.resets_from_upstream += 1,
                Outcome::Idle => s.timed_out += 1,
            }
        });
        match outcome {
            // Both FINs went both ways: dropping closes both sockets cleanly.
            Outcome::Closed => entry.set(Some(SideState::Closed), Some(SideState::Closed)),
            Outcome::ClientReset => {
                entry.set(Some(SideState::Reset), Some(SideState::Reset));
                let _ = client.abort();
                let _ = upstream.set_zero_linger_and_drop();
            }
            Outcome::UpstreamReset | Outcome::Idle => {
                entry.set(Some(SideState::Reset), Some(SideState::Reset));
                let _ = client.abort();
                let _ = upstream.set_zero_linger_and_drop();
            }
        }
    }
}

/// The state of a side from what we read from it and whether we sent it our FIN.
fn side_state(read_done: bool, shut_done: bool) -> SideState {
    match (read_done, shut_done) {
        (false, false) => SideState::Open,
        (true, false) => SideState::FinReceived,
        (false, true) => SideState::FinSent,
        (true, true) => SideState::Closed,
    }
}

/// How a relayed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Closed,
    ClientReset,
    UpstreamReset,
    Idle,
}

/// Which end of a direction failed.
#[derive(Debug)]
enum Fail {
    Read(#[allow(dead_code)] io::Error),
    Write(#[allow(dead_code)] io::Error),
}

/// A stream that can say it has something to read without being read: a direction
/// waits that way, holding no buffer while its connection is idle.
trait ReadReady {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl ReadReady for KernelStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        KernelStream::poll_read_ready(self, cx)
    }
}

/// One direction of a relayed connection: read into a buffer, write it out, and at
/// end-of-stream shut the writer down (a FIN), so that the other direction goes on. The
/// buffer exists only while bytes are on their way: an idle connection holds none (with
/// 10,000 idle connections and 16 KiB buffers, 320 MB less).
struct Half {
    buf: Option<Box<[u8]>>,
    size: usize,
    pos: usize,
    end: usize,
    read_done: bool,
    shut_done: bool,
    bytes: u64,
}

impl Half {
    fn new(size: usize) -> Half {
        Half {
            buf: None,
            size: size.max(1),
            pos: 0,
            end: 0,
            read_done: false,
            shut_done: false,
            bytes: 0,
        }
    }

    /// Move what can be moved now; Ready(Ok) once end-of-stream is carried across.
    fn poll<R: AsyncRead + ReadReady + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<Result<(), Fail>> {
        loop {
            if self.shut_done {
                return Poll::Ready(Ok(()));
            }
            if let (true, Some(buf)) = (self.pos < self.end, &self.buf) {
                let n = match writer.as_mut().poll_write(cx, &buf[self.pos..self.end]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(Fail::Write(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Fail::Write(e))),
                    Poll::Pending => return Poll::Pending,
                };
                self.pos += n;
                self.bytes += n as u64;
                continue;
            }
            if self.read_done {
                return match writer.as_mut().poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        self.shut_done = true;
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(Fail::Write(e))),
                    Poll::Pending => Poll::Pending,
                };
            }
            if self.buf.is_none() {
                // Idle: wait for something to read before taking a buffer.
                match reader.as_ref().get_ref().poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Fail::Read(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let size = self.size;
            let buf = self
                .buf
                .get_or_insert_with(|| vec![0; size].into_boxed_slice());
            let mut rb = ReadBuf::new(buf);
            match reader.as_mut().poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        self.read_done = true;
                        self.buf = None;
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Fail::Read(e))),
                Poll::Pending => {
                    // Nothing after all (the burst is over): give the buffer back.
                    self.buf = None;
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Closing a kernel socket with a RST.
trait ZeroLinger {
    fn set_zero_linger_and_drop(self) -> io::Result<()>;
}

impl ZeroLinger for KernelStream {
    /// SO_LINGER with a zero timeout, then close: the kernel sends a RST, not a FIN.
    fn set_zero_linger_and_drop(self) -> io::Result<()> {
        socket2::SockRef::from(&self).set_linger(Some(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_failures_map_to_the_answer_a_direct_connect_would_have_seen() {
        let kind = |k| dial_failure(&io::Error::from(k));
        assert_eq!(
            kind(io::ErrorKind::ConnectionRefused),
            ("refused", Refusal::Reset)
        );
        assert_eq!(
            kind(io::ErrorKind::HostUnreachable),
            ("host_unreachable", Refusal::Unreachable(Unreachable::Host))
        );
        assert_eq!(kind(io::ErrorKind::TimedOut), ("timeout", Refusal::Drop));
        let socks = socks_error(tokio_socks::Error::ConnectionRefused);
        assert_eq!(dial_failure(&socks).1, Refusal::Reset);
        let socks = socks_error(tokio_socks::Error::NetworkUnreachable);
        assert_eq!(
            dial_failure(&socks).1,
            Refusal::Unreachable(Unreachable::Network)
        );
    }
}
