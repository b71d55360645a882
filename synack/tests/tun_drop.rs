//! Dropping a `tun::Interface` while its sockets are in use: every call pending on them
//! (a blocking read, a tokio read, a blocking accept) returns at once with an error that
//! says the interface is closed, every later call too, and the drop itself does not
//! hang. The sockets run in this process, on a TUN device inside a network namespace the
//! test creates; the kernel side of each connection is a std socket in that namespace.
//! Needs root; skipped otherwise (failed under CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netns::*;
use synack::tun::Interface;

/// Set in the child that runs inside the namespace.
const CHILD: &str = "SYNACK_TUN_DROP_CHILD";

#[test]
fn dropping_the_interface_ends_every_pending_and_later_call_at_once() {
    if !privileged("dropping_the_interface_ends_every_pending_and_later_call_at_once") {
        return;
    }
    Netns::new().run_child_test(
        "in_namespace_pending_calls_fail_when_the_interface_is_dropped",
        CHILD,
        None,
    );
}

/// The work, run by the test above inside its namespace (never on the host's network).
#[test]
#[ignore = "run inside a network namespace by dropping_the_interface_ends_every_pending_and_later_call_at_once"]
fn in_namespace_pending_calls_fail_when_the_interface_is_dropped() {
    if !in_child(CHILD) {
        return;
    }
    let iface = Interface::open(tun0_config()).expect("TUN interface");
    // Port 0: the listener picks a free port and says which.
    let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0, "listening on port 0 picks a port");

    // Two kernel clients; synack accepts both.
    let kernel = [
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap(),
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap(),
    ];
    let (mut blocking, _) = listener.accept().unwrap();
    let (second, _) = listener.accept().unwrap();
    // A blocking read with a long timeout, pending when the interface goes.
    blocking
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = blocking.try_clone().unwrap();
    let blocked_read = std::thread::spawn(move || {
        let r = reader.read(&mut [0u8; 16]);
        (r.map_err(|e| (e.kind(), e.to_string())), Instant::now())
    });
    // A blocking accept, pending too.
    let listener = std::sync::Arc::new(listener);
    let acceptor = std::sync::Arc::clone(&listener);
    let blocked_accept = std::thread::spawn(move || {
        let r = acceptor.accept().map(|_| ());
        (r.map_err(|e| e.kind()), Instant::now())
    });
    // A tokio read on the second connection (turned into a tokio stream by accepting
    // it through the tokio API is not possible here, so a fresh tokio connection).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tokio_listener = rt
        .block_on(synack::tokio::TcpListener::bind(&iface, "198.18.0.2:0"))
        .unwrap();
    let tokio_addr = tokio_listener.local_addr().unwrap();
    let _kernel3 =
        std::net::TcpStream::connect_timeout(&tokio_addr, Duration::from_secs(5)).unwrap();
    let mut tokio_stream = rt.block_on(tokio_listener.accept()).unwrap().0;
    let tokio_read = rt.spawn(async move {
        use tokio::io::AsyncReadExt;
        let r = tokio_stream.read(&mut [0u8; 16]).await;
        let at = Instant::now();
        (r.map_err(|e| (e.kind(), e.to_string())), at, tokio_stream)
    });
    // Let all three calls reach their wait.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !blocked_read.is_finished() && !blocked_accept.is_finished() && !tokio_read.is_finished()
    );

    let dropped_at = Instant::now();
    drop(iface);
    let drop_took = dropped_at.elapsed();
    assert!(
        drop_took < Duration::from_secs(2),
        "dropping took {drop_took:?}"
    );

    let (read, read_at) = blocked_read.join().unwrap();
    let (kind, message) = read.expect_err("a pending blocking read fails");
    assert_eq!(kind, ErrorKind::NotConnected);
    assert!(
        message.contains("interface") && message.contains("closed"),
        "{message}"
    );
    let (accept, accept_at) = blocked_accept.join().unwrap();
    assert_eq!(accept, Err(ErrorKind::NotConnected));
    let (tread, tokio_at, mut tokio_stream) = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), tokio_read).await })
        .expect("the pending tokio read returns")
        .unwrap();
    assert_eq!(tread.map_err(|e| e.0), Err(ErrorKind::NotConnected));
    for (what, at) in [
        ("read", read_at),
        ("accept", accept_at),
        ("tokio read", tokio_at),
    ] {
        let waited = at.saturating_duration_since(dropped_at);
        assert!(
            waited < Duration::from_secs(1),
            "the pending {what} returned {waited:?} after the drop"
        );
    }

    // Later calls fail at once too, on both APIs.
    let started = Instant::now();
    assert_eq!(
        blocking.write(b"x").unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    assert_eq!(
        blocking.read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    let mut second = second;
    second.set_read_timeout(None).unwrap();
    assert_eq!(
        second.read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        assert_eq!(
            tokio_stream.write(b"x").await.unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        assert_eq!(
            tokio_stream.read(&mut [0u8; 4]).await.unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        assert_eq!(
            tokio_listener.accept().await.unwrap_err().kind(),
            ErrorKind::NotConnected
        );
    });
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(kernel);
}
