//! The [`Stack`]: owns addresses, listeners and connections, demultiplexes arriving
//! packets to them, and hands out what they want to send. Sans-IO: every call takes
//! `now` from the caller, nothing here reads a clock or touches a device.
//!
//! The data path: [`Stack::receive`] parses (`wire`); a fragment goes to the reassembler
//! (`fragments.rs`) and, once its datagram is whole, on as that one packet. A TCP segment
//! finds its connection by 4-tuple (else the TIME_WAIT table, else a listener, else
//! answers with RST) and goes to [`crate::tcp`], then `after_activity` turns what the
//! connection did into events, queued transmissions and timer entries. Application
//! calls end the same way.
//!
//! Here: the `Stack` itself, its bookkeeping after activity, and the sans-IO loop
//! (`poll_transmit`, `poll_timeout`, `on_timeout`, `poll_event`). `input.rs` has the
//! packets in, `listen.rs` the listen path with SYN cookies, `api.rs` the
//! application's calls.
//!
//! # A complete driver
//!
//! Two stacks in two threads on the wall clock, joined by channels: the loop any
//! driver runs (`docs/embedding.md` explains each step), with an echo server and a
//! client as its applications.
//!
//! ```
//! use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
//! use synack::{Config, Event, Instant, Stack, TcpState};
//!
//! /// The device: IP packets in and out. Here a channel to the other stack; in a real
//! /// driver a TUN file descriptor, a raw socket, a VPN tunnel...
//! struct Device {
//!     rx: Receiver<Vec<u8>>,
//!     tx: Sender<Vec<u8>>,
//! }
//!
//! /// Drive `stack` on the wall clock until `app` returns false or the device is gone.
//! /// `app` sees every event and may call into the stack (accept, send, recv, close...).
//! fn run(
//!     stack: &mut Stack,
//!     device: &Device,
//!     start: std::time::Instant,
//!     mut app: impl FnMut(&mut Stack, Instant, Event) -> bool,
//! ) {
//!     // synack's clock: microseconds since an origin the driver chose.
//!     let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
//!     let mut buf = vec![0u8; stack.max_packet_size()];
//!     let mut running = true;
//!     while running {
//!         // 1. After every call into the stack: drain its events and its packets, until
//!         //    neither is left (the application's calls may make more of both).
//!         loop {
//!             let t = now();
//!             let mut busy = false;
//!             while let Some(event) = stack.poll_event() {
//!                 busy = true;
//!                 running &= app(stack, t, event);
//!             }
//!             while let Some(tx) = stack.poll_transmit_into(t, &mut buf) {
//!                 busy = true;
//!                 let _ = device.tx.send(buf[..tx.len].to_vec());
//!             }
//!             if !busy {
//!                 break;
//!             }
//!         }
//!         if !running {
//!             break;
//!         }
//!         // 2. Sleep until the next packet or the stack's next deadline.
//!         let packet = match stack.poll_timeout() {
//!             Some(at) => match device.rx.recv_timeout(at - now()) {
//!                 Ok(packet) => Some(packet),
//!                 Err(RecvTimeoutError::Timeout) => None,
//!                 Err(RecvTimeoutError::Disconnected) => return,
//!             },
//!             None => match device.rx.recv() {
//!                 Ok(packet) => Some(packet),
//!                 Err(_) => return,
//!             },
//!         };
//!         // 3. Feed in what happened: the packet, and the timers that are due.
//!         let t = now();
//!         if let Some(packet) = packet {
//!             stack.receive(t, &packet);
//!         }
//!         if stack.poll_timeout().is_some_and(|at| at <= t) {
//!             stack.on_timeout(t);
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Two stacks, each in its own thread, joined by two channels.
//! let (to_server, from_client) = channel();
//! let (to_client, from_server) = channel();
//! let mut server = Stack::new(Config::default());
//! server.add_address("198.18.0.2".parse()?);
//! let mut client = Stack::new(Config::default());
//! client.add_address("198.18.0.1".parse()?);
//! let start = std::time::Instant::now();
//!
//! // An echo server: it sends back what it reads and closes when the client has.
//! server.listen("198.18.0.2:7".parse()?, 128)?;
//! let server_device = Device { rx: from_client, tx: to_client };
//! let server_thread = std::thread::spawn(move || {
//!     run(&mut server, &server_device, start, |stack, now, event| {
//!         match event {
//!             Event::Incoming(listener) => while stack.accept(listener).is_ok() {},
//!             Event::Readable(conn) => {
//!                 let mut buf = [0u8; 1500];
//!                 loop {
//!                     match stack.recv(now, conn, &mut buf) {
//!                         Ok(0) => {
//!                             let _ = stack.close(now, conn);
//!                             return false; // one connection, then done
//!                         }
//!                         Ok(n) => {
//!                             let _ = stack.send(now, conn, &buf[..n]);
//!                         }
//!                         Err(_) => break, // WouldBlock: wait for the next event
//!                     }
//!                 }
//!             }
//!             _ => {}
//!         }
//!         true
//!     })
//! });
//!
//! // A client: connect, send, half-close, read the echo to the end.
//! let conn = client.connect(Instant::from_micros(start.elapsed().as_micros() as u64), "198.18.0.2:7".parse()?)?;
//! let client_device = Device { rx: from_server, tx: to_server };
//! let mut echo = Vec::new();
//! run(&mut client, &client_device, start, |stack, now, event| {
//!     match event {
//!         Event::Connected(c) => {
//!             let _ = stack.send(now, c, b"hello");
//!             let _ = stack.shutdown(now, c);
//!         }
//!         Event::Readable(c) => {
//!             let mut buf = [0u8; 1500];
//!             while let Ok(n) = stack.recv(now, c, &mut buf) {
//!                 if n == 0 {
//!                     let _ = stack.close(now, c);
//!                     break;
//!                 }
//!                 echo.extend_from_slice(&buf[..n]);
//!             }
//!         }
//!         // Both FINs are acknowledged: this side's work is done.
//!         Event::StateChanged { conn: c, to: TcpState::TimeWait, .. } if c == conn => return false,
//!         _ => {}
//!     }
//!     true
//! });
//! server_thread.join().unwrap();
//! assert_eq!(echo, b"hello");
//! # Ok(())
//! # }
//! ```

mod api;
mod capture;
mod event;
mod fragments;
mod icmp;
mod index;
mod input;
mod keyed;
mod listen;
mod md5;
mod ports;
mod requests;
mod stats;
mod tables;
mod time_wait_table;
mod tx_reports;
mod udp;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

pub use crate::config::{Config, SendAccounting};
pub use crate::error::Error;
pub use crate::secrets::Secrets;
pub use crate::tcp::CongestionControl;
pub use capture::{Capture, IpNet};
pub use event::Event;
pub use md5::Md5Key;
pub use requests::{ConnectionRequest, Decide, Refusal, RequestHandle, Unreachable};
pub use stats::StackStats;
pub use tx_reports::{SendReport, TimestampKind, TxReport, TxTimestamps};
pub use udp::{Datagram, UdpHandle, UdpSnapshot};

/// One socket of [`Stack::snapshot`].
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
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let snapshot = server.snapshot(now);
/// assert_eq!(snapshot.len(), 1);
/// assert_eq!(snapshot[0].state, TcpState::Listen);
/// assert_eq!(snapshot[0].remote, None);
/// assert_eq!(snapshot[0].send_q, 128); // a listener's backlog
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketSnapshot {
    /// Its state.
    pub state: TcpState,
    /// Local address.
    pub local: SocketAddr,
    /// Peer address (None for a listener).
    pub remote: Option<SocketAddr>,
    /// Bytes received and not read (a listener: connections waiting to be accepted).
    pub recv_q: usize,
    /// Bytes not yet acknowledged (a listener: its backlog).
    pub send_q: usize,
    /// Time to the next timer (retransmission, probe, keepalive, delayed ACK,
    /// FIN_WAIT_2 timeout, TIME_WAIT expiry).
    pub timer: Option<core::time::Duration>,
    /// How long it has been in this state (None for listeners).
    pub age: Option<core::time::Duration>,
    /// TCP_INFO-like statistics of a connection.
    pub info: Option<crate::tcp::ConnectionInfo>,
    /// A lifecycle diagnostic, when the socket is stuck (CLOSE_WAIT, FIN_WAIT_1,
    /// FIN_WAIT_2 past their thresholds), in the words of [`Event::Warning`].
    pub warning: Option<String>,
}

/// One line of [`Stack::state_summary`].
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
/// use synack::StateSummary;
/// server.listen("198.18.0.2:80".parse()?, 128)?;
/// client.connect(now, "198.18.0.2:80".parse()?)?;
/// client.connect(now, "198.18.0.2:80".parse()?)?;
/// pump(now, &mut client, &mut server);
/// // Of one stack, or of several (a multi-queue interface adds its stacks up).
/// let mut sockets = client.snapshot(now);
/// sockets.extend(server.snapshot(now));
/// let summary = StateSummary::of(&sockets);
/// let count = |state| summary.iter().find(|s| s.state == state).map_or(0, |s| s.count);
/// assert_eq!((count(TcpState::Established), count(TcpState::Listen)), (4, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateSummary {
    /// The state.
    pub state: TcpState,
    /// Sockets in it.
    pub count: usize,
    /// How long the oldest has been in it.
    pub oldest: Option<core::time::Duration>,
}

impl StateSummary {
    /// Per state, from a list of sockets (of one stack or several).
    pub fn of(sockets: &[SocketSnapshot]) -> Vec<StateSummary> {
        let mut out: Vec<StateSummary> = Vec::new();
        for s in sockets {
            match out.iter_mut().find(|x| x.state == s.state) {
                Some(x) => {
                    x.count += 1;
                    x.oldest = x.oldest.max(s.age);
                }
                None => out.push(StateSummary {
                    state: s.state,
                    count: 1,
                    oldest: s.age,
                }),
            }
        }
        out
    }
}

/// Socket options of a listener that its accepted connections inherit
/// ([`Stack::set_listener_options`]); None keeps the stack's default.
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
/// use synack::ListenerOptions;
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let mut options = ListenerOptions::default(); // every field None: the stack's defaults
/// options.recv_buffer = Some(1 << 20);
/// server.set_listener_options(listener, options)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// TCP_MAXSEG: the MSS announced in the SYN-ACK and the largest segment sent.
    pub mss: Option<u16>,
    /// SO_RCVBUF (bytes kept, as Linux reports it): the window and the window scale offered.
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF.
    pub send_buffer: Option<usize>,
    /// TCP_NODELAY.
    pub nodelay: Option<bool>,
    /// TCP_USER_TIMEOUT (RFC 5482).
    pub user_timeout: Option<core::time::Duration>,
    /// Decide first: SYNs are held and reported as connection requests
    /// ([`Event::Request`], [`Stack::take_request`]) instead of being answered; the
    /// application accepts or refuses each ([`Stack::accept_request`],
    /// [`Stack::refuse_request`]). None: answered at once, as usual.
    pub decide: Option<Decide>,
    /// TCP_FASTOPEN: how many Fast Open children (RFC 7413 4.2.2: connections made from
    /// a SYN with data, before their handshake completes) the listener holds; 0 turns
    /// Fast Open off. None: as `Config::tcp_fastopen` says (its 0x400 bit gives every
    /// listener a queue as long as its backlog). Needs `Config::tcp_fastopen & 0x2`.
    pub fastopen_queue: Option<u32>,
    /// TCP_FASTOPEN_KEY: this listener's cookie key (None: the stack's,
    /// [`Stack::set_fastopen_key`]).
    pub fastopen_key: Option<[u8; 16]>,
    /// TCP_FASTOPEN_NO_COOKIE: accept data in a SYN without a cookie.
    pub fastopen_no_cookie: bool,
}

use crate::tcp::{ConnEvent, Connection, IsnGenerator, MemoryLevel, Outgoing, SynCookies};
use crate::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use crate::{Instant, TcpState};
use fragments::Reassembler;
use ports::PortAllocator;
use tables::{FourTuple, Listener, Slot, TimerQueue};
use time_wait_table::TimeWaitTable;

/// Names one connection of a [`Stack`]. Cheap to copy; stale handles are detected.
///
/// A handle is valid while the application owns its connection: from `connect` or
/// `accept` until `close` or `abort`. A connection that ends on its own (reset, timed
/// out) keeps its handle, in CLOSED with its error, until the application closes it.
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
/// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// # pump(now, &mut client, &mut server);
/// # let accepted = server.accept(listener)?;
/// # while client.poll_event().is_some() {}
/// # while server.poll_event().is_some() {}
/// let (local, remote) = (client.local_addr(conn)?, client.peer_addr(conn)?);
/// client.abort(now, conn)?;
/// // The connection is gone; its slot may be reused, but this handle stays stale.
/// assert_eq!(client.state(conn), Err(Error::InvalidHandle));
/// let again = client.connect_from(now, local, remote)?;
/// assert_ne!(again, conn);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Names one listening socket of a [`Stack`].
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
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// server.close_listener(now, listener)?;
/// assert_eq!(server.accept(listener), Err(Error::InvalidHandle));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerHandle(pub(crate) u32);

/// How long after a listener last sent a SYN cookie its cookies are still checked
/// (Linux's TCP_SYNCOOKIE_VALID: two minutes, the life of a cookie).
const COOKIE_LIFETIME: core::time::Duration = core::time::Duration::from_secs(120);

/// Most control packets (RSTs, TIME_WAIT ACKs) waiting for `poll_transmit`; more are dropped.
const CTL_QUEUE_LIMIT: usize = 4096;

/// A user-space TCP/IP stack: one host's TCP.
///
/// A `Stack` is one-threaded state with no I/O of its own: every call takes the time
/// (`now`) from the caller, and what the stack wants done comes back from
/// [`Stack::poll_transmit`] (packets to send), [`Stack::poll_event`] (what happened) and
/// [`Stack::poll_timeout`] (when to call [`Stack::on_timeout`]). After every call into it,
/// drain `poll_transmit` and `poll_event`; then sleep until the next packet or the
/// deadline. The [module documentation](crate::stack) has a complete driver on the wall
/// clock, and `docs/embedding.md` the whole contract.
///
/// `Stack` is `Send` but not `Sync` (a driver thread may own it, or a `Mutex` may share
/// it, as `synack::tun` does) and keeps no references between calls.
///
/// # Examples
///
/// Two stacks joined by a function that carries each one's packets to the other, on a
/// clock that never moves: a handshake, a request, and the connection's events.
///
/// ```
/// use synack::{Config, Event, Instant, Stack, TcpState};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut client = Stack::new(Config::default());
/// client.add_address("198.18.0.1".parse()?);
/// let mut server = Stack::new(Config::default());
/// server.add_address("198.18.0.2".parse()?);
///
/// // The wire: until both are quiet, what one sends the other receives.
/// fn wire(now: Instant, a: &mut Stack, b: &mut Stack) {
///     loop {
///         let mut quiet = true;
///         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
///         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
///         if quiet { break; }
///     }
/// }
///
/// let now = Instant::ZERO;
/// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// client.send(now, conn, b"GET / HTTP/1.0\r\n\r\n")?; // queued behind the SYN
/// wire(now, &mut client, &mut server); // SYN, SYN-ACK, ACK with the request
///
/// let accepted = server.accept(listener)?;
/// let mut buf = [0u8; 64];
/// let n = server.recv(now, accepted, &mut buf)?;
/// assert_eq!(&buf[..n], b"GET / HTTP/1.0\r\n\r\n");
///
/// let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
/// assert!(events.contains(&Event::Connected(conn)));
/// assert!(events.iter().any(|e| matches!(e, Event::StateChanged { to: TcpState::Established, .. })));
/// # fn send<T: Send>() {}
/// # fn send_sync<T: Send + Sync>() {}
/// # send::<Stack>();
/// # send_sync::<(synack::ConnectionHandle, synack::ListenerHandle, Event, synack::Error, Config, Instant)>();
/// # Ok(())
/// # }
/// ```
pub struct Stack {
    config: Config,
    addresses: Vec<IpAddr>,
    isn: IsnGenerator,
    cookies: SynCookies,
    ports: PortAllocator,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    /// Slots holding a connection (what `Config::max_connections` bounds).
    live_connections: usize,
    /// Orphans (closed by the application, still closing), and the order they became
    /// orphans in (stale entries are skipped): the oldest is reset first.
    orphans: usize,
    orphan_queue: VecDeque<(u32, u32)>,
    /// Bytes in all connections' buffers, and the level that makes against `tcp_mem`.
    memory: usize,
    memory_level: MemoryLevel,
    /// The ECN field of the packet being processed (RFC 3168), for its connection.
    rx_ecn: wire::Ecn,
    by_tuple: index::ConnectionIndex,
    listeners: Vec<Option<Listener>>,
    /// Catch-all listeners, in the order they were opened.
    capturing: Vec<u32>,
    /// SYNs decide-first listeners hold for the application.
    requests: requests::Requests,
    /// UDP sockets and their output.
    udp: udp::UdpTable,
    time_wait: TimeWaitTable,
    fragments: Reassembler,
    timers: TimerQueue,
    tx_ready: VecDeque<u32>,
    /// Connections whose emptied buffers hold storage to give back, and when (in order:
    /// every entry is `IDLE_RELEASE` after the activity that queued it).
    idle_release: VecDeque<(Instant, u32, u32)>,
    ctl_out: VecDeque<Vec<u8>>,
    /// Where `poll_transmit` builds a packet before copying it out (empty until used).
    tx_scratch: Vec<u8>,
    /// Lists a connection fills while the stack calls it, lent to each in turn.
    scratch: tables::Scratch,
    events: VecDeque<Event>,
    stats: StackStats,
    /// TCP Fast Open: the cookie keys (server) and the cookie cache (client).
    fastopen_keys: crate::tcp::fastopen::CookieKeys,
    fastopen_cache: crate::tcp::fastopen::ClientCache,
    /// TCP-MD5 (RFC 2385): made when the first key is set; None, nothing is looked up.
    md5: Option<Box<md5::Md5State>>,
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("addresses", &self.addresses)
            .field("connections", &self.by_tuple.len())
            .field("time_wait", &self.time_wait.len())
            .field("fragment_queues", &self.fragments.len())
            .finish()
    }
}

impl Stack {
    /// A stack with no addresses yet; see [`Stack::add_address`].
    ///
    /// Its secret keys are drawn now, as [`Config::secrets`] says: by default from the
    /// operating system's random source, so every stack has its own.
    ///
    /// # Panics
    /// If the operating system's random source fails (see [`Secrets::Random`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use synack::{Config, Stack};
    /// let mut config = Config::default();
    /// config.mtu = 9000;
    /// config.tcp_nodelay = true;
    /// let stack = Stack::new(config);
    /// assert_eq!(stack.config().mtu, 9000);
    /// assert!(stack.addresses().is_empty()); // give it one with add_address
    /// ```
    pub fn new(config: Config) -> Stack {
        let keys = crate::secrets::Keys::new(config.secrets);
        let maps = keyed::Keyed::new(keys.maps);
        Stack {
            fastopen_keys: crate::tcp::fastopen::CookieKeys {
                primary: keys.fastopen,
                backup: None,
            },
            fastopen_cache: Default::default(),
            isn: IsnGenerator::new(keys.isn, keys.ts_offset),
            cookies: SynCookies::new(keys.syncookie),
            live_connections: 0,
            orphans: 0,
            orphan_queue: VecDeque::new(),
            memory: 0,
            memory_level: MemoryLevel::Normal,
            rx_ecn: wire::Ecn::NotEct,
            ports: PortAllocator::new(keys.ports),
            time_wait: TimeWaitTable::new(keys.time_wait),
            fragments: Reassembler::new(maps),
            config,
            addresses: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_tuple: index::ConnectionIndex::new(keys.connections),
            listeners: Vec::new(),
            capturing: Vec::new(),
            requests: requests::Requests::new(maps),
            udp: udp::UdpTable::new(maps),
            timers: TimerQueue::default(),
            tx_ready: VecDeque::new(),
            idle_release: VecDeque::new(),
            ctl_out: VecDeque::new(),
            tx_scratch: Vec::new(),
            scratch: tables::Scratch::default(),
            events: VecDeque::new(),
            stats: StackStats::default(),
            md5: None,
        }
    }

    /// The configuration this stack runs with.
    ///
    /// # Examples
    ///
    /// ```
    /// let stack = synack::Stack::new(synack::Config::default());
    /// assert_eq!(stack.config().tcp_syn_retries, 6); // Linux's default
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Change the configuration; it applies to connections opened from now on (as a
    /// sysctl does on Linux).
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
    /// client.config_mut().tcp_nodelay = true;
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?; // opened with TCP_NODELAY
    /// assert!(client.config().tcp_nodelay);
    /// # Ok(())
    /// # }
    /// ```
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Give the stack an IP address: it accepts packets sent to it and uses it as a source.
    ///
    /// # Examples
    ///
    /// ```
    /// use synack::{Config, Stack};
    /// # fn main() -> Result<(), std::net::AddrParseError> {
    /// let mut stack = Stack::new(Config::default());
    /// stack.add_address("198.18.0.2".parse()?);
    /// stack.add_address("2001:db8::2".parse()?);
    /// stack.add_address("198.18.0.2".parse()?); // already there
    /// assert_eq!(stack.addresses().len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_address(&mut self, addr: IpAddr) {
        if !self.addresses.contains(&addr) {
            self.addresses.push(addr);
        }
    }

    /// This stack's addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut stack = synack::Stack::new(synack::Config::default());
    /// stack.add_address(std::net::Ipv4Addr::new(10, 0, 0, 1).into());
    /// assert_eq!(stack.addresses(), &[std::net::IpAddr::from([10, 0, 0, 1])]);
    /// ```
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// A snapshot of the stack's counters (including those of live connections).
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
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// client.connect(now, "198.18.0.2:80".parse()?)?;
    /// client.connect(now, "198.18.0.2:81".parse()?)?; // refused
    /// pump(now, &mut client, &mut server);
    /// let stats = client.stats();
    /// assert_eq!((stats.active_opens, stats.established, stats.failed), (2, 1, 1));
    /// assert_eq!(server.stats().resets_sent, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> StackStats {
        let mut s = self.stats.clone();
        for slot in &self.slots {
            if let Some(c) = &slot.conn {
                s.retransmits += u64::from(c.stats.retransmits);
                s.challenge_acks += u64::from(c.stats.challenge_acks);
                s.ecn_ce_received += u64::from(c.stats.ce_received);
                s.ecn_reductions += u64::from(c.ece_reductions);
            }
        }
        s
    }

    /// Connections in the connection table (not counting TIME_WAIT table entries).
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
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// // Not yet accepted, but in the server's table all the same.
    /// assert_eq!((client.connection_count(), server.connection_count()), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.live_connections
    }

    /// Entries in the TIME_WAIT table.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.close(now, conn)?;
    /// server.close(now, accepted)?;
    /// pump(now, &mut client, &mut server);
    /// // The client closed first: it keeps the TIME_WAIT entry, for Config::time_wait.
    /// assert_eq!(client.time_wait_count(), 1);
    /// client.on_timeout(now + client.config().time_wait);
    /// assert_eq!(client.time_wait_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    /// Bytes held by datagrams waiting for fragments (fragment data, headers and a fixed
    /// overhead per datagram); never more than [`Config::ipfrag_high_thresh`].
    pub fn fragment_memory(&self) -> usize {
        self.fragments.memory()
    }

    /// Datagrams waiting for fragments (and discarded ones whose later fragments are
    /// still being dropped until their time runs out).
    pub fn fragment_queues(&self) -> usize {
        self.fragments.len()
    }

    /// The TIME_WAIT entry for a 4-tuple, if any.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let (local, remote) = (client.local_addr(conn)?, client.peer_addr(conn)?);
    /// client.close(now, conn)?;
    /// server.close(now, accepted)?;
    /// pump(now, &mut client, &mut server);
    /// let entry = client.time_wait_entry(local, remote).expect("in TIME_WAIT");
    /// assert_eq!(entry.expiry, now + client.config().time_wait);
    /// # Ok(())
    /// # }
    /// ```
    pub fn time_wait_entry(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<crate::tcp::TimeWait> {
        self.time_wait
            .get(&FourTuple { local, remote })
            .map(|e| e.tw)
    }

    /// Every socket as `ss` shows it: listeners, connections, and TIME_WAIT entries, with
    /// queues, the time to the next timer, the time in the current state and, for
    /// connections, their TCP_INFO-like statistics.
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, b"unread")?;
    /// pump(now, &mut client, &mut server);
    /// for socket in server.snapshot(now) {
    ///     match socket.state {
    ///         TcpState::Listen => assert_eq!(socket.recv_q, 0), // nothing left to accept
    ///         TcpState::Established => assert_eq!(socket.recv_q, 6),
    ///         other => panic!("unexpected {other}"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot(&self, now: Instant) -> Vec<SocketSnapshot> {
        let mut v = Vec::new();
        for l in self.listeners.iter().flatten() {
            v.push(SocketSnapshot {
                state: TcpState::Listen,
                local: l.local,
                remote: None,
                recv_q: l.accept_queue.len(),
                send_q: l.backlog,
                timer: None,
                age: None,
                info: None,
                warning: None,
            });
        }
        for c in self.slots.iter().filter_map(|s| s.conn.as_ref()) {
            let info = c.info(now);
            let warning = crate::tcp::diagnose(
                info.state,
                info.time_in_state,
                info.backoff,
                info.local,
                info.remote,
                &self.config,
            );
            v.push(SocketSnapshot {
                warning,
                state: info.state,
                local: info.local,
                remote: Some(info.remote),
                recv_q: info.recv_queue,
                send_q: info.send_queue,
                timer: info.next_timer,
                age: Some(info.time_in_state),
                info: Some(info),
            });
        }
        for (tuple, e) in self.time_wait.iter() {
            let left = e.tw.expiry.saturating_duration_since(now);
            v.push(SocketSnapshot {
                state: TcpState::TimeWait,
                local: tuple.local,
                remote: Some(tuple.remote),
                recv_q: 0,
                send_q: 0,
                timer: Some(left),
                age: self.config.time_wait.checked_sub(left),
                info: None,
                warning: None,
            });
        }
        v
    }

    /// Per state: how many sockets, and how long the oldest has been in it (`ss -s`).
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let summary = server.state_summary(now);
    /// let established = summary.iter().find(|s| s.state == TcpState::Established).unwrap();
    /// assert_eq!(established.count, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn state_summary(&self, now: Instant) -> Vec<StateSummary> {
        StateSummary::of(&self.snapshot(now))
    }

    /// For a TCP segment, or an ICMP error quoting one of ours: whether this stack has
    /// its connection or TIME_WAIT entry (`Some(true)`) or not (`Some(false)`); None for
    /// any other packet. How an interface whose flows are spread over several stacks
    /// finds the one a packet belongs to. Reads only addresses and ports (a TCP checksum
    /// is not checked).
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
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// let syn = client.poll_transmit(now).unwrap();
    /// assert_eq!(server.has_flow(&syn), Some(false)); // a new flow for the server
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// server.receive(now, &syn);
    /// assert_eq!(server.has_flow(&syn), Some(true)); // now it has the connection
    /// assert_eq!(server.has_flow(b"not a packet"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn has_flow(&self, packet: &[u8]) -> Option<bool> {
        let (ip, payload) = wire::parse_ip(packet).ok()?;
        let tuple = match ip.protocol {
            wire::PROTO_TCP => {
                let ports = payload.get(..4)?;
                FourTuple {
                    local: SocketAddr::new(ip.dst, u16::from_be_bytes([ports[2], ports[3]])),
                    remote: SocketAddr::new(ip.src, u16::from_be_bytes([ports[0], ports[1]])),
                }
            }
            PROTO_ICMP | PROTO_ICMPV6 => self.icmp_quoted_tuple(&ip, payload)?,
            _ => return None,
        };
        Some(self.by_tuple.contains(&self.slots, &tuple) || self.time_wait.contains(&tuple))
    }

    /// The state of every connection, including TIME_WAIT entries: (local, remote, state).
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// let all = client.connections();
    /// assert_eq!(all, vec![(client.local_addr(conn)?, client.peer_addr(conn)?, TcpState::Established)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connections(&self) -> Vec<(SocketAddr, SocketAddr, TcpState)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .filter_map(|s| s.conn.as_ref())
            .map(|c| (c.local, c.remote, c.tcp_state()))
            .collect();
        v.extend(
            self.time_wait
                .iter()
                .map(|(t, _)| (t.local, t.remote, TcpState::TimeWait)),
        );
        v
    }

    /// RFC 9293 3.10.7.1: the reset that answers a segment for no connection.
    fn reply_rst(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if seg.flags.rst() {
            return; // never answer a RST
        }
        let out = if seg.flags.ack() {
            // <SEQ=SEG.ACK><CTL=RST>
            Outgoing {
                urgent: 0,
                seq: seg.ack,
                ack: SeqNum::new(0),
                flags: TcpFlags::RST,
                window: 0,
                options: TcpOptions::default(),
                payload: 0..0,
                segment_size: 0,
                ecn: wire::Ecn::NotEct,
            }
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
            Outgoing {
                urgent: 0,
                seq: SeqNum::new(0),
                ack: seg.seq + seg.seg_len(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                options: TcpOptions::default(),
                payload: 0..0,
                segment_size: 0,
                ecn: wire::Ecn::NotEct,
            }
        };
        self.stats.resets_sent += 1;
        self.queue_ctl(tuple, &out);
    }

    /// Queue a control packet (RST, TIME_WAIT ACK) built outside any connection.
    fn queue_ctl(&mut self, tuple: FourTuple, out: &Outgoing) {
        if self.ctl_out.len() >= CTL_QUEUE_LIMIT {
            return self.stats.drop("control_queue_full");
        }
        if let Some(p) = self.build(tuple, out) {
            self.ctl_out.push_back(p);
        }
    }

    fn build(&mut self, tuple: FourTuple, out: &Outgoing) -> Option<Vec<u8>> {
        // Headers only.
        let mut buf = vec![0u8; wire::MAX_TCP_HEADERS];
        let key = self.md5_key_for(tuple).map(Md5Key::key);
        match build_into(
            &mut buf,
            self.config.ttl,
            &self.config,
            tuple,
            out,
            (&[], &[]),
            key,
        ) {
            Ok(n) => {
                buf.truncate(n);
                Some(buf)
            }
            Err(e) => {
                self.stats.drop(e.reason());
                None
            }
        }
    }

    // ---- bookkeeping after anything happened to a connection ---------------------------

    fn insert(&mut self, conn: Connection, listener: Option<u32>, app_owned: bool) -> u32 {
        let tuple = FourTuple {
            local: conn.local,
            remote: conn.remote,
        };
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        self.live_connections += 1;
        slot.conn = Some(Box::new(conn));
        slot.listener = listener;
        slot.app_owned = app_owned;
        slot.in_table = true;
        self.by_tuple.insert(&tuple, index);
        index
    }

    fn handle(&self, index: u32) -> ConnectionHandle {
        ConnectionHandle {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Turn what a connection did into events, transmissions and timers; retire it when done.
    fn after_activity(&mut self, now: Instant, index: u32) {
        let handle = self.handle(index);
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        conn.settle(now);
        conn.check_notsent_space(&self.config);
        if slot.reports.is_some() {
            self.update_tx_reports(now, index);
        }
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        if self.memory_level != MemoryLevel::Normal {
            // Under pressure memory follows the data at once (tcp_mem).
            conn.moderate_buffers();
        }
        let (charged, held) = tables::recount(&mut slot.memory, conn.memory_held());
        if !slot.release_queued && conn.idle_storage() {
            slot.release_queued = true;
            let at = now + crate::tcp::IDLE_RELEASE;
            self.idle_release.push_back((at, index, slot.generation));
        }
        if !conn.is_orphan() && slot.orphan {
            slot.orphan = false;
            self.orphans -= 1;
        }
        let tuple = FourTuple {
            local: conn.local,
            remote: conn.remote,
        };
        // Taken out and kept by the stack below, so its capacity is reused packet after
        // packet and an idle connection holds none.
        let mut events = core::mem::take(&mut conn.events);
        self.charge_memory(charged, held);
        // Resets first, in the order the connection asked for them.
        for ev in &events {
            let ConnEvent::Reset(rst) = ev else {
                continue;
            };
            let out = Outgoing {
                urgent: 0,
                seq: rst.seq,
                ack: rst.ack.unwrap_or(SeqNum::new(0)),
                flags: if rst.ack.is_some() {
                    TcpFlags::RST | TcpFlags::ACK
                } else {
                    TcpFlags::RST
                },
                window: 0,
                options: TcpOptions {
                    timestamps: rst.timestamps,
                    ..TcpOptions::default()
                },
                payload: 0..0,
                segment_size: 0,
                ecn: wire::Ecn::NotEct,
            };
            self.stats.resets_sent += 1;
            self.queue_ctl(tuple, &out);
        }
        for ev in events.drain(..) {
            self.conn_event(index, handle, tuple, ev);
        }
        self.scratch.keep(events);
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        // A closed connection leaves the demultiplexing table at once.
        if matches!(conn.tcp_state(), TcpState::Closed) && slot.in_table {
            slot.in_table = false;
            self.by_tuple.remove(&tuple, index);
        }
        // An orphan in TIME_WAIT moves to the compact TIME_WAIT table.
        if !slot.app_owned && conn.tcp_state() == TcpState::TimeWait {
            // The ACK of the peer's FIN is still to be sent: send it before the move.
            let pending = conn.poll_segment(now);
            if let Some(out) = pending {
                self.queue_ctl(tuple, &out);
            }
            let slot = &mut self.slots[index as usize];
            let Some(conn) = slot.conn.as_mut() else {
                return;
            };
            if let Some(tw) = conn.take_time_wait() {
                slot.in_table = false;
                self.by_tuple.remove(&tuple, index);
                // Linux's tcp_time_wait: the entry keeps the key (tw_md5_key).
                let md5_key = slot
                    .md5
                    .as_ref()
                    .and_then(|k| k.lookup(tuple.remote.ip()))
                    .cloned();
                if self.time_wait.len() < self.config.tcp_max_tw_buckets {
                    self.time_wait.insert(tuple, tw, handle);
                    self.md5_to_time_wait(tuple, md5_key);
                    // Warn once as the table passes 90 % of its limit.
                    let n = self.time_wait.len();
                    let crossed = crate::tcp::time_wait_pressure(n - 1, &self.config).is_none();
                    if let Some(message) =
                        crate::tcp::time_wait_pressure(n, &self.config).filter(|_| crossed)
                    {
                        tracing::warn!("{message}");
                        self.events.push_back(Event::Warning {
                            conn: None,
                            message,
                        });
                    }
                } else {
                    self.stats.time_wait_overflow += 1;
                    self.time_wait_closed(
                        handle,
                        tuple,
                        now,
                        "TIME_WAIT table full (tcp_max_tw_buckets)",
                    );
                }
            }
        }
        let slot = &mut self.slots[index as usize];
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        // A connection waiting in an accept queue stays there once closed (reset, say):
        // accept() returns it with its data and its error, as Linux's (its child sockets
        // stay queued in TCP_CLOSE).
        let queued = slot.listener.is_some() && !slot.embryonic;
        if conn.is_closed() && !slot.app_owned && !queued {
            return self.retire(index);
        }
        if conn.wants_transmit() && !slot.in_tx {
            slot.in_tx = true;
            self.tx_ready.push_back(index);
        }
        // The queue's live entry for this slot is the one at `timer_at`: when the deadline
        // moves (later, earlier, or away) the old entry goes stale, so `poll_timeout`
        // never reports a deadline nobody has any more.
        let deadline = conn.next_deadline();
        if deadline != slot.timer_at {
            slot.timer_at = deadline;
            if let Some(deadline) = deadline {
                self.timers.push(deadline, index, slot.generation);
                if self.timers.len() > 2 * self.live_connections + 1024 {
                    let slots = &self.slots;
                    self.timers.compact(|index, generation, at| {
                        let s = &slots[index as usize];
                        s.generation == generation && s.timer_at == Some(at)
                    });
                }
            }
        }
    }

    /// Map one connection event to stack events and listener bookkeeping.
    fn conn_event(
        &mut self,
        index: u32,
        handle: ConnectionHandle,
        tuple: FourTuple,
        ev: ConnEvent,
    ) {
        let app_owned = self.slots[index as usize].app_owned;
        match ev {
            ConnEvent::FastOpenCache {
                mss,
                cookie,
                syn_lost,
                try_exp,
            } => {
                self.fastopen_cache
                    .set(tuple.remote.ip(), mss, cookie, syn_lost, try_exp);
                let slot = &self.slots[index as usize];
                if slot.conn.as_ref().is_some_and(|c| c.info_syn_data_acked()) {
                    self.stats.fastopen_active += 1;
                }
            }
            ConnEvent::State {
                from,
                to,
                at,
                cause,
            } => {
                if to == TcpState::Established {
                    self.stats.established += 1;
                }
                let slot = &self.slots[index as usize];
                if from == TcpState::SynReceived
                    && slot
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.tfo & crate::tcp::TFO_CHILD != 0)
                {
                    // A Fast Open child left SYN_RECEIVED: out of its listener's queue
                    // (if it was not accepted first).
                    if let Some(l) = slot
                        .listener
                        .and_then(|lid| self.listeners[lid as usize].as_mut())
                    {
                        l.fastopen_pending = l.fastopen_pending.saturating_sub(1);
                    }
                }
                self.events.push_back(Event::StateChanged {
                    conn: handle,
                    local: tuple.local,
                    remote: tuple.remote,
                    from,
                    to,
                    at,
                    cause,
                });
            }
            ConnEvent::Reset(_) => {}
            ConnEvent::Dropped(reason) => self.stats.drop(reason),
            ConnEvent::Connected => {
                if app_owned {
                    self.events.push_back(Event::Connected(handle));
                }
            }
            ConnEvent::Established => {
                let slot = &mut self.slots[index as usize];
                if app_owned {
                    // A connection request the application accepted.
                    self.events.push_back(Event::Connected(handle));
                } else if let Some(lid) = slot.listener {
                    if slot.embryonic {
                        slot.embryonic = false;
                        if let Some(l) = self.listeners[lid as usize].as_mut() {
                            l.embryonic = l.embryonic.saturating_sub(1);
                            l.accept_queue.push_back(index);
                            self.events.push_back(Event::Incoming(ListenerHandle(lid)));
                        }
                    }
                }
            }
            ConnEvent::Readable => {
                if app_owned {
                    self.events.push_back(Event::Readable(handle));
                }
            }
            ConnEvent::Writable => {
                if app_owned {
                    self.events.push_back(Event::Writable(handle));
                }
            }
            ConnEvent::SoftError(error) => {
                if app_owned {
                    self.events.push_back(Event::SoftError {
                        conn: handle,
                        error,
                    });
                }
            }
            ConnEvent::Warning(message) => {
                self.events.push_back(Event::Warning {
                    conn: Some(handle),
                    message,
                });
            }
            ConnEvent::Error(error) => {
                self.stats.failed += 1;
                if app_owned {
                    self.events.push_back(Event::Error {
                        conn: handle,
                        error,
                    });
                }
            }
        }
    }

    /// Move the buffer memory count from `old` to `new` bytes for one connection and
    /// settle the level against `tcp_mem` (with Linux's hysteresis: pressure ends only
    /// below the low mark).
    fn charge_memory(&mut self, old: usize, new: usize) {
        self.memory = self.memory - old + new;
        let [low, pressure, high] = self.config.tcp_mem;
        let level = if self.memory > high {
            MemoryLevel::Exhausted
        } else if self.memory > pressure {
            MemoryLevel::Pressure
        } else if self.memory < low {
            MemoryLevel::Normal
        } else if self.memory_level == MemoryLevel::Exhausted {
            MemoryLevel::Pressure
        } else {
            self.memory_level
        };
        if level != self.memory_level {
            if level != MemoryLevel::Normal && self.memory_level == MemoryLevel::Normal {
                self.stats.memory_pressure += 1;
                tracing::warn!(
                    "TCP buffer memory {} bytes is over tcp_mem pressure {}: receive windows stop opening",
                    self.memory,
                    pressure
                );
            }
            self.memory_level = level;
        }
    }

    /// Bytes held in all connections' send and receive buffers (what `Config::tcp_mem`
    /// limits).
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.send(now, conn, &[7u8; 10_000])?;
    /// // Queued bytes are held (and counted against Config::tcp_mem) until acknowledged.
    /// assert!(client.buffer_memory() >= 10_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn buffer_memory(&self) -> usize {
        self.memory
    }

    /// Connections closed by the application that are still closing (what
    /// `Config::tcp_max_orphans` limits).
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// client.close(now, conn)?;
    /// assert_eq!(client.orphan_count(), 1); // closed by the application, still closing
    /// # Ok(())
    /// # }
    /// ```
    pub fn orphan_count(&self) -> usize {
        self.orphans
    }

    /// Bytes the TIME_WAIT table holds (its entries and index).
    pub fn time_wait_memory(&self) -> usize {
        self.time_wait.heap_bytes()
    }

    /// A connection just became an orphan: count it, and reset the oldest orphans while
    /// there are more than `tcp_max_orphans`.
    fn count_orphan(&mut self, now: Instant, index: u32) {
        let slot = &mut self.slots[index as usize];
        if slot.orphan || !slot.conn.as_ref().is_some_and(|c| c.is_orphan()) {
            return;
        }
        slot.orphan = true;
        self.orphans += 1;
        self.orphan_queue.push_back((index, slot.generation));
        while self.orphans > self.config.tcp_max_orphans {
            let Some((oldest, generation)) = self.orphan_queue.pop_front() else {
                break;
            };
            let slot = &mut self.slots[oldest as usize];
            if slot.generation != generation || !slot.orphan {
                continue;
            }
            if let Some(conn) = slot.conn.as_mut() {
                tracing::warn!(
                    "too many orphaned sockets ({} > tcp_max_orphans): resetting {} -> {}",
                    self.orphans,
                    conn.local,
                    conn.remote
                );
                conn.queue_active_reset(now);
                conn.terminate(now, "too many orphans (tcp_max_orphans)", None);
            }
            self.stats.orphans_reset += 1;
            self.after_activity(now, oldest);
        }
        // Keep the queue from filling with stale entries.
        if self.orphan_queue.len() > 2 * self.orphans + 64 {
            let slots = &self.slots;
            self.orphan_queue
                .retain(|&(i, g)| slots[i as usize].generation == g && slots[i as usize].orphan);
        }
    }

    /// Free a connection's slot for good.
    fn retire(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if slot.orphan {
            slot.orphan = false;
            self.orphans -= 1;
        }
        let (charged, _) = tables::recount(&mut slot.memory, 0);
        self.charge_memory(charged, 0);
        let slot = &mut self.slots[index as usize];
        if let Some(conn) = slot.conn.take() {
            self.live_connections -= 1;
            self.stats.retransmits += u64::from(conn.stats.retransmits);
            self.stats.challenge_acks += u64::from(conn.stats.challenge_acks);
            self.stats.ecn_ce_received += u64::from(conn.stats.ce_received);
            self.stats.ecn_reductions += u64::from(conn.ece_reductions);
            if slot.in_table {
                let tuple = FourTuple {
                    local: conn.local,
                    remote: conn.remote,
                };
                self.by_tuple.remove(&tuple, index);
            }
        }
        if let Some(lid) = slot.listener.take() {
            if let Some(l) = self.listeners[lid as usize].as_mut() {
                if slot.embryonic {
                    l.embryonic = l.embryonic.saturating_sub(1);
                }
                l.accept_queue.retain(|&i| i != index);
            }
        }
        *slot = Slot {
            generation: slot.generation.wrapping_add(1),
            ..Slot::default()
        };
        self.free_slots.push(index);
    }

    // ---- packets out and time ---------------------------------------------------------

    /// The next IP packet to put on the wire, if any. Allocates the packet; a driver
    /// that reuses its buffers calls [`Stack::poll_transmit_into`].
    ///
    /// With segmentation offload on (`Config::tso_max`) a packet may hold several
    /// segments; only `poll_transmit_into` says the size to cut it at.
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
    /// use synack::wire::{self, TcpFlags};
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// let syn = client.poll_transmit(now).expect("the SYN");
    /// let (ip, tcp) = wire::parse_tcp_packet(&syn)?;
    /// assert_eq!(ip.dst.to_string(), "198.18.0.2");
    /// assert_eq!(tcp.flags, TcpFlags::SYN);
    /// assert_eq!(client.poll_transmit(now), None); // nothing more until the SYN-ACK
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(p) = self.ctl_out.pop_front() {
            self.stats.segments_out += 1;
            return Some(p);
        }
        // Built in a buffer the stack keeps (zeroed once), then copied out at its length:
        // one allocation of the packet's size, nothing zeroed per packet.
        let mut scratch = core::mem::take(&mut self.tx_scratch);
        scratch.resize(self.max_packet_size(), 0);
        let packet = self
            .poll_transmit_into(now, &mut scratch)
            .map(|t| scratch[..t.len].to_vec());
        self.tx_scratch = scratch;
        packet
    }

    /// The longest packet the stack sends: the MTU, or `Config::tso_max` with
    /// segmentation offload. A buffer of this size always takes the next packet.
    ///
    /// # Examples
    ///
    /// ```
    /// use synack::{Config, Stack};
    /// let mut config = Config::default();
    /// assert_eq!(Stack::new(config.clone()).max_packet_size(), 1500);
    /// config.tso_max = 65535; // segmentation offload: super-segments up to 64 KiB
    /// assert_eq!(Stack::new(config).max_packet_size(), 65535);
    /// ```
    pub fn max_packet_size(&self) -> usize {
        self.config.mtu.max(self.config.tso_max).min(65535)
    }

    /// Write the next IP packet to put on the wire at the start of `buf` and say how long
    /// it is and how to send it; None when there is nothing to send. The payload goes
    /// from the send buffer into `buf` in one pass that also sums it: with a buffer kept
    /// from one call to the next, sending allocates nothing and zeroes nothing.
    ///
    /// `buf` must hold [`Stack::max_packet_size`] bytes: with a shorter one nothing is
    /// taken from any connection (None, counted as `transmit_buffer_too_small`).
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
    /// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// # pump(now, &mut client, &mut server);
    /// # let accepted = server.accept(listener)?;
    /// # while client.poll_event().is_some() {}
    /// # while server.poll_event().is_some() {}
    /// // One buffer, kept from one packet to the next: nothing is allocated per packet.
    /// let mut buf = vec![0u8; client.max_packet_size()];
    /// client.send(now, conn, &[1u8; 4000])?;
    /// let mut sent = Vec::new();
    /// while let Some(t) = client.poll_transmit_into(now, &mut buf) {
    ///     assert_eq!(t.segment_size, None); // no offload configured
    ///     sent.push(buf[..t.len].to_vec()); // a real driver writes buf[..t.len] to its device
    /// }
    /// assert_eq!(sent.len(), 3); // 4000 bytes in segments of at most 1448
    /// for p in &sent {
    ///     server.receive(now, p);
    /// }
    /// assert_eq!(server.recv_queue(accepted)?, 4000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_transmit_into(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(p) = self
            .ctl_out
            .pop_front()
            .or_else(|| self.udp.out.pop_front())
        {
            self.stats.segments_out += 1;
            let Some(room) = buf.get_mut(..p.len()) else {
                self.stats.drop("transmit_buffer_too_small");
                return None;
            };
            room.copy_from_slice(&p);
            return Some(Transmit {
                len: p.len(),
                segment_size: None,
            });
        }
        if buf.len() < self.max_packet_size() {
            if !self.tx_ready.is_empty() {
                self.stats.drop("transmit_buffer_too_small");
            }
            return None;
        }
        while let Some(index) = self.tx_ready.pop_front() {
            let slot = &mut self.slots[index as usize];
            slot.in_tx = false;
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            conn.memory = self.memory_level;
            self.scratch.lend(conn);
            let Some(out) = conn.poll_segment(now) else {
                self.scratch.reclaim(conn);
                continue;
            };
            let tuple = FourTuple {
                local: conn.local,
                remote: conn.remote,
            };
            let ttl = conn.ttl.unwrap_or(self.config.ttl);
            let key = slot
                .md5
                .as_ref()
                .and_then(|k| k.lookup(tuple.remote.ip()))
                .map(Md5Key::key);
            let built = build_into(buf, ttl, &self.config, tuple, &out, conn.payload(&out), key);
            self.after_activity(now, index);
            match built {
                Ok(len) => {
                    self.stats.segments_out += out.segments() as u64;
                    return Some(Transmit {
                        len,
                        segment_size: (out.segment_size > 0).then_some(out.segment_size),
                    });
                }
                Err(e) => self.stats.drop(e.reason()),
            }
        }
        None
    }

    /// The earliest instant at which [`Stack::on_timeout`] has work to do.
    ///
    /// Exact in all but one case: with many connections whose timers fall in the same
    /// stretch of the timing wheel (more than 64), after the earliest of them was
    /// re-armed, it may be that timer's old deadline; `on_timeout` then fires nothing and
    /// the next call gives the true one. A driver never wakes late.
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
    /// assert_eq!(client.poll_timeout(), None); // nothing to wait for
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// while client.poll_transmit(now).is_some() {}
    /// // The SYN's retransmission timer: the initial RTO, one second (RFC 6298).
    /// assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(1)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let slots = &self.slots;
        let conn = self.timers.peek_live(|index, generation, at| {
            let s = &slots[index as usize];
            s.generation == generation && s.timer_at == Some(at)
        });
        [
            conn,
            self.idle_release.front().map(|e| e.0),
            self.time_wait.next_expiry(),
            self.fragments.next_deadline(),
            self.requests.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fire every timer due at or before `now`.
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
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// let _lost_syn = client.poll_transmit(now).unwrap();
    /// let deadline = client.poll_timeout().unwrap();
    /// client.on_timeout(deadline); // the RTO fires: the SYN goes again
    /// let again = client.poll_transmit(deadline).expect("retransmitted SYN");
    /// server.listen("198.18.0.2:80".parse()?, 128)?;
    /// server.receive(deadline, &again);
    /// pump(deadline, &mut client, &mut server);
    /// assert_eq!(client.state(conn)?, TcpState::Established);
    /// assert_eq!(client.info(deadline, conn)?.retransmits, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_timeout(&mut self, now: Instant) {
        self.expire_requests(now);
        while let Some((at, index, generation)) = self.timers.pop_due(now) {
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation || slot.timer_at != Some(at) {
                continue;
            }
            slot.timer_at = None;
            if let Some(conn) = slot.conn.as_mut() {
                conn.memory = self.memory_level;
                self.scratch.lend(conn);
                conn.on_timeout(now, &self.config);
                self.after_activity(now, index);
            }
        }
        // Buffers emptied a while ago give back what they grew to (memory follows use).
        while let Some(&(at, index, generation)) = self.idle_release.front() {
            if at > now {
                break;
            }
            self.idle_release.pop_front();
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation {
                continue;
            }
            slot.release_queued = false;
            if let Some(conn) = slot.conn.as_mut() {
                conn.release_idle_storage();
                let (charged, held) = tables::recount(&mut slot.memory, conn.memory_held());
                self.charge_memory(charged, held);
            }
        }
        for (tuple, entry) in self.time_wait.expire(now) {
            self.time_wait_closed(entry.conn, tuple, now, "TIME_WAIT expired (2*MSL)");
        }
        for expired in self.fragments.expire(now) {
            self.stats.drop_many("frag_timeout", expired.fragments);
            if let Some(quote) = expired.quote {
                self.reassembly_time_exceeded(expired.src, expired.dst, &quote);
            }
        }
    }

    /// The next event, oldest first.
    ///
    /// Drain it after every call into the stack: events are kept until taken.
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
    /// let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
    /// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
    /// pump(now, &mut client, &mut server);
    /// while let Some(event) = server.poll_event() {
    ///     match event {
    ///         Event::Incoming(l) => {
    ///             let accepted = server.accept(l)?;
    ///             server.send(now, accepted, b"welcome")?;
    ///         }
    ///         Event::StateChanged { from, to, cause, .. } => println!("{from} -> {to}: {cause}"),
    ///         Event::Readable(c) | Event::Writable(c) => { /* read or write c */ }
    ///         // Event is non-exhaustive: new kinds of events may be added.
    ///         _ => {}
    ///     }
    /// }
    /// pump(now, &mut client, &mut server);
    /// assert_eq!(client.recv_queue(conn)?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// How to send a packet [`Stack::poll_transmit_into`] wrote.
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
/// let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// let mut buf = vec![0u8; client.max_packet_size()];
/// let t = client.poll_transmit_into(now, &mut buf).unwrap();
/// let syn = &buf[..t.len]; // IPv4 20 + TCP 20 + options 20
/// assert_eq!((t.len, t.segment_size), (60, None));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// The packet's length: it is `buf[..len]`.
    pub len: usize,
    /// Some(size): a TCP super-segment (only with `Config::tso_max`) for the device to
    /// cut into segments of this payload size (the last may be shorter), each with the
    /// same headers but for the sequence number, lengths and checksums, PSH on the last
    /// only: a TSO/GSO packet. None: one packet as it is.
    pub segment_size: Option<u16>,
}

/// Wrap `out` in TCP/IP headers for `tuple` into `buf`; `payload` is its bytes (two
/// pieces of a ring buffer). With a TCP-MD5 key the segment is signed (RFC 2385).
fn build_into(
    buf: &mut [u8],
    ttl: u8,
    config: &Config,
    tuple: FourTuple,
    out: &Outgoing,
    payload: (&[u8], &[u8]),
    md5_key: Option<&[u8]>,
) -> Result<usize, wire::WireError> {
    let mut repr = TcpRepr {
        src_port: tuple.local.port(),
        dst_port: tuple.remote.port(),
        seq: out.seq,
        ack: out.ack,
        flags: out.flags,
        window: out.window,
        urgent: out.urgent,
        options: out.options,
        payload: payload.0,
    };
    if md5_key.is_some() {
        // Room for the signature, filled once the packet is built.
        repr.options.md5 = Some([0; 16]);
    }
    let len = wire::emit_tcp_packet_into(
        buf,
        tuple.local.ip(),
        tuple.remote.ip(),
        (ttl, out.ecn),
        &repr,
        payload.1,
        config.tx_checksum,
    )?;
    if let Some(key) = md5_key {
        let ip_len = if tuple.local.is_ipv4() {
            wire::ipv4::HEADER_LEN
        } else {
            wire::ipv6::HEADER_LEN
        };
        let (src, dst) = (tuple.local.ip(), tuple.remote.ip());
        wire::sign_tcp_md5(&mut buf[ip_len..len], &src, &dst, key, config.tx_checksum)?;
    }
    Ok(len)
}
