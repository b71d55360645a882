//! Command-line options shared by `synack serve` and `synack connect`: which TUN
//! interface to create and the addresses of both its sides.

use std::net::IpAddr;

use clap::Args;
use synack::sim::LinkConfig;
use synack::tun::{Cidr, ImpairStats, Interface, InterfaceConfig, OffloadStats};
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
    /// Do not use the kernel's segmentation and checksum offload (TSO/GSO super-segments)
    /// on the TUN device; every packet is then at most one MTU.
    #[arg(long)]
    pub no_offload: bool,
    /// Impair the link in both directions, e.g. loss=2%,delay=10ms,jitter=2ms,reorder=10%,duplicate=1%,rate=100mbit
    /// (also loss-burst=MIN-MAX, reorder-delay, corrupt, queue=BYTES).
    #[arg(long, value_parser = parse_impair, value_name = "SPEC")]
    pub impair: Option<LinkConfig>,
    /// Seed of the impairment's randomness (same seed, same decisions for the same packets).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub impair_seed: u64,
    /// Write every packet through the interface, both ways, to FILE in pcap format
    /// (for Wireshark or tcpdump -r).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// The Unix socket `synack ss` asks (default /run/synack/<tun>.sock).
    #[arg(long, value_name = "PATH")]
    pub control: Option<std::path::PathBuf>,
    /// Do not answer `synack ss` (no control socket).
    #[arg(long)]
    pub no_control: bool,
    /// Warn (in `synack ss` and the event stream) about connections in CLOSE_WAIT this
    /// many seconds: the peer closed and the application did not.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub warn_close_wait: f64,
    /// Send buffer of each connection, in bytes (SO_SNDBUF; default 256 KiB). A bulk
    /// sender on a path with a deep queue needs about its bandwidth times the queued
    /// RTT (Linux grows its own up to tcp_wmem's 4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub send_buffer: Option<usize>,
    /// Receive buffer of each connection, in bytes (SO_RCVBUF; default 256 KiB).
    #[arg(long, value_name = "BYTES")]
    pub recv_buffer: Option<usize>,
    /// Queues of the TUN device (IFF_MULTI_QUEUE when more than one), each with its own
    /// stack and driver thread (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub queues: Option<u16>,
    /// Print every state change to stderr (and, at exit, what --impair did).
    #[arg(short, long)]
    pub verbose: bool,
}

fn parse_impair(s: &str) -> Result<LinkConfig, String> {
    s.parse()
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

impl TunArgs {
    /// The interface these options describe. The stack's secret keys are drawn from the
    /// operating system's random source ([`synack::Secrets::Random`], the default).
    pub fn interface_config(&self) -> InterfaceConfig {
        // clap requires at least one of each (`required = true`).
        let mut interface = InterfaceConfig::new(&self.tun, self.addr[0], self.kernel_addr[0]);
        interface.addrs = self.addr.clone();
        interface.kernel_addrs = self.kernel_addr.clone();
        interface.mtu = self.mtu;
        let stack = &mut interface.stack;
        stack.warn_close_wait = std::time::Duration::from_secs_f64(self.warn_close_wait.max(0.0));
        stack.send_buffer = self.send_buffer.unwrap_or(stack.send_buffer);
        stack.recv_buffer = self.recv_buffer.unwrap_or(stack.recv_buffer);
        stack.tcp_rmem_max = stack.tcp_rmem_max.max(self.recv_buffer.unwrap_or(0));
        interface.offload = !self.no_offload;
        interface.impair = self.impair.clone();
        interface.impair_seed = self.impair_seed;
        interface.pcap = self.pcap.clone();
        // The control socket is started below, where a failure is only a warning.
        interface.control = None;
        interface.queues = self
            .queues
            .map_or_else(synack::tun::default_queues, usize::from);
        interface
    }

    /// Create the interface and start its driver, or explain why not.
    pub fn open(&self, command: &str) -> Result<Interface, String> {
        self.open_with(command, self.interface_config(), |_| None)
    }

    /// [`TunArgs::open`] with a configuration of the caller's (made from
    /// `interface_config`), and `extra` answering the control socket's extensions
    /// (see `synack::tun::control::serve_extended`).
    pub fn open_with(
        &self,
        command: &str,
        config: InterfaceConfig,
        extra: impl Fn(&str) -> Option<String> + Send + 'static,
    ) -> Result<Interface, String> {
        for k in &self.kernel_addr {
            if !self.addr.iter().any(|a| a.addr.is_ipv4() == k.is_ipv4()) {
                return Err(format!(
                    "--kernel-addr {k} has no --addr of the same IP version to share a link with"
                ));
            }
        }
        let iface = Interface::open(config).map_err(|e| {
            format!(
                "synack {command}: cannot set up interface {}: {e}",
                self.tun
            )
        })?;
        if !self.no_control {
            let path = self
                .control
                .clone()
                .unwrap_or_else(|| synack::tun::control::default_control(&self.tun));
            if let Err(e) = synack::tun::control::serve_extended(&path, iface.stack_handle(), extra)
            {
                eprintln!(
                    "synack {command}: no control socket at {} ({e}); synack ss will not see this process",
                    path.display()
                );
            }
        }
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

/// One line on what `--impair` did, for `-v`.
pub fn impair_summary(s: &ImpairStats) -> String {
    let dir = |i: usize| {
        format!(
            "{} sent, {} lost, {} duplicated, {} reordered, {} corrupted",
            s.sent[i], s.lost[i], s.duplicated[i], s.reordered[i], s.corrupted[i]
        )
    };
    format!("impair: to kernel: {}; to synack: {}", dir(0), dir(1))
}

/// One line on what segmentation offload did, for `-v`.
pub fn offload_summary(s: &OffloadStats) -> String {
    if !s.enabled {
        return "offload: off".to_string();
    }
    format!(
        "offload: on; from kernel: {} super-segments, largest packet {} bytes; to kernel: {} super-segments of {} segments",
        s.super_in, s.largest_in, s.super_out, s.segments_merged
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tun: TunArgs,
    }

    #[test]
    fn serve_and_connect_stacks_draw_random_secrets() {
        let cli = Cli::parse_from([
            "t",
            "--addr",
            "198.18.0.2/15",
            "--kernel-addr",
            "198.18.0.1",
        ]);
        let config = cli.tun.interface_config();
        assert_eq!(config.stack.secrets, synack::Secrets::Random);
        assert_eq!(config.addrs, vec!["198.18.0.2/15".parse().unwrap()]);
    }
}
