//! Command-line options shared by `synack serve` and `synack connect`: which TUN
//! interface to create and the addresses of both its sides.

use std::net::IpAddr;

use clap::Args;
use synack::tun::{Cidr, Interface, InterfaceConfig};
use synack::Event;

/// Where synack meets the kernel.
#[derive(Args, Debug, Clone)]
pub struct TunArgs {
    /// Name of the TUN interface to create.
    #[arg(long, default_value = "synack0")]
    pub tun: String,
    /// synack's address and the link's prefix, e.g. 198.18.0.2/15 or 2001:db8::2/64 (repeatable).
    #[arg(long, required = true, value_parser = parse_cidr)]
    pub addr: Vec<Cidr>,
    /// The kernel side's address on the interface, e.g. 198.18.0.1 (repeatable, one per family).
    #[arg(long = "kernel-addr", required = true)]
    pub kernel_addr: Vec<IpAddr>,
    /// MTU of the interface.
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
    /// Print every state change to stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

impl TunArgs {
    /// Create the interface and start its driver, or explain why not.
    pub fn open(&self, command: &str) -> Result<Interface, String> {
        for k in &self.kernel_addr {
            if !self.addr.iter().any(|a| a.addr.is_ipv4() == k.is_ipv4()) {
                return Err(format!(
                    "--kernel-addr {k} has no --addr of the same IP version to share a link with"
                ));
            }
        }
        let config = InterfaceConfig {
            name: self.tun.clone(),
            addrs: self.addr.clone(),
            kernel_addrs: self.kernel_addr.clone(),
            mtu: self.mtu,
            stack: synack::Config::default(),
        };
        let iface = Interface::open(config).map_err(|e| {
            format!(
                "synack {command}: cannot set up interface {}: {e}",
                self.tun
            )
        })?;
        if self.verbose {
            let start = std::time::Instant::now();
            iface.on_event(move |e| {
                if let Event::StateChanged {
                    local,
                    remote,
                    from,
                    to,
                    cause,
                    ..
                } = e
                {
                    eprintln!(
                        "{:>10.3} {local} <-> {remote}  {from} -> {to}  ({cause})",
                        start.elapsed().as_secs_f64() * 1000.0
                    );
                }
            });
        }
        Ok(iface)
    }
}
