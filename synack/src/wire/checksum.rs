//! The Internet checksum (RFC 1071) and the TCP pseudo-headers of IPv4 (RFC 9293 3.1)
//! and IPv6 (RFC 8200 8.1).

use core::net::IpAddr;

/// Add `data` to a running one's-complement sum (folded to at most 17 bits, so callers
/// may add a few more 16-bit words before [`finish`]).
///
/// The bulk is summed eight bytes at a time in the machine's own byte order, in four
/// independent 64-bit lanes, and byte-swapped once at the end: the one's-complement sum
/// does not depend on byte order or on when carries are folded (RFC 1071 2(A), 2(B)).
/// A u64 lane cannot overflow before 16 GiB of input.
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        add_block(&mut lanes, b);
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    for c in &mut chunks {
        lanes[0] += word(c);
    }
    let mut wide = u64::from(acc) + u64::from(fold_lanes(lanes));
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        wide += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        wide += u64::from(*last) << 8;
    }
    fold(wide)
}

/// Copy `src` into `dst` (of the same length) and add the copied bytes to `acc` as
/// [`sum`] would: the data is read once, as a kernel's `csum_partial_copy` does, rather
/// than copied in one pass and summed in another.
pub fn copy_and_sum(acc: u32, dst: &mut [u8], src: &[u8]) -> u32 {
    let n = src.len().min(dst.len());
    let whole = n / 32 * 32;
    let mut lanes = [0u64; 4];
    for (d, s) in dst[..whole]
        .chunks_exact_mut(32)
        .zip(src[..whole].chunks_exact(32))
    {
        d.copy_from_slice(s);
        add_block(&mut lanes, s);
    }
    dst[whole..n].copy_from_slice(&src[whole..n]);
    // The tail starts at an even offset, so its sum adds in as it is.
    let wide = u64::from(acc) + u64::from(fold_lanes(lanes)) + u64::from(sum(0, &src[whole..n]));
    fold(wide)
}

/// A sum of bytes that start at an odd offset of the summed whole, brought into the
/// whole's byte order (RFC 1071 2(B): swapping the bytes of every word swaps the sum's).
pub fn at_odd_offset(partial: u32) -> u32 {
    (fold(u64::from(partial)) as u16).swap_bytes().into()
}

/// Eight bytes as two 32-bit halves in the machine's order, ready to add to a lane.
#[inline(always)]
fn word(c: &[u8]) -> u64 {
    let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    (v & 0xFFFF_FFFF) + (v >> 32)
}

/// Add 32 bytes to the four lanes.
#[inline(always)]
fn add_block(lanes: &mut [u64; 4], b: &[u8]) {
    lanes[0] += word(&b[0..8]);
    lanes[1] += word(&b[8..16]);
    lanes[2] += word(&b[16..24]);
    lanes[3] += word(&b[24..32]);
}

/// The lanes' total folded to 16 bits, in network byte order.
#[inline(always)]
fn fold_lanes(lanes: [u64; 4]) -> u16 {
    let native = fold(
        lanes
            .iter()
            .map(|&l| (l & 0xFFFF_FFFF) + (l >> 32))
            .sum::<u64>(),
    ) as u16;
    if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    }
}

/// Fold carries until the sum fits in 16 bits.
#[inline(always)]
fn fold(mut wide: u64) -> u32 {
    while wide > 0xFFFF {
        wide = (wide & 0xFFFF) + (wide >> 16);
    }
    wide as u32
}

/// Fold a running sum to 16 bits and take its one's complement.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The sum of the pseudo-header for an upper-layer packet of `len` bytes.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, len: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let acc = sum(sum(0, &s.octets()), &d.octets());
            // zero, protocol, TCP length (16 bits)
            acc + protocol as u32 + (len & 0xFFFF)
        }
        (s, d) => {
            let (s, d) = (to_v6(s), to_v6(d));
            let acc = sum(sum(0, &s), &d);
            // upper-layer length (32 bits), 3 zero bytes, next header
            acc + (len >> 16) + (len & 0xFFFF) + protocol as u32
        }
    }
}

fn to_v6(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (checksum 0x220d).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// RFC 1071's definition, 16 bits at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        !(acc as u16)
    }

    proptest::proptest! {
        #[test]
        fn the_wide_sum_equals_the_16_bit_definition(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            split in 0usize..3000,
        ) {
            proptest::prop_assert_eq!(checksum(&data), reference(&data));
            // Chained at an even split, as headers and payloads are.
            let split = (split.min(data.len())) & !1;
            let chained = finish(sum(sum(0, &data[..split]), &data[split..]));
            proptest::prop_assert_eq!(chained, reference(&data));
        }
    }

    proptest::proptest! {
        #[test]
        fn copying_while_summing_copies_exactly_and_sums_as_the_definition(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            split in 0usize..3000,
            acc in 0u32..0x1_0000,
        ) {
            let mut copy = vec![0xA5; data.len()];
            let s = copy_and_sum(acc, &mut copy, &data);
            proptest::prop_assert_eq!(&copy, &data);
            proptest::prop_assert_eq!(finish(s), finish(sum(acc, &data)));
            proptest::prop_assert_eq!(finish(copy_and_sum(0, &mut copy, &data)), reference(&data));
            // Two pieces, the second at any offset (a ring buffer's wraparound).
            let split = split.min(data.len());
            let (a, b) = data.split_at(split);
            let second = if split % 2 == 1 { at_odd_offset(sum(0, b)) } else { sum(0, b) };
            proptest::prop_assert_eq!(finish(sum(0, a) + second), reference(&data));
        }
    }

    #[test]
    fn all_ones_sums_stay_all_ones() {
        assert_eq!(checksum(&[0xFF; 64]), reference(&[0xFF; 64]));
        assert_eq!(checksum(&[0; 64]), 0xFFFF);
    }

    #[test]
    fn odd_length_pads_with_a_zero_byte() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn data_with_its_checksum_verifies_to_zero() {
        let mut data = vec![
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0, 0,
        ];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }
}
