//! The contents of every byte stream the harnesses send, so that what a receiver reads
//! can be checked byte for byte: a wrong, shifted, repeated or reordered byte reads as a
//! mismatch (with high probability over a few bytes). The bytes come from one table of
//! pseudo-random bytes with a period of 1 MiB, far more than one run sends, and are
//! copied and compared as slices (the fuzzer's comparison tracing makes per-byte loops
//! slow).

use std::sync::OnceLock;

/// The period of both patterns. A power of two, so that the peer's pattern, keyed by
/// 32-bit sequence numbers, is continuous across their wrap-around.
const PERIOD: usize = 1 << 20;

/// The application pattern starts this far into the table (so it differs from the
/// peer's pattern at the same numbers).
const APP_START: usize = 0x5_1ED5;

/// `2 * PERIOD` bytes: every run of up to `PERIOD` bytes is one slice.
fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let half: Vec<u8> = (0..PERIOD as u32).map(mix).collect();
        [half.as_slice(), half.as_slice()].concat()
    })
}

fn run(start: usize, len: usize) -> &'static [u8] {
    assert!(len <= PERIOD, "pattern runs are at most 1 MiB");
    &table()[start % PERIOD..][..len]
}

/// The byte a fuzzed peer sends at absolute sequence number `seq`. Keyed by sequence
/// number rather than stream offset, so that every segment the harness makes up, in or
/// out of order, overlapping or retransmitted, agrees with every other.
pub fn peer_byte(seq: u32) -> u8 {
    peer_bytes(seq, 1)[0]
}

/// `len` bytes of the peer's stream from sequence number `seq`.
pub fn peer_bytes(seq: u32, len: usize) -> &'static [u8] {
    run(seq as usize, len)
}

/// The byte at stream offset `offset` of what an application writes on a connection.
pub fn app_byte(offset: u64) -> u8 {
    app_bytes(offset, 1)[0]
}

/// `len` bytes of the application stream from `offset`.
pub fn app_bytes(offset: u64, len: usize) -> &'static [u8] {
    run((offset % PERIOD as u64) as usize + APP_START, len)
}

/// The first offset in `got` that differs from `want`.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    if got == want {
        return None;
    }
    Some(
        got.iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len())),
    )
}

fn mix(mut x: u32) -> u8 {
    // A 32-bit finaliser (lowbias32): every input bit affects every output bit.
    x ^= 0x5EED_0001;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x as u8
}
