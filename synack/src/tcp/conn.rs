//! A TCP connection: its [`State`], its buffers, and the application's calls on it.
//! Arriving segments are handled in `input.rs`, outgoing ones built in `output.rs`;
//! this file holds what ties them together: construction, timers, application calls
//! and [`Connection::transition`], the one place a connection changes state.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::mem;
use core::net::SocketAddr;
use core::time::Duration;

use super::cc::CongestionControl;
use super::reassembly::Reassembly;
use super::ring::{ByteRing, MAX_STORAGE};
use super::rtt::RttEstimator;
use super::send_buffer::SendBuffer;
use super::skb_accounting::Room;
use super::state::*;
use super::time_wait::TimeWait;
use super::TcpState;
use crate::config::wscale_for;
use crate::config::Config;
use crate::error::Error;
use crate::time::{Micros, Millis};
use crate::wire::{self, SeqNum, TcpRepr};
use crate::Instant;

/// Something a connection reports to the stack, which turns it into [`crate::Event`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnEvent {
    State {
        from: TcpState,
        to: TcpState,
        at: Instant,
        cause: &'static str,
    },
    /// An active open completed.
    Connected,
    /// A passive open completed: ready for accept().
    Established,
    Readable,
    Writable,
    Error(Error),
    /// An ICMP error the connection survives (RFC 1122 4.2.3.9).
    SoftError(Error),
    /// A lifecycle diagnostic (see `diagnose`): the connection is stuck in its state.
    Warning(String),
    /// A RST to send (the connection may already be CLOSED).
    Reset(RstOut),
    /// A segment (or its data) was dropped, for this reason (counted by the stack).
    Dropped(&'static str),
    /// TCP Fast Open, client side: what the SYN-ACK says about the server, for the
    /// stack's cookie cache (Linux's tcp_fastopen_cache_set).
    FastOpenCache {
        mss: u16,
        cookie: Option<crate::wire::FastOpenCookie>,
        syn_lost: bool,
        try_exp: u8,
    },
}

/// A RST the connection wants sent (it may already be CLOSED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RstOut {
    pub(crate) seq: SeqNum,
    pub(crate) ack: Option<SeqNum>,
    /// Timestamps for a reset the connection sends of its own accord (RFC 7323 3.2:
    /// SHOULD be sent in a <RST>, as Linux's active resets carry them).
    pub(crate) timestamps: Option<crate::wire::Timestamps>,
}

/// One TCP connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: State,
    pub(crate) snd_buf: SendBuffer,
    /// In-order received bytes the application has not read.
    pub(crate) rcv_buf: ByteRing,
    pub(crate) rcv_cap: usize,
    /// What the application read per round trip, for receive-buffer autotuning.
    pub(crate) rcv_space: super::autotune::RcvSpace,
    /// The application sized the receive (send) buffer itself: it never grows alone.
    pub(crate) rcv_locked: bool,
    pub(crate) snd_locked: bool,
    pub(crate) neg: Negotiated,
    /// TS.Recent (RFC 7323 4.3) and the offset of our TSval clock.
    pub(crate) ts_recent: u32,
    pub(crate) ts_offset: u32,
    /// RCV.NXT as of the last ACK we sent (RFC 7323 4.3 Last.ACK.sent).
    pub(crate) last_ack_sent: SeqNum,
    /// Our MSS option value (from the MTU).
    pub(crate) local_mss: u16,
    /// We offer / accept SACK (`tcp_sack`).
    pub(crate) sack_offer: bool,
    /// The congestion control the send side uses once established: a built-in, unless
    /// `cc_custom` holds a factory (see [`Connection::cc_choice`]).
    pub(crate) cc_builtin: super::cc::Builtin,
    pub(crate) cc_custom: Option<super::cc::CustomController>,
    /// The application gave up its handle (close()).
    pub(crate) orphaned: bool,
    /// Created by a listener.
    pub(crate) passive: bool,
    /// The application shut down its sending half.
    pub(crate) shut_wr: bool,
    /// The peer's FIN was received (end-of-stream after the buffered bytes).
    pub(crate) fin_received: bool,
    /// The application shut down the reading half (`shutdown(SHUT_RD)`): reads that find
    /// nothing return end-of-stream instead of waiting, as on Linux.
    pub(crate) rcv_shutdown: bool,
    /// IP_TTL / IPV6_UNICAST_HOPS of this connection (None: `Config::ttl`).
    pub(crate) ttl: Option<u8>,
    /// Send a segment (ACK) at the next opportunity.
    pub(crate) ack_now: bool,
    /// (Re)send our SYN or SYN-ACK.
    pub(crate) syn_due: bool,
    /// Send a zero-window probe.
    pub(crate) probe_due: bool,
    /// When a delayed ACK is due (RFC 1122 4.2.3.2).
    pub(crate) delack: Option<Instant>,
    /// The largest segment the peer has sent (Linux's rcv_mss; 536 to begin with): more
    /// than this unacknowledged is more than one full segment, and is ACKed at once.
    pub(crate) rcv_mss: u16,
    /// Segments still to be ACKed at once before delayed ACKs begin (Linux's quick-ACK
    /// mode: at the first data and again after an idle of more than an RTO).
    pub(crate) quick_acks: u8,
    /// Config::quick_acks: the most quick ACKs granted at once.
    pub(crate) max_quick_acks: u8,
    /// TCP_USER_TIMEOUT (RFC 5482): give up when data stays unacknowledged this long,
    /// instead of counting retransmissions.
    pub(crate) user_timeout: Option<Millis>,
    /// TCP_MAXSEG set by the application: the MSS we announce and the largest we send.
    /// (0: none set.)
    pub(crate) user_mss: u16,
    /// TCP_NOTSENT_LOWAT set by the application (0: `Config::tcp_notsent_lowat`, as
    /// Linux's `tp->notsent_lowat`).
    pub(crate) notsent_lowat: u32,
    /// When data last arrived (None: none yet).
    pub(crate) last_data_in: Option<Instant>,
    /// Data arrived that the next segment's ACK covers (it spends a quick ACK).
    pub(crate) ack_for_data: bool,
    /// Interactive mode: we answered data with data within the delayed-ACK time, so
    /// ACKs wait to ride on the next reply; left when the delayed-ACK timer fires.
    pub(crate) pingpong: bool,
    /// How long an ACK may be delayed (zero: ACK every segment at once).
    pub(crate) delayed_ack: Micros,
    /// Nagle's algorithm off (TCP_NODELAY): small segments go out at once.
    pub(crate) nodelay: bool,
    /// Config::tcp_min_tso_segs: the smallest packet (in segments) PSH marks end.
    pub(crate) min_tso_segs: u8,
    /// Config::tso_max: the largest packet the device segments (0: none).
    pub(crate) tso_max: u16,
    /// The time of the latest call that told us the time (for checks made without one).
    pub(crate) last_now: Instant,
    /// When the connection entered its current state.
    pub(crate) state_since: Instant,
    /// A lifecycle warning was raised in the current state (one per state).
    pub(crate) warned: bool,
    /// Config::warn_close_wait and warn_fin_wait_2: when to look at it again.
    pub(crate) warn_after: (Millis, Millis),
    /// Keepalive, when on (SO_KEEPALIVE), and when the peer was last heard.
    pub(crate) keepalive: Option<Box<super::keepalive::KeepaliveState>>,
    pub(crate) last_heard: Instant,
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883).
    pub(crate) pending_dsack: Option<(SeqNum, SeqNum)>,
    /// Why the connection ended, when it ended badly.
    pub(crate) error: Option<Error>,
    /// The last ICMP error the connection survived: its error if it later times out.
    pub(crate) soft_error: Option<Error>,
    /// The application found the send buffer full: report Writable when room appears.
    pub(crate) want_writable: bool,
    /// State few connections need (the time-limit statistics, the out-of-window ACK
    /// rate limit), allocated when first needed.
    pub(crate) rare: Option<Box<super::chrono::Rare>>,
    /// The stack's buffer memory level (`Config::tcp_mem`), as of the last call.
    pub(crate) memory: MemoryLevel,
    pub(crate) events: Vec<ConnEvent>,
    pub(crate) stats: ConnStats,
    /// Explicit Congestion Notification (RFC 3168).
    pub(crate) ecn: super::ecn::EcnState,
    /// Window reductions made for an ECE (RFC 3168 6.1.2: entries into CWR). (Here
    /// rather than in `stats`, whose padding holds `ce_received`: the connection keeps
    /// within its size budget.)
    pub(crate) ece_reductions: u32,
    /// TCP Fast Open (RFC 7413): [`TFO_SYN_DATA_ACKED`], [`TFO_CHILD`]; and [`WRITE_PENDING`],
    /// [`URGENT`].
    pub(crate) tfo: u8,
    /// Write boundaries and cork state, once MSG_MORE, MSG_EOR or TCP_CORK is used.
    pub(crate) marks: Option<Box<super::push::SendMarks>>,
}

/// `Connection::tfo`: data in the SYN was acknowledged (client) or accepted (server):
/// Linux's `syn_data_acked`, TCPI_OPT_SYN_DATA.
pub(crate) const TFO_SYN_DATA_ACKED: u8 = 1;
/// `Connection::tfo`: a listener's Fast Open child, in its accept queue before the
/// handshake completes.
pub(crate) const TFO_CHILD: u8 = 2;
/// `Connection::tfo` (a handshake flag kept in the same byte): a blocking writer waits
/// for the handshake (Linux's sk_write_pending), so the ACK of the SYN-ACK waits to
/// ride on its data. Kept once established: the delayed-ACK clock then runs from the
/// handshake (Linux sets icsk_ack.ato when a SYN-ACK finds a writer waiting), not only
/// from the first data received.
pub(crate) const WRITE_PENDING: u8 = 4;
/// `Connection::tfo` (another flag kept in the same byte, for the size budget): a
/// TCP-MD5 key (RFC 2385) signs this connection's segments, so the option takes 20
/// bytes of every header. The key itself is the stack's, beside the connection.
pub(crate) const TCP_MD5: u8 = 8;
/// `Connection::tfo` (one more flag kept in the same byte): urgent-data state exists
/// (`Rare::urgent`, see `urgent.rs`).
pub(crate) const URGENT: u8 = 16;

/// How close the stack's buffers are to `Config::tcp_mem` (Linux's tcp_memory_pressure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum MemoryLevel {
    /// Below the pressure mark (or back below the low mark).
    #[default]
    Normal,
    /// Above `tcp_mem[1]`: receive windows open by at most a few segments.
    Pressure,
    /// Above `tcp_mem[2]`: windows do not open, send() takes data only into an empty buffer.
    Exhausted,
}

/// Counters kept per connection: events in 32 bits (wrapping, as Linux's `tcp_info`
/// counts them), bytes in 64.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnStats {
    pub(crate) segs_in: u32,
    pub(crate) segs_out: u32,
    pub(crate) retransmits: u32,
    /// Fast retransmits undone because the original arrived (RFC 3522).
    pub(crate) spurious_retransmits: u32,
    /// Retransmission timeouts that fired.
    pub(crate) timeouts: u32,
    /// Tail loss probes sent (RFC 8985 7).
    pub(crate) tail_loss_probes: u32,
    /// Bytes acknowledged by the peer.
    pub(crate) bytes_sent: u64,
    /// Payload bytes put on the wire, retransmissions included.
    pub(crate) bytes_out: u64,
    pub(crate) bytes_received: u64,
    /// SACK blocks the peer sent us.
    pub(crate) sack_blocks_in: u32,
    pub(crate) challenge_acks: u32,
    pub(crate) dropped: u32,
    /// Data segments that arrived marked CE on an ECN connection (RFC 3168).
    pub(crate) ce_received: u32,
}

/// Our MSS for an MTU: minus the IP and TCP headers (RFC 9293 3.7.1).
pub(crate) fn mss_for(mtu: usize, ipv6: bool) -> u16 {
    let ip = if ipv6 { 40 } else { 20 };
    mtu.saturating_sub(ip + 20).clamp(88, 65535) as u16
}

impl Connection {
    fn blank(local: SocketAddr, remote: SocketAddr, state: State, cfg: &Config) -> Connection {
        let (cc_builtin, cc_custom) = cfg.congestion_control.clone().split();
        let local_mss = mss_for(cfg.mtu, local.is_ipv6());
        Connection {
            local,
            remote,
            state,
            snd_buf: SendBuffer::new(cfg.send_buffer),
            rcv_buf: ByteRing::default(),
            rcv_cap: cfg.recv_buffer.min(MAX_STORAGE),
            rcv_space: Default::default(),
            rcv_locked: false,
            snd_locked: false,
            neg: Negotiated {
                snd_mss: 536,
                snd_wscale: 0,
                rcv_wscale: 0,
                timestamps: false,
                sack: false,
            },
            sack_offer: cfg.tcp_sack,
            cc_builtin,
            cc_custom,
            ts_recent: 0,
            ts_offset: 0,
            last_ack_sent: SeqNum::new(0),
            local_mss,
            orphaned: false,
            passive: false,
            shut_wr: false,
            fin_received: false,
            rcv_shutdown: false,
            ttl: None,
            ack_now: false,
            syn_due: false,
            probe_due: false,
            delack: None,
            rcv_mss: 536,
            quick_acks: 0,
            max_quick_acks: cfg.quick_acks.min(255) as u8,
            user_timeout: None,
            user_mss: 0,
            notsent_lowat: 0,
            last_data_in: None,
            ack_for_data: false,
            pingpong: false,
            delayed_ack: Micros::new(cfg.delayed_ack),
            nodelay: cfg.tcp_nodelay,
            min_tso_segs: cfg.tcp_min_tso_segs.clamp(1, 255) as u8,
            tso_max: cfg.tso_max.min(65535) as u16,
            pending_dsack: None,
            last_now: Instant::ZERO,
            state_since: Instant::ZERO,
            warned: false,
            warn_after: (
                Millis::new(cfg.warn_close_wait),
                Millis::new(cfg.warn_fin_wait_2),
            ),
            keepalive: cfg.keepalive.map(|settings| {
                Box::new(super::keepalive::KeepaliveState {
                    settings,
                    sent: 0,
                    armed_at: Instant::ZERO,
                })
            }),
            last_heard: Instant::ZERO,
            error: None,
            soft_error: None,
            want_writable: false,
            rare: None,
            memory: MemoryLevel::Normal,
            events: Vec::new(),
            stats: ConnStats::default(),
            ecn: Default::default(),
            ece_reductions: 0,
            tfo: 0,
            marks: None,
        }
    }

    pub(crate) fn rtt_estimator(cfg: &Config) -> RttEstimator {
        RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max).with_tick(cfg.timer_tick)
    }

    /// RFC 9293 3.10.1: OPEN (active): send SYN, enter SYN_SENT.
    pub(crate) fn connect(
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNum,
        ts_offset: u32,
        cfg: &Config,
        fo: Option<SynFastOpen>,
    ) -> Connection {
        let syn_sent = SynSent {
            iss,
            rtx: Retransmit::default(),
            rtt: Self::rtt_estimator(cfg),
            wscale_offer: cfg.wscale_offer(),
            ts_offer: cfg.tcp_timestamps,
            fo,
        };
        let mut c = Connection::blank(local, remote, State::Closed(Closed), cfg);
        c.ts_offset = ts_offset;
        // TCP_FASTOPEN_CONNECT: the SYN leaves with the first write.
        c.syn_due = !fo.is_some_and(|f| f.deferred);
        // RFC 3168 6.1.1: `tcp_ecn = 1` asks for ECN in the SYN.
        c.ecn.set_ok(cfg.tcp_ecn == 1);
        c.transition(now, "connect()", |_| State::SynSent(syn_sent));
        c
    }

    /// RFC 9293 3.10.7.2: a SYN reached a listener: record it, send SYN-ACK, enter SYN_RECEIVED.
    /// `ecn`: the ECN field of the SYN's IP header (None: ECN is not considered).
    pub(crate) fn accept_syn(
        now: Instant,
        (local, remote): (SocketAddr, SocketAddr),
        iss: SeqNum,
        ts_offset: u32,
        (syn, ecn): (&TcpRepr<'_>, Option<crate::wire::Ecn>),
        cfg: &Config,
    ) -> Connection {
        let mut c = Connection::blank(local, remote, State::Closed(Closed), cfg);
        if let Some(rx) = ecn {
            c.ecn = super::ecn::EcnState::for_syn(cfg.tcp_ecn, syn, rx);
        }
        c.passive = true;
        c.ts_offset = ts_offset;
        c.negotiate(syn, cfg.wscale_offer(), cfg.tcp_timestamps);
        let adv = syn.seq + 1 + c.initial_window() as u32;
        let state = SynRcvd {
            iss,
            irs: syn.seq,
            passive: true,
            rtx: Retransmit::default(),
            rtt: Self::rtt_estimator(cfg),
            adv,
            syn_data: 0,
            data_sent: 0,
            data_sent_at: None,
            fo_reply: None,
        };
        c.syn_due = true;
        c.stats.segs_in = c.stats.segs_in.wrapping_add(1);
        c.transition(now, "rcv SYN", |_| State::SynRcvd(state));
        c
    }

    /// TCP Fast Open, client side: put up to the SYN's room of `data` in the send
    /// buffer for the SYN to carry (Linux's tcp_send_syn_data); returns how much.
    pub(crate) fn fill_syn_data(&mut self, data: &[u8]) -> usize {
        let State::SynSent(s) = &mut self.state else {
            return 0;
        };
        let Some(fo) = s.fo.as_mut() else {
            return 0;
        };
        // Linux's tcp_send_syn_data: TCP_MAXSEG bounds the MSS, less 40 bytes of options.
        let user_room = match self.user_mss {
            0 => usize::MAX,
            m => usize::from(m).saturating_sub(40),
        };
        let take = data.len().min(fo.space as usize).min(user_room);
        let n = self.snd_buf.push(&data[..take]);
        fo.syn_data = n as u32;
        fo.deferred = false;
        self.syn_due = true;
        n
    }

    /// Segments are signed with TCP-MD5 (RFC 2385).
    pub(crate) fn md5(&self) -> bool {
        self.tfo & TCP_MD5 != 0
    }

    /// A TCP-MD5 key now signs this connection (`on`) or no longer does. As Linux with
    /// a key (tcp_syn_options): a SYN not yet answered offers no timestamps, the option's
    /// 20 bytes come off the MSS (tcp_header_len), and no segmentation offload
    /// (sk_gso_type: the device cannot sign the segments it cuts).
    pub(crate) fn set_md5(&mut self, on: bool, cfg: &Config) {
        if on == self.md5() {
            return;
        }
        let delta = wire::MD5SIG_ALIGNED_LEN;
        if on {
            self.tfo |= TCP_MD5;
            self.tso_max = 0;
            self.neg.snd_mss = self.neg.snd_mss.saturating_sub(delta).max(32);
        } else {
            self.tfo &= !TCP_MD5;
            self.tso_max = cfg.tso_max.min(65535) as u16;
            self.neg.snd_mss += delta;
        }
        if let State::SynSent(s) = &mut self.state {
            s.ts_offer = cfg.tcp_timestamps && !on;
        }
    }

    /// Data in the SYN was acknowledged (or accepted): TCPI_OPT_SYN_DATA.
    pub(crate) fn info_syn_data_acked(&self) -> bool {
        self.tfo & TFO_SYN_DATA_ACKED != 0
    }

    /// TCP_FASTOPEN_CONNECT left the SYN waiting for the first write.
    pub(crate) fn syn_deferred(&self) -> bool {
        matches!(&self.state, State::SynSent(s) if s.fo.is_some_and(|f| f.deferred))
    }

    /// A Fast Open child still waiting for the ACK of its SYN-ACK (counted in its
    /// listener's Fast Open queue).
    pub(crate) fn fastopen_pending(&self) -> bool {
        self.tfo & TFO_CHILD != 0 && matches!(self.state, State::SynRcvd(_))
    }

    /// TCP Fast Open, server side (RFC 7413 4.2.2): the SYN's cookie is valid, so its
    /// data is accepted now, before the handshake completes, and the connection goes to
    /// the accept queue at once (Linux's tcp_fastopen_create_child). `reply` is the
    /// option the SYN-ACK carries, if any.
    pub(crate) fn accept_fastopen(
        &mut self,
        payload: &[u8],
        reply: Option<crate::wire::FastOpenCookie>,
    ) {
        let State::SynRcvd(s) = &mut self.state else {
            return;
        };
        s.fo_reply = reply;
        // At most the window our SYN-ACK offers (a longer SYN is trimmed, RFC 9293 3.10.7.4).
        let taken = payload.len().min(self.rcv_cap.min(65535));
        self.rcv_buf.push(&payload[..taken]);
        s.syn_data = taken as u32;
        s.adv += taken as u32;
        self.tfo |= TFO_CHILD;
        if taken > 0 {
            self.tfo |= TFO_SYN_DATA_ACKED;
            self.stats.bytes_received += taken as u64;
            // Not counted as the first data for quick ACKs (Linux's tcp_fastopen_add_skb
            // leaves icsk_ack.ato alone): the next data is ACKed at once.
            self.events.push(ConnEvent::Readable);
        }
        self.events.push(ConnEvent::Established);
    }

    /// The SYN-ACK carries a Fast Open option: a cookie the client asked for, or the
    /// valid one when its SYN's was invalid (RFC 7413 4.2.1).
    pub(crate) fn set_synack_cookie(&mut self, reply: Option<crate::wire::FastOpenCookie>) {
        if let State::SynRcvd(s) = &mut self.state {
            s.fo_reply = reply;
        }
    }

    /// The SYN-ACK already went out statelessly, as a SYN cookie: do not send it again
    /// unless the ACK that rebuilt this connection fails to complete the handshake.
    pub(crate) fn synack_sent_as_cookie(&mut self, now: Instant) {
        self.syn_due = false;
        if let State::SynRcvd(s) = &mut self.state {
            s.rtx.deadline = Some(now + s.rtt.backed_off(0));
        }
    }

    /// Settle MSS, window scale and timestamps from the peer's SYN (RFC 9293 3.7.1, RFC 7323 1.3, 2.2).
    pub(crate) fn negotiate(
        &mut self,
        syn: &TcpRepr<'_>,
        wscale_offer: Option<u8>,
        ts_offer: bool,
    ) {
        let ipv6 = self.local.is_ipv6();
        // RFC 9293 3.7.1 / RFC 8200 8.3: without the option, assume 536 (IPv4) or 1220 (IPv6).
        let peer_mss = syn
            .options
            .mss
            .unwrap_or(if ipv6 { 1220 } else { 536 })
            .max(64);
        let (snd_wscale, rcv_wscale) = match (wscale_offer, syn.options.window_scale) {
            // RFC 7323 2.3: a shift above 14 is treated as 14.
            (Some(ours), Some(theirs)) => (theirs.min(14), ours),
            _ => (0, 0),
        };
        let timestamps = ts_offer && syn.options.timestamps.is_some();
        // RFC 2018 2: SACK only when both SYNs carry SACK-permitted.
        let sack = self.sack_offer && syn.options.sack_permitted;
        if let Some(ts) = syn.options.timestamps.filter(|_| timestamps) {
            self.ts_recent = ts.tsval;
        }
        let opt_bytes = if timestamps { 12 } else { 0 };
        // Linux's tcp_header_len: the MD5 option (nop,nop,md5) is in every segment too.
        let opt_bytes = opt_bytes
            + if self.md5() {
                wire::MD5SIG_ALIGNED_LEN
            } else {
                0
            };
        let mss = peer_mss.min(self.local_mss) as usize;
        self.neg = Negotiated {
            snd_mss: mss.saturating_sub(opt_bytes).max(32),
            snd_wscale,
            rcv_wscale,
            timestamps,
            sack,
        };
    }

    /// The window we can offer in a SYN or SYN-ACK (never scaled: RFC 7323 2.2).
    pub(crate) fn initial_window(&self) -> u16 {
        self.rcv_cap.min(65535) as u16
    }

    /// A fresh receive sequence space once the handshake is done.
    pub(crate) fn new_rcv(irs: SeqNum, adv: SeqNum) -> Rcv {
        Rcv {
            irs,
            nxt: irs + 1,
            adv,
            ooo: Reassembly::default(),
            fin: None,
            last_ooo: None,
        }
    }

    /// The state's name.
    pub(crate) fn tcp_state(&self) -> TcpState {
        self.state.name()
    }

    /// Change state: the single point through which every transition passes, so that
    /// events, ladders, `ss` and counters all see the same history.
    pub(crate) fn transition(
        &mut self,
        now: Instant,
        cause: &'static str,
        f: impl FnOnce(State) -> State,
    ) {
        let from = self.state.name();
        let old = mem::replace(&mut self.state, State::Closed(Closed));
        self.state = f(old);
        let to = self.state.name();
        if from != to {
            self.state_since = now;
            self.warned = false;
            tracing::debug!(local = %self.local, remote = %self.remote, %from, %to, cause, "tcp state");
            self.events.push(ConnEvent::State {
                from,
                to,
                at: now,
                cause,
            });
        }
    }

    /// End the connection now (CLOSED), remembering why.
    pub(crate) fn terminate(&mut self, now: Instant, cause: &'static str, error: Option<Error>) {
        if let Some(e) = error {
            self.error = Some(e);
            self.events.push(ConnEvent::Error(e));
        }
        self.ack_now = false;
        self.probe_due = false;
        self.syn_due = false;
        self.transition(now, cause, |_| State::Closed(Closed));
    }

    /// Queue a RST+ACK from our current position (abort and close-with-unread-data).
    pub(crate) fn queue_active_reset(&mut self, now: Instant) {
        let timestamps = self.neg.timestamps.then(|| crate::wire::Timestamps {
            tsval: self.tsval(now),
            tsecr: self.ts_recent,
        });
        if let (Some(seq), Some((rcv_nxt, _))) = (self.state.snd_nxt(), self.state.rcv_window()) {
            self.events.push(ConnEvent::Reset(RstOut {
                seq,
                ack: Some(rcv_nxt),
                timestamps,
            }));
        }
    }

    /// Finished from the stack's point of view: CLOSED with nothing left to send.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
            && !self.events.iter().any(|e| matches!(e, ConnEvent::Reset(_)))
    }

    // ---- timers ------------------------------------------------------------------

    /// The earliest deadline of any timer armed in the current state.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let state = match &self.state {
            State::Closed(_) => return None,
            State::SynSent(s) => s.rtx.deadline,
            State::SynRcvd(s) => s.rtx.deadline,
            State::FinWait2(s) => s.timeout,
            State::TimeWait(t) => Some(t.expiry),
            other => other.snd().and_then(|snd| {
                let rack = earliest(snd.rack_deadline(self.last_now), snd.tlp);
                earliest(earliest(snd.rtx.deadline, snd.persist.deadline), rack)
            }),
        };
        // Lifecycle diagnostics look again when a state has lasted its threshold.
        let diagnostic = match self.state {
            State::CloseWait(_) if !self.warned => Some(self.state_since + self.warn_after.0.get()),
            State::FinWait2(_) if !self.warned => Some(self.state_since + self.warn_after.1.get()),
            _ => None,
        };
        earliest(
            earliest(earliest(state, self.delack), self.keepalive_deadline()),
            diagnostic,
        )
    }

    /// Raise the lifecycle warning of the current state, once, when it is due.
    fn check_warning(&mut self, now: Instant, cfg: &Config) {
        if self.warned {
            return;
        }
        let retransmits = self.state.snd().map_or(0, |s| s.rtx.backoff);
        let age = now.saturating_duration_since(self.state_since);
        if let Some(msg) = super::diagnose(
            self.tcp_state(),
            age,
            retransmits,
            self.local,
            self.remote,
            cfg,
        ) {
            self.warned = true;
            tracing::warn!(local = %self.local, remote = %self.remote, "{msg}");
            self.events.push(ConnEvent::Warning(msg));
        }
    }

    /// [`WRITE_PENDING`].
    pub(crate) fn write_pending(&self) -> bool {
        self.tfo & WRITE_PENDING != 0
    }

    pub(crate) fn set_write_pending(&mut self, pending: bool) {
        if pending {
            self.tfo |= WRITE_PENDING;
        } else {
            self.tfo &= !WRITE_PENDING;
        }
    }

    /// TCP_SYNCNT as set (0: none).
    fn syn_retries(&self) -> u8 {
        self.rare.as_ref().map_or(0, |r| r.syn_retries)
    }

    /// How many retransmissions the current state allows before giving up.
    fn retry_limit(&self, cfg: &Config) -> u32 {
        match self.state {
            // Linux's tcp_write_timeout: icsk_syn_retries (TCP_SYNCNT), else the sysctl.
            State::SynSent(_) if self.syn_retries() != 0 => u32::from(self.syn_retries()),
            State::SynSent(_) => cfg.tcp_syn_retries,
            State::SynRcvd(_) if self.passive => cfg.tcp_synack_retries,
            _ if self.orphaned => cfg.orphan_retries(),
            _ => cfg.tcp_retries2,
        }
    }

    /// Fire whatever timers are due at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant, cfg: &Config) {
        if self.delack.is_some_and(|d| d <= now) {
            self.delack = None;
            self.ack_now = true;
            // A delayed ACK had to go alone: the exchange is not interactive after all.
            self.pingpong = false;
        }
        self.on_keepalive_timer(now);
        let limit = self.retry_limit(cfg);
        match &mut self.state {
            State::Closed(_) => {}
            State::SynSent(s) => match handshake_timer(&mut s.rtx, &mut s.rtt, now, limit) {
                // RFC 9293 3.8.3 / tcp_syn_retries: the SYN went unanswered.
                HandshakeTimer::GiveUp => {
                    let e = self.timeout_error();
                    self.terminate(now, "SYN retries exhausted", Some(e))
                }
                HandshakeTimer::Resend => self.resend_syn(),
                HandshakeTimer::Idle => {}
            },
            State::SynRcvd(s) => match handshake_timer(&mut s.rtx, &mut s.rtt, now, limit) {
                // tcp_synack_retries: a passive open just disappears; an active one fails.
                HandshakeTimer::GiveUp => {
                    let passive = s.passive;
                    let err = (!passive).then(|| self.timeout_error());
                    self.terminate(now, "SYN-ACK retries exhausted", err)
                }
                HandshakeTimer::Resend => self.resend_syn(),
                HandshakeTimer::Idle => {}
            },
            State::FinWait2(s) => {
                if s.timeout.is_some_and(|d| d <= now) {
                    // tcp_fin_timeout: an orphan waited long enough for the peer's FIN.
                    self.terminate(now, "FIN_WAIT_2 timeout", None);
                }
            }
            State::TimeWait(t) => {
                if t.expiry <= now {
                    // RFC 9293 3.10.8: the time-wait timeout deletes the TCB.
                    self.terminate(now, "TIME_WAIT expired (2*MSL)", None);
                }
            }
            _ => self.on_timeout_snd(now, cfg, limit),
        }
        self.check_warning(now, cfg);
    }

    fn resend_syn(&mut self) {
        self.syn_due = true;
        self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
    }

    /// Retransmission, RACK and persist timers of the synchronized states.
    fn on_timeout_snd(&mut self, now: Instant, cfg: &Config, limit: u32) {
        let orphaned = self.orphaned;
        let (sack, mss) = (self.neg.sack, self.neg.snd_mss as u32);
        if let (true, Some(snd)) = (sack, self.state.snd_mut()) {
            // RFC 8985 6.3: when the reordering timer expires, a hole may now count as
            // lost; recovery then starts with PRR as if one segment had been delivered
            // (Linux's tcp_rack_reo_timeout).
            if snd.maybe_enter_recovery(now, sack, false) {
                snd.prr_on_ack(now, sack, mss, false, true);
            }
            snd.mark_lost(now);
            // RFC 8985 7.3: no ACK for a PTO: probe, so that a lost tail shows in SACKs.
            if snd.tlp.is_some_and(|t| t <= now) {
                snd.tlp = None;
                if snd.recovery == Recovery::Open && snd.una < snd.max && !snd.tlp_out {
                    snd.tlp_due = true;
                    snd.tlp_out = true;
                    // RFC 8985 7.3: the RTO is re-armed after the probe (not backed off).
                    snd.rtx.deadline = Some(now + snd.rtt.backed_off(snd.rtx.backoff));
                }
            }
        }
        let Some(snd) = self.state.snd_mut() else {
            return;
        };
        let user_timeout = self.user_timeout.map(Millis::get);
        if snd.rtx.deadline.is_some_and(|d| d <= now) {
            // RFC 5482 / TCP_USER_TIMEOUT: when set, it alone decides when to give up.
            let expired = match user_timeout {
                Some(ut) => snd.rtx.since.is_some_and(|s| now >= s + ut),
                None => snd.rtx.backoff >= limit,
            };
            if expired {
                // RFC 9293 3.8.3: retransmissions ran out (R2): abort without RST.
                let e = self.timeout_error();
                self.terminate(now, "retransmissions exhausted", Some(e));
                return;
            }
            snd.rtx.backoff += 1;
            snd.rtt.on_retransmit();
            self.stats.timeouts = self.stats.timeouts.wrapping_add(1);
            // RFC 5681 3.1 (eq. 4): after a timeout, ssthresh = max(FlightSize/2, 2*SMSS),
            // cwnd = 1 SMSS (CUBIC: RFC 9438 4.8). A timeout during a recovery already
            // under way does not reduce ssthresh again (as Linux's tcp_enter_loss).
            let flight = snd.flight();
            snd.cc.on_rto(now, flight, snd.recovery != Recovery::Open);
            snd.recovery = Recovery::Timeout { recover: snd.max };
            // RFC 3168 6.1.2: the window was reduced: CWR on the next new data.
            if self.ecn.ok() {
                self.ecn.set_queue_cwr(true);
            }
            // Slow start again, with HyStart watching it afresh (as Linux).
            snd.hystart = super::cc::HyStart::default();
            snd.undo = None;
            snd.dupacks = 0;
            snd.reno_sacked = 0;
            snd.resend_head = false;
            snd.update_dupthresh();
            // Go back N: resend from the oldest unacknowledged byte; SACKed ranges are
            // skipped (RFC 6675 5.1 keeps the scoreboard; we trust it, like Linux).
            snd.nxt = snd.una;
            let mut next = now + snd.rtt.backed_off(snd.rtx.backoff);
            if let (Some(ut), Some(since)) = (user_timeout, snd.rtx.since) {
                // As Linux: the last retransmission timer fires when the user timeout ends.
                next = next.min(since + ut);
            }
            snd.rtx.deadline = Some(next);
        }
        let Some(snd) = self.state.snd_mut() else {
            return;
        };
        if snd.persist.deadline.is_some_and(|d| d <= now) {
            snd.probes += 1;
            // Orphans give up after tcp_orphan_retries probes; others only when probes go unanswered.
            let limit = if orphaned {
                cfg.orphan_retries()
            } else {
                cfg.tcp_retries2
            };
            if snd.probes > limit {
                let e = self.timeout_error();
                self.terminate(now, "zero-window probes exhausted", Some(e));
                return;
            }
            snd.persist.backoff += 1;
            snd.persist.deadline = Some(now + snd.rtt.backed_off(snd.persist.backoff));
            self.probe_due = true;
        }
    }

    // ---- application calls ---------------------------------------------------------

    /// SO_SNDBUF / SO_RCVBUF: size this connection's buffers. The window scale offered in
    /// our SYN follows the receive buffer, so set it before the SYN leaves (as on Linux,
    /// where it must precede connect or listen); a window already advertised is never
    /// taken back (RFC 9293 3.8.6.2.2), so a smaller receive buffer takes effect as the
    /// window drains.
    pub(crate) fn set_buffers(&mut self, send: Option<usize>, recv: Option<usize>) {
        if let Some(send) = send {
            self.snd_locked = true;
            self.snd_buf.set_capacity(send);
            if self.write_space() && self.want_writable {
                self.want_writable = false;
                self.events.push(ConnEvent::Writable);
            }
        }
        if let Some(recv) = recv {
            self.rcv_locked = true;
            self.rcv_cap = recv.min(MAX_STORAGE);
            if let (State::SynSent(s), true) = (&mut self.state, self.syn_due) {
                if s.wscale_offer.is_some() {
                    s.wscale_offer = Some(wscale_for(recv));
                }
            }
        }
    }

    /// TCP_USER_TIMEOUT: None goes back to counting retransmissions (tcp_retries2).
    pub(crate) fn set_user_timeout(&mut self, timeout: Option<Duration>) {
        self.user_timeout = timeout.filter(|t| !t.is_zero()).map(Millis::new);
    }

    /// TCP_MAXSEG: before the SYN leaves, the MSS we announce; always a cap on what we send.
    pub(crate) fn set_mss(&mut self, mss: u16) {
        let mss = mss.max(88);
        self.user_mss = mss;
        if self.syn_due && matches!(self.state, State::SynSent(_)) {
            self.local_mss = self.local_mss.min(mss);
        }
        self.neg.snd_mss = self.neg.snd_mss.min(usize::from(mss));
    }

    /// TCP_NODELAY: turn Nagle's algorithm off (true) or on.
    pub(crate) fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
        if nodelay {
            // Linux's tcp_sock_set_nodelay: TCP_NAGLE_PUSH, then push what waits.
            self.push_pending(true);
        }
    }

    /// Switch congestion control; an established connection keeps its cwnd.
    pub(crate) fn set_congestion_control(&mut self, cc: CongestionControl) {
        let mss = self.neg.snd_mss as u32;
        if let Some(snd) = self.state.snd_mut() {
            let cwnd = snd.cc.cwnd();
            snd.cc = cc.controller(mss);
            snd.cc.set_cwnd(cwnd);
        }
        (self.cc_builtin, self.cc_custom) = cc.split();
    }

    /// The congestion control chosen for this connection.
    pub(crate) fn cc_choice(&self) -> CongestionControl {
        CongestionControl::join(self.cc_builtin, self.cc_custom.as_ref())
    }

    /// Queue data (RFC 9293 3.10.2 SEND); `cap` is what TCP_NOTSENT_LOWAT lets in
    /// ([`Connection::notsent_room`]). Taking less than all of it asks for a Writable
    /// event when room appears (Linux sets SOCK_NOSPACE on a short write too).
    pub(crate) fn send(&mut self, data: &[u8], room: Room) -> Result<usize, Error> {
        let cap = room.cap;
        if self.syn_deferred() {
            // TCP_FASTOPEN_CONNECT: the first write sends the SYN with its data (an empty
            // one too: Linux's tcp_sendmsg_fastopen).
            return Ok(self.fill_syn_data(data));
        }
        if data.is_empty() {
            return self.sendable_state().map(|_| 0);
        }
        let want = data.len();
        let data = match cap {
            Some(cap) => &data[..data.len().min(cap)],
            None => data,
        };
        let n = self.send_with(cap, |buf| {
            if room.beyond_capacity {
                buf.push_beyond(data)
            } else {
                buf.push(data)
            }
        })?;
        // (A write cut short by the accounting waited for space too: Linux's
        // tcp_sendmsg_locked sets SOCK_NOSPACE at wait_for_space.)
        if n < data.len() || cap.is_some_and(|c| c < want) {
            self.want_writable = true;
        }
        Ok(n)
    }

    /// TCP_NOTSENT_LOWAT in force: the connection's own limit, else the sysctl's;
    /// None when off (`u32::MAX`).
    pub(crate) fn notsent_limit(&self, cfg: &Config) -> Option<u32> {
        let own = self.notsent_lowat;
        Some(if own == 0 { cfg.tcp_notsent_lowat } else { own }).filter(|l| *l != u32::MAX)
    }

    /// Bytes written and not yet sent (Linux's `write_seq - snd_nxt`, with the highest
    /// sequence number sent as `snd_nxt`: a retransmission timeout does not make sent
    /// data unsent again).
    pub(crate) fn unsent(&self) -> usize {
        if matches!(self.state, State::SynSent(_) | State::SynRcvd(_)) {
            // Only the SYN is out: every byte written is unsent.
            return self.snd_buf.len();
        }
        let sent = self
            .state
            .snd()
            .map_or(0, |snd| (snd.max - snd.una).max(0) as usize);
        self.snd_buf.len().saturating_sub(sent)
    }

    /// TCP_NOTSENT_LOWAT: how many bytes `send` may take now (None: no limit). Linux
    /// takes whole skbs while the unsent bytes are below the limit; synack whole
    /// segments: up to the limit, rounded up to the MSS. Zero once the limit is reached.
    pub(crate) fn notsent_room(&self, cfg: &Config) -> Option<usize> {
        let limit = self.notsent_limit(cfg)? as usize;
        let unsent = self.unsent();
        let mss = self.neg.snd_mss.max(1);
        Some((limit.saturating_sub(unsent)).div_ceil(mss) * mss)
    }

    /// Writable as Linux's poll and wakeups judge TCP_NOTSENT_LOWAT
    /// (`tcp_stream_memory_free(sk, 1)`): unsent bytes below half the limit.
    fn notsent_writable(&self, cfg: &Config) -> bool {
        self.notsent_limit(cfg)
            .is_none_or(|limit| 2 * self.unsent() < limit as usize)
    }

    /// After anything happened, with a TCP_NOTSENT_LOWAT limit: hold back a Writable
    /// event while the unsent bytes are too many, and report one once they have been
    /// sent down below half the limit (Linux's `tcp_check_space` after an ACK let more
    /// data go). Without a limit, nothing to do.
    pub(crate) fn check_notsent_space(&mut self, cfg: &Config) {
        if self.notsent_limit(cfg).is_none() || self.sendable_state().is_err() {
            // No limit, or a send would fail at once: nothing to hold back.
            return;
        }
        if !self.notsent_writable(cfg) {
            let before = self.events.len();
            self.events.retain(|e| !matches!(e, ConnEvent::Writable));
            if self.events.len() != before {
                self.want_writable = true;
            }
        } else if self.want_writable
            && self.write_space()
            && !self.events.iter().any(|e| matches!(e, ConnEvent::Writable))
        {
            self.want_writable = false;
            self.events.push(ConnEvent::Writable);
        }
    }

    /// TCP_NOTSENT_LOWAT for this connection (None or 0: the sysctl's).
    pub(crate) fn set_notsent_lowat(&mut self, limit: Option<u32>) {
        self.notsent_lowat = limit.unwrap_or(0);
    }

    /// Queue data written by `fill` straight into the send buffer (zero-copy send).
    pub(crate) fn send_with(
        &mut self,
        cap: Option<usize>,
        fill: impl FnOnce(&mut SendBuffer) -> usize,
    ) -> Result<usize, Error> {
        self.sendable_state()?;
        if cap == Some(0) {
            // TCP_NOTSENT_LOWAT reached: wait until enough of it has been sent.
            self.want_writable = true;
            return Err(Error::WouldBlock);
        }
        if self.memory == MemoryLevel::Exhausted {
            if self.snd_buf.len() > 0 {
                // Over tcp_mem[2]: wait until this connection's queued data is acknowledged.
                self.want_writable = true;
                return Err(Error::WouldBlock);
            }
            // An empty buffer takes a little (Linux forces one packet's worth).
            self.moderate_buffers();
        }
        let n = fill(&mut self.snd_buf);
        if n == 0 {
            self.want_writable = true;
            return Err(Error::WouldBlock);
        }
        Ok(n)
    }

    /// RFC 9293 3.10.2: SEND is allowed until our FIN is queued.
    /// Whether `send` would not block: room in the send buffer, or an error it would
    /// return at once. When not, the next room that appears is reported (Writable).
    pub(crate) fn poll_writable(&mut self, cfg: &Config) -> bool {
        if self.sendable_state().is_err() {
            return true;
        }
        let room = self.write_space()
            && (self.memory != MemoryLevel::Exhausted || self.snd_buf.len() == 0)
            && self.notsent_writable(cfg);
        if !room {
            self.want_writable = true;
        }
        room
    }

    fn sendable_state(&self) -> Result<(), Error> {
        if self.shut_wr {
            return Err(Error::BrokenPipe);
        }
        match self.state {
            State::SynSent(_) | State::SynRcvd(_) | State::Established(_) | State::CloseWait(_) => {
                Ok(())
            }
            State::Closed(_) => Err(self.error.unwrap_or(Error::BrokenPipe)),
            _ => Err(Error::BrokenPipe),
        }
    }

    /// Read in-order data (RFC 9293 3.10.3 RECEIVE); `Ok(0)` is end-of-stream.
    pub(crate) fn recv(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        cfg: &Config,
    ) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.recv_with(now, cfg, |a, b| {
            let from_a = a.len().min(buf.len());
            buf[..from_a].copy_from_slice(&a[..from_a]);
            let from_b = b.len().min(buf.len() - from_a);
            buf[from_a..from_a + from_b].copy_from_slice(&b[..from_b]);
            from_a + from_b
        })
    }

    /// Let `take` read the received bytes where they lie (two slices, in order) and say
    /// how many it consumed (zero-copy receive); `Ok(0)` is end-of-stream.
    pub(crate) fn recv_with(
        &mut self,
        now: Instant,
        cfg: &Config,
        take: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Result<usize, Error> {
        if let Some(plan) = self.urgent_plan() {
            return self.recv_urgent(now, cfg, plan, take);
        }
        if !self.rcv_buf.is_empty() {
            let (a, b) = self.rcv_buf.as_slices();
            let n = take(a, b).min(self.rcv_buf.len());
            self.rcv_buf.consume(n);
            self.on_app_read(now, n, cfg);
            self.maybe_window_update();
            return Ok(n);
        }
        self.recv_empty()
    }

    /// [`Connection::recv_with`] with an urgent mark pending: skip the out-of-band byte
    /// at the mark, stop before a mark ahead (Linux's tcp_recvmsg).
    fn recv_urgent(
        &mut self,
        now: Instant,
        cfg: &Config,
        plan: super::urgent::ReadPlan,
        take: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Result<usize, Error> {
        if plan.skip > 0 {
            self.rcv_buf.consume(plan.skip);
            self.urgent_consumed(plan.skip);
            self.on_app_read(now, plan.skip, cfg);
        }
        if plan.limit == 0 {
            self.maybe_window_update();
            return self.recv_empty();
        }
        let (a, b) = self.rcv_buf.slices(0, plan.limit);
        let n = take(a, b).min(plan.limit);
        self.rcv_buf.consume(n);
        self.urgent_consumed(n);
        self.on_app_read(now, n, cfg);
        self.maybe_window_update();
        Ok(n)
    }

    /// What a read finds when no byte is waiting: end-of-stream (the peer's FIN, or our
    /// own `shutdown(SHUT_RD)`), the error the connection ended with, or `WouldBlock`.
    pub(crate) fn recv_empty(&self) -> Result<usize, Error> {
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed(_) => match self.error {
                Some(e) => Err(e),
                None => Ok(0),
            },
            // Linux's tcp_recvmsg: RCV_SHUTDOWN ends a read that finds the queue empty.
            _ if self.rcv_shutdown => Ok(0),
            _ => Err(Error::WouldBlock),
        }
    }

    /// Copy received bytes into `buf` without consuming them (MSG_PEEK): a later read
    /// returns them again.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (skip, limit) = self
            .urgent_plan()
            .map_or((0, self.rcv_buf.len()), |p| (p.skip, p.limit));
        if limit == 0 {
            return self.recv_empty();
        }
        let (a, b) = self.rcv_buf.slices(skip, limit);
        let from_a = a.len().min(buf.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        let from_b = b.len().min(buf.len() - from_a);
        buf[from_a..from_a + from_b].copy_from_slice(&b[..from_b]);
        Ok(from_a + from_b)
    }

    /// After the application read, tell the peer if the window opened enough to matter:
    /// by at least min(buffer/2, MSS) (RFC 9293 3.8.6.2.2), and, as Linux's
    /// tcp_cleanup_rbuf, only when the window left is at most half the largest and the
    /// new one at least doubles it (a read that frees a little of a wide-open window
    /// sends nothing).
    fn maybe_window_update(&mut self) {
        // Only what the window field can carry counts (without scaling: 64 KiB).
        let largest = (65535u32 << self.neg.rcv_wscale).min(self.rcv_cap as u32);
        let free = (self.rcv_free() as u32).min(largest);
        let threshold = ((self.rcv_cap / 2) as u32).min(self.local_mss as u32);
        if let Some(rcv) = self.state.rcv() {
            let advertised = (rcv.adv - rcv.nxt).max(0) as u32;
            if free >= advertised + threshold && 2 * advertised <= largest && free >= 2 * advertised
            {
                self.ack_now = true;
            }
        }
    }

    /// Storage held by an empty buffer (an idle release frees it).
    pub(crate) fn idle_storage(&self) -> bool {
        self.snd_buf.idle_storage()
            || self.rcv_idle_storage()
            || self.state.snd().is_some_and(|s| s.sacked.idle_storage())
    }

    fn rcv_idle_storage(&self) -> bool {
        self.rcv_buf.is_empty() && self.rcv_buf.storage() > 0
    }

    /// Give back what empty buffers hold: the stack calls it `IDLE_RELEASE` after a
    /// buffer emptied, and at once under memory pressure.
    pub(crate) fn release_idle_storage(&mut self) {
        self.snd_buf.release_idle();
        if let Some(snd) = self.state.snd_mut() {
            snd.sacked.release_idle();
        }
        self.rcv_buf.release_if_empty();
    }

    /// Under memory pressure: lower the send buffer's capacity towards half of what is
    /// queued (Linux's sk_stream_moderate_sndbuf, never under two segments) and give
    /// back storage that is well beyond what either buffer needs now.
    pub(crate) fn moderate_buffers(&mut self) {
        let floor = 2 * self.neg.snd_mss.max(usize::from(self.local_mss));
        let capacity = self.snd_buf.capacity();
        if capacity > floor {
            self.snd_buf
                .set_capacity((self.snd_buf.len() / 2).clamp(floor, capacity));
        }
        self.snd_buf.fit();
        let (len, storage) = (self.rcv_buf.len(), self.rcv_buf.storage());
        if storage > 2 * len.max(4096) {
            self.rcv_buf.relayout(len.max(4096));
        }
        self.release_idle_storage();
    }

    /// Bytes this connection's buffers cost (what `Config::tcp_mem` limits): the storage
    /// they hold, used or not, as Linux counts an skb's true size.
    pub(crate) fn memory_held(&self) -> usize {
        let ooo = self.state.rcv().map_or(0, |r| r.ooo.bytes());
        self.rcv_buf.storage() + ooo + self.snd_buf.storage()
    }

    /// The connection is an orphan: closed by the application and still finishing its
    /// close (what `Config::tcp_max_orphans` bounds).
    pub(crate) fn is_orphan(&self) -> bool {
        self.orphaned
            && matches!(
                self.tcp_state(),
                TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
            )
    }

    /// Buffer space not taken by unread or out-of-order data.
    pub(crate) fn rcv_free(&self) -> usize {
        let ooo = self.state.rcv().map_or(0, |r| r.ooo.bytes());
        self.rcv_cap.saturating_sub(self.rcv_buf.len() + ooo)
    }

    /// Shut down the sending half: the FIN follows queued data (RFC 9293 3.10.4 CLOSE, half).
    pub(crate) fn shutdown(&mut self, now: Instant) -> Result<(), Error> {
        if self.shut_wr {
            return Ok(());
        }
        match self.state {
            State::Closed(_) => return Err(Error::NotConnected),
            // Linux: shutdown(SHUT_WR) before the handshake completes closes the socket.
            State::SynSent(_) => {
                self.shut_wr = true;
                self.terminate(now, "shutdown() in SYN_SENT", None);
                return Ok(());
            }
            _ => {}
        }
        self.shut_wr = true;
        self.queue_fin(now, "shutdown()");
        Ok(())
    }

    /// Queue our FIN, moving to FIN_WAIT_1 or LAST_ACK (RFC 9293 3.10.4).
    fn queue_fin(&mut self, now: Instant, cause: &'static str) {
        match self.state {
            State::Established(_) => self.transition(now, cause, |s| match s {
                State::Established(e) => State::FinWait1(e.close()),
                s => s,
            }),
            State::CloseWait(_) => self.transition(now, cause, |s| match s {
                State::CloseWait(c) => State::LastAck(c.close()),
                s => s,
            }),
            // SYN_RECEIVED: the FIN goes out once the handshake completes (shut_wr is set;
            // the new Snd starts with fin_queued and the state moves on to FIN_WAIT_1 then).
            _ => {}
        }
    }

    /// The application closes its handle (RFC 9293 3.10.4 CLOSE).
    pub(crate) fn close(&mut self, now: Instant, cfg: &Config) {
        self.orphaned = true;
        // RFC 9293 3.6 / RFC 2525 2.17: closing with unread data resets the connection
        // so the peer learns the data was not consumed.
        if !self.rcv_buf.is_empty() && self.state.rcv_window().is_some() {
            self.queue_active_reset(now);
            self.terminate(now, "close() with unread data", None);
            return;
        }
        match self.state {
            State::SynSent(_) => self.terminate(now, "close()", None),
            State::FinWait2(ref mut s) => {
                // tcp_fin_timeout bounds how long an orphan waits for the peer's FIN.
                s.timeout = Some(now + cfg.tcp_fin_timeout);
            }
            _ => {
                if !self.shut_wr {
                    self.shut_wr = true;
                    self.queue_fin(now, "close()");
                }
            }
        }
    }

    /// Abort: RST the peer and drop everything (RFC 9293 3.10.5 ABORT).
    pub(crate) fn abort(&mut self, now: Instant) {
        if !matches!(
            self.state,
            State::Closed(_) | State::SynSent(_) | State::TimeWait(_)
        ) {
            self.queue_active_reset(now);
        }
        self.orphaned = true;
        self.terminate(now, "abort()", None);
    }

    /// Take the TIME_WAIT remains, leaving CLOSED (the stack keeps them in its table).
    pub(crate) fn take_time_wait(&mut self) -> Option<TimeWait> {
        match self.state {
            State::TimeWait(tw) => {
                self.state = State::Closed(Closed);
                Some(tw)
            }
            _ => None,
        }
    }

    /// Parameters for entering TIME_WAIT now.
    pub(crate) fn time_wait_params(&self, now: Instant, cfg: &Config) -> TimeWaitParams {
        TimeWaitParams {
            now,
            duration: cfg.time_wait,
            rcv_wnd: self.advertised_window_raw(),
            ts: self
                .neg
                .timestamps
                .then_some((self.ts_recent, self.ts_offset)),
        }
    }

    /// The window we advertise now, as the 16-bit field of the header.
    pub(crate) fn advertised_window_raw(&self) -> u16 {
        match self.state.rcv_window() {
            Some((nxt, adv)) => {
                let wnd = (adv - nxt).max(0) as u32;
                (wnd >> self.neg.rcv_wscale).min(65535) as u16
            }
            None => self.initial_window(),
        }
    }

    /// Our TSval at `now`.
    pub(crate) fn tsval(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Time the application must wait in FIN_WAIT_2 (for tests and `ss`).
    #[allow(dead_code)]
    pub(crate) fn fin_wait_2_remaining(&self, now: Instant) -> Option<Duration> {
        match &self.state {
            State::FinWait2(s) => s.timeout.map(|t| t - now),
            _ => None,
        }
    }
}

/// What the SYN or SYN-ACK retransmission timer asks for.
enum HandshakeTimer {
    Idle,
    Resend,
    GiveUp,
}

/// RFC 6298 5.4-5.6 for the handshake: on expiry, give up after `limit` retries, else back
/// off (doubling) and resend.
fn handshake_timer(
    rtx: &mut Retransmit,
    rtt: &mut RttEstimator,
    now: Instant,
    limit: u32,
) -> HandshakeTimer {
    if rtx.deadline.is_none_or(|d| d > now) {
        return HandshakeTimer::Idle;
    }
    if rtx.backoff >= limit {
        return HandshakeTimer::GiveUp;
    }
    rtx.backoff += 1;
    rtt.on_retransmit();
    rtx.deadline = Some(now + rtt.backed_off(rtx.backoff));
    HandshakeTimer::Resend
}
/// The scale bench measures a whole idle connection at under 1 KiB (the connection, its
/// slot, its index entry and the allocator's overhead); this keeps the largest part from
/// growing back unnoticed.
#[cfg(all(test, target_pointer_width = "64"))]
mod size {
    use super::Connection;
    use crate::tcp::state::{Snd, State};

    #[test]
    fn a_connection_stays_within_its_share_of_a_kibibyte() {
        let (conn, state, snd) = (
            core::mem::size_of::<Connection>(),
            core::mem::size_of::<State>(),
            core::mem::size_of::<Snd>(),
        );
        // 920 until a connection could hold a custom congestion controller's factory
        // (`cc_custom`, one pointer).
        assert!(
            conn <= 928,
            "Connection is {conn} bytes (State {state}, Snd {snd})"
        );
    }
}
