//! CI check: synack's engine builds for a target without an operating system. This
//! crate is `#![no_std]`, defines the panic handler and global allocator that such a
//! target's firmware would, and calls the engine so that it is linked. Should std enter
//! synack's dependency graph (a dependency's default features, a `std::` path outside a
//! `std`-gated item), std's own panic handler clashes with the one here
//! ("duplicate lang item `panic_impl`") and the build fails.
#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use synack::{Config, Instant, Secrets, Stack};

/// An allocator that has no memory: every allocation fails. The check only builds and
/// links; nothing runs it.
struct NoMemory;

// SAFETY: returning null is how `alloc` reports a failed allocation, which callers must
// handle; `dealloc` is never given a pointer since no allocation ever succeeds.
unsafe impl GlobalAlloc for NoMemory {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoMemory = NoMemory;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Make a stack with deterministic keys (no random source needed), listen, give it a
/// packet and take what it answers: the engine's whole receive and transmit paths.
#[no_mangle]
pub extern "C" fn synack_nostd_check(packet: *const u8, len: usize) -> usize {
    if packet.is_null() {
        return 0;
    }
    // SAFETY: the caller passes `len` readable bytes at `packet` (a C caller's contract;
    // nothing calls this: the crate is only built).
    let packet = unsafe { core::slice::from_raw_parts(packet, len) };
    let mut config = Config::default();
    config.secrets = Secrets::Deterministic(1);
    let mut stack = Stack::new(config);
    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    stack.add_address(addr);
    if stack.listen(SocketAddr::new(addr, 80), 16).is_err() {
        return 0;
    }
    let parsed = synack::wire::parse_tcp_packet(packet).is_ok();
    stack.receive(Instant::ZERO, packet);
    let answer = stack.poll_transmit(Instant::ZERO).map_or(0, |p| p.len());
    answer + usize::from(parsed)
}
