//! Stack-wide counters: segments in and out, ICMP, opens, resets, and every dropped packet
//! under the name of its reason (so bad input is always accounted for).

use alloc::collections::BTreeMap;
use alloc::string::String;

/// Counters of one [`crate::Stack`]. Get a snapshot with [`crate::Stack::stats`].
///
/// # Examples
///
/// ```
/// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
/// # /// Moves packets between two stacks until neither has anything to send.
/// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
/// #     loop {
/// #         let mut quiet = true;
/// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
/// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
/// #         if quiet { break; }
/// #     }
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut client = Stack::new(Config::default());
/// # client.add_address("198.18.0.1".parse()?);
/// # let mut server = Stack::new(Config::default());
/// # server.add_address("198.18.0.2".parse()?);
/// # let now = Instant::ZERO;
/// server.receive(now, b"\x45 not an IPv4 packet");
/// let stats = server.stats();
/// assert_eq!(stats.total_dropped(), 1);
/// for (reason, count) in &stats.drops {
///     println!("{reason}: {count}");
/// }
/// // Several stacks' counters add up (a multi-queue interface does).
/// let mut total = client.stats();
/// total += &stats;
/// assert_eq!(total.total_dropped(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackStats {
    /// TCP segments that parsed and were addressed to us.
    pub segments_in: u64,
    /// Packets handed out by `poll_transmit`.
    pub segments_out: u64,
    /// Segments retransmitted (timeouts, fast retransmit).
    pub retransmits: u64,
    /// Data segments that arrived marked CE on ECN connections (RFC 3168).
    pub ecn_ce_received: u64,
    /// Window reductions for an ECE (RFC 3168 6.1.2: congestion signalled without a loss).
    pub ecn_reductions: u64,
    /// RSTs sent (answers to stray segments, aborts).
    pub resets_sent: u64,
    /// RSTs received (acceptable or not).
    pub resets_received: u64,
    /// Active opens (connect calls that sent a SYN).
    pub active_opens: u64,
    /// Passive opens (SYNs accepted by a listener).
    pub passive_opens: u64,
    /// Connections that reached ESTABLISHED.
    pub established: u64,
    /// TCP Fast Open (RFC 7413), as Linux's TcpExt counters: SYNs with data a
    /// listener accepted (TCPFastOpenPassive), SYNs with an invalid cookie
    /// (TCPFastOpenPassiveFail), cookie requests answered (TCPFastOpenCookieReqd),
    /// SYNs refused Fast Open for a full queue (TCPFastOpenListenOverflow), and SYNs we
    /// sent with data (TCPFastOpenActive counts those acknowledged: `fastopen_active`).
    pub fastopen_passive: u64,
    /// See [`StackStats::fastopen_passive`].
    pub fastopen_passive_fail: u64,
    /// See [`StackStats::fastopen_passive`].
    pub fastopen_cookie_requests: u64,
    /// See [`StackStats::fastopen_passive`].
    pub fastopen_queue_overflow: u64,
    /// See [`StackStats::fastopen_passive`].
    pub fastopen_active: u64,
    /// Connections that ended with an error (refused, reset, timed out).
    pub failed: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// SYN-ACKs sent with a SYN cookie (Linux's SyncookiesSent).
    pub syncookies_sent: u64,
    /// ACKs whose cookie checked and opened a connection (SyncookiesRecv).
    pub syncookies_recv: u64,
    /// ACKs to a listener whose cookie did not check (SyncookiesFailed).
    pub syncookies_failed: u64,
    /// Times buffer memory went over `tcp_mem` pressure (Linux's TCPMemoryPressures).
    pub memory_pressure: u64,
    /// Orphaned connections reset because there were more than `tcp_max_orphans`.
    pub orphans_reset: u64,
    /// Connections closed without TIME_WAIT because the TIME_WAIT table was full.
    pub time_wait_overflow: u64,
    /// ICMP and ICMPv6 messages that parsed and were addressed to us.
    pub icmp_in: u64,
    /// Echo replies sent (answers to ping).
    pub icmp_echo_replies: u64,
    /// ICMP Time Exceeded messages sent: a fragmented datagram timed out (code 1).
    pub icmp_time_exceeded: u64,
    /// ICMP errors applied to a connection (soft errors, aborts, MTU reductions).
    pub icmp_errors: u64,
    /// ICMP destination unreachable messages sent (connection requests refused so).
    pub icmp_unreachable_sent: u64,
    /// Connection requests held by decide-first listeners.
    pub requests: u64,
    /// Connection requests the application accepted.
    pub requests_accepted: u64,
    /// Connection requests the application refused.
    pub requests_refused: u64,
    /// Connection requests not decided in time.
    pub requests_timed_out: u64,
    /// UDP datagrams that parsed and were addressed to us (or to a captured destination).
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
    /// IP fragments sent (UDP datagrams larger than the MTU).
    pub fragments_out: u64,
    /// IP fragments addressed to us taken into reassembly.
    pub fragments_in: u64,
    /// Datagrams reassembled from fragments (and handed on as whole packets).
    pub reassembled: u64,
    /// Packets dropped, by reason (`bad_tcp_checksum`, `not_acceptable`, `no_socket`, ...).
    pub drops: BTreeMap<&'static str, u64>,
}

impl StackStats {
    /// Count one dropped packet.
    pub(crate) fn drop(&mut self, reason: &'static str) {
        self.drop_many(reason, 1);
    }

    /// Count `n` packets dropped together (the fragments of a discarded datagram).
    pub(crate) fn drop_many(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.drops.entry(reason).or_default() += n;
        }
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

impl core::ops::AddAssign<&StackStats> for StackStats {
    /// Add another stack's counters (the stacks of one multi-queue interface). Every
    /// field is named, so that a new counter cannot be forgotten here.
    fn add_assign(&mut self, other: &StackStats) {
        let StackStats {
            segments_in,
            segments_out,
            retransmits,
            ecn_ce_received,
            ecn_reductions,
            resets_sent,
            resets_received,
            active_opens,
            passive_opens,
            established,
            fastopen_passive,
            fastopen_passive_fail,
            fastopen_cookie_requests,
            fastopen_queue_overflow,
            fastopen_active,
            failed,
            challenge_acks,
            syncookies_sent,
            syncookies_recv,
            syncookies_failed,
            memory_pressure,
            orphans_reset,
            time_wait_overflow,
            icmp_in,
            icmp_echo_replies,
            icmp_time_exceeded,
            icmp_errors,
            icmp_unreachable_sent,
            requests,
            requests_accepted,
            requests_refused,
            requests_timed_out,
            datagrams_in,
            datagrams_out,
            fragments_out,
            fragments_in,
            reassembled,
            drops,
        } = other;
        self.segments_in += segments_in;
        self.segments_out += segments_out;
        self.retransmits += retransmits;
        self.ecn_ce_received += ecn_ce_received;
        self.ecn_reductions += ecn_reductions;
        self.resets_sent += resets_sent;
        self.resets_received += resets_received;
        self.active_opens += active_opens;
        self.passive_opens += passive_opens;
        self.established += established;
        self.fastopen_passive += fastopen_passive;
        self.fastopen_passive_fail += fastopen_passive_fail;
        self.fastopen_cookie_requests += fastopen_cookie_requests;
        self.fastopen_queue_overflow += fastopen_queue_overflow;
        self.fastopen_active += fastopen_active;
        self.failed += failed;
        self.challenge_acks += challenge_acks;
        self.syncookies_sent += syncookies_sent;
        self.syncookies_recv += syncookies_recv;
        self.syncookies_failed += syncookies_failed;
        self.memory_pressure += memory_pressure;
        self.orphans_reset += orphans_reset;
        self.time_wait_overflow += time_wait_overflow;
        self.icmp_in += icmp_in;
        self.icmp_echo_replies += icmp_echo_replies;
        self.icmp_time_exceeded += icmp_time_exceeded;
        self.icmp_errors += icmp_errors;
        self.icmp_unreachable_sent += icmp_unreachable_sent;
        self.requests += requests;
        self.requests_accepted += requests_accepted;
        self.requests_refused += requests_refused;
        self.requests_timed_out += requests_timed_out;
        self.datagrams_in += datagrams_in;
        self.datagrams_out += datagrams_out;
        self.fragments_out += fragments_out;
        self.fragments_in += fragments_in;
        self.reassembled += reassembled;
        for (reason, n) in drops {
            *self.drops.entry(reason).or_default() += n;
        }
    }
}

impl StackStats {
    /// The counters, and the sockets per state from `summary`, in Prometheus' text
    /// exposition format (metric names `synack_*`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
    /// # /// Moves packets between two stacks until neither has anything to send.
    /// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
    /// #     loop {
    /// #         let mut quiet = true;
    /// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
    /// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
    /// #         if quiet { break; }
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut client = Stack::new(Config::default());
    /// # client.add_address("198.18.0.1".parse()?);
    /// # let mut server = Stack::new(Config::default());
    /// # server.add_address("198.18.0.2".parse()?);
    /// # let now = Instant::ZERO;
    /// let text = server.stats().prometheus(&server.state_summary(now));
    /// assert!(text.contains("# TYPE"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn prometheus(&self, summary: &[super::StateSummary]) -> String {
        use core::fmt::Write as _;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP synack_{name} {help}");
            let _ = writeln!(out, "# TYPE synack_{name} counter");
            let _ = writeln!(out, "synack_{name} {v}");
        };
        counter(
            "segments_in_total",
            "TCP segments received.",
            self.segments_in,
        );
        counter(
            "segments_out_total",
            "TCP segments sent.",
            self.segments_out,
        );
        counter(
            "retransmits_total",
            "Segments sent again.",
            self.retransmits,
        );
        counter(
            "ecn_ce_received_total",
            "Data segments received marked CE (ECN).",
            self.ecn_ce_received,
        );
        counter(
            "ecn_reductions_total",
            "Congestion window reductions for an ECN echo.",
            self.ecn_reductions,
        );
        counter("resets_sent_total", "RSTs sent.", self.resets_sent);
        counter(
            "resets_received_total",
            "RSTs received.",
            self.resets_received,
        );
        counter(
            "connections_opened_total",
            "Active opens (SYNs sent by connect).",
            self.active_opens,
        );
        counter(
            "connections_accepted_total",
            "Passive opens (SYNs taken by a listener).",
            self.passive_opens,
        );
        counter(
            "connections_established_total",
            "Connections that reached ESTABLISHED.",
            self.established,
        );
        counter(
            "fastopen_passive_total",
            "SYNs with data a listener accepted (TCP Fast Open).",
            self.fastopen_passive,
        );
        counter(
            "fastopen_passive_fail_total",
            "SYNs with an invalid Fast Open cookie.",
            self.fastopen_passive_fail,
        );
        counter(
            "fastopen_active_total",
            "SYNs we sent whose data the server acknowledged.",
            self.fastopen_active,
        );
        counter(
            "connections_failed_total",
            "Connections that ended with an error.",
            self.failed,
        );
        counter(
            "syncookies_sent_total",
            "SYN-ACKs sent with a SYN cookie.",
            self.syncookies_sent,
        );
        counter(
            "syncookies_recv_total",
            "Connections opened by a valid SYN cookie.",
            self.syncookies_recv,
        );
        counter(
            "syncookies_failed_total",
            "ACKs to a listener with an invalid cookie.",
            self.syncookies_failed,
        );
        counter(
            "orphans_reset_total",
            "Orphaned connections reset over tcp_max_orphans.",
            self.orphans_reset,
        );
        counter(
            "time_wait_overflow_total",
            "Connections closed without TIME_WAIT (table full).",
            self.time_wait_overflow,
        );
        counter(
            "requests_total",
            "Connection requests held by decide-first listeners.",
            self.requests,
        );
        counter(
            "requests_accepted_total",
            "Connection requests accepted.",
            self.requests_accepted,
        );
        counter(
            "requests_refused_total",
            "Connection requests refused.",
            self.requests_refused,
        );
        counter(
            "requests_timed_out_total",
            "Connection requests not decided in time.",
            self.requests_timed_out,
        );
        counter(
            "udp_datagrams_in_total",
            "UDP datagrams received.",
            self.datagrams_in,
        );
        counter(
            "udp_datagrams_out_total",
            "UDP datagrams sent.",
            self.datagrams_out,
        );
        counter(
            "fragments_in_total",
            "IP fragments taken into reassembly.",
            self.fragments_in,
        );
        counter(
            "reassembled_total",
            "Datagrams reassembled from fragments.",
            self.reassembled,
        );
        let _ = writeln!(out, "# HELP synack_drops_total Packets dropped, by reason.");
        let _ = writeln!(out, "# TYPE synack_drops_total counter");
        for (reason, n) in &self.drops {
            let _ = writeln!(out, "synack_drops_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP synack_sockets Sockets, by TCP state.");
        let _ = writeln!(out, "# TYPE synack_sockets gauge");
        for s in summary {
            let _ = writeln!(
                out,
                "synack_sockets{{state=\"{}\"}} {}",
                s.state.name(),
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP synack_oldest_seconds Time the oldest socket has been in its state."
        );
        let _ = writeln!(out, "# TYPE synack_oldest_seconds gauge");
        for s in summary {
            if let Some(age) = s.oldest {
                let _ = writeln!(
                    out,
                    "synack_oldest_seconds{{state=\"{}\"}} {:.3}",
                    s.state.name(),
                    age.as_secs_f64()
                );
            }
        }
        out
    }
}
