//! Wire formats: typed views over IPv4, IPv6, TCP and ICMP bytes with their representations,
//! options, checksums and [`SeqNum`]. Parsing never panics and never reads out of bounds:
//! every malformed input is a [`WireError`] whose [`WireError::reason`] names the drop.

mod checksum;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod seq;
pub mod tcp;
mod tcp_md5;
mod tcp_options;
pub mod udp;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

pub use checksum::{at_odd_offset, checksum, copy_and_sum, finish, pseudo_header, sum};
pub use icmp::{IcmpPacket, IcmpRepr, IcmpVersion, QuotedTcp};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr, UnfragmentablePart};
pub use seq::SeqNum;
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use tcp_md5::{sign_tcp_md5, tcp_md5_digest, TCP_MD5_MAX_KEY_LEN};
pub use tcp_options::{FastOpenCookie, SackBlocks, TcpOptions, Timestamps, MD5SIG_ALIGNED_LEN};
pub use udp::{parse_udp, UdpPacket, UdpRepr, PROTO_UDP};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// The ECN field of an IP header (RFC 3168 5): the low two bits of the IPv4 TOS byte
/// or of the IPv6 Traffic Class.
///
/// # Examples
///
/// ```
/// use synack::wire::Ecn;
/// assert_eq!(Ecn::from_bits(0b11), Ecn::Ce);
/// assert_eq!(Ecn::Ect0.bits(), 0b10);
/// assert!(Ecn::Ect1.is_ect() && !Ecn::NotEct.is_ect() && !Ecn::Ce.is_ect());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// Not-ECT (00): the sender does not take part in ECN.
    #[default]
    NotEct,
    /// ECT(1) (01): an ECN-capable transport.
    Ect1,
    /// ECT(0) (10): an ECN-capable transport, the codepoint TCP uses (RFC 3168 6.1.1).
    Ect0,
    /// CE (11): congestion experienced, set by a router instead of dropping.
    Ce,
}

impl Ecn {
    /// The codepoint of the two low bits of `bits`.
    pub fn from_bits(bits: u8) -> Ecn {
        match bits & 3 {
            0 => Ecn::NotEct,
            1 => Ecn::Ect1,
            2 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// The two bits of the field.
    pub fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0,
            Ecn::Ect1 => 1,
            Ecn::Ect0 => 2,
            Ecn::Ce => 3,
        }
    }

    /// ECT(0) or ECT(1): a packet a router may mark CE.
    pub fn is_ect(self) -> bool {
        matches!(self, Ecn::Ect0 | Ecn::Ect1)
    }
}

/// Write `ecn` into the ECN field of the IP packet at the start of `packet`, in place
/// (the IPv4 header checksum is updated): what a router marking CE does, and how a
/// test sets the codepoint of a packet it built. Bytes that are not an IPv4 or IPv6
/// header are left alone.
///
/// # Examples
///
/// ```
/// # use std::net::IpAddr;
/// # use synack::wire::{self, Ecn, SeqNum, TcpFlags, TcpOptions, TcpRepr};
/// # let (src, dst): (IpAddr, IpAddr) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// # let seg = TcpRepr {
/// #     src_port: 40000, dst_port: 80, seq: SeqNum::new(1), ack: SeqNum::new(0),
/// #     flags: TcpFlags::ACK, window: 65535, urgent: 0, options: TcpOptions::default(), payload: b"x",
/// # };
/// let mut packet = wire::emit_tcp_packet(src, dst, 64, &seg).unwrap();
/// wire::set_ecn(&mut packet, Ecn::Ce);
/// let (ip, _) = wire::parse_ip(&packet).unwrap(); // the header checksum still holds
/// assert_eq!(ip.ecn, Ecn::Ce);
/// ```
pub fn set_ecn(packet: &mut [u8], ecn: Ecn) {
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= ipv4::HEADER_LEN => {
            let hl = usize::from(packet[0] & 0x0f) * 4;
            packet[1] = (packet[1] & !3) | ecn.bits();
            if (ipv4::HEADER_LEN..=packet.len()).contains(&hl) {
                let mut p = Ipv4Packet::new_unchecked(&mut packet[..hl]);
                p.fill_checksum();
            }
        }
        // The Traffic Class straddles bytes 0 and 1: its low two bits are bits 4-5 of byte 1.
        Some(6) if packet.len() >= ipv6::HEADER_LEN => {
            packet[1] = (packet[1] & !0x30) | (ecn.bits() << 4);
        }
        _ => {}
    }
}

/// The longest IP and TCP headers of a packet synack builds: IPv6 and a TCP header
/// full of options.
pub const MAX_TCP_HEADERS: usize = ipv6::HEADER_LEN + 60;

/// Why bytes are not a packet synack accepts.
///
/// # Examples
///
/// ```
/// use synack::wire::{parse_ip, WireError};
/// assert_eq!(parse_ip(&[]), Err(WireError::Truncated));
/// assert_eq!(parse_ip(&[0x70; 40]), Err(WireError::BadVersion));
/// assert_eq!(WireError::BadTcpChecksum.reason(), "bad_tcp_checksum"); // the drop counter's name
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its headers say.
    Truncated,
    /// IP version neither 4 nor 6.
    BadVersion,
    /// IPv4 header length below 20 bytes or beyond the packet.
    BadIhl,
    /// IPv4 total length inconsistent with the header or the buffer.
    BadTotalLength,
    /// IPv6 payload length beyond the buffer.
    BadPayloadLength,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// A fragment: [`parse_fragment`] reads its fields; `Stack::receive` reassembles.
    Fragmented,
    /// Not TCP.
    UnsupportedProtocol(u8),
    /// TCP data offset below 5 words or beyond the segment.
    BadDataOffset,
    /// TCP checksum wrong.
    BadTcpChecksum,
    /// A TCP option's length is missing, below 2, or runs past the header.
    BadOption,
    /// Source and destination of different IP versions.
    AddressFamilyMismatch,
    /// ICMP or ICMPv6 checksum wrong.
    BadIcmpChecksum,
    /// UDP checksum wrong (or zero over IPv6, where it is mandatory).
    BadUdpChecksum,
    /// UDP length field below 8 or beyond the packet.
    BadUdpLength,
}

impl WireError {
    /// A stable snake_case name, used as the drop counter's key.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_ip_version",
            WireError::BadIhl => "bad_ihl",
            WireError::BadTotalLength => "bad_total_length",
            WireError::BadPayloadLength => "bad_payload_length",
            WireError::BadIpChecksum => "bad_ip_checksum",
            WireError::Fragmented => "fragment",
            WireError::UnsupportedProtocol(_) => "not_tcp",
            WireError::BadDataOffset => "bad_data_offset",
            WireError::BadTcpChecksum => "bad_tcp_checksum",
            WireError::BadOption => "bad_tcp_option",
            WireError::AddressFamilyMismatch => "address_family_mismatch",
            WireError::BadIcmpChecksum => "bad_icmp_checksum",
            WireError::BadUdpChecksum => "bad_udp_checksum",
            WireError::BadUdpLength => "bad_udp_length",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "packet shorter than its headers"),
            WireError::BadVersion => write!(f, "IP version is neither 4 nor 6"),
            WireError::BadIhl => write!(
                f,
                "IPv4 header length is below 20 bytes or beyond the packet"
            ),
            WireError::BadTotalLength => write!(f, "IPv4 total length does not match the packet"),
            WireError::BadPayloadLength => write!(f, "IPv6 payload length runs past the packet"),
            WireError::BadIpChecksum => write!(f, "IPv4 header checksum is wrong"),
            WireError::Fragmented => write!(f, "IP fragment (reassembly needed)"),
            WireError::UnsupportedProtocol(p) => write!(f, "IP protocol {p} is not TCP"),
            WireError::BadDataOffset => {
                write!(f, "TCP data offset is below 5 or beyond the segment")
            }
            WireError::BadTcpChecksum => write!(f, "TCP checksum is wrong"),
            WireError::BadOption => write!(
                f,
                "a TCP option's length is invalid or runs past the header"
            ),
            WireError::AddressFamilyMismatch => {
                write!(f, "source and destination are of different IP versions")
            }
            WireError::BadIcmpChecksum => write!(f, "ICMP checksum is wrong"),
            WireError::BadUdpChecksum => write!(f, "UDP checksum is wrong (or zero over IPv6)"),
            WireError::BadUdpLength => {
                write!(f, "UDP length is below 8 or beyond the packet")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// The IP-layer facts about a packet carrying an upper-layer protocol.
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
/// let (ip, tcp_bytes) = wire::parse_ip(&packet).unwrap();
/// assert_eq!((ip.src, ip.dst, ip.protocol, ip.ttl), (src, dst, wire::PROTO_TCP, 64));
/// assert_eq!(tcp_bytes.len(), 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol number.
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The ECN field (RFC 3168 5).
    pub ecn: Ecn,
}

/// Parse an IPv4 or IPv6 packet down to its upper-layer protocol and bytes. A fragment
/// (IPv4 MF set or offset non-zero; IPv6 with a Fragment header) is
/// [`WireError::Fragmented`], after its header was checked: see [`parse_fragment`].
pub fn parse_ip(packet: &[u8]) -> Result<(IpInfo, &[u8]), WireError> {
    match packet.first().map(|b| b >> 4) {
        None => Err(WireError::Truncated),
        Some(4) => {
            let p = Ipv4Packet::new_checked(packet)?;
            let r = Ipv4Repr::parse(&p)?;
            if p.more_frags() || p.frag_offset() != 0 {
                return Err(WireError::Fragmented);
            }
            let info = IpInfo {
                src: r.src.into(),
                dst: r.dst.into(),
                protocol: r.protocol,
                ttl: r.ttl,
                ecn: Ecn::from_bits(p.dscp_ecn()),
            };
            Ok((info, &packet[p.header_len()..p.total_len() as usize]))
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(packet)?;
            let (protocol, range) = p.upper_layer_range()?;
            let info = IpInfo {
                src: p.src_addr().into(),
                dst: p.dst_addr().into(),
                protocol,
                ttl: p.hop_limit(),
                ecn: Ecn::from_bits(p.traffic_class()),
            };
            Ok((info, &packet[range]))
        }
        Some(_) => Err(WireError::BadVersion),
    }
}

/// One IP fragment, as reassembly needs it (RFC 791 3.2, RFC 8200 4.5).
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
/// // Cut the packet's 20 TCP bytes at 8 into two IPv4 fragments, and read them back.
/// let fragments = wire::fragment_packet(&packet, &[8], 7);
/// assert_eq!(wire::parse_ip(&fragments[0]), Err(wire::WireError::Fragmented));
/// let first = wire::parse_fragment(&fragments[0]).unwrap().unwrap();
/// let second = wire::parse_fragment(&fragments[1]).unwrap().unwrap();
/// assert_eq!((first.ident, first.offset, first.more_frags, first.data.len()), (7, 0, true, 8));
/// assert_eq!((second.offset, second.more_frags, second.data.len()), (8, false, 12));
/// assert_eq!(wire::parse_fragment(&packet).unwrap(), None); // not a fragment
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpFragment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4: the protocol. IPv6: the Fragment header's Next Header, the first header of
    /// the Fragmentable Part (the upper-layer protocol when there are no more extension
    /// headers).
    pub protocol: u8,
    /// Identification: 16 bits in IPv4, 32 in IPv6.
    pub ident: u32,
    /// Where `data` starts in the datagram's Fragmentable Part, in bytes.
    pub offset: u16,
    /// More fragments follow (IPv4 MF, IPv6 M).
    pub more_frags: bool,
    /// The bytes before the fragment data, without the Fragment header: the IPv4 header
    /// with its options, or the IPv6 Unfragmentable Part.
    pub header: &'a [u8],
    /// IPv6: where in `header` the Next Header field that names the Fragment header is
    /// (reassembly writes `protocol` there). None for IPv4.
    pub next_header_at: Option<usize>,
    /// The fragment's data.
    pub data: &'a [u8],
}

/// Parse a packet that [`parse_ip`] found to be a fragment: `Ok(None)` when it is not one.
/// The same checks as [`parse_ip`] come first (lengths, the IPv4 header checksum).
pub fn parse_fragment(packet: &[u8]) -> Result<Option<IpFragment<'_>>, WireError> {
    match packet.first().map(|b| b >> 4) {
        None => Err(WireError::Truncated),
        Some(4) => {
            let p = Ipv4Packet::new_checked(packet)?;
            let r = Ipv4Repr::parse(&p)?;
            if !p.is_fragment() {
                return Ok(None);
            }
            let hl = p.header_len();
            Ok(Some(IpFragment {
                src: r.src.into(),
                dst: r.dst.into(),
                protocol: r.protocol,
                ident: u32::from(p.ident()),
                offset: p.frag_offset(),
                more_frags: p.more_frags(),
                header: &packet[..hl],
                next_header_at: None,
                data: &packet[hl..p.total_len() as usize],
            }))
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(packet)?;
            let Some(part) = p.unfragmentable_part()? else {
                return Ok(None);
            };
            let end = ipv6::HEADER_LEN + p.payload_len() as usize;
            let h = Ipv6FragmentHeader::new_checked(&packet[part.len..end])?;
            Ok(Some(IpFragment {
                src: p.src_addr().into(),
                dst: p.dst_addr().into(),
                protocol: h.next_header(),
                ident: h.ident(),
                offset: h.frag_offset(),
                more_frags: h.more_frags(),
                header: &packet[..part.len],
                next_header_at: Some(part.next_header_at),
                data: &packet[part.len + ipv6::FRAGMENT_HEADER_LEN..end],
            }))
        }
        Some(_) => Err(WireError::BadVersion),
    }
}

/// Parse the TCP segment that `ip` carries, verifying its checksum.
pub fn parse_tcp<'a>(ip: &IpInfo, segment: &'a [u8]) -> Result<TcpRepr<'a>, WireError> {
    if ip.protocol != PROTO_TCP {
        return Err(WireError::UnsupportedProtocol(ip.protocol));
    }
    let p = TcpPacket::new_checked(segment)?;
    TcpRepr::parse(&p, &ip.src, &ip.dst)
}

/// What a received segment's checksum adds up to without its payload: the
/// pseudo-header and the TCP header (checksum field included). The payload's sum is
/// added when it is read anyway, as it is copied into a receive buffer (see
/// [`copy_and_sum`]), so that the payload is read once, not once to verify and once to
/// copy. Nothing of the segment may take effect before [`PendingChecksum::verify_with`]
/// says it is right (RFC 9293 3.1).
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
/// let (ip, segment) = wire::parse_ip(&packet).unwrap();
/// let (tcp, pending) = wire::parse_tcp_deferred(&ip, segment).unwrap();
/// // The payload is summed where it is consumed (copied into a buffer), then checked.
/// assert!(pending.verify(tcp.payload));
/// assert!(pending.verify_with(wire::sum(0, tcp.payload)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingChecksum(u32);

impl PendingChecksum {
    /// Whether the checksum is right, given the payload's sum (`sum(0, payload)` or
    /// what [`copy_and_sum`] returned for it).
    pub fn verify_with(self, payload_sum: u32) -> bool {
        finish(self.0 + payload_sum) == 0
    }

    /// Whether the checksum is right, summing `payload` now.
    pub fn verify(self, payload: &[u8]) -> bool {
        finish(sum(self.0, payload)) == 0
    }
}

/// [`parse_tcp`] with the payload's part of the checksum left to the caller: everything
/// else is checked and the header summed. A segment whose options do not parse has its
/// checksum verified whole first, so that a corrupted one is reported as such.
pub fn parse_tcp_deferred<'a>(
    ip: &IpInfo,
    segment: &'a [u8],
) -> Result<(TcpRepr<'a>, PendingChecksum), WireError> {
    if ip.protocol != PROTO_TCP {
        return Err(WireError::UnsupportedProtocol(ip.protocol));
    }
    let p = TcpPacket::new_checked(segment)?;
    let repr = match TcpRepr::parse_verified(&p) {
        Ok(repr) => repr,
        Err(_) if !p.verify_checksum(&ip.src, &ip.dst) => return Err(WireError::BadTcpChecksum),
        Err(e) => return Err(e),
    };
    let header = &segment[..segment.len() - repr.payload.len()];
    // The header is a whole number of 32-bit words: the payload's sum adds on as it is.
    let acc = pseudo_header(&ip.src, &ip.dst, PROTO_TCP, segment.len() as u32);
    Ok((repr, PendingChecksum(sum(acc, header))))
}

/// [`parse_tcp`] for a segment whose checksum the device has verified.
pub fn parse_tcp_verified<'a>(ip: &IpInfo, segment: &'a [u8]) -> Result<TcpRepr<'a>, WireError> {
    if ip.protocol != PROTO_TCP {
        return Err(WireError::UnsupportedProtocol(ip.protocol));
    }
    TcpRepr::parse_verified(&TcpPacket::new_checked(segment)?)
}

/// Parse a whole IP packet carrying TCP.
pub fn parse_tcp_packet(packet: &[u8]) -> Result<(IpInfo, TcpRepr<'_>), WireError> {
    let (ip, seg) = parse_ip(packet)?;
    Ok((ip, parse_tcp(&ip, seg)?))
}

/// Build a whole IPv4 or IPv6 packet carrying `tcp`, every checksum filled.
pub fn emit_tcp_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tcp: &TcpRepr<'_>,
) -> Result<Vec<u8>, WireError> {
    let ip_len = if src.is_ipv4() {
        ipv4::HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    let mut buf = vec![0u8; ip_len + tcp.buffer_len()];
    emit_tcp_packet_into(
        &mut buf,
        src,
        dst,
        (ttl, Ecn::NotEct),
        tcp,
        &[],
        TxChecksum::Full,
    )?;
    Ok(buf)
}

/// How the TCP checksum of a packet the stack builds is filled.
///
/// # Examples
///
/// ```
/// use synack::wire::TxChecksum;
/// let mut config = synack::Config::default();
/// assert_eq!(config.tx_checksum, TxChecksum::Full);
/// config.tx_checksum = TxChecksum::Partial; // a device with checksum offload finishes it
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxChecksum {
    /// Complete (RFC 9293 3.1): what goes on a wire as it is.
    #[default]
    Full,
    /// Only the pseudo-header's sum, folded and not complemented, for a device with
    /// checksum offload to finish by summing from the TCP header on (Linux's
    /// `CHECKSUM_PARTIAL`, virtio-net's `NEEDS_CSUM`). Saves a pass over the payload.
    Partial,
}

/// Build an IPv4 or IPv6 packet carrying `tcp` at the start of `buf` and return its
/// length: the payload is `tcp.payload` followed by `tail` (a ring buffer's two pieces),
/// copied and summed in one pass. `(ttl, ecn)` are the IP header's TTL (hop limit) and
/// ECN codepoint. The IP header checksum is always complete; the TCP checksum as `csum`
/// says. [`WireError::Truncated`] when `buf` is too short.
pub fn emit_tcp_packet_into(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    (ttl, ecn): (u8, Ecn),
    tcp: &TcpRepr<'_>,
    tail: &[u8],
    csum: TxChecksum,
) -> Result<usize, WireError> {
    let ip_len = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::HEADER_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
        _ => return Err(WireError::AddressFamilyMismatch),
    };
    let hl = tcp.header_len();
    let (head, tcp_len) = (tcp.payload.len(), hl + tcp.payload.len() + tail.len());
    let buf = buf
        .get_mut(..ip_len + tcp_len)
        .ok_or(WireError::Truncated)?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src: s,
            dst: d,
            protocol: PROTO_TCP,
            payload_len: tcp_len,
            ttl,
        }
        .emit(buf)?,
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src: s,
            dst: d,
            next_header: PROTO_TCP,
            payload_len: tcp_len,
            hop_limit: ttl,
        }
        .emit(buf)?,
        _ => return Err(WireError::AddressFamilyMismatch),
    }
    if ecn != Ecn::NotEct {
        set_ecn(&mut buf[..ip_len], ecn);
    }
    let seg = &mut buf[ip_len..];
    tcp.emit_header(&mut seg[..hl])?;
    let pseudo = pseudo_header(&src, &dst, PROTO_TCP, tcp_len as u32);
    let field = match csum {
        TxChecksum::Full => {
            let (header, data) = seg.split_at_mut(hl);
            let (first, second) = data.split_at_mut(head);
            let mut acc = sum(pseudo, header);
            acc = copy_and_sum(acc, first, tcp.payload);
            let rest = copy_and_sum(0, second, tail);
            acc += if head % 2 == 1 {
                at_odd_offset(rest)
            } else {
                rest
            };
            finish(acc)
        }
        TxChecksum::Partial => {
            seg[hl..hl + head].copy_from_slice(tcp.payload);
            seg[hl + head..].copy_from_slice(tail);
            !finish(pseudo)
        }
    };
    seg[16..18].copy_from_slice(&field.to_be_bytes());
    Ok(ip_len + tcp_len)
}

/// Cut a whole `packet` (IPv4, or IPv6 with no extension headers) into fragments whose
/// data starts at 0 and at each of `cuts` (multiples of 8, RFC 791 3.2), all with
/// identification `ident`; IPv6 fragments carry a Fragment header right after the fixed
/// header (RFC 8200 4.5). The stack never fragments what it sends; this is the emit
/// side of what it reassembles, for tests and tools.
pub fn fragment_packet(packet: &[u8], cuts: &[usize], ident: u32) -> Vec<Vec<u8>> {
    let v6 = packet[0] >> 4 == 6;
    let hl = if v6 {
        40
    } else {
        usize::from(packet[0] & 15) * 4
    };
    let body = &packet[hl..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(body.len());
    bounds
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            let more = end < body.len();
            let mut f = packet[..hl].to_vec();
            if v6 {
                let mut h = [0u8; ipv6::FRAGMENT_HEADER_LEN];
                let mut fh = Ipv6FragmentHeader::new_unchecked(&mut h[..]);
                fh.set_next_header(packet[6]);
                fh.set_frag_offset(start as u16);
                fh.set_more_frags(more);
                fh.set_ident(ident);
                f[6] = ipv6::NEXT_HEADER_FRAGMENT;
                f.extend_from_slice(&h);
                f.extend_from_slice(&body[start..end]);
                let len = (f.len() - 40) as u16;
                f[4..6].copy_from_slice(&len.to_be_bytes());
            } else {
                f.extend_from_slice(&body[start..end]);
                let len = f.len() as u16;
                let mut p = Ipv4Packet::new_unchecked(&mut f[..]);
                p.set_ident(ident as u16);
                p.set_dont_frag(false);
                p.set_more_frags(more);
                p.set_frag_offset(start as u16);
                p.set_total_len(len);
                p.fill_checksum();
            }
            f
        })
        .collect()
}

/// Build a whole IPv4 packet carrying ICMP, or IPv6 carrying ICMPv6, checksums filled.
pub fn emit_icmp_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    icmp: &IcmpRepr<'_>,
) -> Result<Vec<u8>, WireError> {
    let (version, protocol) = if src.is_ipv4() {
        (IcmpVersion::V4, icmp::PROTO_ICMP)
    } else {
        (IcmpVersion::V6, icmp::PROTO_ICMPV6)
    };
    emit_ip_packet(src, dst, ttl, protocol, icmp.buffer_len(), |buf| {
        icmp.emit(version, &src, &dst, buf)
    })
}

/// Build a whole IPv4 or IPv6 packet carrying the UDP datagram `udp`, checksums filled
/// (it may be larger than a link's MTU: [`fragment_packet`] cuts it).
pub fn emit_udp_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    udp: &UdpRepr<'_>,
) -> Result<Vec<u8>, WireError> {
    emit_ip_packet(src, dst, ttl, PROTO_UDP, udp.buffer_len(), |buf| {
        udp.emit(&src, &dst, buf)
    })
}

/// A whole IPv4 or IPv6 packet carrying `body` as it is (an upper-layer message whose
/// checksum is already in it): how an ICMP error's quote is rebuilt.
pub fn emit_raw_ip_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    protocol: u8,
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    emit_ip_packet(src, dst, ttl, protocol, body.len(), |buf| {
        buf.copy_from_slice(body);
        Ok(())
    })
}

/// An IP header for `payload_len` bytes of `protocol`, then `fill` writes the payload.
fn emit_ip_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    protocol: u8,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), WireError>,
) -> Result<Vec<u8>, WireError> {
    let ip_len = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::HEADER_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
        _ => return Err(WireError::AddressFamilyMismatch),
    };
    let mut buf = vec![0u8; ip_len + payload_len];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src: s,
            dst: d,
            protocol,
            payload_len,
            ttl,
        }
        .emit(&mut buf)?,
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src: s,
            dst: d,
            next_header: protocol,
            payload_len,
            hop_limit: ttl,
        }
        .emit(&mut buf)?,
        _ => return Err(WireError::AddressFamilyMismatch),
    }
    fill(&mut buf[ip_len..])?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A source and a destination address, IPv6 or IPv4.
    fn addresses(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
        }
    }

    /// A data segment (ACK set) carrying `payload`.
    fn ack_repr(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            flags: TcpFlags::ACK,
            ..syn_repr(payload)
        }
    }

    fn syn_repr(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum::new(0x11223344),
            ack: SeqNum::new(0),
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
                ..TcpOptions::default()
            },
            payload,
        }
    }

    #[test]
    fn tcp_over_ipv4_and_ipv6_round_trips() {
        for (s, d) in [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let repr = syn_repr(b"");
            let p = emit_tcp_packet(s, d, 64, &repr).unwrap();
            let (ip, back) = parse_tcp_packet(&p).unwrap();
            assert_eq!((ip.src, ip.dst, ip.protocol), (s, d, 6));
            assert_eq!(back, repr);
        }
    }

    proptest! {
        #[test]
        fn a_packet_built_from_two_pieces_into_a_used_buffer_equals_one_built_whole(
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            split in 0usize..1500,
            old in 0usize..3000,
            v6 in any::<bool>(),
        ) {
            let (s, d) = addresses(v6);
            let mut repr = ack_repr(&payload);
            let whole = emit_tcp_packet(s, d, 64, &repr).unwrap();
            let (head, tail) = payload.split_at(split.min(payload.len()));
            repr.payload = head;
            let mut buf = vec![0x5A; whole.len() + old];
            let n = emit_tcp_packet_into(&mut buf, s, d, (64, Ecn::NotEct), &repr, tail, TxChecksum::Full).unwrap();
            prop_assert_eq!(&buf[..n], &whole[..]);
            // A buffer too short is refused, not overrun.
            prop_assert_eq!(
                emit_tcp_packet_into(&mut buf[..n - 1], s, d, (64, Ecn::NotEct), &repr, tail, TxChecksum::Full),
                Err(WireError::Truncated)
            );
            // Partial: a device summing from the TCP header on (over the pseudo-header
            // sum left in the field) writes the same checksum.
            let n = emit_tcp_packet_into(&mut buf, s, d, (64, Ecn::NotEct), &repr, tail, TxChecksum::Partial).unwrap();
            let mut buf = buf[..n].to_vec();
            let ip_len = if v6 { 40 } else { 20 };
            let device = checksum(&buf[ip_len..]);
            buf[ip_len + 16..ip_len + 18].copy_from_slice(&device.to_be_bytes());
            prop_assert_eq!(&buf, &whole);
        }
    }

    proptest! {
        /// The checksum verified in two parts (header first, the payload's sum taken
        /// while copying it) accepts exactly what the whole-segment check accepts, with
        /// or without a corrupted byte anywhere in the segment.
        #[test]
        fn a_checksum_verified_while_copying_agrees_with_the_whole_segment_check(
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            flip in any::<Option<(prop::sample::Index, u8)>>(),
            v6 in any::<bool>(),
        ) {
            let (s, d) = addresses(v6);
            let repr = ack_repr(&payload);
            let mut packet = emit_tcp_packet(s, d, 64, &repr).unwrap();
            let ip_len = packet.len() - repr.buffer_len();
            if let Some((at, bits)) = flip {
                // Anywhere in the TCP segment but the data offset (which would change
                // where the payload starts, a parse error rather than a checksum one).
                let at = ip_len + at.index(packet.len() - ip_len);
                if at != ip_len + 12 {
                    packet[at] ^= bits;
                }
            }
            let (ip, segment) = parse_ip(&packet).unwrap();
            let whole = TcpPacket::new_checked(segment).unwrap().verify_checksum(&ip.src, &ip.dst);
            match parse_tcp_deferred(&ip, segment) {
                Ok((seg, pending)) => {
                    let mut copy = vec![0u8; seg.payload.len()];
                    let sum = copy_and_sum(0, &mut copy, seg.payload);
                    prop_assert_eq!(pending.verify_with(sum), whole);
                    prop_assert_eq!(pending.verify(seg.payload), whole);
                    prop_assert_eq!(&copy[..], seg.payload);
                }
                Err(e) => prop_assert_eq!(whole, e != WireError::BadTcpChecksum, "{:?}", e),
            }
        }
    }

    #[test]
    fn a_hand_built_syn_checksums_as_computed_independently() {
        // 198.18.0.1:40000 -> 198.18.0.2:80, SYN, seq 1, no options, window 1024.
        let mut p: Vec<u8> = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0x00, 0, 0, 0,
            0, // TCP
        ];
        // IPv4 header checksum by the textbook method: sum 16-bit words, fold, invert.
        let words = |b: &[u8]| {
            b.chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum::<u32>()
        };
        let fold = |mut s: u32| {
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        let ip_sum = fold(words(&p[..20]));
        p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let pseudo = words(&[198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0, 20]);
        let tcp_sum = fold(pseudo + words(&p[20..]));
        p[36..38].copy_from_slice(&tcp_sum.to_be_bytes());
        let (ip, tcp) = parse_tcp_packet(&p).unwrap();
        assert_eq!(ip.dst, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (tcp.src_port, tcp.dst_port, tcp.seq.get(), tcp.window),
            (40000, 80, 1, 1024)
        );
        assert!(tcp.flags.syn() && !tcp.flags.ack());
    }

    #[test]
    fn malformed_packets_return_their_specific_error() {
        let s: IpAddr = "198.18.0.1".parse().unwrap();
        let d: IpAddr = "198.18.0.2".parse().unwrap();
        let good = emit_tcp_packet(s, d, 64, &syn_repr(b"data")).unwrap();
        assert_eq!(parse_tcp_packet(&[]).unwrap_err(), WireError::Truncated);
        assert_eq!(
            parse_tcp_packet(&[0x75, 0]).unwrap_err(),
            WireError::BadVersion
        );
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(
            parse_tcp_packet(&bad).unwrap_err(),
            WireError::BadTcpChecksum
        );
        let mut frag = good.clone();
        frag[6] |= 0x20;
        frag[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&frag[..20]);
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_tcp_packet(&frag).unwrap_err(), WireError::Fragmented);
        let f = parse_fragment(&frag).unwrap().expect("a fragment");
        assert_eq!((f.offset, f.more_frags, f.protocol), (0, true, PROTO_TCP));
        assert_eq!((f.header.len(), f.data), (20, &good[20..]));
        assert_eq!(parse_fragment(&good).unwrap(), None);
        let mut udp = good.clone();
        udp[9] = 17;
        udp[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&udp[..20]);
        udp[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            parse_tcp_packet(&udp).unwrap_err(),
            WireError::UnsupportedProtocol(17)
        );
        // A TCP header cut short inside a consistent IPv4 packet.
        let mut short = good[..30].to_vec();
        short[2..4].copy_from_slice(&30u16.to_be_bytes());
        short[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&short[..20]);
        short[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_tcp_packet(&short).unwrap_err(), WireError::Truncated);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            emit_tcp_packet(v6, d, 64, &syn_repr(b"")).unwrap_err(),
            WireError::AddressFamilyMismatch
        );
    }

    fn arb_repr() -> impl Strategy<Value = (TcpRepr<'static>, Vec<u8>)> {
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..15),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
            proptest::collection::vec(any::<u8>(), 0..2000),
        )
            .prop_map(
                |(sp, dp, seq, ack, flags, win, mss, ws, sack, ts, payload)| {
                    let flags = TcpFlags::from_bits(flags);
                    let syn = flags.syn();
                    let repr = TcpRepr {
                        src_port: sp,
                        dst_port: dp,
                        seq: SeqNum::new(seq),
                        ack: SeqNum::new(if flags.ack() { ack } else { 0 }),
                        flags,
                        window: win,
                        urgent: 0,
                        options: TcpOptions {
                            mss: mss.filter(|_| syn),
                            window_scale: ws.filter(|_| syn),
                            sack_permitted: sack && syn,
                            timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                            ..TcpOptions::default()
                        },
                        payload: &[],
                    };
                    (repr, payload)
                },
            )
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(( repr, payload) in arb_repr(), v6 in any::<bool>()) {
            let (s, d): (IpAddr, IpAddr) = if v6 {
                ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
            } else {
                ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
            };
            let repr = TcpRepr { payload: &payload, ..repr };
            let p = emit_tcp_packet(s, d, 64, &repr).unwrap();
            let (_, back) = parse_tcp_packet(&p).unwrap();
            prop_assert_eq!(back, repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_tcp_packet(&bytes);
            let _ = parse_fragment(&bytes);
        }

        #[test]
        fn mutated_packets_never_panic(i in any::<prop::sample::Index>(), v in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let s: IpAddr = "198.18.0.1".parse().unwrap();
            let d: IpAddr = "198.18.0.2".parse().unwrap();
            let mut p = emit_tcp_packet(s, d, 64, &syn_repr(b"payload")).unwrap();
            let at = i.index(p.len());
            p[at] = v;
            p.truncate(cut.index(p.len() + 1));
            let _ = parse_tcp_packet(&p);
            let _ = parse_fragment(&p);
        }
    }
}
