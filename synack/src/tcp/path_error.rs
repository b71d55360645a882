//! How a connection takes an ICMP error about its path: the quoted sequence number must
//! be one we have outstanding (RFC 5927 4.1), hard errors abort a connection that is
//! still opening, and so do soft ones while our SYN is unanswered (RFC 5461 4.1, as
//! Linux), later soft errors are remembered and reported (RFC 1122 4.2.3.9), and
//! "packet too big" lowers the segment size (RFC 1191, RFC 8201).

use super::conn::{ConnEvent, Connection, TFO_CHILD};
use super::state::State;
use crate::error::Error;
use crate::wire::SeqNum;
use crate::Instant;

/// What an ICMP error means for the connection it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The peer cannot be reached for now (network or host unreachable, TTL exceeded):
    /// keep retrying, remember why.
    Soft(Error),
    /// The peer will not take the connection (port or protocol unreachable, prohibited).
    Hard(Error),
    /// A link on the path carries at most this many bytes per IP packet.
    PacketTooBig(u32),
}

/// Where an ICMP error finds the connection, beyond what the error itself says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorScope {
    /// Linux drops a connection request (SYN_RECV, no socket yet) for this message:
    /// tcp_v4_err's net/host unreachable, time exceeded and parameter problem; the
    /// fatal ICMPv6 errors (icmpv6_err_convert) in tcp_v6_err.
    pub(crate) drops_request: bool,
    /// The application has accepted the connection.
    pub(crate) accepted: bool,
    /// IP_MTU_DISCOVER is IP_PMTUDISC_DONT.
    pub(crate) pmtu_disc_off: bool,
}

/// The smallest MTU we shrink to: Linux's `min_pmtu` (552) for IPv4, RFC 8200 5 for IPv6.
const MIN_PMTU_V4: u32 = 552;
const MIN_PMTU_V6: u32 = 1280;

impl Connection {
    /// Apply an ICMP error whose quote names this connection and sequence number `seq`.
    /// Returns false (nothing done) when `seq` is not one we have outstanding: a forged
    /// or stale error (RFC 5927 4.1).
    pub(crate) fn on_path_error(
        &mut self,
        now: Instant,
        seq: SeqNum,
        err: PathError,
        scope: ErrorScope,
    ) -> bool {
        let in_window = match &self.state {
            State::SynSent(s) => seq == s.iss,
            State::SynRcvd(s) => seq == s.iss,
            other => other
                .snd()
                .is_some_and(|snd| snd.una <= seq && seq < snd.max.max(snd.una + 1)),
        };
        if !in_window {
            return false;
        }
        let fastopen_child = self.tfo & TFO_CHILD != 0;
        if let State::SynRcvd(s) = &self.state {
            if s.passive && !fastopen_child {
                // Linux: tcp_req_err(): a request is dropped for some messages and left
                // alone for the others (path MTU included: a SYN-ACK is small).
                if scope.drops_request {
                    self.terminate(now, "ICMP error on a connection request", None);
                }
                return true;
            }
            if fastopen_child && !scope.accepted {
                // Linux: tcp_v4_err() on a Fast Open child not yet accepted: tcp_done()
                // with the error; it stays in the accept queue, its SYN data readable.
                match err {
                    PathError::PacketTooBig(mtu) => self.shrink_mss(mtu),
                    PathError::Hard(e) | PathError::Soft(e) => {
                        self.terminate(now, "ICMP error on a Fast Open child", Some(e))
                    }
                }
                return true;
            }
        }
        // An accepted Fast Open child counts as connected (Linux: tcp_v4_err()).
        let opening = match &self.state {
            State::SynSent(_) => true,
            State::SynRcvd(_) => !fastopen_child,
            _ => false,
        };
        let syn_sent = matches!(self.state, State::SynSent(_));
        match err {
            // RFC 5461 4.1: treat soft errors as hard while the SYN is unanswered, as
            // Linux's tcp_v4_err/tcp_v6_err do: connect() fails at once with EHOSTUNREACH
            // or ENETUNREACH rather than after minutes of retries.
            PathError::Soft(e) if syn_sent => {
                self.terminate(now, "ICMP error in SYN_SENT", Some(e))
            }
            // RFC 1122 4.2.3.9: a hard error SHOULD abort; RFC 5461 4: only while the
            // connection is opening (as Linux does), else it is kept as a soft error.
            PathError::Hard(e) if opening => {
                let passive = matches!(&self.state, State::SynRcvd(s) if s.passive);
                // An embryonic passive open just disappears (no application to tell).
                self.terminate(now, "ICMP destination unreachable", (!passive).then_some(e));
            }
            PathError::Hard(e) | PathError::Soft(e) => {
                // RFC 1122 4.2.3.9: soft errors MUST NOT abort, SHOULD be reported.
                self.soft_error = Some(e);
                self.events.push(ConnEvent::SoftError(e));
            }
            // Linux: tcp_v4_mtu_reduced() acts only without IP_PMTUDISC_DONT.
            PathError::PacketTooBig(_) if scope.pmtu_disc_off && !self.local.is_ipv6() => {}
            PathError::PacketTooBig(mtu) => self.shrink_mss(mtu),
        }
        true
    }

    /// RFC 8201 4 / RFC 1191 6.3: use the smaller MTU at once and resend what no longer fits.
    fn shrink_mss(&mut self, mtu: u32) {
        let (floor, ip_header) = if self.local.is_ipv6() {
            (MIN_PMTU_V6, 40)
        } else {
            (MIN_PMTU_V4, 20)
        };
        let opt_bytes = if self.neg.timestamps { 12 } else { 0 }
            + if self.md5() {
                crate::wire::MD5SIG_ALIGNED_LEN
            } else {
                0
            };
        if let State::SynSent(s) = &mut self.state {
            // Linux: tcp_advertise_mss() follows the route's (now lower) MTU, and the
            // MSS the SYN-ACK brings is capped by it (negotiate takes the smaller).
            let adv = (mtu.max(floor) as usize - ip_header - 20).min(u16::MAX as usize) as u16;
            if adv >= self.local_mss {
                return;
            }
            self.local_mss = adv;
            // Linux: tcp_simple_retransmit(): a Fast Open SYN with data (in SYN_SENT)
            // is taken as lost and resent at once, as a plain SYN (tcp_send_syn_data()
            // leaves the Fast Open option off SYN retries).
            if let Some(fo) = s.fo.as_mut().filter(|f| f.syn_data > 0 && !f.retried) {
                fo.retried = true;
                self.syn_due = true;
                self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
            }
            return;
        }
        let mss = mtu.max(floor) as usize - ip_header - 20 - opt_bytes;
        if mss >= self.neg.snd_mss {
            return;
        }
        self.neg.snd_mss = mss;
        if let Some(snd) = self.state.snd_mut() {
            snd.cc.set_mss(mss as u32);
            // Like Linux's tcp_simple_retransmit: resend the outstanding data re-cut,
            // without treating the loss as congestion.
            if snd.nxt != snd.una {
                snd.nxt = snd.una;
                self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
            }
        }
    }

    /// The error a connection fails with when its retransmissions run out: the last soft
    /// error if an ICMP message explained the silence (as Linux's `sk_err_soft`), else TimedOut.
    pub(crate) fn timeout_error(&self) -> Error {
        self.soft_error.unwrap_or(Error::TimedOut)
    }
}
