//! One synack stack as packetdrill drives it, in safe Rust: a virtual clock that moves
//! only when packetdrill sleeps or waits for a packet, the packets synack sends queued
//! with their times, and socket calls that block the way the kernel's do (the calling
//! thread waits until the stack lets the call finish; packetdrill makes blocking calls
//! from a thread of its own).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use synack::{Config, Instant, Stack};
use synack_drill::sockets::{CallResult, Errno, Sockets};

/// The wall-clock time the virtual clock starts at, in microseconds since the epoch
/// (packetdrill only ever uses differences).
pub const EPOCH_USECS: i64 = 1_700_000_000_000_000;

/// The stack and everything around it, behind one lock.
pub struct State {
    pub socks: Sockets,
    pub now: Instant,
    /// Packets synack sent, with when, not yet taken by packetdrill.
    out: VecDeque<(Instant, Vec<u8>)>,
    /// Threads waiting in a blocking call.
    blocked: usize,
    /// A blocking call returned since packetdrill last slept: its thread still has to
    /// record the result under packetdrill's own lock.
    woken: bool,
}

impl State {
    /// Take what the stack sends now.
    fn pump(&mut self) {
        while let Some(p) = self.socks.stack.poll_transmit(self.now) {
            self.out.push_back((self.now, p));
        }
        // The stack's events are the sockets' wakeups.
        while let Some(ev) = self.socks.stack.poll_event() {
            self.socks.on_event(&ev);
        }
    }
}

/// A synack stack for packetdrill.
pub struct Instance {
    state: Mutex<State>,
    changed: Condvar,
    /// The sysctls `--so_flags` named: applied after the namespace's, so they win.
    given: Vec<(String, String)>,
    /// Read the namespace's sysctls at each socket() (`proc_sysctls=0` turns it off).
    proc_sysctls: bool,
    /// When packetdrill first asked for a packet that synack will never send (no
    /// packet queued, no timer, no call in progress): how long it has waited.
    starved_since: Mutex<Option<std::time::Instant>>,
    /// How long (wall clock) packetdrill may ask for such a packet before the run
    /// fails (`receive_timeout_ms=N`, default [`RECEIVE_TIMEOUT`]).
    receive_timeout: Duration,
}

/// How long (wall clock) packetdrill may ask for a packet that synack will never send
/// before the run fails, as packetdrill's own receive timeout (the packet's time plus
/// two seconds) would fail it: packetdrill gives the library no timeout and calls it
/// again for ever.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the network namespace's IPv4 sysctls are.
const PROC_IPV4: &str = "/proc/sys/net/ipv4";

/// Settings packetdrill's `defaults.sh` gives every script (the library cannot see the
/// shell lines that set them on a kernel).
const PACKETDRILL_DEFAULTS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_rmem", "4096 540000 15728640"),
    ("net.ipv4.tcp_wmem", "4096 262144 4194304"),
    ("net.ipv4.tcp_syn_retries", "5"),
    ("net.ipv4.tcp_synack_retries", "5"),
];

impl Instance {
    /// A stack configured by `--so_flags`: comma-separated `local_ip=ADDR` (the address
    /// packetdrill's `--local_ip` gives the stack; needed for connect()), `mtu=N`, and
    /// any sysctl of `synack_drill::sysctl`'s table by its short name (`tcp_sack=0`;
    /// `tcp_rmem=4096:87380:6291456` with colons for spaces). Without flags the stack has
    /// Linux's defaults plus packetdrill's `defaults.sh` settings. At each `socket()` the
    /// network namespace's `net.ipv4.tcp_*` sysctls are read and applied (the scripts'
    /// shell lines set them for real), then those `--so_flags` names again;
    /// `proc_sysctls=0` turns the reading off.
    pub fn new(flags: &str) -> Result<Instance, String> {
        let mut cfg = Config::deterministic(1);
        // What a program sees of the send buffer is Linux's skb accounting, as in drill.
        cfg.send_accounting = synack::SendAccounting::LinuxSkb;
        let mut local: Option<IpAddr> = None;
        let mut named = Vec::new();
        let mut proc_sysctls = true;
        let mut receive_timeout = RECEIVE_TIMEOUT;
        let defaults = PACKETDRILL_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string(), false));
        let given = flags
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (k, v) = f.split_once('=').unwrap_or((f, ""));
                (k.to_string(), v.to_string(), true)
            });
        for (name, value, from_flags) in defaults.chain(given.collect::<Vec<_>>()) {
            match name.as_str() {
                "local_ip" => {
                    local = Some(
                        value
                            .parse()
                            .map_err(|_| format!("local_ip={value}: not an IP address"))?,
                    )
                }
                "mtu" => {
                    cfg.mtu = value
                        .parse()
                        .map_err(|_| format!("mtu={value}: not a number"))?
                }
                "proc_sysctls" => proc_sysctls = value != "0",
                "receive_timeout_ms" => {
                    receive_timeout = Duration::from_millis(
                        value
                            .parse()
                            .map_err(|_| format!("receive_timeout_ms={value}: not a number"))?,
                    )
                }
                _ => {
                    let dotted = if name.contains('.') {
                        name.clone()
                    } else {
                        format!("net.ipv4.{name}")
                    };
                    let value = if name.ends_with("mem") {
                        value.replace(':', " ")
                    } else {
                        value
                    };
                    synack_drill::sysctl::apply(
                        &synack_drill::sysctl::Assignment {
                            name: dotted.clone(),
                            value: value.clone(),
                        },
                        &mut cfg,
                    )?;
                    if from_flags {
                        named.push((dotted, value));
                    }
                }
            }
        }
        let mut stack = Stack::new(cfg);
        let local = local.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !local.is_unspecified() {
            stack.add_address(local);
        }
        Ok(Instance {
            state: Mutex::new(State {
                socks: Sockets::new(stack, local),
                now: Instant::from_secs(1),
                out: VecDeque::new(),
                blocked: 0,
                woken: false,
            }),
            changed: Condvar::new(),
            given: named,
            proc_sysctls,
            starved_since: Mutex::new(None),
            receive_timeout,
        })
    }

    /// Apply the network namespace's TCP sysctls to the stack (those it models; others
    /// are left alone), then the ones `--so_flags` named: what a kernel socket made now
    /// would get. Called at each `socket()`.
    pub fn read_sysctls(&self, st: &mut State) {
        if !self.proc_sysctls {
            return;
        }
        // The namespace's Fast Open key (root may read it): the stack's cookie key.
        let key = std::fs::read_to_string(format!("{PROC_IPV4}/tcp_fastopen_key"))
            .ok()
            .and_then(|k| synack::tcp::fastopen::parse_key(k.trim()));
        if let Some((primary, backup)) = key {
            st.socks.stack.set_fastopen_key(primary, backup);
        }
        let cfg = st.socks.stack.config_mut();
        if let Ok(dir) = std::fs::read_dir(PROC_IPV4) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("tcp_") || name == "tcp_fastopen_key" {
                    continue;
                }
                let Ok(value) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let a = synack_drill::sysctl::Assignment {
                    name: format!("net.ipv4.{name}"),
                    value: value.trim().replace('\t', " "),
                };
                // Sysctls synack does not model, or values it cannot take, keep the
                // stack's setting.
                let _ = synack_drill::sysctl::apply(&a, cfg);
            }
        }
        for (name, value) in &self.given {
            let a = synack_drill::sysctl::Assignment {
                name: name.clone(),
                value: value.clone(),
            };
            let _ = synack_drill::sysctl::apply(&a, cfg);
        }
    }

    /// Whether packetdrill has waited too long for a packet synack will never send
    /// (see [`RECEIVE_TIMEOUT`]); `starved`: this request found nothing to send.
    pub fn starved_too_long(&self, starved: bool) -> bool {
        let mut since = self.starved_since.lock().unwrap_or_else(|e| e.into_inner());
        if !starved {
            *since = None;
            return false;
        }
        let first = *since.get_or_insert_with(std::time::Instant::now);
        first.elapsed() >= self.receive_timeout
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Virtual time, in microseconds since the epoch. Each reading moves the clock on by
    /// a microsecond, as a real clock would between two readings: packetdrill spins on
    /// the clock for short waits (and to find its start time) instead of sleeping.
    pub fn now_usecs(&self) -> i64 {
        let st = self.lock();
        let until = st.now + Duration::from_micros(1);
        let st = self.advance(st, until);
        EPOCH_USECS + (st.now - Instant::ZERO).as_micros() as i64
    }

    /// Let threads blocked in calls look at what just changed, at the current time.
    fn let_blocked_run<'a>(&'a self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.notify_all();
        if st.blocked == 0 {
            return st;
        }
        self.changed
            .wait_timeout(st, Duration::from_millis(2))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// Fire the stack's timers up to `until`, one deadline at a time.
    fn advance<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        until: Instant,
    ) -> MutexGuard<'a, State> {
        while let Some(t) = st.socks.stack.poll_timeout().filter(|t| *t <= until) {
            st.now = st.now.max(t);
            let now = st.now;
            st.socks.stack.on_timeout(now);
            st.pump();
            st = self.let_blocked_run(st);
        }
        st.now = st.now.max(until);
        st.pump();
        self.let_blocked_run(st)
    }

    /// packetdrill's usleep(): virtual time passes.
    pub fn sleep(&self, usecs: u64) {
        let mut st = self.lock();
        if std::mem::take(&mut st.woken) {
            // packetdrill sleeps with its lock released: a call that just returned
            // (accept() woken by the ACK just injected) gets the real moment it needs
            // to record its result (the new descriptor) before the next event.
            drop(st);
            std::thread::sleep(Duration::from_millis(2));
            st = self.lock();
        }
        let until = st.now + Duration::from_micros(usecs);
        drop(self.advance(st, until));
    }

    /// A packet packetdrill injects. The address it is sent to is ours.
    pub fn inject(&self, packet: &[u8]) {
        let mut st = self.lock();
        if let Ok((ip, _)) = synack::wire::parse_ip(packet) {
            if !st.socks.stack.addresses().contains(&ip.dst) {
                st.socks.stack.add_address(ip.dst);
                if st.socks.local.is_unspecified() {
                    st.socks.local = ip.dst;
                }
            }
        }
        let now = st.now;
        st.socks.stack.receive(now, packet);
        st.pump();
        drop(self.let_blocked_run(st));
    }

    /// The next packet synack sends, with its time: virtual time runs on to the stack's
    /// next timer while there is none. None when nothing will ever be sent (no packet
    /// queued, no timer, no thread in a call that could send).
    pub fn sniff(&self) -> Option<(Vec<u8>, i64)> {
        let mut st = self.lock();
        loop {
            if let Some((t, p)) = st.out.pop_front() {
                return Some((p, EPOCH_USECS + (t - Instant::ZERO).as_micros() as i64));
            }
            if st.blocked > 0 {
                // A blocked call may be about to send: give it its turn first.
                let (g, timeout) = self
                    .changed
                    .wait_timeout(st, Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner());
                st = g;
                if !timeout.timed_out() || !st.out.is_empty() {
                    continue;
                }
            }
            match st.socks.stack.poll_timeout() {
                Some(t) => st = self.advance(st, t),
                None => return None,
            }
        }
    }

    /// Make a call that may block: `op` is tried now and, while it says EAGAIN on a
    /// blocking socket, again each time the stack changes.
    pub fn call(&self, fd: i32, mut op: impl FnMut(&mut State) -> CallResult) -> CallResult {
        let mut st = self.lock();
        let mut waited = false;
        loop {
            let r = op(&mut st);
            st.pump();
            self.changed.notify_all();
            if r != Err(Errno::EAGAIN) || st.socks.nonblocking(fd) {
                st.woken |= waited;
                return r;
            }
            waited = true;
            st.blocked += 1;
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            st.blocked -= 1;
        }
    }

    /// [`Instance::call`] for a call with MSG_DONTWAIT when `dontwait`: made once, as on
    /// a nonblocking socket.
    pub fn call_flags(
        &self,
        fd: i32,
        dontwait: bool,
        mut op: impl FnMut(&mut State) -> CallResult,
    ) -> CallResult {
        if !dontwait {
            return self.call(fd, op);
        }
        let mut st = self.lock();
        let was = st.socks.nonblocking(fd);
        let _ = st.socks.set_nonblocking(fd, true);
        let r = op(&mut st);
        let _ = st.socks.set_nonblocking(fd, was);
        st.pump();
        self.changed.notify_all();
        r
    }

    /// connect(): blocks (on a blocking socket) until the handshake ends.
    pub fn connect(&self, fd: i32, remote: SocketAddr) -> CallResult {
        let mut first = true;
        self.call(fd, |st| {
            if std::mem::take(&mut first) {
                let now = st.now;
                st.socks.connect(now, fd, remote)
            } else {
                st.socks.connect_result(fd)
            }
        })
    }

    /// poll(): blocks up to `timeout_ms` of virtual time (negative: for ever) until one
    /// of the descriptors is ready; returns each one's revents.
    pub fn poll(&self, fds: &[(i32, u32)], timeout_ms: i32) -> Vec<u32> {
        let mut st = self.lock();
        let start = st.now;
        loop {
            let now = st.now;
            let revents: Vec<u32> = fds
                .iter()
                .map(|&(fd, events)| st.socks.revents(now, fd, events))
                .collect();
            let expired =
                timeout_ms >= 0 && st.now >= start + Duration::from_millis(timeout_ms as u64);
            if revents.iter().any(|r| *r != 0) || expired {
                return revents;
            }
            st.blocked += 1;
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            st.blocked -= 1;
        }
    }

    /// epoll_wait(): blocks up to `timeout_ms` of virtual time (negative: for ever) until
    /// an item of the instance `epfd` is ready; returns up to `max` (events, data).
    pub fn epoll_wait(
        &self,
        epfd: i32,
        max: i64,
        timeout_ms: i32,
    ) -> Result<Vec<(u32, u64)>, synack_drill::sockets::Errno> {
        let mut st = self.lock();
        let start = st.now;
        loop {
            let now = st.now;
            let got = st.socks.epoll_wait(now, epfd, max)?;
            let expired =
                timeout_ms >= 0 && st.now >= start + Duration::from_millis(timeout_ms as u64);
            if !got.is_empty() || expired {
                return Ok(got);
            }
            st.blocked += 1;
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            st.blocked -= 1;
        }
    }

    /// Run `f` on the state under the lock (calls that never block).
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.lock();
        let r = f(&mut st);
        st.pump();
        self.changed.notify_all();
        r
    }
}
