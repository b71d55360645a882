//! The Linux TUN backend: a TUN interface whose kernel side gets an address and whose
//! other side is a synack [`Stack`], driven by one thread that polls the device and the
//! stack's next deadline. Application threads use the stack through [`crate::net`].
//!
//! ```no_run
//! use synack::tun::{Interface, InterfaceConfig};
//! let iface = Interface::open(InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?))?;
//! let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:8080".parse()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod control;
mod impair;
mod offload;
mod sys;

use crate::trace::pcap::PcapWriter;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sim::LinkConfig;
use crate::{Config, ConnectionHandle, Event, Instant, ListenerHandle, Stack};
pub use impair::ImpairStats;
use impair::{Direction, Impairment};
pub use offload::OffloadStats;

/// An address with its prefix length, as `198.18.0.2/15` or `2001:db8::2/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'/{p}' is not a prefix length from 0 to {max}"))?
        };
        Ok(Cidr { addr, prefix })
    }
}

/// How to set up an interface.
#[derive(Clone, Debug)]
pub struct InterfaceConfig {
    /// Interface name (created if it does not exist).
    pub name: String,
    /// The stack's addresses (with the link's prefix length).
    pub addrs: Vec<Cidr>,
    /// The kernel side's addresses, one per family used.
    pub kernel_addrs: Vec<IpAddr>,
    /// MTU of the interface (the stack's MSS follows it).
    pub mtu: usize,
    /// The stack's configuration.
    pub stack: Config,
    /// Use the kernel's segmentation and checksum offload when it supports it
    /// (`IFF_VNET_HDR` + `TUNSETOFFLOAD`). Ignored with `impair`, which works per packet.
    pub offload: bool,
    /// Impair the link in both directions with the simulator's link model (`--impair`).
    pub impair: Option<LinkConfig>,
    /// Seed of the impairment's randomness.
    pub impair_seed: u64,
    /// Write every packet through the device, both ways, to this pcap file (wall-clock
    /// times). Outgoing packets are captured as the stack sent them, before offload
    /// merges them into super-segments; incoming ones as the stack receives them.
    pub pcap: Option<std::path::PathBuf>,
    /// Answer `synack ss` on this Unix socket (see [`control`]); None: no control socket.
    pub control: Option<std::path::PathBuf>,
}

impl InterfaceConfig {
    /// One address for the stack and one for the kernel, MTU 1500, default stack settings
    /// (secret keys from the operating system's random source).
    pub fn new(name: &str, addr: Cidr, kernel_addr: IpAddr) -> InterfaceConfig {
        InterfaceConfig {
            name: name.into(),
            addrs: vec![addr],
            kernel_addrs: vec![kernel_addr],
            mtu: 1500,
            stack: Config::default(),
            offload: true,
            impair: None,
            impair_seed: 1,
            pcap: None,
            control: None,
        }
    }
}

type EventHook = Box<dyn FnMut(&Event) + Send>;

/// What the driver thread and application threads share.
pub(crate) struct Shared {
    pub(crate) core: Mutex<Core>,
    /// Signalled after every driver iteration and every application call.
    pub(crate) changed: Condvar,
    device: File,
    /// Every packet on the device carries a `virtio_net_hdr`.
    vnet: bool,
    wake_tx: File,
    stop: AtomicBool,
}

/// The stack and its clock, under the mutex.
pub(crate) struct Core {
    pub(crate) stack: Stack,
    start: std::time::Instant,
    hook: Option<EventHook>,
    impair: Option<Impairment>,
    offload: OffloadStats,
    /// The deadline the driver thread sleeps until (None: a full second, or awake).
    sleeping_until: Option<Instant>,
    /// Async tasks waiting for something to happen to a socket.
    wakers: Vec<(WakeKey, Waker)>,
    /// The capture, when asked for (`InterfaceConfig::pcap`).
    pcap: Option<PcapWriter<std::io::BufWriter<std::fs::File>>>,
}

/// What an async task waits on: a connection or a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeKey {
    /// A connection.
    Conn(ConnectionHandle),
    /// A listener.
    Listener(ListenerHandle),
}

impl WakeKey {
    /// The socket an event concerns.
    fn of(e: &Event) -> Option<WakeKey> {
        match *e {
            Event::StateChanged { conn, .. }
            | Event::Connected(conn)
            | Event::Readable(conn)
            | Event::Writable(conn)
            | Event::SoftError { conn, .. }
            | Event::Error { conn, .. } => Some(WakeKey::Conn(conn)),
            Event::Incoming(l) => Some(WakeKey::Listener(l)),
            Event::Warning { .. } => None,
        }
    }
}

impl Core {
    /// Add a packet to the capture, if there is one (a failed write ends the capture).
    fn capture(&mut self, packet: &[u8]) {
        if let Some(w) = self.pcap.as_mut() {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            if w.write_packet(micros, packet)
                .and_then(|_| w.flush())
                .is_err()
            {
                self.pcap = None;
            }
        }
    }

    /// Wake `waker` at the next event for `key` (called with the lock held, so no event
    /// can slip between the failed attempt and the registration).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn register(&mut self, key: WakeKey, waker: &Waker) {
        if !self
            .wakers
            .iter()
            .any(|(k, w)| *k == key && w.will_wake(waker))
        {
            self.wakers.push((key, waker.clone()));
        }
    }

    fn wake(&mut self, key: WakeKey) {
        self.wakers.retain(|(k, w)| {
            if *k == key {
                w.wake_by_ref();
            }
            *k != key
        });
    }

    /// The stack's notion of now: microseconds since the interface opened.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock, for a call on a socket: fails once the [`Interface`] is gone.
    pub(crate) fn lock_open(&self) -> io::Result<MutexGuard<'_, Core>> {
        let core = self.lock();
        self.check_open()?;
        Ok(core)
    }

    /// `Err` once the [`Interface`] has been dropped: its driver is stopped, so no
    /// packet will move again for any of its sockets.
    pub(crate) fn check_open(&self) -> io::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(interface_closed());
        }
        Ok(())
    }

    /// After an application call: send what the stack wants to send and report events.
    /// Waiting threads are woken only if something happened, and the driver only if the
    /// stack now has an earlier deadline than the one it sleeps until: a call that found
    /// nothing to do (WouldBlock) must not wake everyone else, or waiters wake each other
    /// in a storm.
    pub(crate) fn after_call(&self, core: &mut Core) {
        if self.stop.load(Ordering::SeqCst) {
            // The interface is gone: nothing is sent any more, nobody is left to wake.
            return;
        }
        let progressed = self.flush(core);
        let earlier = match (core.stack.poll_timeout(), core.sleeping_until) {
            (Some(t), Some(until)) => t < until,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier || progressed {
            let _ = (&self.wake_tx).write(&[1]);
        }
        if progressed {
            self.changed.notify_all();
        }
    }

    /// Send what the stack has to send (into the impaired link when there is one), let
    /// through every impaired packet that is due, and report events. Returns whether
    /// anything was sent or reported.
    fn flush(&self, core: &mut Core) -> bool {
        let now = core.now();
        let mut progressed = false;
        // Packets released towards the stack make it answer: go round until quiet.
        for _ in 0..64 {
            let mut batch = Vec::new();
            while let Some(p) = core.stack.poll_transmit(now) {
                match core.impair.as_mut() {
                    Some(imp) => imp.submit(now, Direction::ToKernel, p),
                    None => batch.push(p),
                }
            }
            let mut fed_stack = false;
            while let Some((dir, p)) = core.impair.as_mut().and_then(|imp| imp.release(now)) {
                match dir {
                    Direction::ToKernel => batch.push(p),
                    Direction::ToStack => {
                        core.stack.receive(now, &p);
                        fed_stack = true;
                    }
                }
            }
            progressed |= !batch.is_empty() || fed_stack;
            self.write_batch(core, batch);
            if !fed_stack {
                break;
            }
        }
        while let Some(e) = core.stack.poll_event() {
            progressed = true;
            if let Some(key) = WakeKey::of(&e) {
                core.wake(key);
            }
            if let Some(h) = core.hook.as_mut() {
                h(&e);
            }
        }
        progressed
    }
}

impl Shared {
    /// Write packets to the kernel: merged into super-segments when offload is on, each
    /// behind its virtio header when the device has them. A full device queue drops the
    /// packet; TCP retransmits it.
    fn write_batch(&self, core: &mut Core, batch: Vec<Vec<u8>>) {
        for p in &batch {
            core.capture(p);
        }
        if !self.vnet {
            for p in batch {
                let _ = (&self.device).write(&p);
            }
            return;
        }
        let packets = if core.offload.enabled {
            offload::coalesce(batch, &mut core.offload)
        } else {
            batch.into_iter().map(|p| (offload::PLAIN, p)).collect()
        };
        for (hdr, p) in packets {
            let hdr = hdr.to_bytes();
            let _ = (&self.device).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(&p)]);
        }
    }
}

/// A TUN interface with a synack stack on its far side, and the thread that drives it.
pub struct Interface {
    pub(crate) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface").finish_non_exhaustive()
    }
}

impl Interface {
    /// Create (or attach to) the TUN interface, give its kernel side the kernel
    /// addresses, bring it up, and start the driver thread. Needs root or CAP_NET_ADMIN.
    pub fn open(config: InterfaceConfig) -> io::Result<Interface> {
        // The impairment model works packet by packet: no super-segments with it.
        let vnet = config.offload && config.impair.is_none();
        let device = sys::open_tun(&config.name, vnet)?;
        let offload_on = vnet && sys::set_offload(&device).is_ok();
        sys::set_mtu(&config.name, config.mtu)?;
        sys::set_up(&config.name)?;
        let mut stack = Stack::new(Config {
            mtu: config.mtu,
            ..config.stack.clone()
        });
        for cidr in &config.addrs {
            stack.add_address(cidr.addr);
        }
        for k in &config.kernel_addrs {
            let prefix = config
                .addrs
                .iter()
                .find(|c| c.addr.is_ipv4() == k.is_ipv4())
                .map_or(0, |c| c.prefix);
            match k {
                IpAddr::V4(a) => sys::add_ipv4(&config.name, *a, prefix)?,
                IpAddr::V6(a) => sys::add_ipv6(&config.name, *a, prefix)?,
            }
        }
        let pcap = match &config.pcap {
            Some(path) => Some(PcapWriter::new(std::io::BufWriter::new(
                std::fs::File::create(path)?,
            ))?),
            None => None,
        };
        let (wake_rx, wake_tx) = sys::pipe()?;
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                stack,
                start: std::time::Instant::now(),
                hook: None,
                wakers: Vec::new(),
                pcap,
                sleeping_until: None,
                offload: OffloadStats {
                    enabled: offload_on,
                    ..OffloadStats::default()
                },
                impair: config
                    .impair
                    .clone()
                    .map(|c| Impairment::new(c, config.impair_seed)),
            }),
            changed: Condvar::new(),
            device,
            vnet,
            wake_tx,
            stop: AtomicBool::new(false),
        });
        let driver = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("synack-{}", config.name))
            .spawn(move || drive(&driver, wake_rx))?;
        let iface = Interface {
            shared,
            thread: Some(thread),
        };
        if let Some(path) = &config.control {
            control::serve(path, iface.stack_handle())?;
        }
        Ok(iface)
    }

    /// Call `hook` with every event the stack reports (state changes, errors, ...), on
    /// the driver thread. Used by `synack serve -v`.
    pub fn on_event(&self, hook: impl FnMut(&Event) + Send + 'static) {
        self.shared.lock().hook = Some(Box::new(hook));
    }

    /// Wait up to `timeout` until every connection has finished closing (none left but
    /// TIME_WAIT ones, nothing held by the impairment), so that exiting the process does
    /// not cut off a FIN or its ACK. Returns whether that happened in time.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut core = self.shared.lock();
        loop {
            let open =
                core.stack.connections().iter().any(|(_, _, s)| {
                    !matches!(s, crate::TcpState::TimeWait | crate::TcpState::Closed)
                });
            let held = core
                .impair
                .as_ref()
                .is_some_and(|i| i.next_release().is_some());
            if !open && !held {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            core = self
                .shared
                .changed
                .wait_timeout(core, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// What segmentation offload did so far (`enabled` false when it is off).
    pub fn offload_stats(&self) -> OffloadStats {
        self.shared.lock().offload
    }

    /// What `--impair` did so far (None without impairment).
    pub fn impairment_stats(&self) -> Option<ImpairStats> {
        self.shared.lock().impair.as_ref().map(|i| i.stats)
    }

    /// Run `f` on the stack (for statistics and snapshots).
    pub fn with_stack<T>(&self, f: impl FnOnce(&mut Stack, Instant) -> T) -> T {
        self.stack_handle().with_stack(f)
    }

    /// A handle on the stack that other threads may keep (a control socket answering
    /// `synack ss`, a metrics exporter); it does not keep the interface open.
    pub fn stack_handle(&self) -> StackHandle {
        StackHandle(Arc::clone(&self.shared))
    }
}

/// See [`Interface::stack_handle`].
#[derive(Clone)]
pub struct StackHandle(Arc<Shared>);

impl std::fmt::Debug for StackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StackHandle")
    }
}

impl StackHandle {
    /// Run `f` on the stack, with the interface's current time.
    pub fn with_stack<T>(&self, f: impl FnOnce(&mut Stack, Instant) -> T) -> T {
        let mut core = self.0.lock();
        let now = core.now();
        let out = f(&mut core.stack, now);
        self.0.after_call(&mut core);
        out
    }
}

/// The error of every call on a socket whose interface is gone.
pub(crate) fn interface_closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the synack interface of this socket is closed (its tun::Interface was dropped); \
         open a new Interface and connect again",
    )
}

impl Drop for Interface {
    /// Stops the driver; every call pending on one of the interface's sockets returns
    /// at once with an error saying the interface is closed, and so does every later one.
    fn drop(&mut self) {
        // Set under the lock, so that a caller between its check and its wait cannot
        // miss the wake-ups below.
        let wakers = {
            let mut core = self.shared.lock();
            self.shared.stop.store(true, Ordering::SeqCst);
            std::mem::take(&mut core.wakers)
        };
        for (_, w) in wakers {
            w.wake();
        }
        self.shared.changed.notify_all();
        let _ = (&self.shared.wake_tx).write(&[1]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The driver loop: wait for a packet, a wake-up or the stack's deadline; feed packets
/// and time in; write packets out; tell waiting application threads.
fn drive(shared: &Shared, mut wake_rx: File) {
    // A TSO super-segment is up to 64 KiB, after its virtio header.
    let mut buf = vec![0u8; 65536 + offload::VNET_HDR_LEN];
    let fds = [shared.device.as_raw_fd(), wake_rx.as_raw_fd()];
    while !shared.stop.load(Ordering::SeqCst) {
        let timeout_ms = {
            let mut core = shared.lock();
            let now = core.now();
            let impaired = core.impair.as_ref().and_then(Impairment::next_release);
            let next = match (core.stack.poll_timeout(), impaired) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            core.sleeping_until = Some(next.unwrap_or(now + Duration::from_secs(1)));
            match next {
                None => 1000,
                Some(t) if t <= now => 0,
                // Round up so that we wake at or after the deadline, never just before.
                Some(t) => ((t - now).as_micros().div_ceil(1000)).min(1000) as i32,
            }
        };
        if sys::poll_readable(&fds, timeout_ms).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut drain = [0u8; 64];
        while matches!(wake_rx.read(&mut drain), Ok(n) if n > 0) {}
        let mut core = shared.lock();
        core.sleeping_until = None;
        let mut progressed = false;
        for _ in 0..256 {
            match (&shared.device).read(&mut buf) {
                Ok(n) if n > 0 => {
                    let now = core.now();
                    let range = if shared.vnet {
                        match offload::inbound(&mut buf[..n], &mut core.offload) {
                            Some(r) => r,
                            None => continue,
                        }
                    } else {
                        0..n
                    };
                    let packet = &buf[range];
                    core.capture(packet);
                    progressed = true;
                    let ack = offload::is_bare_tcp(packet);
                    match core.impair.as_mut() {
                        Some(imp) => imp.submit(now, Direction::ToStack, packet.to_vec()),
                        None => core.stack.receive(now, packet),
                    }
                    // Answer each ACK before reading the next, as a kernel does: what it
                    // opens goes out on its own clock, not as one burst for a whole batch
                    // of ACKs (bursts overflow a shallow bottleneck queue). Data is
                    // answered per batch, so that its ACKs coalesce as with GRO.
                    if ack {
                        shared.flush(&mut core);
                    }
                }
                _ => break,
            }
        }
        let now = core.now();
        core.stack.on_timeout(now);
        progressed |= shared.flush(&mut core);
        drop(core);
        if progressed {
            shared.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_both_families_and_rejects_nonsense() {
        assert_eq!("198.18.0.2/15".parse::<Cidr>().unwrap().prefix, 15);
        assert_eq!("2001:db8::2/64".parse::<Cidr>().unwrap().prefix, 64);
        assert_eq!("198.18.0.2".parse::<Cidr>().unwrap().prefix, 32);
        assert!("198.18.0.2/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn an_interface_stack_draws_random_secrets_by_default() {
        let c = InterfaceConfig::new(
            "tun0",
            "198.18.0.2/15".parse().unwrap(),
            [198, 18, 0, 1].into(),
        );
        assert_eq!(c.stack.secrets, crate::Secrets::Random);
    }
}
