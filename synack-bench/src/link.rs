//! The in-memory link: raw IPv4 packets in queues (what a TUN device or a VPN tunnel
//! would carry), and a smoltcp [`Device`] of [`Medium::Ip`] over them.
//!
//! A [`QueueDevice`] is one end: smoltcp reads the packets that arrive from `rx` and
//! appends the packets it sends to `tx`; whoever drives the interfaces moves packets
//! from one end's `tx` to the other end's `rx` (or into a `synack::Stack`).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr};

/// Prefix length of every address on the link: 198.18.0.0/15 (RFC 2544's benchmarking
/// range) holds the server (198.18.0.1) and the clients (198.18.1.x), so every peer is
/// on-link and no route is needed.
pub const PREFIX_LEN: u8 = 15;

/// One end of the link, as a smoltcp device: IP packets, no link-layer header.
pub struct QueueDevice {
    /// Packets arriving, oldest first.
    pub rx: VecDeque<Vec<u8>>,
    /// Packets sent, oldest first.
    pub tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

impl QueueDevice {
    /// An end whose largest IP packet is `mtu` bytes.
    pub fn new(mtu: usize) -> QueueDevice {
        QueueDevice {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            mtu,
        }
    }

    pub fn mtu(&self) -> usize {
        self.mtu
    }
}

/// A received packet, handed to smoltcp without a copy.
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room for one packet at the end of the `tx` queue: smoltcp writes the packet
/// straight into the buffer that goes on the queue.
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        self.0.push_back(packet);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        // For Medium::Ip this is the largest IP packet (no link-layer header); checksums
        // are computed and verified in software (the default), as synack does.
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// A smoltcp interface on `device` with these addresses (at most 8: the
/// `iface-max-addr-count-8` feature), each on 198.18.0.0/15.
pub fn interface(
    device: &mut QueueDevice,
    addresses: &[Ipv4Addr],
    seed: u64,
    now: Instant,
) -> Interface {
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = seed;
    let mut iface = Interface::new(config, device, now);
    iface.update_ip_addrs(|addrs| {
        for &a in addresses {
            addrs
                .push(IpCidr::new(a.into(), PREFIX_LEN))
                .expect("at most 8 addresses per smoltcp interface");
        }
    });
    iface
}

/// A smoltcp TCP socket with `buffer` bytes of receive and of send buffer, Nagle's
/// algorithm off, smoltcp's other defaults (10 ms ACK delay, no timestamps, no
/// congestion control unless a congestion feature is on).
pub fn tcp_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffer]),
        tcp::SocketBuffer::new(vec![0; buffer]),
    );
    s.set_nagle_enabled(false);
    s
}
