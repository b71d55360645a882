//! The runtime around a [`Stack`] on any [`Device`]: one stack and one driver thread per
//! queue (device), the lock the application threads share with the driver, the wake-ups
//! of waiting sockets, the capture, the impairment and the offload of packets that carry
//! a `virtio_net_hdr`. [`Interface`] is what the `net` and `tokio` sockets take.

use crate::trace::pcap::PcapWriter;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::control;
use super::impair::{Direction, ImpairStats, Impairment};
use super::offload::{self, OffloadStats};
use super::readiness::{Interest, Readiness, WakeKey};
use super::sys;
use super::{Device, DeviceConfig};
use crate::wire::TxChecksum;
use crate::{Config, Event, Instant, Stack};

type EventHook = Box<dyn FnMut(&Event) + Send>;

/// The event hook, one for every queue; `set` spares the drivers its lock while there
/// is none (the usual case), so that queues do not meet on it for every event.
#[derive(Default)]
struct HookSlot {
    set: AtomicBool,
    hook: Mutex<Option<EventHook>>,
}
type Capture = Arc<Mutex<Option<PcapWriter<std::io::BufWriter<std::fs::File>>>>>;

/// What the driver thread and application threads share.
///
/// Two locks, always taken in this order: `core` (the stack) and `writer` (the device's
/// sending side). Whoever holds `core` queues the packets the stack produced in
/// `Core::outbox`; when it lets go ([`CoreGuard`]'s drop) it takes `writer` first, so
/// that packets reach the device in the order the stack made them, then releases
/// `core` and writes: the next thread runs the stack while this one is in `write(2)`.
pub(crate) struct Shared {
    core: Mutex<Core>,
    writer: Mutex<Writer>,
    /// Offload accepted: outgoing segments are merged into super-segments, and the
    /// stack leaves TCP checksums partial for the kernel to finish.
    coalesce: bool,
    /// Packet buffers written out, for the stack to build the next packets in.
    spare: Mutex<Vec<Vec<u8>>>,
    /// Signalled when a connection changes state (for [`Interface::wait_closed`]);
    /// sockets are woken through [`Readiness`], each by its own events.
    pub(crate) changed: Condvar,
    device: Box<dyn Device>,
    /// Every packet on the device carries a `virtio_net_hdr`.
    vnet: bool,
    /// The driver's wake pipe (also held by the waker of a device without an fd).
    wake_tx: Arc<File>,
    stop: AtomicBool,
    /// The event hook, one for every queue of the interface.
    hook: Arc<HookSlot>,
}

/// The sending side of the device: what coalescing did, what was written.
#[derive(Default)]
struct Writer {
    offload: OffloadStats,
    packets_written: u64,
    /// The writes of the batch being written (kept to reuse its storage).
    writes: Vec<offload::Write>,
}

/// The stack and its clock, under the mutex.
pub(crate) struct Core {
    /// Packets made under the lock, written when it is released.
    outbox: Vec<offload::Packet>,
    /// Buffers to build packets in (taken from `Shared::spare` as they run out).
    pool: Vec<Vec<u8>>,
    pub(crate) stack: Stack,
    start: std::time::Instant,
    impair: Option<Impairment>,
    offload: OffloadStats,
    /// The deadline the driver thread sleeps until (None: a full second, or awake).
    sleeping_until: Option<Instant>,
    /// Tasks and threads waiting for something to happen to a socket.
    readiness: Readiness,
    /// What the runtime did so far.
    runtime: RuntimeStats,
    /// The capture, when asked for (`InterfaceConfig::pcap`), shared by every queue.
    pcap: Option<Capture>,
}

/// What the runtime around the stack did so far ([`Interface::runtime_stats`]): how often
/// the driver and the application threads handed work to each other.
///
/// ```
/// use synack::device::{memory, DeviceConfig, Interface};
/// let (a, b) = memory::pair(256);
/// let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let _listener = synack::net::TcpListener::bind(&right, "198.18.0.2:7")?;
/// let _stream = synack::net::TcpStream::connect(&left, "198.18.0.2:7")?;
/// let stats = left.runtime_stats();
/// assert!(stats.packets_written >= 1 && stats.packets_read >= 1); // SYN out, SYN-ACK in
/// assert_eq!(stats.misrouted, 0); // one queue: nothing to hand over
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Times the driver woke up (a packet, a deadline or an application call).
    pub driver_wakeups: u64,
    /// Times an application call woke the driver, because the stack's next deadline
    /// moved earlier than the one the driver sleeps until.
    pub driver_kicks: u64,
    /// Packets read from the device.
    pub packets_read: u64,
    /// Packets written to the device (super-segments count once).
    pub packets_written: u64,
    /// Tasks and threads woken by events of the socket they wait on.
    pub socket_wakeups: u64,
    /// TCP segments (and ICMP errors about them) that arrived on a queue whose stack does
    /// not have their connection and were handed to the stack that has it (multi-queue).
    pub misrouted: u64,
}

impl std::ops::AddAssign for RuntimeStats {
    fn add_assign(&mut self, o: RuntimeStats) {
        let RuntimeStats {
            driver_wakeups,
            driver_kicks,
            packets_read,
            packets_written,
            socket_wakeups,
            misrouted,
        } = o;
        self.driver_wakeups += driver_wakeups;
        self.driver_kicks += driver_kicks;
        self.packets_read += packets_read;
        self.packets_written += packets_written;
        self.socket_wakeups += socket_wakeups;
        self.misrouted += misrouted;
    }
}

impl Core {
    /// Add a packet the stack made to the capture, if there is one, with its checksum
    /// completed when the stack left that to the kernel (`partial`).
    fn capture_out(&mut self, packet: &[u8], partial: bool) {
        if self.pcap.is_none() {
            return;
        }
        if partial {
            let mut whole = packet.to_vec();
            offload::complete_checksum(&mut whole);
            self.capture(&whole);
        } else {
            self.capture(packet);
        }
    }

    /// Add a packet to the capture, if there is one (a failed write ends the capture).
    fn capture(&mut self, packet: &[u8]) {
        let Some(capture) = self.pcap.as_ref() else {
            return;
        };
        let mut writer = capture.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = writer.as_mut() {
            let micros = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            if w.write_packet(micros, packet)
                .and_then(|_| w.flush())
                .is_err()
            {
                *writer = None;
            }
        }
    }

    /// Wake `waker` at the next event of `key` that concerns `interest` (called with the
    /// lock held, so no event can slip between the failed attempt and the registration).
    pub(crate) fn register(&mut self, key: WakeKey, interest: Interest, waker: &std::task::Waker) {
        self.readiness.register(key, interest, waker);
    }

    /// When the driver must next run: the stack's deadline or the impairment's next
    /// release, whichever comes first.
    fn next_deadline(&mut self) -> Option<Instant> {
        let impaired = self.impair.as_ref().and_then(Impairment::next_release);
        match (self.stack.poll_timeout(), impaired) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
    pub(crate) fn lock(&self) -> CoreGuard<'_> {
        CoreGuard {
            shared: self,
            guard: Some(self.core.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// The lock, for a call on a socket: fails once the [`Interface`] is gone.
    pub(crate) fn lock_open(&self) -> io::Result<CoreGuard<'_>> {
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

    /// After an application call: send what the stack wants to send and report events
    /// (each wakes only those waiting on its socket). The driver is woken only if the
    /// stack now has an earlier deadline than the one it sleeps until: what the call made
    /// the stack send is already written.
    pub(crate) fn after_call(&self, core: &mut Core) {
        if self.stop.load(Ordering::SeqCst) {
            // The interface is gone: nothing is sent any more, nobody is left to wake.
            return;
        }
        self.flush(core);
        let earlier = match (core.next_deadline(), core.sleeping_until) {
            (Some(t), Some(until)) => t < until,
            // Awake (None): the driver recomputes its deadline before it sleeps.
            (Some(_), None) | (None, _) => false,
        };
        if earlier {
            core.runtime.driver_kicks += 1;
            let _ = (&*self.wake_tx).write(&[1]);
        }
    }

    /// Send what the stack has to send (into the impaired link when there is one), let
    /// through every impaired packet that is due, and report events.
    fn flush(&self, core: &mut Core) {
        let now = core.now();
        // Packets released towards the stack make it answer: go round until quiet.
        for _ in 0..64 {
            let mut batch = Vec::new();
            loop {
                let mut p = match core.pool.pop() {
                    Some(p) => p,
                    None => {
                        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
                        std::mem::swap(&mut core.pool, &mut spare);
                        drop(spare);
                        core.pool.pop().unwrap_or_default()
                    }
                };
                // Zeroed once, when the buffer is new (or came back shorter).
                let max = core.stack.max_packet_size();
                if p.len() < max {
                    p.resize(max, 0);
                }
                let Some(t) = core.stack.poll_transmit_into(now, &mut p) else {
                    core.pool.push(p);
                    break;
                };
                match core.impair.as_mut() {
                    Some(imp) => {
                        p.truncate(t.len);
                        imp.submit(now, Direction::ToKernel, p)
                    }
                    None => batch.push(offload::Packet {
                        bytes: p,
                        len: t.len,
                        segment_size: t.segment_size.unwrap_or(0),
                    }),
                }
            }
            let mut fed_stack = false;
            while let Some((dir, p)) = core.impair.as_mut().and_then(|imp| imp.release(now)) {
                match dir {
                    Direction::ToKernel => batch.push(offload::Packet {
                        len: p.len(),
                        bytes: p,
                        segment_size: 0,
                    }),
                    Direction::ToStack => {
                        core.stack.receive(now, &p);
                        fed_stack = true;
                    }
                }
            }
            if core.pcap.is_some() {
                for p in &batch {
                    core.capture_out(p.data(), self.coalesce);
                }
            }
            core.outbox.append(&mut batch);
            if !fed_stack {
                break;
            }
        }
        let mut state_changed = false;
        let hooked = self.hook.set.load(Ordering::Acquire);
        let mut hook = None;
        while let Some(e) = core.stack.poll_event() {
            state_changed |= matches!(e, Event::StateChanged { .. });
            core.runtime.socket_wakeups += core.readiness.on_event(&e) as u64;
            if !hooked {
                continue;
            }
            let hook = hook
                .get_or_insert_with(|| self.hook.hook.lock().unwrap_or_else(|p| p.into_inner()));
            if let Some(h) = hook.as_mut() {
                h(&e);
            }
        }
        if state_changed {
            self.changed.notify_all();
        }
    }
}

/// The stack's lock. Dropping it writes what the holder made the stack send, after
/// letting go of the stack (see [`Shared`]).
pub(crate) struct CoreGuard<'a> {
    shared: &'a Shared,
    guard: Option<MutexGuard<'a, Core>>,
}

impl std::ops::Deref for CoreGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for CoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<'a> CoreGuard<'a> {
    /// Let go of the lock until a connection changes state or `timeout` passes.
    pub(crate) fn wait_changed(mut self, timeout: Duration) -> CoreGuard<'a> {
        let shared = self.shared;
        if !self.outbox.is_empty() {
            drop(self);
            self = shared.lock();
        }
        let guard = self.guard.take().expect("held until dropped");
        let guard = shared
            .changed
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        CoreGuard {
            shared,
            guard: Some(guard),
        }
    }
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        let Some(mut core) = self.guard.take() else {
            return;
        };
        if core.outbox.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut core.outbox);
        let mut writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        drop(core);
        self.shared.write_batch(&mut writer, &mut batch);
        drop(writer);
        // The buffers go back for the next packets (a bounded number of them).
        let mut spare = self.shared.spare.lock().unwrap_or_else(|p| p.into_inner());
        let room = SPARE_BUFFERS.saturating_sub(spare.len());
        spare.extend(batch.into_iter().take(room).map(|p| p.bytes));
    }
}

impl Shared {
    /// Write packets to the device: merged into super-segments when offload is on (one
    /// [`Device::send_vectored`] each, gathering the segments' payloads where they are),
    /// each behind its virtio header when the device has them. A full device queue drops
    /// the packet; TCP retransmits it.
    fn write_batch(&self, writer: &mut Writer, batch: &mut [offload::Packet]) {
        if !self.vnet {
            writer.packets_written += batch.len() as u64;
            for p in batch.iter() {
                let _ = self.device.send(p.data());
            }
            return;
        }
        let Writer {
            offload: stats,
            packets_written,
            writes,
        } = writer;
        offload::plan(batch, self.coalesce, self.coalesce, stats, writes);
        *packets_written += writes.len() as u64;
        for w in writes.iter() {
            let hdr = w.hdr.to_bytes();
            let mut iov = [IoSlice::new(&[]); offload::MAX_RUN + 1];
            iov[0] = IoSlice::new(&hdr);
            iov[1] = IoSlice::new(batch[w.first].data());
            for (slot, p) in iov[2..].iter_mut().zip(&batch[w.first + 1..w.end]) {
                *slot = IoSlice::new(&p.data()[w.hdr_len()..]);
            }
            let _ = self.device.send_vectored(&iov[..1 + w.end - w.first]);
        }
    }
}

/// Packet buffers kept per queue between batches (each of the largest packet's size:
/// 2 MiB with segmentation offload).
const SPARE_BUFFERS: usize = 32;

/// A packet device with synack on its far side: one stack and one driver thread per
/// queue (device). Made over any [`Device`] by [`Interface::new`] or
/// [`Interface::with_devices`], over TUN by [`crate::tun::Interface::open`]. The sockets of
/// [`crate::net`] and [`crate::tokio`] take it.
///
/// With several queues (for TUN `InterfaceConfig::queues`, `IFF_MULTI_QUEUE`) the kernel
/// hands each packet to one queue: by its flow's hash, or to the queue the flow's packets were
/// last written from. So a connection lives on the queue that first saw it (a passive
/// open) or that sent its SYN (an active open, spread round robin), and its packets are
/// written there. A segment that arrives on another queue (the kernel forgets a flow's
/// queue after a few idle seconds) is handed to the stack that has its connection and
/// counted in [`RuntimeStats::misrouted`]. A listener listens on every queue and
/// `accept` takes from all of them in turn. `synack ss`, the metrics and the statistics
/// add up the queues; limits (connections, orphans, TIME_WAIT entries, memory) and the
/// ephemeral port range are divided between them.
///
/// Two interfaces of two queues each, over two in-memory links:
///
/// ```
/// use std::time::Duration;
/// use synack::device::{memory, DeviceConfig, Interface};
/// use synack::net::{TcpListener, TcpStream};
/// let ((a0, b0), (a1, b1)) = (memory::pair(256), memory::pair(256));
/// let left = Interface::with_devices(vec![a0, a1], DeviceConfig::new("198.18.0.1".parse()?))?;
/// let right = Interface::with_devices(vec![b0, b1], DeviceConfig::new("198.18.0.2".parse()?))?;
/// assert_eq!(left.queues(), 2);
/// let listener = TcpListener::bind(&right, "198.18.0.2:7")?;
/// let stream = TcpStream::connect(&left, "198.18.0.2:7")?;
/// let (accepted, _) = listener.accept()?;
/// drop((stream, accepted));
/// // Let the FINs and their ACKs through before the interfaces go.
/// assert!(left.wait_closed(Duration::from_secs(5)));
/// assert!(right.wait_closed(Duration::from_secs(5)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Interface {
    pub(crate) shards: Vec<Arc<Shared>>,
    threads: Vec<JoinHandle<()>>,
    /// Where the next active open goes.
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface")
            .field("queues", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Queue `i` of `n`'s share of a limit (at least 1 of a non-zero limit).
fn share(limit: usize, n: usize) -> usize {
    if limit == 0 {
        0
    } else {
        limit.div_ceil(n)
    }
}

/// Queue `i` of `n`'s part of the ephemeral port range (the parts do not overlap, so two
/// queues never pick the same port towards one peer).
fn port_part(
    range: &std::ops::RangeInclusive<u16>,
    i: usize,
    n: usize,
) -> std::ops::RangeInclusive<u16> {
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let len = hi.saturating_sub(lo) + 1;
    let part = (len / n as u32).max(1);
    let start = (lo + part * i as u32).min(hi);
    let end = if i + 1 == n {
        hi
    } else {
        (start + part - 1).min(hi)
    };
    start as u16..=end as u16
}

impl Interface {
    /// Run a stack over `device`, one driver thread polling it: the device's
    /// [`capabilities`](Device::capabilities) decide the stack's MTU and offload.
    ///
    /// ```
    /// use synack::device::{self, DeviceConfig, Interface};
    /// let (a, b) = device::memory::pair(256);
    /// let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
    /// let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
    /// let listener = synack::net::TcpListener::bind(&right, "198.18.0.2:7")?;
    /// let stream = synack::net::TcpStream::connect(&left, "198.18.0.2:7")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(device: impl Device, config: DeviceConfig) -> io::Result<Interface> {
        Interface::with_devices(vec![device], config)
    }

    /// Run one stack and one driver thread per device (the queues of one multi-queue
    /// device, each a device of its own): a connection lives on the queue whose device
    /// carried its first segment (see [`Interface`]). Fails without a device.
    pub fn with_devices<D: Device>(devices: Vec<D>, config: DeviceConfig) -> io::Result<Interface> {
        let queues = devices.len();
        if queues == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an interface needs at least one device",
            ));
        }
        let caps: Vec<_> = devices.iter().map(Device::capabilities).collect();
        // Offload needs every packet's virtio header, on every queue; the impairment
        // works packet by packet, so it goes without super-segments.
        let offload_on =
            config.impair.is_none() && caps.iter().all(|c| c.virtio_net_hdr && c.offload);
        let mtu = caps.iter().map(|c| c.mtu).min().unwrap_or(1500);
        let pcap: Option<Capture> = match &config.pcap {
            Some(path) => Some(Arc::new(Mutex::new(Some(PcapWriter::new(
                std::io::BufWriter::new(std::fs::File::create(path)?),
            )?)))),
            None => None,
        };
        let hook = Arc::new(HookSlot::default());
        let start = std::time::Instant::now();
        let mut shards = Vec::with_capacity(queues);
        let mut pipes = Vec::with_capacity(queues);
        for (i, (device, caps)) in devices.into_iter().zip(&caps).enumerate() {
            let base = &config.stack;
            let mut stack = Stack::new(Config {
                mtu,
                ephemeral_ports: port_part(&base.ephemeral_ports, i, queues),
                max_connections: share(base.max_connections, queues),
                tcp_max_orphans: share(base.tcp_max_orphans, queues),
                tcp_max_tw_buckets: share(base.tcp_max_tw_buckets, queues),
                tcp_mem: base.tcp_mem.map(|m| share(m, queues)),
                // The device cuts super-segments (TSO) and finishes what the stack leaves
                // partial (NEEDS_CSUM).
                tso_max: if offload_on { 65535 } else { 0 },
                tx_checksum: if offload_on {
                    TxChecksum::Partial
                } else {
                    base.tx_checksum
                },
                ..base.clone()
            });
            for addr in &config.addrs {
                stack.add_address(*addr);
            }
            let (wake_rx, wake_tx) = sys::pipe()?;
            let wake_tx = Arc::new(wake_tx);
            if device.as_raw_fd().is_none() {
                // No fd to poll: the device wakes the driver through its wake pipe.
                device.set_waker(std::task::Waker::from(Arc::new(PipeWaker(Arc::clone(
                    &wake_tx,
                )))));
            }
            pipes.push(wake_rx);
            shards.push(Arc::new(Shared {
                core: Mutex::new(Core {
                    outbox: Vec::new(),
                    pool: Vec::new(),
                    stack,
                    start,
                    readiness: Readiness::default(),
                    runtime: RuntimeStats::default(),
                    pcap: pcap.clone(),
                    sleeping_until: None,
                    offload: OffloadStats {
                        enabled: offload_on,
                        ..OffloadStats::default()
                    },
                    impair: config
                        .impair
                        .clone()
                        .map(|c| Impairment::new(c, config.impair_seed.wrapping_add(i as u64))),
                }),
                writer: Mutex::new(Writer::default()),
                coalesce: offload_on,
                spare: Mutex::new(Vec::new()),
                changed: Condvar::new(),
                device: Box::new(device),
                vnet: caps.virtio_net_hdr,
                wake_tx,
                stop: AtomicBool::new(false),
                hook: Arc::clone(&hook),
            }));
        }
        let mut threads = Vec::with_capacity(queues);
        for (i, wake_rx) in pipes.into_iter().enumerate() {
            let all = shards.clone();
            let name = if queues > 1 {
                format!("synack-{}-{i}", config.name)
            } else {
                format!("synack-{}", config.name)
            };
            threads.push(
                std::thread::Builder::new()
                    .name(name)
                    .spawn(move || drive(&all, i, wake_rx))?,
            );
        }
        let iface = Interface {
            shards,
            threads,
            next: std::sync::atomic::AtomicUsize::new(0),
        };
        if let Some(path) = &config.control {
            control::serve(path, iface.stack_handle())?;
        }
        Ok(iface)
    }
    /// How many queues (stacks, driver threads) the interface has.
    pub fn queues(&self) -> usize {
        self.shards.len()
    }

    /// The queue a new active open goes to: each in turn.
    pub(crate) fn shard_for_connect(&self) -> Arc<Shared> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        Arc::clone(&self.shards[i])
    }

    /// Call `hook` with every event the stacks report (state changes, errors, ...), on
    /// the driver threads (one at a time). Used by `synack serve -v`.
    pub fn on_event(&self, hook: impl FnMut(&Event) + Send + 'static) {
        let slot = &self.shards[0].hook;
        *slot.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
        slot.set.store(true, Ordering::Release);
    }

    /// Wait up to `timeout` until every connection has finished closing (none left but
    /// TIME_WAIT ones, nothing held by the impairment), so that exiting the process does
    /// not cut off a FIN or its ACK. Returns whether that happened in time.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        self.shards.iter().all(|shared| {
            let mut core = shared.lock();
            loop {
                let open = core.stack.connections().iter().any(|(_, _, s)| {
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
                core = core.wait_changed(left.min(Duration::from_millis(50)));
            }
        })
    }

    /// What segmentation offload did so far, over every queue (`enabled` false when it
    /// is off).
    pub fn offload_stats(&self) -> OffloadStats {
        let mut total = OffloadStats::default();
        for shared in &self.shards {
            let inbound = shared.lock().offload;
            let out = shared
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .offload;
            total.enabled = inbound.enabled;
            total.super_in += inbound.super_in;
            total.largest_in = total.largest_in.max(inbound.largest_in);
            total.checksums_completed += inbound.checksums_completed;
            total.bad_headers += inbound.bad_headers;
            total.super_out += out.super_out;
            total.segments_merged += out.segments_merged;
        }
        total
    }

    /// What the runtime did so far, over every queue: driver wake-ups, packets moved,
    /// sockets woken, segments handed between queues.
    pub fn runtime_stats(&self) -> RuntimeStats {
        let mut total = RuntimeStats::default();
        for shared in &self.shards {
            let mut r = shared.lock().runtime;
            r.packets_written = shared
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .packets_written;
            total += r;
        }
        total
    }

    /// What `--impair` did so far over every queue (None without impairment).
    pub fn impairment_stats(&self) -> Option<ImpairStats> {
        let mut total: Option<ImpairStats> = None;
        for shared in &self.shards {
            if let Some(s) = shared.lock().impair.as_ref().map(|i| i.stats) {
                match total.as_mut() {
                    Some(t) => *t += s,
                    None => total = Some(s),
                }
            }
        }
        total
    }

    /// Run `f` on each queue's stack in turn (for statistics and snapshots).
    pub fn with_stacks<T>(&self, f: impl FnMut(&mut Stack, Instant) -> T) -> Vec<T> {
        self.stack_handle().with_stacks(f)
    }

    /// A handle on the stacks that other threads may keep (a control socket answering
    /// `synack ss`, a metrics exporter); it does not keep the interface open.
    pub fn stack_handle(&self) -> StackHandle {
        StackHandle(self.shards.clone())
    }
}

/// See [`Interface::stack_handle`].
///
/// ```
/// use synack::device::{memory, DeviceConfig, Interface};
/// let (a, _b) = memory::pair(256);
/// let iface = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// let handle = iface.stack_handle();
/// let reporter = std::thread::spawn(move || {
///     // Another thread (a metrics exporter, say) reads every queue's stack.
///     handle.with_stacks(|stack, _now| stack.connection_count()).iter().sum::<usize>()
/// });
/// assert_eq!(reporter.join().unwrap(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StackHandle(Vec<Arc<Shared>>);

impl std::fmt::Debug for StackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StackHandle")
    }
}

impl StackHandle {
    /// Run `f` on each queue's stack in turn, with that stack's current time.
    pub fn with_stacks<T>(&self, mut f: impl FnMut(&mut Stack, Instant) -> T) -> Vec<T> {
        self.0
            .iter()
            .map(|shared| {
                let mut core = shared.lock();
                let now = core.now();
                let out = f(&mut core.stack, now);
                shared.after_call(&mut core);
                out
            })
            .collect()
    }
}

/// The error of every call on a socket whose interface is gone.
pub(crate) fn interface_closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the synack interface of this socket is closed (its Interface was dropped); \
         open a new Interface and connect again",
    )
}

impl Drop for Interface {
    /// Stops the drivers; every call pending on one of the interface's sockets returns
    /// at once with an error saying the interface is closed, and so does every later one.
    fn drop(&mut self) {
        for shared in &self.shards {
            // Set under the lock, so that a caller between its check and its wait cannot
            // miss the wake-ups below.
            {
                let mut core = shared.lock();
                shared.stop.store(true, Ordering::SeqCst);
                core.readiness.wake_all();
            }
            shared.changed.notify_all();
            let _ = (&*shared.wake_tx).write(&[1]);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The driver loop of queue `me`: wait for a packet, a wake-up or the stack's deadline;
/// feed packets and time in; write packets out; wake the sockets events concern.
fn drive(shards: &[Arc<Shared>], me: usize, mut wake_rx: File) {
    // Packets read per round, before the stack's lock is taken to feed them all.
    const BATCH: usize = 64;
    let shared = &*shards[me];
    // A TSO super-segment is up to 64 KiB, after its virtio header; buffers are made as
    // a batch first needs them, and kept.
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut lens: Vec<usize> = Vec::with_capacity(BATCH);
    // Segments of flows this queue's stack does not have, to ask the other queues about.
    let mut foreign: Vec<(Vec<u8>, bool)> = Vec::new();
    // The device's fd when it has one; else its waker writes the wake pipe.
    let fds: Vec<_> = shared
        .device
        .as_raw_fd()
        .into_iter()
        .chain([wake_rx.as_raw_fd()])
        .collect();
    // The last round read a whole batch: more may wait (a device without an fd wakes
    // the driver only when a packet arrives), so do not sleep.
    let mut full = false;
    while !shared.stop.load(Ordering::SeqCst) {
        let timeout_ms = {
            let mut core = shared.lock();
            let now = core.now();
            let next = core.next_deadline();
            core.sleeping_until = Some(next.unwrap_or(now + Duration::from_secs(1)));
            match next {
                _ if full => 0,
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
        // Read what is there without the stack's lock (the application threads keep it
        // meanwhile), then feed it all under one.
        lens.clear();
        while lens.len() < BATCH {
            if bufs.len() == lens.len() {
                bufs.push(vec![0u8; 65536 + offload::VNET_HDR_LEN]);
            }
            match shared.device.recv(&mut bufs[lens.len()]) {
                Ok(n) if n > 0 => lens.push(n),
                _ => break,
            }
        }
        full = lens.len() == BATCH;
        // A quiet round gives back the buffers a busy one made (at most 8 are kept).
        if lens.len() < 8 {
            bufs.truncate(8);
        }
        let mut core = shared.lock();
        core.sleeping_until = None;
        core.runtime.driver_wakeups += 1;
        for (buf, &n) in bufs.iter_mut().zip(&lens) {
            let (range, verified) = if shared.vnet {
                let complete = core.pcap.is_some();
                match offload::inbound(&mut buf[..n], &mut core.offload, complete) {
                    Some(r) => r,
                    None => continue,
                }
            } else {
                (0..n, false)
            };
            let packet = &buf[range];
            core.runtime.packets_read += 1;
            if shards.len() > 1 && core.stack.has_flow(packet) == Some(false) {
                foreign.push((packet.to_vec(), verified));
                continue;
            }
            feed(shared, &mut core, packet, verified);
        }
        let now = core.now();
        core.stack.on_timeout(now);
        shared.flush(&mut core);
        // Dropping the lock writes what the round made the stack send.
        drop(core);
        for (packet, verified) in foreign.drain(..) {
            hand_over(shards, me, &packet, verified);
        }
    }
}

/// Give one packet read from the device to `shared`'s stack (through the impairment
/// when there is one); `verified`: the kernel vouches for its checksum.
fn feed(shared: &Shared, core: &mut Core, packet: &[u8], verified: bool) {
    let now = core.now();
    core.capture(packet);
    let ack = offload::is_bare_tcp(packet);
    match core.impair.as_mut() {
        Some(imp) => imp.submit(now, Direction::ToStack, packet.to_vec()),
        None if verified => core.stack.receive_checksum_verified(now, packet),
        None => core.stack.receive(now, packet),
    }
    // Answer each ACK before taking the next, as a kernel does: what it opens is sent
    // on its own clock, not as one burst for a whole batch of ACKs (bursts overflow a
    // shallow bottleneck queue). Data is answered per batch, so that its ACKs coalesce
    // as with GRO.
    if ack {
        shared.flush(core);
    }
}

/// A segment (or an ICMP error about one) that arrived on queue `me` for a flow its
/// stack does not have: to the
/// queue whose stack has it (its answers are written on that queue, which steers the
/// flow back there), else to `me` (a new connection, or a segment to answer with RST).
/// One lock at a time, so that drivers handing packets to each other never deadlock.
fn hand_over(shards: &[Arc<Shared>], me: usize, packet: &[u8], verified: bool) {
    for (i, shared) in shards.iter().enumerate() {
        if i == me {
            continue;
        }
        let mut core = shared.lock();
        if core.stack.has_flow(packet) == Some(true) {
            core.runtime.misrouted += 1;
            feed(shared, &mut core, packet, verified);
            shared.flush(&mut core);
            return;
        }
    }
    let shared = &*shards[me];
    let mut core = shared.lock();
    feed(shared, &mut core, packet, verified);
    shared.flush(&mut core);
}

/// The waker a device without an fd is given: it writes the driver's wake pipe, so
/// that the driver's one `poll(2)` sees the packet's arrival.
struct PipeWaker(Arc<File>);

impl std::task::Wake for PipeWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A full pipe already holds a wake-up: nothing is lost when this write fails.
        let _ = (&*self.0).write(&[1]);
    }
}
