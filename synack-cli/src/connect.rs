//! `synack connect`: like `nc`, over synack's side of a TUN interface. Standard input
//! goes to the connection, the connection to standard output; end of input half-closes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use clap::Args;
use synack::net::TcpStream;

use crate::tun_args::TunArgs;

/// Options of `synack connect`.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub tun: TunArgs,
    /// Where to connect, e.g. 198.18.0.1:8000 or [2001:db8::1]:8000.
    pub target: SocketAddr,
}

/// Run `synack connect`; returns the exit status.
pub fn run(args: &ConnectArgs) -> i32 {
    let iface = match args.tun.open("connect") {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let stream = match TcpStream::connect(&iface, args.target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synack connect: cannot connect to {}: {e}", args.target);
            return 1;
        }
    };
    let mut upload = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synack connect: {e}");
            return 1;
        }
    };
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdin.read(&mut buf)?;
            if n == 0 {
                // End of input: half-close, keep reading what the peer still sends.
                return upload.shutdown(Shutdown::Write);
            }
            upload.write_all(&buf[..n])?;
        }
    });
    let mut download = stream;
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let received = loop {
        match download.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = stdout.write_all(&buf[..n]) {
                    break Err(e);
                }
            }
            Err(e) => break Err(e),
        }
    };
    let _ = stdout.flush();
    let sent = sender
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("sender thread panicked")));
    // Let the close handshake finish before the interface goes away with the process.
    drop(download);
    iface.wait_closed(Duration::from_secs(10));
    if args.tun.verbose {
        eprintln!(
            "{}",
            crate::tun_args::offload_summary(&iface.offload_stats())
        );
        if let Some(s) = iface.impairment_stats() {
            eprintln!("{}", crate::tun_args::impair_summary(&s));
        }
    }
    match (received, sent) {
        (Ok(()), Ok(())) => 0,
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("synack connect: {e}");
            1
        }
    }
}
