//! # synack
//!
//! A TCP/IP stack that runs in user space, built around a **sans-IO core**: the
//! engine never reads a clock, never touches a socket and never spawns a thread.
//! Packets and the current time go in; packets, timer deadlines and events come out.
//!
//! ```text
//! bytes from a device ──> Stack::receive(now, packet)
//!                           ├─ wire: parse IPv4/IPv6 + TCP (typed errors -> counted drops)
//!                           ├─ fragments: reassembled (with limits), then parsed as one packet
//!                           ├─ demux by 4-tuple: connection | TIME_WAIT table | listener | RST
//!                           └─ tcp::Connection::on_segment(now, seg)
//!                                  └─ every state change goes through one transition point
//! Stack::poll_transmit(now)  ──> next outbound IP packet (poll_transmit_into: into a kept buffer)
//! Stack::poll_timeout()       ──> earliest deadline;  Stack::on_timeout(now) fires due timers
//! Stack::poll_event()         ──> state changes, readable/writable, accept-ready, errors
//! ```
//!
//! Modules:
//! - [`wire`]: typed views over IPv4, IPv6 and TCP bytes, options, checksums, [`wire::SeqNum`].
//! - [`tcp`]: one connection's state machine (RFC 9293), per-state structs, and the
//!   [`tcp::CongestionController`] trait for congestion control of your own.
//! - [`stack`]: the [`Stack`]: demultiplexing, listeners, TIME_WAIT table, handles, events.
//! - [`sim`]: a deterministic simulated network with a virtual clock and seeded impairments.
//! - [`trace`]: turning what happened into ladder diagrams and JSON lines.
//! - [`time`]: the engine's notion of time, an [`Instant`] that the driver supplies.
//! - `tun` and `net` (Linux, feature `tun`): a TUN device driver thread and a blocking
//!   `std::net`-like API (`TcpListener`, `TcpStream`) over it.
//!
//! ## Types that grow
//!
//! Errors, events, statistics, snapshots and option structs are `#[non_exhaustive]`:
//! a new variant or field is not a breaking change. Match them with a wildcard arm
//! (`_ =>`) that does something sensible for a case you do not know yet. Option structs
//! are built the same way everywhere: start from `Default` (or a `new(...)` taking
//! the fields that have no default, such as `tun::InterfaceConfig::new`) and assign
//! the public fields you want to change:
//!
//! ```
//! let mut config = synack::Config::default();
//! config.mtu = 9000;
//! config.tcp_nodelay = true;
//! let mut options = synack::ListenerOptions::default();
//! options.recv_buffer = Some(1 << 20);
//! let stack = synack::Stack::new(config);
//! # let _ = (stack, options);
//! ```
//!
//! Closed sets stay exhaustive: [`TcpState`] (RFC 9293's eleven states),
//! [`Keepalive`] (the three knobs of RFC 1122 4.2.3.6 / Linux), the wire formats'
//! header representations in [`wire`].
// `unsafe` is allowed only at the OS boundary (`tun::sys`), each block with a SAFETY comment.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
#[cfg(all(target_os = "linux", feature = "tun"))]
pub mod net;
#[cfg(all(target_os = "linux", feature = "relay"))]
pub mod relay;
pub mod scenario;
mod secrets;
pub mod sim;
pub mod stack;
pub mod tcp;
mod tcp_state;
pub mod time;
#[cfg(all(target_os = "linux", feature = "tokio"))]
pub mod tokio;
pub mod trace;
#[cfg(all(target_os = "linux", feature = "tun"))]
pub mod tun;
pub mod wire;

pub use stack::{
    Capture, Config, ConnectionHandle, ConnectionRequest, Decide, Error, Event, IpNet,
    ListenerHandle, ListenerOptions, Refusal, RequestHandle, Secrets, SocketSnapshot, Stack,
    StateSummary, Transmit, Unreachable,
};
pub use tcp::{CongestionControl, ConnectionInfo, Keepalive, TcpState};
pub use time::Instant;
