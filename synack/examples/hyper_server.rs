//! A hyper HTTP/1.1 server running on synack's TCP instead of the kernel's, through a
//! TUN interface: proof that `synack::tokio::TcpStream` is a drop-in tokio stream. The
//! interface has one queue (a stack and a driver thread) per core, and the listener
//! accepts from all of them.
//!
//! ```text
//! sudo cargo run --example hyper_server -- tun0 198.18.0.2/15 198.18.0.1 8080
//! curl http://198.18.0.2:8080/            # from the kernel side
//! curl http://198.18.0.2:8080/bytes/1000000 | wc -c
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use synack::tun::{Cidr, Interface, InterfaceConfig};

/// `/` greets; `/bytes/N` answers with N bytes; anything else is 404.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let response = if path == "/" {
        Response::new(Full::new(Bytes::from("Hello from hyper over synack\n")))
    } else if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= 100_000_000)
    {
        // Up to 10 MB: a slice of one pattern made once, so that answering costs little
        // beside the stack; beyond, the pattern is made for the request.
        static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let pattern = |n: usize| (0..n).map(|i| b'a' + (i % 26) as u8).collect::<Bytes>();
        let body = match n {
            0..=10_000_000 => PATTERN.get_or_init(|| pattern(10_000_000)).slice(..n),
            _ => pattern(n),
        };
        Response::new(Full::new(body))
    } else {
        let mut r = Response::new(Full::new(Bytes::from("not found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tun, addr, kernel_addr, port] = args.as_slice() else {
        eprintln!("usage: hyper_server TUN ADDR/PREFIX KERNEL_ADDR PORT   (e.g. tun0 198.18.0.2/15 198.18.0.1 8080; needs root)");
        std::process::exit(2);
    };
    let addr: Cidr = addr.parse()?;
    let iface = Interface::open(InterfaceConfig::new(tun, addr, kernel_addr.parse()?))
        .map_err(|e| format!("cannot set up {tun} (needs root or CAP_NET_ADMIN): {e}"))?;
    let local = SocketAddr::new(addr.addr, port.parse()?);
    let listener = synack::tokio::TcpListener::bind(&iface, local).await?;
    eprintln!("hyper over synack listening on {local}");
    loop {
        let (stream, _peer) = listener.accept().await?;
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
            if let Err(e) = served {
                eprintln!("connection error: {e}");
            }
        });
    }
}
