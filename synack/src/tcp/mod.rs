//! One TCP connection's state machine (RFC 9293), independent of how packets
//! reach it: the [`crate::Stack`] demultiplexes segments to it and drains what it
//! wants to send.

mod autotune;
mod cc;
mod chrono;
mod conn;
mod diagnose;
mod ecn;
pub mod fastopen;
mod info;
mod input;
mod isn;
mod keepalive;
mod output;
mod path_error;
mod push;
mod rack;
mod reassembly;
mod ring;
mod rtt;
mod sack;
mod send_buffer;
mod skb_accounting;
mod state;
mod syncookie;
mod time_wait;
mod urgent;

pub use crate::tcp_state::TcpState;
pub use cc::{initial_window, AckEvent, CongestionControl, CongestionController, CustomController};
pub use keepalive::Keepalive;
pub use push::SendFlags;
pub use time_wait::{TimeWait, TimeWaitVerdict};

pub(crate) use conn::{mss_for, ConnEvent, Connection, MemoryLevel, TFO_CHILD};
pub(crate) use diagnose::{diagnose, time_wait_pressure};
pub(crate) use ecn::{ecn_flags, EcnState};
pub use info::ConnectionInfo;
pub(crate) use input::Disposition;
pub(crate) use isn::IsnGenerator;
pub(crate) use output::Outgoing;
pub(crate) use path_error::{ErrorScope, PathError};
pub(crate) use send_buffer::IDLE_RELEASE;
pub(crate) use state::SynFastOpen;
pub(crate) use syncookie::{decode_timestamp, encode_timestamp, SynCookies};
