//! synack as a packetdrill shared library. packetdrill (`packetdrill
//! --so_filename=libsynack_packetdrill.so`) loads it in place of the kernel: it calls
//! `packetdrill_interface_init`, then makes every socket call, injects and sniffs every
//! packet, and reads and advances the clock through the function table filled in here.
//! So any packetdrill script runs against synack with the real tool.
//!
//! ```text
//! cargo build --release -p synack-packetdrill
//! packetdrill --so_filename=target/release/libsynack_packetdrill.so \
//!     --local_ip=198.18.0.1 --remote_ip=198.18.0.2 \
//!     --so_flags=local_ip=198.18.0.1 script.pkt
//! ```
//!
//! `instance` holds the stack and its virtual clock in safe Rust (through the socket
//! layer `synack_drill::sockets`, the one `synack drill` uses); `ffi` is the C boundary,
//! where all the `unsafe` is.

pub mod ffi;
pub mod hook;
pub mod instance;

pub use ffi::{packetdrill_interface_init, PacketdrillInterface};
pub use instance::Instance;
