//! UDP sockets in the shape of `std::net::UdpSocket`, over a TUN [`Interface`]: bind,
//! connect, send_to/recv_from, send/recv, peek, timeouts. One socket is bound on every
//! queue's stack (a datagram may arrive on any queue); receiving takes from each in
//! turn, sending goes out through the first. A catch-all socket ([`UdpSocket::bind_capture`])
//! receives datagrams to any captured destination ([`UdpSocket::recv_datagram`] tells
//! which) and answers from it ([`UdpSocket::send_from`]): what a relay needs.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use super::park;
use crate::device::{Interest, Interface, Shared, ThreadWaker, WakeKey};
use crate::stack::{Datagram, UdpHandle};
use crate::{Capture, Error};

/// A UDP socket.
///
/// ```
/// use synack::net::UdpSocket;
/// # use synack::device::{memory, DeviceConfig, Interface};
/// # let (a, b) = memory::pair(256);
/// # let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// # let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let server = UdpSocket::bind(&right, "198.18.0.2:53")?;
/// let client = UdpSocket::bind(&left, "198.18.0.1:0")?;
/// client.connect("198.18.0.2:53")?;
/// client.send(b"query")?;
/// let mut buf = [0; 512];
/// let (n, from) = server.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"query"[..], client.local_addr()?));
/// server.send_to(b"answer", from)?;
/// let n = client.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"answer");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    parts: Vec<(Arc<Shared>, UdpHandle)>,
    next: AtomicUsize,
    local: SocketAddr,
    read_timeout: Mutex<Option<Duration>>,
}

impl UdpSocket {
    /// Bind to `addr` (one of the stack's addresses, or unspecified for all); port 0
    /// picks a free ephemeral port ([`UdpSocket::local_addr`] tells which). As `std`'s,
    /// `addr` is anything [`ToSocketAddrs`] takes; each address is tried in turn.
    pub fn bind(iface: &Interface, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        super::each_addr(addr, |a| Self::bind_one(iface, a))
    }

    fn bind_one(iface: &Interface, addr: SocketAddr) -> io::Result<UdpSocket> {
        let mut socket = UdpSocket::empty(addr);
        // The first queue picks the port; the others bind the same one.
        for shared in &iface.shards {
            let mut core = shared.lock_open()?;
            let h = core.stack.udp_bind(socket.local)?;
            socket.local = core.stack.udp_local_addr(h)?;
            socket.parts.push((Arc::clone(shared), h));
        }
        Ok(socket)
    }

    /// A catch-all socket: datagrams to any destination `capture` names that no bound
    /// socket takes (see [`crate::Stack::udp_bind_capture`]).
    pub fn bind_capture(iface: &Interface, capture: Capture) -> io::Result<UdpSocket> {
        let mut socket = UdpSocket::empty(SocketAddr::from(([0, 0, 0, 0], 0)));
        for shared in &iface.shards {
            let mut core = shared.lock_open()?;
            let h = core.stack.udp_bind_capture(capture.clone())?;
            socket.parts.push((Arc::clone(shared), h));
        }
        Ok(socket)
    }

    fn empty(local: SocketAddr) -> UdpSocket {
        UdpSocket {
            parts: Vec::new(),
            next: AtomicUsize::new(0),
            local,
            read_timeout: Mutex::new(None),
        }
    }

    /// Its address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let (shared, h) = &self.parts[0];
        Ok(shared.lock_open()?.stack.udp_local_addr(*h)?)
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let (shared, h) = &self.parts[0];
        Ok(shared.lock_open()?.stack.udp_peer_addr(*h)?)
    }

    /// Send to `peer` by default and take datagrams from it only (the first address
    /// `peer` resolves to that works, as `std`'s).
    pub fn connect(&self, peer: impl ToSocketAddrs) -> io::Result<()> {
        super::each_addr(peer, |peer| {
            for (shared, h) in &self.parts {
                shared.lock_open()?.stack.udp_connect(*h, peer)?;
            }
            Ok(())
        })
    }

    /// How long `recv*` wait at most (None: forever); a timeout gives `WouldBlock`, as
    /// std's does on Unix.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner()) = timeout;
        Ok(())
    }

    /// Send one datagram to `to` (its first address, as `std`'s).
    pub fn send_to(&self, buf: &[u8], to: impl ToSocketAddrs) -> io::Result<usize> {
        let to = to.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.with_sender(|core, h| {
            let now = core.now();
            core.stack.udp_send_to(now, h, buf, to)
        })
    }

    /// Send one datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.with_sender(|core, h| {
            let now = core.now();
            core.stack.udp_send(now, h, buf)
        })
    }

    /// Send one datagram to `to` from `from` (a catch-all socket answering from the
    /// destination its client sent to).
    pub fn send_from(&self, buf: &[u8], from: SocketAddr, to: SocketAddr) -> io::Result<usize> {
        self.with_sender(|core, h| {
            let now = core.now();
            core.stack.udp_send_from(now, h, buf, from, to)
        })
    }

    fn with_sender(
        &self,
        f: impl FnOnce(&mut crate::device::Core, UdpHandle) -> Result<usize, Error>,
    ) -> io::Result<usize> {
        let (shared, h) = &self.parts[0];
        let mut core = shared.lock_open()?;
        let r = f(&mut core, *h);
        shared.after_call(&mut core);
        Ok(r?)
    }

    /// Wait for a datagram; copy what fits of it into `buf` (the rest is discarded, as
    /// on Linux) and say who sent it.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let d = self.recv_datagram()?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.from))
    }

    /// [`UdpSocket::recv_from`] from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// The next datagram without taking it.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let d = self.wait_for(|core, h| core.stack.udp_peek(h).cloned())?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.from))
    }

    /// Wait for the next datagram, whole, with the address it was sent to.
    pub fn recv_datagram(&self) -> io::Result<Datagram> {
        self.wait_for(|core, h| core.stack.udp_recv(h))
    }

    fn wait_for<T>(
        &self,
        mut take: impl FnMut(&mut crate::device::Core, UdpHandle) -> Result<T, Error>,
    ) -> io::Result<T> {
        let timeout = *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let me = ThreadWaker::current();
        let waker = std::task::Waker::from(Arc::clone(&me));
        loop {
            if let Some(got) = self.try_take(&waker, &mut take)? {
                return Ok(got);
            }
            if deadline.is_some_and(|d| StdInstant::now() >= d) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "no datagram within the read timeout",
                ));
            }
            park(&me, deadline).or_else(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
    }

    /// `take` from the first queue's socket that has something, starting at the next
    /// in turn; None (with `waker` registered on each) if none has.
    pub(crate) fn try_take<T>(
        &self,
        waker: &std::task::Waker,
        take: &mut impl FnMut(&mut crate::device::Core, UdpHandle) -> Result<T, Error>,
    ) -> io::Result<Option<T>> {
        let n = self.parts.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let (shared, h) = &self.parts[(first + k) % n];
            let mut core = shared.lock_open()?;
            match take(&mut core, *h) {
                Ok(got) => {
                    shared.after_call(&mut core);
                    return Ok(Some(got));
                }
                Err(Error::WouldBlock) => {
                    core.register(WakeKey::Udp(*h), Interest::Read, waker);
                    shared.after_call(&mut core);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        for (shared, h) in &self.parts {
            let mut core = shared.lock();
            let _ = core.stack.udp_close(*h);
            shared.after_call(&mut core);
        }
    }
}
