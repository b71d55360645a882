//! Two synack stacks in one process, joined by an in-memory pair of devices: a tokio echo
//! server on one, a tokio client on the other. No TUN, no root: what a test of an
//! application over synack looks like.
//!
//! ```text
//! cargo run --example two_stacks
//! ```

use std::net::SocketAddr;

use synack::device::{memory, DeviceConfig, Interface};
use synack::tokio::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echo `message` through a server on one stack from a client on the other; returns what
/// came back.
pub async fn echo_between_two_stacks(message: &[u8]) -> std::io::Result<Vec<u8>> {
    let (a, b) = memory::pair(256);
    let server_iface = Interface::new(a, DeviceConfig::new("198.18.0.1".parse().unwrap()))?;
    let client_iface = Interface::new(b, DeviceConfig::new("198.18.0.2".parse().unwrap()))?;
    let addr: SocketAddr = "198.18.0.1:7".parse().unwrap();

    let listener = TcpListener::bind(&server_iface, addr).await?;
    let server = tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await?;
        println!("server: accepted {peer}");
        let mut buf = vec![0; 4096];
        let mut echoed = 0;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).await?;
            echoed += n;
        }
        stream.shutdown().await?;
        println!("server: echoed {echoed} bytes, closed");
        Ok::<_, std::io::Error>(())
    });

    let mut client = TcpStream::connect(&client_iface, addr).await?;
    println!("client: connected from {}", client.local_addr()?);
    client.write_all(message).await?;
    client.shutdown().await?;
    let mut back = Vec::new();
    client.read_to_end(&mut back).await?;
    println!(
        "client: sent {} bytes, got {} back",
        message.len(),
        back.len()
    );
    server.await.map_err(std::io::Error::other)??;
    Ok(back)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let back = echo_between_two_stacks(&message).await?;
    assert_eq!(back, message, "the echo differs");
    println!("echo matches");
    Ok(())
}
