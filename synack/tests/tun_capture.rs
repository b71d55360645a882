//! Catch-all and decide-first listeners against the kernel: the interface routes the
//! captured prefixes to its TUN device, kernel sockets connect to addresses that are
//! nobody's, and synack takes them (the accepted connection's local address is the
//! destination asked for) or refuses them as told, and the kernel's connect fails with
//! the error the refusal names (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH), over IPv4 and
//! IPv6, on two queues. Runs in this process inside a network namespace the test
//! creates. Needs root; skipped otherwise (failed under CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use netns::*;
use synack::net::TcpListener;
use synack::tun::Interface;
use synack::{Capture, Decide, Refusal, Unreachable};

const CHILD: &str = "SYNACK_TUN_CAPTURE_CHILD";

#[test]
fn kernel_connections_to_captured_prefixes_are_taken_or_refused_as_chosen() {
    if !privileged("kernel_connections_to_captured_prefixes_are_taken_or_refused_as_chosen") {
        return;
    }
    Netns::new().run_child_test(
        "in_namespace_captured_destinations_are_taken_or_refused",
        CHILD,
        None,
    );
}

fn kernel_connect(to: &str) -> std::io::Result<std::net::TcpStream> {
    let addr: SocketAddr = to.parse().unwrap();
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
}

#[test]
#[ignore = "run inside a network namespace by kernel_connections_to_captured_prefixes_are_taken_or_refused_as_chosen"]
fn in_namespace_captured_destinations_are_taken_or_refused() {
    if !in_child(CHILD) {
        return;
    }
    let mut config = tun0_config();
    config.addrs.push("2001:db8::2/64".parse().unwrap());
    config.kernel_addrs.push("2001:db8::1".parse().unwrap());
    config.routes = vec![
        "198.19.0.0/16".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
    ];
    config.queues = 2;
    let iface = Interface::open(config).expect("TUN interface");
    let capture = || {
        Capture::all()
            .prefix("198.19.0.0/16".parse().unwrap())
            .prefix("2001:db8:1::/48".parse().unwrap())
    };

    // Port 80: answered at once; the connection knows the destination it was made to.
    let plain = TcpListener::bind_capture(&iface, capture().ports(80..=80), None).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = plain.accept().unwrap();
            let dst = s.local_addr().unwrap().to_string();
            s.write_all(dst.as_bytes()).unwrap();
        }
    });
    for dst in ["198.19.1.2:80", "[2001:db8:1::80]:80"] {
        let mut k = kernel_connect(dst).unwrap();
        let mut said = String::new();
        k.read_to_string(&mut said).unwrap();
        assert_eq!(said, dst, "the accepted connection's local address");
    }
    server.join().unwrap();

    // Ports 7000-7099: decided first; the port says what to answer.
    let decide = Decide::new().timeout(Duration::from_secs(5));
    let held =
        TcpListener::bind_capture(&iface, capture().ports(7000..=7099), Some(decide)).unwrap();
    let decider = std::thread::spawn(move || {
        for _ in 0..7 {
            let request = held.request().unwrap();
            let refusal = match request.local_addr().port() {
                7001 => Refusal::Reset,
                7002 => Refusal::Unreachable(Unreachable::Port),
                7003 => Refusal::Unreachable(Unreachable::Host),
                7004 => Refusal::Unreachable(Unreachable::Network),
                _ => {
                    let mut s = request.accept().unwrap();
                    s.write_all(b"accepted").unwrap();
                    continue;
                }
            };
            request.refuse(refusal).unwrap();
        }
    });
    let refused = |to: &str| kernel_connect(to).map(|_| ()).unwrap_err();
    assert_eq!(
        refused("198.19.2.2:7001").kind(),
        ErrorKind::ConnectionRefused
    );
    assert_eq!(
        refused("198.19.2.2:7002").kind(),
        ErrorKind::ConnectionRefused
    );
    assert_eq!(
        refused("198.19.2.2:7003").kind(),
        ErrorKind::HostUnreachable
    );
    assert_eq!(
        refused("198.19.2.2:7004").kind(),
        ErrorKind::NetworkUnreachable
    );
    assert_eq!(
        refused("[2001:db8:1::7]:7002").kind(),
        ErrorKind::ConnectionRefused
    );
    assert_eq!(
        refused("[2001:db8:1::7]:7003").kind(),
        ErrorKind::HostUnreachable
    );
    let mut k = kernel_connect("198.19.2.2:7000").unwrap();
    let mut said = String::new();
    k.read_to_string(&mut said).unwrap();
    assert_eq!(said, "accepted");
    decider.join().unwrap();
    let mut stats = synack::stack::StackStats::default();
    for s in iface.with_stacks(|st, _| st.stats()) {
        stats += &s;
    }
    assert_eq!((stats.requests, stats.requests_refused), (7, 6));
    assert_eq!(stats.icmp_unreachable_sent, 5);
}
