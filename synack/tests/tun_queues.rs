//! A multi-queue TUN interface (one stack and driver thread per queue): 500 connections
//! from the kernel land on every queue and one accept loop takes them all, 500 more
//! opened by synack are spread over the queues; the kernel's `ss` and synack's sockets
//! agree on the states of all 1,000; after the kernel has forgotten which queue each
//! flow uses, segments that arrive on a queue whose stack does not have their connection
//! are handed to the one that has it, counted, and none is lost. The sockets
//! run in this process on a TUN device inside a network namespace the test creates; the
//! kernel side is std sockets in that namespace. Needs root; skipped otherwise (failed
//! under CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use netns::*;
use synack::tun::Interface;
use synack::TcpState;

/// Set in the child that runs inside the namespace.
const CHILD: &str = "SYNACK_TUN_QUEUES_CHILD";
const QUEUES: usize = 4;
/// Connections each way (kernel to synack, synack to kernel).
const CONNECTIONS: usize = 500;

#[test]
fn connections_spread_over_queues_are_accepted_tracked_and_handed_between_queues() {
    if !privileged("connections_spread_over_queues_are_accepted_tracked_and_handed_between_queues")
    {
        return;
    }
    // 1,000 kernel sockets need more descriptors than a default soft limit of 1,024.
    Netns::new().run_child_test(
        "in_namespace_a_multi_queue_interface_serves_1000_connections",
        CHILD,
        Some(8192),
    );
}

/// Connections the kernel's `ss` shows in `state` (its state filter name) to or from
/// `port`.
fn kernel_count(state: &str, port: u16) -> usize {
    let p = format!(":{port}");
    let out = Command::new("ss")
        .args([
            "-Htn", "state", state, "(", "dport", "=", &p, "or", "sport", "=", &p, ")",
        ])
        .output()
        .expect("ss runs");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// synack's connections in `state`, over every queue, and how many each queue has.
fn synack_count(iface: &Interface, state: TcpState) -> (usize, Vec<usize>) {
    let per_queue = iface.with_stacks(|st, _| {
        st.connections()
            .iter()
            .filter(|(_, _, s)| *s == state)
            .count()
    });
    (per_queue.iter().sum(), per_queue)
}

/// Wait (at most 10 s) until `done` holds.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The work, run by the test above inside its namespace (never on the host's network).
#[test]
#[ignore = "run inside a network namespace by connections_spread_over_queues_are_accepted_tracked_and_handed_between_queues"]
fn in_namespace_a_multi_queue_interface_serves_1000_connections() {
    if !in_child(CHILD) {
        return;
    }
    let mut config = tun0_config();
    config.queues = QUEUES;
    let iface = Interface::open(config).expect("TUN interface");
    assert_eq!(iface.queues(), QUEUES);
    let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();

    // One accept loop takes every connection, whichever queue it arrived on.
    let acceptor = std::thread::spawn(move || {
        (0..CONNECTIONS)
            .map(|_| listener.accept().expect("accept").0)
            .collect::<Vec<_>>()
    });
    let kernel: Vec<std::net::TcpStream> = (0..CONNECTIONS)
        .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect();
    let streams = acceptor.join().unwrap();
    assert_eq!(streams.len(), CONNECTIONS);
    let (accepted, per_queue) = synack_count(&iface, TcpState::Established);
    assert_eq!(accepted, CONNECTIONS, "per queue: {per_queue:?}");
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "connections from the kernel land on every queue: {per_queue:?}"
    );

    // synack opens as many to a kernel listener, each queue in turn.
    // (The kernel accepts meanwhile: its listen backlog is shorter than 500.)
    let server = std::net::TcpListener::bind("198.18.0.1:0").unwrap();
    let kaddr = server.local_addr().unwrap();
    let kernel_acceptor = std::thread::spawn(move || {
        let accepted: Vec<std::net::TcpStream> = (0..CONNECTIONS)
            .map(|_| server.accept().unwrap().0)
            .collect();
        (server, accepted)
    });
    let opened: Vec<synack::net::TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            synack::net::TcpStream::connect_timeout(&iface, &kaddr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("synack's connection {i} to {kaddr}: {e}"))
        })
        .collect();
    let (server, mut kernel_accepted) = kernel_acceptor.join().unwrap();

    // Both sides agree: all 1,000 established, spread over every queue.
    let (established, per_queue) = synack_count(&iface, TcpState::Established);
    assert_eq!(established, 2 * CONNECTIONS, "per queue: {per_queue:?}");
    assert_eq!(kernel_count("established", addr.port()), CONNECTIONS);
    assert_eq!(kernel_count("established", kaddr.port()), CONNECTIONS);

    // A connection lives on the queue its first packets used: for one the kernel opened
    // that is the queue the kernel picks by the flow's hash, ever after. One synack
    // opened lives where synack sent its SYN, which the kernel remembers only while the
    // flow is busy: idle for three seconds (tun.c's TUN_FLOW_EXPIRE, collected at its
    // next sweep) it falls back to the hash, and with four queues most of these flows
    // then arrive on a queue whose stack does not have them. After 4 s, then 7 s of
    // silence, each kernel socket sends a byte; synack must read every one.
    let mut streams: Vec<synack::net::TcpStream> = streams.into_iter().chain(opened).collect();
    let mut kernel: Vec<std::net::TcpStream> = kernel
        .into_iter()
        .chain(kernel_accepted.drain(..))
        .collect();
    let mut round = 0u8;
    for idle in [4, 7] {
        std::thread::sleep(Duration::from_secs(idle));
        round += 1;
        for k in &mut kernel {
            k.write_all(&[round]).unwrap();
        }
        for s in &mut streams {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).expect("every byte arrives");
            assert_eq!(b[0], round);
        }
        if iface.runtime_stats().misrouted > 0 {
            break;
        }
    }
    assert!(
        iface.runtime_stats().misrouted > 0,
        "no segment arrived on another queue after {round} idle periods"
    );
    eprintln!(
        "after {round} rounds: {} segments handed to the queue that has their connection",
        iface.runtime_stats().misrouted
    );

    // The kernel closes: it sits in FIN_WAIT_2 and synack in CLOSE_WAIT, on both counts.
    drop(kernel);
    drop(server);
    until("synack sees every FIN", || {
        synack_count(&iface, TcpState::CloseWait).0 == 2 * CONNECTIONS
    });
    until("the kernel shows every socket in FIN_WAIT_2", || {
        kernel_count("fin-wait-2", addr.port()) + kernel_count("fin-wait-2", kaddr.port())
            == 2 * CONNECTIONS
    });
    // synack closes too: the kernel goes to TIME_WAIT, synack's side is gone.
    drop(streams);
    until("synack has no connection left", || {
        iface
            .with_stacks(|st, _| st.connections().len())
            .iter()
            .sum::<usize>()
            == 0
    });
    until("the kernel shows every socket in TIME_WAIT", || {
        kernel_count("time-wait", addr.port()) + kernel_count("time-wait", kaddr.port())
            == 2 * CONNECTIONS
    });
}
