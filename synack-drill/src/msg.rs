//! `sendmsg`/`recvmsg` as scripts write them: the `struct msghdr` expression
//! (`{msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0, msg_control=[...]}`),
//! its control messages (`{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=9000}`,
//! `sock_extended_err` and `scm_timestamping` data), and the calls themselves: what
//! `recvmsg` gives back (data, MSG_ERRQUEUE reports, TCP_CM_INQ) checked against the
//! script's expected `msg_flags` and `msg_control`.

use std::time::Duration;

use synack::Instant;

use crate::args;
use crate::sockets::errqueue as eq;
use crate::sockets::{CallResult, Cmsg, ErrMessage, ExtendedErr, Sockets};

/// recvmsg/sendmsg flag bits (Linux's MSG_*).
pub const MSG_OOB: u32 = 0x1;
pub const MSG_PEEK: u32 = 0x2;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_EOR: u32 = 0x80;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_ERRQUEUE: u32 = 0x2000;
pub const MSG_MORE: u32 = 0x8000;
pub const MSG_ZEROCOPY: u32 = 0x400_0000;
pub const MSG_FASTOPEN: u32 = 0x2000_0000;
pub const MSG_NOSIGNAL: u32 = 0x4000;

const MSG_NAMES: [(&str, u32); 11] = [
    ("MSG_NOSIGNAL", MSG_NOSIGNAL),
    ("MSG_OOB", MSG_OOB),
    ("MSG_PEEK", MSG_PEEK),
    ("MSG_DONTWAIT", MSG_DONTWAIT),
    ("MSG_TRUNC", MSG_TRUNC),
    ("MSG_EOR", MSG_EOR),
    ("MSG_WAITALL", MSG_WAITALL),
    ("MSG_ERRQUEUE", MSG_ERRQUEUE),
    ("MSG_MORE", MSG_MORE),
    ("MSG_ZEROCOPY", MSG_ZEROCOPY),
    ("MSG_FASTOPEN", MSG_FASTOPEN),
];

/// `MSG_A|MSG_B` (or a number) as bits.
pub fn msg_flags(s: &str) -> Result<u32, String> {
    args::flag_bits(&MSG_NAMES, s, "a MSG_ flag")
}

/// Names of the constants that may stand in a control message (values as Linux's).
const CMSG_CONSTANTS: [(&str, i64); 14] = [
    ("SO_EE_ORIGIN_NONE", 0),
    ("SO_EE_ORIGIN_LOCAL", 1),
    ("SO_EE_ORIGIN_ICMP", 2),
    ("SO_EE_ORIGIN_ICMP6", 3),
    (
        "SO_EE_ORIGIN_TIMESTAMPING",
        eq::SO_EE_ORIGIN_TIMESTAMPING as i64,
    ),
    ("SO_EE_ORIGIN_ZEROCOPY", eq::SO_EE_ORIGIN_ZEROCOPY as i64),
    ("SO_EE_ORIGIN_TXTIME", 6),
    (
        "SO_EE_CODE_ZEROCOPY_COPIED",
        eq::SO_EE_CODE_ZEROCOPY_COPIED as i64,
    ),
    ("SO_EE_CODE_TXTIME_INVALID_PARAM", 1),
    ("SO_EE_CODE_TXTIME_MISSED", 2),
    ("SCM_TSTAMP_SND", eq::SCM_TSTAMP_SND as i64),
    ("SCM_TSTAMP_SCHED", eq::SCM_TSTAMP_SCHED as i64),
    ("SCM_TSTAMP_ACK", eq::SCM_TSTAMP_ACK as i64),
    ("ENOMSG", eq::ENOMSG as i64),
];

/// An integer, a constant of a control message, or an errno name.
fn value(s: &str) -> Result<i64, String> {
    let s = s.trim();
    args::integer(s)
        .or_else(|| {
            CMSG_CONSTANTS
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, v)| *v)
        })
        .or_else(|| args::errno_number(s))
        .ok_or_else(|| format!("'{s}' is not a value synack drill knows"))
}

/// The parts of `{a, b, {c, d}, [e]}` (or `[...]`) separated by top-level commas.
fn parts(s: &str) -> Vec<&str> {
    let s = s.trim();
    let inner = s
        .strip_prefix(['{', '['])
        .and_then(|r| r.strip_suffix(['}', ']']))
        .unwrap_or(s);
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// `key=value` fields of a `{...}` expression; a key keeps its `(N)` (`msg_iov(1)`).
fn fields(s: &str) -> Vec<(&str, &str)> {
    parts(s)
        .into_iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// A control message a script expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WantCmsg {
    /// SOL_TCP / TCP_CM_INQ with its value.
    Inq(i64),
    /// SOL_SOCKET / SCM_TIMESTAMPING: the software stamp in script seconds and
    /// nanoseconds (0 and 0: not checked, as in packetdrill).
    Timestamping { sec: i64, nsec: i64 },
    /// IP_RECVERR / IPV6_RECVERR with its `sock_extended_err`.
    RecvErr(ExtendedErr),
}

/// A script's `struct msghdr`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsgHdr {
    /// The iovec lengths.
    pub iov: Vec<usize>,
    /// `msg_flags`: what recvmsg must give back.
    pub flags: u32,
    /// `msg_control`: the control messages recvmsg must give back (None: not written).
    pub control: Option<Vec<WantCmsg>>,
}

impl MsgHdr {
    /// The bytes the iovecs hold.
    pub fn len(&self) -> usize {
        self.iov.iter().sum()
    }

    /// No iovec holds a byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parse a script's `struct msghdr`.
pub fn parse_msghdr(s: &str) -> Result<MsgHdr, String> {
    let mut m = MsgHdr::default();
    for (k, v) in fields(s) {
        if k.starts_with("msg_iov") {
            m.iov = parts(v)
                .into_iter()
                .map(|iov| {
                    let len = parts(iov).last().copied().unwrap_or("");
                    args::integer(len)
                        .map(|n| n.max(0) as usize)
                        .ok_or_else(|| format!("iovec '{iov}': no length"))
                })
                .collect::<Result<_, _>>()?;
        } else if k == "msg_flags" {
            m.flags = msg_flags(v)?;
        } else if k == "msg_control" {
            m.control = Some(
                parts(v)
                    .into_iter()
                    .map(parse_cmsg)
                    .collect::<Result<_, _>>()?,
            );
        }
    }
    Ok(m)
}

fn parse_cmsg(s: &str) -> Result<WantCmsg, String> {
    let f = fields(s);
    let get = |name: &str| f.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let (level, kind) = (
        get("cmsg_level").unwrap_or(""),
        get("cmsg_type").unwrap_or(""),
    );
    let data = get("cmsg_data").unwrap_or("");
    match (level, kind) {
        ("SOL_TCP" | "IPPROTO_TCP", "TCP_CM_INQ") => Ok(WantCmsg::Inq(value(data)?)),
        ("SOL_SOCKET", "SCM_TIMESTAMPING") => {
            let d = fields(data);
            let get = |name: &str| {
                d.iter()
                    .find(|(k, _)| *k == name)
                    .map_or(Ok(0), |(_, v)| value(v))
            };
            Ok(WantCmsg::Timestamping {
                sec: get("scm_sec")?,
                nsec: get("scm_nsec")?,
            })
        }
        (
            "CMSG_LEVEL_IP" | "SOL_IP" | "SOL_IPV6" | "IPPROTO_IP" | "IPPROTO_IPV6",
            "CMSG_TYPE_RECVERR" | "IP_RECVERR" | "IPV6_RECVERR",
        ) => {
            let d = fields(data);
            let get = |name: &str| {
                d.iter()
                    .find(|(k, _)| *k == name)
                    .map_or(Ok(0), |(_, v)| value(v))
            };
            Ok(WantCmsg::RecvErr(ExtendedErr {
                errno: get("ee_errno")? as u32,
                origin: get("ee_origin")? as u8,
                kind: get("ee_type")? as u8,
                code: get("ee_code")? as u8,
                info: get("ee_info")? as u32,
                data: get("ee_data")? as u32,
            }))
        }
        _ => Err(format!(
            "control message {level}/{kind} is not modelled by synack drill"
        )),
    }
}

/// What a recvmsg gave back besides its result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub flags: u32,
    pub cmsgs: Vec<Cmsg>,
}

/// recvmsg(fd, msg, flags): the call, and what it filled into the msghdr.
pub fn recvmsg(
    socks: &mut Sockets,
    now: Instant,
    fd: i32,
    msg: &MsgHdr,
    flags: u32,
) -> (CallResult, Received) {
    if flags & MSG_ERRQUEUE != 0 {
        // ip_recv_error: one report, its control messages, MSG_ERRQUEUE in the flags.
        return match socks.recv_errqueue(fd) {
            Ok(ErrMessage { cmsgs, truncated }) => {
                let trunc = if truncated { MSG_TRUNC } else { 0 };
                (
                    Ok(0),
                    Received {
                        flags: MSG_ERRQUEUE | trunc,
                        cmsgs,
                    },
                )
            }
            Err(e) => (Err(e), Received::default()),
        };
    }
    let r = socks.recv_flags(now, fd, &mut vec![0u8; msg.len()], flags);
    let mut got = Received::default();
    if flags & MSG_OOB != 0 {
        // tcp_recv_urg: the urgent byte comes with MSG_OOB in msg_flags.
        if r.is_ok_and(|n| n > 0) {
            got.flags |= MSG_OOB;
        }
        return (r, got);
    }
    // tcp_recvmsg: the TCP_CM_INQ hint follows a successful read.
    if let (Ok(_), Some(inq)) = (r, socks.inq_hint(fd)) {
        got.cmsgs.push(Cmsg::Inq(inq));
    }
    (r, got)
}

/// A recvmsg that never waits: reading the error queue (EAGAIN is its answer, even on
/// a blocking socket), or with MSG_DONTWAIT.
pub fn never_blocks(name: &str, flags: &str) -> bool {
    name == "recvmsg" && msg_flags(flags).is_ok_and(|f| f & (MSG_ERRQUEUE | MSG_DONTWAIT) != 0)
}

/// The names of the flags of a sendmsg/recvmsg that drill does not play (None: all
/// modelled): sendmsg knows MSG_ZEROCOPY, recvmsg MSG_ERRQUEUE, MSG_DONTWAIT, MSG_OOB
/// and MSG_PEEK.
pub fn unmodelled_flags(name: &str, flags: u32) -> Option<String> {
    let known = if name == "sendmsg" {
        // MSG_NOSIGNAL: no SIGPIPE, which drill never raises; MSG_DONTWAIT on a socket
        // the script made nonblocking.
        MSG_ZEROCOPY | MSG_MORE | MSG_EOR | MSG_FASTOPEN | MSG_NOSIGNAL | MSG_DONTWAIT | MSG_OOB
    } else {
        MSG_ERRQUEUE | MSG_DONTWAIT | MSG_OOB | MSG_PEEK
    };
    let rest = flags & !known;
    (rest != 0).then(|| args::flag_names(&MSG_NAMES, rest))
}

/// Compare what recvmsg gave back with the script's msghdr; `t0` is the script's start,
/// `tolerance` how far a timestamp may be from the script's.
pub fn check_received(
    want: &MsgHdr,
    got: &Received,
    t0: Instant,
    tolerance: Duration,
) -> Result<(), String> {
    if want.flags != got.flags {
        return Err(format!(
            "recvmsg(): msg_flags expected {} got {}",
            args::flag_names(&MSG_NAMES, want.flags),
            args::flag_names(&MSG_NAMES, got.flags)
        ));
    }
    let Some(control) = &want.control else {
        return Ok(());
    };
    if control.len() != got.cmsgs.len() {
        return Err(format!(
            "recvmsg(): expected {} control messages, got {}: {:?}",
            control.len(),
            got.cmsgs.len(),
            got.cmsgs
        ));
    }
    for (i, (w, g)) in control.iter().zip(&got.cmsgs).enumerate() {
        let ok = match (w, g) {
            (WantCmsg::Inq(w), Cmsg::Inq(g)) => *w == i64::from(*g),
            (WantCmsg::RecvErr(w), Cmsg::RecvErr(g)) => w == g,
            (WantCmsg::Timestamping { sec: 0, nsec: 0 }, Cmsg::Timestamping(_)) => true,
            (WantCmsg::Timestamping { sec, nsec }, Cmsg::Timestamping(at)) => {
                let want = Duration::from_secs(*sec as u64) + Duration::from_nanos(*nsec as u64);
                let got = at.saturating_duration_since(t0);
                let diff = got.abs_diff(want);
                diff <= tolerance
            }
            _ => false,
        };
        if !ok {
            let shown = match g {
                Cmsg::Timestamping(at) => format!(
                    "timestamp {:.6}",
                    at.saturating_duration_since(t0).as_secs_f64()
                ),
                other => format!("{other:?}"),
            };
            return Err(format!(
                "recvmsg(): control message {i}: expected {w:?}, got {shown}"
            ));
        }
    }
    Ok(())
}

/// The size of a memory page (x86-64's PAGE_SIZE).
const PAGE: usize = 4096;

/// sendmsg(fd, msg, flags) (and send/sendto with their flags): the bytes of the iovecs
/// of lengths `iov` in one call; MSG_ZEROCOPY asks for a completion when SO_ZEROCOPY is
/// on, its skbs made of the iovecs' pages (each iovec a buffer of its own that begins a
/// page, as a script gives no addresses).
pub fn sendmsg(
    socks: &mut Sockets,
    now: Instant,
    fd: i32,
    iov: &[usize],
    flags: u32,
) -> CallResult {
    let data = vec![b'x'; iov.iter().sum()];
    if flags & MSG_ZEROCOPY != 0 {
        let frags: Vec<usize> = iov
            .iter()
            .flat_map(|&len| (0..len.div_ceil(PAGE)).map(move |i| (len - i * PAGE).min(PAGE)))
            .collect();
        socks.send_zerocopy(now, fd, &data, &frags)
    } else {
        socks.send(now, fd, &data, flags_from_bits(i64::from(flags)))
    }
}

/// The send flags named in a script's flags argument (`0`, `MSG_MORE`,
/// `MSG_EOR|MSG_MORE`, or a number); flags synack does not model are ignored.
pub fn send_flags(arg: &str) -> synack::SendFlags {
    flags_from_bits(msg_flags(arg).map_or(0, i64::from))
}

/// MSG_MORE, MSG_EOR and MSG_OOB in a flags word.
pub fn flags_from_bits(bits: i64) -> synack::SendFlags {
    synack::SendFlags {
        more: bits & i64::from(MSG_MORE) != 0,
        eor: bits & i64::from(MSG_EOR) != 0,
        oob: bits & i64::from(MSG_OOB) != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_msghdr_gives_its_iovecs_flags_and_control_messages() {
        let m = parse_msghdr(
            "{msg_name(...)=..., msg_iov(2)=[{..., 40}, {...,0}], msg_flags=MSG_ERRQUEUE, \
             msg_control=[{cmsg_level=CMSG_LEVEL_IP, cmsg_type=CMSG_TYPE_RECVERR, \
             cmsg_data={ee_errno=ENOMSG, ee_origin=SO_EE_ORIGIN_TIMESTAMPING, ee_type=0, \
             ee_code=0, ee_info=SCM_TSTAMP_ACK, ee_data=1999}}, \
             {cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=9000}]}",
        )
        .unwrap();
        assert_eq!(m.iov, [40, 0]);
        assert_eq!(m.flags, MSG_ERRQUEUE);
        assert_eq!(
            m.control.unwrap(),
            [
                WantCmsg::RecvErr(ExtendedErr {
                    errno: 42,
                    origin: 4,
                    kind: 0,
                    code: 0,
                    info: 2,
                    data: 1999
                }),
                WantCmsg::Inq(9000)
            ]
        );
    }

    #[test]
    fn an_unknown_control_message_is_an_error_not_a_pass() {
        let e = parse_msghdr("{msg_iov(1)=[{...,0}], msg_control=[{cmsg_level=SOL_FOO, cmsg_type=BAR, cmsg_data=1}]}");
        assert!(e.is_err());
    }
}
