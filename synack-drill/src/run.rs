//! Running a parsed script against one synack [`Stack`] on a virtual clock: inbound
//! segments are built and fed in at their time, outbound ones are taken from the stack
//! and compared field by field within the time tolerance, socket calls are made on the
//! stack and their results (or errno names) checked.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use synack::wire::{self, SackBlocks, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, Instant, Stack};

use crate::args::{self, PollFd};
use crate::epoll;
use crate::msg;
use crate::script::{
    Action, Direction, EcnSpec, Event, FoCookie, IcmpLine, IcmpQuote, ScriptOption, Segment,
    Syscall, TimeSpec,
};
use crate::sockets::{sof, CallResult, Errno, OptValue, Shutdown, Sockets};

/// How to run scripts.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// `--tolerance_usecs`: how far an outbound segment may be from its script time.
    pub tolerance: Duration,
    /// `--tolerance_percent`: the tolerance is at least this share of the time since the
    /// previous event (packetdrill's default 12.5 %).
    pub tolerance_percent: f64,
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
    /// `--local_ip`/`--remote_ip` (both, of one family): the stack's address and the
    /// script's peer; by default 198.18.0.1 and 198.18.0.2 (2001:db8::1 and ::2 with
    /// `--ip_version=ipv6`). The run is in memory: no packet leaves the process.
    pub local_ip: Option<IpAddr>,
    pub remote_ip: Option<IpAddr>,
    /// `--mss`: as packetdrill's, the segment size of what the script injects: a longer
    /// inbound segment arrives as segments of this size (packetdrill hands the kernel a
    /// GSO packet of that segment size).
    pub inbound_mss: Option<usize>,
}

/// The stack a script drives: deterministic, with Linux's send-buffer accounting (a
/// write takes, and a writer wakes, as on Linux; see [`synack::SendAccounting`]).
fn linux_config() -> Config {
    let mut config = Config::deterministic(1);
    config.send_accounting = synack::SendAccounting::LinuxSkb;
    config
}

impl Default for DrillOptions {
    fn default() -> DrillOptions {
        DrillOptions {
            tolerance: Duration::from_millis(4),
            tolerance_percent: 12.5,
            ipv6: false,
            config: linux_config(),
            defines: Vec::new(),
            strict_segments: false,
            strict_unexpected: false,
            base_dir: None,
            inbound_mss: None,
            local_ip: None,
            remote_ip: None,
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
    socks: Sockets,
    /// Script descriptors to live ones (as packetdrill maps them).
    fds: BTreeMap<i64, i32>,
    t0: Instant,
    now: Instant,
    local: IpAddr,
    remote: IpAddr,
    /// Our ISN per connection (by the peer's port), learned from each SYN we send.
    isns: BTreeMap<u16, u32>,
    /// The peer's ISN per connection (by its port), from the SYN the script injected:
    /// as packetdrill, the peer's later sequence numbers (and our ACKs of them) are
    /// written relative to it.
    remote_isns: BTreeMap<u16, u32>,
    /// The connection's ports, once known: (ours, the peer's).
    ports: (u16, u16),
    /// The script descriptor of the latest socket() and whether it listens: a SYN
    /// the script injects then opens a new connection, from a new port of the peer's
    /// (packetdrill's socket under test; run_packet.c gives each passive child a new
    /// ephemeral remote port).
    under_test: (i64, bool),
    /// The script descriptor of the latest socket() or accept(): `%{ }%` blocks read
    /// its TCP_INFO when it has a connection (packetdrill's socket under test).
    info_fd: i64,
    /// The TSval of our latest segment (inbound TS ecr values are mapped to it).
    last_tsval: Option<u32>,
    /// As packetdrill's ts_val_map: the script's TS val of each outbound segment
    /// compared, to ours (the connection's, since its SYN).
    ts_vals: BTreeMap<u32, u32>,
    sent: VecDeque<(Instant, Vec<u8>)>,
    tolerance: Duration,
    strict_segments: bool,
    strict_unexpected: bool,
    inbound_mss: Option<usize>,
    /// A value a call filled in (getsockopt, ioctl, poll) that is not what the script
    /// says; reported when the call is checked.
    value_error: Option<String>,
    log: Vec<String>,
    /// Files the script's shell lines make (`dd if=/dev/zero of=PATH ...`), by path:
    /// drill runs no shell line, so open() finds these before real files.
    made_files: BTreeMap<String, Vec<u8>>,
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
            ("tolerance_percent", _) if value.parse::<f64>().is_ok() => {
                opts.tolerance_percent = value.parse().unwrap_or(12.5)
            }
            ("ip_version", _) => opts.ipv6 = value == "ipv6",
            ("strict_segments", _) => opts.strict_segments = value != "0" && value != "false",
            ("mtu", Some(v)) => opts.config.mtu = v as usize,
            // synack's own: the library's default accounting instead of Linux's.
            ("send_accounting", _) if value == "bytes" => {
                opts.config.send_accounting = synack::SendAccounting::Bytes
            }
            ("mss", Some(v)) => mss = Some(v as usize),
            ("local_ip", _) if value.parse::<IpAddr>().is_ok() => {
                opts.local_ip = value.parse().ok()
            }
            ("remote_ip", _) if value.parse::<IpAddr>().is_ok() => {
                opts.remote_ip = value.parse().ok()
            }
            _ => outcome.notes.push(format!(
                "line {}: option --{name} is not used by this runner",
                ev.line
            )),
        }
    }
    if mss.is_some() {
        opts.inbound_mss = mss;
    }
    let opts = &opts;
    let (local, remote): (IpAddr, IpAddr) = match (opts.local_ip, opts.remote_ip) {
        // A script that names its addresses (cookies and ICMP quotes depend on them)
        // gets them: nothing leaves this process.
        (Some(l), Some(r)) if l.is_ipv4() == r.is_ipv4() => (l, r),
        _ if opts.ipv6 => (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ),
        _ => ([198, 18, 0, 1].into(), [198, 18, 0, 2].into()),
    };
    let mut stack = Stack::new(opts.config.clone());
    stack.add_address(local);
    let t0 = Instant::from_secs(1);
    let mut r = Runner {
        pending: None,
        socks: Sockets::new(stack, local),
        fds: BTreeMap::new(),
        t0,
        now: t0,
        local,
        remote,
        isns: BTreeMap::new(),
        remote_isns: BTreeMap::new(),
        ports: (LOCAL_PORT, REMOTE_PORT),
        under_test: (-1, false),
        info_fd: -1,
        last_tsval: None,
        ts_vals: BTreeMap::new(),
        sent: VecDeque::new(),
        tolerance: opts.tolerance,
        strict_segments: opts.strict_segments,
        strict_unexpected: opts.strict_unexpected,
        inbound_mss: opts.inbound_mss,
        value_error: None,
        log: Vec::new(),
        made_files: BTreeMap::new(),
    };
    // The previous event's script time, and whether it was an inbound segment.
    let (mut prev, mut prev_inbound) = (0.0f64, false);
    // Code blocks met: line, the TCP_INFO at their time, code.
    let mut blocks: Vec<(usize, Option<String>, String)> = Vec::new();
    for ev in &events {
        let inbound = match &ev.action {
            Action::Segment(s) => s.direction == Direction::Inbound,
            Action::Icmp(i) => i.direction == Direction::Inbound,
            _ => false,
        };
        // As packetdrill: a relative time counts from when the previous event actually
        // happened (an outbound segment a little late moves what follows), except from one
        // inbound segment to the next, which keep their script spacing.
        let live = r.secs(r.now);
        let base = if prev_inbound && inbound { prev } else { live };
        let (at, latest) = match ev.time {
            TimeSpec::Absolute(t) => (t, t),
            TimeSpec::Relative(d) => (base + d, base + d),
            TimeSpec::Any => (live, f64::INFINITY),
            TimeSpec::Range {
                start,
                end,
                relative,
            } => {
                let b = if relative { base } else { 0.0 };
                (b + start, b + end)
            }
        };
        // packetdrill's percentage rule: the tolerance grows with the time since the
        // previous event (--tolerance_percent, 12.5 %).
        let tolerance = r.tolerance.max(Duration::from_secs_f64(
            ((at - base).max(0.0)) * opts.tolerance_percent / 100.0,
        ));
        let result = match &ev.action {
            // A code block takes its TCP_INFO at its time (and so keeps its time: what
            // follows it relatively counts from there); packetdrill runs the Python of
            // every block once the script is over.
            Action::Code(code) => r.advance_quiet(at).map(|_| {
                let info = r.tcp_info();
                blocks.push((ev.line, info, code.clone()));
            }),
            Action::Option(..) => Ok(()),
            Action::Shell(cmd) => r.advance_quiet(at).map(|_| {
                r.shell(ev, cmd, opts, &mut outcome.notes);
            }),
            Action::Segment(seg) if seg.direction == Direction::Outbound => {
                r.expect_outbound(seg, at, latest, tolerance)
            }
            Action::Segment(seg) => r.advance_quiet(at).and_then(|_| r.inject(seg)),
            Action::Icmp(icmp) if icmp.direction == Direction::Outbound => Err(
                "outbound ICMP lines are not supported by synack drill (synack sends no ICMP errors about TCP)".into(),
            ),
            Action::Icmp(icmp) => r.advance_quiet(at).and_then(|_| r.inject_icmp(icmp)),
            Action::Syscall(call) => {
                let base = if matches!(
                    ev.time,
                    TimeSpec::Relative(_) | TimeSpec::Range { relative: true, .. }
                ) {
                    base
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
        if !matches!(ev.action, Action::Option(..)) {
            prev = at;
            prev_inbound = inbound;
        }
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
    if outcome.failure.is_none() {
        let sources: Vec<(Option<&str>, &str)> = blocks
            .iter()
            .map(|(_, info, code)| (info.as_deref(), code.as_str()))
            .collect();
        if let Err((i, message)) = crate::code::run_blocks(&sources) {
            outcome.failure = Some(Failure {
                line: blocks[i].0,
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
                    describe(&p, &r.isns)
                ),
            });
        }
    }
    outcome.log = r.log;
    outcome
}

/// A packet as a script line would show it.
fn describe(p: &[u8], isns: &BTreeMap<u16, u32>) -> String {
    match wire::parse_tcp_packet(p) {
        Ok((ip, t)) => {
            let isn = isns.get(&t.dst_port).copied().unwrap_or(0);
            let seq = t.seq.get().wrapping_sub(isn);
            let ecn = match ip.ecn {
                wire::Ecn::NotEct => String::new(),
                e => format!("{} ", EcnSpec::Is(e)),
            };
            let mut s = format!(
                "{ecn}{} {}:{}({})",
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

/// A script segment line again, for the verbose log.
fn script_segment(seg: &Segment) -> String {
    let mut s = String::new();
    if let Some((a, b)) = seg.ports {
        s += &format!("{a}>{b} ");
    }
    if let Some(ecn) = seg.ecn {
        s += &format!("{ecn} ");
    }
    s += &seg.flags;
    if let Some((start, end, len)) = seg.seq {
        s += &format!(" {start}:{end}({len})");
    }
    if let Some(ack) = seg.ack {
        s += &format!(" ack {ack}");
    }
    if let Some(win) = seg.win {
        s += &format!(" win {win}");
    }
    if seg.urg != 0 {
        s += &format!(" urg {}", seg.urg);
    }
    match &seg.options {
        None => s += " <...>",
        Some(o) if o.is_empty() => {}
        Some(o) => s += &format!(" <{} options>", o.len()),
    }
    s
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

impl Runner {
    /// The Fast Open cookie the stack under test gives the script's peer
    /// (`TFO_COOKIE`).
    fn stack_cookie(&self) -> wire::FastOpenCookie {
        self.socks.stack.fastopen_cookie(self.remote, self.local)
    }

    /// After an active open: segments use its ports from now on.
    fn learn_ports(&mut self, fd: i32) {
        if let Some(h) = self.socks.handle(fd) {
            if let Ok(local) = self.socks.stack.local_addr(h) {
                self.ports = (local.port(), LOCAL_PORT);
            }
        }
    }

    /// The peer's ISN on its `port` (0 before the script's SYN).
    fn remote_isn(&self, port: u16) -> u32 {
        self.remote_isns.get(&port).copied().unwrap_or(0)
    }

    /// Our ISN on the connection with the peer's `port` (0 before our SYN).
    fn isn(&self, port: u16) -> u32 {
        self.isns.get(&port).copied().unwrap_or(0)
    }

    /// A shell line: not run; the TCP sysctls it sets change the stack's configuration.
    fn shell(&mut self, ev: &Event, cmd: &str, opts: &DrillOptions, notes: &mut Vec<String>) {
        let found = crate::sysctl::assignments(cmd, opts.base_dir.as_deref());
        let first = cmd.lines().next().unwrap_or("");
        if crate::sysctl::flushes_metrics(cmd, opts.base_dir.as_deref()) {
            // `ip tcp_metrics flush`: the Fast Open cookie cache goes with it.
            self.socks.stack.flush_fastopen_cache();
            notes.push(format!("line {}: tcp_metrics flushed", ev.line));
        }
        let made = crate::sysctl::made_files(cmd);
        for (path, file) in &made {
            match file {
                Some(bytes) => {
                    notes.push(format!(
                        "line {}: file {path} of {} bytes",
                        ev.line,
                        bytes.len()
                    ));
                    self.made_files.insert(path.clone(), bytes.clone());
                }
                None => {
                    self.made_files.remove(path);
                }
            }
        }
        if found.is_empty() && made.is_empty() {
            notes.push(format!("line {}: skipped shell `{first}`", ev.line));
        }
        for a in found {
            if a.name.ends_with("tcp_fastopen_key") {
                match synack::tcp::fastopen::parse_key(&a.value) {
                    Some((primary, backup)) => {
                        self.socks.stack.set_fastopen_key(primary, backup);
                        notes.push(format!("line {}: {}={} applied", ev.line, a.name, a.value));
                    }
                    None => notes.push(format!("line {}: {}: not a key; skipped", ev.line, a.name)),
                }
                continue;
            }
            match crate::sysctl::apply(&a, self.socks.stack.config_mut()) {
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
        while let Some(p) = self.socks.stack.poll_transmit(self.now) {
            if let Ok((_, t)) = wire::parse_tcp_packet(&p) {
                if t.flags.syn() {
                    self.isns.insert(t.dst_port, t.seq.get());
                }
                if let Some(ts) = t.options.timestamps {
                    self.last_tsval = Some(ts.tsval);
                }
            }
            self.sent.push_back((self.now, p));
        }
        // The stack's events are the sockets' wakeups (epoll's ready lists).
        while let Some(ev) = self.socks.stack.poll_event() {
            self.socks.on_event(&ev);
        }
    }

    /// Move the clock to `until`, firing timers on the way.
    fn run_until(&mut self, until: Instant) {
        self.drain();
        while let Some(t) = self.socks.stack.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.socks.stack.on_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(until);
        self.drain();
    }

    /// Advance to an inbound segment or a call: nothing may have been sent meanwhile
    /// that the script did not expect.
    /// The `TCP_INFO` of the socket under test (the latest socket() or accept() when it
    /// has a connection, else the highest script descriptor with one), as Python
    /// assignments of `tcpi_*`; None without a connection.
    fn tcp_info(&self) -> Option<String> {
        let latest = self
            .fds
            .get(&self.info_fd)
            .and_then(|&live| self.socks.handle(live));
        let h = latest.or_else(|| {
            self.fds
                .values()
                .rev()
                .find_map(|&live| self.socks.handle(live))
        })?;
        let info = self.socks.stack.info(self.now, h).ok()?;
        Some(crate::code::tcpi_vars(&info))
    }

    fn advance_quiet(&mut self, at: f64) -> Check {
        let until = self.at(at);
        self.settle_pending(until)?;
        self.run_until(until);
        if !self.strict_unexpected {
            // As packetdrill: a segment no line expected is only noticed when the next
            // outbound line is compared with it.
            return Ok(());
        }
        // Nor does packetdrill see another connection's (see `drop_foreign`).
        self.drop_foreign();
        match self.sent.pop_front() {
            Some((t, p)) => Err(format!(
                "unexpected outbound segment at {:.3}: {}",
                self.secs(t),
                describe(&p, &self.isns)
            )),
            None => Ok(()),
        }
    }

    fn expect_outbound(
        &mut self,
        seg: &Segment,
        at: f64,
        latest: f64,
        tolerance: Duration,
    ) -> Check {
        let earliest = self.at(at).checked_sub(tolerance).unwrap_or(self.t0);
        let deadline = if latest.is_finite() {
            self.at(latest) + tolerance
        } else {
            self.now + Duration::from_secs(3600)
        };
        if seg.ports.is_none() {
            self.drop_foreign();
        }
        while self.sent.is_empty() {
            let next = self.socks.stack.poll_timeout().filter(|t| *t <= deadline);
            match next {
                Some(t) => self.run_until(t),
                None => break,
            }
            if seg.ports.is_none() {
                self.drop_foreign();
            }
        }
        if self.sent.is_empty() {
            // Nothing in time: look further ahead to tell "too late" from "never".
            let horizon = deadline + Duration::from_secs(60);
            while self.sent.is_empty() {
                match self.socks.stack.poll_timeout().filter(|t| *t <= horizon) {
                    Some(t) => self.run_until(t),
                    None => break,
                }
                if seg.ports.is_none() {
                    self.drop_foreign();
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
                describe(&p, &self.isns),
                self.secs(t),
                tolerance.as_millis()
            ));
        }
        self.log.push(format!(
            "{:.3} > {}   (script {at:.3}: {})",
            self.secs(t),
            describe(&p, &self.isns),
            script_segment(seg)
        ));
        self.compare(seg, &p)
    }

    /// As packetdrill, which takes an outbound packet only from the socket under test
    /// (the latest connection): segments of other connections (an earlier socket's FIN
    /// after a later connect()) are passed over.
    fn drop_foreign(&mut self) {
        while let Some((t, p)) = self.sent.front() {
            let Ok((_, seg)) = wire::parse_tcp_packet(p) else {
                return;
            };
            if (seg.src_port, seg.dst_port) == self.ports {
                return;
            }
            self.log.push(format!(
                "{:.3} > {}   (another connection's: ignored)",
                self.secs(*t),
                describe(p, &self.isns)
            ));
            self.sent.pop_front();
        }
    }

    /// Segments sent at the same moment that continue `first` are joined into one, up to
    /// `len` bytes of payload, as Linux's TSO hands packetdrill one super-segment.
    fn merge(&mut self, t: Instant, first: Vec<u8>, len: usize) -> Vec<u8> {
        let Ok((ip, head)) = wire::parse_tcp_packet(&first) else {
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
                // (CWR, 0x80, only on a super-segment's first piece, as Linux's TSO.)
                && seg.flags.bits() & !0x09 == flags.bits() & !0x88;
            if !joins {
                break;
            }
            payload.extend_from_slice(seg.payload);
            // The super-segment carries the PSH and FIN of its last piece (packetdrill
            // takes an aggregate's headers from its last packet).
            flags = TcpFlags::from_bits((flags.bits() & !0x08) | (seg.flags.bits() & 0x09));
            self.sent.pop_front();
        }
        let merged = TcpRepr {
            flags,
            payload: &payload,
            ..head
        };
        match wire::emit_tcp_packet(self.local, self.remote, 64, &merged) {
            Ok(mut p) => {
                wire::set_ecn(&mut p, ip.ecn);
                p
            }
            Err(_) => first,
        }
    }

    /// An inbound TS ecr of the script, in our clock: the TS val of ours that the
    /// script's value stood for (packetdrill's get_outbound_ts_val_mapping). One before
    /// or after every value the script gave our segments is moved by the first one's
    /// offset, so a bogus echo stays bogus (packetdrill's interpolation); others echo
    /// our latest.
    fn live_tsecr(&self, ecr: u32) -> u32 {
        if let Some(live) = self.ts_vals.get(&ecr) {
            return *live;
        }
        let (Some((&lo, _)), Some((&hi, _))) = (
            self.ts_vals.first_key_value(),
            self.ts_vals.last_key_value(),
        ) else {
            return self.last_tsval.unwrap_or(ecr);
        };
        if ecr < lo || ecr > hi {
            let (&first, &live) = self.ts_vals.first_key_value().unwrap_or((&lo, &lo));
            return ecr.wrapping_sub(first).wrapping_add(live);
        }
        self.last_tsval.unwrap_or(ecr)
    }

    fn compare(&mut self, want: &Segment, p: &[u8]) -> Check {
        let (ip, got) = wire::parse_tcp_packet(p).map_err(|e| format!("unparsable: {e}"))?;
        if got.flags.syn() && !got.flags.ack() {
            self.ts_vals.clear();
        }
        let script_ts = want.options.iter().flatten().find_map(|o| match o {
            ScriptOption::Timestamp { val, .. } => Some(*val),
            _ => None,
        });
        if let (Some(val), Some(ts)) = (script_ts, got.options.timestamps) {
            self.ts_vals.entry(val).or_insert(ts.tsval);
        }
        let shown = describe(p, &self.isns);
        if let Some(want_ecn) = want.ecn.filter(|e| !e.matches(ip.ecn)) {
            let got_ecn = EcnSpec::Is(ip.ecn);
            return Err(format!(
                "ECN field: expected {want_ecn} got {got_ecn} ({shown})"
            ));
        }
        let flags = script_flags(&want.flags);
        if got.flags != flags {
            return Err(format!(
                "flags: expected {} got {} ({shown})",
                want.flags,
                got.flags.packetdrill()
            ));
        }
        if let Some((start, _end, len)) = want.seq {
            let seq = got.seq.get().wrapping_sub(self.isn(got.dst_port));
            // A SYN's sequence number is the ISN, whatever the script writes: packetdrill
            // takes the script's as its script ISN and maps the live one to it
            // (run_packet.c, local_seq_script_to_live_offset with is_syn).
            if seq != start && !got.flags.syn() {
                return Err(format!("seq: expected {start} got {seq} ({shown})"));
            }
            if got.payload.len() as u32 != len {
                return Err(format!(
                    "length: expected {len} got {} ({shown})",
                    got.payload.len()
                ));
            }
        }
        // A SYN-ACK's ACK is absolute; other ACKs are relative to the peer's ISN.
        let remote_isn = if got.flags.syn() {
            0
        } else {
            self.remote_isn(got.dst_port)
        };
        if let (Some(ack), true) = (want.ack, got.flags.ack()) {
            let rel = got.ack.get().wrapping_sub(remote_isn);
            if rel != ack {
                return Err(format!("ack: expected {ack} got {rel} ({shown})"));
            }
        }
        if let Some(win) = want.win {
            if u32::from(got.window) != win {
                return Err(format!("win: expected {win} got {} ({shown})", got.window));
            }
        }
        // packetdrill's verify_tcp: the urgent pointer field is always compared (0 when
        // the script writes no `urg`).
        if got.urgent != want.urg {
            return Err(format!(
                "urg: expected {} got {} ({shown})",
                want.urg, got.urgent
            ));
        }
        if let Some(opts) = &want.options {
            let stack_cookie = self.stack_cookie();
            compare_options(opts, &got.options, &stack_cookie, remote_isn)?;
        }
        let (ours, theirs) = want.ports.unwrap_or(self.ports);
        if got.src_port != ours || got.dst_port != theirs {
            return Err(format!(
                "ports: expected {ours}>{theirs} got {}>{}",
                got.src_port, got.dst_port
            ));
        }
        Ok(())
    }

    fn inject(&mut self, seg: &Segment) -> Check {
        let flags = script_flags(&seg.flags);
        if flags.syn() && !flags.ack() && seg.ports.is_none() && self.under_test.1 {
            // A new passive connection: from a port of its own once the peer's current
            // one has been used (a connection the script left open keeps it).
            self.under_test.1 = false;
            if self.remote_isns.contains_key(&self.ports.1) {
                let next = self
                    .remote_isns
                    .keys()
                    .max()
                    .copied()
                    .unwrap_or(REMOTE_PORT);
                self.ports = (LOCAL_PORT, next.wrapping_add(1).max(REMOTE_PORT));
            }
        }
        let (start, _, len) = seg.seq.unwrap_or((0, 0, 0));
        // SRC>DST on an inbound line: the peer's port, then ours.
        let (remote_port, local_port) = match seg.ports {
            Some((src, dst)) => (src, dst),
            None => (self.ports.1, self.ports.0),
        };
        let isn = self.isn(remote_port);
        let mut options = TcpOptions::default();
        for o in seg.options.iter().flatten() {
            match o {
                ScriptOption::Mss(m) => options.mss = Some(*m),
                ScriptOption::WindowScale(w) => options.window_scale = Some(*w),
                ScriptOption::SackOk => options.sack_permitted = true,
                ScriptOption::Timestamp { val, ecr } => {
                    // An echo of our timestamps: map the script's to the latest we sent.
                    let tsecr = if *ecr == 0 { 0 } else { self.live_tsecr(*ecr) };
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
                ScriptOption::FastOpen {
                    experimental,
                    cookie,
                } => {
                    options.fast_open =
                        fast_open_option(*experimental, cookie, &self.stack_cookie());
                }
                // As packetdrill: the script's digest, as it is (not a signature).
                ScriptOption::Md5(digest) => options.md5 = Some(*digest),
                ScriptOption::Nop | ScriptOption::Eol => {}
            }
        }
        let payload = vec![0u8; len as usize];
        let ack = SeqNum::new(if flags.ack() {
            isn.wrapping_add(seg.ack.unwrap_or(0))
        } else {
            0
        });
        // With --mss, a long segment arrives in pieces of that size (FIN and PSH on the last).
        let piece = self
            .inbound_mss
            .filter(|m| *m > 0 && !flags.syn())
            .unwrap_or(payload.len().max(1));
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&payload[..]]
        } else {
            payload.chunks(piece).collect()
        };
        // packetdrill's remote_seq_script_to_live_offset: a SYN's sequence number is
        // the peer's ISN; the others are relative to it.
        let start = if flags.syn() {
            // Only a SYN that opens a connection sets it (a SYN in a synchronized
            // state is an old duplicate or an attack, not a new ISN).
            let open = self.socks.stack.connections().iter().any(|(l, r, st)| {
                r.port() == remote_port
                    && l.port() == local_port
                    && !matches!(
                        st,
                        synack::TcpState::SynSent
                            | synack::TcpState::Closed
                            | synack::TcpState::TimeWait
                    )
            });
            if !open {
                self.remote_isns.insert(remote_port, start);
            }
            start
        } else {
            start.wrapping_add(self.remote_isn(remote_port))
        };
        let mut seq = SeqNum::new(start);
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let keep = if last { 0xff } else { !0x09 };
            let repr = TcpRepr {
                src_port: remote_port,
                dst_port: local_port,
                seq,
                ack,
                flags: TcpFlags::from_bits(flags.bits() & keep),
                window: seg.win.unwrap_or(65535).min(65535) as u16,
                urgent: seg.urg,
                options,
                payload: chunk,
            };
            let mut p = wire::emit_tcp_packet(self.remote, self.local, 64, &repr)
                .map_err(|e| format!("cannot build the segment: {e}"))?;
            if let Some(ecn) = seg.ecn {
                wire::set_ecn(&mut p, ecn.codepoint());
            }
            self.socks.stack.receive(self.now, &p);
            seq += chunk.len() as u32;
        }
        self.log.push(format!(
            "{:.3} < {}",
            self.secs(self.now),
            script_segment(seg)
        ));
        self.drain();
        Ok(())
    }

    /// An ICMP line: the message, quoting the first bytes of one of our segments (as
    /// packetdrill builds it: an IP header and 8 bytes of TCP header whose sequence
    /// number is the script's, mapped to our ISN).
    fn inject_icmp(&mut self, line: &IcmpLine) -> Check {
        let v6 = self.local.is_ipv6();
        let (msg_type, code) = icmp_type_code(v6, &line.icmp_type, line.code.as_deref())?;
        let quote = match line.quote {
            IcmpQuote::Tcp { start, .. } => {
                let (local_port, remote_port) = self.ports;
                let repr = TcpRepr {
                    src_port: local_port,
                    dst_port: remote_port,
                    seq: SeqNum::new(self.isn(remote_port).wrapping_add(start)),
                    ack: SeqNum::new(0),
                    flags: TcpFlags::empty(),
                    window: 0,
                    urgent: 0,
                    options: TcpOptions::default(),
                    payload: &[],
                };
                let mut p = wire::emit_tcp_packet(self.local, self.remote, 64, &repr)
                    .map_err(|e| format!("cannot build the quoted segment: {e}"))?;
                p.truncate(if v6 { 40 } else { 20 } + 8);
                p
            }
            IcmpQuote::Raw(n) => vec![0; n as usize],
            IcmpQuote::Udp(_) => {
                return Err("ICMP lines quoting UDP are not supported by synack drill".into())
            }
        };
        let mtu = line.mtu.unwrap_or(0);
        let repr = match (v6, msg_type) {
            (false, 3) => wire::IcmpRepr::DestUnreachable {
                code,
                next_hop_mtu: u16::try_from(mtu).map_err(|_| "an ICMP mtu is at most 65535")?,
                invoking: &quote,
            },
            (true, 1) => wire::IcmpRepr::DestUnreachable {
                code,
                next_hop_mtu: 0,
                invoking: &quote,
            },
            (true, 2) => wire::IcmpRepr::PacketTooBig {
                mtu,
                invoking: &quote,
            },
            (false, 11) | (true, 3) => wire::IcmpRepr::TimeExceeded {
                code,
                invoking: &quote,
            },
            (false, 12) | (true, 4) => wire::IcmpRepr::ParamProblem {
                code,
                invoking: &quote,
            },
            (false, 8) | (true, 128) => wire::IcmpRepr::EchoRequest {
                ident: line.id,
                seq: 0,
                data: &quote,
            },
            (false, 0) | (true, 129) => wire::IcmpRepr::EchoReply {
                ident: line.id,
                seq: 0,
                data: &quote,
            },
            (_, msg_type) => wire::IcmpRepr::Other { msg_type, code },
        };
        let p = wire::emit_icmp_packet(self.remote, self.local, 64, &repr)
            .map_err(|e| format!("cannot build the ICMP message: {e}"))?;
        self.socks.stack.receive(self.now, &p);
        self.log.push(format!(
            "{:.3} < icmp {} {}",
            self.secs(self.now),
            line.icmp_type,
            line.code.as_deref().unwrap_or("")
        ));
        self.drain();
        Ok(())
    }

    /// The live descriptor a script's first argument names.
    fn live_fd(&self, call: &Syscall) -> i32 {
        let script: i64 = call.args.first().and_then(|a| a.parse().ok()).unwrap_or(-1);
        self.fds.get(&script).copied().unwrap_or(-1)
    }

    /// Make a call; a blocking one (`+A...B`) that cannot finish yet waits in `pending`.
    fn syscall(&mut self, call: &Syscall, line: usize, until: Option<f64>) -> Check {
        let got = self.perform(call);
        let nonblocking = self.socks.nonblocking(self.live_fd(call));
        let never_blocks = msg::never_blocks(&call.name, call.args.get(2).map_or("", |a| a))
            || dont_wait(call)
            || out_of_band(call);
        let blocked = got == Err(Errno::EAGAIN) && !nonblocking && !never_blocks;
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
            None if blocked => Err(format!(
                "{}() would block on a blocking socket (write +A...B, or set O_NONBLOCK)",
                call.name
            )),
            None => self.check(call, got),
        }
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
                let ms = wait_timeout(&p.call).filter(|ms| *ms >= 0)?;
                Some(p.started + Duration::from_millis(ms as u64))
            });
            let next = match (self.socks.stack.poll_timeout(), poll_end) {
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
        if got == Err(Errno::EAGAIN) {
            // poll's and epoll_wait's own timeout (milliseconds; negative waits for ever)
            // ends the wait with 0.
            let ms = wait_timeout(&p.call).unwrap_or(-1);
            if ms >= 0 && self.now >= p.started + Duration::from_millis(ms as u64) {
                got = Ok(0);
            }
        }
        if got == Err(Errno::EAGAIN) {
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
    fn retry(&mut self, call: &Syscall) -> CallResult {
        if call.name == "connect" {
            return self.socks.connect_result(self.live_fd(call));
        }
        self.perform(call)
    }

    /// The call; a send or receive with MSG_DONTWAIT is made as on a nonblocking socket.
    fn perform(&mut self, call: &Syscall) -> CallResult {
        let fd = self.live_fd(call);
        if !dont_wait(call) || self.socks.nonblocking(fd) {
            return self.perform_call(call);
        }
        let _ = self.socks.set_nonblocking(fd, true);
        let got = self.perform_call(call);
        let _ = self.socks.set_nonblocking(fd, false);
        got
    }

    /// The call, on the socket layer; values it fills in are checked into `value_error`.
    fn perform_call(&mut self, call: &Syscall) -> CallResult {
        let fd = self.live_fd(call);
        let now = self.now;
        self.log.push(format!(
            "{:.3} {}({})",
            self.secs(now),
            call.name,
            call.args.join(", ")
        ));
        let arg = |i: usize| call.args.get(i).map_or("", String::as_str);
        let number = |i: usize| arg(i).parse::<usize>().unwrap_or(0);
        let got = match call.name.as_str() {
            "socket" => {
                let live = self.socks.socket();
                self.fds.insert(call.ret, live);
                self.under_test = (call.ret, false);
                self.info_fd = call.ret;
                Ok(call.ret)
            }
            "bind" => self
                .socks
                .bind(fd, SocketAddr::new(self.local, LOCAL_PORT))
                .map(|_| 0),
            "listen" => {
                let r = self
                    .socks
                    .listen(fd, arg(1).parse().unwrap_or(128), LOCAL_PORT);
                let script_fd = arg(0).parse::<i64>().unwrap_or(-1);
                if r.is_ok() && script_fd == self.under_test.0 {
                    self.under_test.1 = true;
                }
                r
            }
            "accept" => self.socks.accept(now, fd).map(|(live, _)| {
                self.fds.insert(call.ret, live);
                self.info_fd = call.ret;
                call.ret
            }),
            "connect" => {
                let r = self
                    .socks
                    .connect(now, fd, SocketAddr::new(self.remote, LOCAL_PORT));
                self.learn_ports(fd);
                r
            }
            "fcntl" if arg(1) == "F_GETFL" => {
                // O_RDWR, with O_NONBLOCK when set.
                let nb = if self.socks.nonblocking(fd) { 0x800 } else { 0 };
                Ok(2 | nb)
            }
            "fcntl" => self
                .socks
                .set_nonblocking(fd, arg(2).contains("O_NONBLOCK")),
            "send" | "sendto" if msg::msg_flags(arg(3)) == Ok(msg::MSG_ZEROCOPY) => {
                msg::sendmsg(&mut self.socks, now, fd, &[number(2)], msg::MSG_ZEROCOPY)
            }
            "write" => self.socks.write(now, fd, &vec![b'x'; number(2)]),
            "send" => {
                let flags = msg::send_flags(arg(3));
                self.socks.send(now, fd, &vec![b'x'; number(2)], flags)
            }
            "sendmsg" | "recvmsg" => self.msg_call(call, fd),
            // Linux's tcp_sendmsg_fastopen: an AF_UNSPEC destination is EOPNOTSUPP.
            "sendto" if fast_open(arg(3)) && arg(4) == "AF_UNSPEC" => Err(Errno::EOPNOTSUPP),
            "sendto" if fast_open(arg(3)) => {
                let zerocopy = msg::msg_flags(arg(3)).is_ok_and(|f| f & msg::MSG_ZEROCOPY != 0);
                let r = self.socks.sendto_fastopen_zerocopy(
                    now,
                    fd,
                    SocketAddr::new(self.remote, LOCAL_PORT),
                    &vec![b'x'; number(2)],
                    zerocopy,
                );
                self.learn_ports(fd);
                r
            }
            "sendto" => self.socks.write(now, fd, &vec![b'x'; number(2)]),
            "writev" => self
                .socks
                .write(now, fd, &vec![b'x'; args::iov_len(arg(1))]),
            "read" => self.socks.read(now, fd, &mut vec![0u8; number(2)]),
            "recv" | "recvfrom" => {
                let flags = msg::msg_flags(arg(3)).unwrap_or(0);
                self.socks
                    .recv_flags(now, fd, &mut vec![0u8; number(2)], flags)
            }
            "pipe" => {
                let script: Vec<i64> = args::bracketed(arg(0))
                    .unwrap_or("")
                    .split(',')
                    .filter_map(args::integer)
                    .collect();
                let (r, w) = self.socks.pipe();
                if let [a, b] = script[..] {
                    self.fds.insert(a, r);
                    self.fds.insert(b, w);
                } else {
                    self.value_error = Some(format!("pipe(): '{}' is not [R, W]", arg(0)));
                }
                Ok(0)
            }
            "splice" => {
                let live = |i: usize| {
                    args::number(arg(i))
                        .and_then(|n| self.fds.get(&n).copied())
                        .unwrap_or(-1)
                };
                let (fd_in, fd_out) = (live(0), live(2));
                let flags = args::number(arg(5))
                    .or_else(|| (arg(5) == "SPLICE_F_NONBLOCK").then_some(2))
                    .unwrap_or(0);
                self.socks
                    .splice(now, fd_in, fd_out, number(4), flags as u32)
            }
            "open" => self.open(call),
            "sendfile" => {
                let live_in = args::number(arg(1))
                    .and_then(|n| self.fds.get(&n).copied())
                    .unwrap_or(-1);
                let offset = args::number(arg(2)).map(|o| o.max(0) as usize);
                self.socks.sendfile(now, fd, live_in, offset, number(3))
            }
            "readv" => self
                .socks
                .read(now, fd, &mut vec![0u8; args::iov_len(arg(1))]),
            "shutdown" => {
                let how = match arg(1) {
                    "SHUT_RD" => Shutdown::Read,
                    "SHUT_WR" => Shutdown::Write,
                    _ => Shutdown::Both,
                };
                self.socks.shutdown(now, fd, how)
            }
            "close" => self.socks.close(now, fd),
            "setsockopt" if arg(2) == "TCP_FASTOPEN_KEY" => {
                let mut key = args::c_string(arg(3)).unwrap_or_default();
                key.truncate(number(4));
                if key.len() < number(4) {
                    key.resize(number(4), 0);
                }
                self.socks.set_fastopen_key(fd, &key)
            }
            "setsockopt" => {
                let value = if arg(2) == "SO_LINGER" {
                    OptValue::Linger(i64::from(args::linger_zero(arg(3))), 0)
                } else {
                    OptValue::Int(
                        args::number(arg(3))
                            .or_else(|| args::ip_pmtudisc(arg(3)))
                            .or_else(|| sof::bits(arg(3)).map(i64::from))
                            .unwrap_or(0),
                    )
                };
                let r = self.socks.setsockopt(now, fd, arg(2), value);
                if r == Err(Errno::ENOPROTOOPT) {
                    self.value_error = Some(format!(
                        "setsockopt {} is not modelled by synack drill",
                        arg(2)
                    ));
                }
                r
            }
            "getsockopt" => self.getsockopt(call, fd),
            "ioctl" => {
                let r = self.socks.ioctl(fd, arg(1));
                match (r, args::number(arg(2))) {
                    (Ok(got), Some(want)) if got != want => {
                        self.value_error = Some(format!(
                            "ioctl({}): the script expects [{want}], synack has [{got}]",
                            arg(1)
                        ));
                    }
                    (Err(Errno::EOPNOTSUPP), _) => {
                        self.value_error =
                            Some(format!("ioctl {} is not modelled by synack drill", arg(1)));
                    }
                    _ => {}
                }
                r.map(|_| 0)
            }
            "poll" => self.poll(call),
            "epoll_create" if args::number(arg(0)).unwrap_or(0) <= 0 => Err(Errno::EINVAL),
            "epoll_create1" if !matches!(arg(0), "0" | "EPOLL_CLOEXEC") => Err(Errno::EINVAL),
            "epoll_create" | "epoll_create1" => {
                let live = self.socks.epoll_create();
                self.fds.insert(call.ret, live);
                Ok(call.ret)
            }
            "epoll_ctl" => self.epoll_ctl(call, fd),
            "epoll_wait" | "epoll_pwait" => self.epoll_wait(call, fd),
            other => {
                self.value_error = Some(format!("{other}() is not modelled by synack drill"));
                Ok(call.ret)
            }
        };
        self.drain();
        got
    }

    /// open(path, O_RDONLY): a file a shell line of the script made, else the real file,
    /// read whole; the descriptor is the script's.
    fn open(&mut self, call: &Syscall) -> CallResult {
        let arg = |i: usize| call.args.get(i).map_or("", String::as_str);
        let flags = arg(1);
        if !flags
            .split('|')
            .all(|f| matches!(f.trim(), "O_RDONLY" | "O_CLOEXEC" | "0"))
        {
            self.value_error = Some(format!(
                "open() with {flags} is not modelled by synack drill"
            ));
            return Ok(call.ret);
        }
        let path = args::c_string(arg(0))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let data = match self.made_files.get(&path) {
            Some(d) => d.clone(),
            None => match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Errno("ENOENT")),
                Err(_) => return Err(Errno("EACCES")),
            },
        };
        let live = self.socks.open_file(data);
        self.fds.insert(call.ret, live);
        Ok(call.ret)
    }

    /// sendmsg/recvmsg: the msghdr read (see [`msg`]), what recvmsg fills in checked.
    fn msg_call(&mut self, call: &Syscall, fd: i32) -> CallResult {
        let arg = |i: usize| call.args.get(i).map_or("", String::as_str);
        let parsed = msg::parse_msghdr(arg(1)).and_then(|m| Ok((m, msg::msg_flags(arg(2))?)));
        let (hdr, flags) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.value_error = Some(e);
                return Ok(call.ret);
            }
        };
        if let Some(flag) = msg::unmodelled_flags(&call.name, flags) {
            self.value_error = Some(format!(
                "{}() with {flag} is not modelled by synack drill",
                call.name
            ));
            return Ok(call.ret);
        }
        if call.name == "sendmsg" && flags & msg::MSG_FASTOPEN != 0 {
            let remote = SocketAddr::new(self.remote, LOCAL_PORT);
            let r = self
                .socks
                .sendto_fastopen(self.now, fd, remote, &vec![b'x'; hdr.len()]);
            self.learn_ports(fd);
            return r;
        }
        if call.name == "sendmsg" {
            return msg::sendmsg(&mut self.socks, self.now, fd, &hdr.iov, flags);
        }
        let (r, got) = msg::recvmsg(&mut self.socks, self.now, fd, &hdr, flags);
        if r.is_ok() {
            if let Err(e) = msg::check_received(&hdr, &got, self.t0, self.tolerance) {
                self.value_error = Some(e);
            }
        }
        r
    }

    fn getsockopt(&mut self, call: &Syscall, fd: i32) -> CallResult {
        let name = call.args.get(2).map_or("", String::as_str);
        let want = call.args.get(3).map_or("", String::as_str);
        let got = match self.socks.getsockopt(self.now, fd, name) {
            Err(Errno::ENOPROTOOPT) => {
                self.value_error =
                    Some(format!("getsockopt {name} is not modelled by synack drill"));
                return Ok(0);
            }
            Err(e) => return Err(e),
            Ok(OptValue::Int(v)) => v,
            Ok(OptValue::Linger(on, _)) => on,
        };
        let expected = args::bracketed(want).and_then(|v| {
            if name == "SO_ERROR" {
                args::errno_number(v)
            } else if name == "SO_LINGER" {
                Some(i64::from(args::linger_zero(want)))
            } else {
                args::integer(v)
            }
        });
        if let Some(w) = expected.filter(|w| *w != got) {
            self.value_error = Some(format!(
                "getsockopt({name}): the script expects [{w}], synack has [{got}]"
            ));
        }
        Ok(0)
    }

    /// epoll_ctl(epfd, EPOLL_CTL_ADD|MOD|DEL, fd, {events=..., fd=N}).
    fn epoll_ctl(&mut self, call: &Syscall, epfd: i32) -> CallResult {
        let arg = |i: usize| call.args.get(i).map_or("", String::as_str);
        let op = match arg(1) {
            "EPOLL_CTL_ADD" => epoll::Op::Add,
            "EPOLL_CTL_MOD" => epoll::Op::Mod,
            "EPOLL_CTL_DEL" => epoll::Op::Del,
            _ => return Err(Errno::EINVAL),
        };
        let script_fd = args::number(arg(2)).unwrap_or(-1);
        let fd = self.fds.get(&script_fd).copied().unwrap_or(-1);
        let (events, data) = match op {
            epoll::Op::Del => (0, 0),
            _ => match epoll::event(arg(3)) {
                Ok(e) => e,
                Err(e) => {
                    self.value_error = Some(format!("epoll_ctl(): {e}"));
                    return Ok(0);
                }
            },
        };
        self.socks.epoll_ctl(self.now, epfd, op, fd, events, data)
    }

    /// epoll_wait(epfd, {events=..., fd=N}, maxevents, timeout): the count of ready
    /// items, the first ones checked against what the script lists; EAGAIN when none is
    /// ready and the timeout is not zero.
    fn epoll_wait(&mut self, call: &Syscall, epfd: i32) -> CallResult {
        let arg = |i: usize| call.args.get(i).map_or("", String::as_str);
        let max = args::number(arg(2)).unwrap_or(0);
        let timeout_ms = wait_timeout(call).unwrap_or(0);
        let got = self.socks.epoll_wait(self.now, epfd, max)?;
        if got.is_empty() && timeout_ms != 0 {
            return Err(Errno::EAGAIN);
        }
        if got.len() as i64 != call.ret {
            let shown: Vec<String> = got
                .iter()
                .map(|(e, d)| format!("{{events={}, data={d}}}", epoll::names(*e)))
                .collect();
            self.value_error = Some(format!(
                "epoll_wait(): the script expects {} ready, synack has {} [{}]",
                call.ret,
                got.len(),
                shown.join(", ")
            ));
        }
        let listed = arg(1);
        let want: Vec<&str> = listed
            .split('{')
            .skip(1)
            .map(|e| e.split('}').next().unwrap_or(""))
            .collect();
        for ((events, data), body) in got.iter().zip(&want) {
            let expected = match epoll::event(&format!("{{{body}}}")) {
                Ok(e) => e,
                Err(e) => {
                    self.value_error = Some(format!("epoll_wait(): {e}"));
                    break;
                }
            };
            if expected != (*events, *data) {
                self.value_error = Some(format!(
                    "epoll_wait(): the script expects {{events={}, data={}}}, synack has {{events={}, data={}}}",
                    epoll::names(expected.0),
                    expected.1,
                    epoll::names(*events),
                    data
                ));
                break;
            }
        }
        Ok(got.len() as i64)
    }

    /// poll(): the count of ready descriptors, each one's revents checked; EAGAIN when
    /// none is ready and the timeout is not zero.
    fn poll(&mut self, call: &Syscall) -> CallResult {
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
            let live = self.fds.get(&p.fd).copied().unwrap_or(-1);
            let revents = self.socks.revents(self.now, live, p.events);
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
            return Err(Errno::EAGAIN);
        }
        self.value_error = mismatch;
        Ok(ready)
    }

    fn check(&mut self, call: &Syscall, got: CallResult) -> Check {
        if let Some(e) = self.value_error.take() {
            return Err(e);
        }
        let (ret, name) = match got {
            Ok(v) => (v, None),
            Err(Errno(name)) => (-1, Some(name)),
        };
        // As packetdrill, the errno is checked when the script names one.
        let errno_differs = call.errno.is_some() && call.errno.as_deref() != name;
        if ret != call.ret || (call.ret == -1 && errno_differs) {
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

/// The timeout (milliseconds) of a call that waits for readiness: poll's third
/// argument, epoll_wait's fourth; None for other calls.
/// A send or receive call with MSG_DONTWAIT: made as on a nonblocking socket.
/// recv(MSG_OOB) never waits, on a blocking socket too (Linux's tcp_recv_urg).
fn out_of_band(call: &Syscall) -> bool {
    let flags_at = match call.name.as_str() {
        "recv" | "recvfrom" => 3,
        "recvmsg" => 2,
        _ => return false,
    };
    let flags = call.args.get(flags_at).map_or("", String::as_str);
    msg::msg_flags(flags).is_ok_and(|f| f & msg::MSG_OOB != 0)
}

fn dont_wait(call: &Syscall) -> bool {
    let flags_at = match call.name.as_str() {
        "send" | "sendto" | "recv" | "recvfrom" => 3,
        "sendmsg" => 2,
        _ => return false,
    };
    let flags = call.args.get(flags_at).map_or("", String::as_str);
    msg::msg_flags(flags).is_ok_and(|f| f & msg::MSG_DONTWAIT != 0)
}

/// Whether a send call's flags (names or a number) hold MSG_FASTOPEN.
fn fast_open(flags: &str) -> bool {
    msg::msg_flags(flags).is_ok_and(|f| f & msg::MSG_FASTOPEN != 0)
}

fn wait_timeout(call: &Syscall) -> Option<i64> {
    let i = match call.name.as_str() {
        "poll" => 2,
        "epoll_wait" | "epoll_pwait" => 3,
        _ => return None,
    };
    call.args.get(i).and_then(|a| args::integer(a))
}

/// The Fast Open option a script's `FO`/`FOEXP` item stands for; `stack` is what
/// `TFO_COOKIE` means.
fn fast_open_option(
    experimental: bool,
    cookie: &FoCookie,
    stack: &wire::FastOpenCookie,
) -> Option<wire::FastOpenCookie> {
    match cookie {
        FoCookie::Request => Some(wire::FastOpenCookie::request(experimental)),
        FoCookie::Stack => wire::FastOpenCookie::new(stack.as_bytes(), experimental),
        FoCookie::Bytes(b) => wire::FastOpenCookie::new(b, experimental),
    }
}

fn compare_options(
    want: &[ScriptOption],
    got: &TcpOptions,
    stack_cookie: &wire::FastOpenCookie,
    remote_isn: u32,
) -> Check {
    let mut w = TcpOptions::default();
    for o in want {
        match o {
            ScriptOption::FastOpen {
                experimental,
                cookie,
            } => w.fast_open = fast_open_option(*experimental, cookie, stack_cookie),
            ScriptOption::Mss(m) => w.mss = Some(*m),
            ScriptOption::WindowScale(s) => w.window_scale = Some(*s),
            ScriptOption::SackOk => w.sack_permitted = true,
            ScriptOption::Timestamp { .. } => {
                w.timestamps = got.timestamps.or(Some(Timestamps { tsval: 0, tsecr: 0 }))
            }
            ScriptOption::Sack(blocks) => {
                for (a, b) in blocks {
                    w.sack_blocks.push((
                        SeqNum::new(a.wrapping_add(remote_isn)),
                        SeqNum::new(b.wrapping_add(remote_isn)),
                    ));
                }
            }
            ScriptOption::Md5(digest) => w.md5 = Some(*digest),
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
    if w.fast_open != got.fast_open {
        let show = |c: Option<wire::FastOpenCookie>| match c {
            None => "none".to_string(),
            Some(c) => {
                let hex: String = c.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
                format!("{} {hex}", if c.experimental { "FOEXP" } else { "FO" })
            }
        };
        return diff("fast open", show(w.fast_open), show(got.fast_open));
    }
    // packetdrill's verify_outbound_tcp_option compares an MD5 option byte for byte.
    if w.md5 != got.md5 {
        let show = |d: Option<[u8; 16]>| match d {
            None => "none".to_string(),
            Some(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
        };
        return diff("md5", show(w.md5), show(got.md5));
    }
    if w.sack_blocks.as_slice() != got.sack_blocks.as_slice() {
        return diff(
            "sack",
            format!("{:?}", w.sack_blocks.as_slice()),
            format!("{:?}", got.sack_blocks.as_slice()),
        );
    }
    Ok(())
}

/// An ICMP line's type and code, by packetdrill's names (icmp_packet.c's tables: RFC 792
/// and RFC 4443 numbers) or as `type_N` / `code_N`; a missing code is 0. `CODE`, left
/// undefined, is what packetdrill's run_all.py defines it as: host_unreachable.
fn icmp_type_code(v6: bool, type_name: &str, code_name: Option<&str>) -> Result<(u8, u8), String> {
    let numbered =
        |word: &str, prefix: &str| -> Option<u8> { word.strip_prefix(prefix)?.parse().ok() };
    const V4_TYPES: &[(&str, u8)] = &[
        ("echo_reply", 0),
        ("unreachable", 3),
        ("source_quench", 4),
        ("redirect", 5),
        ("echo_request", 8),
        ("time_exceeded", 11),
        ("parameter_problem", 12),
        ("timestamp_request", 13),
        ("timestamp_reply", 14),
        ("information_request", 15),
        ("information_reply", 16),
        ("address_mask_request", 17),
        ("address_mask_reply", 18),
    ];
    const V6_TYPES: &[(&str, u8)] = &[
        ("unreachable", 1),
        ("packet_too_big", 2),
        ("time_exceeded", 3),
        ("parameter_problem", 4),
        ("echo_request", 128),
        ("echo_reply", 129),
    ];
    const V4_UNREACHABLE: &[(&str, u8)] = &[
        ("net_unreachable", 0),
        ("host_unreachable", 1),
        ("protocol_unreachable", 2),
        ("port_unreachable", 3),
        ("frag_needed", 4),
        ("source_route_failed", 5),
        ("net_unknown", 6),
        ("host_unknown", 7),
        ("source_host_isolated", 8),
        ("net_prohibited", 9),
        ("host_prohibited", 10),
        ("net_unreachable_for_tos", 11),
        ("host_unreachable_for_tos", 12),
        ("packet_filtered", 13),
        ("precedence_violation", 14),
        ("precedence_cutoff", 15),
    ];
    const V6_UNREACHABLE: &[(&str, u8)] = &[
        ("net_unreachable", 0),
        ("no_route", 0),
        ("admin_prohibited", 1),
        ("not_neighbour", 2),
        ("address_unreachable", 3),
        ("port_unreachable", 4),
    ];
    const V6_TIME_EXCEEDED: &[(&str, u8)] = &[("exceeded_hop_limit", 0), ("exceeded_frag_time", 1)];
    const V6_PARAM_PROBLEM: &[(&str, u8)] = &[
        ("header_field", 0),
        ("unknown_next_header", 1),
        ("unknown_option", 2),
    ];
    let lookup =
        |table: &[(&str, u8)], word: &str| table.iter().find(|(n, _)| *n == word).map(|(_, v)| *v);
    let types = if v6 { V6_TYPES } else { V4_TYPES };
    let msg_type = numbered(type_name, "type_")
        .or_else(|| lookup(types, type_name))
        .ok_or_else(|| format!("bad ICMP type {type_name}"))?;
    let codes: &[(&str, u8)] = match (v6, msg_type) {
        (false, 3) => V4_UNREACHABLE,
        (true, 1) => V6_UNREACHABLE,
        (true, 3) => V6_TIME_EXCEEDED,
        (true, 4) => V6_PARAM_PROBLEM,
        _ => &[],
    };
    let code = match code_name {
        None => 0,
        Some("CODE") => lookup(codes, "host_unreachable").ok_or("bad ICMP code CODE")?,
        Some(word) => numbered(word, "code_")
            .or_else(|| lookup(codes, word))
            .ok_or_else(|| format!("bad ICMP code {word}"))?,
    };
    Ok((msg_type, code))
}
