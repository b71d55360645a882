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
//! `docs/embedding.md` is the guide to writing a driver around [`Stack`]; the
//! [`stack`] module's documentation has a complete one, on the wall clock.
//!
//! Modules:
//! - [`wire`]: typed views over IPv4, IPv6 and TCP bytes, options, checksums, [`wire::SeqNum`].
//! - [`tcp`]: one connection's state machine (RFC 9293), per-state structs, and the
//!   [`tcp::CongestionController`] trait for congestion control of your own.
//! - [`stack`]: the [`Stack`]: demultiplexing, listeners, TIME_WAIT table, handles, events.
//! - `sim` (feature `sim`): a deterministic simulated network with a virtual clock and
//!   seeded impairments; `scenario` (feature `sim`): the demo scenarios.
//! - `trace` (feature `trace`): turning what happened into ladder diagrams, JSON lines
//!   and pcaps.
//! - [`time`]: the engine's notion of time, an [`Instant`] that the driver supplies.
//! - `device` and `net` (Linux, feature `net`): the runtime over any packet device (a
//!   driver thread per queue, the [`device::Device`] trait, an in-memory pair) and a
//!   blocking `std::net`-like API (`TcpListener`, `TcpStream`) over it; `tokio` (feature
//!   `tokio`) the same for async tasks; `relay` (feature `relay`): tun2socks-style relaying.
//! - `tun` (Linux, feature `tun`): the TUN device under that runtime.
//!
//! Without the `std` feature (`default-features = false`) the crate is `#![no_std]` and
//! needs only `alloc`: the engine (`wire`, `tcp`, `stack`, `time`) for any target with
//! an allocator. The README's "Features" lists the features.
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
// `unsafe` is allowed only at the OS boundary (`device::sys`, `tun::sys`), each block with
// a SAFETY comment.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod config;
#[cfg(all(target_os = "linux", feature = "net"))]
pub mod device;
mod error;
#[cfg(all(target_os = "linux", feature = "net"))]
pub mod net;
#[cfg(all(target_os = "linux", feature = "relay"))]
pub mod relay;
#[cfg(feature = "sim")]
pub mod scenario;
mod secrets;
#[cfg(feature = "sim")]
pub mod sim;
/// The simulator's link model alone, which the device runtime's impairment applies to
/// real packets ([`DeviceConfig::impair`](crate::device::DeviceConfig::impair)); the `sim`
/// feature adds the simulated network.
#[cfg(all(not(feature = "sim"), target_os = "linux", feature = "net"))]
pub mod sim {
    pub(crate) mod link;
    pub use link::{parse_duration, parse_rate, LinkConfig, LossCause};
}
pub mod stack;
pub mod tcp;
mod tcp_state;
pub mod time;
#[cfg(all(target_os = "linux", feature = "tokio"))]
pub mod tokio;
#[cfg(feature = "trace")]
pub mod trace;
/// The pcap writer alone, with which the device runtime captures its packets; the
/// `trace` feature adds ladder diagrams and JSON lines.
#[cfg(all(not(feature = "trace"), target_os = "linux", feature = "net"))]
pub mod trace {
    pub mod pcap;
}
#[cfg(all(target_os = "linux", feature = "tun"))]
pub mod tun;
pub mod wire;

pub use stack::{
    Capture, Config, ConnectionHandle, ConnectionRequest, Decide, Error, Event, IpNet,
    ListenerHandle, ListenerOptions, Md5Key, Refusal, RequestHandle, Secrets, SendAccounting,
    SocketSnapshot, Stack, StateSummary, Transmit, Unreachable,
};
pub use tcp::{CongestionControl, ConnectionInfo, Keepalive, SendFlags, TcpState};
pub use time::Instant;

/// The README's Rust examples, compiled and run as doc-tests (its TUN example needs
/// the `tokio` feature, which is on by default).
#[cfg(all(doctest, target_os = "linux", feature = "tokio"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
