//! IPv4 headers (RFC 791): a typed view over bytes and a high-level representation.

use core::net::Ipv4Addr;

use super::checksum;
use super::WireError;

/// The fixed IPv4 header length (no options).
pub const HEADER_LEN: usize = 20;

/// A read (and, with `T: AsMut<[u8]>`, write) view of an IPv4 packet.
///
/// # Examples
///
/// ```
/// # use std::net::IpAddr;
/// # use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
/// # let (src, dst): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// # let seg = TcpRepr {
/// #     src_port: 40000, dst_port: 80, seq: SeqNum::new(1), ack: SeqNum::new(0),
/// #     flags: TcpFlags::SYN, window: 65535, urgent: 0, options: TcpOptions::default(), payload: b"",
/// # };
/// # let packet = wire::emit_tcp_packet(src, dst, 64, &seg).unwrap();
/// use synack::wire::Ipv4Packet;
/// let view = Ipv4Packet::new_checked(&packet[..]).unwrap();
/// assert_eq!((view.version(), view.header_len(), view.ttl()), (4, 20, 64));
/// assert!(view.dont_frag() && view.verify_checksum());
/// assert_eq!(view.payload().len(), 20);
/// ```
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap bytes without checking them; accessors may then return garbage (never panic
    /// only after [`Ipv4Packet::check_len`] succeeded).
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wrap bytes whose header fields are consistent with the buffer.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, WireError> {
        let p = Ipv4Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check version, IHL and total length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > b.len() {
            return Err(WireError::BadIhl);
        }
        let total = self.total_len() as usize;
        if total < hl || total > b.len() {
            return Err(WireError::BadTotalLength);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (4).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.b()[0] & 0x0f) as usize) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[1]
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.b()[6] & 0x40 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.b()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units, RFC 791 3.1).
    pub fn frag_offset(&self) -> u16 {
        (u16::from_be_bytes([self.b()[6], self.b()[7]]) & 0x1fff) * 8
    }

    /// True for a fragment: more fragments follow, or this one does not start at offset 0
    /// (RFC 791 3.2).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    /// Protocol of the payload (6 = TCP).
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[12], self.b()[13], self.b()[14], self.b()[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.b()[16], self.b()[17], self.b()[18], self.b()[19])
    }

    /// True when the header checksum is right (RFC 791 3.1).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }

    /// The payload: bytes after the header up to the total length (link padding ignored).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set version 4 and a header length (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.bm()[0] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Set the total length.
    pub fn set_total_len(&mut self, len: u16) {
        self.bm()[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Set the identification.
    pub fn set_ident(&mut self, ident: u16) {
        self.bm()[4..6].copy_from_slice(&ident.to_be_bytes());
    }

    /// Set or clear the don't-fragment flag.
    pub fn set_dont_frag(&mut self, df: bool) {
        self.bm()[6] = (self.b()[6] & !0x40) | if df { 0x40 } else { 0 };
    }

    /// Set or clear the more-fragments flag.
    pub fn set_more_frags(&mut self, mf: bool) {
        self.bm()[6] = (self.b()[6] & !0x20) | if mf { 0x20 } else { 0 };
    }

    /// Set the fragment offset, in bytes (rounded down to a multiple of 8; the flags are kept).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let units = offset / 8;
        let flags = self.b()[6] & 0xe0;
        self.bm()[6] = flags | (units >> 8) as u8;
        self.bm()[7] = units as u8;
    }

    /// Set the TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[8] = ttl;
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, p: u8) {
        self.bm()[9] = p;
    }

    /// Set the addresses.
    pub fn set_addrs(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.bm()[12..16].copy_from_slice(&src.octets());
        self.bm()[16..20].copy_from_slice(&dst.octets());
    }

    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        self.bm()[10..12].copy_from_slice(&[0, 0]);
        let hl = self.header_len();
        let c = checksum::checksum(&self.b()[..hl]);
        self.bm()[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// The fields of an IPv4 header that synack uses.
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
/// use synack::wire::{Ipv4Packet, Ipv4Repr, PROTO_TCP};
/// let header = Ipv4Repr {
///     src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(10, 0, 0, 2),
///     protocol: PROTO_TCP, payload_len: 0, ttl: 64,
/// };
/// let mut buf = [0u8; 20];
/// header.emit(&mut buf).unwrap();
/// assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap()).unwrap(), header);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Read a checked packet, verifying the header checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(WireError::BadIpChecksum);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len(),
            ttl: p.ttl(),
        })
    }

    /// Write a 20-byte header (DF set, as Linux does for TCP) into `buf[..20]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let total =
            u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| WireError::BadTotalLength)?;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.bm().fill(0);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_total_len(total);
        p.bm()[6] = 0x40; // DF
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_addrs(self.src, self.dst);
        p.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 28];
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: 6,
            payload_len: 8,
            ttl: 64,
        };
        repr.emit(&mut b).unwrap();
        b
    }

    #[test]
    fn emitted_header_parses_back() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.src, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!((r.protocol, r.payload_len, r.ttl), (6, 8, 64));
        assert!(p.dont_frag());
    }

    #[test]
    fn malformed_headers_are_rejected_with_their_reason() {
        let b = sample();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..10]).unwrap_err(),
            WireError::Truncated
        );
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadVersion
        );
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadIhl
        );
        let mut v = b.clone();
        v[0] = 0x4f; // 60 bytes > 28
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadIhl
        );
        let mut v = b.clone();
        v[2..4].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadTotalLength
        );
        let mut v = b.clone();
        v[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadTotalLength
        );
        let mut v = b.clone();
        v[8] ^= 1;
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), WireError::BadIpChecksum);
    }

    #[test]
    fn fragment_fields_are_set_and_read_back() {
        let mut b = sample();
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        assert!(!p.is_fragment());
        p.set_ident(0xbeef);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(8 * 8191);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.ident(), 0xbeef);
        assert!(!p.dont_frag() && p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 65528);
        assert!(Ipv4Repr::parse(&p).is_ok());
    }

    #[test]
    fn link_padding_after_total_length_is_ignored() {
        let mut b = sample();
        b.extend_from_slice(&[0xee; 6]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }
}
