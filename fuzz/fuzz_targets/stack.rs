#![no_main]
//! A whole Stack fed an arbitrary interleaving of packets, timer ticks and API calls.
//! See synack_fuzz::stack.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    synack_fuzz::stack::run(data);
});
