//! Catch-all listeners: a listener that takes SYNs to any destination address and port
//! (optionally within prefixes and port ranges) that no other listener claims, as a
//! relay in front of a TUN device needs (Linux's IP_TRANSPARENT with TPROXY, gVisor's
//! forwarder). The accepted connection's local address is the destination the client
//! asked for.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::ops::RangeInclusive;

pub use ipnet::IpNet;

use super::*;

/// Which destinations a catch-all listener takes (see [`Stack::listen_capture`]).
///
/// # Examples
///
/// ```
/// # use synack::{Config, Error, Event, Instant, Stack, TcpState};
/// # /// Moves packets between two stacks until neither has anything to send.
/// # fn pump(now: Instant, a: &mut Stack, b: &mut Stack) {
/// #     loop {
/// #         let mut quiet = true;
/// #         while let Some(p) = a.poll_transmit(now) { b.receive(now, &p); quiet = false; }
/// #         while let Some(p) = b.poll_transmit(now) { a.receive(now, &p); quiet = false; }
/// #         if quiet { break; }
/// #     }
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let mut client = Stack::new(Config::default());
/// # client.add_address("198.18.0.1".parse()?);
/// # let mut server = Stack::new(Config::default());
/// # server.add_address("198.18.0.2".parse()?);
/// # let now = Instant::ZERO;
/// use synack::{Capture, IpNet};
/// // A relay: take every connection to 198.51.100.0/24, ports 80 and 443.
/// let capture = Capture::all()
///     .prefix("198.51.100.0/24".parse::<IpNet>()?)
///     .ports(80..=80)
///     .ports(443..=443);
/// assert!(capture.matches("198.51.100.7:443".parse()?));
/// assert!(!capture.matches("198.51.100.7:22".parse()?));
/// let listener = server.listen_capture(capture, 128)?;
///
/// // A client asks for 198.51.100.7 (routed to the server's stack).
/// let conn = client.connect(now, "198.51.100.7:443".parse()?)?;
/// pump(now, &mut client, &mut server);
/// let accepted = server.accept(listener)?;
/// // The server's side of the connection is the address the client asked for.
/// assert_eq!(server.local_addr(accepted)?.to_string(), "198.51.100.7:443");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    prefixes: Vec<IpNet>,
    ports: Vec<RangeInclusive<u16>>,
}

impl Capture {
    /// Every address, IPv4 and IPv6, every port.
    pub fn all() -> Capture {
        Capture::default()
    }

    /// Only destinations within `prefix` (may be given several times; none: every
    /// address).
    pub fn prefix(mut self, prefix: IpNet) -> Capture {
        self.prefixes.push(prefix.trunc());
        self
    }

    /// Only destination ports within `ports` (may be given several times; none: every
    /// port).
    pub fn ports(mut self, ports: RangeInclusive<u16>) -> Capture {
        self.ports.push(ports);
        self
    }

    /// The prefixes it is limited to (empty: every address).
    pub fn prefixes(&self) -> &[IpNet] {
        &self.prefixes
    }

    /// Whether a destination address is one it takes.
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| p.contains(&ip))
    }

    /// Whether a destination (address and port) is one it takes.
    pub fn matches(&self, dst: SocketAddr) -> bool {
        self.covers(dst.ip())
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(&dst.port())))
    }
}

impl Stack {
    /// Listen on every destination `capture` names that no other listener claims: a
    /// SYN to any such address and port makes a connection whose local address is that
    /// destination (the address the client asked for, not one of the stack's). Other
    /// segments to those addresses are handled as for the stack's own (a stray ACK gets
    /// a RST). Listeners bound to an address or to a port on all addresses come first;
    /// among catch-all listeners, the first opened that matches.
    ///
    /// The packets must reach the stack: route the prefixes to it (over TUN,
    /// `tun::InterfaceConfig`'s `routes`).
    pub fn listen_capture(
        &mut self,
        capture: Capture,
        backlog: usize,
    ) -> Result<ListenerHandle, Error> {
        let unspecified = SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0);
        let lid = self.add_listener(unspecified, backlog);
        if let Some(l) = self.listeners[lid.0 as usize].as_mut() {
            l.capture = Some(Box::new(capture));
        }
        self.capturing.push(lid.0);
        Ok(lid)
    }

    /// The catch-all listener that takes a SYN to `local`, if any.
    pub(super) fn find_capture(&self, local: SocketAddr) -> Option<u32> {
        self.capturing.iter().copied().find(|&lid| {
            self.listeners[lid as usize]
                .as_ref()
                .and_then(|l| l.capture.as_ref())
                .is_some_and(|c| c.matches(local))
        })
    }

    /// Whether packets to `ip` are ours: one of the stack's addresses, or one a
    /// catch-all listener covers.
    pub(super) fn accepts_destination(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&ip)
            || self.capturing.iter().any(|&lid| {
                self.listeners[lid as usize]
                    .as_ref()
                    .and_then(|l| l.capture.as_ref())
                    .is_some_and(|c| c.covers(ip))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_matches_its_prefixes_and_ports_only() {
        let c = Capture::all()
            .prefix("198.19.0.0/16".parse().unwrap())
            .prefix("2001:db8:1::/48".parse().unwrap())
            .ports(80..=80)
            .ports(8000..=8099);
        let m = |s: &str| c.matches(s.parse().unwrap());
        assert!(m("198.19.3.4:80") && m("198.19.255.255:8099") && m("[2001:db8:1::7]:8000"));
        assert!(!m("198.20.0.1:80"), "outside the prefixes");
        assert!(!m("198.19.0.1:81"), "outside the ports");
        assert!(!m("[2001:db8:2::1]:80"));
        assert!(Capture::all().matches("198.18.77.1:1".parse().unwrap()));
        assert!(Capture::all().covers("2001:db8::1".parse().unwrap()));
    }
}
