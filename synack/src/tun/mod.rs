//! The Linux TUN backend: a TUN interface whose kernel side gets an address and whose
//! other side is a synack [`Stack`](crate::Stack): each queue of the device is a
//! [`Device`] under the runtime of [`crate::device`] (its [`Interface`], re-exported
//! here), driven by one thread that polls the device and the stack's next deadline.
//! Application threads use the stack through [`crate::net`] or [`crate::tokio`].
//!
//! ```no_run
//! use synack::tun::{Interface, InterfaceConfig};
//! let iface = Interface::open(InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?))?;
//! let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:8080")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod sys;

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::str::FromStr;

pub use crate::device::control;
use crate::device::{Device, DeviceCapabilities, DeviceConfig};
pub use crate::device::{ImpairStats, Interface, OffloadStats, RuntimeStats, StackHandle};
use crate::sim::LinkConfig;
use crate::Config;
// The runtime's crate-internal names, where they were before it moved to `device`.
#[allow(unused_imports)]
pub(crate) use crate::device::{Core, Interest, Shared, ThreadWaker, WakeKey};

/// An address with its prefix length, as `198.18.0.2/15` or `2001:db8::2/64`.
///
/// ```
/// use synack::tun::Cidr;
/// let cidr: Cidr = "198.18.0.2/15".parse()?;
/// assert_eq!((cidr.addr.to_string(), cidr.prefix), ("198.18.0.2".to_string(), 15));
/// assert_eq!("198.18.0.2".parse::<Cidr>()?.prefix, 32); // no prefix: one address
/// assert!("198.18.0.2/33".parse::<Cidr>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

/// How to set up an interface. Building one needs nothing; [`Interface::open`] then
/// needs root or CAP_NET_ADMIN.
///
/// ```
/// use synack::tun::InterfaceConfig;
/// let mut config = InterfaceConfig::new("tun0", "198.18.0.2/15".parse()?, "198.18.0.1".parse()?);
/// assert_eq!((config.mtu, config.offload), (1500, true));
/// config.queues = 2;
/// config.impair = Some("delay=20ms,loss=1%".parse()?); // offload is ignored then
/// config.routes.push("198.19.0.0/16".parse()?); // for a catch-all listener
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// Queues of the device (`IFF_MULTI_QUEUE` when more than one), each with its own
    /// stack and driver thread: one per core by default. A connection lives on the queue
    /// its packets use; see [`Interface`].
    pub queues: usize,
    /// Prefixes the kernel routes to the device once it is up (`ip route add PREFIX dev
    /// NAME`): what a catch-all listener ([`crate::net::TcpListener::bind_capture`])
    /// captures. Routes go when the device does.
    pub routes: Vec<crate::IpNet>,
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
            queues: default_queues(),
            routes: Vec::new(),
        }
    }
}

/// The default number of queues: one per core the process may use.
pub fn default_queues() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One queue of a TUN device: the fd of `/dev/net/tun` attached to the interface.
struct TunQueue {
    file: File,
    caps: DeviceCapabilities,
}

impl Device for TunQueue {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        (&self.file).write(packet).map(drop)
    }

    /// One `writev(2)`: a super-segment goes out without being copied together.
    fn send_vectored(&self, packet: &[IoSlice<'_>]) -> io::Result<()> {
        (&self.file).write_vectored(packet).map(drop)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

impl Interface {
    /// Create (or attach to) the TUN interface, give its kernel side the kernel
    /// addresses, bring it up, and start a driver thread per queue (see
    /// [`Interface::with_devices`]). Needs root or CAP_NET_ADMIN.
    pub fn open(config: InterfaceConfig) -> io::Result<Interface> {
        // The impairment model works packet by packet: no super-segments with it.
        let vnet = config.offload && config.impair.is_none();
        let queues = config.queues.max(1);
        let mut files = Vec::with_capacity(queues);
        for _ in 0..queues {
            files.push(sys::open_tun(&config.name, vnet, queues > 1)?);
        }
        let offload = vnet && files.iter().all(|d| sys::set_offload(d).is_ok());
        sys::set_mtu(&config.name, config.mtu)?;
        sys::set_up(&config.name)?;
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
        for route in &config.routes {
            sys::add_route(&config.name, route.network(), route.prefix_len())?;
        }
        let caps = DeviceCapabilities {
            mtu: config.mtu,
            virtio_net_hdr: vnet,
            offload,
        };
        let devices = files
            .into_iter()
            .map(|file| TunQueue { file, caps })
            .collect();
        Interface::with_devices(
            devices,
            DeviceConfig {
                name: config.name,
                addrs: config.addrs.iter().map(|c| c.addr).collect(),
                stack: config.stack,
                impair: config.impair,
                impair_seed: config.impair_seed,
                pcap: config.pcap,
                control: config.control,
            },
        )
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
