//! ICMP (RFC 792) and ICMPv6 (RFC 4443): a typed view over the message bytes and a
//! representation of the messages a TCP host acts on — echo (ping), destination
//! unreachable, packet too big, time exceeded, parameter problem — plus the header of
//! the packet an error message quotes, which is how an error finds its connection.
//! Neighbour discovery and other informational ICMPv6 messages parse as [`IcmpRepr::Other`].

use core::net::IpAddr;

use super::checksum::{finish, pseudo_header, sum};
use super::{Ipv4Packet, Ipv6Packet, WireError, PROTO_TCP};

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;

/// Which ICMP: the numbering of message types differs between the two.
///
/// # Examples
///
/// ```
/// use synack::wire::{self, IcmpPacket, IcmpRepr, IcmpVersion};
/// let (src, dst) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
/// let ping = IcmpRepr::EchoRequest { ident: 1, seq: 2, data: b"ping" };
/// let packet = wire::emit_icmp_packet(src, dst, 64, &ping).unwrap(); // ICMPv6 over IPv6
/// let (ip, body) = wire::parse_ip(&packet).unwrap();
/// let view = IcmpPacket::new_checked(body).unwrap();
/// assert_eq!(view.msg_type(), 128); // ICMPv6 echo request; ICMP's is 8
/// assert!(view.verify_checksum(IcmpVersion::V6, &ip.src, &ip.dst));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpVersion {
    /// ICMP for IPv4 (RFC 792).
    V4,
    /// ICMPv6 (RFC 4443).
    V6,
}

/// A read-only view of an ICMP or ICMPv6 message.
///
/// # Examples
///
/// ```
/// use synack::wire::{self, IcmpPacket, IcmpRepr, IcmpVersion};
/// let (src, dst) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
/// let packet = wire::emit_icmp_packet(src, dst, 64, &IcmpRepr::EchoReply { ident: 9, seq: 1, data: b"" }).unwrap();
/// let (ip, body) = wire::parse_ip(&packet).unwrap();
/// let view = IcmpPacket::new_checked(body).unwrap();
/// assert_eq!((view.msg_type(), view.code()), (0, 0));
/// assert!(view.verify_checksum(IcmpVersion::V4, &ip.src, &ip.dst));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap `buffer`, checking it holds at least the fixed header.
    pub fn new_checked(buffer: T) -> Result<IcmpPacket<T>, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpPacket { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The 4 bytes after the checksum (identifier and sequence, MTU, pointer, ...).
    pub fn rest_of_header(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// Everything after the fixed header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Verify the checksum: ICMP covers the message alone, ICMPv6 adds the IPv6
    /// pseudo-header (RFC 4443 2.3).
    pub fn verify_checksum(&self, version: IcmpVersion, src: &IpAddr, dst: &IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let acc = match version {
            IcmpVersion::V4 => 0,
            IcmpVersion::V6 => pseudo_header(src, dst, PROTO_ICMPV6, b.len() as u32),
        };
        finish(sum(acc, b)) == 0
    }
}

/// The messages synack distinguishes. `invoking` is the quoted start of the packet that
/// caused an error: its IP header and at least 8 bytes of what that carried.
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
/// use synack::wire::{IcmpRepr, IcmpVersion, QuotedTcp};
/// // A port unreachable quoting a SYN we sent, as a router would return it.
/// let error = IcmpRepr::DestUnreachable { code: 3, next_hop_mtu: 0, invoking: &packet };
/// let icmp = wire::emit_icmp_packet(dst, src, 64, &error).unwrap();
/// let (ip, body) = wire::parse_ip(&icmp).unwrap();
/// match IcmpRepr::parse(IcmpVersion::V4, &ip.src, &ip.dst, body).unwrap() {
///     IcmpRepr::DestUnreachable { code, invoking, .. } => {
///         assert_eq!(code, 3);
///         let quoted = QuotedTcp::parse(invoking).unwrap();
///         assert_eq!((quoted.src, quoted.dst_port, quoted.seq), (src, 80, 1));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IcmpRepr<'a> {
    /// Echo request (ping).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data to echo back.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Echoed data.
        data: &'a [u8],
    },
    /// Destination unreachable, with its code (meanings differ between versions).
    DestUnreachable {
        /// The code.
        code: u8,
        /// ICMPv4 code 4 (fragmentation needed): the next-hop MTU (RFC 1191), else 0.
        next_hop_mtu: u16,
        /// The quoted packet.
        invoking: &'a [u8],
    },
    /// ICMPv6 packet too big (RFC 4443 3.2).
    PacketTooBig {
        /// The MTU of the next-hop link.
        mtu: u32,
        /// The quoted packet.
        invoking: &'a [u8],
    },
    /// Time exceeded (TTL or hop limit ran out, or reassembly timed out).
    TimeExceeded {
        /// The code.
        code: u8,
        /// The quoted packet.
        invoking: &'a [u8],
    },
    /// Parameter problem.
    ParamProblem {
        /// The code.
        code: u8,
        /// The quoted packet.
        invoking: &'a [u8],
    },
    /// Anything else (neighbour discovery, MLD, router advertisements, source quench...).
    Other {
        /// Message type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

// RFC 792 and RFC 4443 2.1 type numbers.
const V4_ECHO_REPLY: u8 = 0;
const V4_DEST_UNREACHABLE: u8 = 3;
const V4_ECHO_REQUEST: u8 = 8;
const V4_TIME_EXCEEDED: u8 = 11;
const V4_PARAM_PROBLEM: u8 = 12;
const V6_DEST_UNREACHABLE: u8 = 1;
const V6_PACKET_TOO_BIG: u8 = 2;
const V6_TIME_EXCEEDED: u8 = 3;
const V6_PARAM_PROBLEM: u8 = 4;
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;

impl<'a> IcmpRepr<'a> {
    /// Parse a message carried by IP from `src` to `dst`, verifying its checksum.
    pub fn parse(
        version: IcmpVersion,
        src: &IpAddr,
        dst: &IpAddr,
        bytes: &'a [u8],
    ) -> Result<IcmpRepr<'a>, WireError> {
        let p = IcmpPacket::new_checked(bytes)?;
        if !p.verify_checksum(version, src, dst) {
            return Err(WireError::BadIcmpChecksum);
        }
        let rest = p.rest_of_header();
        let hi = u16::from_be_bytes([rest[0], rest[1]]);
        let lo = u16::from_be_bytes([rest[2], rest[3]]);
        let body = &bytes[HEADER_LEN..];
        let code = p.code();
        use IcmpVersion::*;
        Ok(match (version, p.msg_type()) {
            (V4, V4_ECHO_REQUEST) | (V6, V6_ECHO_REQUEST) => IcmpRepr::EchoRequest {
                ident: hi,
                seq: lo,
                data: body,
            },
            (V4, V4_ECHO_REPLY) | (V6, V6_ECHO_REPLY) => IcmpRepr::EchoReply {
                ident: hi,
                seq: lo,
                data: body,
            },
            (V4, V4_DEST_UNREACHABLE) => IcmpRepr::DestUnreachable {
                code,
                next_hop_mtu: lo,
                invoking: body,
            },
            (V6, V6_DEST_UNREACHABLE) => IcmpRepr::DestUnreachable {
                code,
                next_hop_mtu: 0,
                invoking: body,
            },
            (V6, V6_PACKET_TOO_BIG) => IcmpRepr::PacketTooBig {
                mtu: u32::from_be_bytes(rest),
                invoking: body,
            },
            (V4, V4_TIME_EXCEEDED) | (V6, V6_TIME_EXCEEDED) => IcmpRepr::TimeExceeded {
                code,
                invoking: body,
            },
            (V4, V4_PARAM_PROBLEM) | (V6, V6_PARAM_PROBLEM) => IcmpRepr::ParamProblem {
                code,
                invoking: body,
            },
            (_, msg_type) => IcmpRepr::Other { msg_type, code },
        })
    }

    /// Bytes [`IcmpRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } => data.len(),
                IcmpRepr::DestUnreachable { invoking, .. }
                | IcmpRepr::PacketTooBig { invoking, .. }
                | IcmpRepr::TimeExceeded { invoking, .. }
                | IcmpRepr::ParamProblem { invoking, .. } => invoking.len(),
                IcmpRepr::Other { .. } => 0,
            }
    }

    /// Write the message into `buf` (exactly [`IcmpRepr::buffer_len`] bytes) with its checksum.
    pub fn emit(
        &self,
        version: IcmpVersion,
        src: &IpAddr,
        dst: &IpAddr,
        buf: &mut [u8],
    ) -> Result<(), WireError> {
        if buf.len() != self.buffer_len() {
            return Err(WireError::Truncated);
        }
        let v6 = version == IcmpVersion::V6;
        let pick = |v4: u8, v6_type: u8| if v6 { v6_type } else { v4 };
        let (msg_type, code, rest, body): (u8, u8, [u8; 4], &[u8]) = match *self {
            IcmpRepr::EchoRequest { ident, seq, data } => (
                pick(V4_ECHO_REQUEST, V6_ECHO_REQUEST),
                0,
                join(ident, seq),
                data,
            ),
            IcmpRepr::EchoReply { ident, seq, data } => (
                pick(V4_ECHO_REPLY, V6_ECHO_REPLY),
                0,
                join(ident, seq),
                data,
            ),
            IcmpRepr::DestUnreachable {
                code,
                next_hop_mtu,
                invoking,
            } => (
                pick(V4_DEST_UNREACHABLE, V6_DEST_UNREACHABLE),
                code,
                join(0, next_hop_mtu),
                invoking,
            ),
            IcmpRepr::PacketTooBig { mtu, invoking } => {
                (V6_PACKET_TOO_BIG, 0, mtu.to_be_bytes(), invoking)
            }
            IcmpRepr::TimeExceeded { code, invoking } => (
                pick(V4_TIME_EXCEEDED, V6_TIME_EXCEEDED),
                code,
                [0; 4],
                invoking,
            ),
            IcmpRepr::ParamProblem { code, invoking } => (
                pick(V4_PARAM_PROBLEM, V6_PARAM_PROBLEM),
                code,
                [0; 4],
                invoking,
            ),
            IcmpRepr::Other { msg_type, code } => (msg_type, code, [0; 4], &[]),
        };
        buf[0] = msg_type;
        buf[1] = code;
        buf[2..4].copy_from_slice(&[0, 0]);
        buf[4..8].copy_from_slice(&rest);
        buf[HEADER_LEN..].copy_from_slice(body);
        let acc = if v6 {
            pseudo_header(src, dst, PROTO_ICMPV6, buf.len() as u32)
        } else {
            0
        };
        let c = finish(sum(acc, buf));
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

fn join(hi: u16, lo: u16) -> [u8; 4] {
    let (h, l) = (hi.to_be_bytes(), lo.to_be_bytes());
    [h[0], h[1], l[0], l[1]]
}

/// What an ICMP error quotes of a TCP segment we sent: its addresses, ports and
/// sequence number (the first 8 bytes of the TCP header, all RFC 792 guarantees).
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
/// use synack::wire::QuotedTcp;
/// // An ICMP error quotes the IP header and the first 8 bytes of the TCP header.
/// let quoted = QuotedTcp::parse(&packet[..28]).unwrap();
/// assert_eq!((quoted.dst, quoted.src_port, quoted.dst_port), (dst, 40000, 80));
/// assert_eq!(QuotedTcp::parse(&packet[..24]), None); // too short to name a segment
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source address of the quoted packet (ours).
    pub src: IpAddr,
    /// Destination address of the quoted packet (the peer's).
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the quoted segment.
    pub seq: u32,
}

/// The quoted packet's addresses and what follows its IP header, if it carries
/// `protocol` (and, over IPv4, is not a later fragment). The quote is usually cut short,
/// so lengths in the quoted header are not checked against it. Our packets carry no IPv6
/// extension headers.
fn quoted_transport(invoking: &[u8], protocol: u8) -> Option<(IpAddr, IpAddr, &[u8])> {
    match invoking.first()? >> 4 {
        4 => {
            let ihl = usize::from(invoking.first()? & 0x0f) * 4;
            if ihl < 20 || invoking.len() < ihl {
                return None;
            }
            let p = Ipv4Packet::new_unchecked(invoking);
            if p.protocol() != protocol || p.frag_offset() != 0 {
                return None;
            }
            Some((p.src_addr().into(), p.dst_addr().into(), &invoking[ihl..]))
        }
        6 => {
            let p = Ipv6Packet::new_unchecked(invoking.get(..super::ipv6::HEADER_LEN)?);
            if p.next_header() != protocol {
                return None;
            }
            Some((
                p.src_addr().into(),
                p.dst_addr().into(),
                &invoking[super::ipv6::HEADER_LEN..],
            ))
        }
        _ => None,
    }
}

impl QuotedTcp {
    /// Read the quoted IP header and TCP ports and sequence number. `None` if the quote
    /// is not of a TCP segment or too short to name one.
    pub fn parse(invoking: &[u8]) -> Option<QuotedTcp> {
        let (src, dst, transport) = quoted_transport(invoking, PROTO_TCP)?;
        let t = transport.get(..8)?;
        Some(QuotedTcp {
            src,
            dst,
            src_port: u16::from_be_bytes([t[0], t[1]]),
            dst_port: u16::from_be_bytes([t[2], t[3]]),
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        })
    }
}

/// The addresses and ports of a UDP datagram an ICMP error quotes: (source, destination).
pub fn quoted_udp(invoking: &[u8]) -> Option<(core::net::SocketAddr, core::net::SocketAddr)> {
    let (src, dst, transport) = quoted_transport(invoking, super::PROTO_UDP)?;
    let t = transport.get(..4)?;
    Some((
        core::net::SocketAddr::new(src, u16::from_be_bytes([t[0], t[1]])),
        core::net::SocketAddr::new(dst, u16::from_be_bytes([t[2], t[3]])),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
        }
    }

    #[test]
    fn echo_round_trips_in_both_versions_with_valid_checksums() {
        for (version, v6) in [(IcmpVersion::V4, false), (IcmpVersion::V6, true)] {
            let (s, d) = addrs(v6);
            let repr = IcmpRepr::EchoRequest {
                ident: 0x1234,
                seq: 7,
                data: b"abcdefg",
            };
            let mut buf = vec![0; repr.buffer_len()];
            repr.emit(version, &s, &d, &mut buf).unwrap();
            assert_eq!(buf[0], if v6 { 128 } else { 8 });
            assert_eq!(IcmpRepr::parse(version, &s, &d, &buf).unwrap(), repr);
            // ICMPv6 checksums cover the pseudo-header: other addresses fail.
            if v6 {
                assert_eq!(
                    IcmpRepr::parse(version, &d, &"2001:db8::9".parse().unwrap(), &buf),
                    Err(WireError::BadIcmpChecksum)
                );
            }
            buf[9] ^= 1;
            assert_eq!(
                IcmpRepr::parse(version, &s, &d, &buf),
                Err(WireError::BadIcmpChecksum)
            );
        }
    }

    #[test]
    fn a_hand_built_echo_request_parses() {
        // What `ping -c1 -p 61 -s 4` sends (ICMP part), checksummed by the textbook function.
        let mut msg = [8u8, 0, 0, 0, 0x00, 0x2a, 0x00, 0x01, 0x61, 0x61, 0x61, 0x61];
        let c = super::super::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let (s, d) = addrs(false);
        assert_eq!(
            IcmpRepr::parse(IcmpVersion::V4, &s, &d, &msg).unwrap(),
            IcmpRepr::EchoRequest {
                ident: 42,
                seq: 1,
                data: b"aaaa"
            }
        );
    }

    #[test]
    fn quoted_tcp_header_is_found_in_a_truncated_quote() {
        for v6 in [false, true] {
            let (s, d) = addrs(v6);
            let seg = super::super::TcpRepr {
                src_port: 40000,
                dst_port: 80,
                seq: super::super::SeqNum::new(0xdead_beef),
                ack: super::super::SeqNum::new(0),
                flags: super::super::TcpFlags::SYN,
                window: 1000,
                urgent: 0,
                options: Default::default(),
                payload: b"some payload bytes",
            };
            let pkt = super::super::emit_tcp_packet(s, d, 64, &seg).unwrap();
            let ip_len = if v6 { 40 } else { 20 };
            let quote = &pkt[..ip_len + 8];
            assert_eq!(
                QuotedTcp::parse(quote),
                Some(QuotedTcp {
                    src: s,
                    dst: d,
                    src_port: 40000,
                    dst_port: 80,
                    seq: 0xdead_beef
                })
            );
            assert_eq!(QuotedTcp::parse(&pkt[..ip_len + 7]), None);
        }
        assert_eq!(QuotedTcp::parse(&[]), None);
        assert_eq!(QuotedTcp::parse(&[0x4f; 10]), None);
    }

    #[test]
    fn neighbour_solicitations_parse_as_other() {
        let (s, d) = addrs(true);
        let mut buf = vec![135, 0, 0, 0, 0, 0, 0, 0];
        buf.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let acc = pseudo_header(&s, &d, PROTO_ICMPV6, buf.len() as u32);
        let c = finish(sum(acc, &buf));
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            IcmpRepr::parse(IcmpVersion::V6, &s, &d, &buf).unwrap(),
            IcmpRepr::Other {
                msg_type: 135,
                code: 0
            }
        );
    }
}
