//! The listen path: a segment no connection or TIME_WAIT entry claims. A SYN to a
//! listener makes an embryonic connection (its SYN queue) or, past the backlog, a SYN
//! cookie; the ACK of a cookie rebuilds the connection; anything else gets a RST.

use alloc::format;
use core::net::{IpAddr, SocketAddr};

use super::*;
use crate::tcp::{Connection, Outgoing};
use crate::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use crate::Instant;
use tables::FourTuple;

impl Stack {
    /// RFC 9293 3.10.7.1 and 3.10.7.2: no connection; a listener may take a SYN, anything
    /// else is answered with a RST.
    pub(super) fn listen_input(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        isn: Option<SeqNum>,
    ) {
        let flags = seg.flags;
        let Some(lid) = self
            .find_listener(tuple.local)
            .or_else(|| self.find_capture(tuple.local))
        else {
            self.reply_rst(tuple, seg);
            return self.stats.drop("no_socket");
        };
        if flags.rst() {
            return self.stats.drop("rst_to_listener");
        }
        if flags.ack() {
            if !flags.syn() && self.cookies_valid(now, lid) {
                return self.cookie_ack(now, lid, tuple, seg);
            }
            // RFC 9293 3.10.7.2: an ACK to a listener: <SEQ=SEG.ACK><CTL=RST>.
            self.reply_rst(tuple, seg);
            return self.stats.drop("ack_to_listener");
        }
        if !flags.syn() {
            return self.stats.drop("no_syn");
        }
        if flags.fin() {
            // SYN and FIN together open nothing sensible; Linux discards them too.
            return self.stats.drop("syn_fin");
        }
        let Some(listener) = self.listeners[lid as usize].as_ref() else {
            return;
        };
        if let Some(decide) = listener.options.decide {
            return self.hold_request(now, lid, tuple, seg, isn, decide);
        }
        // Linux's tcp_conn_request: a full SYN queue sends cookies (or drops), then a
        // full accept queue drops.
        let syn_queue_full = listener.embryonic > listener.backlog;
        let want_cookie = isn.is_none()
            && (self.config.tcp_syncookies == 2 || syn_queue_full)
            && self.config.tcp_syncookies != 0;
        if syn_queue_full && !want_cookie {
            return self.stats.drop("listen_overflow");
        }
        if listener.accept_queue_full() {
            return self.stats.drop("listen_overflow");
        }
        if want_cookie {
            return self.send_cookie(now, lid, tuple, seg);
        }
        if self.live_connections >= self.config.max_connections {
            return self.stats.drop("max_connections");
        }
        let iss = isn.unwrap_or_else(|| self.isn.isn(now, tuple.local, tuple.remote));
        let (child, reply) = self.try_fastopen(lid, tuple, seg);
        let mut conn = self.new_passive(now, lid, tuple, iss, (seg, Some(self.rx_ecn)));
        if child {
            conn.accept_fastopen(seg.payload, reply);
            if let Some(l) = self.listeners[lid as usize].as_mut() {
                l.fastopen_pending += 1;
            }
            self.stats.fastopen_passive += 1;
        } else {
            conn.set_synack_cookie(reply);
        }
        let index = self.insert_passive(conn, lid);
        self.after_activity(now, index);
    }

    /// RFC 7413 4.2 as Linux's tcp_try_fastopen: whether this SYN makes a Fast Open
    /// child (its data accepted now), and the option the SYN-ACK carries: a cookie the
    /// client asked for, or the valid one when its own was not (or was made with the
    /// backup key).
    fn try_fastopen(
        &mut self,
        lid: u32,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) -> (bool, Option<wire::FastOpenCookie>) {
        use crate::tcp::fastopen::{self as fo, CookieCheck, CookieKeys};
        let Some(l) = self.listeners[lid as usize].as_ref() else {
            return (false, None);
        };
        let flags = self.config.tcp_fastopen;
        let opts = l.options;
        let by_default = flags & fo::SERVER_WO_SOCKOPT1 != 0 && flags & fo::SERVER_ENABLE != 0;
        let max_qlen = opts
            .fastopen_queue
            .unwrap_or(if by_default { l.backlog as u32 } else { 0 });
        let option = seg.options.fast_open;
        let syn_data = !seg.payload.is_empty();
        if flags & fo::SERVER_ENABLE == 0 || !(syn_data || option.is_some()) || max_qlen == 0 {
            return (false, None);
        }
        if l.fastopen_pending >= max_qlen {
            self.stats.fastopen_queue_overflow += 1;
            return (false, None);
        }
        if flags & fo::SERVER_COOKIE_NOT_REQD != 0 || opts.fastopen_no_cookie {
            return (true, None);
        }
        let Some(option) = option else {
            return (false, None);
        };
        let keys = opts
            .fastopen_key
            .map_or(self.fastopen_keys, |k| CookieKeys {
                primary: k,
                backup: None,
            });
        let (client, server) = (tuple.remote.ip(), tuple.local.ip());
        let mut fresh = keys.make(client, server);
        fresh.experimental = option.experimental;
        if option.is_request() {
            self.stats.fastopen_cookie_requests += 1;
            return (false, Some(fresh));
        }
        match keys.check(&option, client, server) {
            CookieCheck::Valid => (true, None),
            CookieCheck::ValidBackup => (true, Some(fresh)),
            CookieCheck::Invalid => {
                self.stats.fastopen_passive_fail += 1;
                (false, Some(fresh))
            }
        }
    }

    /// Put a connection a listener took into the table, counted in its SYN queue.
    pub(super) fn insert_passive(&mut self, conn: Connection, lid: u32) -> u32 {
        let index = self.insert(conn, Some(lid), false);
        if self.md5.is_some() {
            self.md5_adopt(index, lid);
        }
        if let Some(l) = self.listeners[lid as usize].as_mut() {
            l.embryonic += 1;
        }
        self.slots[index as usize].embryonic = true;
        self.stats.passive_opens += 1;
        index
    }

    /// A connection in SYN_RECEIVED for a SYN a listener took, with the listener's options;
    /// `syn.1` is the ECN field of the SYN's IP header (None: no ECN).
    pub(super) fn new_passive(
        &self,
        now: Instant,
        lid: u32,
        tuple: FourTuple,
        iss: SeqNum,
        syn: (&TcpRepr<'_>, Option<wire::Ecn>),
    ) -> Connection {
        let options = self.listener_options(lid);
        let mut cfg = self.listener_config(lid, tuple);
        // Linux's tcp_synack_options: with an MD5 key, a SYN-ACK that has SACK-permitted
        // leaves timestamps out, for want of room (not a cookie's, which needs them).
        let sack = syn.0.options.sack_permitted && self.config.tcp_sack;
        if sack && syn.1.is_some() && self.listener_md5_key(lid, tuple.remote.ip()).is_some() {
            cfg.get_or_insert_with(|| self.config.clone())
                .tcp_timestamps = false;
        }
        let mut conn = Connection::accept_syn(
            now,
            (tuple.local, tuple.remote),
            iss,
            self.ts_offset(tuple),
            syn,
            cfg.as_ref().unwrap_or(&self.config),
        );
        if let Some(nodelay) = options.nodelay {
            conn.set_nodelay(nodelay);
        }
        conn.set_user_timeout(options.user_timeout);
        // Buffers the listener's application sized stay as they are (SO_*BUF lock).
        conn.rcv_locked = options.recv_buffer.is_some();
        conn.snd_locked = options.send_buffer.is_some();
        conn
    }

    pub(super) fn listener_options(&self, lid: u32) -> ListenerOptions {
        self.listeners[lid as usize]
            .as_ref()
            .map(|l| l.options)
            .unwrap_or_default()
    }

    /// The configuration a listener's options make for its connections (None: the
    /// stack's own, when the listener sets none).
    pub(super) fn listener_config(&self, lid: u32, tuple: FourTuple) -> Option<Config> {
        let options = self.listener_options(lid);
        if options == ListenerOptions::default() {
            return None;
        }
        let mut cfg = self.config.clone();
        if let Some(recv) = options.recv_buffer {
            // A receive buffer the application sized sets the window scale (as Linux's
            // window_clamp of a locked SO_RCVBUF).
            cfg.recv_buffer = recv;
            cfg.tcp_rmem_max = 0;
        }
        if let Some(send) = options.send_buffer {
            cfg.send_buffer = send;
        }
        if let Some(mss) = options.mss {
            let headers = if tuple.local.is_ipv6() { 60 } else { 40 };
            cfg.mtu = cfg.mtu.min(usize::from(mss) + headers);
        }
        Some(cfg)
    }

    /// The offset of a connection's TSval clock (a keyed hash, so it is the same for a
    /// SYN cookie's SYN-ACK and the connection its ACK creates).
    pub(super) fn ts_offset(&self, tuple: FourTuple) -> u32 {
        self.isn.ts_offset(tuple.local.ip(), tuple.remote.ip())
    }

    /// Cookies are checked only while a listener has recently sent them (Linux's
    /// tcp_synq_no_recent_overflow), or always with `tcp_syncookies = 2`.
    pub(super) fn cookies_valid(&self, now: Instant, lid: u32) -> bool {
        match self.config.tcp_syncookies {
            0 => false,
            2 => true,
            _ => self.listeners[lid as usize]
                .as_ref()
                .and_then(|l| l.last_cookie)
                .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_LIFETIME),
        }
    }

    /// RFC 4987 3.6: answer a SYN with a SYN-ACK whose ISN is a cookie, keeping nothing.
    pub(super) fn send_cookie(
        &mut self,
        now: Instant,
        lid: u32,
        tuple: FourTuple,
        syn: &TcpRepr<'_>,
    ) {
        let Some(l) = self.listeners[lid as usize].as_mut() else {
            return;
        };
        if l.last_cookie.is_none() && self.config.tcp_syncookies == 1 {
            let message = format!(
                "possible SYN flooding on port {}: the SYN queue is full (backlog {}), sending cookies",
                tuple.local.port(),
                l.backlog
            );
            tracing::warn!("{message}");
            self.events.push_back(Event::Warning {
                conn: None,
                message,
            });
        }
        l.last_cookie = Some(now);
        let cfg = self.listener_config(lid, tuple);
        let cfg = cfg.as_ref().unwrap_or(&self.config);
        let ipv6 = tuple.local.is_ipv6();
        let peer_mss = syn.options.mss.unwrap_or(if ipv6 { 1220 } else { 536 });
        let local_mss = crate::tcp::mss_for(cfg.mtu, ipv6);
        let (cookie, _) = self
            .cookies
            .make(now, tuple.local, tuple.remote, syn.seq, peer_mss);
        // Window scale and SACK-permitted survive only inside a timestamp (as on Linux).
        let timestamps = syn.options.timestamps.filter(|_| cfg.tcp_timestamps);
        let window_scale = syn
            .options
            .window_scale
            .filter(|_| timestamps.is_some() && cfg.tcp_window_scaling);
        let sack = timestamps.is_some() && syn.options.sack_permitted && cfg.tcp_sack;
        // ECN too, when the SYN asks for it and it is accepted (Linux's
        // tcp_conn_request clears ecn_ok for a cookie without timestamps).
        let ecn = timestamps.is_some()
            && crate::tcp::EcnState::for_syn(cfg.tcp_ecn, syn, self.rx_ecn).ok();
        let options = TcpOptions {
            mss: Some(local_mss),
            window_scale: window_scale.and(cfg.wscale_offer()),
            sack_permitted: sack,
            timestamps: timestamps.map(|ts| wire::Timestamps {
                tsval: crate::tcp::encode_timestamp(
                    now.as_millis() as u32,
                    window_scale,
                    sack,
                    ecn,
                )
                .wrapping_add(self.ts_offset(tuple)),
                tsecr: ts.tsval,
            }),
            ..TcpOptions::default()
        };
        let out = Outgoing {
            urgent: 0,
            seq: cookie,
            ack: syn.seq + 1,
            // Linux's tcp_ecn_make_synack: ECE when ECN is accepted.
            flags: TcpFlags::SYN | TcpFlags::ACK | crate::tcp::ecn_flags(ecn, true, true),
            window: cfg.recv_buffer.min(65535) as u16,
            options,
            payload: 0..0,
            segment_size: 0,
            ecn: wire::Ecn::NotEct,
        };
        self.stats.syncookies_sent += 1;
        self.queue_ctl(tuple, &out);
    }

    /// An ACK to a listener that may return a cookie: if it does, the connection is
    /// rebuilt from it and the ACK completes its handshake; if not, RST.
    pub(super) fn cookie_ack(
        &mut self,
        now: Instant,
        lid: u32,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) {
        let peer_isn = seg.seq - 1;
        let cookie = seg.ack - 1;
        let Some(mss) = self
            .cookies
            .check(now, tuple.local, tuple.remote, peer_isn, cookie)
        else {
            self.stats.syncookies_failed += 1;
            self.reply_rst(tuple, seg);
            return self.stats.drop("ack_to_listener");
        };
        if self.listeners[lid as usize]
            .as_ref()
            .is_none_or(|l| l.accept_queue_full())
        {
            return self.stats.drop("listen_overflow");
        }
        if self.live_connections >= self.config.max_connections {
            return self.stats.drop("max_connections");
        }
        self.stats.syncookies_recv += 1;
        // The SYN as the cookie remembers it.
        let ts = seg
            .options
            .timestamps
            .filter(|_| self.config.tcp_timestamps);
        let (window_scale, sack_permitted, ecn) = match ts {
            Some(ts) => crate::tcp::decode_timestamp(ts.tsecr.wrapping_sub(self.ts_offset(tuple))),
            None => (None, false, false),
        };
        let syn = TcpRepr {
            seq: peer_isn,
            ack: SeqNum::new(0),
            // An ECN-setup SYN when the cookie says ECN was agreed: the connection takes
            // it if `tcp_ecn` still allows (Linux's cookie_ecn_ok).
            flags: TcpFlags::SYN
                | if ecn {
                    TcpFlags::ECE | TcpFlags::CWR
                } else {
                    TcpFlags::empty()
                },
            window: seg.window,
            payload: &[],
            options: TcpOptions {
                mss: Some(mss),
                window_scale,
                sack_permitted,
                timestamps: ts.map(|t| wire::Timestamps {
                    tsval: t.tsval,
                    tsecr: 0,
                }),
                ..TcpOptions::default()
            },
            ..*seg
        };
        let mut conn = self.new_passive(now, lid, tuple, cookie, (&syn, Some(wire::Ecn::NotEct)));
        conn.synack_sent_as_cookie(now);
        let index = self.insert_passive(conn, lid);
        self.deliver(now, index, tuple, seg);
    }

    pub(super) fn find_listener(&self, local: SocketAddr) -> Option<u32> {
        let unspecified = match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        };
        let wildcard = SocketAddr::new(unspecified, local.port());
        let find = |addr: SocketAddr| {
            self.listeners
                .iter()
                .position(|l| {
                    l.as_ref()
                        .is_some_and(|l| l.local == addr && l.capture.is_none())
                })
                .map(|i| i as u32)
        };
        find(local).or_else(|| find(wildcard))
    }
}
