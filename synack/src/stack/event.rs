//! Events the stack reports to whoever drives it, drained with [`crate::Stack::poll_event`].

use alloc::string::String;
use core::net::SocketAddr;

use super::{ConnectionHandle, Error, ListenerHandle, UdpHandle};
use crate::{Instant, TcpState};

/// Something the application (or an observer) may want to know about.
///
/// Events for connections the application has not accepted yet go to their listener
/// ([`Event::Incoming`], [`Event::Request`]); only `StateChanged` and `Warning` are also
/// reported for connections it never saw or already closed.
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
/// let mut states = Vec::new();
/// while let Some(event) = client.poll_event() {
///     match event {
///         Event::StateChanged { conn: c, from, to, .. } if c == conn => states.push((from, to)),
///         Event::Connected(c) => assert_eq!(c, conn),
///         Event::Error { error, .. } => panic!("failed: {error}"),
///         // Non-exhaustive: a match needs this arm.
///         _ => {}
///     }
/// }
/// assert_eq!(states, [
///     (TcpState::Closed, TcpState::SynSent),
///     (TcpState::SynSent, TcpState::Established),
/// ]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection changed state. Emitted for every transition, including those of
    /// connections the application never saw (embryonic) or already closed (orphans).
    StateChanged {
        /// Which connection (stays unique while the connection exists).
        conn: ConnectionHandle,
        /// Our address and port.
        local: SocketAddr,
        /// The peer's address and port.
        remote: SocketAddr,
        /// State before.
        from: TcpState,
        /// State after.
        to: TcpState,
        /// When it happened.
        at: Instant,
        /// Why, in a few words (e.g. "rcv SYN,ACK", "close()", "FIN_WAIT_2 timeout").
        cause: &'static str,
    },
    /// A listener has a connection ready for [`crate::Stack::accept`].
    Incoming(ListenerHandle),
    /// A decide-first listener holds a new connection request
    /// ([`crate::Stack::take_request`]).
    Request(ListenerHandle),
    /// An active open completed: the connection is ESTABLISHED.
    Connected(ConnectionHandle),
    /// A UDP socket has a datagram (or an error) for [`crate::Stack::udp_recv`].
    UdpReadable(UdpHandle),
    /// Data (or end-of-stream) is ready for [`crate::Stack::recv`].
    Readable(ConnectionHandle),
    /// The connection became writable again after a `send` found too little room (or
    /// [`crate::Stack::writable`] said no): a third of its send buffer is free, and
    /// its unsent bytes are below half its TCP_NOTSENT_LOWAT, if it has one (Linux's
    /// `sk_stream_write_space`).
    Writable(ConnectionHandle),
    /// The connection's error queue has new reports (zerocopy completions, transmit
    /// timestamps) for [`crate::Stack::recv_error`]: Linux's `sk_error_report`.
    ErrorQueue(ConnectionHandle),
    /// An ICMP error reached a connection that goes on (RFC 1122 4.2.3.9 soft error:
    /// network or host unreachable, TTL exceeded). If the connection later times out,
    /// this is the error it fails with.
    SoftError {
        /// Which connection.
        conn: ConnectionHandle,
        /// What the ICMP message said.
        error: Error,
    },
    /// The connection ended with an error (refused, reset, timed out) while the
    /// application still held its handle.
    Error {
        /// Which connection.
        conn: ConnectionHandle,
        /// What happened.
        error: Error,
    },
    /// A lifecycle diagnostic: a connection stuck in a state that usually means an
    /// application that does not close (CLOSE_WAIT), a peer or path that is gone
    /// (FIN_WAIT_1 retransmitting), a peer that never sends its FIN (FIN_WAIT_2), or the
    /// TIME_WAIT table nearing its limit. Raised once per connection and state, and also
    /// logged through `tracing` at WARN.
    Warning {
        /// The connection (None: the stack as a whole, for TIME_WAIT pressure).
        conn: Option<ConnectionHandle>,
        /// What is wrong and what it usually means, naming the port and how long.
        message: String,
    },
}
