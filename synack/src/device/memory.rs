//! Two devices joined in memory ([`pair`]): what one sends the other receives, through a
//! bounded queue each way; a full queue drops the packet and counts it, as a NIC does.
//! Two [`Interface`](super::Interface)s over a pair are two stacks talking in one
//! process, with blocking or tokio sockets on both ends and no root: a test bench for
//! applications.
//!
//! ```
//! use std::io::{Read, Write};
//! use synack::device::{memory, DeviceConfig, Interface};
//! use synack::net::{TcpListener, TcpStream};
//!
//! let (a, b) = memory::pair(256);
//! let client = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
//! let server = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
//! let listener = TcpListener::bind(&server, "198.18.0.2:7")?;
//! let mut out = TcpStream::connect(&client, "198.18.0.2:7")?;
//! let (mut inc, _) = listener.accept()?;
//! out.write_all(b"ping")?;
//! let mut got = [0; 4];
//! inc.read_exact(&mut got)?;
//! assert_eq!(&got, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use super::{Device, DeviceCapabilities};

/// Two devices joined by queues of `capacity` packets each way, MTU 1500.
pub fn pair(capacity: usize) -> (MemoryDevice, MemoryDevice) {
    MemoryDevice::pair(capacity, 1500)
}

/// One end of an in-memory link ([`pair`]). Clones are handles on the same end: keep one
/// to read [`MemoryDevice::stats`] after the device went into an interface.
///
/// Used bare, it is a queue of packets (an interface makes its driver the reader):
///
/// ```
/// use synack::device::{memory, Device};
/// let (a, b) = memory::pair(16);
/// a.send(b"an IP packet")?;
/// let mut buf = [0; 1500];
/// let n = b.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"an IP packet");
/// assert_eq!(b.recv(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemoryDevice {
    /// What this end receives.
    rx: Arc<Queue>,
    /// What the other end receives.
    tx: Arc<Queue>,
    mtu: usize,
}

/// What went through one end of a [`pair`].
///
/// ```
/// use synack::device::{memory, Device, DeviceConfig, Interface};
/// let (a, b) = memory::pair(1); // one packet fits in each queue
/// a.send(b"first")?;
/// a.send(b"second")?; // the queue is full: dropped
/// let s = a.stats();
/// assert_eq!((s.sent, s.dropped, s.received), (1, 1, 0));
///
/// // A clone reads the counters of a device an interface took.
/// let (a, b) = memory::pair(256);
/// let counted = a.clone();
/// let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let _listener = synack::net::TcpListener::bind(&right, "198.18.0.2:7")?;
/// let _stream = synack::net::TcpStream::connect(&left, "198.18.0.2:7")?;
/// let s = counted.stats();
/// assert!(s.sent >= 1 && s.received >= 1); // the SYN went out, the SYN-ACK came in
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Packets this end sent that the other end's queue took.
    pub sent: u64,
    /// Packets this end sent that were dropped: the other end's queue was full.
    pub dropped: u64,
    /// Packets this end received.
    pub received: u64,
}

/// The packets waiting for one end, with buffers kept for the next ones.
#[derive(Debug, Default)]
struct Queue {
    inner: Mutex<Packets>,
    capacity: usize,
    /// Wakes the receiving end's driver when a packet arrives in an empty queue.
    waker: Mutex<Option<Waker>>,
    /// Counted on the receiving side: taken, dropped (full), read.
    taken: AtomicU64,
    dropped: AtomicU64,
    read: AtomicU64,
}

#[derive(Debug, Default)]
struct Packets {
    waiting: VecDeque<Vec<u8>>,
    /// Buffers of packets already read, to copy the next ones into.
    free: Vec<Vec<u8>>,
}

impl Queue {
    fn new(capacity: usize) -> Arc<Queue> {
        Arc::new(Queue {
            capacity: capacity.max(1),
            ..Queue::default()
        })
    }
}

impl MemoryDevice {
    /// Two devices joined by queues of `capacity` packets each way, carrying IP packets
    /// of up to `mtu` bytes.
    pub fn pair(capacity: usize, mtu: usize) -> (MemoryDevice, MemoryDevice) {
        let (ab, ba) = (Queue::new(capacity), Queue::new(capacity));
        (
            MemoryDevice {
                rx: Arc::clone(&ba),
                tx: Arc::clone(&ab),
                mtu,
            },
            MemoryDevice {
                rx: ab,
                tx: ba,
                mtu,
            },
        )
    }

    /// What this end sent, dropped and received so far.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            sent: self.tx.taken.load(Ordering::Relaxed),
            dropped: self.tx.dropped.load(Ordering::Relaxed),
            received: self.rx.read.load(Ordering::Relaxed),
        }
    }
}

impl Device for MemoryDevice {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.rx.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(packet) = q.waiting.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        if q.free.len() < self.rx.capacity {
            q.free.push(packet);
        }
        drop(q);
        self.rx.read.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let q = &*self.tx;
        let mut packets = q.inner.lock().unwrap_or_else(|p| p.into_inner());
        if packets.waiting.len() >= q.capacity {
            drop(packets);
            q.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut buf = packets.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(packet);
        let was_empty = packets.waiting.is_empty();
        packets.waiting.push_back(buf);
        drop(packets);
        q.taken.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            if let Some(w) = q.waker.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                w.wake_by_ref();
            }
        }
        Ok(())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities {
            mtu: self.mtu,
            ..DeviceCapabilities::default()
        }
    }

    fn set_waker(&self, waker: Waker) {
        let was_waiting = {
            *self.rx.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
            !self
                .rx
                .inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .waiting
                .is_empty()
        };
        // Packets sent before the driver started: wake it for them.
        if was_waiting {
            waker.wake();
        }
    }
}
