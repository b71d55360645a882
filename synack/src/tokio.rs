//! Async sockets for tokio over a synack stack driven by a TUN [`Interface`]:
//! [`TcpListener`] and [`TcpStream`], the latter implementing tokio's
//! [`AsyncRead`] and [`AsyncWrite`], so
//! hyper, tokio-util codecs and `tokio::io` helpers run on top unchanged. A task that
//! would block registers its waker with the interface; the driver wakes it when the
//! stack reports an event for that socket (readable, writable, state change, incoming).
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use synack::tun::{Interface, InterfaceConfig};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let iface = Interface::open(InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?))?;
//! let listener = synack::tokio::TcpListener::bind(&iface, "198.18.0.2:7").await?;
//! loop {
//!     let (mut stream, _peer) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut buf = [0u8; 4096];
//!         while let Ok(n @ 1..) = stream.read(&mut buf).await {
//!             if stream.write_all(&buf[..n]).await.is_err() { break; }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! The example `hyper_server` runs a hyper HTTP/1.1 server this way.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::ToSocketAddrs;

use crate::device::{Core, Interest, Interface, Shared, WakeKey};
use crate::{net, Capture, ConnectionRequest, Decide, Error, Refusal, TcpState};

/// Try `f` under the interface's lock; on `WouldBlock`, register the task for the next
/// event of `key` that concerns `interest`.
fn poll_op<T>(
    shared: &Shared,
    cx: &mut Context<'_>,
    (key, interest): (WakeKey, Interest),
    f: impl FnOnce(&mut Core) -> Result<T, Error>,
) -> Poll<io::Result<T>> {
    let mut core = match shared.lock_open() {
        Ok(core) => core,
        Err(e) => return Poll::Ready(Err(e)),
    };
    let r = f(&mut core);
    if matches!(r, Err(Error::WouldBlock)) {
        core.register(key, interest, cx.waker());
    }
    shared.after_call(&mut core);
    match r {
        Err(Error::WouldBlock) => Poll::Pending,
        other => Poll::Ready(other.map_err(io::Error::from)),
    }
}

/// A listening socket whose `accept` is a future.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// let (mut server, peer) = listener.accept().await?;
/// assert_eq!(peer, client.local_addr()?);
/// client.write_all(b"ping").await?;
/// let mut got = [0; 4];
/// server.read_exact(&mut got).await?;
/// assert_eq!(&got, b"ping");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpListener {
    inner: net::TcpListener,
}

impl TcpListener {
    /// Listen on `addr` (one of the stack's addresses, or unspecified for all; port 0
    /// picks a free one). As tokio's, it is `async` and `addr` is anything
    /// [`ToSocketAddrs`] takes; each address is tried in turn.
    pub async fn bind(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| async move { net::TcpListener::bind(iface, a) })
            .await
            .map(|inner| TcpListener { inner })
    }

    /// A tokio listener from a blocking one (as tokio's `from_std`).
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(false)?;
        Ok(TcpListener { inner: listener })
    }

    /// Listen on every destination `capture` names (see
    /// [`net::TcpListener::bind_capture`]); with `decide`, connections come as requests
    /// ([`TcpListener::request`]).
    pub fn bind_capture(
        iface: &Interface,
        capture: Capture,
        decide: Option<Decide>,
    ) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: net::TcpListener::bind_capture(iface, capture, decide)?,
        })
    }

    /// Wait for the next connection request of a decide-first listener.
    pub async fn request(&self) -> io::Result<Request> {
        poll_fn(|cx| self.poll_request(cx)).await
    }

    /// Poll for the next connection request of a decide-first listener.
    pub fn poll_request(&self, cx: &mut Context<'_>) -> Poll<io::Result<Request>> {
        match self.inner.try_request(cx.waker()) {
            Ok(Some(inner)) => Poll::Ready(Ok(Request { inner })),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Wait for the next connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll for the next connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.inner.try_accept(cx.waker()) {
            Ok(Some((stream, peer))) => Poll::Ready(Ok((TcpStream { inner: stream }, peer))),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection request a decide-first listener holds (see [`net::Request`]): accept
/// it (the SYN-ACK goes out) or refuse it; one dropped undecided is refused with a RST.
///
/// ```
/// use synack::tokio::{TcpListener, TcpStream};
/// use synack::{Capture, Decide};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let capture = Capture::all().prefix("198.19.0.0/16".parse()?);
/// let listener = TcpListener::bind_capture(&right, capture, Some(Decide::new()))?;
/// let server = async {
///     let request = listener.request().await?; // the client's SYN, not answered yet
///     assert_eq!(request.local_addr().to_string(), "198.19.0.80:80");
///     request.accept().await // the SYN-ACK goes out; the handshake completes
/// };
/// let (client, server) = tokio::join!(TcpStream::connect(&left, "198.19.0.80:80"), server);
/// assert_eq!(client?.peer_addr()?, server?.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Request {
    inner: net::Request,
}

impl Request {
    /// The destination the client asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr()
    }

    /// What the SYN said.
    pub fn info(&self) -> &ConnectionRequest {
        self.inner.info()
    }

    /// Answer the SYN and wait until the handshake completes (or fails).
    pub async fn accept(self) -> io::Result<TcpStream> {
        let inner = self.inner.start_accept()?;
        let key = (WakeKey::Conn(inner.handle), Interest::Write);
        poll_fn(|cx| poll_op(&inner.shared, cx, key, |core| inner.connect_progress(core))).await?;
        Ok(TcpStream { inner })
    }

    /// Refuse it: a RST, an ICMP destination unreachable, or nothing.
    pub fn refuse(self, refusal: Refusal) -> io::Result<()> {
        self.inner.refuse(refusal)
    }
}

/// A UDP socket for tokio (see [`net::UdpSocket`]): `send_to`/`recv_from` and friends
/// as tokio's, `recv_datagram`/`send_from` for a catch-all socket.
///
/// ```
/// use synack::tokio::UdpSocket;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let server = UdpSocket::bind(&right, "198.18.0.2:53").await?;
/// let client = UdpSocket::bind(&left, "198.18.0.1:0").await?;
/// client.send_to(b"query", "198.18.0.2:53").await?;
/// let mut buf = [0; 512];
/// let (n, from) = server.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"query"[..], client.local_addr()?));
/// server.send_to(b"answer", from).await?;
/// let (n, _) = client.recv_from(&mut buf).await?;
/// assert_eq!(&buf[..n], b"answer");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    inner: net::UdpSocket,
}

impl UdpSocket {
    /// Bind to `addr` (port 0: an ephemeral port). As tokio's, it is `async` and `addr`
    /// is anything [`ToSocketAddrs`] takes; each address is tried in turn.
    pub async fn bind(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| async move { net::UdpSocket::bind(iface, a) })
            .await
            .map(|inner| UdpSocket { inner })
    }

    /// A catch-all socket (see [`net::UdpSocket::bind_capture`]).
    pub fn bind_capture(iface: &Interface, capture: Capture) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: net::UdpSocket::bind_capture(iface, capture)?,
        })
    }

    /// Its address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Send to `peer` by default and take datagrams from it only (the first of its
    /// addresses that works).
    pub async fn connect(&self, peer: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(peer, |a| async move { self.inner.connect(a) }).await
    }

    /// Send one datagram to `to`, its first address (it never waits: the stack queues
    /// it or says `NoBufferSpace`).
    pub async fn send_to(&self, buf: &[u8], to: impl ToSocketAddrs) -> io::Result<usize> {
        let to = ::tokio::net::lookup_host(to)
            .await?
            .next()
            .ok_or_else(no_addresses)?;
        self.inner.send_to(buf, to)
    }

    /// Send one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.send(buf)
    }

    /// Send one datagram to `to` from `from` (a catch-all socket).
    pub async fn send_from(
        &self,
        buf: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> io::Result<usize> {
        self.inner.send_from(buf, from, to)
    }

    /// Wait for a datagram; what fits of it goes into `buf`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let d = self.recv_datagram().await?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.from))
    }

    /// Wait for a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    /// The next datagram without taking it.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let d = poll_fn(|cx| self.poll_take(cx, |core, h| core.stack.udp_peek(h).cloned())).await?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.from))
    }

    /// Wait for the next datagram, whole, with the address it was sent to.
    pub async fn recv_datagram(&self) -> io::Result<crate::stack::Datagram> {
        poll_fn(|cx| self.poll_recv_datagram(cx)).await
    }

    /// Poll for a datagram into `buf` (what does not fit is discarded), as tokio's
    /// `poll_recv_from`.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.poll_recv_datagram(cx).map_ok(|d| {
            let n = d.data.len().min(buf.remaining());
            buf.put_slice(&d.data[..n]);
            d.from
        })
    }

    /// Poll for sending a datagram to `to` (ready at once: the stack queues it).
    pub fn poll_send_to(
        &self,
        _cx: &mut Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.inner.send_to(buf, to))
    }

    /// Wait until a datagram (or an error) is waiting, without taking it.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_take(cx, |core, h| core.stack.udp_peek(h).map(|_| ()))).await
    }

    /// Poll for the next datagram.
    pub fn poll_recv_datagram(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<crate::stack::Datagram>> {
        self.poll_take(cx, |core, h| core.stack.udp_recv(h))
    }

    fn poll_take<T>(
        &self,
        cx: &mut Context<'_>,
        mut take: impl FnMut(&mut Core, crate::stack::UdpHandle) -> Result<T, Error>,
    ) -> Poll<io::Result<T>> {
        match self.inner.try_take(cx.waker(), &mut take) {
            Ok(Some(got)) => Poll::Ready(Ok(got)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A connection for tokio. Dropping it closes the connection (the stack finishes the
/// close in the background).
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"request").await?;
/// client.shutdown().await?; // our FIN: the server reads to the end
/// let mut request = String::new();
/// server.read_to_string(&mut request).await?;
/// server.write_all(b"answer").await?; // the other direction still flows
/// drop(server);
/// let mut answer = String::new();
/// client.read_to_string(&mut answer).await?;
/// assert_eq!((request.as_str(), answer.as_str()), ("request", "answer"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpStream {
    inner: net::TcpStream,
}

impl TcpStream {
    /// Connect to `addr` from one of the stack's addresses. As tokio's, `addr` is
    /// anything [`ToSocketAddrs`] takes (names are resolved on tokio's blocking pool);
    /// each address is tried in turn and the last error is returned if none connects.
    pub async fn connect(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| Self::connect_one(iface, a)).await
    }

    async fn connect_one(iface: &Interface, addr: SocketAddr) -> io::Result<TcpStream> {
        let inner = net::TcpStream::start_connect(iface, addr)?;
        let key = (WakeKey::Conn(inner.handle), Interest::Write);
        poll_fn(|cx| poll_op(&inner.shared, cx, key, |core| inner.connect_progress(core))).await?;
        Ok(TcpStream { inner })
    }

    /// A tokio stream from a blocking one (as tokio's `from_std`). Its non-blocking
    /// mode and timeouts no longer matter: tokio's calls never block.
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream { inner: stream })
    }

    /// The blocking stream (as tokio's `into_std`), for a thread that wants to block.
    pub fn into_std(self) -> io::Result<net::TcpStream> {
        Ok(self.inner)
    }

    /// Our address and port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// TCP_NODELAY (see [`net::TcpStream::set_nodelay`]).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// The TCP_NODELAY choice.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// TCP_NOTSENT_LOWAT (see [`net::TcpStream::set_notsent_lowat`]).
    pub fn set_notsent_lowat(&self, limit: Option<u32>) -> io::Result<()> {
        self.inner.set_notsent_lowat(limit)
    }

    /// The TCP_NOTSENT_LOWAT set on this stream (None: the configuration's).
    pub fn notsent_lowat(&self) -> io::Result<Option<u32>> {
        self.inner.notsent_lowat()
    }

    /// IP_TTL (see [`net::TcpStream::set_ttl`]).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// The TTL of this connection's packets.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// SO_LINGER (see [`net::TcpStream::set_linger`]). As with tokio's, a non-zero
    /// linger makes dropping the stream block the dropping thread up to that long.
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        self.inner.set_linger(linger)
    }

    /// The SO_LINGER choice.
    pub fn linger(&self) -> io::Result<Option<std::time::Duration>> {
        self.inner.linger()
    }

    /// SO_ERROR, taken (see [`net::TcpStream::take_error`]).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// The connection's TCP state.
    pub fn state(&self) -> io::Result<TcpState> {
        self.inner.state()
    }

    /// Wait until a read would not block (data, end-of-stream or an error), without
    /// reading.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Wait until a write would not block (room in the send buffer, or an error).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Poll for a read that would not block, without reading (the task is woken by the
    /// socket's next event otherwise).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let h = self.inner.handle;
        poll_op(&self.inner.shared, cx, self.key(Interest::Read), |core| {
            if core.stack.readable(h)? {
                Ok(())
            } else {
                Err(Error::WouldBlock)
            }
        })
    }

    /// Poll for a write that would not block, without writing.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let h = self.inner.handle;
        poll_op(&self.inner.shared, cx, self.key(Interest::Write), |core| {
            let now = core.now();
            if core.stack.writable(now, h)? {
                Ok(())
            } else {
                Err(Error::WouldBlock)
            }
        })
    }

    /// Read what is there now, without waiting: `WouldBlock` if nothing is (as tokio's
    /// `try_read`; `Ok(0)` is end-of-stream).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.try_op(|core| {
            let now = core.now();
            core.stack.recv(now, h, buf)
        })
    }

    /// Write what fits now, without waiting: `WouldBlock` if nothing does.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.try_op(|core| {
            let now = core.now();
            core.stack.send(now, h, buf)
        })
    }

    /// Write what fits of `bufs` now, in order, without waiting.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let h = self.inner.handle;
        self.try_op(|core| net::send_vectored(core, h, bufs))
    }

    /// Wait for data and copy it into `buf` without taking it (MSG_PEEK).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.inner.handle;
        poll_fn(|cx| {
            poll_op(&self.inner.shared, cx, self.key(Interest::Read), |core| {
                core.stack.peek(h, buf)
            })
        })
        .await
    }

    /// Reset the connection now (see [`net::TcpStream::abort`]).
    pub fn abort(&self) -> io::Result<()> {
        self.inner.abort()
    }

    /// Borrowed read and write halves, for reading and writing at once in one task (as
    /// tokio's `split`).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// Owned read and write halves that can move to different tasks (as tokio's
    /// `into_split`). Dropping the write half shuts the writing half down (a FIN), as
    /// tokio's does; [`OwnedWriteHalf::reunite`] puts the two back together.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let stream = Arc::new(self);
        (
            OwnedReadHalf {
                stream: Arc::clone(&stream),
            },
            OwnedWriteHalf {
                stream,
                shutdown_on_drop: true,
            },
        )
    }

    fn key(&self, interest: Interest) -> (WakeKey, Interest) {
        (WakeKey::Conn(self.inner.handle), interest)
    }

    /// `f` under the lock, once: `WouldBlock` as an error, not a wait.
    fn try_op<T>(&self, f: impl FnOnce(&mut Core) -> Result<T, Error>) -> io::Result<T> {
        let shared = &self.inner.shared;
        let mut core = shared.lock_open()?;
        let r = f(&mut core);
        shared.after_call(&mut core);
        Ok(r?)
    }

    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let h = self.inner.handle;
        let dst = buf.initialize_unfilled();
        let r = poll_op(&self.inner.shared, cx, self.key(Interest::Read), |core| {
            let now = core.now();
            core.stack.recv(now, h, dst)
        });
        r.map_ok(|n| buf.advance(n))
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let h = self.inner.handle;
        poll_op(&self.inner.shared, cx, self.key(Interest::Write), |core| {
            let now = core.now();
            core.stack.send(now, h, data)
        })
    }

    fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let h = self.inner.handle;
        poll_op(&self.inner.shared, cx, self.key(Interest::Write), |core| {
            net::send_vectored(core, h, bufs)
        })
    }

    fn shutdown_write(&self) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown(Shutdown::Write))
    }
}

/// Run `f` on each address `addr` resolves to (with tokio's resolver), as tokio's `bind`
/// and `connect` do: the first success, else the last error.
async fn each_addr<T, F: std::future::Future<Output = io::Result<T>>>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> F,
) -> io::Result<T> {
    let mut last = None;
    for a in ::tokio::net::lookup_host(addr).await? {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_addresses))
}

/// No address to try.
fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, data)
    }

    /// The pieces go into the send buffer under one lock (see
    /// [`net::TcpStream`]'s `write_vectored`): hyper writes headers and body this way.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Everything written is already in the stack's send buffer.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Send our FIN (the read half stays open).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write()
    }
}

/// The reading half of a borrowed [`TcpStream`] ([`TcpStream::split`]).
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// # let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// # let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// # let (mut server, _) = listener.accept().await?;
/// // An echo: what the read half reads, the write half writes back.
/// let (mut rd, mut wr) = server.split();
/// let echo = async {
///     tokio::io::copy(&mut rd, &mut wr).await?;
///     wr.shutdown().await
/// };
/// let talk = async {
///     client.write_all(b"echo me").await?;
///     client.shutdown().await?;
///     let mut back = Vec::new();
///     client.read_to_end(&mut back).await.map(|_| back)
/// };
/// let (echoed, back) = tokio::join!(echo, talk);
/// echoed?;
/// assert_eq!(back?, b"echo me");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of a borrowed [`TcpStream`] ([`TcpStream::split`]); its
/// `shutdown` sends our FIN.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// # let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// # let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// # let (mut server, _) = listener.accept().await?;
/// let (_rd, mut wr) = server.split();
/// wr.write_all(b"bye").await?;
/// wr.shutdown().await?; // a FIN; the read half stays open
/// let mut got = String::new();
/// client.read_to_string(&mut got).await?;
/// assert_eq!(got, "bye");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

/// The reading half of a [`TcpStream`] split with [`TcpStream::into_split`].
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// # let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// # let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// # let (server, _) = listener.accept().await?;
/// // Owned halves move into a task of their own: an echo.
/// let (mut rd, mut wr) = server.into_split();
/// let echo = tokio::spawn(async move { tokio::io::copy(&mut rd, &mut wr).await });
/// client.write_all(b"echo me").await?;
/// client.shutdown().await?;
/// let mut back = Vec::new();
/// client.read_to_end(&mut back).await?; // the task ended: its write half sent a FIN
/// assert_eq!((back.as_slice(), echo.await??), (&b"echo me"[..], 7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf {
    stream: Arc<TcpStream>,
}

/// The writing half of a [`TcpStream`] split with [`TcpStream::into_split`]. Dropping it
/// shuts the writing half down (a FIN), as tokio's does, unless [`OwnedWriteHalf::forget`]
/// was called.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use synack::tokio::{TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// # let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// # let mut client = TcpStream::connect(&left, "198.18.0.2:7").await?;
/// # let (server, _) = listener.accept().await?;
/// let (_rd, mut wr) = server.into_split();
/// wr.write_all(b"bye").await?;
/// drop(wr); // a FIN
/// let mut got = String::new();
/// client.read_to_string(&mut got).await?;
/// assert_eq!(got, "bye");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

/// The two halves given to [`OwnedWriteHalf::reunite`] came from different streams.
/// It gives them back.
///
/// ```
/// use synack::tokio::{ReuniteError, TcpListener, TcpStream};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// # let listener = TcpListener::bind(&right, "198.18.0.2:7").await?;
/// let (r1, w1) = TcpStream::connect(&left, "198.18.0.2:7").await?.into_split();
/// let (r2, w2) = TcpStream::connect(&left, "198.18.0.2:7").await?.into_split();
/// let Err(ReuniteError(r1, w2)) = r1.reunite(w2) else {
///     unreachable!("halves of two streams")
/// };
/// let (one, two) = (r1.reunite(w1)?, r2.reunite(w2)?);
/// assert_ne!(one.local_addr()?, two.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl std::fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

impl OwnedReadHalf {
    /// Put the stream back together with its write half.
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        other.reunite(self)
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Our address and port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Wait until a read would not block.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Read what is there now, without waiting.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }

    /// Wait for data and copy it without taking it.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.peek(buf).await
    }
}

impl OwnedWriteHalf {
    /// Put the stream back together with its read half.
    pub fn reunite(mut self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.stream, &other.stream) {
            return Err(ReuniteError(other, self));
        }
        self.shutdown_on_drop = false;
        let stream = Arc::clone(&self.stream);
        drop(self);
        drop(other);
        Ok(Arc::try_unwrap(stream).expect("both halves were given back"))
    }

    /// Drop without shutting the writing half down.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Our address and port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Wait until a write would not block.
    pub async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Write what fits now, without waiting.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.stream.try_write(buf)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.inner.shutdown(Shutdown::Write);
        }
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read_priv(cx, buf)
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream.poll_read_priv(cx, buf)
    }
}

/// The write side's `AsyncWrite`, shared by the borrowed and the owned write halves.
macro_rules! write_half {
    ($t:ty, $s:ident => $stream:expr) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                data: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $stream.poll_write_priv(cx, data)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $stream.poll_write_vectored_priv(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Send our FIN (the read half stays open).
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $s = &*self;
                $stream.shutdown_write()
            }
        }
    };
}
write_half!(WriteHalf<'_>, half => half.0);
write_half!(OwnedWriteHalf, half => half.stream);
