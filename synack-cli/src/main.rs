//! The `synack` command. With no arguments it runs the default demo: a simulated
//! handshake, request, answer and close, drawn as a ladder diagram.

mod connect;
mod demo;
mod drill;
mod relay;
mod serve;
mod ss;
mod transfer;
mod tun_args;

use clap::{Parser, Subcommand};

/// synack: a user-space TCP/IP stack you can watch.
#[derive(Parser, Debug)]
#[command(name = "synack", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario in the simulator and draw it (the default command).
    Demo(demo::DemoArgs),
    /// Serve echo, discard, chargen or HTTP on a TUN interface (needs root or CAP_NET_ADMIN).
    Serve(serve::ServeArgs),
    /// Connect to a server on the kernel side of a TUN interface, like nc (needs root or CAP_NET_ADMIN).
    Connect(connect::ConnectArgs),
    /// Run packetdrill scripts against synack on its virtual clock.
    Drill(drill::DrillArgs),
    /// Relay every TCP connection routed into a TUN device to its real destination,
    /// directly or through SOCKS5, like tun2socks (needs root or CAP_NET_ADMIN).
    #[command(after_long_help = relay::ROUTING_HELP)]
    Relay(relay::RelayArgs),
    /// Show the connections of running synack serve/connect/relay processes, like ss -tani.
    Ss(ss::SsArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Demo(args)) => demo::run(&args),
        Some(Command::Serve(args)) => serve::run(&args),
        Some(Command::Connect(args)) => connect::run(&args),
        Some(Command::Drill(args)) => drill::run_drill(&args),
        Some(Command::Relay(args)) => relay::run(&args),
        Some(Command::Ss(args)) => ss::run(&args),
        None => demo::run(&demo::DemoArgs::default()),
    };
    std::process::exit(code);
}
