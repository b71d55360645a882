//! The [`Stack`]: owns addresses, listeners and connections, demultiplexes arriving
//! packets to them, and hands out what they want to send. Sans-IO: every call takes
//! `now` from the caller, nothing here reads a clock or touches a device.

mod config;
mod error;
mod event;

use std::net::{IpAddr, SocketAddr};

pub use config::Config;
pub use error::Error;
pub use event::Event;

use crate::{Instant, TcpState};

/// Names one connection of a [`Stack`]. Cheap to copy; stale handles are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Names one listening socket of a [`Stack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerHandle(pub(crate) u32);

/// A user-space TCP/IP stack: one host's TCP.
pub struct Stack {
    config: Config,
    addresses: Vec<IpAddr>,
}

impl Stack {
    /// A stack with no addresses yet; see [`Stack::add_address`].
    pub fn new(config: Config) -> Stack {
        Stack {
            config,
            addresses: Vec::new(),
        }
    }

    /// The configuration this stack runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Give the stack an IP address: it accepts packets sent to it and uses it as a source.
    pub fn add_address(&mut self, addr: IpAddr) {
        if !self.addresses.contains(&addr) {
            self.addresses.push(addr);
        }
    }

    /// This stack's addresses.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// Feed one IP packet (IPv4 or IPv6, no link header) that arrived at `now`.
    pub fn receive(&mut self, now: Instant, packet: &[u8]) {
        let _ = (now, packet);
        todo!()
    }

    /// The next IP packet to put on the wire, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let _ = now;
        todo!()
    }

    /// The earliest instant at which [`Stack::on_timeout`] has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        todo!()
    }

    /// Fire every timer due at or before `now`.
    pub fn on_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }

    /// Listen on `local` (an unspecified IP listens on all of the stack's addresses).
    pub fn listen(&mut self, local: SocketAddr, backlog: usize) -> Result<ListenerHandle, Error> {
        let _ = (local, backlog);
        todo!()
    }

    /// Take the next established connection from a listener, or `WouldBlock`.
    pub fn accept(&mut self, listener: ListenerHandle) -> Result<ConnectionHandle, Error> {
        let _ = listener;
        todo!()
    }

    /// Stop listening; connections not yet accepted are reset.
    pub fn close_listener(&mut self, now: Instant, listener: ListenerHandle) -> Result<(), Error> {
        let _ = (now, listener);
        todo!()
    }

    /// Active open to `remote` from an ephemeral port of one of our addresses.
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnectionHandle, Error> {
        let _ = (now, remote);
        todo!()
    }

    /// Active open from a chosen local address and port (port 0: pick an ephemeral one).
    pub fn connect_from(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnectionHandle, Error> {
        let _ = (now, local, remote);
        todo!()
    }

    /// Queue bytes for sending; returns how many fit in the send buffer (`WouldBlock` if none).
    pub fn send(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        data: &[u8],
    ) -> Result<usize, Error> {
        let _ = (now, conn, data);
        todo!()
    }

    /// Read received bytes: `Ok(0)` is end-of-stream, `WouldBlock` means nothing yet.
    pub fn recv(
        &mut self,
        now: Instant,
        conn: ConnectionHandle,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let _ = (now, conn, buf);
        todo!()
    }

    /// Shut down the sending half (half-close): a FIN follows the queued data.
    pub fn shutdown(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        let _ = (now, conn);
        todo!()
    }

    /// Close: the application gives up the handle; the stack finishes the close.
    pub fn close(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        let _ = (now, conn);
        todo!()
    }

    /// Abort: send RST and drop the connection at once.
    pub fn abort(&mut self, now: Instant, conn: ConnectionHandle) -> Result<(), Error> {
        let _ = (now, conn);
        todo!()
    }

    /// The connection's current state.
    pub fn state(&self, conn: ConnectionHandle) -> Result<TcpState, Error> {
        let _ = conn;
        todo!()
    }

    /// Our address and port of a connection.
    pub fn local_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        let _ = conn;
        todo!()
    }

    /// The peer's address and port of a connection.
    pub fn peer_addr(&self, conn: ConnectionHandle) -> Result<SocketAddr, Error> {
        let _ = conn;
        todo!()
    }
}
