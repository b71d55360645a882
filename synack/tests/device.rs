//! synack's sockets over devices other than TUN, in one process and without root: two
//! stacks joined by the in-memory pair (`synack::device::memory`) with blocking and tokio
//! sockets, a full queue that drops, a device of the test's own without a file descriptor
//! (the waker path), several queues, and the runtime's capture and impairment over them.
//! The `two_stacks` and `custom_device` examples run here as they are.

#[allow(dead_code)]
#[path = "../examples/custom_device.rs"]
mod custom_device;
#[allow(dead_code)]
#[path = "../examples/two_stacks.rs"]
mod two_stacks;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synack::device::memory::{self, MemoryDevice};
use synack::device::{DeviceConfig, Interface};
use synack::net::{TcpListener, TcpStream};
use synack::sim::LinkConfig;
use synack::{Event, TcpState};

const CLIENT: &str = "198.18.9.1";
const SERVER: &str = "198.18.9.2";

fn server_addr() -> SocketAddr {
    format!("{SERVER}:5000").parse().unwrap()
}

/// Two interfaces over `pair`: (client, server); `client` may change the client's config.
fn two_stacks(
    (a, b): (MemoryDevice, MemoryDevice),
    client: impl FnOnce(&mut DeviceConfig),
) -> (Interface, Interface) {
    let mut c = DeviceConfig::new(CLIENT.parse().unwrap());
    c.name = "client".into();
    client(&mut c);
    let mut s = DeviceConfig::new(SERVER.parse().unwrap());
    s.name = "server".into();
    (
        Interface::new(a, c).expect("client interface"),
        Interface::new(b, s).expect("server interface"),
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Connect, then: the client sends `up` and closes its side; the server reads it to the
/// end, answers `down` and closes. Returns what each side got.
fn request_response(
    client: &Interface,
    server: &Interface,
    up: &[u8],
    down: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let listener = TcpListener::bind(server, server_addr()).unwrap();
    let down = down.to_vec();
    let srv = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&down).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got
    });
    let mut c = TcpStream::connect(client, server_addr()).unwrap();
    c.write_all(up).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    (srv.join().unwrap(), got)
}

#[test]
fn blocking_streams_carry_bytes_both_ways_at_once_byte_exact() {
    let (client, server) = two_stacks(memory::pair(256), |_| {});
    let listener = TcpListener::bind(&server, server_addr()).unwrap();
    let (up, down) = (pattern(700_000, 1), pattern(500_000, 2));
    let down2 = down.clone();
    let srv = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&down2).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    });
    let mut c = TcpStream::connect(&client, server_addr()).unwrap();
    let mut w = c.try_clone().unwrap();
    let up2 = up.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&up2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert!(
        got == down,
        "the client got other bytes than the server sent"
    );
    assert!(
        srv.join().unwrap() == up,
        "the server got other bytes than the client sent"
    );
}

#[test]
fn a_half_closed_stream_still_carries_the_answer() {
    let (client, server) = two_stacks(memory::pair(256), |_| {});
    let (at_server, at_client) = request_response(&client, &server, b"request", b"response");
    assert_eq!(at_server, b"request");
    assert_eq!(at_client, b"response");
}

#[test]
fn an_aborted_connection_is_seen_as_econnreset_by_the_peer() {
    let (client, server) = two_stacks(memory::pair(256), |_| {});
    let listener = TcpListener::bind(&server, server_addr()).unwrap();
    let c = TcpStream::connect(&client, server_addr()).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.abort().unwrap();
    let mut buf = [0; 16];
    let err = s
        .read(&mut buf)
        .expect_err("a reset connection reads an error");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn tokio_streams_echo_between_two_stacks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let message = pattern(1_000_000, 3);
    let back = rt
        .block_on(two_stacks::echo_between_two_stacks(&message))
        .unwrap();
    assert!(back == message, "the echo differs");
}

#[test]
fn a_full_queue_drops_packets_and_tcp_recovers_them() {
    let pair = MemoryDevice::pair(4, 1500);
    let client_end = pair.0.clone();
    let (client, server) = two_stacks(pair, |_| {});
    let up = pattern(1_000_000, 4);
    let (at_server, _) = request_response(&client, &server, &up, b"");
    assert!(at_server == up, "the server got other bytes than were sent");
    let stats = client_end.stats();
    assert!(
        stats.dropped > 0,
        "a queue of 4 packets never filled: {stats:?}"
    );
    assert!(stats.sent > 0);
}

#[test]
fn a_device_without_a_file_descriptor_is_woken_through_its_waker() {
    // The example's channel device has no fd and loses every 20th packet one way.
    let (got, reply, lost) = custom_device::exchange(300_000).unwrap();
    assert_eq!(got.len(), 300_000);
    assert_eq!(reply, b"thanks");
    assert!(lost > 0, "the lossy link lost nothing");
}

/// The packets of a pcap file (after the 24-byte file header, a 16-byte record header
/// each whose third word is the captured length).
fn pcap_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes(), "pcap magic");
    let mut at = 24;
    let mut packets = Vec::new();
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        packets.push(bytes[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "a cut record");
    packets
}

#[test]
fn the_capture_holds_every_packet_of_a_memory_device_both_ways() {
    let path = std::env::temp_dir().join(format!("synack-device-{}.pcap", std::process::id()));
    let pair = memory::pair(256);
    let client_end = pair.0.clone();
    let (client, server) = two_stacks(pair, |c| c.pcap = Some(path.clone()));
    let (at_server, at_client) = request_response(&client, &server, b"ping", b"pong");
    assert_eq!(
        (&at_server[..], &at_client[..]),
        (&b"ping"[..], &b"pong"[..])
    );
    assert!(
        client.wait_closed(Duration::from_secs(10)),
        "the connection never closed"
    );
    drop(client);
    drop(server);
    let packets = pcap_packets(&std::fs::read(&path).unwrap());
    let _ = std::fs::remove_file(&path);
    let stats = client_end.stats();
    assert_eq!(
        packets.len() as u64,
        stats.sent + stats.received,
        "{stats:?}"
    );
    // The first is the client's SYN: IPv4, TCP, flags SYN alone, from the client.
    let syn = &packets[0];
    assert_eq!(syn[0] >> 4, 4);
    assert_eq!(syn[9], 6);
    assert_eq!(
        &syn[12..16],
        &CLIENT.parse::<std::net::Ipv4Addr>().unwrap().octets()
    );
    assert_eq!(syn[20 + 13], 0x02);
}

#[test]
fn an_impaired_memory_link_loses_packets_and_tcp_recovers_them() {
    let (client, server) = two_stacks(memory::pair(256), |c| {
        let mut link = LinkConfig::default();
        link.loss = 0.05;
        c.impair = Some(link);
        c.impair_seed = 7;
    });
    let up = pattern(300_000, 5);
    let down = pattern(100_000, 6);
    let (at_server, at_client) = request_response(&client, &server, &up, &down);
    assert!(at_server == up && at_client == down, "bytes differ");
    let stats = client.impairment_stats().expect("impairment stats");
    assert!(stats.lost[0] + stats.lost[1] > 0, "nothing lost: {stats:?}");
    assert!(server.impairment_stats().is_none());
}

#[test]
fn several_memory_queues_each_run_a_stack_and_report_events() {
    let (a1, b1) = memory::pair(256);
    let (a2, b2) = memory::pair(256);
    let client =
        Interface::with_devices(vec![a1, a2], DeviceConfig::new(CLIENT.parse().unwrap())).unwrap();
    let server =
        Interface::with_devices(vec![b1, b2], DeviceConfig::new(SERVER.parse().unwrap())).unwrap();
    assert_eq!((client.queues(), server.queues()), (2, 2));
    let established = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&established);
    server.on_event(move |e| {
        if let Event::StateChanged {
            to: TcpState::Established,
            ..
        } = e
        {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let listener = TcpListener::bind(&server, server_addr()).unwrap();
    let mut streams: Vec<_> = (0..4)
        .map(|_| TcpStream::connect(&client, server_addr()).unwrap())
        .collect();
    for (i, c) in streams.iter_mut().enumerate() {
        c.write_all(&[i as u8]).unwrap();
    }
    // `accept` takes from the queues in turn: which stream is whose is not known here.
    let mut got: Vec<u8> = (0..4)
        .map(|_| {
            let (mut s, _) = listener.accept().unwrap();
            let mut one = [0];
            s.read_exact(&mut one).unwrap();
            one[0]
        })
        .collect();
    got.sort();
    assert_eq!(got, [0, 1, 2, 3]);
    // Each queue's stack took two of the four connections (active opens round robin).
    let per_queue = server.with_stacks(|stack, _| stack.connections().len());
    assert_eq!(per_queue, vec![2, 2]);
    assert_eq!(established.load(Ordering::SeqCst), 4);
    assert!(client.runtime_stats().packets_read > 0);
    assert_eq!(client.runtime_stats().misrouted, 0);
}
