//! `synack relay`: terminate every TCP connection routed into a TUN device and carry it
//! to its real destination over kernel sockets, directly or through a SOCKS5 proxy (what
//! tun2socks does), with half-closes and resets carried exactly; UDP too (one kernel
//! socket or SOCKS5 UDP association per client endpoint, DNS optionally sent to `--dns`).
//! `synack ss --relay` lists the relayed connections.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::time::Duration;

use clap::{ArgGroup, Args};
use synack::relay::{Relay, RelayConfig, Upstream};
use synack::{Capture, Decide, IpNet};

use crate::tun_args::TunArgs;

/// How the relay needs the kernel's routing, shown by `synack relay --help`.
pub const ROUTING_HELP: &str = "\
Routing: synack routes each --capture prefix to the TUN device, so connections from this
host (or from hosts routing through it) to those addresses reach the relay. The relay's
own connections to the destinations must not follow that route back into the device:
- with --direct, give --bind-interface IF (the interface towards the destinations; it
  needs a route to them, e.g. `ip route add PREFIX via GATEWAY dev IF metric 100`, which
  the device's own route, metric 0, outranks for everyone else), or --mark N with a
  policy rule that sends marked packets elsewhere (`ip rule add fwmark N lookup main`
  with a table that has no route to the device);
- with --socks5, the proxy's address must lie outside the captured prefixes.
Destinations to capture are usually given whole (0.0.0.0/0 and ::/0 with a VPN's
default route); to try it, capture a test prefix such as 198.19.0.0/16.";

/// Options of `synack relay`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("upstream").required(true).args(["direct", "socks5"])))]
pub struct RelayArgs {
    #[command(flatten)]
    pub tun: TunArgs,
    /// Capture TCP connections to this prefix (repeatable), e.g. 198.19.0.0/16 or
    /// 2001:db8:1::/48: it is routed to the TUN device and every connection to it is
    /// relayed.
    #[arg(long, required = true, value_name = "CIDR", value_parser = parse_prefix)]
    pub capture: Vec<IpNet>,
    /// Only these destination ports (repeatable; a port or a range, e.g. 443 or
    /// 8000-8099; default: every port).
    #[arg(long = "capture-port", value_name = "PORTS", value_parser = parse_ports)]
    pub capture_ports: Vec<RangeInclusive<u16>>,
    /// Connect to each destination directly.
    #[arg(long)]
    pub direct: bool,
    /// Bind the relay's own sockets to this interface (SO_BINDTODEVICE) so that they
    /// cannot loop back into the TUN device.
    #[arg(long, value_name = "IF", requires = "direct")]
    pub bind_interface: Option<String>,
    /// Mark the relay's own sockets (SO_MARK) for a policy routing rule.
    #[arg(long, value_name = "N")]
    pub mark: Option<u32>,
    /// Connect through this SOCKS5 proxy (RFC 1928), HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub socks5: Option<String>,
    /// User name and password for the SOCKS5 proxy (RFC 1929), USER:PASS.
    #[arg(long, value_name = "USER:PASS", requires = "socks5")]
    pub socks5_auth: Option<String>,
    /// Answer a client's SYN only once the destination answered ours: a refused or
    /// unreachable destination gives the client that answer (a RST, an ICMP
    /// unreachable) instead of a connection accepted and then reset.
    #[arg(long)]
    pub decide_first: bool,
    /// Reset a relayed connection with no byte moved either way for this long.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub idle_timeout: f64,
    /// Once one direction is closed, reset both if the other moves no byte for this long.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub half_closed_timeout: f64,
    /// Give up a dial after this long.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub dial_timeout: f64,
    /// Relayed connections at most (more are refused).
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    pub max_connections: usize,
    /// Dials in progress at most (more are refused, or left to the client's SYN retry).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_pending_dials: usize,
    /// Remove a UDP mapping (a client endpoint's kernel socket) idle this long.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub udp_timeout: f64,
    /// The same for DNS (port 53).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub dns_timeout: f64,
    /// UDP mappings at most (datagrams needing another are dropped and counted).
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_udp_mappings: usize,
    /// Send every DNS query (UDP to port 53) to this server, ADDR:PORT, instead of its
    /// destination; the answer comes back from the address asked.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns: Option<SocketAddr>,
    /// Relay TCP only (UDP to the captured prefixes then gets no answer).
    #[arg(long)]
    pub no_udp: bool,
}

fn parse_prefix(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>().map_err(|_| {
        format!("'{s}' is not a prefix: give an address and a length, e.g. 198.19.0.0/16 or 2001:db8:1::/48")
    })
}

fn parse_ports(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("'{s}' is not a port or a range of ports (e.g. 443 or 8000-8099)");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (
        a.trim().parse::<u16>().map_err(|_| bad())?,
        b.trim().parse::<u16>().map_err(|_| bad())?,
    );
    if a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl RelayArgs {
    /// The relay's configuration, after checking what can be checked before starting:
    /// the proxy's name resolves and it answers.
    fn relay_config(&self) -> Result<RelayConfig, String> {
        let upstream = match &self.socks5 {
            None => Upstream::Direct,
            Some(proxy) => {
                let addr: SocketAddr = proxy
                    .to_socket_addrs()
                    .map_err(|e| {
                        format!("--socks5 {proxy}: cannot resolve it ({e}); give HOST:PORT")
                    })?
                    .next()
                    .ok_or_else(|| format!("--socks5 {proxy}: no address"))?;
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
                    format!("--socks5 {proxy}: the proxy does not answer at {addr} ({e}); is it running and reachable?")
                })?;
                let auth = match &self.socks5_auth {
                    None => None,
                    Some(a) => {
                        let (user, pass) = a
                            .split_once(':')
                            .ok_or_else(|| "--socks5-auth: give USER:PASS".to_string())?;
                        Some((user.to_string(), pass.to_string()))
                    }
                };
                Upstream::Socks5 { proxy: addr, auth }
            }
        };
        let mut config = RelayConfig::new(upstream);
        config.decide_first = self.decide_first;
        config.bind_device = self.bind_interface.clone();
        config.mark = self.mark;
        config.dial_timeout = secs(self.dial_timeout);
        config.idle_timeout = secs(self.idle_timeout);
        config.half_closed_timeout = secs(self.half_closed_timeout);
        config.max_connections = self.max_connections;
        config.max_pending_dials = self.max_pending_dials;
        config.udp_timeout = secs(self.udp_timeout);
        config.dns_timeout = secs(self.dns_timeout);
        config.max_udp_mappings = self.max_udp_mappings;
        config.dns = self.dns;
        Ok(config)
    }

    fn capture(&self) -> Capture {
        let mut c = Capture::all();
        for p in &self.capture {
            c = c.prefix(*p);
        }
        for r in &self.capture_ports {
            c = c.ports(r.clone());
        }
        c
    }
}

/// Run `synack relay` until killed; returns the exit status on failure to start.
pub fn run(args: &RelayArgs) -> i32 {
    let config = match args.relay_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synack relay: {e}");
            return 2;
        }
    };
    let relay = Relay::new(config);
    let mut iface_config = args.tun.interface_config();
    iface_config.routes = args.capture.clone();
    let for_control = relay.clone();
    let iface = match args
        .tun
        .open_with("relay", iface_config, move |request| match request {
            "relay" => Some(format!("{}\n", relay_json(&for_control))),
            "metrics" => Some(for_control.stats().prometheus()),
            _ => None,
        }) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let decide = args
        .decide_first
        .then(|| Decide::new().timeout(secs(args.dial_timeout + 5.0)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synack relay: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let udp = !args.no_udp;
    let result = runtime.block_on(async {
        let listener = synack::tokio::TcpListener::bind_capture(&iface, args.capture(), decide)?;
        if udp {
            let socket = synack::tokio::UdpSocket::bind_capture(&iface, args.capture())?;
            let relay = relay.clone();
            tokio::spawn(async move {
                if let Err(e) = relay.run_udp(socket).await {
                    eprintln!("synack relay: UDP: {e}");
                }
            });
        }
        eprintln!(
            "synack relay: relaying TCP{} to {} via {} ({})",
            if udp { " and UDP" } else { "" },
            args.capture
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            args.tun.tun,
            match &relay.config().upstream {
                Upstream::Socks5 { proxy, .. } => format!("SOCKS5 proxy {proxy}"),
                _ => "direct".to_string(),
            }
        );
        relay.run(listener).await
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("synack relay: {e}");
            1
        }
    }
}

/// The relayed connections as the control socket's `relay` answer.
fn relay_json(relay: &Relay) -> serde_json::Value {
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    serde_json::Value::Array(
        relay
            .connections()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "client": c.client.to_string(),
                    "destination": c.destination.to_string(),
                    "upstream_local": addr(c.upstream_local),
                    "upstream_peer": addr(c.upstream_peer),
                    "client_side": c.client_side.name(),
                    "upstream_side": c.upstream_side.name(),
                    "bytes_up": c.bytes_up,
                    "bytes_down": c.bytes_down,
                    "dial_ms": c.dial_time.map(|d| d.as_secs_f64() * 1000.0),
                    "age_ms": c.age.as_secs_f64() * 1000.0,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_prefixes_parse_or_say_what_is_wrong() {
        assert_eq!(parse_ports("443"), Ok(443..=443));
        assert_eq!(parse_ports("8000-8099"), Ok(8000..=8099));
        assert!(parse_ports("9-1").unwrap_err().contains("not a port"));
        assert!(parse_ports("http").is_err());
        assert!(parse_prefix("198.19.0.0/16").is_ok());
        assert!(parse_prefix("198.19.0.0/33")
            .unwrap_err()
            .contains("198.19.0.0/16"));
    }
}
