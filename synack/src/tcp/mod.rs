//! One TCP connection's state machine (RFC 9293), independent of how packets
//! reach it: the [`crate::Stack`] demultiplexes segments to it and drains what it
//! wants to send.

mod state_name;

pub use state_name::TcpState;
