//! The UDP half of the relay: datagrams a catch-all UDP socket takes go out through a
//! kernel UDP socket, one per client address and port, used for every destination
//! (endpoint-independent mapping, RFC 4787 4.1, what games and WebRTC need), and what
//! comes back to that kernel socket from anyone goes to the client from the address it
//! came from (endpoint-independent filtering: "full cone"). A mapping with no datagram
//! either way for a while is removed (60 s; 10 s for DNS); their number is bounded. DNS
//! queries may be sent to one server instead of their destination (`RelayConfig::dns`),
//! the answer then coming back from the destination the client asked. Through a SOCKS5
//! proxy each mapping is a UDP association (`socks5_udp.rs`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::tokio::net::UdpSocket as KernelUdp;

use super::socks5_udp::Association;
use super::{Relay, Upstream};
use crate::tokio::UdpSocket;

/// Where a mapping's datagrams go: straight out of its kernel socket, or through a
/// SOCKS5 proxy's UDP association.
enum UdpUpstream {
    Direct(KernelUdp),
    Socks(Association),
}

impl UdpUpstream {
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        match self {
            UdpUpstream::Direct(s) => s.send_to(data, to).await.map(|_| ()),
            UdpUpstream::Socks(a) => a.send_to(data, to).await,
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            UdpUpstream::Direct(s) => s.recv_from(buf).await,
            UdpUpstream::Socks(a) => a.recv_from(buf).await,
        }
    }
}

/// A client endpoint's mapping: its kernel socket, and for a redirected DNS flow the
/// address answers must come from.
struct Mapping {
    upstream: UdpUpstream,
    /// Milliseconds since `epoch` of the last datagram either way.
    last: AtomicU64,
    answer_from: Option<SocketAddr>,
}

/// The key of a mapping: the client endpoint, and the destination a redirected DNS
/// query was sent to (its own mapping, so its answers come from there).
type Key = (SocketAddr, Option<SocketAddr>);

impl Relay {
    /// Relay every datagram the catch-all `socket` takes until it fails (the interface
    /// closed).
    pub async fn run_udp(&self, socket: UdpSocket) -> io::Result<()> {
        let socket = Arc::new(socket);
        let mappings: Arc<Mutex<HashMap<Key, Arc<Mapping>>>> = Arc::default();
        let epoch = Instant::now();
        loop {
            let d = socket.recv_datagram().await?;
            let redirect = self.config.dns.filter(|_| d.to.port() == 53);
            let key = (d.from, redirect.map(|_| d.to));
            let existing = mappings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            let mapping = match existing {
                Some(m) => m,
                None => {
                    let count = mappings.lock().unwrap_or_else(|e| e.into_inner()).len();
                    if count >= self.config.max_udp_mappings {
                        self.udp_drop("mapping_limit");
                        continue;
                    }
                    let target = redirect.unwrap_or(d.to);
                    let upstream = match self.udp_upstream(target).await {
                        Ok(u) => u,
                        Err(_) => {
                            self.udp_drop("upstream_failed");
                            continue;
                        }
                    };
                    let m = Arc::new(Mapping {
                        upstream,
                        last: AtomicU64::new(0),
                        answer_from: redirect.map(|_| d.to),
                    });
                    mappings
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, Arc::clone(&m));
                    self.shared.count(|s| {
                        s.udp_mappings += 1;
                        s.udp_mappings_total += 1;
                    });
                    let timeout = if d.to.port() == 53 {
                        self.config.dns_timeout
                    } else {
                        self.config.udp_timeout
                    };
                    let this = self.clone();
                    let (socket, mappings, m2) =
                        (Arc::clone(&socket), Arc::clone(&mappings), Arc::clone(&m));
                    ::tokio::spawn(async move {
                        this.carry_answers(&socket, &m2, d.from, timeout, epoch)
                            .await;
                        mappings
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                        this.shared.count(|s| s.udp_mappings -= 1);
                    });
                    m
                }
            };
            mapping
                .last
                .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let target = redirect.unwrap_or(d.to);
            match mapping.upstream.send_to(&d.data, target).await {
                Ok(_) => self.shared.count(|s| {
                    s.udp_datagrams_up += 1;
                    s.dns_redirected += u64::from(redirect.is_some());
                }),
                Err(_) => self.udp_drop("send_failed"),
            }
        }
    }

    /// Carry what comes back to a mapping's kernel socket to its client, until the
    /// mapping has been idle for `timeout`.
    async fn carry_answers(
        &self,
        socket: &UdpSocket,
        m: &Mapping,
        client: SocketAddr,
        timeout: Duration,
        epoch: Instant,
    ) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let idle = Duration::from_millis(
                (epoch.elapsed().as_millis() as u64).saturating_sub(m.last.load(Ordering::Relaxed)),
            );
            let Some(left) = timeout.checked_sub(idle).filter(|d| !d.is_zero()) else {
                return;
            };
            let (n, from) = match ::tokio::time::timeout(left, m.upstream.recv_from(&mut buf)).await
            {
                Ok(Ok(got)) => got,
                Ok(Err(_)) => continue,
                Err(_) => continue, // time to look at the idle time again
            };
            m.last
                .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let from = m.answer_from.unwrap_or(from);
            match socket.send_from(&buf[..n], from, client).await {
                Ok(_) => self.shared.count(|s| s.udp_datagrams_down += 1),
                // An answer from an address the relay does not capture cannot be given
                // that source on the TUN side.
                Err(_) => self.udp_drop("source_not_captured"),
            }
        }
    }

    /// A new mapping's way out: a kernel socket, or a UDP association with the SOCKS5
    /// proxy (its setup bounded by the dial timeout).
    async fn udp_upstream(&self, target: SocketAddr) -> io::Result<UdpUpstream> {
        match &self.config.upstream {
            Upstream::Direct => Ok(UdpUpstream::Direct(self.kernel_udp(target)?)),
            Upstream::Socks5 { proxy, auth } => {
                let socket = self.kernel_udp(*proxy)?;
                let setup = async {
                    let control = self.kernel_connect(*proxy).await?;
                    Association::open(control, socket, auth.as_ref()).await
                };
                match ::tokio::time::timeout(self.config.dial_timeout, setup).await {
                    Ok(a) => Ok(UdpUpstream::Socks(a?)),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "SOCKS5 UDP ASSOCIATE timed out",
                    )),
                }
            }
        }
    }

    fn udp_drop(&self, reason: &'static str) {
        self.shared
            .count(|s| *s.udp_dropped.entry(reason).or_default() += 1);
    }

    /// A kernel UDP socket for destinations of `to`'s family, bound to the device or
    /// marked as configured.
    fn kernel_udp(&self, to: SocketAddr) -> io::Result<KernelUdp> {
        let domain = if to.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if let Some(device) = &self.config.bind_device {
            s.bind_device(Some(device.as_bytes()))?;
        }
        if let Some(mark) = self.config.mark {
            s.set_mark(mark)?;
        }
        let any: SocketAddr = if to.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        s.bind(&any.into())?;
        s.set_nonblocking(true)?;
        KernelUdp::from_std(s.into())
    }
}
