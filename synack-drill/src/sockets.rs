//! A BSD-socket layer over one synack [`Stack`], with Linux's semantics: descriptors,
//! options kept per socket (and inherited from a listener by what it accepts),
//! nonblocking mode, poll readiness, and errno names. The script runner and the
//! packetdrill shared library both call the stack through it, so a script means the
//! same thing under `synack drill` and under packetdrill.
//!
//! Calls never block: a call that would block returns `EAGAIN` (a nonblocking connect,
//! `EINPROGRESS`); the caller decides whether to wait and try again.
//!
//! epoll instances are descriptors too ([`crate::epoll`]); the stack's events, handed
//! to [`Sockets::on_event`], are the socket wakeups that list their items.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use synack::{
    ConnectionHandle, Error, Event, Instant, ListenerHandle, ListenerOptions, Stack, TcpState,
};

use crate::args;
use crate::epoll::{self, Epoll};

pub mod errqueue;
pub mod files;
pub use errqueue::{sof, Cmsg, ErrMessage, ExtendedErr};

/// A failed call, by its Linux errno name (`EAGAIN`, `ECONNREFUSED`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub &'static str);

impl Errno {
    pub const EAGAIN: Errno = Errno("EAGAIN");
    pub const EBADF: Errno = Errno("EBADF");
    pub const EINVAL: Errno = Errno("EINVAL");
    pub const EINPROGRESS: Errno = Errno("EINPROGRESS");
    pub const ENOTCONN: Errno = Errno("ENOTCONN");
    pub const ENOPROTOOPT: Errno = Errno("ENOPROTOOPT");
    pub const EOPNOTSUPP: Errno = Errno("EOPNOTSUPP");

    /// The errno number (Linux's).
    pub fn number(self) -> i32 {
        args::errno_number(self.0).unwrap_or(22) as i32
    }
}

impl From<Error> for Errno {
    /// The errno Linux gives for what synack reports.
    fn from(e: Error) -> Errno {
        Errno(match e {
            Error::ConnectionRefused => "ECONNREFUSED",
            Error::ConnectionReset => "ECONNRESET",
            Error::ConnectionAborted => "ECONNABORTED",
            Error::TimedOut => "ETIMEDOUT",
            Error::AddressInUse => "EADDRINUSE",
            Error::AddressNotAvailable | Error::NoEphemeralPorts => "EADDRNOTAVAIL",
            Error::InvalidHandle => "EBADF",
            Error::InvalidState(_) => "EINVAL",
            Error::WouldBlock => "EAGAIN",
            Error::BrokenPipe => "EPIPE",
            Error::NotConnected => "ENOTCONN",
            Error::NetworkUnreachable => "ENETUNREACH",
            Error::HostUnreachable => "EHOSTUNREACH",
            Error::NoBufferSpace => "ENOBUFS",
            Error::MessageTooLong => "EMSGSIZE",
            Error::Unsupported => "EOPNOTSUPP",
            Error::InvalidArgument => "EINVAL",
            // An error newer than this table: EIO, which no script expects, so a script
            // that meets it fails and shows the error instead of passing by chance.
            _ => "EIO",
        })
    }
}

/// A call's result: a count or value, or an errno.
pub type CallResult = Result<i64, Errno>;

/// Linux's SOCK_MIN_SNDBUF: twice TCP_SKB_MIN_TRUESIZE (2048 + the 256 bytes of an
/// aligned `struct sk_buff`), the least SO_SNDBUF sets.
const SOCK_MIN_SNDBUF: usize = 2 * (2048 + 256);

/// Options set on a socket (Linux keeps SO_RCVBUF/SO_SNDBUF doubled, and so do we).
#[derive(Clone, Debug, Default)]
pub struct SockOpts {
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
    pub nodelay: bool,
    /// TCP_CORK as set.
    pub cork: bool,
    pub maxseg: Option<u16>,
    /// TCP_SYNCNT as set (None: the sysctl's tcp_syn_retries).
    pub syncnt: Option<u8>,
    pub user_timeout: Option<Duration>,
    /// SO_LINGER on with a zero time: close() sends RST.
    pub linger_zero: bool,
    pub reuseaddr: bool,
    pub keepalive: bool,
    /// TCP_KEEPIDLE, TCP_KEEPINTVL (seconds) and TCP_KEEPCNT (None: the defaults).
    pub keep_idle: Option<u32>,
    pub keep_intvl: Option<u32>,
    pub keep_cnt: Option<u32>,
    /// TCP_NOTSENT_LOWAT as set (0: the sysctl's).
    pub notsent_lowat: u32,
    /// TCP_FASTOPEN (a listener's Fast Open queue), TCP_FASTOPEN_CONNECT,
    /// TCP_FASTOPEN_KEY and TCP_FASTOPEN_NO_COOKIE.
    pub fastopen_queue: Option<u32>,
    pub fastopen_connect: bool,
    pub fastopen_key: Option<[u8; 16]>,
    pub fastopen_no_cookie: bool,
    /// SO_ZEROCOPY: send(MSG_ZEROCOPY) reports completions.
    pub zerocopy: bool,
    /// TCP_INQ: recvmsg gives a TCP_CM_INQ hint.
    pub inq: bool,
    /// SO_OOBINLINE: urgent data stays in the stream.
    pub oob_inline: bool,
    /// IP_FREEBIND: kept and given back (the stack binds only its own addresses, so
    /// letting a bind to a missing one through changes nothing a script sees).
    pub freebind: bool,
    /// SO_TIMESTAMPING's flags, and the stream offset OPT_ID counts from (sk_tskey).
    pub timestamping: u32,
    pub ts_base: u64,
    /// SO_MARK: kept and given back (it routes by policy; nothing TCP shows).
    pub mark: u32,
    /// IP_TOS: kept and given back (synack puts no DSCP on its packets).
    pub tos: u8,
    /// IP_MTU_DISCOVER, when set: IP_PMTUDISC_DONT (0) ... IP_PMTUDISC_OMIT (5).
    pub pmtudisc: Option<u8>,
    /// TCP_MD5SIG / TCP_MD5SIG_EXT keys, for the socket's listener or connection once
    /// it has one.
    pub md5_keys: Vec<synack::Md5Key>,
}

impl SockOpts {
    /// SO_KEEPALIVE's settings with TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT.
    pub fn keepalive_settings(&self) -> synack::Keepalive {
        let mut k = synack::Keepalive::default();
        if let Some(s) = self.keep_idle {
            k.idle = Duration::from_secs(u64::from(s));
        }
        if let Some(s) = self.keep_intvl {
            k.interval = Duration::from_secs(u64::from(s));
        }
        if let Some(n) = self.keep_cnt {
            k.probes = n;
        }
        k
    }
}

/// A socket option value as set or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptValue {
    Int(i64),
    /// SO_LINGER: (l_onoff, l_linger).
    Linger(i64, i64),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fresh {
        bound: Option<SocketAddr>,
    },
    Listener(ListenerHandle),
    Conn(ConnectionHandle),
    /// An epoll instance (kept in `Sockets::epolls`).
    Epoll,
    /// A pipe end or a file (kept in `Sockets::files`).
    Other,
}

#[derive(Clone, Debug)]
struct Sock {
    kind: Kind,
    nonblocking: bool,
    opts: SockOpts,
    /// Bytes a blocking write has queued so far while it waits for room for the rest.
    written: usize,
    /// The connection's error was reported once (Linux's sk_err is cleared when read):
    /// since then reads see end-of-stream and writes EPIPE.
    error_reported: bool,
}

/// Every socket of one stack, by descriptor.
pub struct Sockets {
    pub stack: Stack,
    table: BTreeMap<i32, Sock>,
    epolls: BTreeMap<i32, Epoll>,
    files: files::Files,
    /// The local address connections are made from (the first the stack has).
    pub local: IpAddr,
}

/// `how` of shutdown().
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

impl Sockets {
    /// Sockets over `stack`, whose first address is the local one; descriptors start at 3.
    pub fn new(stack: Stack, local: IpAddr) -> Sockets {
        Sockets {
            stack,
            table: BTreeMap::new(),
            epolls: BTreeMap::new(),
            files: files::Files::default(),
            local,
        }
    }

    fn sock(&self, fd: i32) -> Result<&Sock, Errno> {
        self.table.get(&fd).ok_or(Errno::EBADF)
    }

    fn sock_mut(&mut self, fd: i32) -> Result<&mut Sock, Errno> {
        self.table.get_mut(&fd).ok_or(Errno::EBADF)
    }

    /// The connection behind a descriptor, if it has one.
    pub fn handle(&self, fd: i32) -> Option<ConnectionHandle> {
        match self.table.get(&fd)?.kind {
            Kind::Conn(h) => Some(h),
            _ => None,
        }
    }

    /// Is `fd` one of these sockets (any kind, connected or not)?
    pub fn owns(&self, fd: i32) -> bool {
        self.table.contains_key(&fd)
    }

    /// Is the descriptor in nonblocking mode?
    pub fn nonblocking(&self, fd: i32) -> bool {
        self.table.get(&fd).is_some_and(|s| s.nonblocking)
    }

    /// socket(): a new descriptor, the lowest free one from 3.
    pub fn socket(&mut self) -> i32 {
        let mut fd = 3;
        while self.table.contains_key(&fd) {
            fd += 1;
        }
        self.table.insert(
            fd,
            Sock {
                kind: Kind::Fresh { bound: None },
                nonblocking: false,
                opts: SockOpts::default(),
                written: 0,
                error_reported: false,
            },
        );
        fd
    }

    /// Give socket `from` the number `to` (a caller that must use descriptors of its own,
    /// like the packetdrill library, which reserves real ones). False if `to` is taken.
    pub fn renumber(&mut self, from: i32, to: i32) -> bool {
        if from == to {
            return true;
        }
        if self.table.contains_key(&to) {
            return false;
        }
        match self.table.remove(&from) {
            Some(s) => {
                self.table.insert(to, s);
                if let Some(ep) = self.epolls.remove(&from) {
                    self.epolls.insert(to, ep);
                }
                if let Some(other) = self.files.by_fd.remove(&from) {
                    self.files.by_fd.insert(to, other);
                }
                true
            }
            None => false,
        }
    }

    /// bind(): remember the address (the port a later listen() uses).
    pub fn bind(&mut self, fd: i32, addr: SocketAddr) -> CallResult {
        let local = self.local;
        let s = self.sock_mut(fd)?;
        match &mut s.kind {
            Kind::Fresh { bound } if bound.is_none() => {
                let ip = if addr.ip().is_unspecified() {
                    local
                } else {
                    addr.ip()
                };
                *bound = Some(SocketAddr::new(ip, addr.port()));
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// fcntl(F_SETFL): O_NONBLOCK on or off.
    pub fn set_nonblocking(&mut self, fd: i32, on: bool) -> CallResult {
        self.sock_mut(fd)?.nonblocking = on;
        Ok(0)
    }

    /// listen().
    pub fn listen(&mut self, fd: i32, backlog: usize, default_port: u16) -> CallResult {
        let s = self.sock(fd)?;
        let addr = match s.kind {
            Kind::Fresh { bound } => {
                bound.unwrap_or_else(|| SocketAddr::new(self.local, default_port))
            }
            Kind::Listener(_) => return Ok(0),
            Kind::Conn(_) | Kind::Epoll | Kind::Other => return Err(Errno::EINVAL),
        };
        let handle = self.stack.listen(addr, backlog)?;
        self.sock_mut(fd)?.kind = Kind::Listener(handle);
        self.update_listener(fd);
        Ok(0)
    }

    /// accept(): the new descriptor and the peer, or EAGAIN.
    pub fn accept(&mut self, now: Instant, fd: i32) -> Result<(i32, SocketAddr), Errno> {
        let s = self.sock(fd)?;
        let Kind::Listener(l) = s.kind else {
            return Err(Errno::EINVAL);
        };
        let opts = s.opts.clone();
        let h = self.stack.accept(l)?;
        let peer = self.stack.peer_addr(h)?;
        let new = self.socket();
        if let Some(s) = self.table.get_mut(&new) {
            s.kind = Kind::Conn(h);
            s.opts = opts.clone();
        }
        // What the SYN-ACK did not settle (keepalive) applies now.
        if opts.keepalive {
            let _ = self
                .stack
                .set_keepalive(now, h, Some(opts.keepalive_settings()));
        }
        if opts.notsent_lowat != 0 {
            let _ = self
                .stack
                .set_notsent_lowat(now, h, Some(opts.notsent_lowat));
        }
        self.start_reports(h, &opts);
        Ok((new, peer))
    }

    /// connect(): starts the handshake. EINPROGRESS on a nonblocking socket, EAGAIN
    /// (wait, then ask [`Sockets::connect_result`]) on a blocking one.
    pub fn connect(&mut self, now: Instant, fd: i32, remote: SocketAddr) -> CallResult {
        let s = self.sock(fd)?;
        match s.kind {
            Kind::Fresh { .. } => {}
            // Linux's __inet_stream_connect: a connect waiting for its first write
            // (defer_connect) is EISCONN; one under way, on a nonblocking socket,
            // EALREADY.
            Kind::Conn(h) if self.stack.fastopen_deferred(h).unwrap_or(false) => {
                return Err(Errno("EISCONN"))
            }
            Kind::Conn(_) if s.nonblocking && self.connect_result(fd) == Err(Errno::EAGAIN) => {
                return Err(Errno("EALREADY"))
            }
            Kind::Conn(_) => return self.connect_result(fd),
            Kind::Listener(_) | Kind::Epoll | Kind::Other => return Err(Errno::EINVAL),
        }
        let (nonblocking, opts) = (s.nonblocking, s.opts.clone());
        let h = if opts.fastopen_connect {
            self.stack
                .connect_fastopen_deferred(now, self.any_local(remote), remote)?
        } else {
            self.stack.connect(now, remote)?
        };
        self.sock_mut(fd)?.kind = Kind::Conn(h);
        // Options set before connect() shape the SYN (MSS, window scale).
        self.apply(now, h, &opts);
        if self.stack.fastopen_deferred(h)? {
            // TCP_FASTOPEN_CONNECT with a cookie: the SYN waits for the first write.
            return Ok(0);
        }
        Err(if nonblocking {
            Errno::EINPROGRESS
        } else {
            Errno::EAGAIN
        })
    }

    /// Any local address of the stack's family for `remote` (port 0: ephemeral).
    fn any_local(&self, remote: SocketAddr) -> SocketAddr {
        let ip: IpAddr = if remote.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        SocketAddr::new(ip, 0)
    }

    /// TCP_FASTOPEN_KEY: the listener's own cookie key (16 bytes, or 32 with a backup
    /// Linux ignores for a listener's first key).
    pub fn set_fastopen_key(&mut self, fd: i32, key: &[u8]) -> CallResult {
        if key.len() != 16 && key.len() != 32 {
            return Err(Errno::EINVAL);
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        self.sock_mut(fd)?.opts.fastopen_key = Some(k);
        self.update_listener(fd);
        Ok(0)
    }

    /// TCP_MD5SIG / TCP_MD5SIG_EXT (Linux's tcp_v4_parse_md5_keys): a key for `peer`
    /// (with `prefix_len`, for its prefix), or with an empty key the removal of the one
    /// there (ENOENT when there is none). Keys longer than 80 bytes are EINVAL.
    pub fn set_md5_key(
        &mut self,
        now: Instant,
        fd: i32,
        peer: IpAddr,
        prefix_len: Option<u8>,
        key: &[u8],
    ) -> CallResult {
        let kind = self.sock(fd)?.kind;
        let full = if peer.is_ipv4() { 32 } else { 128 };
        let plen = prefix_len.unwrap_or(full);
        if plen > full {
            return Err(Errno::EINVAL);
        }
        let o = &mut self.sock_mut(fd)?.opts;
        let had = o.md5_keys.iter().any(|k| k.peer() == (peer, plen));
        o.md5_keys.retain(|k| k.peer() != (peer, plen));
        if key.is_empty() {
            if !had {
                return Err(Errno("ENOENT"));
            }
            let _ = match kind {
                Kind::Listener(l) => self.stack.remove_listener_md5_key(l, peer, Some(plen)),
                Kind::Conn(h) => self.stack.remove_md5_key(now, h, peer, Some(plen)),
                _ => Ok(()),
            };
            return Ok(0);
        }
        let k = synack::Md5Key::new(peer, Some(plen), key).map_err(|_| Errno::EINVAL)?;
        o.md5_keys.push(k.clone());
        match kind {
            Kind::Listener(l) => self.stack.set_listener_md5_key(l, k)?,
            Kind::Conn(h) => self.stack.set_md5_key(now, h, k)?,
            _ => {}
        }
        Ok(0)
    }

    /// sendto()/sendmsg() with MSG_FASTOPEN on a socket not yet connected (Linux's
    /// tcp_sendmsg_fastopen): a Fast Open whose SYN carries what fits. Nonblocking:
    /// the bytes the SYN carries, or EINPROGRESS when it carries none (no cookie yet);
    /// blocking: the connect is waited for and the rest written as write() would.
    pub fn sendto_fastopen(
        &mut self,
        now: Instant,
        fd: i32,
        remote: SocketAddr,
        data: &[u8],
    ) -> CallResult {
        self.sendto_fastopen_zerocopy(now, fd, remote, data, false)
    }

    /// [`Sockets::sendto_fastopen`] with MSG_ZEROCOPY when `zerocopy`: with SO_ZEROCOPY
    /// on, the bytes the SYN carries get a completion on the error queue (Linux copies
    /// SYN data: SO_EE_CODE_ZEROCOPY_COPIED).
    pub fn sendto_fastopen_zerocopy(
        &mut self,
        now: Instant,
        fd: i32,
        remote: SocketAddr,
        data: &[u8],
        zerocopy: bool,
    ) -> CallResult {
        let s = self.sock(fd)?;
        match s.kind {
            Kind::Fresh { .. } => {}
            // MSG_FASTOPEN on a connected socket is an ordinary send; a blocking one
            // still connecting waits for the handshake first.
            Kind::Conn(h) => {
                // A connect under way (not one waiting for its first write): Linux's
                // __inet_stream_connect gives EALREADY.
                let connecting = matches!(self.stack.state(h), Ok(TcpState::SynSent))
                    && !self.stack.fastopen_deferred(h).unwrap_or(false);
                if connecting && s.nonblocking {
                    return Err(Errno("EALREADY"));
                }
                if !s.nonblocking {
                    self.connect_result(fd)?;
                }
                if zerocopy {
                    return self.send_zerocopy(now, fd, data, &[]);
                }
                return self.write(now, fd, data);
            }
            Kind::Listener(_) | Kind::Epoll => return Err(Errno("EPIPE")),
            Kind::Other => return self.write_other(fd, data).unwrap_or(Err(Errno::EBADF)),
        }
        let (nonblocking, opts) = (s.nonblocking, s.opts.clone());
        // Linux's tcp_send_syn_data: the SYN's data room is the MSS bounded by TCP_MAXSEG,
        // less MAX_TCP_OPTION_SPACE (40).
        let room = opts
            .maxseg
            .map_or(data.len(), |m| usize::from(m).saturating_sub(40));
        let syn_data = &data[..data.len().min(room)];
        let local = self.any_local(remote);
        let (h, sent) = if zerocopy && opts.zerocopy {
            // The SYN's bytes as a zerocopy send (numbered, completed once acknowledged).
            let h = self.stack.connect_fastopen_deferred(now, local, remote)?;
            let sent = if self.stack.fastopen_deferred(h)? {
                let mut how = synack::stack::SendReport::default();
                how.zerocopy = true;
                self.stack.send_reported(now, h, syn_data, how)?
            } else {
                0
            };
            (h, sent)
        } else {
            self.stack.connect_fastopen(now, local, remote, syn_data)?
        };
        self.sock_mut(fd)?.kind = Kind::Conn(h);
        self.apply(now, h, &opts);
        if nonblocking {
            return if sent > 0 {
                Ok(sent as i64)
            } else {
                Err(Errno::EINPROGRESS)
            };
        }
        // Blocking: the rest goes as a blocking write once connected (Linux's
        // inet_wait_for_connect counts a writer pending only for data the SYN left).
        if sent < data.len() {
            self.stack.set_write_pending(now, h, true)?;
        }
        self.sock_mut(fd)?.written = sent;
        Err(Errno::EAGAIN)
    }

    /// Where a connect() under way stands: done (0), still EAGAIN, or its error.
    pub fn connect_result(&self, fd: i32) -> CallResult {
        let h = self.handle(fd).ok_or(Errno::EBADF)?;
        match self.stack.state(h)? {
            TcpState::SynSent | TcpState::SynReceived => Err(Errno::EAGAIN),
            TcpState::Closed => Err(self
                .stack
                .error(h)?
                .unwrap_or(Error::ConnectionRefused)
                .into()),
            _ => Ok(0),
        }
    }

    /// write()/send(): on a nonblocking socket what fits (or EAGAIN); on a blocking one
    /// all of it, in as many tries as it takes (EAGAIN until the last piece is in).
    pub fn write(&mut self, now: Instant, fd: i32, data: &[u8]) -> CallResult {
        self.send(now, fd, data, synack::SendFlags::default())
    }

    /// send()/sendto()/sendmsg() with MSG_MORE / MSG_EOR: as [`Sockets::write`].
    pub fn send(
        &mut self,
        now: Instant,
        fd: i32,
        data: &[u8],
        flags: synack::SendFlags,
    ) -> CallResult {
        let mut how = synack::stack::SendReport::default();
        how.flags = flags;
        self.write_reported(now, fd, data, &[], how)
    }

    /// [`Sockets::write`], asking the stack for error-queue reports on the bytes.
    fn write_reported(
        &mut self,
        now: Instant,
        fd: i32,
        data: &[u8],
        frags: &[usize],
        mut how: synack::stack::SendReport,
    ) -> CallResult {
        let s = self.sock(fd)?;
        let (nonblocking, done) = (s.nonblocking, s.written);
        // Linux: writing on a TCP socket that is not connected is EPIPE.
        let h = self.handle(fd).ok_or(Errno("EPIPE"))?;
        if self.failed(h) {
            return Err(self.take_error(fd, h).unwrap_or(Errno("EPIPE")));
        }
        let deferred = self.stack.fastopen_deferred(h).unwrap_or(false);
        if deferred && data.is_empty() {
            // Linux's tcp_sendmsg_fastopen: the SYN leaves with the cookie and no data;
            // the call waits for the connection, or says it is under way.
            self.stack.send_reported_paged(now, h, data, frags, how)?;
            return Err(if nonblocking {
                Errno::EINPROGRESS
            } else {
                Errno::EAGAIN
            });
        }
        if deferred && !nonblocking && done == 0 {
            // TCP_FASTOPEN_CONNECT's first write on a blocking socket: the SYN carries
            // what fits, and the call returns once connected (with the rest written).
            let sent = self.stack.send_reported_paged(now, h, data, frags, how)?;
            if sent < data.len() {
                self.stack.set_write_pending(now, h, true)?;
            }
            self.sock_mut(fd)?.written = sent;
            return Err(Errno::EAGAIN);
        }
        // Linux's tcp_sendmsg_locked waits for the connection (sk_stream_wait_connect,
        // a writer pending) before it takes data; only a deferred Fast Open connect
        // sends with its first write.
        if !deferred && matches!(self.stack.state(h), Ok(TcpState::SynSent)) {
            // (A Fast Open write whose data all went in the SYN waits only for the
            // connection: Linux's tcp_send_syn_data clears fastopen_req->data.)
            if !nonblocking && done == 0 {
                self.stack.set_write_pending(now, h, true)?;
            }
            return Err(Errno::EAGAIN);
        }
        if nonblocking {
            return Ok(self.stack.send_reported_paged(now, h, data, frags, how)? as i64);
        }
        if done > 0 && !self.stack.writable(now, h).unwrap_or(true) {
            // A writer blocked part way sleeps in sk_stream_wait_memory until
            // sk_stream_write_space wakes it: only once the socket is writable again.
            return Err(Errno::EAGAIN);
        }
        let rest = &data[done.min(data.len())..];
        let rest_frags = frags_after(frags, done);
        how.continues = done > 0;
        let sent = match self
            .stack
            .send_reported_paged(now, h, rest, &rest_frags, how)
        {
            Ok(n) => n,
            Err(Error::WouldBlock) => 0,
            // A connection that fails part way reports what it took.
            Err(_) if done > 0 => {
                self.sock_mut(fd)?.written = 0;
                return Ok(done as i64);
            }
            Err(e) => return Err(e.into()),
        };
        let s = self.sock_mut(fd)?;
        if done + sent >= data.len() {
            s.written = 0;
            Ok(data.len() as i64)
        } else {
            s.written = done + sent;
            Err(Errno::EAGAIN)
        }
    }

    /// read()/recv(): bytes, 0 at end of stream (or after shutdown(SHUT_RD)), or EAGAIN.
    pub fn read(&mut self, now: Instant, fd: i32, buf: &mut [u8]) -> CallResult {
        self.sock(fd)?;
        if let Some(r) = self.read_other(fd, buf) {
            return r;
        }
        let h = self.handle(fd).ok_or(Errno::ENOTCONN)?;
        match self.stack.recv(now, h, buf) {
            Err(_) if self.failed(h) => self.take_error(fd, h).map_or(Ok(0), Err),
            r => Ok(r? as i64),
        }
    }

    /// recv() with its flags: MSG_OOB reads the urgent byte (Linux's tcp_recv_urg: EINVAL
    /// when there is none, EAGAIN while it has not arrived, never waiting), MSG_PEEK
    /// leaves what it reads; other flags as [`Sockets::read`].
    pub fn recv_flags(&mut self, now: Instant, fd: i32, buf: &mut [u8], flags: u32) -> CallResult {
        const MSG_OOB: u32 = 1;
        const MSG_PEEK: u32 = 2;
        if flags & (MSG_OOB | MSG_PEEK) == 0 {
            return self.read(now, fd, buf);
        }
        self.sock(fd)?;
        let h = self.handle(fd).ok_or(Errno::ENOTCONN)?;
        if flags & MSG_OOB != 0 {
            return match self.stack.recv_oob(now, h, flags & MSG_PEEK != 0)? {
                Some(byte) => {
                    if let Some(b) = buf.first_mut() {
                        *b = byte;
                    }
                    // (A zero-length buffer gets MSG_TRUNC and 0.)
                    Ok(i64::from(!buf.is_empty()))
                }
                None => Ok(0),
            };
        }
        match self.stack.peek(h, buf) {
            Err(_) if self.failed(h) => self.take_error(fd, h).map_or(Ok(0), Err),
            r => Ok(r? as i64),
        }
    }

    /// Has the connection failed (reset, refused, timed out)?
    fn failed(&self, h: ConnectionHandle) -> bool {
        matches!(self.stack.error(h), Ok(Some(_)))
    }

    /// The connection's error, the first time it is asked for, None from then on (as
    /// Linux's sock_error clears sk_err: later reads see end-of-stream, writes EPIPE).
    fn take_error(&mut self, fd: i32, h: ConnectionHandle) -> Option<Errno> {
        let e = self.stack.error(h).ok().flatten()?;
        let s = self.table.get_mut(&fd)?;
        if s.error_reported {
            return None;
        }
        s.error_reported = true;
        Some(e.into())
    }

    /// shutdown().
    pub fn shutdown(&mut self, now: Instant, fd: i32, how: Shutdown) -> CallResult {
        let h = self.handle(fd).ok_or(Errno::ENOTCONN)?;
        if how != Shutdown::Write {
            // Reads return what is queued, then 0; with both halves shut, new data gets a
            // RST (Linux's RCV_SHUTDOWN).
            self.stack.shutdown_read(now, h)?;
        }
        if how != Shutdown::Read {
            self.stack.shutdown(now, h)?;
        }
        Ok(0)
    }

    /// close(): SO_LINGER with a zero time aborts with RST; unread data does too (the
    /// stack's RFC 2525 rule).
    pub fn close(&mut self, now: Instant, fd: i32) -> CallResult {
        let s = self.table.remove(&fd).ok_or(Errno::EBADF)?;
        // A closed descriptor leaves every epoll instance that watched it.
        for ep in self.epolls.values_mut() {
            ep.remove(fd);
        }
        match s.kind {
            Kind::Conn(h) if s.opts.linger_zero => self.stack.abort(now, h)?,
            Kind::Conn(h) => self.stack.close(now, h)?,
            Kind::Listener(l) => self.stack.close_listener(now, l)?,
            Kind::Epoll => {
                self.epolls.remove(&fd);
            }
            Kind::Other => self.close_other(fd),
            Kind::Fresh { .. } => {}
        }
        Ok(0)
    }

    /// setsockopt() by option name (`SO_RCVBUF`, `TCP_NODELAY`, ...).
    pub fn setsockopt(&mut self, now: Instant, fd: i32, name: &str, value: OptValue) -> CallResult {
        let n = match value {
            OptValue::Int(n) => n,
            OptValue::Linger(on, _) => on,
        };
        if let Some(r) = self.errqueue_setsockopt(now, fd, name, n) {
            return r;
        }
        let client_tfo =
            self.stack.config().tcp_fastopen & synack::tcp::fastopen::CLIENT_ENABLE != 0;
        let fresh = matches!(self.sock(fd)?.kind, Kind::Fresh { .. });
        let o = &mut self.sock_mut(fd)?.opts;
        match name {
            // Linux doubles the size asked for (the rest is its bookkeeping).
            "SO_RCVBUF" => o.rcvbuf = Some(2 * n.max(0) as usize),
            // sock_setsockopt: at least SOCK_MIN_SNDBUF (two minimal skbs' truesize).
            "SO_SNDBUF" => o.sndbuf = Some((2 * n.max(0) as usize).max(SOCK_MIN_SNDBUF)),
            "TCP_NODELAY" => o.nodelay = n != 0,
            "TCP_CORK" => o.cork = n != 0,
            "TCP_MAXSEG" => o.maxseg = Some(n.clamp(88, 65535) as u16),
            // Linux's do_tcp_setsockopt: 1..=MAX_TCP_SYNCNT (127).
            "TCP_SYNCNT" if !(1..=127).contains(&n) => return Err(Errno::EINVAL),
            "TCP_SYNCNT" => o.syncnt = Some(n as u8),
            "TCP_USER_TIMEOUT" if n < 0 => return Err(Errno::EINVAL),
            "TCP_USER_TIMEOUT" => o.user_timeout = Some(Duration::from_millis(n as u64)),
            "SO_LINGER" => o.linger_zero = matches!(value, OptValue::Linger(on, 0) if on != 0),
            "SO_REUSEADDR" => o.reuseaddr = n != 0,
            "SO_KEEPALIVE" => o.keepalive = n != 0,
            "SO_OOBINLINE" => o.oob_inline = n != 0,
            // Linux's do_tcp_setsockopt: 1..=32767 seconds (MAX_TCP_KEEPIDLE), 1..=127 probes.
            "TCP_KEEPIDLE" | "TCP_KEEPINTVL" if !(1..=32767).contains(&n) => {
                return Err(Errno::EINVAL)
            }
            "TCP_KEEPCNT" if !(1..=127).contains(&n) => return Err(Errno::EINVAL),
            "TCP_KEEPIDLE" => o.keep_idle = Some(n as u32),
            "TCP_KEEPINTVL" => o.keep_intvl = Some(n as u32),
            "TCP_KEEPCNT" => o.keep_cnt = Some(n as u32),
            "SO_MARK" => o.mark = n as u32,
            "IP_FREEBIND" => o.freebind = n != 0,
            // Linux's do_ip_setsockopt: IP_PMTUDISC_DONT..=IP_PMTUDISC_OMIT.
            "IP_MTU_DISCOVER" if !(0..=5).contains(&n) => return Err(Errno::EINVAL),
            "IP_MTU_DISCOVER" => o.pmtudisc = Some(n as u8),
            // Linux's __ip_sock_set_tos: a stream socket keeps its ECN bits.
            "IP_TOS" => o.tos = (n as u8 & !0x03) | (o.tos & 0x03),
            // Linux keeps the value as a u32; 0 means the sysctl's.
            "TCP_NOTSENT_LOWAT" => o.notsent_lowat = n as u32,
            "TCP_FASTOPEN" if n < 0 => return Err(Errno::EINVAL),
            "TCP_FASTOPEN" => o.fastopen_queue = Some(n.min(i64::from(u32::MAX)) as u32),
            "TCP_FASTOPEN_NO_COOKIE" if !(0..=1).contains(&n) => return Err(Errno::EINVAL),
            "TCP_FASTOPEN_NO_COOKIE" => o.fastopen_no_cookie = n != 0,
            // Linux's do_tcp_setsockopt: 0 or 1, only before connect(), and only with
            // the client bit of tcp_fastopen.
            "TCP_FASTOPEN_CONNECT" if !(0..=1).contains(&n) => return Err(Errno::EINVAL),
            "TCP_FASTOPEN_CONNECT" if !client_tfo => return Err(Errno::EOPNOTSUPP),
            "TCP_FASTOPEN_CONNECT" if !fresh => return Err(Errno::EINVAL),
            "TCP_FASTOPEN_CONNECT" => o.fastopen_connect = n != 0,
            _ => return Err(Errno::ENOPROTOOPT),
        }
        let opts = o.clone();
        self.update_listener(fd);
        if let Some(h) = self.handle(fd) {
            let _ = match name {
                "SO_RCVBUF" | "SO_SNDBUF" => {
                    self.stack.set_buffers(now, h, opts.sndbuf, opts.rcvbuf)
                }
                "TCP_NODELAY" => self.stack.set_nodelay(now, h, opts.nodelay),
                "SO_OOBINLINE" => self.stack.set_oob_inline(h, opts.oob_inline),
                "TCP_CORK" => self.stack.set_cork(now, h, opts.cork),
                "TCP_MAXSEG" => opts
                    .maxseg
                    .map_or(Ok(()), |m| self.stack.set_mss(now, h, m)),
                "TCP_USER_TIMEOUT" => self.stack.set_user_timeout(now, h, opts.user_timeout),
                "TCP_SYNCNT" => self.stack.set_syn_retries(now, h, opts.syncnt),
                "SO_KEEPALIVE" | "TCP_KEEPIDLE" | "TCP_KEEPINTVL" | "TCP_KEEPCNT"
                    if opts.keepalive =>
                {
                    self.stack
                        .set_keepalive(now, h, Some(opts.keepalive_settings()))
                }
                "SO_KEEPALIVE" => self.stack.set_keepalive(
                    now,
                    h,
                    opts.keepalive.then(|| opts.keepalive_settings()),
                ),
                "IP_MTU_DISCOVER" => {
                    self.stack
                        .set_path_mtu_discovery(now, h, opts.pmtudisc != Some(0))
                }
                "TCP_NOTSENT_LOWAT" => self.stack.set_notsent_lowat(
                    now,
                    h,
                    Some(opts.notsent_lowat).filter(|l| *l != 0),
                ),
                _ => Ok(()),
            };
        }
        Ok(0)
    }

    /// getsockopt() by option name; SO_ERROR gives the connection's error as an errno
    /// number, once.
    pub fn getsockopt(&mut self, now: Instant, fd: i32, name: &str) -> Result<OptValue, Errno> {
        if name == "SO_ERROR" {
            // Reading SO_ERROR reports the error once and clears it, as on Linux.
            let s = self.sock(fd)?;
            let pending = self
                .handle(fd)
                .filter(|_| !s.error_reported)
                .and_then(|h| self.stack.error(h).ok().flatten());
            if pending.is_some() {
                self.sock_mut(fd)?.error_reported = true;
            }
            return Ok(OptValue::Int(
                pending.map_or(0, |e| i64::from(Errno::from(e).number())),
            ));
        }
        if let Some(r) = self.errqueue_getsockopt(fd, name) {
            return r.map(OptValue::Int);
        }
        let s = self.sock(fd)?;
        let o = &s.opts;
        let cfg = self.stack.config();
        let h = self.handle(fd);
        Ok(OptValue::Int(match name {
            "SO_RCVBUF" => o.rcvbuf.unwrap_or(cfg.recv_buffer) as i64,
            "SO_SNDBUF" => o.sndbuf.unwrap_or(cfg.send_buffer) as i64,
            "TCP_NODELAY" => i64::from(o.nodelay),
            "TCP_CORK" => i64::from(o.cork),
            "SO_REUSEADDR" => i64::from(o.reuseaddr),
            "SO_KEEPALIVE" => i64::from(o.keepalive),
            "SO_OOBINLINE" => i64::from(o.oob_inline),
            "TCP_KEEPIDLE" => i64::from(o.keep_idle.unwrap_or(7200)),
            "TCP_KEEPINTVL" => i64::from(o.keep_intvl.unwrap_or(75)),
            "TCP_KEEPCNT" => i64::from(o.keep_cnt.unwrap_or(9)),
            "SO_MARK" => i64::from(o.mark),
            "IP_FREEBIND" => i64::from(o.freebind),
            "IP_TOS" => i64::from(o.tos),
            // Linux's default: IP_PMTUDISC_WANT (ip_no_pmtu_disc = 0).
            "IP_MTU_DISCOVER" => i64::from(o.pmtudisc.unwrap_or(1)),
            "TCP_NOTSENT_LOWAT" => i64::from(o.notsent_lowat),
            "TCP_FASTOPEN" => i64::from(o.fastopen_queue.unwrap_or(0)),
            "TCP_FASTOPEN_CONNECT" => i64::from(o.fastopen_connect),
            "TCP_FASTOPEN_NO_COOKIE" => i64::from(o.fastopen_no_cookie),
            "TCP_USER_TIMEOUT" => o.user_timeout.map_or(0, |t| t.as_millis() as i64),
            // Linux: icsk_syn_retries, else the sysctl's.
            "TCP_SYNCNT" => i64::from(o.syncnt.map_or(cfg.tcp_syn_retries, u32::from)),
            "SO_LINGER" => return Ok(OptValue::Linger(i64::from(o.linger_zero), 0)),
            "TCP_MAXSEG" => match h.and_then(|h| self.stack.info(now, h).ok()) {
                Some(info) if info.state != TcpState::SynSent => info.snd_mss as i64,
                // Not connected yet: what was set, else the default of 536.
                _ => i64::from(o.maxseg.unwrap_or(536)),
            },
            _ => return Err(Errno::ENOPROTOOPT),
        }))
    }

    /// ioctl(SIOCINQ / FIONREAD): bytes ready to read; (SIOCOUTQ / TIOCOUTQ): bytes
    /// not yet acknowledged.
    pub fn ioctl(&self, fd: i32, request: &str) -> CallResult {
        let s = self.sock(fd)?;
        if matches!(s.kind, Kind::Listener(_)) {
            return Err(Errno::EINVAL);
        }
        let h = self.handle(fd);
        match request {
            // tcp_inq: bytes before an out-of-band urgent byte, when one is ahead.
            "SIOCINQ" | "FIONREAD" => Ok(h.map_or(Ok(0), |h| self.stack.inq(h))? as i64),
            "SIOCOUTQ" | "TIOCOUTQ" => Ok(h.map_or(Ok(0), |h| self.stack.send_queue(h))? as i64),
            // sockatmark(): the next byte to read is the urgent mark.
            // (By number too: packetdrill's symbol table has no SIOCATMARK.)
            "SIOCATMARK" | "35077" | "0x8905" => {
                Ok(i64::from(h.map_or(Ok(false), |h| self.stack.at_mark(h))?))
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// What poll() reports for a descriptor (Linux's tcp_poll), before masking by the
    /// events asked for. Like Linux's, a poll that finds a connection not writable asks
    /// for a wakeup when it becomes so (SOCK_NOSPACE: the stack's Writable event).
    pub fn poll_bits(&mut self, now: Instant, fd: i32) -> u32 {
        use TcpState as S;
        let Some(s) = self.table.get(&fd) else {
            return args::POLLNVAL;
        };
        match s.kind {
            Kind::Fresh { .. } => args::POLLOUT | args::POLLHUP,
            Kind::Other => self.poll_other(fd),
            Kind::Epoll => {
                let ready = self.epolls.get(&fd).is_some_and(Epoll::has_ready);
                if ready {
                    args::POLLIN | args::POLLRDNORM
                } else {
                    0
                }
            }
            Kind::Listener(l) => {
                if self.stack.accept_queue_len(l).unwrap_or(0) > 0 {
                    args::POLLIN | args::POLLRDNORM
                } else {
                    0
                }
            }
            Kind::Conn(h) => {
                let state = self.stack.state(h).unwrap_or(S::Closed);
                let error = self.stack.error(h).ok().flatten().is_some();
                let queued = self.stack.recv_queue(h).unwrap_or(0);
                let rcv_shut = matches!(
                    state,
                    S::CloseWait | S::LastAck | S::Closing | S::TimeWait | S::Closed
                );
                let snd_shut = matches!(
                    state,
                    S::FinWait1 | S::FinWait2 | S::Closing | S::LastAck | S::TimeWait | S::Closed
                );
                let mut bits = 0;
                if state == S::Closed || (rcv_shut && snd_shut) {
                    bits |= args::POLLHUP;
                }
                if rcv_shut {
                    bits |= args::POLLIN | args::POLLRDNORM | args::POLLRDHUP;
                }
                if !matches!(state, S::SynSent | S::SynReceived) {
                    // tcp_poll: at the mark, an out-of-band urgent byte does not count as
                    // something to read; one waiting for MSG_OOB is POLLPRI.
                    let oob_at_mark = self.stack.at_mark(h).unwrap_or(false)
                        && !self.stack.oob_inline(h).unwrap_or(false);
                    if queued > usize::from(oob_at_mark) {
                        bits |= args::POLLIN | args::POLLRDNORM;
                    }
                    if self.stack.urgent_pending(h).unwrap_or(false) {
                        bits |= args::POLLPRI;
                    }
                    // The stack's writable(): a third of the send buffer free and
                    // the unsent bytes below half of TCP_NOTSENT_LOWAT (Linux's
                    // __sk_stream_is_writeable(sk, 1)).
                    if snd_shut || self.stack.writable(now, h).unwrap_or(true) {
                        bits |= args::POLLOUT | args::POLLWRNORM;
                    }
                }
                // tcp_poll: a TCP_FASTOPEN_CONNECT socket waiting for its first write is
                // writable (the write sends the SYN with its data).
                if self.stack.fastopen_deferred(h).unwrap_or(false) {
                    bits |= args::POLLOUT | args::POLLWRNORM;
                }
                // tcp_poll: an error, or reports on the error queue.
                if error || self.errqueue_pending(h) {
                    bits |= args::POLLERR;
                }
                bits
            }
        }
    }

    /// The revents poll() gives for `events` (POLLERR, POLLHUP and POLLNVAL always).
    pub fn revents(&mut self, now: Instant, fd: i32, events: u32) -> u32 {
        self.poll_bits(now, fd) & (events | args::POLLERR | args::POLLHUP | args::POLLNVAL)
    }

    /// epoll_create() / epoll_create1(): a new epoll instance's descriptor.
    pub fn epoll_create(&mut self) -> i32 {
        let fd = self.socket();
        if let Some(s) = self.table.get_mut(&fd) {
            s.kind = Kind::Epoll;
        }
        self.epolls.insert(fd, Epoll::default());
        fd
    }

    /// epoll_ctl(): watch `fd` from `epfd` for `events` (EPOLLET, EPOLLONESHOT and
    /// EPOLLEXCLUSIVE included), reporting `data`. A descriptor already ready is listed
    /// at once, as Linux's ep_insert and ep_modify do.
    pub fn epoll_ctl(
        &mut self,
        now: Instant,
        epfd: i32,
        op: epoll::Op,
        fd: i32,
        events: u32,
        data: u64,
    ) -> CallResult {
        if !self.epolls.contains_key(&epfd) || !self.table.contains_key(&fd) {
            return Err(Errno::EBADF);
        }
        if epfd == fd {
            return Err(Errno::EINVAL);
        }
        let mask = match op {
            epoll::Op::Del => 0,
            _ => self.poll_bits(now, fd),
        };
        let ep = self.epolls.get_mut(&epfd).ok_or(Errno::EBADF)?;
        ep.ctl(op, fd, events, data, mask).map_err(Errno)?;
        Ok(0)
    }

    /// epoll_wait(): up to `max` ready items as (events, data); EINVAL for a `max` under 1.
    pub fn epoll_wait(
        &mut self,
        now: Instant,
        epfd: i32,
        max: i64,
    ) -> Result<Vec<(u32, u64)>, Errno> {
        if max <= 0 {
            return Err(Errno::EINVAL);
        }
        let mut ep = self.epolls.remove(&epfd).ok_or(Errno::EINVAL)?;
        let got = ep.harvest(max as usize, |fd| self.poll_bits(now, fd));
        self.epolls.insert(epfd, ep);
        Ok(got)
    }

    /// One of the stack's events, as the socket wakeup Linux would make: data arrived or
    /// a connection is ready to accept (sk_data_ready), room appeared (sk_write_space),
    /// a state change or an error (sk_state_change: every watcher is woken).
    pub fn on_event(&mut self, event: &Event) {
        if self.epolls.is_empty() {
            return;
        }
        let (fd, key) = match *event {
            Event::Readable(h) => (self.fd_of(Kind::Conn(h)), epoll::wake::DATA),
            Event::Writable(h) => (self.fd_of(Kind::Conn(h)), epoll::wake::SPACE),
            Event::ErrorQueue(h) => (self.fd_of(Kind::Conn(h)), epoll::wake::ERROR),
            Event::Incoming(l) => (self.fd_of(Kind::Listener(l)), epoll::wake::DATA),
            Event::Connected(h)
            | Event::StateChanged { conn: h, .. }
            | Event::Error { conn: h, .. } => (self.fd_of(Kind::Conn(h)), epoll::wake::ALL),
            _ => return,
        };
        let Some(fd) = fd else {
            return;
        };
        for ep in self.epolls.values_mut() {
            ep.wake(fd, key);
        }
    }

    /// The descriptor of a connection or listener.
    fn fd_of(&self, kind: Kind) -> Option<i32> {
        self.table.iter().find_map(|(fd, s)| match (s.kind, kind) {
            (Kind::Conn(a), Kind::Conn(b)) if a == b => Some(*fd),
            (Kind::Listener(a), Kind::Listener(b)) if a == b => Some(*fd),
            _ => None,
        })
    }

    /// Options that apply to a connection once it exists.
    fn apply(&mut self, now: Instant, h: ConnectionHandle, o: &SockOpts) {
        // Keys set before connect() sign the SYN.
        for key in &o.md5_keys {
            let _ = self.stack.set_md5_key(now, h, key.clone());
        }
        if o.rcvbuf.is_some() || o.sndbuf.is_some() {
            let _ = self.stack.set_buffers(now, h, o.sndbuf, o.rcvbuf);
        }
        if o.nodelay {
            let _ = self.stack.set_nodelay(now, h, true);
        }
        if o.oob_inline {
            let _ = self.stack.set_oob_inline(h, true);
        }
        if let Some(mss) = o.maxseg {
            let _ = self.stack.set_mss(now, h, mss);
        }
        if o.user_timeout.is_some() {
            let _ = self.stack.set_user_timeout(now, h, o.user_timeout);
        }
        if o.syncnt.is_some() {
            let _ = self.stack.set_syn_retries(now, h, o.syncnt);
        }
        if o.keepalive {
            let _ = self
                .stack
                .set_keepalive(now, h, Some(o.keepalive_settings()));
        }
        if o.notsent_lowat != 0 {
            let _ = self.stack.set_notsent_lowat(now, h, Some(o.notsent_lowat));
        }
        if o.pmtudisc == Some(0) {
            let _ = self.stack.set_path_mtu_discovery(now, h, false);
        }
        self.start_reports(h, o);
    }

    /// A listening socket's options go to the connections it accepts.
    fn update_listener(&mut self, fd: i32) {
        let Some(Sock {
            kind: Kind::Listener(l),
            opts: o,
            ..
        }) = self.table.get(&fd)
        else {
            return;
        };
        let options = {
            let mut options = ListenerOptions::default();
            options.mss = o.maxseg;
            options.recv_buffer = o.rcvbuf;
            options.send_buffer = o.sndbuf;
            options.nodelay = o.nodelay.then_some(true);
            options.user_timeout = o.user_timeout;
            options.fastopen_queue = o.fastopen_queue;
            options.fastopen_key = o.fastopen_key;
            options.fastopen_no_cookie = o.fastopen_no_cookie;
            options
        };
        let _ = self.stack.set_listener_options(*l, options);
        for key in &o.md5_keys {
            let _ = self.stack.set_listener_md5_key(*l, key.clone());
        }
    }
}

/// The page fragments left of `frags` once `done` bytes are taken.
fn frags_after(frags: &[usize], mut done: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for &f in frags {
        let skip = done.min(f);
        done -= skip;
        if f > skip {
            out.push(f - skip);
        }
    }
    out
}
