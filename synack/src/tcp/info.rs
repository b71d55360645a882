//! A snapshot of one connection's internals, in the spirit of Linux's `TCP_INFO`: what
//! `ss -i` shows and what tests and tools read without reaching into the engine.

use core::net::SocketAddr;
use core::time::Duration;

use super::cc::CongestionControl;
use super::conn::Connection;
use super::state::{Recovery, State};
use super::TcpState;
use crate::Instant;

/// Sequence numbers, windows, timers and counters of one connection at one instant.
/// Sequence numbers are absolute (as on the wire); fields a state does not have are `None`.
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
/// # let listener = server.listen("198.18.0.2:80".parse()?, 128)?;
/// # let conn = client.connect(now, "198.18.0.2:80".parse()?)?;
/// # pump(now, &mut client, &mut server);
/// # let accepted = server.accept(listener)?;
/// # while client.poll_event().is_some() {}
/// # while server.poll_event().is_some() {}
/// client.send(now, conn, &[0u8; 5000])?;
/// pump(now, &mut client, &mut server);
/// let info = client.info(now, conn)?;
/// assert_eq!((info.bytes_sent, info.bytes_acked, info.retransmits), (5000, 5000, 0));
/// assert_eq!(info.snd_una, info.snd_nxt); // all acknowledged
/// assert_eq!(server.info(now, accepted)?.bytes_received, 5000);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Current state.
    pub state: TcpState,
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our initial sequence number, once known.
    pub iss: Option<u32>,
    /// The peer's initial sequence number, once known.
    pub irs: Option<u32>,
    /// SND.UNA: oldest unacknowledged sequence number.
    pub snd_una: Option<u32>,
    /// SND.NXT: next sequence number to send.
    pub snd_nxt: Option<u32>,
    /// RCV.NXT: next sequence number expected.
    pub rcv_nxt: Option<u32>,
    /// SND.WND: the peer's window, scaled, in bytes.
    pub snd_wnd: Option<u32>,
    /// The window we advertise, in bytes.
    pub rcv_wnd: Option<u32>,
    /// Shift applied to the peer's windows / to ours (RFC 7323).
    pub wscale: (u8, u8),
    /// Timestamps negotiated.
    pub timestamps: bool,
    /// Largest payload per segment we send.
    pub snd_mss: usize,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// RTT variation.
    pub rttvar: Option<Duration>,
    /// Retransmission timeout (before backoff).
    pub rto: Option<Duration>,
    /// Consecutive retransmission timeouts without progress.
    pub backoff: u32,
    /// Congestion window and slow-start threshold, in bytes.
    pub cwnd: Option<u32>,
    /// Slow-start threshold in bytes (`u32::MAX` until the first loss).
    pub ssthresh: Option<u32>,
    /// The congestion control in use (once established) or chosen (before).
    pub congestion_control: CongestionControl,
    /// SACK negotiated (RFC 2018).
    pub sack: bool,
    /// Bytes the peer has SACKed above SND.UNA (the scoreboard).
    pub sacked_bytes: u32,
    /// Bytes the application wrote that the peer has not acknowledged.
    pub send_queue: usize,
    /// Bytes received in order that the application has not read.
    pub recv_queue: usize,
    /// Bytes held out of order.
    pub out_of_order: usize,
    /// Time until the next timer fires, if one is armed.
    pub next_timer: Option<Duration>,
    /// Segments received / sent / retransmitted.
    pub segs_in: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// SACK blocks received from the peer.
    pub sack_blocks_received: u64,
    /// Fast retransmits undone because timestamps or D-SACK showed them needless.
    pub spurious_retransmits: u64,
    /// Retransmission timeouts that fired (each one a go-back-N from SND.UNA).
    pub timeouts: u64,
    /// Tail loss probes sent (RFC 8985 7).
    pub tail_loss_probes: u64,
    /// How long the connection has been in its current state.
    pub time_in_state: Duration,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// The application closed its handle; the stack finishes the close alone.
    pub orphaned: bool,
    /// Where the sender's loss recovery stands, numbered as Linux's `tcpi_ca_state`:
    /// 0 open, 1 disorder (duplicate ACKs or SACKs, no recovery yet), 2 reducing for an
    /// ECN echo (RFC 3168), 3 fast recovery (RFC 6675 / 6582), 4 after a retransmission
    /// timeout.
    pub ca_state: u8,
    /// Bytes in the holes that RACK deems lost, or that were resent and are not yet
    /// delivered (RFC 8985; Linux's `tcpi_lost` counts these in segments).
    pub lost_bytes: u32,
    /// The largest segment the peer has sent (Linux's `rcv_mss`; 536 until data arrives).
    pub rcv_mss: u32,
    /// The MSS we announce (Linux's `advmss`): from the MTU, or TCP_MAXSEG when set.
    pub adv_mss: u16,
    /// Time since data last arrived, or, before any, since the handshake completed (as
    /// Linux's `tcpi_last_data_recv`); None before that.
    pub since_data_in: Option<Duration>,
    /// The connection uses ECN (RFC 3168; Linux's TCPI_OPT_ECN): negotiated on the
    /// handshake (in SYN_SENT: requested). See `Config::tcp_ecn`.
    pub ecn: bool,
    /// Data segments that arrived marked CE (congestion experienced).
    pub ce_received: u64,
    /// Times the peer's ECE made the window shrink (RFC 3168 6.1.2, once per window).
    pub ece_reductions: u64,
    /// Segments the peer has acknowledged or SACKed, our SYN (or SYN-ACK) included
    /// (Linux's `tcpi_delivered`; full-sized segments are counted by bytes, and data
    /// in a SYN that the SYN-ACK acknowledged counts with the SYN, as Linux's
    /// tcp_rcv_fastopen_synack counts it).
    pub delivered: u64,
    /// TCP Fast Open (RFC 7413): data in the SYN was acknowledged by the server (our
    /// active open) or accepted from the client (a listener's connection): Linux's
    /// TCPI_OPT_SYN_DATA.
    pub syn_data_acked: bool,
    /// How far the path has been seen to reorder, in segments (Linux's `tcpi_reordering`:
    /// 3, `tcp_reordering`, until a late first transmission shows more; at most 300).
    pub reordering: u32,
    /// Bytes resent and not yet SACKed or acknowledged (Linux's `tcpi_retrans` counts
    /// them in segments).
    pub retrans_bytes: u32,
    /// Reordering events seen (Linux's `tcpi_reord_seen`).
    pub reord_seen: u32,
    /// Segments the peer reported as duplicates with D-SACK (Linux's `tcpi_dsack_dups`).
    pub dsack_dups: u32,
    /// Time spent with data to send or in flight (Linux's `tcpi_busy_time`), of which
    /// `rwnd_limited` waiting for the peer's window and `sndbuf_limited` with the
    /// application waiting for send-buffer room.
    pub busy_time: Duration,
    /// See `busy_time` (Linux's `tcpi_rwnd_limited`).
    pub rwnd_limited: Duration,
    /// See `busy_time` (Linux's `tcpi_sndbuf_limited`).
    pub sndbuf_limited: Duration,
}

impl Connection {
    /// Linux's `tp->delivered`, from the bytes acknowledged and SACKed.
    fn delivered_segments(&self) -> u64 {
        if matches!(self.state, State::SynSent(_) | State::SynRcvd(_)) {
            return 0;
        }
        let mss = (self.neg.snd_mss as u64).max(1);
        let sacked = self.state.snd().map_or(0, |s| u64::from(s.sacked.bytes()));
        // A client's data acknowledged with its SYN counts with the SYN (Linux's
        // tcp_rcv_fastopen_synack takes back the packet tcp_ack counted for it).
        let with_syn = self
            .rare
            .as_ref()
            .map_or(0, |r| u64::from(r.syn_data_acked));
        let bytes = (self.stats.bytes_sent + sacked).saturating_sub(with_syn);
        1 + bytes.div_ceil(mss)
    }

    /// A snapshot for `ss`, tests and statistics.
    pub(crate) fn info(&self, now: Instant) -> ConnectionInfo {
        let snd = self.state.snd();
        let rtt = match &self.state {
            State::SynSent(s) => Some(&s.rtt),
            State::SynRcvd(s) => Some(&s.rtt),
            _ => snd.map(|s| &s.rtt),
        };
        let (iss, irs) = match &self.state {
            State::SynSent(s) => (Some(s.iss), None),
            State::SynRcvd(s) => (Some(s.iss), Some(s.irs)),
            _ => (snd.map(|s| s.iss), self.state.rcv().map(|r| r.irs)),
        };
        let backoff = match &self.state {
            State::SynSent(s) => s.rtx.backoff,
            State::SynRcvd(s) => s.rtx.backoff,
            _ => snd.map_or(0, |s| s.rtx.backoff),
        };
        let rcv_window = self.state.rcv_window();
        let (busy_time, rwnd_limited, sndbuf_limited) = self
            .rare
            .as_ref()
            .map_or(Default::default(), |r| r.chrono.totals(now));
        let (reord_seen, dsack_dups) = snd.map_or((0, 0), |s| s.rack.reordering_counts());
        ConnectionInfo {
            state: self.tcp_state(),
            local: self.local,
            remote: self.remote,
            iss: iss.map(|s| s.get()),
            irs: irs.map(|s| s.get()),
            snd_una: snd.map(|s| s.una.get()),
            snd_nxt: self.state.snd_nxt().map(|s| s.get()),
            rcv_nxt: rcv_window.map(|(n, _)| n.get()),
            snd_wnd: snd.map(|s| s.wnd),
            rcv_wnd: rcv_window.map(|(n, adv)| (adv - n).max(0) as u32),
            wscale: (self.neg.snd_wscale, self.neg.rcv_wscale),
            timestamps: self.neg.timestamps,
            snd_mss: self.neg.snd_mss,
            srtt: rtt.and_then(|r| r.srtt()),
            rttvar: rtt.filter(|r| r.srtt().is_some()).map(|r| r.rttvar()),
            rto: rtt.map(|r| r.rto()),
            backoff,
            // A Fast Open child sends before it is established, with the initial
            // window (Linux's tcp_create_openreq_child sets snd_cwnd at once).
            cwnd: snd.map(|s| s.cwnd()).or_else(|| {
                (self.tfo & super::conn::TFO_CHILD != 0)
                    .then(|| super::initial_window(self.neg.snd_mss as u32))
            }),
            ssthresh: snd.map(|s| s.cc.ssthresh()),
            congestion_control: snd.map_or_else(|| self.cc_choice(), |s| s.cc.kind()),
            sack: self.neg.sack,
            sacked_bytes: snd.map_or(0, |s| s.sacked.bytes()),
            send_queue: self.snd_buf.len(),
            recv_queue: self.rcv_buf.len(),
            out_of_order: self.state.rcv().map_or(0, |r| r.ooo.bytes()),
            next_timer: self.next_deadline().map(|d| d - now),
            segs_in: self.stats.segs_in.into(),
            segs_out: self.stats.segs_out.into(),
            retransmits: self.stats.retransmits.into(),
            bytes_acked: self.stats.bytes_sent,
            bytes_sent: self.stats.bytes_out,
            sack_blocks_received: self.stats.sack_blocks_in.into(),
            spurious_retransmits: self.stats.spurious_retransmits.into(),
            timeouts: self.stats.timeouts.into(),
            tail_loss_probes: self.stats.tail_loss_probes.into(),
            time_in_state: now.saturating_duration_since(self.state_since),
            bytes_received: self.stats.bytes_received,
            orphaned: self.orphaned,
            ca_state: snd.map_or(0, |s| match s.recovery {
                Recovery::Timeout { .. } => 4,
                Recovery::Fast { .. } => 3,
                Recovery::Cwr { .. } => 2,
                Recovery::Open if s.dupacks > 0 || s.sacked.bytes() > 0 => 1,
                Recovery::Open => 0,
            }),
            lost_bytes: snd.map_or(0, |s| s.lost_marked_bytes(now)),
            rcv_mss: u32::from(self.rcv_mss),
            adv_mss: self.local_mss,
            since_data_in: self
                .last_data_in
                .or((self.tcp_state() == TcpState::Established).then_some(self.state_since))
                .map(|t| now.saturating_duration_since(t)),
            ecn: self.ecn.ok(),
            ce_received: self.stats.ce_received.into(),
            ece_reductions: self.ece_reductions.into(),
            syn_data_acked: self.tfo & super::conn::TFO_SYN_DATA_ACKED != 0,
            delivered: self.delivered_segments(),
            reordering: snd.map_or(3, |s| s.rack.reordering()),
            retrans_bytes: snd.map_or(0, |s| s.retrans_out_bytes(now)),
            reord_seen,
            dsack_dups,
            busy_time,
            rwnd_limited,
            sndbuf_limited,
        }
    }
}
