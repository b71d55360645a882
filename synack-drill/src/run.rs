//! Running a parsed script against one synack [`Stack`] on a virtual clock: inbound
//! segments are built and fed in at their time, outbound ones are taken from the stack
//! and compared field by field within the time tolerance, socket calls are made on the
//! stack and their results (or errno names) checked.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use synack::wire::{self, SackBlocks, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, ConnectionHandle, Error, Instant, ListenerHandle, Stack};

use crate::args::{self, PollFd};
use crate::script::{Action, Direction, Event, ScriptOption, Segment, Syscall, TimeSpec};

/// How to run scripts.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// `--tolerance_usecs`: how far an outbound segment may be from its script time.
    pub tolerance: Duration,
    /// `--ip_version=ipv6`.
    pub ipv6: bool,
    /// The stack's configuration (the Linux-compatible profile by default).
    pub config: Config,
    /// `-D NAME=value` defines.
    pub defines: Vec<(String, String)>,
    /// `--strict_segments`: compare each segment we send with one script line; by
    /// default consecutive segments sent together are merged into one script packet, as
    /// packetdrill sees a TSO super-segment from Linux.
    pub strict_segments: bool,
    /// `--strict_unexpected`: fail as soon as synack sends a segment no line expects,
    /// and on any sent after the last line. packetdrill itself notices such a segment
    /// only when it is compared with the next outbound line (the default here too); the
    /// corpus under `tests/drill` runs strict.
    pub strict_unexpected: bool,
    /// The script's directory, where `.sh` files its shell lines run are read for sysctls.
    pub base_dir: Option<PathBuf>,
}

impl Default for DrillOptions {
    fn default() -> DrillOptions {
        DrillOptions {
            tolerance: Duration::from_millis(4),
            ipv6: false,
            config: Config::default(),
            defines: Vec::new(),
            strict_segments: false,
            strict_unexpected: false,
            base_dir: None,
        }
    }
}

/// Why a script failed, at which line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// What running a script found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The first failure (the run stops there, as packetdrill does).
    pub failure: Option<Failure>,
    /// Lines not executed (shell commands, code blocks), with why.
    pub notes: Vec<String>,
    /// Each event with what happened, for `--verbose`.
    pub log: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The local and remote ends as the script assumes them (packetdrill's defaults: the
/// stack listens on 8080; addresses are from the benchmarking and documentation ranges).
const LOCAL_PORT: u16 = 8080;
const REMOTE_PORT: u16 = 50_000;

enum Socket {
    Fresh {
        nonblocking: bool,
        port: u16,
    },
    Listener {
        handle: ListenerHandle,
        nonblocking: bool,
    },
    Conn {
        handle: ConnectionHandle,
        nonblocking: bool,
    },
}

/// Socket options set by the script, kept per descriptor: applied to the connection
/// when there is one (accepted connections inherit the listener's, as on Linux).
#[derive(Clone, Debug, Default)]
struct SockOpts {
    /// SO_RCVBUF / SO_SNDBUF as the kernel keeps them (twice the value set).
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
    nodelay: bool,
    maxseg: Option<u16>,
    user_timeout: Option<Duration>,
    /// SO_LINGER on with time 0: close() sends RST.
    linger_zero: bool,
    reuseaddr: bool,
    /// shutdown(SHUT_RD) was called: reads return what is queued, then 0.
    shut_rd: bool,
}

/// A blocking call waiting to return.
struct Pending {
    call: Syscall,
    line: usize,
    /// When it was called.
    started: Instant,
    /// Script time by which it must return.
    end: f64,
}

struct Runner {
    pending: Option<Pending>,
    stack: Stack,
    t0: Instant,
    now: Instant,
    local: IpAddr,
    remote: IpAddr,
    /// Our ISN, learned from our latest SYN (each new connection has its own).
    local_isn: Option<u32>,
    /// The connection's ports, once known: (ours, the peer's).
    ports: (u16, u16),
    /// The TSval of our latest segment (inbound TS ecr values are mapped to it).
    last_tsval: Option<u32>,
    sockets: BTreeMap<i64, Socket>,
    opts: BTreeMap<i64, SockOpts>,
    sent: VecDeque<(Instant, Vec<u8>)>,
    tolerance: Duration,
    strict_segments: bool,
    strict_unexpected: bool,
    /// A value a call filled in (getsockopt, ioctl, poll) that is not what the script
    /// says; reported when the call is checked.
    value_error: Option<String>,
    /// Bytes a blocking write has queued so far, while it waits for room for the rest.
    written: Option<usize>,
    log: Vec<String>,
}

type Check = Result<(), String>;

/// Run a script; stops at the first failure.
pub fn run(text: &str, opts: &DrillOptions) -> Outcome {
    let mut outcome = Outcome::default();
    let events = match crate::script::parse(text, &opts.defines) {
        Ok(e) => e,
        Err(e) => {
            outcome.failure = Some(Failure {
                line: e.line,
                message: format!("syntax: {}", e.message),
            });
            return outcome;
        }
    };
    let mut opts = opts.clone();
    let mut mss = None;
    for ev in &events {
        let Action::Option(name, value) = &ev.action else {
            continue;
        };
        let number = value.parse::<u64>().ok();
        match (name.as_str(), number) {
            ("tolerance_usecs", Some(v)) => opts.tolerance = Duration::from_micros(v),
            ("ip_version", _) => opts.ipv6 = value == "ipv6",
            ("strict_segments", _) => opts.strict_segments = value != "0" && value != "false",
            ("mtu", Some(v)) => opts.config.mtu = v as usize,
            ("mss", Some(v)) => mss = Some(v as usize),
            _ => outcome.notes.push(format!(
                "line {}: option --{name} is not used by this runner",
                ev.line
            )),
        }
    }
    if let Some(mss) = mss {
        // --mss: our MSS; the MTU that gives it.
        opts.config.mtu = mss + if opts.ipv6 { 60 } else { 40 };
    }
    let opts = &opts;
    let (local, remote): (IpAddr, IpAddr) = if opts.ipv6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ([198, 18, 0, 1].into(), [198, 18, 0, 2].into())
    };
    let mut stack = Stack::new(opts.config.clone());
    stack.add_address(local);
    let t0 = Instant::from_secs(1);
    let mut r = Runner {
        pending: None,
        stack,
        t0,
        now: t0,
        local,
        remote,
        local_isn: None,
        ports: (LOCAL_PORT, REMOTE_PORT),
        last_tsval: None,
        sockets: BTreeMap::new(),
        opts: BTreeMap::new(),
        sent: VecDeque::new(),
        tolerance: opts.tolerance,
        strict_segments: opts.strict_segments,
        strict_unexpected: opts.strict_unexpected,
        value_error: None,
        written: None,
        log: Vec::new(),
    };
    let mut prev = 0.0f64;
    for ev in &events {
        let (at, latest) = match ev.time {
            TimeSpec::Absolute(t) => (t, t),
            TimeSpec::Relative(d) => (prev + d, prev + d),
            TimeSpec::Any => (prev, f64::INFINITY),
            TimeSpec::Range {
                start,
                end,
                relative,
            } => {
                let base = if relative { prev } else { 0.0 };
                (base + start, base + end)
            }
        };
        let result = match &ev.action {
            Action::Skipped(what) => {
                outcome
                    .notes
                    .push(format!("line {}: skipped {what}", ev.line));
                Ok(())
            }
            Action::Option(..) => Ok(()),
            Action::Shell(cmd) => {
                r.shell(ev, cmd, opts, &mut outcome.notes);
                Ok(())
            }
            Action::Segment(seg) if seg.direction == Direction::Outbound => {
                r.expect_outbound(seg, at, latest)
            }
            Action::Segment(seg) => r.advance_quiet(at).and_then(|_| r.inject(seg)),
            Action::Syscall(call) => {
                let base = if matches!(
                    ev.time,
                    TimeSpec::Relative(_) | TimeSpec::Range { relative: true, .. }
                ) {
                    prev
                } else {
                    0.0
                };
                let until = call.blocks_until.map(|b| base + b);
                r.advance_quiet(at)
                    .and_then(|_| r.syscall(call, ev.line, until))
            }
        };
        // A blocked call may have returned because of this event.
        let result = result.and_then(|_| match r.poll_pending() {
            Ok(_) => Ok(()),
            Err(f) => Err(f.message),
        });
        if let Err(message) = result {
            outcome.failure = Some(Failure {
                line: ev.line,
                message,
            });
            break;
        }
        prev = at;
    }
    if outcome.failure.is_none() {
        let far = r.now + Duration::from_secs(3600);
        if let Err(message) = r.settle_pending(far) {
            outcome.failure = Some(Failure {
                line: events.last().map_or(0, |e| e.line),
                message,
            });
        }
    }
    if outcome.failure.is_none() && opts.strict_unexpected {
        // Anything sent after the last event, within the tolerance, was not expected.
        let end = r.now + r.tolerance;
        r.run_until(end);
        if let Some((t, p)) = r.sent.pop_front() {
            outcome.failure = Some(Failure {
                line: events.last().map_or(0, |e| e.line),
                message: format!(
                    "unexpected outbound segment at {:.3}: {}",
                    r.secs(t),
                    describe(&p, r.local_isn)
                ),
            });
        }
    }
    outcome.log = r.log;
    outcome
}

/// A packet as a script line would show it.
fn describe(p: &[u8], isn: Option<u32>) -> String {
    match wire::parse_tcp_packet(p) {
        Ok((_, t)) => {
            let seq = t.seq.get().wrapping_sub(isn.unwrap_or(0));
            let mut s = format!(
                "{} {}:{}({})",
                t.flags.packetdrill(),
                seq,
                seq.wrapping_add(t.payload.len() as u32),
                t.payload.len()
            );
            if t.flags.ack() {
                s += &format!(" ack {}", t.ack.get());
            }
            s += &format!(" win {}", t.window);
            s
        }
        Err(e) => format!("unparsable packet ({e})"),
    }
}

fn script_flags(letters: &str) -> TcpFlags {
    let mut f = TcpFlags::empty();
    for c in letters.chars() {
        f |= match c {
            'S' => TcpFlags::SYN,
            'F' => TcpFlags::FIN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            '.' => TcpFlags::ACK,
            'U' => TcpFlags::URG,
            'E' => TcpFlags::ECE,
            'W' => TcpFlags::CWR,
            _ => TcpFlags::empty(),
        };
    }
    f
}

/// The errno name Linux would give for a synack error.
fn errno(e: Error) -> &'static str {
    match e {
        Error::ConnectionRefused => "ECONNREFUSED",
        Error::ConnectionReset => "ECONNRESET",
        Error::ConnectionAborted => "ECONNABORTED",
        Error::TimedOut => "ETIMEDOUT",
        Error::AddressInUse => "EADDRINUSE",
        Error::AddressNotAvailable => "EADDRNOTAVAIL",
        Error::NoEphemeralPorts => "EADDRNOTAVAIL",
        Error::InvalidHandle => "EBADF",
        Error::InvalidState(_) => "EINVAL",
        Error::WouldBlock => "EAGAIN",
        Error::BrokenPipe => "EPIPE",
        Error::NotConnected => "ENOTCONN",
        Error::NetworkUnreachable => "ENETUNREACH",
        Error::HostUnreachable => "EHOSTUNREACH",
    }
}

impl Runner {
    /// A shell line: not run; the TCP sysctls it sets change the stack's configuration.
    fn shell(&mut self, ev: &Event, cmd: &str, opts: &DrillOptions, notes: &mut Vec<String>) {
        let found = crate::sysctl::assignments(cmd, opts.base_dir.as_deref());
        let first = cmd.lines().next().unwrap_or("");
        if found.is_empty() {
            notes.push(format!("line {}: skipped shell `{first}`", ev.line));
        }
        for a in found {
            match crate::sysctl::apply(&a, self.stack.config_mut()) {
                Ok(()) => notes.push(format!("line {}: {}={} applied", ev.line, a.name, a.value)),
                Err(why) => notes.push(format!("line {}: {why}; skipped", ev.line)),
            }
        }
    }

    fn secs(&self, t: Instant) -> f64 {
        (t - self.t0).as_secs_f64()
    }

    fn at(&self, script_secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(script_secs.max(0.0))
    }

    /// Take what the stack sends now.
    fn drain(&mut self) {
        while let Some(p) = self.stack.poll_transmit(self.now) {
            if let Ok((_, t)) = wire::parse_tcp_packet(&p) {
                if t.flags.syn() {
                    self.local_isn = Some(t.seq.get());
                }
                if let Some(ts) = t.options.timestamps {
                    self.last_tsval = Some(ts.tsval);
                }
            }
            self.sent.push_back((self.now, p));
        }
        while self.stack.poll_event().is_some() {}
    }

    /// Move the clock to `until`, firing timers on the way.
    fn run_until(&mut self, until: Instant) {
        self.drain();
        while let Some(t) = self.stack.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.stack.on_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(until);
        self.drain();
    }

    /// Advance to an inbound segment or a call: nothing may have been sent meanwhile
    /// that the script did not expect.
    fn advance_quiet(&mut self, at: f64) -> Check {
        let until = self.at(at);
        self.settle_pending(until)?;
        self.run_until(until);
        if !self.strict_unexpected {
            // As packetdrill: a segment no line expected is only noticed when the next
            // outbound line is compared with it.
            return Ok(());
        }
        match self.sent.pop_front() {
            Some((t, p)) => Err(format!(
                "unexpected outbound segment at {:.3}: {}",
                self.secs(t),
                describe(&p, self.local_isn)
            )),
            None => Ok(()),
        }
    }

    fn expect_outbound(&mut self, seg: &Segment, at: f64, latest: f64) -> Check {
        let earliest = self.at(at).checked_sub(self.tolerance).unwrap_or(self.t0);
        let deadline = if latest.is_finite() {
            self.at(latest) + self.tolerance
        } else {
            self.now + Duration::from_secs(3600)
        };
        while self.sent.is_empty() {
            let next = self.stack.poll_timeout().filter(|t| *t <= deadline);
            match next {
                Some(t) => self.run_until(t),
                None => break,
            }
        }
        if self.sent.is_empty() {
            // Nothing in time: look further ahead to tell "too late" from "never".
            let horizon = deadline + Duration::from_secs(60);
            while self.sent.is_empty() {
                match self.stack.poll_timeout().filter(|t| *t <= horizon) {
                    Some(t) => self.run_until(t),
                    None => break,
                }
            }
        }
        let Some((t, mut p)) = self.sent.pop_front() else {
            return Err(format!(
                "expected outbound {} at {at:.3}, nothing was sent by {:.3}",
                seg.flags,
                self.secs(deadline)
            ));
        };
        if let (false, Some((_, _, len))) = (self.strict_segments, seg.seq) {
            p = self.merge(t, p, len as usize);
        }
        if t < earliest || t > deadline {
            return Err(format!(
                "outbound {} at {:.3}: script expected it at {at:.3} (tolerance {} ms)",
                describe(&p, self.local_isn),
                self.secs(t),
                self.tolerance.as_millis()
            ));
        }
        self.log.push(format!(
            "{:.3} > {}",
            self.secs(t),
            describe(&p, self.local_isn)
        ));
        self.compare(seg, &p)
    }

    /// Segments sent at the same moment that continue `first` are joined into one, up to
    /// `len` bytes of payload, as Linux's TSO hands packetdrill one super-segment.
    fn merge(&mut self, t: Instant, first: Vec<u8>, len: usize) -> Vec<u8> {
        let Ok((_, head)) = wire::parse_tcp_packet(&first) else {
            return first;
        };
        if head.payload.len() >= len || head.flags.syn() || head.flags.rst() {
            return first;
        }
        let mut payload = head.payload.to_vec();
        let mut flags = head.flags;
        while let Some((t2, next)) = self.sent.front() {
            let Ok((_, seg)) = wire::parse_tcp_packet(next) else {
                break;
            };
            let joins = *t2 == t
                && !flags.fin()
                && seg.seq == head.seq + payload.len() as u32
                && seg.ack == head.ack
                && !seg.payload.is_empty()
                && payload.len() + seg.payload.len() <= len
                && seg.flags.bits() & !0x09 == flags.bits() & !0x08;
            if !joins {
                break;
            }
            payload.extend_from_slice(seg.payload);
            // The super-segment carries the PSH and FIN of its last piece.
            flags = TcpFlags::from_bits(flags.bits() | (seg.flags.bits() & 0x09));
            self.sent.pop_front();
        }
        if payload.len() > head.payload.len() {
            // Linux sets PSH on every packet of more than one segment (__tcp_transmit_skb,
            // so that GRO flushes at the receiver).
            flags = TcpFlags::from_bits(flags.bits() | TcpFlags::PSH.bits());
        }
        let merged = TcpRepr {
            flags,
            payload: &payload,
            ..head
        };
        wire::emit_tcp_packet(self.local, self.remote, 64, &merged).unwrap_or(first)
    }

    fn compare(&mut self, want: &Segment, p: &[u8]) -> Check {
        let (_, got) = wire::parse_tcp_packet(p).map_err(|e| format!("unparsable: {e}"))?;
        let shown = describe(p, self.local_isn);
        let flags = script_flags(&want.flags);
        if got.flags != flags {
            return Err(format!(
                "flags: expected {} got {} ({shown})",
                want.flags,
                got.flags.packetdrill()
            ));
        }
        if let Some((start, _end, len)) = want.seq {
            let seq = got.seq.get().wrapping_sub(self.local_isn.unwrap_or(0));
            if seq != start {
                return Err(format!("seq: expected {start} got {seq} ({shown})"));
            }
            if got.payload.len() as u32 != len {
                return Err(format!(
                    "length: expected {len} got {} ({shown})",
                    got.payload.len()
                ));
            }
        }
        if let (Some(ack), true) = (want.ack, got.flags.ack()) {
            if got.ack.get() != ack {
                return Err(format!(
                    "ack: expected {ack} got {} ({shown})",
                    got.ack.get()
                ));
            }
        }
        if let Some(win) = want.win {
            if u32::from(got.window) != win {
                return Err(format!("win: expected {win} got {} ({shown})", got.window));
            }
        }
        if let Some(opts) = &want.options {
            compare_options(opts, &got.options)?;
        }
        if got.src_port != self.ports.0 || got.dst_port != self.ports.1 {
            return Err(format!(
                "ports: expected {}>{} got {}>{}",
                self.ports.0, self.ports.1, got.src_port, got.dst_port
            ));
        }
        Ok(())
    }

    fn inject(&mut self, seg: &Segment) -> Check {
        let flags = script_flags(&seg.flags);
        let (start, _, len) = seg.seq.unwrap_or((0, 0, 0));
        let isn = self.local_isn.unwrap_or(0);
        let mut options = TcpOptions::default();
        for o in seg.options.iter().flatten() {
            match o {
                ScriptOption::Mss(m) => options.mss = Some(*m),
                ScriptOption::WindowScale(w) => options.window_scale = Some(*w),
                ScriptOption::SackOk => options.sack_permitted = true,
                ScriptOption::Timestamp { val, ecr } => {
                    // An echo of our timestamps: map the script's to the latest we sent.
                    let tsecr = if *ecr == 0 {
                        0
                    } else {
                        self.last_tsval.unwrap_or(*ecr)
                    };
                    options.timestamps = Some(Timestamps { tsval: *val, tsecr });
                }
                ScriptOption::Sack(blocks) => {
                    let mut sb = SackBlocks::default();
                    for (a, b) in blocks {
                        sb.push((
                            SeqNum::new(isn.wrapping_add(*a)),
                            SeqNum::new(isn.wrapping_add(*b)),
                        ));
                    }
                    options.sack_blocks = sb;
                }
                ScriptOption::Nop | ScriptOption::Eol => {}
            }
        }
        let payload = vec![0u8; len as usize];
        let repr = TcpRepr {
            src_port: self.ports.1,
            dst_port: self.ports.0,
            seq: SeqNum::new(start),
            ack: SeqNum::new(if flags.ack() {
                isn.wrapping_add(seg.ack.unwrap_or(0))
            } else {
                0
            }),
            flags,
            window: seg.win.unwrap_or(65535).min(65535) as u16,
            urgent: 0,
            options,
            payload: &payload,
        };
        let p = wire::emit_tcp_packet(self.remote, self.local, 64, &repr)
            .map_err(|e| format!("cannot build the segment: {e}"))?;
        self.log
            .push(format!("{:.3} < {} ", self.secs(self.now), seg.flags));
        self.stack.receive(self.now, &p);
        self.drain();
        Ok(())
    }

    fn conn(&self, fd: i64) -> Result<(ConnectionHandle, bool), String> {
        match self.sockets.get(&fd) {
            Some(Socket::Conn {
                handle,
                nonblocking,
            }) => Ok((*handle, *nonblocking)),
            _ => Err(format!("fd {fd} is not a connected socket")),
        }
    }

    /// Make a call; a blocking one (`+A...B`) that cannot finish yet waits in `pending`.
    fn syscall(&mut self, call: &Syscall, line: usize, until: Option<f64>) -> Check {
        let got = self.perform(call);
        let blocked = matches!(got, Err(Error::WouldBlock))
            || matches!(got, Err(Error::InvalidState(synack::TcpState::SynSent)) if !self.nonblocking_call(call));
        match until {
            Some(end) if blocked => {
                self.pending = Some(Pending {
                    call: call.clone(),
                    line,
                    started: self.now,
                    end,
                });
                Ok(())
            }
            Some(end) => self
                .check_return_time(call, end)
                .and_then(|_| self.check(call, got)),
            // A blocking socket would wait here, as the kernel would: the script must say
            // how long (`+A...B`) or make the socket nonblocking.
            None if blocked && !self.nonblocking_call(call) && call.name != "connect" => {
                Err(format!(
                    "{}() would block on a blocking socket (write +A...B, or set O_NONBLOCK)",
                    call.name
                ))
            }
            None => self.check(call, got),
        }
    }

    fn nonblocking_call(&self, call: &Syscall) -> bool {
        let fd: i64 = call.args.first().and_then(|a| a.parse().ok()).unwrap_or(-1);
        matches!(
            self.sockets.get(&fd),
            Some(Socket::Fresh {
                nonblocking: true,
                ..
            }) | Some(Socket::Listener {
                nonblocking: true,
                ..
            }) | Some(Socket::Conn {
                nonblocking: true,
                ..
            })
        )
    }

    /// A blocking call returned now: was that when the script said?
    fn check_return_time(&self, call: &Syscall, end: f64) -> Check {
        let want = self.at(end);
        let early = want.checked_sub(self.tolerance).unwrap_or(self.t0);
        if self.now < early || self.now > want + self.tolerance {
            return Err(format!(
                "{}() returned at {:.3}, the script expected {end:.3}",
                call.name,
                self.secs(self.now)
            ));
        }
        Ok(())
    }

    /// Before moving the clock to `until`: a blocked call must return by its time.
    fn settle_pending(&mut self, until: Instant) -> Check {
        let Some(end) = self
            .pending
            .as_ref()
            .map(|p| self.at(p.end) + self.tolerance)
        else {
            return Ok(());
        };
        if until <= end {
            return Ok(());
        }
        // Step through the stack's own events (and a poll's timeout) up to the deadline.
        while self.pending.is_some() {
            let poll_end = self.pending.as_ref().and_then(|p| {
                let ms: i64 = p.call.args.get(2).and_then(|a| a.parse().ok())?;
                (p.call.name == "poll" && ms >= 0)
                    .then(|| p.started + Duration::from_millis(ms as u64))
            });
            let next = match (self.stack.poll_timeout(), poll_end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next.filter(|t| *t <= end) {
                Some(t) => {
                    self.run_until(t);
                    self.poll_pending().map_err(|f| f.message)?;
                }
                None => break,
            }
        }
        if let Some(p) = &self.pending {
            return Err(format!(
                "{}() (line {}) did not return by {:.3}",
                p.call.name, p.line, p.end
            ));
        }
        Ok(())
    }

    /// Try the blocked call again; Ok(true) when it has returned (and was checked).
    fn poll_pending(&mut self) -> Result<bool, Failure> {
        let Some(p) = self.pending.take() else {
            return Ok(false);
        };
        let mut got = self.retry(&p.call);
        if p.call.name == "poll" && matches!(got, Err(Error::WouldBlock)) {
            // poll's own timeout (milliseconds; negative waits for ever) ends the wait with 0.
            let ms: i64 = p
                .call
                .args
                .get(2)
                .and_then(|a| a.parse().ok())
                .unwrap_or(-1);
            if ms >= 0 && self.now >= p.started + Duration::from_millis(ms as u64) {
                got = Ok(0);
            }
        }
        if matches!(got, Err(Error::WouldBlock)) {
            self.pending = Some(p);
            return Ok(false);
        }
        self.check_return_time(&p.call, p.end)
            .and_then(|_| self.check(&p.call, got))
            .map(|_| true)
            .map_err(|message| Failure {
                line: p.line,
                message,
            })
    }

    /// A blocked call, tried again: connect waits for the handshake, others are redone.
    fn retry(&mut self, call: &Syscall) -> Result<i64, Error> {
        if call.name != "connect" {
            return self.perform(call);
        }
        let fd: i64 = call.args.first().and_then(|a| a.parse().ok()).unwrap_or(-1);
        let (h, _) = self.conn(fd).map_err(|_| Error::InvalidHandle)?;
        match self.stack.state(h)? {
            synack::TcpState::SynSent | synack::TcpState::SynReceived => Err(Error::WouldBlock),
            synack::TcpState::Closed => {
                Err(self.stack.error(h)?.unwrap_or(Error::ConnectionRefused))
            }
            _ => Ok(0),
        }
    }

    fn perform(&mut self, call: &Syscall) -> Result<i64, Error> {
        let fd: i64 = call.args.first().and_then(|a| a.parse().ok()).unwrap_or(-1);
        let now = self.now;
        self.log.push(format!(
            "{:.3} {}({})",
            self.secs(now),
            call.name,
            call.args.join(", ")
        ));
        let got: Result<i64, Error> = match call.name.as_str() {
            "socket" => {
                self.sockets.insert(
                    call.ret,
                    Socket::Fresh {
                        nonblocking: false,
                        port: LOCAL_PORT,
                    },
                );
                Ok(call.ret)
            }
            "bind" => Ok(call.ret.max(0)),
            "setsockopt" => self.setsockopt(call, fd),
            "getsockopt" => self.getsockopt(call, fd),
            "ioctl" => self.ioctl(call, fd),
            "poll" => self.poll(call),
            "fcntl" => {
                let nb = call.args.iter().any(|a| a.contains("O_NONBLOCK"));
                if let Some(s) = self.sockets.get_mut(&fd) {
                    match s {
                        Socket::Fresh { nonblocking, .. }
                        | Socket::Listener { nonblocking, .. }
                        | Socket::Conn { nonblocking, .. } => *nonblocking = nb,
                    }
                }
                Ok(call.ret.max(0))
            }
            "listen" => {
                let backlog = call.args.get(1).and_then(|b| b.parse().ok()).unwrap_or(128);
                let nonblocking = matches!(
                    self.sockets.get(&fd),
                    Some(Socket::Fresh {
                        nonblocking: true,
                        ..
                    })
                );
                let port = match self.sockets.get(&fd) {
                    Some(Socket::Fresh { port, .. }) => *port,
                    _ => LOCAL_PORT,
                };
                self.stack
                    .listen(SocketAddr::new(self.local, port), backlog)
                    .map(|handle| {
                        self.sockets.insert(
                            fd,
                            Socket::Listener {
                                handle,
                                nonblocking,
                            },
                        );
                        self.update_listener(fd);
                        0
                    })
            }
            "accept" => match self.sockets.get(&fd) {
                Some(Socket::Listener { handle, .. }) => {
                    let handle = *handle;
                    self.stack.accept(handle).map(|h| {
                        self.sockets.insert(
                            call.ret,
                            Socket::Conn {
                                handle: h,
                                nonblocking: false,
                            },
                        );
                        // An accepted socket inherits the listener's options.
                        let mut inherited = self.opts.get(&fd).cloned().unwrap_or_default();
                        inherited.shut_rd = false;
                        self.apply_opts(h, &inherited);
                        self.opts.insert(call.ret, inherited);
                        call.ret
                    })
                }
                _ => Err(Error::InvalidHandle),
            },
            "connect" => {
                let nonblocking = matches!(
                    self.sockets.get(&fd),
                    Some(Socket::Fresh {
                        nonblocking: true,
                        ..
                    })
                );
                let remote = SocketAddr::new(self.remote, LOCAL_PORT);
                self.stack.connect(now, remote).and_then(|h| {
                    let local = self.stack.local_addr(h)?;
                    self.ports = (local.port(), LOCAL_PORT);
                    self.sockets.insert(
                        fd,
                        Socket::Conn {
                            handle: h,
                            nonblocking,
                        },
                    );
                    let opts = self.opts.get(&fd).cloned().unwrap_or_default();
                    self.apply_opts(h, &opts);
                    // In progress: EINPROGRESS if nonblocking, else the call blocks.
                    Err(Error::InvalidState(synack::TcpState::SynSent))
                })
            }
            "write" | "send" | "writev" => {
                let len: usize = if call.name == "writev" {
                    call.args.get(1).map_or(0, |a| args::iov_len(a))
                } else {
                    call.args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0)
                };
                match self.conn(fd) {
                    Err(_) => Err(Error::InvalidHandle),
                    Ok((h, true)) => self.stack.send(now, h, &vec![b'x'; len]).map(|n| n as i64),
                    // A blocking write returns when all of it is queued: what fits goes in
                    // now, the rest each time the call is tried again.
                    Ok((h, false)) => {
                        let done = self.written.take().unwrap_or(0);
                        match self.stack.send(now, h, &vec![b'x'; len - done.min(len)]) {
                            Ok(n) if done + n >= len => Ok(len as i64),
                            Ok(n) => {
                                self.written = Some(done + n);
                                Err(Error::WouldBlock)
                            }
                            Err(Error::WouldBlock) => {
                                self.written = Some(done);
                                Err(Error::WouldBlock)
                            }
                            Err(e) if done > 0 => {
                                let _ = e;
                                Ok(done as i64)
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
            "read" | "recv" | "readv" => {
                let len: usize = if call.name == "readv" {
                    call.args.get(1).map_or(0, |a| args::iov_len(a))
                } else {
                    call.args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0)
                };
                let shut_rd = self.opts.get(&fd).is_some_and(|o| o.shut_rd);
                self.conn(fd)
                    .map(|(h, _)| h)
                    .map_err(|_| Error::InvalidHandle)
                    .and_then(|h| {
                        let mut buf = vec![0u8; len];
                        match self.stack.recv(now, h, &mut buf) {
                            // After shutdown(SHUT_RD) a read that finds nothing returns 0.
                            Err(Error::WouldBlock) if shut_rd => Ok(0),
                            r => r.map(|n| n as i64),
                        }
                    })
            }
            "shutdown" => {
                let wr = call
                    .args
                    .iter()
                    .any(|a| a.contains("SHUT_WR") || a.contains("SHUT_RDWR"));
                if call.args.iter().any(|a| a.contains("SHUT_RD")) {
                    self.opts.entry(fd).or_default().shut_rd = true;
                }
                match (self.conn(fd), wr) {
                    (Ok((h, _)), true) => self.stack.shutdown(now, h).map(|_| 0),
                    (Ok(_), false) => Ok(0),
                    (Err(_), _) => Err(Error::NotConnected),
                }
            }
            "close" => match self.sockets.remove(&fd) {
                // SO_LINGER with a zero time: close() aborts with RST.
                Some(Socket::Conn { handle, .. })
                    if self.opts.remove(&fd).is_some_and(|o| o.linger_zero) =>
                {
                    self.stack.abort(now, handle).map(|_| 0)
                }
                Some(Socket::Conn { handle, .. }) => self.stack.close(now, handle).map(|_| 0),
                Some(Socket::Listener { handle, .. }) => {
                    self.stack.close_listener(now, handle).map(|_| 0)
                }
                Some(Socket::Fresh { .. }) => Ok(0),
                None => Err(Error::InvalidHandle),
            },
            other => {
                self.value_error = Some(format!("{other}() is not modelled by synack drill"));
                Ok(call.ret)
            }
        };
        self.drain();
        got
    }

    fn apply_opts(&mut self, h: ConnectionHandle, o: &SockOpts) {
        let now = self.now;
        if o.rcvbuf.is_some() || o.sndbuf.is_some() {
            let _ = self.stack.set_buffers(now, h, o.sndbuf, o.rcvbuf);
        }
        if o.nodelay {
            let _ = self.stack.set_nodelay(now, h, true);
        }
        if let Some(mss) = o.maxseg {
            let _ = self.stack.set_mss(now, h, mss);
        }
        if o.user_timeout.is_some() {
            let _ = self.stack.set_user_timeout(now, h, o.user_timeout);
        }
    }

    /// A listening socket's options go to the connections it accepts.
    fn update_listener(&mut self, fd: i64) {
        let Some(Socket::Listener { handle, .. }) = self.sockets.get(&fd) else {
            return;
        };
        let o = self.opts.get(&fd).cloned().unwrap_or_default();
        let options = synack::ListenerOptions {
            mss: o.maxseg,
            recv_buffer: o.rcvbuf,
            send_buffer: o.sndbuf,
            nodelay: o.nodelay.then_some(true),
            user_timeout: o.user_timeout,
        };
        let _ = self.stack.set_listener_options(*handle, options);
    }

    /// The connection behind a descriptor, if it has one yet.
    fn handle_of(&self, fd: i64) -> Option<ConnectionHandle> {
        self.conn(fd).ok().map(|(h, _)| h)
    }

    fn setsockopt(&mut self, call: &Syscall, fd: i64) -> Result<i64, Error> {
        if !self.sockets.contains_key(&fd) {
            return Err(Error::InvalidHandle);
        }
        let name = call.args.get(2).map_or("", String::as_str);
        let value = call.args.get(3).map_or("", String::as_str);
        let n = args::number(value).unwrap_or(0);
        let mut o = self.opts.get(&fd).cloned().unwrap_or_default();
        match name {
            // Linux doubles the size asked for (the rest is its bookkeeping).
            "SO_RCVBUF" => o.rcvbuf = Some(2 * n.max(0) as usize),
            "SO_SNDBUF" => o.sndbuf = Some(2 * n.max(0) as usize),
            "TCP_NODELAY" => o.nodelay = n != 0,
            "TCP_MAXSEG" => o.maxseg = Some(n.clamp(88, 65535) as u16),
            "TCP_USER_TIMEOUT" if n < 0 => {
                return Err(Error::InvalidState(synack::TcpState::Closed))
            }
            "TCP_USER_TIMEOUT" => o.user_timeout = Some(Duration::from_millis(n as u64)),
            "SO_LINGER" => o.linger_zero = args::linger_zero(value),
            "SO_REUSEADDR" => o.reuseaddr = n != 0,
            other => {
                self.value_error = Some(format!(
                    "setsockopt {other} is not modelled by synack drill"
                ));
            }
        }
        self.opts.insert(fd, o.clone());
        self.update_listener(fd);
        if let Some(h) = self.handle_of(fd) {
            let now = self.now;
            let _ = match name {
                "SO_RCVBUF" | "SO_SNDBUF" => self.stack.set_buffers(now, h, o.sndbuf, o.rcvbuf),
                "TCP_NODELAY" => self.stack.set_nodelay(now, h, o.nodelay),
                "TCP_MAXSEG" => o.maxseg.map_or(Ok(()), |m| self.stack.set_mss(now, h, m)),
                "TCP_USER_TIMEOUT" => self.stack.set_user_timeout(now, h, o.user_timeout),
                _ => Ok(()),
            };
        }
        self.opts.insert(fd, o);
        Ok(0)
    }

    fn getsockopt(&mut self, call: &Syscall, fd: i64) -> Result<i64, Error> {
        if !self.sockets.contains_key(&fd) {
            return Err(Error::InvalidHandle);
        }
        let name = call.args.get(2).map_or("", String::as_str);
        let want = call.args.get(3).map_or("", String::as_str);
        let o = self.opts.get(&fd).cloned().unwrap_or_default();
        let h = self.handle_of(fd);
        let cfg = self.stack.config();
        let got: i64 = match name {
            "SO_RCVBUF" => o.rcvbuf.unwrap_or(cfg.recv_buffer) as i64,
            "SO_SNDBUF" => o.sndbuf.unwrap_or(cfg.send_buffer) as i64,
            "TCP_NODELAY" => i64::from(o.nodelay),
            "SO_REUSEADDR" => i64::from(o.reuseaddr),
            "TCP_USER_TIMEOUT" => o.user_timeout.map_or(0, |t| t.as_millis() as i64),
            "TCP_MAXSEG" => match h.and_then(|h| self.stack.info(self.now, h).ok()) {
                Some(info) if info.state != synack::TcpState::SynSent => info.snd_mss as i64,
                // Not connected yet: what was set, else the default of 536.
                _ => i64::from(o.maxseg.unwrap_or(536)),
            },
            "SO_ERROR" => {
                let e = h.and_then(|h| self.stack.error(h).ok().flatten());
                e.map_or(0, |e| args::errno_number(errno(e)).unwrap_or(-1))
            }
            other => {
                self.value_error = Some(format!(
                    "getsockopt {other} is not modelled by synack drill"
                ));
                return Ok(0);
            }
        };
        let expected = args::bracketed(want).and_then(|v| {
            if name == "SO_ERROR" {
                args::errno_number(v)
            } else {
                v.parse().ok()
            }
        });
        if let Some(w) = expected.filter(|w| *w != got) {
            self.value_error = Some(format!(
                "getsockopt({name}): the script expects [{w}], synack has [{got}]"
            ));
        }
        Ok(0)
    }

    fn ioctl(&mut self, call: &Syscall, fd: i64) -> Result<i64, Error> {
        let request = call.args.get(1).map_or("", String::as_str);
        let want = call.args.get(2).and_then(|a| args::number(a));
        let got = match (request, self.sockets.get(&fd)) {
            (_, None) => return Err(Error::InvalidHandle),
            ("SIOCINQ" | "FIONREAD" | "SIOCOUTQ" | "TIOCOUTQ", Some(Socket::Listener { .. })) => {
                return Err(Error::InvalidState(synack::TcpState::Listen))
            }
            ("SIOCINQ" | "FIONREAD", _) => {
                self.handle_of(fd)
                    .map_or(Ok(0), |h| self.stack.recv_queue(h))? as i64
            }
            ("SIOCOUTQ" | "TIOCOUTQ", _) => {
                self.handle_of(fd)
                    .map_or(Ok(0), |h| self.stack.send_queue(h))? as i64
            }
            (other, _) => {
                self.value_error = Some(format!("ioctl {other} is not modelled by synack drill"));
                return Ok(0);
            }
        };
        if let Some(w) = want.filter(|w| *w != got) {
            self.value_error = Some(format!(
                "ioctl({request}): the script expects [{w}], synack has [{got}]"
            ));
        }
        Ok(0)
    }

    /// What poll would report for one descriptor (Linux's tcp_poll), before masking.
    fn poll_bits(&self, fd: i64) -> u32 {
        use synack::TcpState as S;
        match self.sockets.get(&fd) {
            None => args::POLLNVAL,
            Some(Socket::Fresh { .. }) => args::POLLOUT | args::POLLHUP,
            Some(Socket::Listener { handle, .. }) => {
                if self.stack.accept_queue_len(*handle).unwrap_or(0) > 0 {
                    args::POLLIN | args::POLLRDNORM
                } else {
                    0
                }
            }
            Some(Socket::Conn { handle, .. }) => {
                let h = *handle;
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
                    if queued > 0 {
                        bits |= args::POLLIN | args::POLLRDNORM;
                    }
                    let room = self.stack.send_queue(h).unwrap_or(0)
                        < self
                            .opts
                            .get(&fd)
                            .and_then(|o| o.sndbuf)
                            .unwrap_or(self.stack.config().send_buffer);
                    if snd_shut || room {
                        bits |= args::POLLOUT | args::POLLWRNORM;
                    }
                }
                if error {
                    bits |= args::POLLERR;
                }
                bits
            }
        }
    }

    /// poll(): the count of ready descriptors, each one's revents checked; WouldBlock
    /// when none is ready and the timeout is not zero.
    fn poll(&mut self, call: &Syscall) -> Result<i64, Error> {
        let set: Vec<PollFd> = match call.args.first().map(|a| args::poll_set(a)) {
            Some(Ok(set)) => set,
            Some(Err(e)) => {
                self.value_error = Some(format!("poll(): {e}"));
                return Ok(0);
            }
            None => Vec::new(),
        };
        let timeout_ms: i64 = call.args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
        let mut ready = 0;
        let mut mismatch = None;
        for p in &set {
            // POLLERR, POLLHUP and POLLNVAL are reported whether asked for or not.
            let always = args::POLLERR | args::POLLHUP | args::POLLNVAL;
            let revents = self.poll_bits(p.fd) & (p.events | always);
            if revents != 0 {
                ready += 1;
            }
            if revents != p.revents && mismatch.is_none() {
                mismatch = Some(format!(
                    "poll(): fd {} revents: the script expects {}, synack has {}",
                    p.fd,
                    args::poll_names(p.revents),
                    args::poll_names(revents)
                ));
            }
        }
        if ready == 0 && timeout_ms != 0 {
            return Err(Error::WouldBlock);
        }
        self.value_error = mismatch;
        Ok(ready)
    }

    fn check(&mut self, call: &Syscall, got: Result<i64, Error>) -> Check {
        if let Some(e) = self.value_error.take() {
            return Err(e);
        }
        // A nonblocking connect reports EINPROGRESS (InvalidState(SynSent) above).
        let (ret, name) = match got {
            Ok(v) => (v, None),
            Err(Error::InvalidState(synack::TcpState::SynSent)) if call.name == "connect" => {
                (-1, Some("EINPROGRESS"))
            }
            Err(e) => (-1, Some(errno(e))),
        };
        if ret != call.ret || (call.ret == -1 && call.errno.as_deref() != name) {
            return Err(format!(
                "{}(): expected {}{} got {}{}",
                call.name,
                call.ret,
                call.errno
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default(),
                ret,
                name.map(|e| format!(" {e}")).unwrap_or_default()
            ));
        }
        Ok(())
    }
}

fn compare_options(want: &[ScriptOption], got: &TcpOptions) -> Check {
    let mut w = TcpOptions::default();
    for o in want {
        match o {
            ScriptOption::Mss(m) => w.mss = Some(*m),
            ScriptOption::WindowScale(s) => w.window_scale = Some(*s),
            ScriptOption::SackOk => w.sack_permitted = true,
            ScriptOption::Timestamp { .. } => {
                w.timestamps = got.timestamps.or(Some(Timestamps { tsval: 0, tsecr: 0 }))
            }
            ScriptOption::Sack(blocks) => {
                for (a, b) in blocks {
                    w.sack_blocks.push((SeqNum::new(*a), SeqNum::new(*b)));
                }
            }
            ScriptOption::Nop | ScriptOption::Eol => {}
        }
    }
    let diff =
        |what: &str, a: String, b: String| Err(format!("option {what}: expected {a} got {b}"));
    if w.mss != got.mss {
        return diff("mss", format!("{:?}", w.mss), format!("{:?}", got.mss));
    }
    if w.window_scale != got.window_scale {
        return diff(
            "wscale",
            format!("{:?}", w.window_scale),
            format!("{:?}", got.window_scale),
        );
    }
    if w.sack_permitted != got.sack_permitted {
        return diff(
            "sackOK",
            w.sack_permitted.to_string(),
            got.sack_permitted.to_string(),
        );
    }
    if w.timestamps.is_some() != got.timestamps.is_some() {
        return diff(
            "TS",
            w.timestamps.is_some().to_string(),
            got.timestamps.is_some().to_string(),
        );
    }
    if !w.sack_blocks.is_empty() && w.sack_blocks.as_slice() != got.sack_blocks.as_slice() {
        return diff(
            "sack",
            format!("{:?}", w.sack_blocks.as_slice()),
            format!("{:?}", got.sack_blocks.as_slice()),
        );
    }
    Ok(())
}
