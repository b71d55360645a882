//! UDP (RFC 768): a typed view over a datagram's bytes and its representation, with
//! the checksum over the IPv4 or IPv6 pseudo-header (RFC 768, RFC 8200 8.1). Over IPv4
//! a zero checksum means "none" and is accepted; over IPv6 it is mandatory.

use core::net::IpAddr;

use super::checksum::{finish, pseudo_header, sum};
use super::{IpInfo, WireError};

/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A read-only view of a UDP datagram.
///
/// # Examples
///
/// ```
/// use synack::wire::{self, UdpPacket, UdpRepr};
/// let (src, dst) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// let datagram = UdpRepr { src_port: 5353, dst_port: 53, payload: b"query" };
/// let packet = wire::emit_udp_packet(src, dst, 64, &datagram).unwrap();
/// let (ip, bytes) = wire::parse_ip(&packet).unwrap();
/// let view = UdpPacket::new_checked(bytes).unwrap();
/// assert_eq!((view.src_port(), view.dst_port(), view.len()), (5353, 53, 13));
/// assert!(view.verify_checksum(&ip.src, &ip.dst));
/// assert_eq!(wire::parse_udp(&ip, bytes).unwrap(), datagram);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap `buffer`, checking the header fits and the length field agrees with it.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        // RFC 768: the length covers header and data; the IP payload may be longer
        // (padding), never shorter.
        if len < HEADER_LEN || len > b.len() {
            return Err(WireError::BadUdpLength);
        }
        Ok(UdpPacket { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[0], self.b()[1]])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    /// Length field: header and data.
    pub fn len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.b()[4], self.b()[5]]))
    }

    /// Whether the datagram carries no data.
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }

    /// The data.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.len()]
    }

    /// Verify the checksum (a zero one over IPv4 is "not computed" and passes).
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let acc = pseudo_header(src, dst, PROTO_UDP, self.len() as u32);
        finish(sum(acc, &self.b()[..self.len()])) == 0
    }
}

/// A UDP datagram with its data borrowed.
///
/// # Examples
///
/// ```
/// use synack::wire::UdpRepr;
/// let datagram = UdpRepr { src_port: 1, dst_port: 2, payload: b"abc" };
/// let (src, dst) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// let mut buf = vec![0u8; datagram.buffer_len()]; // 8 + 3
/// datagram.emit(&src, &dst, &mut buf).unwrap();
/// assert_eq!(&buf[8..], b"abc");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Header and data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Write the datagram into `buf` (exactly `buffer_len` bytes) with its checksum
    /// over the pseudo-header of `src` and `dst` (a computed zero is sent as 0xFFFF,
    /// RFC 768).
    pub fn emit(&self, src: &IpAddr, dst: &IpAddr, buf: &mut [u8]) -> Result<(), WireError> {
        let len = self.buffer_len();
        if buf.len() < len || len > usize::from(u16::MAX) {
            return Err(WireError::Truncated);
        }
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        buf[6..8].copy_from_slice(&[0, 0]);
        buf[HEADER_LEN..len].copy_from_slice(self.payload);
        let acc = pseudo_header(src, dst, PROTO_UDP, len as u32);
        let c = match finish(sum(acc, &buf[..len])) {
            0 => 0xFFFF,
            c => c,
        };
        buf[6..8].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

/// Parse the UDP datagram that `ip` carries, verifying its checksum.
pub fn parse_udp<'a>(ip: &IpInfo, datagram: &'a [u8]) -> Result<UdpRepr<'a>, WireError> {
    if ip.protocol != PROTO_UDP {
        return Err(WireError::UnsupportedProtocol(ip.protocol));
    }
    let p = UdpPacket::new_checked(datagram)?;
    if !p.verify_checksum(&ip.src, &ip.dst) {
        return Err(WireError::BadUdpChecksum);
    }
    Ok(UdpRepr {
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        payload: &datagram[HEADER_LEN..p.len()],
    })
}

/// [`parse_udp`] for a datagram whose checksum the device has verified (or left for
/// the receiver to trust: the kernel's `CHECKSUM_PARTIAL` packets on a TUN device).
pub fn parse_udp_verified<'a>(ip: &IpInfo, datagram: &'a [u8]) -> Result<UdpRepr<'a>, WireError> {
    if ip.protocol != PROTO_UDP {
        return Err(WireError::UnsupportedProtocol(ip.protocol));
    }
    let p = UdpPacket::new_checked(datagram)?;
    Ok(UdpRepr {
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        payload: &datagram[HEADER_LEN..p.len()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit_udp_packet, parse_ip};

    #[test]
    fn a_datagram_round_trips_over_both_ip_versions_with_its_checksum_checked() {
        for (s, d) in [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let repr = UdpRepr {
                src_port: 5353,
                dst_port: 53,
                payload: b"a question",
            };
            let mut packet = emit_udp_packet(s, d, 64, &repr).unwrap();
            let (ip, body) = parse_ip(&packet).unwrap();
            assert_eq!(parse_udp(&ip, body), Ok(repr));
            let last = packet.len() - 1;
            packet[last] ^= 1;
            let (ip, body) = parse_ip(&packet).unwrap();
            assert_eq!(parse_udp(&ip, body), Err(WireError::BadUdpChecksum));
        }
    }

    #[test]
    fn a_zero_checksum_means_none_over_ipv4_only() {
        let mut d = [0u8, 9, 0, 53, 0, 10, 0, 0, b'h', b'i'];
        let v4 = IpInfo {
            src: "198.18.0.1".parse().unwrap(),
            dst: "198.18.0.2".parse().unwrap(),
            protocol: PROTO_UDP,
            ttl: 64,
            ecn: crate::wire::Ecn::NotEct,
        };
        assert_eq!(parse_udp(&v4, &d).unwrap().payload, b"hi");
        let v6 = IpInfo {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            ..v4
        };
        assert_eq!(parse_udp(&v6, &d), Err(WireError::BadUdpChecksum));
        d[5] = 11;
        assert_eq!(
            parse_udp(&v4, &d),
            Err(WireError::BadUdpLength),
            "longer than the packet"
        );
        d[5] = 7;
        assert_eq!(
            parse_udp(&v4, &d),
            Err(WireError::BadUdpLength),
            "shorter than its header"
        );
    }
}
