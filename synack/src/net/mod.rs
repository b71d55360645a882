//! Blocking sockets in the shape of `std::net`, over a synack stack driven by a TUN
//! [`Interface`]: [`TcpListener`] and [`TcpStream`] with `Read`/`Write`, shutdown,
//! timeouts, and close on drop. A call that must wait parks its thread until an event of
//! its own socket (data, room, a connection, a change of state) unparks it: a packet for
//! one socket wakes no thread blocked on another.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use synack::net::TcpStream;
//! use synack::tun::{Interface, InterfaceConfig};
//! let iface = Interface::open(InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?))?;
//! let mut s = TcpStream::connect(&iface, "198.18.0.1:80")?;
//! s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
//! let mut page = String::new();
//! s.read_to_string(&mut page)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod udp;
pub use udp::UdpSocket;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use crate::device::{Core, Interest, Interface, Shared, ThreadWaker, WakeKey};
use crate::{
    Capture, ConnectionHandle, ConnectionRequest, Decide, Error, ListenerHandle, ListenerOptions,
    Refusal, TcpState,
};

/// How long a call may wait for its socket.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Until it can go on.
    Forever,
    /// At most this long, then an error of this kind saying this. `std` on Unix gives
    /// `WouldBlock` (EAGAIN) when a read or write timeout expires, and `TimedOut` for
    /// `connect_timeout`.
    For(Duration, io::ErrorKind, &'static str),
    /// Not at all: `WouldBlock` at once (non-blocking mode).
    Never,
}

/// Block until `f` returns something other than `WouldBlock`, or `block` says to stop:
/// between tries the thread sleeps until an event of `key` that concerns `interest`.
pub(crate) fn wait<T>(
    shared: &Shared,
    key: WakeKey,
    interest: Interest,
    block: Block,
    mut f: impl FnMut(&mut Core) -> Result<T, Error>,
) -> io::Result<T> {
    let deadline = match block {
        Block::For(t, ..) => Some(StdInstant::now() + t),
        Block::Forever | Block::Never => None,
    };
    let me = ThreadWaker::current();
    let waker = std::task::Waker::from(Arc::clone(&me));
    let mut core = shared.lock_open()?;
    loop {
        let r = f(&mut core);
        let waiting = matches!(r, Err(Error::WouldBlock));
        if waiting && !matches!(block, Block::Never) {
            // Under the same lock as the try: no event can fall between the two.
            core.register(key, interest, &waker);
        }
        shared.after_call(&mut core);
        if !waiting || matches!(block, Block::Never) {
            return r.map_err(io::Error::from);
        }
        drop(core);
        if let Err(e) = park(&me, deadline) {
            return Err(match block {
                Block::For(_, kind, what) if e.kind() == io::ErrorKind::TimedOut => {
                    io::Error::new(kind, what)
                }
                _ => e,
            });
        }
        core = shared.lock_open()?;
    }
}

/// Run `f` on each address `addr` resolves to, as `std`'s `bind` and `connect` do: the
/// first success, else the last error.
pub(crate) fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// `std`'s error for a zero timeout.
fn zero_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "cannot set a 0 duration timeout (use None to wait forever)",
    )
}

/// Sleep until `me` is woken, at most a second (a bound, not a poll: every change that
/// can end a wait wakes the thread) and not past `deadline` (then `TimedOut`).
fn park(me: &ThreadWaker, deadline: Option<StdInstant>) -> io::Result<()> {
    let now = StdInstant::now();
    if deadline.is_some_and(|d| now >= d) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "operation timed out",
        ));
    }
    let until = deadline.map_or(now + Duration::from_secs(1), |d| {
        d.min(now + Duration::from_secs(1))
    });
    while !me.take() {
        let left = until.saturating_duration_since(StdInstant::now());
        if left.is_zero() {
            break;
        }
        std::thread::park_timeout(left);
    }
    Ok(())
}

/// A listening socket: one listener on each queue's stack of the interface, all on the
/// same address.
///
/// ```
/// use std::io::{Read, Write};
/// use synack::net::{TcpListener, TcpStream};
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = TcpListener::bind(&right, "198.18.0.2:0")?; // any free port
/// let port = listener.local_addr()?.port();
/// let mut client = TcpStream::connect(&left, ("198.18.0.2", port))?;
/// let (mut server, peer) = listener.accept()?;
/// assert_eq!(peer, client.local_addr()?);
/// server.write_all(b"hello")?;
/// let mut got = [0; 5];
/// client.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    /// Each queue's listener.
    pub(crate) parts: Vec<(Arc<Shared>, ListenerHandle)>,
    /// The queue `accept` looks at first: each in turn, so that none waits behind another.
    next: AtomicUsize,
    local: SocketAddr,
    /// O_NONBLOCK: `accept` and `request` give `WouldBlock` instead of waiting.
    nonblocking: AtomicBool,
}

impl TcpListener {
    /// Listen on `addr` (one of the stack's addresses, or unspecified for all). Port 0
    /// picks a free ephemeral port, as `std` does; [`TcpListener::local_addr`] tells which.
    /// As `std`'s, `addr` is anything [`ToSocketAddrs`] takes; each address it gives is
    /// tried in turn.
    pub fn bind(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| Self::bind_one(iface, a))
    }

    fn bind_one(iface: &Interface, addr: SocketAddr) -> io::Result<TcpListener> {
        let mut listener = TcpListener::empty(iface, addr);
        // The first queue picks the port when asked for 0; the others listen on it too.
        // (Dropping a half-made listener closes what it opened.)
        for shared in &iface.shards {
            let mut core = shared.lock_open()?;
            let handle = core.stack.listen(listener.local, 1024)?;
            listener.local = core.stack.listener_addr(handle)?;
            listener.parts.push((Arc::clone(shared), handle));
        }
        Ok(listener)
    }

    /// Listen on every destination `capture` names that no other listener claims, on
    /// every queue (see [`crate::Stack::listen_capture`]): the accepted connections'
    /// `local_addr` is the destination the client asked for. The kernel must route
    /// those destinations to the device ([`crate::tun::InterfaceConfig`]'s `routes`).
    ///
    /// With `decide`, SYNs are held as connection requests instead of being answered:
    /// take them with [`TcpListener::request`] and accept or refuse each.
    pub fn bind_capture(
        iface: &Interface,
        capture: Capture,
        decide: Option<Decide>,
    ) -> io::Result<TcpListener> {
        let mut listener = TcpListener::empty(iface, SocketAddr::from(([0, 0, 0, 0], 0)));
        for shared in &iface.shards {
            let mut core = shared.lock_open()?;
            let handle = core.stack.listen_capture(capture.clone(), 1024)?;
            listener.parts.push((Arc::clone(shared), handle));
            let options = ListenerOptions {
                decide,
                ..ListenerOptions::default()
            };
            core.stack.set_listener_options(handle, options)?;
        }
        Ok(listener)
    }

    fn empty(iface: &Interface, local: SocketAddr) -> TcpListener {
        TcpListener {
            parts: Vec::with_capacity(iface.shards.len()),
            next: AtomicUsize::new(0),
            local,
            nonblocking: AtomicBool::new(false),
        }
    }

    /// Wait for the next connection request of a decide-first listener (see
    /// [`TcpListener::bind_capture`]).
    pub fn request(&self) -> io::Result<Request> {
        self.wait_for(|l, waker| l.try_request(waker))
    }

    /// Try `take` until it gives something, sleeping between tries until the listener's
    /// next event (`WouldBlock` at once in non-blocking mode).
    fn wait_for<T>(
        &self,
        mut take: impl FnMut(&Self, &std::task::Waker) -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        let me = ThreadWaker::current();
        let waker = std::task::Waker::from(Arc::clone(&me));
        loop {
            if let Some(taken) = take(self, &waker)? {
                return Ok(taken);
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            park(&me, None)?;
        }
    }

    /// A connection request from the first queue that has one (see `try_accept`).
    pub(crate) fn try_request(&self, waker: &std::task::Waker) -> io::Result<Option<Request>> {
        let taken = self.try_each(waker, |core, handle| core.stack.take_request(handle))?;
        Ok(taken.map(|(shared, info)| Request {
            shared,
            info,
            decided: false,
        }))
    }

    /// Wait for and take the next connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.wait_for(|l, waker| l.try_accept(waker))
    }

    /// The connections as they come, forever (as `std`'s `incoming`): each item is
    /// [`TcpListener::accept`]'s stream.
    ///
    /// ```no_run
    /// # use synack::tun::{Interface, InterfaceConfig};
    /// # let iface = Interface::open(InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?))?;
    /// let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:7")?;
    /// for stream in listener.incoming() {
    ///     let stream = stream?;
    ///     std::io::copy(&mut &stream, &mut &stream)?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// Non-blocking mode: `accept` and `request` give `WouldBlock` at once when nothing
    /// is waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// TCP_MD5SIG: sign connections with the peers `key` covers (RFC 2385), on every
    /// queue; see [`crate::Stack::set_listener_md5_key`].
    pub fn set_md5_key(&self, key: crate::Md5Key) -> io::Result<()> {
        for (shared, handle) in &self.parts {
            let mut core = shared.lock_open()?;
            core.stack.set_listener_md5_key(*handle, key.clone())?;
        }
        Ok(())
    }

    /// SO_ERROR: a listening socket keeps no error (always None), as on Linux.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        for (shared, _) in &self.parts {
            shared.check_open()?;
        }
        Ok(None)
    }

    /// Take a connection from the first queue that has one, starting at the next queue in
    /// turn; None if none has, with `waker` registered on each (under each queue's lock,
    /// so that a connection arriving meanwhile still wakes it).
    pub(crate) fn try_accept(
        &self,
        waker: &std::task::Waker,
    ) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        let taken = self.try_each(waker, |core, handle| {
            core.stack
                .accept(handle)
                .and_then(|h| Ok((h, core.stack.peer_addr(h)?)))
        })?;
        Ok(taken.map(|(shared, (h, peer))| (TcpStream::from_handle(shared, h), peer)))
    }

    /// `take` from the first queue whose listener has something, starting at the next
    /// queue in turn; None if none has, with `waker` registered on each (under each
    /// queue's lock, so that what arrives meanwhile still wakes it).
    fn try_each<T>(
        &self,
        waker: &std::task::Waker,
        mut take: impl FnMut(&mut Core, ListenerHandle) -> Result<T, Error>,
    ) -> io::Result<Option<(Arc<Shared>, T)>> {
        let n = self.parts.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let (shared, handle) = &self.parts[(first + k) % n];
            let mut core = shared.lock_open()?;
            match take(&mut core, *handle) {
                Ok(taken) => {
                    shared.after_call(&mut core);
                    return Ok(Some((Arc::clone(shared), taken)));
                }
                Err(Error::WouldBlock) => {
                    core.register(WakeKey::Listener(*handle), Interest::Read, waker);
                    shared.after_call(&mut core);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The address it listens on (with the port chosen when it was bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        for (shared, _) in &self.parts {
            shared.check_open()?;
        }
        Ok(self.local)
    }
}

/// The connections of a [`TcpListener`], as they come ([`TcpListener::incoming`]).
///
/// ```
/// use synack::net::{TcpListener, TcpStream};
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = TcpListener::bind(&right, "198.18.0.2:7")?;
/// let _clients = [TcpStream::connect(&left, "198.18.0.2:7")?, TcpStream::connect(&left, "198.18.0.2:7")?];
/// // It never ends by itself: take what you need.
/// for stream in listener.incoming().take(2) {
///     assert_eq!(stream?.local_addr()?.to_string(), "198.18.0.2:7");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        for (shared, handle) in &self.parts {
            let mut core = shared.lock();
            let now = core.now();
            let _ = core.stack.close_listener(now, *handle);
            shared.after_call(&mut core);
        }
    }
}

/// A connection request a decide-first listener holds (see [`TcpListener::request`]):
/// nothing has answered the client's SYN yet. Accept it (the SYN-ACK goes out) or refuse
/// it; one dropped undecided is refused with a RST.
///
/// A listener for every destination in 198.19.0.0/16 that lets one port in:
///
/// ```
/// use synack::net::{TcpListener, TcpStream};
/// use synack::{Capture, Decide, Refusal};
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let capture = Capture::all().prefix("198.19.0.0/16".parse()?);
/// let listener = TcpListener::bind_capture(&right, capture, Some(Decide::new()))?;
/// std::thread::scope(|s| -> std::io::Result<()> {
///     let refused = s.spawn(|| TcpStream::connect(&left, "198.19.7.7:25"));
///     let request = listener.request()?;
///     assert_eq!(request.local_addr().port(), 25);
///     request.refuse(Refusal::Reset)?; // no SYN-ACK ever went out
///     let error = refused.join().unwrap().unwrap_err();
///     assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
///
///     let client = s.spawn(|| TcpStream::connect(&left, "198.19.7.7:443"));
///     let stream = listener.request()?.accept()?;
///     assert_eq!(stream.local_addr()?.to_string(), "198.19.7.7:443"); // the destination asked for
///     client.join().unwrap()?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Request {
    pub(crate) shared: Arc<Shared>,
    info: ConnectionRequest,
    decided: bool,
}

impl Request {
    /// The destination the client asked for: the connection's local address if accepted.
    pub fn local_addr(&self) -> SocketAddr {
        self.info.local
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.info.remote
    }

    /// What the SYN said (its options, when it arrived).
    pub fn info(&self) -> &ConnectionRequest {
        &self.info
    }

    /// Answer the SYN and wait until the handshake completes (or fails: the client gave
    /// up, or did not answer our SYN-ACKs).
    pub fn accept(self) -> io::Result<TcpStream> {
        let stream = self.start_accept()?;
        let key = WakeKey::Conn(stream.handle);
        wait(
            &stream.shared,
            key,
            Interest::Write,
            Block::Forever,
            |core| stream.connect_progress(core),
        )?;
        Ok(stream)
    }

    /// Send the SYN-ACK; the stream is in SYN_RECEIVED (closed if dropped).
    pub(crate) fn start_accept(mut self) -> io::Result<TcpStream> {
        self.decided = true;
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        let h = core.stack.accept_request(now, self.info.handle)?;
        self.shared.after_call(&mut core);
        drop(core);
        Ok(TcpStream::from_handle(Arc::clone(&self.shared), h))
    }

    /// Refuse it: a RST, an ICMP destination unreachable, or nothing.
    pub fn refuse(mut self, refusal: Refusal) -> io::Result<()> {
        self.decided = true;
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        let r = core.stack.refuse_request(now, self.info.handle, refusal);
        self.shared.after_call(&mut core);
        Ok(r?)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.decided {
            let mut core = self.shared.lock();
            let now = core.now();
            let _ = core
                .stack
                .refuse_request(now, self.info.handle, Refusal::Reset);
            self.shared.after_call(&mut core);
        }
    }
}

/// A connection. Dropping the last clone closes it (the stack finishes the close in
/// the background; with [`TcpStream::set_linger`] the drop resets it, or waits).
///
/// As with `std::net::TcpStream`, clones ([`TcpStream::try_clone`]) share one socket:
/// its options (timeouts, non-blocking mode, TCP_NODELAY, linger) are the socket's, not
/// the handle's, and `&TcpStream` reads and writes, so one thread can read while another
/// writes.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use synack::net::{TcpListener, TcpStream};
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = TcpListener::bind(&right, "198.18.0.2:7")?;
/// let mut client = TcpStream::connect(&left, "198.18.0.2:7")?;
/// let (mut server, _) = listener.accept()?;
/// client.write_all(b"request")?;
/// client.shutdown(Shutdown::Write)?; // our FIN: the server reads to the end
/// let mut request = String::new();
/// server.read_to_string(&mut request)?;
/// server.write_all(b"answer")?; // the other direction still flows
/// drop(server);
/// let mut answer = String::new();
/// client.read_to_string(&mut answer)?;
/// assert_eq!((request.as_str(), answer.as_str()), ("request", "answer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpStream {
    inner: Arc<StreamInner>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: ConnectionHandle,
}

/// The socket's options: shared by every clone, as a file descriptor's are.
#[derive(Clone, Copy, Debug, Default)]
struct StreamOptions {
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nonblocking: bool,
    nodelay: bool,
    linger: Option<Duration>,
}

/// The part shared by clones; closing happens when the last one goes.
#[derive(Debug)]
struct StreamInner {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
    options: Mutex<StreamOptions>,
}

impl StreamInner {
    fn options(&self) -> std::sync::MutexGuard<'_, StreamOptions> {
        self.options.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let linger = self.options().linger;
        let mut core = self.shared.lock();
        let now = core.now();
        if linger == Some(Duration::ZERO) {
            // SO_LINGER with a zero timeout: close resets (Linux's tcp_close).
            let _ = core.stack.abort(now, self.handle);
            self.shared.after_call(&mut core);
            return;
        }
        let tuple = core
            .stack
            .local_addr(self.handle)
            .and_then(|l| Ok((l, core.stack.peer_addr(self.handle)?)));
        let _ = core.stack.close(now, self.handle);
        self.shared.after_call(&mut core);
        // SO_LINGER with a timeout: wait until the peer acknowledged our data and FIN
        // (Linux's sk_stream_wait_close: not in FIN_WAIT_1, CLOSING or LAST_ACK), at most
        // that long, as std's and tokio's drop do with the option set.
        let (Some(limit), Ok((local, remote))) = (linger, tuple) else {
            return;
        };
        let deadline = StdInstant::now() + limit;
        loop {
            let waiting = matches!(
                core.stack.state_of(local, remote),
                Some(TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck)
            );
            let left = deadline.saturating_duration_since(StdInstant::now());
            if !waiting || left.is_zero() || self.shared.check_open().is_err() {
                return;
            }
            core = core.wait_changed(left.min(Duration::from_millis(100)));
        }
    }
}

impl TcpStream {
    pub(crate) fn from_handle(shared: Arc<Shared>, handle: ConnectionHandle) -> TcpStream {
        let inner = Arc::new(StreamInner {
            shared: Arc::clone(&shared),
            handle,
            options: Mutex::new(StreamOptions::default()),
        });
        TcpStream {
            inner,
            shared,
            handle,
        }
    }

    /// Another handle to the same connection (e.g. one thread reads, one writes). The
    /// two share the socket's options, as `std`'s clones share a file descriptor's.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        self.shared.check_open()?;
        Ok(TcpStream {
            inner: Arc::clone(&self.inner),
            shared: Arc::clone(&self.shared),
            handle: self.handle,
        })
    }

    /// Connect to `addr` from one of the stack's addresses. As `std`'s, `addr` is
    /// anything [`ToSocketAddrs`] takes (a `SocketAddr`, `"198.18.0.1:80"`, a
    /// `(host, port)` pair resolved by the system's resolver); each address it gives is
    /// tried in turn, and the last one's error is returned if none connects.
    pub fn connect(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| Self::connect_inner(iface, a, None))
    }

    /// Connect, giving up after `timeout` with `TimedOut` (as `std`'s, one address).
    pub fn connect_timeout(
        iface: &Interface,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(zero_timeout());
        }
        Self::connect_inner(iface, *addr, Some(timeout))
    }

    fn connect_inner(
        iface: &Interface,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let stream = TcpStream::start_connect(iface, addr)?;
        let key = WakeKey::Conn(stream.handle);
        let block = match timeout {
            Some(t) => Block::For(t, io::ErrorKind::TimedOut, "connection timed out"),
            None => Block::Forever,
        };
        wait(&stream.shared, key, Interest::Write, block, |core| {
            stream.connect_progress(core)
        })?;
        Ok(stream)
    }

    /// Send the SYN; the stream closes if dropped before it connects.
    pub(crate) fn start_connect(iface: &Interface, addr: SocketAddr) -> io::Result<TcpStream> {
        let shared = iface.shard_for_connect();
        let handle = {
            let mut core = shared.lock_open()?;
            let now = core.now();
            let h = core.stack.connect(now, addr)?;
            shared.after_call(&mut core);
            h
        };
        Ok(TcpStream::from_handle(shared, handle))
    }

    /// Whether the handshake is over: `WouldBlock` while it runs, the error if it failed.
    pub(crate) fn connect_progress(&self, core: &mut Core) -> Result<(), Error> {
        match core.stack.state(self.handle)? {
            TcpState::SynSent | TcpState::SynReceived => Err(Error::WouldBlock),
            TcpState::Closed => Err(core
                .stack
                .error(self.handle)?
                .unwrap_or(Error::ConnectionRefused)),
            _ => Ok(()),
        }
    }

    /// Run `f` on the stack under its lock, then send what it made the stack send.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut Core, ConnectionHandle) -> Result<T, Error>,
    ) -> io::Result<T> {
        let mut core = self.shared.lock_open()?;
        let r = f(&mut core, self.handle);
        self.shared.after_call(&mut core);
        Ok(r?)
    }

    /// Our address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.call(|core, h| core.stack.local_addr(h))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.call(|core, h| core.stack.peer_addr(h))
    }

    /// Reset the connection now (a RST, what SO_LINGER 0 and close do on Linux): queued
    /// data is discarded and the peer sees "connection reset". A relay uses it to carry
    /// a reset from one side to the other.
    pub fn abort(&self) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            core.stack.abort(now, h)
        })
    }

    /// Shut down the reading half, the writing half, or both, as `std`'s does on Linux:
    /// - `Write`: a FIN follows the queued data; later writes fail with `BrokenPipe`.
    /// - `Read`: reads (blocked ones included) return what was already received and then
    ///   end-of-stream (`Ok(0)`) instead of waiting; nothing is sent. Data the peer sends
    ///   later is still accepted and readable, as on Linux; once the writing half is shut
    ///   down too, new data is answered with a RST (RFC 1122 4.2.2.13).
    /// - `Both`: the two.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            if matches!(how, Shutdown::Read | Shutdown::Both) {
                core.stack.shutdown_read(now, h)?;
            }
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                core.stack.shutdown(now, h)?;
            }
            Ok(())
        })
    }

    /// Limit how long a read blocks (None: forever). When it expires the read fails with
    /// `WouldBlock`, as `std`'s does on Unix (EAGAIN). A zero duration is an error
    /// (`InvalidInput`), as in `std`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(zero_timeout());
        }
        self.inner.options().read_timeout = timeout;
        Ok(())
    }

    /// Limit how long a write blocks (None: forever); as [`TcpStream::set_read_timeout`].
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(zero_timeout());
        }
        self.inner.options().write_timeout = timeout;
        Ok(())
    }

    /// The read timeout (None: reads block until they can go on).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.options().read_timeout)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.options().write_timeout)
    }

    /// Non-blocking mode (O_NONBLOCK): reads, writes and peeks that would wait fail with
    /// `WouldBlock` at once instead.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.shared.check_open()?;
        self.inner.options().nonblocking = nonblocking;
        Ok(())
    }

    /// Read received bytes without taking them (MSG_PEEK): the next read returns them
    /// again. Waits as a read does.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let block = self.block(|o| o.read_timeout, "no data within the read timeout");
        wait(
            &self.shared,
            WakeKey::Conn(self.handle),
            Interest::Read,
            block,
            |core| core.stack.peek(self.handle, buf),
        )
    }

    /// The error the connection ended with, or the last ICMP error it survived, taken
    /// (SO_ERROR): a second call returns None.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self
            .call(|core, h| core.stack.take_error(h))?
            .map(io::Error::from))
    }

    /// SO_LINGER: what dropping the last handle does.
    /// - None (the default): close in the background; queued data is still delivered.
    /// - `Some(Duration::ZERO)`: reset the connection (RST), discarding queued data.
    /// - `Some(t)`: close, then block the dropping thread until the peer acknowledged the
    ///   data and our FIN, at most `t` (as Linux's close and `std`'s drop do).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.shared.check_open()?;
        self.inner.options().linger = linger;
        Ok(())
    }

    /// The SO_LINGER choice.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.options().linger)
    }

    /// IP_TTL (IPV6_UNICAST_HOPS over IPv6): the TTL of this connection's packets, from
    /// 1 to 255 (0 is `InvalidInput`, as on Linux).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = u8::try_from(ttl)
            .ok()
            .and_then(core::num::NonZeroU8::new)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a TTL is from 1 to 255"))?;
        self.call(|core, h| {
            let now = core.now();
            core.stack.set_ttl(now, h, Some(ttl))
        })
    }

    /// The TTL of this connection's packets (`Config::ttl` unless set).
    pub fn ttl(&self) -> io::Result<u32> {
        self.call(|core, h| core.stack.ttl(h)).map(u32::from)
    }

    /// SO_SNDBUF: how many unacknowledged bytes the stack holds for this connection.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            core.stack.set_buffers(now, h, Some(bytes), None)
        })
    }

    /// SO_RCVBUF: how many received bytes the stack holds before the window closes.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            core.stack.set_buffers(now, h, None, Some(bytes))
        })
    }

    /// TCP_NODELAY: `true` sends small writes at once; `false` (the default) lets
    /// Nagle's algorithm hold them while data is unacknowledged.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            core.stack.set_nodelay(now, h, nodelay)
        })?;
        self.inner.options().nodelay = nodelay;
        Ok(())
    }

    /// The TCP_NODELAY choice.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.inner.options().nodelay)
    }

    /// TCP_NOTSENT_LOWAT: keep at most about `limit` bytes written but not yet sent.
    /// Writes take more only while fewer are waiting, and the stream counts as writable
    /// (a blocking write wakes) only once fewer than half of `limit` wait, so the data
    /// an application writes next is written late and fresh. None follows
    /// `Config::tcp_notsent_lowat` (off by default). See [`crate::Stack::set_notsent_lowat`].
    pub fn set_notsent_lowat(&self, limit: Option<u32>) -> io::Result<()> {
        self.call(|core, h| {
            let now = core.now();
            core.stack.set_notsent_lowat(now, h, limit)
        })
    }

    /// The TCP_NOTSENT_LOWAT set on this stream (None: the configuration's).
    pub fn notsent_lowat(&self) -> io::Result<Option<u32>> {
        self.call(|core, h| core.stack.notsent_lowat(h))
    }

    /// The connection's state.
    pub fn state(&self) -> io::Result<TcpState> {
        self.call(|core, h| core.stack.state(h))
    }

    /// How a read or write may wait, from the socket's options.
    fn block(
        &self,
        timeout: impl FnOnce(&StreamOptions) -> Option<Duration>,
        expired: &'static str,
    ) -> Block {
        let options = *self.inner.options();
        match timeout(&options) {
            _ if options.nonblocking => Block::Never,
            Some(t) => Block::For(t, io::ErrorKind::WouldBlock, expired),
            None => Block::Forever,
        }
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.handle;
        let block = self.block(|o| o.read_timeout, "no data within the read timeout");
        wait(
            &self.shared,
            WakeKey::Conn(h),
            Interest::Read,
            block,
            |core| {
                let now = core.now();
                core.stack.recv(now, h, buf)
            },
        )
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let h = self.handle;
        let block = self.block(
            |o| o.write_timeout,
            "no room to write within the write timeout",
        );
        wait(
            &self.shared,
            WakeKey::Conn(h),
            Interest::Write,
            block,
            |core| {
                let now = core.now();
                core.stack.send(now, h, buf)
            },
        )
    }

    /// All of `bufs` that fits goes into the send buffer under one lock, so the pieces
    /// leave as one stream of full segments (headers and body in one packet), not one
    /// small segment per piece for Nagle's algorithm to hold back.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let h = self.handle;
        let block = self.block(
            |o| o.write_timeout,
            "no room to write within the write timeout",
        );
        wait(
            &self.shared,
            WakeKey::Conn(h),
            Interest::Write,
            block,
            |core| send_vectored(core, h, bufs),
        )
    }

    /// Everything written is already in the stack's send buffer.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Queue as much of `bufs` as the send buffer takes, in order; `WouldBlock` only when
/// none of it fits.
pub(crate) fn send_vectored(
    core: &mut Core,
    h: ConnectionHandle,
    bufs: &[io::IoSlice<'_>],
) -> Result<usize, Error> {
    let now = core.now();
    let mut total = 0;
    for b in bufs.iter().filter(|b| !b.is_empty()) {
        match core.stack.send(now, h, b) {
            Ok(n) => {
                total += n;
                if n < b.len() {
                    break;
                }
            }
            // What was queued is reported; the error comes back on the next call.
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
