//! The `echo_tokio` example against the kernel: its tokio echo server on synack over TUN,
//! kernel `TcpStream`s as clients, in this process inside a network namespace the test
//! creates. Needs root; skipped otherwise (failed under CI=true).

#[allow(dead_code)]
#[path = "../examples/echo_tokio.rs"]
mod echo_tokio;
#[path = "support/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use netns::*;
use synack::tun::Interface;

const CHILD: &str = "SYNACK_TUN_ECHO_CHILD";

#[test]
fn the_echo_tokio_example_echoes_kernel_connections() {
    if !privileged("the_echo_tokio_example_echoes_kernel_connections") {
        return;
    }
    Netns::new().run_child_test("in_namespace_echo_tokio_echoes_kernel_streams", CHILD, None);
}

#[test]
#[ignore = "run inside a network namespace by the_echo_tokio_example_echoes_kernel_connections"]
fn in_namespace_echo_tokio_echoes_kernel_streams() {
    if !in_child(CHILD) {
        return;
    }
    // The example's defaults: tun0, synack 198.18.0.2/15, the kernel 198.18.0.1, port 7.
    let settings = echo_tokio::settings(&[]).unwrap();
    let listen = settings.listen;
    let iface = Interface::open(settings.config).expect("TUN interface");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.spawn(async move { echo_tokio::serve(&iface, listen).await });
    // Three kernel clients at once, each sending its own bytes and reading them back.
    let clients: Vec<_> = (0..3u8)
        .map(|i| {
            std::thread::spawn(move || {
                let sent: Vec<u8> = (0..200_000u32).map(|j| (j as u8) ^ i).collect();
                let mut s = connect_once_listening(listen);
                let mut w = s.try_clone().unwrap();
                let data = sent.clone();
                let writer = std::thread::spawn(move || {
                    w.write_all(&data).unwrap();
                    w.shutdown(std::net::Shutdown::Write).unwrap();
                });
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == sent, "client {i}: the echo differs");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Ends the server's task, then the interface it holds.
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// A kernel connection to `to`, once the server's task has bound its listener (before
/// that synack refuses with RST): refused attempts are tried again for up to 10 s.
fn connect_once_listening(to: SocketAddr) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
            Ok(s) => return s,
            Err(e)
                if e.kind() == ErrorKind::ConnectionRefused
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("connect to {to}: {e}"),
        }
    }
}
