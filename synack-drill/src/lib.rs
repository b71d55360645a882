//! Conformance scripts for synack in packetdrill's language: `script` parses them,
//! `run` plays them against one [`synack::Stack`] on its virtual clock (no kernel, no
//! TUN): inbound segments are injected, outbound ones compared field by field within
//! a time tolerance, socket calls checked against their expected results and errno names.
//!
//! What is modelled so far: the time forms (`T`, `+T`, `*`, `A~B`), TCP segment lines
//! with flags, `start:end(len)`, `ack`, `win` and options (compared by meaning, not by
//! byte layout), sequence and ack mapping through our ISN, and the calls socket, bind,
//! listen, accept, connect (blocking and nonblocking), read/recv, write/send, shutdown,
//! close and fcntl(O_NONBLOCK). Other calls are taken as succeeding and noted.

pub mod run;
pub mod script;

pub use run::{run, DrillOptions, Failure, Outcome};
