//! TCP-MD5 signatures (RFC 2385): the digest of a segment under a key, checked on the
//! way in and written into a built packet on the way out.
//!
//! RFC 2385 §2.0: the digest covers, in order, the pseudo-header (IPv4: source,
//! destination, zero, protocol, segment length; IPv6 as Linux's tcp_v6_md5_hash_headers:
//! source, destination, 32-bit length, 32-bit protocol), the fixed 20-byte TCP header
//! with its checksum zeroed and no options, the segment's data, and the key.

use core::net::IpAddr;

use md5::{Digest, Md5};

use super::checksum::{at_odd_offset, finish, sum};
use super::tcp::HEADER_LEN;
use super::tcp_options::{MD5SIG, MD5SIG_LEN};
use super::{TxChecksum, WireError, PROTO_TCP};

/// The longest key (Linux's TCP_MD5SIG_MAXKEYLEN).
pub const TCP_MD5_MAX_KEY_LEN: usize = 80;

/// The RFC 2385 digest of `segment` (a whole TCP segment: header, options, data) sent
/// from `src` to `dst`, under `key`. None when `segment` is shorter than its header
/// says, or the addresses are of two families.
///
/// # Examples
///
/// ```
/// # use std::net::IpAddr;
/// use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
/// let (src, dst): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// let mut options = TcpOptions::default();
/// options.md5 = Some([0; 16]); // room for the signature
/// let syn = TcpRepr {
///     src_port: 40000, dst_port: 179, seq: SeqNum::new(1), ack: SeqNum::new(0),
///     flags: TcpFlags::SYN, window: 65535, urgent: 0, options, payload: b"",
/// };
/// let mut packet = wire::emit_tcp_packet(src, dst, 64, &syn).unwrap();
/// wire::sign_tcp_md5(&mut packet[20..], &src, &dst, b"secret", wire::TxChecksum::Full).unwrap();
/// let (_, parsed) = wire::parse_tcp_packet(&packet).unwrap(); // the checksum still holds
/// let digest = wire::tcp_md5_digest(&src, &dst, &packet[20..], b"secret").unwrap();
/// assert_eq!(parsed.options.md5, Some(digest));
/// ```
pub fn tcp_md5_digest(src: &IpAddr, dst: &IpAddr, segment: &[u8], key: &[u8]) -> Option<[u8; 16]> {
    let header = segment.get(..HEADER_LEN)?;
    let header_len = usize::from(header[12] >> 4) * 4;
    let data = segment.get(header_len.max(HEADER_LEN)..)?;
    let len = u32::try_from(segment.len()).ok()?;
    let mut h = Md5::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.update(s.octets());
            h.update(d.octets());
            h.update([0, PROTO_TCP]);
            h.update((len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.update(s.octets());
            h.update(d.octets());
            h.update(len.to_be_bytes());
            h.update(u32::from(PROTO_TCP).to_be_bytes());
        }
        _ => return None,
    }
    let mut fixed = [0u8; HEADER_LEN];
    fixed.copy_from_slice(header);
    fixed[16] = 0;
    fixed[17] = 0;
    h.update(fixed);
    h.update(data);
    h.update(key);
    Some(h.finalize().into())
}

/// Where the digest of the (first) MD5 option of `segment`'s options starts.
fn digest_offset(segment: &[u8]) -> Option<usize> {
    let header_len = usize::from(*segment.get(12)? >> 4) * 4;
    let options = segment.get(HEADER_LEN..header_len)?;
    let mut at = 0;
    while at < options.len() {
        match options[at] {
            0 => return None,
            1 => at += 1,
            kind => {
                let len = usize::from(*options.get(at + 1)?);
                if len < 2 || at + len > options.len() {
                    return None;
                }
                if kind == MD5SIG && len == MD5SIG_LEN {
                    return Some(HEADER_LEN + at + 2);
                }
                at += len;
            }
        }
    }
    None
}

/// Sign a built TCP segment (header, options, data, its checksum filled as `csum`
/// says) whose options hold an MD5 option: write the digest under `key` into it and
/// bring the checksum up to date. [`WireError::BadOption`] when it has no MD5 option.
pub fn sign_tcp_md5(
    segment: &mut [u8],
    src: &IpAddr,
    dst: &IpAddr,
    key: &[u8],
    csum: TxChecksum,
) -> Result<(), WireError> {
    let at = digest_offset(segment).ok_or(WireError::BadOption)?;
    let digest = tcp_md5_digest(src, dst, segment, key).ok_or(WireError::Truncated)?;
    // The option was emitted with a zero digest, which the checksum covered.
    let before = sum(0, &segment[at..at + 16]);
    segment[at..at + 16].copy_from_slice(&digest);
    if csum == TxChecksum::Full {
        let old = u16::from_be_bytes([segment[16], segment[17]]);
        // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the old words (zero), m' the digest.
        let added = sum(0, &digest);
        let removed = before;
        let (added, removed) = if at % 2 == 1 {
            (at_odd_offset(added), at_odd_offset(removed))
        } else {
            (added, removed)
        };
        let acc = u32::from(!old) + added + u32::from(finish(removed));
        let new = finish(acc);
        segment[16..18].copy_from_slice(&new.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};

    fn signed(src: &str, dst: &str, payload: &[u8], key: &[u8]) -> (IpAddr, IpAddr, Vec<u8>) {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let options = TcpOptions {
            md5: Some([0; 16]),
            ..TcpOptions::default()
        };
        let seg = TcpRepr {
            src_port: 40000,
            dst_port: 179,
            seq: SeqNum::new(1000),
            ack: SeqNum::new(2000),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 512,
            urgent: 0,
            options,
            payload,
        };
        let mut p = wire::emit_tcp_packet(src, dst, 64, &seg).unwrap();
        let ip = if src.is_ipv4() { 20 } else { 40 };
        sign_tcp_md5(&mut p[ip..], &src, &dst, key, TxChecksum::Full).unwrap();
        (src, dst, p)
    }

    #[test]
    fn signing_keeps_the_checksum_right_and_the_digest_verifies() {
        for (s, d) in [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")] {
            for payload in [&b""[..], b"x", b"hello world"] {
                let (src, dst, p) = signed(s, d, payload, b"key");
                let (_, seg) = wire::parse_tcp_packet(&p).expect("checksum holds");
                let ip = if src.is_ipv4() { 20 } else { 40 };
                let digest = tcp_md5_digest(&src, &dst, &p[ip..], b"key").unwrap();
                assert_eq!(seg.options.md5, Some(digest));
                assert_ne!(tcp_md5_digest(&src, &dst, &p[ip..], b"other"), Some(digest));
            }
        }
    }

    /// A known-good vector: the digest computed from RFC 2385 §2.0's definition by hand
    /// (pseudo-header, header with checksum zeroed and no options, data, key), each
    /// input written out byte by byte here, independently of `tcp_md5_digest`'s code.
    #[test]
    fn the_digest_covers_what_rfc_2385_lists_in_its_order() {
        let (src, dst, p) = signed("198.18.0.1", "198.18.0.2", b"abc", b"secret");
        let seg = &p[20..];
        let mut input = Vec::new();
        input.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2, 0, 6]);
        input.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        input.extend_from_slice(&[0x9c, 0x40, 0x00, 0xb3]); // ports 40000, 179
        input.extend_from_slice(&1000u32.to_be_bytes());
        input.extend_from_slice(&2000u32.to_be_bytes());
        input.extend_from_slice(&[(40 / 4) << 4, 0x18, 0x02, 0x00, 0, 0, 0, 0]);
        input.extend_from_slice(b"abc");
        input.extend_from_slice(b"secret");
        let want: [u8; 16] = Md5::digest(&input).into();
        assert_eq!(tcp_md5_digest(&src, &dst, seg, b"secret"), Some(want));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Known-good vectors from the real kernel: Linux 6.18, two sockets in a network
    /// namespace with setsockopt(TCP_MD5SIG) and the key "synack-md5-test-key",
    /// 198.18.0.1:40000 to 198.18.0.2:179, captured on its loopback. (The checksums are
    /// partial, as on any loopback capture: the digest does not cover them.)
    const LINUX_SYN: &str = "450000485253400040065c35c6120001c61200029c4000b3516222b600000000d002ffd78c62000001011312611fb79dabb8384ac2609bcb1fe6d8540204ffd7010104020103030a";
    const LINUX_DATA: &str = "4500004f5255400040065c2cc6120001c61200029c4000b3516222b74cd1c657a01800408c69000001011312721bfd2fd89c84fef1a883275bf3581568656c6c6f2c207369676e656420776f726c64";

    #[test]
    fn digests_agree_with_linux_on_its_own_segments() {
        let (src, dst): (IpAddr, IpAddr) =
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        for packet in [LINUX_SYN, LINUX_DATA] {
            let p = hex(packet);
            let seg = &p[20..];
            let digest = tcp_md5_digest(&src, &dst, seg, b"synack-md5-test-key").unwrap();
            assert_eq!(&seg[24..40], &digest[..]);
            let options = crate::wire::TcpOptions::parse(&seg[20..usize::from(seg[12] >> 4) * 4]);
            assert_eq!(options.unwrap().md5, Some(digest));
        }
        // The data segment's payload is what the digest covered.
        assert!(hex(LINUX_DATA).ends_with(b"hello, signed world"));
    }

    /// Linux's SYN with a key: `nop,nop,md5` first, then mss, `nop,nop,sackOK`,
    /// `nop,wscale` and no timestamps (tcp_syn_options): the same bytes as ours.
    #[test]
    fn a_signed_syn_has_linux_option_layout() {
        let p = hex(LINUX_SYN);
        let theirs = &p[40..];
        let options = crate::wire::TcpOptions {
            mss: Some(65495),
            sack_permitted: true,
            window_scale: Some(10),
            md5: Some(theirs[4..20].try_into().unwrap()),
            ..Default::default()
        };
        let mut ours = vec![0u8; options.emitted_len(true)];
        options.emit(&mut ours, true).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_segment_without_an_md5_option_cannot_be_signed() {
        let (src, dst): (IpAddr, IpAddr) =
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let mut seg = [0u8; 20];
        seg[12] = 5 << 4;
        assert_eq!(
            sign_tcp_md5(&mut seg, &src, &dst, b"k", TxChecksum::Full),
            Err(WireError::BadOption)
        );
        assert_eq!(tcp_md5_digest(&src, &dst, &seg[..10], b"k"), None);
    }
}
