//! `memcpy`: one core's memory copy bandwidth, measured in the same run: the physical
//! ceiling a bulk transfer (which copies every byte at least twice) is compared with.

use std::time::Instant;

/// Copy `total` bytes in 64 MiB blocks (larger than any cache); Gbit/s.
pub fn bandwidth(total: usize) -> f64 {
    let block = 64 << 20;
    let src = vec![0x5au8; block];
    let mut dst = vec![0u8; block];
    // Touch both once so that page faults are not timed.
    dst.copy_from_slice(&src);
    let rounds = (total / block).max(1);
    let t0 = Instant::now();
    for i in 0..rounds {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst[i % block]);
    }
    (rounds * block) as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e9
}
