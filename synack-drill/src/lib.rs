//! Conformance scripts for synack in packetdrill's language: `script` parses them,
//! `run` plays them against one [`synack::Stack`] on its virtual clock (no kernel, no
//! TUN): inbound segments are injected, outbound ones compared field by field within
//! a time tolerance, socket calls checked against their expected results and errno names.
//!
//! `sockets` is the BSD-socket layer with Linux's semantics that the calls go through
//! (also used by the packetdrill shared library, crate `synack-packetdrill`); `sysctl`
//! maps the Linux sysctls a script's shell lines set to the stack's configuration;
//! `args` reads call arguments (option values, poll sets, iovecs); `epoll` models
//! epoll instances; `msg` reads send flags and `struct msghdr` arguments and plays
//! sendmsg/recvmsg. The language supported
//! and its differences from packetdrill are in `docs/conformance.md`.

pub mod args;
pub mod code;
pub mod epoll;
pub mod msg;
pub mod run;
pub mod script;
pub mod sockets;
pub mod sysctl;

pub use run::{run, DrillOptions, Failure, Outcome};
