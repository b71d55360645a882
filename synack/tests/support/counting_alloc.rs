//! The global allocator of tests that measure memory: the system allocator, counted by
//! the `stats_alloc` crate (include it with
//! `#[path = "support/counting_alloc.rs"] mod counting_alloc;`).

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, process-wide.
pub fn live_heap() -> usize {
    // stats_alloc counts a realloc's growth in bytes_allocated and its shrinking in
    // bytes_deallocated.
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated)
}

/// Heap allocations made so far (reallocations included), process-wide.
#[allow(dead_code)] // not every test binary that includes this counts allocations
pub fn allocations() -> usize {
    let s = GLOBAL.stats();
    s.allocations + s.reallocations
}
