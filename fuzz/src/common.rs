//! What the stack harnesses share: configurations, the invariants every stack keeps
//! (counters never go down, no timer left due), and the checks of what an application
//! reads and what a stack sends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use synack::stack::StackStats;
use synack::{Config, CongestionControl, ConnectionHandle, Instant, Keepalive, Stack};

use crate::input::Reader;
use crate::pattern::app_bytes;

/// The stack's own IPv4 address (the `stack` target) or the first stack's (`two_stacks`).
pub const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
/// The stack's own IPv6 address, or the first stack's.
pub const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
/// The fuzzed peer's IPv4 address, or the second stack's.
pub const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
/// The fuzzed peer's IPv6 address, or the second stack's.
pub const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

/// True when `SYNACK_FUZZ_TRACE` is set: the harnesses print each operation (to read
/// what a crashing input does: `SYNACK_FUZZ_TRACE=1 fuzz/run --repro TARGET FILE`).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SYNACK_FUZZ_TRACE").is_some())
}

/// `eprintln!` when tracing.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::common::tracing() {
            eprintln!($($arg)*);
        }
    };
}

/// Every connection's state, timer and sequence numbers, for traces.
pub fn trace_state(stack: &mut Stack, now: Instant) {
    for i in stack.all_info(now) {
        eprintln!(
            "    {} -> {} {:?} timer {:?} backoff {} snd_una {:?} snd_nxt {:?} rcv_nxt {:?}",
            i.local, i.remote, i.state, i.next_timer, i.backoff, i.snd_una, i.snd_nxt, i.rcv_nxt
        );
    }
    eprintln!("    poll_timeout {:?}", stack.poll_timeout());
}

/// A segment in one line, for traces.
pub fn show(seg: &synack::wire::TcpRepr<'_>) -> String {
    format!(
        "{} seq {} ack {} win {} len {} {:?}",
        seg.flags,
        seg.seq.get(),
        seg.ack.get(),
        seg.window,
        seg.payload.len(),
        seg.options
    )
}

/// Server ports the harnesses listen on and connect to.
pub const PORTS: [u16; 4] = [80, 443, 8080, 1];

/// Most operations decoded from one input.
pub const MAX_OPS: usize = 3000;

/// Config bits, the first byte of every stack input.
pub mod cfg {
    /// Timestamps off.
    pub const NO_TIMESTAMPS: u8 = 1 << 0;
    /// SACK off.
    pub const NO_SACK: u8 = 1 << 1;
    /// Window scaling off.
    pub const NO_WSCALE: u8 = 1 << 2;
    /// 4 KiB buffers (windows fill, zero windows, probes).
    pub const SMALL_BUFFERS: u8 = 1 << 3;
    /// Delayed ACKs and quick ACKs off.
    pub const NO_DELAYED_ACK: u8 = 1 << 4;
    /// tcp_rfc1337 off (an RST ends TIME_WAIT).
    pub const NO_RFC1337: u8 = 1 << 5;
    /// Small limits: few retries, short TIME_WAIT and FIN_WAIT_2, two TIME_WAIT buckets,
    /// somaxconn 2, four ephemeral ports.
    pub const TINY_LIMITS: u8 = 1 << 6;
    /// NewReno, TCP_NODELAY, keepalive on.
    pub const NEWRENO_NODELAY: u8 = 1 << 7;
}

/// A configuration from two input bytes: `bits` (see [`cfg`]) and the MTU choice.
pub fn config(bits: u8, mtu: u8) -> Config {
    let mut c = Config::deterministic(1);
    c.tcp_timestamps = bits & cfg::NO_TIMESTAMPS == 0;
    c.tcp_sack = bits & cfg::NO_SACK == 0;
    c.tcp_window_scaling = bits & cfg::NO_WSCALE == 0;
    c.tcp_rfc1337 = bits & cfg::NO_RFC1337 == 0;
    c.mtu = [1500, 1280, 9000, 576][usize::from(mtu % 4)];
    // 256 ephemeral ports rather than Linux's 28,232: `connect` lists every candidate
    // of the range before trying one, which would take most of each run's time.
    c.ephemeral_ports = 40000..=40255;
    if bits & cfg::SMALL_BUFFERS != 0 {
        c.recv_buffer = 4096;
        c.send_buffer = 4096;
        c.tcp_rmem_max = 4096;
    }
    if bits & cfg::NO_DELAYED_ACK != 0 {
        c.delayed_ack = Duration::ZERO;
        c.quick_acks = 0;
    }
    if bits & cfg::TINY_LIMITS != 0 {
        c.tcp_syn_retries = 2;
        c.tcp_synack_retries = 2;
        c.tcp_retries2 = 3;
        c.tcp_orphan_retries = 1;
        c.tcp_fin_timeout = Duration::from_secs(5);
        c.time_wait = Duration::from_secs(5);
        c.tcp_max_tw_buckets = 2;
        c.somaxconn = 2;
        c.ephemeral_ports = 40000..=40003;
        c.warn_close_wait = Duration::from_secs(5);
        c.warn_fin_wait_2 = Duration::from_secs(5);
        c.warn_fin_wait_1_retransmits = 1;
    }
    if bits & cfg::NEWRENO_NODELAY != 0 {
        c.congestion_control = CongestionControl::NewReno;
        c.tcp_nodelay = true;
        c.keepalive = Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(2),
            probes: 3,
        });
    }
    c
}

/// How far one "advance the clock" operation moves time.
pub fn advance(r: &mut Reader<'_>, now: Instant, next_deadline: Option<Instant>) -> Instant {
    let k = r.u8();
    let d = match k % 8 {
        0 => Duration::from_millis(u64::from(k >> 3)),
        1 => Duration::from_millis(40),
        2 => Duration::from_millis(200),
        3 => Duration::from_secs(1 + u64::from(k >> 3) % 4),
        4 => Duration::from_micros(u64::from(r.u16())),
        5 => Duration::from_secs(u64::from(k >> 3) * 10),
        6 => Duration::from_secs(61),
        _ => return next_deadline.map_or(now, |t| t.max(now)),
    };
    now + d
}

/// Time encoded for [`advance`]: jump to the next deadline.
pub const ADVANCE_TO_DEADLINE: u8 = 7;
/// Time encoded for [`advance`]: 200 ms.
pub const ADVANCE_200MS: u8 = 2;
/// Time encoded for [`advance`]: 61 s (past TIME_WAIT and FIN_WAIT_2 timeouts).
pub const ADVANCE_61S: u8 = 6;

/// Fire the timers due at `now`: afterwards none may be due (a driver that loops
/// `while poll_timeout() <= now { on_timeout(now) }` must not spin).
pub fn run_timers(stack: &mut Stack, now: Instant) {
    stack.on_timeout(now);
    if let Some(t) = stack.poll_timeout() {
        assert!(
            t > now,
            "a timer is still due after on_timeout({now:?}): {t:?}"
        );
    }
}

/// Checks between operations: every counter of [`StackStats`] only grows (drops by
/// reason included). (A deadline may lie in the past: a socket option can make a timer
/// due at once, e.g. keepalive switched on for a connection idle for longer already.)
pub fn check_stack(stack: &Stack, prev: &mut StackStats) {
    let s = stack.stats();
    let pairs = [
        ("segments_in", prev.segments_in, s.segments_in),
        ("segments_out", prev.segments_out, s.segments_out),
        ("retransmits", prev.retransmits, s.retransmits),
        ("resets_sent", prev.resets_sent, s.resets_sent),
        ("resets_received", prev.resets_received, s.resets_received),
        ("active_opens", prev.active_opens, s.active_opens),
        ("passive_opens", prev.passive_opens, s.passive_opens),
        ("established", prev.established, s.established),
        ("failed", prev.failed, s.failed),
        ("challenge_acks", prev.challenge_acks, s.challenge_acks),
        (
            "time_wait_overflow",
            prev.time_wait_overflow,
            s.time_wait_overflow,
        ),
        ("icmp_in", prev.icmp_in, s.icmp_in),
        (
            "icmp_echo_replies",
            prev.icmp_echo_replies,
            s.icmp_echo_replies,
        ),
        ("icmp_errors", prev.icmp_errors, s.icmp_errors),
    ];
    for (name, before, after) in pairs {
        assert!(
            after >= before,
            "counter {name} went down: {before} -> {after}"
        );
    }
    for (reason, &n) in &prev.drops {
        let m = s.dropped(reason);
        assert!(m >= n, "drop counter {reason} went down: {n} -> {m}");
    }
    *prev = s;
}

/// Read every introspection call once (they must not panic in any state).
pub fn inspect(stack: &mut Stack, now: Instant, conns: &[ConnectionHandle]) {
    let summary = stack.state_summary(now);
    let snapshot = stack.snapshot(now);
    assert_eq!(
        summary.iter().map(|s| s.count).sum::<usize>(),
        snapshot.len(),
        "state_summary counts every socket of snapshot"
    );
    let _ = stack.stats().prometheus(&summary);
    let _ = stack.all_info(now);
    let tuples = stack.connections();
    for (l, r, _) in tuples {
        let _ = stack.state_of(l, r);
    }
    let _ = (stack.connection_count(), stack.time_wait_count());
    let _ = format!("{stack:?}");
    for &h in conns {
        let _ = (stack.state(h), stack.error(h), stack.info(now, h));
        let _ = (stack.recv_queue(h), stack.send_queue(h));
        if let (Ok(l), Ok(r)) = (stack.local_addr(h), stack.peer_addr(h)) {
            let _ = stack.time_wait_entry(l, r);
        }
    }
}

/// Socket options set on a connection by one operation.
pub fn sockopt(stack: &mut Stack, now: Instant, h: ConnectionHandle, r: &mut Reader<'_>) {
    let k = r.u8();
    crate::trace!("  sockopt {} (byte {k:#x}) on {h:?}", k % 7);
    let _ = match k % 7 {
        0 => stack.set_nodelay(now, h, k & 0x80 != 0),
        1 => stack.set_keepalive(
            now,
            h,
            (k & 0x80 != 0).then_some(Keepalive {
                idle: Duration::from_secs(u64::from(k >> 3 & 7) + 1),
                interval: Duration::from_secs(1),
                probes: 2,
            }),
        ),
        2 => stack.set_user_timeout(
            now,
            h,
            (k & 0x80 != 0).then(|| Duration::from_millis(u64::from(r.u16()))),
        ),
        3 => stack.set_mss(now, h, r.u16()),
        4 => stack.set_congestion_control(
            now,
            h,
            if k & 0x80 != 0 {
                CongestionControl::NewReno
            } else {
                CongestionControl::Cubic
            },
        ),
        5 => {
            let size = |b: u8| (b != 0).then(|| usize::from(b) * 512);
            let (s, rcv) = (r.u8(), r.u8());
            stack.set_buffers(now, h, size(s), size(rcv))
        }
        _ => Ok(()),
    };
}

/// One application connection, as the harness tracks it.
#[derive(Clone, Debug)]
pub struct AppConn {
    /// The handle.
    pub h: ConnectionHandle,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our initial sequence number.
    pub iss: Option<u32>,
    /// The peer's, once known.
    pub irs: Option<u32>,
    /// Bytes the application wrote (accepted by `send`): `app_byte(0..written)`.
    pub written: u64,
    /// Bytes the application read.
    pub read: u64,
    /// `recv` returned end-of-stream.
    pub eof: bool,
    /// `shutdown` or `close` called: a FIN follows the written bytes.
    pub fin_queued: bool,
    /// The application still holds the handle (not closed or aborted).
    pub open: bool,
}

impl AppConn {
    /// A new connection: its addresses and ISS from the stack.
    pub fn new(stack: &Stack, now: Instant, h: ConnectionHandle) -> AppConn {
        let info = stack.info(now, h).expect("a new handle is valid");
        AppConn {
            h,
            local: info.local,
            remote: info.remote,
            iss: info.iss,
            irs: info.irs,
            written: 0,
            read: 0,
            eof: false,
            fin_queued: false,
            open: true,
        }
    }

    /// Learn the IRS; once known it never changes.
    pub fn learn_irs(&mut self, stack: &Stack, now: Instant) {
        if let Ok(info) = stack.info(now, self.h) {
            if let (Some(a), Some(b)) = (self.irs, info.irs) {
                assert_eq!(a, b, "IRS of {} -> {} changed", self.local, self.remote);
            }
            self.irs = self.irs.or(info.irs);
            if let (Some(a), Some(b)) = (self.iss, info.iss) {
                assert_eq!(a, b, "ISS of {} -> {} changed", self.local, self.remote);
            }
        }
    }

    /// Send up to `n` bytes of the application pattern.
    pub fn send(&mut self, stack: &mut Stack, now: Instant, n: usize) {
        let data = app_bytes(self.written, n);
        let res = stack.send(now, self.h, data);
        crate::trace!("  send {n} on {self:?}: {res:?}");
        if let Ok(k) = res {
            assert!(k <= n, "send accepted {k} of {n} bytes");
            self.written += k as u64;
        }
    }
}

/// Check that a data segment a stack sent on (`local`, `remote`) at `seq` carries
/// bytes its application wrote at the right offset: some tracked connection of that
/// 4-tuple has `app_byte(seq - iss - 1 ..)` there, all within what it wrote.
pub fn check_sent_data(
    conns: &[AppConn],
    local: SocketAddr,
    remote: SocketAddr,
    seq: u32,
    payload: &[u8],
) {
    if payload.is_empty() {
        return;
    }
    let ok = conns.iter().any(|c| {
        c.local == local
            && c.remote == remote
            && c.iss.is_some_and(|iss| {
                let off = u64::from(seq.wrapping_sub(iss).wrapping_sub(1));
                off + payload.len() as u64 <= c.written && payload == app_bytes(off, payload.len())
            })
    });
    assert!(
        ok,
        "{local} -> {remote} sent {} bytes at seq {seq} that no application wrote there",
        payload.len()
    );
}
