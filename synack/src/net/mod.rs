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
//! let mut s = TcpStream::connect(&iface, "198.18.0.1:80".parse()?)?;
//! s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
//! let mut page = String::new();
//! s.read_to_string(&mut page)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod udp;
pub use udp::UdpSocket;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use crate::device::{Core, Interest, Interface, Shared, ThreadWaker, WakeKey};
use crate::{
    Capture, ConnectionHandle, ConnectionRequest, Decide, Error, ListenerHandle, ListenerOptions,
    Refusal, TcpState,
};

/// Block until `f` returns something other than `WouldBlock`, or the deadline passes:
/// between tries the thread sleeps until an event of `key` that concerns `interest`.
fn wait<T>(
    shared: &Shared,
    key: WakeKey,
    interest: Interest,
    timeout: Option<Duration>,
    mut f: impl FnMut(&mut Core) -> Result<T, Error>,
) -> io::Result<T> {
    let deadline = timeout.map(|t| StdInstant::now() + t);
    let me = ThreadWaker::current();
    let waker = std::task::Waker::from(Arc::clone(&me));
    let mut core = shared.lock_open()?;
    loop {
        let r = f(&mut core);
        if matches!(r, Err(Error::WouldBlock)) {
            // Under the same lock as the try: no event can fall between the two.
            core.register(key, interest, &waker);
        }
        shared.after_call(&mut core);
        match r {
            Err(Error::WouldBlock) => {}
            other => return other.map_err(io::Error::from),
        }
        drop(core);
        park(&me, deadline)?;
        core = shared.lock_open()?;
    }
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
#[derive(Debug)]
pub struct TcpListener {
    /// Each queue's listener.
    pub(crate) parts: Vec<(Arc<Shared>, ListenerHandle)>,
    /// The queue `accept` looks at first: each in turn, so that none waits behind another.
    next: AtomicUsize,
    local: SocketAddr,
}

impl TcpListener {
    /// Listen on `addr` (one of the stack's addresses, or unspecified for all). Port 0
    /// picks a free ephemeral port, as `std` does; [`TcpListener::local_addr`] tells which.
    pub fn bind(iface: &Interface, addr: SocketAddr) -> io::Result<TcpListener> {
        let mut listener = TcpListener {
            parts: Vec::with_capacity(iface.shards.len()),
            next: AtomicUsize::new(0),
            local: addr,
        };
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
        let mut listener = TcpListener {
            parts: Vec::with_capacity(iface.shards.len()),
            next: AtomicUsize::new(0),
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
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

    /// Wait for the next connection request of a decide-first listener (see
    /// [`TcpListener::bind_capture`]).
    pub fn request(&self) -> io::Result<Request> {
        let me = ThreadWaker::current();
        let waker = std::task::Waker::from(Arc::clone(&me));
        loop {
            if let Some(request) = self.try_request(&waker)? {
                return Ok(request);
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
        let me = ThreadWaker::current();
        let waker = std::task::Waker::from(Arc::clone(&me));
        loop {
            if let Some(accepted) = self.try_accept(&waker)? {
                return Ok(accepted);
            }
            park(&me, None)?;
        }
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
        wait(&stream.shared, key, Interest::Write, None, |core| {
            stream.connect_progress(core)
        })?;
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
/// the background).
#[derive(Debug)]
pub struct TcpStream {
    inner: Arc<StreamInner>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) handle: ConnectionHandle,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    nodelay: bool,
}

/// The part shared by clones; closing happens when the last one goes.
#[derive(Debug)]
struct StreamInner {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        let mut core = self.shared.lock();
        let now = core.now();
        let _ = core.stack.close(now, self.handle);
        self.shared.after_call(&mut core);
    }
}

impl TcpStream {
    pub(crate) fn from_handle(shared: Arc<Shared>, handle: ConnectionHandle) -> TcpStream {
        let inner = Arc::new(StreamInner {
            shared: Arc::clone(&shared),
            handle,
        });
        TcpStream {
            inner,
            shared,
            handle,
            read_timeout: None,
            write_timeout: None,
            nodelay: false,
        }
    }

    /// Another handle to the same connection (e.g. one thread reads, one writes).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Arc::clone(&self.inner),
            shared: Arc::clone(&self.shared),
            handle: self.handle,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            nodelay: self.nodelay,
        })
    }

    /// Connect to `addr` from one of the stack's addresses.
    pub fn connect(iface: &Interface, addr: SocketAddr) -> io::Result<TcpStream> {
        Self::connect_inner(iface, addr, None)
    }

    /// Connect, giving up after `timeout`.
    pub fn connect_timeout(
        iface: &Interface,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        Self::connect_inner(iface, addr, Some(timeout))
    }

    fn connect_inner(
        iface: &Interface,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let stream = TcpStream::start_connect(iface, addr)?;
        let key = WakeKey::Conn(stream.handle);
        wait(&stream.shared, key, Interest::Write, timeout, |core| {
            stream.connect_progress(core)
        })?;
        Ok(stream)
    }

    /// Send the SYN; the stream closes if dropped before it connects.
    pub(crate) fn start_connect(iface: &Interface, addr: SocketAddr) -> io::Result<TcpStream> {
        let shared = iface.shard_for_connect();
        let handle = {
            let mut core = shared.lock();
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

    /// Our address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.lock_open()?.stack.local_addr(self.handle)?)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.shared.lock_open()?.stack.peer_addr(self.handle)?)
    }

    /// Reset the connection now (a RST, what SO_LINGER 0 and close do on Linux): queued
    /// data is discarded and the peer sees "connection reset". A relay uses it to carry
    /// a reset from one side to the other.
    pub fn abort(&self) -> io::Result<()> {
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        let r = core.stack.abort(now, self.handle);
        self.shared.after_call(&mut core);
        Ok(r?)
    }

    /// Shut down the writing half (a FIN follows queued data); reading half is a no-op.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut core = self.shared.lock_open()?;
        if how == Shutdown::Read {
            return Ok(());
        }
        let now = core.now();
        let r = core.stack.shutdown(now, self.handle);
        self.shared.after_call(&mut core);
        Ok(r?)
    }

    /// Limit how long `read` blocks (None: forever).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.read_timeout = t;
        Ok(())
    }

    /// Limit how long `write` blocks (None: forever).
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.write_timeout = t;
        Ok(())
    }

    /// SO_SNDBUF: how many unacknowledged bytes the stack holds for this connection.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        core.stack
            .set_buffers(now, self.handle, Some(bytes), None)?;
        self.shared.after_call(&mut core);
        Ok(())
    }

    /// SO_RCVBUF: how many received bytes the stack holds before the window closes.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        core.stack
            .set_buffers(now, self.handle, None, Some(bytes))?;
        self.shared.after_call(&mut core);
        Ok(())
    }

    /// TCP_NODELAY: `true` sends small writes at once; `false` (the default) lets
    /// Nagle's algorithm hold them while data is unacknowledged.
    pub fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        let mut core = self.shared.lock_open()?;
        let now = core.now();
        core.stack.set_nodelay(now, self.handle, nodelay)?;
        self.shared.after_call(&mut core);
        self.nodelay = nodelay;
        Ok(())
    }

    /// The TCP_NODELAY choice.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.nodelay)
    }

    /// The connection's state.
    pub fn state(&self) -> io::Result<TcpState> {
        Ok(self.shared.lock_open()?.stack.state(self.handle)?)
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.handle;
        let key = WakeKey::Conn(h);
        wait(
            &self.shared,
            key,
            Interest::Read,
            self.read_timeout,
            |core| {
                let now = core.now();
                core.stack.recv(now, h, buf)
            },
        )
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let h = self.handle;
        let key = WakeKey::Conn(h);
        wait(
            &self.shared,
            key,
            Interest::Write,
            self.write_timeout,
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
        let key = WakeKey::Conn(h);
        wait(
            &self.shared,
            key,
            Interest::Write,
            self.write_timeout,
            |core| send_vectored(core, h, bufs),
        )
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
