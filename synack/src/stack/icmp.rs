//! ICMP and ICMPv6 at the stack: echo requests are answered (ping works), errors that
//! quote one of our TCP segments go to that connection as a [`PathError`], and the
//! rest (neighbour discovery, router messages, MLD) is counted and ignored. Out: echo
//! replies, and Time Exceeded when a fragmented datagram's time runs out.

use core::net::{IpAddr, SocketAddr};

use super::tables::FourTuple;
use super::{Error, Stack, CTL_QUEUE_LIMIT};
use crate::tcp::{ErrorScope, PathError};
use crate::wire::icmp::PROTO_ICMP;
use crate::wire::{self, IcmpRepr, IcmpVersion, IpInfo, QuotedTcp, SeqNum};
use crate::Instant;

impl Stack {
    /// An ICMP (IPv4) or ICMPv6 message addressed to one of our addresses.
    pub(super) fn icmp_input(&mut self, now: Instant, ip: &IpInfo, bytes: &[u8]) {
        let version = if ip.protocol == PROTO_ICMP {
            IcmpVersion::V4
        } else {
            IcmpVersion::V6
        };
        let repr = match IcmpRepr::parse(version, &ip.src, &ip.dst, bytes) {
            Ok(r) => r,
            Err(e) => return self.stats.drop(e.reason()),
        };
        self.stats.icmp_in += 1;
        match repr {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                let reply = IcmpRepr::EchoReply { ident, seq, data };
                if self.queue_icmp(ip, &reply) {
                    self.stats.icmp_echo_replies += 1;
                }
            }
            IcmpRepr::DestUnreachable { invoking, .. }
            | IcmpRepr::PacketTooBig { invoking, .. }
            | IcmpRepr::TimeExceeded { invoking, .. }
            | IcmpRepr::ParamProblem { invoking, .. } => match path_error(version, &repr) {
                Some(err) => {
                    let drops_request = drops_request(version, &repr);
                    self.icmp_error(now, invoking, err, drops_request)
                }
                None => self.stats.drop("icmp_ignored"),
            },
            // RFC 4861: neighbour and router discovery are the kernel side's business;
            // the TUN link has no link-layer addresses to resolve.
            IcmpRepr::Other { msg_type, .. }
                if version == IcmpVersion::V6 && (133..=137).contains(&msg_type) =>
            {
                self.stats.drop("icmp_neighbour_discovery")
            }
            IcmpRepr::EchoReply { .. } | IcmpRepr::Other { .. } => self.stats.drop("icmp_ignored"),
        }
    }

    /// Answer `ip`'s sender with `msg`; false if it could not be queued (counted).
    pub(super) fn queue_icmp(&mut self, ip: &IpInfo, msg: &IcmpRepr<'_>) -> bool {
        if self.ctl_out.len() >= CTL_QUEUE_LIMIT {
            self.stats.drop("control_queue_full");
            return false;
        }
        match wire::emit_icmp_packet(ip.dst, ip.src, self.config.ttl, msg) {
            Ok(p) => {
                self.ctl_out.push_back(p);
                true
            }
            Err(e) => {
                self.stats.drop(e.reason());
                false
            }
        }
    }

    /// RFC 792, RFC 1122 3.3.2 and RFC 8200 4.5 (RFC 4443 3.3): a datagram whose first
    /// fragment arrived timed out before it was whole: Time Exceeded, code 1 (fragment
    /// reassembly time exceeded), quoting that fragment, to `src`, from our `dst`.
    pub(super) fn reassembly_time_exceeded(&mut self, src: IpAddr, dst: IpAddr, quote: &[u8]) {
        // RFC 1122 3.2.2: no ICMP error to a source that does not name a single host.
        let single_host = match src {
            IpAddr::V4(a) => {
                !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
            }
            IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
        };
        if !single_host {
            return;
        }
        let protocol = if src.is_ipv4() {
            PROTO_ICMP
        } else {
            wire::icmp::PROTO_ICMPV6
        };
        let ip = IpInfo {
            src,
            dst,
            protocol,
            ttl: 0,
            ecn: wire::Ecn::NotEct,
        };
        let msg = IcmpRepr::TimeExceeded {
            code: 1,
            invoking: quote,
        };
        if self.queue_icmp(&ip, &msg) {
            self.stats.icmp_time_exceeded += 1;
        }
    }

    /// An ICMP error: find the connection of the quoted segment and let it decide.
    /// The connection an ICMP error is about: the TCP segment it quotes, as we sent it.
    pub(super) fn icmp_quoted_tuple(&self, ip: &IpInfo, bytes: &[u8]) -> Option<FourTuple> {
        let version = if ip.protocol == PROTO_ICMP {
            IcmpVersion::V4
        } else {
            IcmpVersion::V6
        };
        let invoking = match IcmpRepr::parse(version, &ip.src, &ip.dst, bytes).ok()? {
            IcmpRepr::DestUnreachable { invoking, .. }
            | IcmpRepr::PacketTooBig { invoking, .. }
            | IcmpRepr::TimeExceeded { invoking, .. }
            | IcmpRepr::ParamProblem { invoking, .. } => invoking,
            _ => return None,
        };
        let q = QuotedTcp::parse(invoking)?;
        Some(FourTuple {
            local: SocketAddr::new(q.src, q.src_port),
            remote: SocketAddr::new(q.dst, q.dst_port),
        })
    }

    fn icmp_error(&mut self, now: Instant, invoking: &[u8], err: PathError, drops_request: bool) {
        let Some(q) = QuotedTcp::parse(invoking) else {
            // A datagram of a connected UDP socket's: its next call fails with the error.
            if let Some((src, dst)) = wire::icmp::quoted_udp(invoking) {
                let e = match err {
                    PathError::Hard(e) | PathError::Soft(e) => e,
                    PathError::PacketTooBig(_) => return self.stats.drop("icmp_ignored"),
                };
                if self.udp_error(src, dst, e) {
                    self.stats.icmp_errors += 1;
                    return;
                }
                return self.stats.drop("icmp_no_socket");
            }
            return self.stats.drop("icmp_not_tcp");
        };
        let tuple = FourTuple {
            local: SocketAddr::new(q.src, q.src_port),
            remote: SocketAddr::new(q.dst, q.dst_port),
        };
        let Some(index) = self.by_tuple.get(&self.slots, &tuple) else {
            return self.stats.drop("icmp_no_connection");
        };
        let slot = &mut self.slots[index as usize];
        let scope = ErrorScope {
            drops_request,
            accepted: slot.app_owned,
            pmtu_disc_off: slot.pmtu_disc_off,
        };
        let Some(conn) = slot.conn.as_mut() else {
            return self.stats.drop("icmp_no_connection");
        };
        if conn.on_path_error(now, SeqNum::new(q.seq), err, scope) {
            self.stats.icmp_errors += 1;
            self.after_activity(now, index);
        } else {
            // RFC 5927 4.1: the quoted sequence number is not one we have outstanding.
            self.stats.drop("icmp_out_of_window");
        }
    }
}

/// Whether Linux drops a connection request (SYN_RECV) for this message: tcp_v4_err()
/// for net and host unreachable, time exceeded and parameter problem; tcp_v6_err() for
/// the errors icmpv6_err_convert() calls fatal (prohibited, port unreachable, policy,
/// reject route, parameter problem).
fn drops_request(version: IcmpVersion, repr: &IcmpRepr<'_>) -> bool {
    match (version, repr) {
        (IcmpVersion::V4, IcmpRepr::DestUnreachable { code, .. }) => *code <= 1,
        (IcmpVersion::V4, IcmpRepr::TimeExceeded { .. } | IcmpRepr::ParamProblem { .. }) => true,
        (IcmpVersion::V6, IcmpRepr::DestUnreachable { code, .. }) => matches!(code, 1 | 4 | 5 | 6),
        (IcmpVersion::V6, IcmpRepr::ParamProblem { .. }) => true,
        _ => false,
    }
}

/// What an ICMP error means for TCP: RFC 1122 4.2.3.9 for ICMP (codes 0, 1, 5 soft;
/// 2, 3 hard; 4 is path MTU discovery, RFC 1191), RFC 4443 3.1 for ICMPv6 (the
/// administrative and port codes hard, like Linux's `icmpv6_err_convert`).
fn path_error(version: IcmpVersion, repr: &IcmpRepr<'_>) -> Option<PathError> {
    use PathError::{Hard, PacketTooBig, Soft};
    Some(match (version, *repr) {
        (
            IcmpVersion::V4,
            IcmpRepr::DestUnreachable {
                code, next_hop_mtu, ..
            },
        ) => match code {
            0 | 6 | 9 | 11 => Soft(Error::NetworkUnreachable),
            2 | 3 => Hard(Error::ConnectionRefused),
            // An old router that does not say the MTU (RFC 1191 5): nothing to go on.
            4 if next_hop_mtu == 0 => return None,
            4 => PacketTooBig(next_hop_mtu.into()),
            _ => Soft(Error::HostUnreachable),
        },
        (IcmpVersion::V6, IcmpRepr::DestUnreachable { code, .. }) => match code {
            0 => Soft(Error::NetworkUnreachable),
            4 => Hard(Error::ConnectionRefused),
            1 | 5 | 6 => Hard(Error::HostUnreachable),
            _ => Soft(Error::HostUnreachable),
        },
        (_, IcmpRepr::PacketTooBig { mtu, .. }) => PacketTooBig(mtu),
        // RFC 1122 4.2.3.9: time exceeded is soft.
        (_, IcmpRepr::TimeExceeded { .. }) => Soft(Error::HostUnreachable),
        // RFC 4443 3.4 code 1: the peer does not know TCP, the same as protocol unreachable.
        (IcmpVersion::V6, IcmpRepr::ParamProblem { code: 1, .. }) => Hard(Error::ConnectionRefused),
        _ => return None,
    })
}
