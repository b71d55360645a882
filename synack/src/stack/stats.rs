//! Stack-wide counters: segments in and out, ICMP, opens, resets, and every dropped packet
//! under the name of its reason (so bad input is always accounted for).

use std::collections::BTreeMap;

/// Counters of one [`crate::Stack`]. Get a snapshot with [`crate::Stack::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// TCP segments that parsed and were addressed to us.
    pub segments_in: u64,
    /// Packets handed out by `poll_transmit`.
    pub segments_out: u64,
    /// Segments retransmitted (timeouts, fast retransmit).
    pub retransmits: u64,
    /// RSTs sent (answers to stray segments, aborts).
    pub resets_sent: u64,
    /// Active opens (connect calls that sent a SYN).
    pub active_opens: u64,
    /// Passive opens (SYNs accepted by a listener).
    pub passive_opens: u64,
    /// Connections that reached ESTABLISHED.
    pub established: u64,
    /// Connections that ended with an error (refused, reset, timed out).
    pub failed: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Connections closed without TIME_WAIT because the TIME_WAIT table was full.
    pub time_wait_overflow: u64,
    /// ICMP and ICMPv6 messages that parsed and were addressed to us.
    pub icmp_in: u64,
    /// Echo replies sent (answers to ping).
    pub icmp_echo_replies: u64,
    /// ICMP errors applied to a connection (soft errors, aborts, MTU reductions).
    pub icmp_errors: u64,
    /// Packets dropped, by reason (`bad_tcp_checksum`, `not_acceptable`, `no_socket`, ...).
    pub drops: BTreeMap<&'static str, u64>,
}

impl StackStats {
    /// Count one dropped packet.
    pub(crate) fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_default() += 1;
    }

    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }

    /// Packets dropped for any reason.
    pub fn total_dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}
