//! A socket's error queue and receive hints, as Linux gives them to a program:
//! SO_ZEROCOPY with `send(MSG_ZEROCOPY)` completions, SO_TIMESTAMPING transmit
//! timestamps (OPT_ID numbering), `recvmsg(MSG_ERRQUEUE)` with the control messages
//! they come in, and TCP_INQ's `TCP_CM_INQ` hint. The stack keeps the reports
//! ([`synack::stack::TxReport`]); this turns them into what `ip_recv_error` gives.

use synack::stack::{SendReport, TimestampKind, TxReport, TxTimestamps};
use synack::{ConnectionHandle, Instant, TcpState};

use super::{CallResult, Errno, Kind, SockOpts, Sockets};

/// SOF_TIMESTAMPING_* bits (linux/net_tstamp.h).
pub mod sof {
    pub const TX_SOFTWARE: u32 = 1 << 1;
    pub const SOFTWARE: u32 = 1 << 4;
    pub const OPT_ID: u32 = 1 << 7;
    pub const TX_SCHED: u32 = 1 << 8;
    pub const TX_ACK: u32 = 1 << 9;
    pub const OPT_TSONLY: u32 = 1 << 11;
    pub const OPT_STATS: u32 = 1 << 12;
    pub const OPT_ID_TCP: u32 = 1 << 16;
    /// Every flag Linux knows (SOF_TIMESTAMPING_MASK, up to OPT_RX_FILTER).
    pub const MASK: u32 = (1 << 18) - 1;

    const NAMES: [(&str, u32); 18] = [
        ("SOF_TIMESTAMPING_TX_HARDWARE", 1),
        ("SOF_TIMESTAMPING_TX_SOFTWARE", TX_SOFTWARE),
        ("SOF_TIMESTAMPING_RX_HARDWARE", 1 << 2),
        ("SOF_TIMESTAMPING_RX_SOFTWARE", 1 << 3),
        ("SOF_TIMESTAMPING_SOFTWARE", SOFTWARE),
        ("SOF_TIMESTAMPING_SYS_HARDWARE", 1 << 5),
        ("SOF_TIMESTAMPING_RAW_HARDWARE", 1 << 6),
        ("SOF_TIMESTAMPING_OPT_ID", OPT_ID),
        ("SOF_TIMESTAMPING_TX_SCHED", TX_SCHED),
        ("SOF_TIMESTAMPING_TX_ACK", TX_ACK),
        ("SOF_TIMESTAMPING_OPT_CMSG", 1 << 10),
        ("SOF_TIMESTAMPING_OPT_TSONLY", OPT_TSONLY),
        ("SOF_TIMESTAMPING_OPT_STATS", OPT_STATS),
        ("SOF_TIMESTAMPING_OPT_PKTINFO", 1 << 13),
        ("SOF_TIMESTAMPING_OPT_TX_SWHW", 1 << 14),
        ("SOF_TIMESTAMPING_BIND_PHC", 1 << 15),
        ("SOF_TIMESTAMPING_OPT_ID_TCP", OPT_ID_TCP),
        ("SOF_TIMESTAMPING_OPT_RX_FILTER", 1 << 17),
    ];

    /// `[SOF_TIMESTAMPING_A | SOF_TIMESTAMPING_B]` (or a number) as bits.
    pub fn bits(arg: &str) -> Option<u32> {
        let inner = crate::args::bracketed(arg).unwrap_or(arg.trim());
        crate::args::flag_bits(&NAMES, inner, "a SOF_TIMESTAMPING flag").ok()
    }
}

/// `sock_extended_err.ee_origin` values.
pub const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;
pub const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `ee_code` of a zerocopy completion whose data was copied.
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// `ee_info` of a timestamp: SCM_TSTAMP_SND, _SCHED, _ACK.
pub const SCM_TSTAMP_SND: u32 = 0;
pub const SCM_TSTAMP_SCHED: u32 = 1;
pub const SCM_TSTAMP_ACK: u32 = 2;
/// ENOMSG, the `ee_errno` of a timestamp.
pub const ENOMSG: u32 = 42;

/// Linux's `struct sock_extended_err`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtendedErr {
    pub errno: u32,
    pub origin: u8,
    pub kind: u8,
    pub code: u8,
    pub info: u32,
    pub data: u32,
}

/// A control message `recvmsg` gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmsg {
    /// SOL_SOCKET / SCM_TIMESTAMPING: the software timestamp (`ts[0]`).
    Timestamping(Instant),
    /// IP_RECVERR (IPV6_RECVERR on IPv6): an error-queue report.
    RecvErr(ExtendedErr),
    /// SOL_TCP / TCP_CM_INQ: bytes left to read (TCP_INQ).
    Inq(i32),
}

/// What `recvmsg(MSG_ERRQUEUE)` gives: its control messages, and whether Linux would
/// have had a packet to copy too (a timestamp without OPT_TSONLY carries the packet
/// stamped; synack copies none, so a read reports MSG_TRUNC and 0 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrMessage {
    pub cmsgs: Vec<Cmsg>,
    pub truncated: bool,
}

impl Sockets {
    /// send(..., MSG_ZEROCOPY): with SO_ZEROCOPY on, the call's bytes get a completion
    /// on the error queue once acknowledged; without it, a plain send (Linux ignores
    /// the flag then). `frags`: the lengths of the page fragments the bytes come from
    /// (see [`synack::Stack::send_reported_paged`]; empty: one per page of the data).
    pub fn send_zerocopy(
        &mut self,
        now: Instant,
        fd: i32,
        data: &[u8],
        frags: &[usize],
    ) -> CallResult {
        let zerocopy = self.sock(fd)?.opts.zerocopy;
        let mut how = SendReport::default();
        how.zerocopy = zerocopy;
        self.write_reported(now, fd, data, frags, how)
    }

    /// recvmsg(fd, ..., MSG_ERRQUEUE): the oldest report, or EAGAIN (never blocks).
    pub fn recv_errqueue(&mut self, fd: i32) -> Result<ErrMessage, Errno> {
        let s = self.sock(fd)?;
        let opts = s.opts.clone();
        let Kind::Conn(h) = s.kind else {
            return Err(Errno::EAGAIN);
        };
        let report = self.stack.recv_error(h)?.ok_or(Errno::EAGAIN)?;
        Ok(match report {
            TxReport::Zerocopy { first, last } => ErrMessage {
                cmsgs: vec![Cmsg::RecvErr(ExtendedErr {
                    origin: SO_EE_ORIGIN_ZEROCOPY,
                    code: SO_EE_CODE_ZEROCOPY_COPIED,
                    info: first,
                    data: last,
                    ..ExtendedErr::default()
                })],
                truncated: false,
            },
            TxReport::Timestamp { kind, offset, at } => {
                let mut cmsgs = Vec::new();
                // __sock_recv_timestamp: the software stamp when reporting is on.
                if opts.timestamping & sof::SOFTWARE != 0 {
                    cmsgs.push(Cmsg::Timestamping(at));
                }
                // __skb_complete_tx_timestamp: OPT_ID numbers bytes from sk_tskey.
                let data = if opts.timestamping & sof::OPT_ID != 0 {
                    offset.wrapping_sub(opts.ts_base) as u32
                } else {
                    0
                };
                cmsgs.push(Cmsg::RecvErr(ExtendedErr {
                    errno: ENOMSG,
                    origin: SO_EE_ORIGIN_TIMESTAMPING,
                    info: match kind {
                        TimestampKind::Scheduled => SCM_TSTAMP_SCHED,
                        TimestampKind::Acked => SCM_TSTAMP_ACK,
                        _ => SCM_TSTAMP_SND,
                    },
                    data,
                    ..ExtendedErr::default()
                }));
                ErrMessage {
                    cmsgs,
                    truncated: opts.timestamping & sof::OPT_TSONLY == 0,
                }
            }
            _ => return Err(Errno::EAGAIN),
        })
    }

    /// TCP_INQ's hint after a read (Linux's tcp_inq_hint): the bytes left, counting
    /// a received FIN as one, so a reader knows to read again. None with TCP_INQ off.
    pub fn inq_hint(&self, fd: i32) -> Option<i32> {
        let s = self.table.get(&fd)?;
        if !s.opts.inq {
            return None;
        }
        let Kind::Conn(h) = s.kind else {
            return Some(0);
        };
        let queued = self.stack.inq(h).unwrap_or(0);
        let fin = matches!(
            self.stack.state(h),
            Ok(TcpState::CloseWait | TcpState::LastAck | TcpState::Closing | TcpState::TimeWait)
        );
        Some((queued + usize::from(fin)).min(i32::MAX as usize) as i32)
    }

    /// Reports wait on the connection's error queue (poll's POLLERR).
    pub(super) fn errqueue_pending(&self, h: ConnectionHandle) -> bool {
        self.stack.error_queue_len(h).unwrap_or(0) > 0
    }

    /// setsockopt of the options this module keeps; None for others.
    pub(super) fn errqueue_setsockopt(
        &mut self,
        now: Instant,
        fd: i32,
        name: &str,
        n: i64,
    ) -> Option<CallResult> {
        Some(match name {
            // sock_setsockopt: a boolean, 0 or 1.
            "SO_ZEROCOPY" if !(0..=1).contains(&n) => Err(Errno::EINVAL),
            "SO_ZEROCOPY" => self.sock_mut(fd).map(|s| {
                s.opts.zerocopy = n == 1;
                0
            }),
            // do_tcp_setsockopt: TCP_INQ is 0 or 1.
            "TCP_INQ" if !(0..=1).contains(&n) => Err(Errno::EINVAL),
            "TCP_INQ" => self.sock_mut(fd).map(|s| {
                s.opts.inq = n == 1;
                0
            }),
            "SO_TIMESTAMPING" | "SO_TIMESTAMPING_OLD" | "SO_TIMESTAMPING_NEW" => {
                self.set_timestamping(now, fd, n as u32)
            }
            _ => return None,
        })
    }

    /// getsockopt of the options this module keeps; None for others.
    pub(super) fn errqueue_getsockopt(&self, fd: i32, name: &str) -> Option<Result<i64, Errno>> {
        let s = match self.sock(fd) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(match name {
            "SO_ZEROCOPY" => i64::from(s.opts.zerocopy),
            "TCP_INQ" => i64::from(s.opts.inq),
            "SO_TIMESTAMPING" | "SO_TIMESTAMPING_OLD" | "SO_TIMESTAMPING_NEW" => {
                i64::from(s.opts.timestamping)
            }
            _ => return None,
        }))
    }

    /// sock_set_timestamping: check the flags, start OPT_ID's numbering at SND.UNA (at
    /// the next byte written, with OPT_ID_TCP) when it is newly on.
    fn set_timestamping(&mut self, now: Instant, fd: i32, flags: u32) -> CallResult {
        let s = self.sock(fd)?;
        let (kind, old) = (s.kind, s.opts.timestamping);
        if flags & !sof::MASK != 0
            || (flags & sof::OPT_ID_TCP != 0 && flags & sof::OPT_ID == 0)
            || (flags & sof::OPT_STATS != 0 && flags & sof::OPT_TSONLY == 0)
        {
            return Err(Errno::EINVAL);
        }
        let mut base = s.opts.ts_base;
        if flags & sof::OPT_ID != 0 && old & sof::OPT_ID == 0 {
            // A TCP socket in CLOSE or LISTEN has no sequence numbers to start from.
            let Kind::Conn(h) = kind else {
                return Err(Errno::EINVAL);
            };
            let info = self.stack.info(now, h).map_err(|_| Errno::EINVAL)?;
            if info.state == TcpState::Closed {
                return Err(Errno::EINVAL);
            }
            base = info.bytes_acked;
            if flags & sof::OPT_ID_TCP != 0 {
                base += self.stack.send_queue(h).unwrap_or(0) as u64;
            }
        }
        let s = self.sock_mut(fd)?;
        s.opts.timestamping = flags;
        s.opts.ts_base = base;
        if let Kind::Conn(h) = kind {
            let _ = self.stack.set_tx_timestamps(h, stamps_of(flags));
        }
        Ok(0)
    }

    /// Give a new connection the timestamps its socket's options ask for.
    pub(super) fn start_reports(&mut self, h: ConnectionHandle, o: &SockOpts) {
        if o.timestamping != 0 {
            let _ = self.stack.set_tx_timestamps(h, stamps_of(o.timestamping));
        }
    }
}

/// The recording flags of SO_TIMESTAMPING as the stack's.
fn stamps_of(flags: u32) -> TxTimestamps {
    let mut stamps = TxTimestamps::default();
    stamps.scheduled = flags & sof::TX_SCHED != 0;
    stamps.sent = flags & sof::TX_SOFTWARE != 0;
    stamps.acked = flags & sof::TX_ACK != 0;
    stamps
}
