//! UDP against the kernel over TUN: kernel sockets and synack's `UdpSocket` exchange
//! datagrams both ways over IPv4 and IPv6 (the blocking and the tokio sockets), small
//! and larger than the MTU (fragmented by
//! one side, reassembled by the other); a datagram to a port synack has no socket on
//! makes the kernel's connected socket see ECONNREFUSED; a catch-all socket answers for
//! a routed prefix from the address the kernel sent to. Runs in this process inside a
//! network namespace the test creates. Needs root; skipped otherwise (failed under
//! CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::net::{SocketAddr, UdpSocket as KernelUdp};
use std::time::Duration;

use netns::*;
use synack::net::UdpSocket;
use synack::tun::Interface;
use synack::Capture;

const CHILD: &str = "SYNACK_TUN_UDP_CHILD";

#[test]
fn kernel_and_synack_exchange_datagrams_and_errors_over_tun() {
    if !privileged("kernel_and_synack_exchange_datagrams_and_errors_over_tun") {
        return;
    }
    Netns::new().run_child_test("in_namespace_udp_against_the_kernel", CHILD, None);
}

fn data(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ salt)
        .collect()
}

#[test]
#[ignore = "run inside a network namespace by kernel_and_synack_exchange_datagrams_and_errors_over_tun"]
fn in_namespace_udp_against_the_kernel() {
    if !in_child(CHILD) {
        return;
    }
    let mut config = tun0_config();
    config.addrs.push("2001:db8::2/64".parse().unwrap());
    config.kernel_addrs.push("2001:db8::1".parse().unwrap());
    config.routes = vec!["198.19.0.0/16".parse().unwrap()];
    config.queues = 2;
    let iface = Interface::open(config).expect("TUN interface");
    for (ours, kernel) in [
        ("198.18.0.2", "198.18.0.1"),
        ("[2001:db8::2]", "[2001:db8::1]"),
    ] {
        let s = UdpSocket::bind(&iface, format!("{ours}:5300")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let k = KernelUdp::bind(format!("{kernel}:0")).unwrap();
        k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let k_addr = k.local_addr().unwrap();
        let s_addr: SocketAddr = format!("{ours}:5300").parse().unwrap();
        for len in [1, 1400, 10_000, 60_000] {
            // Kernel to synack, and synack echoing it back.
            k.send_to(&data(len, 1), s_addr).unwrap();
            let mut buf = vec![0u8; 65_536];
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!(
                (n, from),
                (len, k_addr),
                "{ours}: {len} bytes from the kernel"
            );
            assert_eq!(buf[..n], data(len, 1)[..]);
            s.send_to(&buf[..n], from).unwrap();
            let (n, from) = k.recv_from(&mut buf).unwrap();
            assert_eq!((n, from), (len, s_addr), "{ours}: {len} bytes back");
            assert_eq!(buf[..n], data(len, 1)[..]);
        }
        // A datagram to a port nobody has: the kernel's connected socket is refused.
        let refused = KernelUdp::bind(format!("{kernel}:0")).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        refused.connect(format!("{ours}:5999")).unwrap();
        refused.send(b"anyone?").unwrap();
        let e = refused.recv(&mut [0u8; 16]).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{ours}: {e}"
        );
    }
    // The tokio socket: readable, recv_from, send_to.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = synack::tokio::UdpSocket::bind(&iface, "198.18.0.2:0")
            .await
            .unwrap();
        let s_addr = s.local_addr().unwrap();
        let k = KernelUdp::bind("198.18.0.1:0").unwrap();
        k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        k.send_to(b"to tokio", s_addr).unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.readable())
            .await
            .expect("a datagram in time")
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"to tokio"[..], k.local_addr().unwrap())
        );
        s.send_to(b"from tokio", from).await.unwrap();
        let (n, from) = k.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"from tokio"[..], s_addr));
    });
    // A catch-all socket answers for a routed prefix, from the address asked for.
    let relay = UdpSocket::bind_capture(
        &iface,
        Capture::all().prefix("198.19.0.0/16".parse().unwrap()),
    )
    .unwrap();
    relay
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let k = KernelUdp::bind("198.18.0.1:0").unwrap();
    k.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dns: SocketAddr = "198.19.53.53:53".parse().unwrap();
    k.send_to(b"query", dns).unwrap();
    let d = relay.recv_datagram().unwrap();
    assert_eq!(
        (d.from, d.to, &d.data[..]),
        (k.local_addr().unwrap(), dns, &b"query"[..])
    );
    relay.send_from(b"answer", d.to, d.from).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = k.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"answer"[..], dns));
}
