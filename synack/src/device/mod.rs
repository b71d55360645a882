//! Any packet device under synack's sockets: the [`Device`] trait (receive one IP packet,
//! send one, say what the device can do and how the driver learns a packet is waiting),
//! and the runtime over it, [`Interface`]: one [`crate::Stack`] and one driver thread per
//! device, which the [`crate::net`] (blocking) and [`crate::tokio`] sockets take. TUN
//! ([`crate::tun`]) is one device; [`memory::pair`] joins two interfaces in one process;
//! a WireGuard tunnel or a unikernel's NIC is a few lines of `impl Device`.
//!
//! A device that counts what it carries around another one:
//!
//! ```
//! use std::io;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use synack::device::{self, Device, DeviceCapabilities, DeviceConfig, Interface};
//!
//! struct Counting<D> {
//!     inner: D,
//!     sent: AtomicU64,
//! }
//!
//! impl<D: Device> Device for Counting<D> {
//!     fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
//!         self.inner.recv(buf)
//!     }
//!     fn send(&self, packet: &[u8]) -> io::Result<()> {
//!         self.sent.fetch_add(1, Ordering::Relaxed);
//!         self.inner.send(packet)
//!     }
//!     fn capabilities(&self) -> DeviceCapabilities {
//!         self.inner.capabilities()
//!     }
//!     fn set_waker(&self, waker: std::task::Waker) {
//!         self.inner.set_waker(waker)
//!     }
//! }
//!
//! let (a, b) = device::memory::pair(64);
//! let left = Interface::new(Counting { inner: a, sent: AtomicU64::new(0) }, DeviceConfig::new("198.18.0.1".parse()?))?;
//! let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod control;
mod impair;
pub mod memory;
mod offload;
mod readiness;
mod runtime;
pub(crate) mod sys;

use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::task::Waker;

use crate::sim::LinkConfig;
use crate::Config;
pub use impair::ImpairStats;
pub use offload::OffloadStats;
pub(crate) use readiness::{Interest, ThreadWaker, WakeKey};
pub(crate) use runtime::{Core, Shared};
pub use runtime::{Interface, RuntimeStats, StackHandle};

/// A packet device: what carries synack's IP packets to the rest of the world. Every
/// packet is one whole IPv4 or IPv6 packet (no link-layer header), preceded by a
/// `virtio_net_hdr` when [`DeviceCapabilities::virtio_net_hdr`] says so.
///
/// The methods take `&self`: the driver thread receives while application threads send
/// (each send is made under the queue's writer lock, so sends never overlap).
///
/// The driver learns that a packet is waiting in one of two ways: it polls the device's
/// file descriptor ([`as_raw_fd`](Device::as_raw_fd), as for TUN), or, for a device
/// without one, the device wakes the [`Waker`] it was handed by
/// [`set_waker`](Device::set_waker) when a packet arrives.
///
/// A link made of two std channels, each end a device that wakes the other's driver:
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::sync::mpsc::{channel, Receiver, Sender};
/// use std::sync::{Arc, Mutex};
/// use std::task::Waker;
/// use synack::device::{Device, DeviceConfig, Interface};
///
/// struct Chan {
///     tx: Sender<Vec<u8>>,
///     rx: Mutex<Receiver<Vec<u8>>>,
///     me: Arc<Mutex<Option<Waker>>>,   // our driver, woken by the other end
///     peer: Arc<Mutex<Option<Waker>>>, // the other end's driver
/// }
///
/// impl Device for Chan {
///     fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
///         let packet = self.rx.lock().unwrap().try_recv();
///         let packet = packet.map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
///         let n = packet.len().min(buf.len());
///         buf[..n].copy_from_slice(&packet[..n]);
///         Ok(n)
///     }
///     fn send(&self, packet: &[u8]) -> io::Result<()> {
///         let _ = self.tx.send(packet.to_vec());
///         if let Some(waker) = &*self.peer.lock().unwrap() {
///             waker.wake_by_ref();
///         }
///         Ok(())
///     }
///     fn set_waker(&self, waker: Waker) {
///         *self.me.lock().unwrap() = Some(waker.clone());
///         waker.wake(); // for packets sent before the driver started
///     }
/// }
///
/// # fn link() -> (Chan, Chan) {
/// #     let ((atx, brx), (btx, arx)) = (channel(), channel());
/// #     let (aw, bw) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
/// #     let a = Chan { tx: atx, rx: Mutex::new(arx), me: aw.clone(), peer: bw.clone() };
/// #     (a, Chan { tx: btx, rx: Mutex::new(brx), me: bw, peer: aw })
/// # }
/// let (a, b) = link();
/// let left = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// let right = Interface::new(b, DeviceConfig::new("198.18.0.2".parse()?))?;
/// let listener = synack::net::TcpListener::bind(&right, "198.18.0.2:7")?;
/// synack::net::TcpStream::connect(&left, "198.18.0.2:7")?.write_all(b"over channels")?;
/// let mut got = String::new();
/// listener.accept()?.0.read_to_string(&mut got)?;
/// assert_eq!(got, "over channels");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Device: Send + Sync + 'static {
    /// Receive one packet into `buf` (64 KiB and the virtio header long): its length, or
    /// `Err(WouldBlock)` when none is waiting. Never blocks.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Send one packet. A device that cannot take it now (a full queue) drops it, as a
    /// NIC does: TCP sends it again.
    fn send(&self, packet: &[u8]) -> io::Result<()>;

    /// Send one packet given as gathered slices (with offload, a super-segment: the
    /// virtio header, the first segment's headers and payload, then the payloads of the
    /// segments merged into it). By default the slices are copied into one packet for
    /// [`send`](Device::send); a device with a gathering write (`writev(2)`) overrides
    /// it. Without `virtio_net_hdr` every packet comes through [`send`](Device::send).
    fn send_vectored(&self, packet: &[IoSlice<'_>]) -> io::Result<()> {
        match packet {
            [one] => self.send(one),
            _ => {
                let mut whole = Vec::with_capacity(packet.iter().map(|s| s.len()).sum());
                for slice in packet {
                    whole.extend_from_slice(slice);
                }
                self.send(&whole)
            }
        }
    }

    /// What the device can do: its MTU, its offloads.
    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities::default()
    }

    /// A file descriptor that polls readable while a packet is waiting (TUN's own fd),
    /// or None (the default): then the device wakes the waker given to
    /// [`set_waker`](Device::set_waker).
    fn as_raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// Called once, before the driver starts, for a device without a file descriptor:
    /// wake `waker` whenever a packet arrives while none was waiting (waking more often
    /// is harmless; after a full batch the driver reads again without waiting).
    fn set_waker(&self, waker: Waker) {
        let _ = waker;
    }
}

/// What a [`Device`] can do.
///
/// ```
/// use synack::device::{memory::MemoryDevice, Device, DeviceCapabilities};
/// let plain = DeviceCapabilities::default();
/// assert_eq!((plain.mtu, plain.virtio_net_hdr, plain.offload), (1500, false, false));
/// let mut small = DeviceCapabilities::default(); // what a device reports, built this way
/// small.mtu = 1280;
/// let (a, _b) = MemoryDevice::pair(16, 1280);
/// assert_eq!(a.capabilities(), small);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCapabilities {
    /// The largest IP packet the device carries (the stack's MSS follows it).
    pub mtu: usize,
    /// Every packet, both ways, is preceded by a `virtio_net_hdr` (10 bytes, native byte
    /// order, as Linux's `IFF_VNET_HDR`).
    pub virtio_net_hdr: bool,
    /// With `virtio_net_hdr`: the device takes and gives TCP super-segments (up to 64 KiB,
    /// cut by the header's `gso_size`) and partial checksums (`NEEDS_CSUM`), as TUN with
    /// `TUNSETOFFLOAD` does. The stack then sends super-segments and leaves checksums
    /// for the device to finish.
    pub offload: bool,
}

impl Default for DeviceCapabilities {
    /// MTU 1500, no virtio header, no offload.
    fn default() -> DeviceCapabilities {
        DeviceCapabilities {
            mtu: 1500,
            virtio_net_hdr: false,
            offload: false,
        }
    }
}

/// How to run a stack over a device ([`Interface::new`]): what is not about the device.
///
/// ```
/// use synack::device::{memory, DeviceConfig, Interface};
/// let mut config = DeviceConfig::new("198.18.0.1".parse()?);
/// config.name = "left".into(); // its driver thread is `synack-left`
/// config.addrs.push("198.18.0.3".parse()?);
/// config.impair = Some("delay=5ms,loss=1%".parse()?);
/// config.stack.tcp_nodelay = true;
/// let (a, _b) = memory::pair(64);
/// let left = Interface::new(a, config)?;
/// assert!(left.impairment_stats().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// Names the driver threads (`synack-NAME`, `synack-NAME-QUEUE`).
    pub name: String,
    /// The stack's addresses.
    pub addrs: Vec<IpAddr>,
    /// The stack's configuration (its MTU is the device's).
    pub stack: Config,
    /// Impair the link in both directions with the simulator's link model.
    pub impair: Option<LinkConfig>,
    /// Seed of the impairment's randomness.
    pub impair_seed: u64,
    /// Write every packet through the device, both ways, to this pcap file (wall-clock
    /// times). Outgoing packets are captured as the stack sent them, before offload
    /// merges them into super-segments; incoming ones as the stack receives them.
    pub pcap: Option<PathBuf>,
    /// Answer `synack ss` on this Unix socket (see [`control`]); None: no control socket.
    pub control: Option<PathBuf>,
}

impl DeviceConfig {
    /// One address, default stack settings (secret keys from the operating system's
    /// random source), no impairment, capture or control socket.
    pub fn new(addr: IpAddr) -> DeviceConfig {
        DeviceConfig {
            name: "dev".into(),
            addrs: vec![addr],
            stack: Config::default(),
            impair: None,
            impair_seed: 1,
            pcap: None,
            control: None,
        }
    }
}

/// A device behind a pointer is a device: `Arc<D>` (keep a handle to read its
/// counters) and `Box<D>` (queues of different kinds in one [`Interface::with_devices`]).
macro_rules! forward_device {
    ($($ptr:ident),*) => {$(
        impl<D: Device + ?Sized> Device for $ptr<D> {
            fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
                (**self).recv(buf)
            }
            fn send(&self, packet: &[u8]) -> io::Result<()> {
                (**self).send(packet)
            }
            fn send_vectored(&self, packet: &[IoSlice<'_>]) -> io::Result<()> {
                (**self).send_vectored(packet)
            }
            fn capabilities(&self) -> DeviceCapabilities {
                (**self).capabilities()
            }
            fn as_raw_fd(&self) -> Option<RawFd> {
                (**self).as_raw_fd()
            }
            fn set_waker(&self, waker: Waker) {
                (**self).set_waker(waker)
            }
        }
    )*};
}
use std::sync::Arc;
forward_device!(Arc, Box);
