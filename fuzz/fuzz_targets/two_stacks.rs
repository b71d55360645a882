#![no_main]
//! Two Stacks back to back through a lossy, reordering, duplicating, corrupting link,
//! with application calls on both sides. See synack_fuzz::two_stacks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    synack_fuzz::two_stacks::run(data);
});
