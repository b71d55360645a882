//! Typed errors returned to the application by [`crate::Stack`] calls.

use core::fmt;
#[cfg(feature = "std")]
use std::io;

use crate::TcpState;

/// What went wrong with a socket call, or why a connection ended.
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
/// let conn = client.connect(now, "198.18.0.2:81".parse()?)?; // nobody listens
/// pump(now, &mut client, &mut server);
/// let error = client.error(conn)?.unwrap();
/// assert_eq!(error, Error::ConnectionRefused);
/// // As std::io::Error, with the kind std uses.
/// let io: std::io::Error = error.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
/// match error {
///     Error::WouldBlock => { /* wait for the next event */ }
///     Error::ConnectionRefused | Error::ConnectionReset => { /* give up */ }
///     // Non-exhaustive: a match needs this arm.
///     _ => {}
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered our SYN with RST: nobody listens on that port.
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// The connection was aborted locally (abort(), close() with unread data, data after close).
    ConnectionAborted,
    /// Retransmissions ran out (SYN, data, FIN or probes) and the connection was dropped.
    TimedOut,
    /// The local address and port are already in use (by a listener, a connection, or TIME_WAIT).
    AddressInUse,
    /// The local address is not one of this stack's addresses, or no address of that family exists.
    AddressNotAvailable,
    /// No ephemeral port is free for this destination.
    NoEphemeralPorts,
    /// The handle does not name a live socket (closed already, or never existed).
    InvalidHandle,
    /// The call is not allowed in the connection's current state.
    InvalidState(TcpState),
    /// Nothing to read or no room to write yet; try again after the next event.
    WouldBlock,
    /// Writing after this side shut down its sending half (or after the connection closed).
    BrokenPipe,
    /// The connection is not established yet.
    NotConnected,
    /// An ICMP message said the peer's network cannot be reached.
    NetworkUnreachable,
    /// An ICMP message said the peer's host cannot be reached (or the path is prohibited).
    HostUnreachable,
    /// A resource limit of the stack is reached (`Config::max_connections`, or the
    /// buffer memory limit `Config::tcp_mem`): like Linux's ENOBUFS.
    NoBufferSpace,
    /// A datagram larger than UDP can carry (65,507 bytes over IPv4): EMSGSIZE.
    MessageTooLong,
    /// The operation is turned off by the configuration (TCP Fast Open without
    /// `Config::tcp_fastopen`'s client bit): EOPNOTSUPP.
    Unsupported,
    /// An argument is out of range (a TCP-MD5 key longer than 80 bytes, or one to
    /// remove that is not there): EINVAL.
    InvalidArgument,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConnectionRefused => write!(f, "connection refused: the peer answered with RST (is anything listening on that port?)"),
            Error::ConnectionReset => write!(f, "connection reset by peer"),
            Error::ConnectionAborted => write!(f, "connection aborted locally"),
            Error::TimedOut => write!(f, "connection timed out: retransmissions ran out without an answer from the peer (is it reachable?)"),
            Error::AddressInUse => write!(f, "address in use: another socket or a TIME_WAIT entry holds that local address and port (pick another port or wait for TIME_WAIT to end)"),
            Error::AddressNotAvailable => write!(f, "address not available: add the address to the stack first, or use one of its addresses"),
            Error::NoEphemeralPorts => write!(f, "no free ephemeral port for this destination (too many connections, or widen the ephemeral port range)"),
            Error::InvalidHandle => write!(f, "invalid handle: the socket was already closed"),
            Error::InvalidState(s) => write!(f, "operation not allowed in state {s}"),
            Error::WouldBlock => write!(f, "operation would block: try again after the next event"),
            Error::BrokenPipe => write!(f, "broken pipe: the sending half is shut down"),
            Error::NotConnected => write!(f, "not connected yet"),
            Error::NetworkUnreachable => write!(f, "network unreachable: a router reported no route to the peer's network (check routes and addresses)"),
            Error::HostUnreachable => write!(f, "host unreachable: the path reported the peer cannot be reached (is it up, and is traffic to it allowed?)"),
            Error::NoBufferSpace => write!(f, "no buffer space: the stack's connection or memory limit is reached (close idle connections, or raise Config::max_connections / tcp_mem)"),
            Error::MessageTooLong => write!(f, "message too long: a UDP datagram carries at most 65,507 bytes over IPv4 and 65,527 over IPv6 (send it in pieces)"),
            Error::Unsupported => write!(f, "operation not supported: it is turned off in the stack's configuration (for TCP Fast Open, set Config::tcp_fastopen)"),
            Error::InvalidArgument => write!(f, "invalid argument"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            Error::ConnectionReset => io::ErrorKind::ConnectionReset,
            Error::ConnectionAborted => io::ErrorKind::ConnectionAborted,
            Error::TimedOut => io::ErrorKind::TimedOut,
            Error::AddressInUse => io::ErrorKind::AddrInUse,
            Error::AddressNotAvailable | Error::NoEphemeralPorts => io::ErrorKind::AddrNotAvailable,
            Error::InvalidHandle | Error::InvalidState(_) => io::ErrorKind::InvalidInput,
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::BrokenPipe => io::ErrorKind::BrokenPipe,
            Error::NotConnected => io::ErrorKind::NotConnected,
            Error::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
            Error::HostUnreachable => io::ErrorKind::HostUnreachable,
            Error::NoBufferSpace => io::ErrorKind::OutOfMemory,
            Error::MessageTooLong => io::ErrorKind::InvalidInput,
            Error::Unsupported => io::ErrorKind::Unsupported,
            Error::InvalidArgument => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}
