//! TCP headers (RFC 9293 3.1): flags, a typed view over segment bytes, and a
//! representation that parses (checksum verified) and emits (checksum filled).

use alloc::string::String;
use alloc::string::ToString;
use core::fmt;
use core::net::IpAddr;
use core::ops::{BitOr, BitOrAssign};

use super::checksum;
use super::tcp_options::TcpOptions;
use super::{SeqNum, WireError};

/// The fixed TCP header length.
pub const HEADER_LEN: usize = 20;

/// The control bits of a TCP header.
///
/// # Examples
///
/// ```
/// use synack::wire::TcpFlags;
/// let flags = TcpFlags::SYN | TcpFlags::ACK;
/// assert!(flags.syn() && flags.ack() && !flags.fin());
/// assert_eq!(flags.bits(), 0x12);
/// assert_eq!(TcpFlags::from_bits(0x12), flags);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// No flags.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// From the raw byte.
    pub const fn from_bits(b: u8) -> TcpFlags {
        TcpFlags(b)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// All of `f` are set.
    pub const fn contains(self, f: TcpFlags) -> bool {
        self.0 & f.0 == f.0
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// PSH is set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    /// URG is set.
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    /// ECE (ECN-Echo) is set (RFC 3168 6.1).
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }

    /// CWR (Congestion Window Reduced) is set (RFC 3168 6.1).
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }

    /// These flags without those of `f`.
    pub const fn without(self, f: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !f.0)
    }

    /// tcpdump-like letters in the order S F R P A U E C ("SA", "FA", "PA", "R"); "-" for none.
    pub fn short(&self) -> String {
        self.letters(&[
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::ACK, 'A'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'C'),
        ])
    }

    /// packetdrill's letters: S F R P U E W, then "." for ACK ("S.", "P.", "F."); "-" for none.
    pub fn packetdrill(&self) -> String {
        self.letters(&[
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
            (Self::ACK, '.'),
        ])
    }

    fn letters(&self, table: &[(TcpFlags, char)]) -> String {
        let s: String = table
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, c)| *c)
            .collect();
        if s.is_empty() {
            "-".to_string()
        } else {
            s
        }
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// A view of a TCP segment (header and payload).
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
/// use synack::wire::TcpPacket;
/// let (ip, segment) = wire::parse_ip(&packet).unwrap();
/// let view = TcpPacket::new_checked(segment).unwrap();
/// assert_eq!((view.src_port(), view.dst_port()), (40000, 80));
/// assert_eq!(view.flags(), TcpFlags::SYN);
/// assert!(view.verify_checksum(&ip.src, &ip.dst));
/// ```
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap bytes without checking them.
    pub fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wrap bytes whose data offset fits the buffer.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, WireError> {
        let p = TcpPacket::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check the header length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.b().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(WireError::BadDataOffset);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.b()[i], self.b()[i + 1]])
    }

    fn u32_at(&self, i: usize) -> u32 {
        u32::from_be_bytes([
            self.b()[i],
            self.b()[i + 1],
            self.b()[i + 2],
            self.b()[i + 3],
        ])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(2)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> SeqNum {
        SeqNum::new(self.u32_at(4))
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> SeqNum {
        SeqNum::new(self.u32_at(8))
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        ((self.b()[12] >> 4) as usize) * 4
    }

    /// Control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.b()[13])
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        self.u16_at(14)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(16)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(18)
    }

    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len()]
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }

    /// True when the checksum over pseudo-header, header and payload is right.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let acc = checksum::pseudo_header(src, dst, 6, self.b().len() as u32);
        checksum::finish(checksum::sum(acc, self.b())) == 0
    }
}

/// A parsed TCP segment with its payload borrowed.
///
/// # Examples
///
/// ```
/// use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
/// let mut options = TcpOptions::default();
/// options.timestamps = Some(Timestamps { tsval: 1000, tsecr: 77 });
/// let segment = TcpRepr {
///     src_port: 80, dst_port: 40000,
///     seq: SeqNum::new(5000), ack: SeqNum::new(101),
///     flags: TcpFlags::PSH | TcpFlags::ACK,
///     window: 512, urgent: 0, options,
///     payload: b"hello",
/// };
/// // Emit a whole IPv6 packet with every checksum filled, then read it back.
/// let packet = wire::emit_tcp_packet("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), 64, &segment).unwrap();
/// assert_eq!(packet.len(), 40 + segment.buffer_len());
/// let (ip, parsed) = wire::parse_tcp_packet(&packet).unwrap();
/// assert_eq!(parsed, segment);
/// assert_eq!(parsed.seg_len(), 5);
/// assert_eq!(ip.dst.to_string(), "2001:db8::2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number (0 when ACK is clear).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: TcpFlags,
    /// Window field (unscaled).
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parse a checked segment, verifying its checksum and options.
    pub fn parse(
        packet: &TcpPacket<&'a [u8]>,
        src: &IpAddr,
        dst: &IpAddr,
    ) -> Result<TcpRepr<'a>, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(WireError::BadTcpChecksum);
        }
        Self::parse_verified(packet)
    }

    /// Parse a checked segment whose checksum the device has verified (receive
    /// checksum offload): everything [`TcpRepr::parse`] checks but the checksum.
    pub fn parse_verified(packet: &TcpPacket<&'a [u8]>) -> Result<TcpRepr<'a>, WireError> {
        packet.check_len()?;
        let bytes: &'a [u8] = packet.buffer;
        let hl = packet.header_len();
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: if packet.flags().ack() {
                packet.ack_number()
            } else {
                SeqNum::new(0)
            },
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(&bytes[HEADER_LEN..hl])?,
            payload: &bytes[hl..],
        })
    }

    /// Header length including padded options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.emitted_len(self.flags.syn())
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// SEG.LEN of RFC 9293: payload bytes plus one for SYN and one for FIN.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn() as u32 + self.flags.fin() as u32
    }

    /// Write the segment into `buf` (exactly `buffer_len()` bytes), checksum included.
    pub fn emit(&self, buf: &mut [u8], src: &IpAddr, dst: &IpAddr) -> Result<(), WireError> {
        if buf.len() != self.buffer_len() {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        self.emit_header(&mut buf[..hl])?;
        buf[hl..].copy_from_slice(self.payload);
        let acc = checksum::pseudo_header(src, dst, 6, buf.len() as u32);
        let c = checksum::finish(checksum::sum(acc, buf));
        buf[16..18].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }

    /// Write the header alone into `buf` (exactly `header_len()` bytes), its checksum
    /// field zero: the payload and the checksum are the caller's.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let hl = self.header_len();
        if buf.len() != hl {
            return Err(WireError::Truncated);
        }
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.get().to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack.get().to_be_bytes());
        buf[12] = ((hl / 4) as u8) << 4;
        buf[13] = self.flags.bits();
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..18].copy_from_slice(&[0, 0]);
        buf[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        self.options
            .emit(&mut buf[HEADER_LEN..hl], self.flags.syn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_like_tcpdump() {
        assert_eq!((TcpFlags::SYN | TcpFlags::ACK).short(), "SA");
        assert_eq!((TcpFlags::FIN | TcpFlags::ACK).short(), "FA");
        assert_eq!((TcpFlags::PSH | TcpFlags::ACK).short(), "PA");
        assert_eq!((TcpFlags::RST | TcpFlags::ACK).short(), "RA");
        assert_eq!(TcpFlags::empty().short(), "-");
    }

    #[test]
    fn short_or_bad_offset_segments_are_rejected() {
        assert_eq!(
            TcpPacket::new_checked(&[0u8; 19][..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = [0u8; 20];
        b[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::BadDataOffset
        );
        b[12] = 6 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::BadDataOffset
        );
    }
}
