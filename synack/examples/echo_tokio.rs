//! A tokio echo server on synack over a TUN interface: every connection gets back what it
//! sends, until it closes its side. The kernel side of the interface is the client.
//!
//! ```text
//! sudo cargo run --example echo_tokio -- tun0 198.18.0.2/15 198.18.0.1 7
//! printf 'hello\n' | nc -q1 198.18.0.2 7       # from the kernel side
//! ```
//!
//! Each argument may be left out (from the right), or given in the environment instead:
//! `SYNACK_TUN`, `SYNACK_ADDR`, `SYNACK_KERNEL_ADDR`, `SYNACK_PORT`; the defaults are
//! `tun0 198.18.0.2/15 198.18.0.1 7`.

use std::net::SocketAddr;

use synack::tokio::{TcpListener, TcpStream};
use synack::tun::{Cidr, Interface, InterfaceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where to listen: the interface's settings and the port.
pub struct Settings {
    /// The interface's configuration.
    pub config: InterfaceConfig,
    /// The address the server listens on.
    pub listen: SocketAddr,
}

/// The settings from `args` (TUN ADDR/PREFIX KERNEL_ADDR PORT, each optional), the
/// environment, then the defaults.
pub fn settings(args: &[String]) -> Result<Settings, String> {
    let pick = |i: usize, env: &str, default: &str| {
        args.get(i)
            .cloned()
            .or_else(|| std::env::var(env).ok())
            .unwrap_or_else(|| default.to_string())
    };
    let tun = pick(0, "SYNACK_TUN", "tun0");
    let addr: Cidr = pick(1, "SYNACK_ADDR", "198.18.0.2/15").parse()?;
    let kernel = pick(2, "SYNACK_KERNEL_ADDR", "198.18.0.1");
    let kernel = kernel
        .parse()
        .map_err(|_| format!("'{kernel}' is not an IP address"))?;
    let port = pick(3, "SYNACK_PORT", "7");
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port"))?;
    Ok(Settings {
        config: InterfaceConfig::new(&tun, addr, kernel),
        listen: SocketAddr::new(addr.addr, port),
    })
}

/// Echo what one connection sends until it closes its side; then close ours.
async fn echo(mut stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0; 16384];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    stream.shutdown().await?;
    Ok(total)
}

/// Accept connections on `listen` forever, each echoed by a task of its own.
pub async fn serve(iface: &Interface, listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(iface, listen).await?;
    println!("echoing on {listen}");
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            match echo(stream).await {
                Ok(n) => println!("{peer}: echoed {n} bytes"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s = settings(&args)?;
    let name = s.config.name.clone();
    let iface = Interface::open(s.config)
        .map_err(|e| format!("cannot set up {name} (needs root or CAP_NET_ADMIN): {e}"))?;
    serve(&iface, s.listen).await?;
    Ok(())
}
