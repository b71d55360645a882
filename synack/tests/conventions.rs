//! `synack::net` and `synack::tokio` behave as `std::net` and `tokio::net` do (the table
//! in docs/conventions.md): two stacks joined by the in-memory device pair, sockets on
//! both ends, no root needed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use synack::device::Interface;
use synack::net::{TcpListener, TcpStream};

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.2";

/// Two interfaces joined by the in-memory pair: `A` on the first, `B` on the second.
fn pair() -> (Interface, Interface) {
    memory_pair::memory_pair(A.parse().unwrap(), B.parse().unwrap())
}

#[path = "support/memory_pair.rs"]
mod memory_pair;

/// A connected (client on `a`, server on `b`) pair of blocking streams.
fn connected(a: &Interface, b: &Interface) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(b, (B, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(a, (B, port)).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

#[test]
fn bind_and_connect_take_anything_to_socket_addrs() {
    let (a, b) = pair();
    // A string, a (host, port) pair and a SocketAddr, as std takes them.
    let listener = TcpListener::bind(&b, format!("{B}:7000")).unwrap();
    assert_eq!(
        listener.local_addr().unwrap(),
        format!("{B}:7000").parse().unwrap()
    );
    let s1 = TcpStream::connect(&a, format!("{B}:7000")).unwrap();
    let s2 = TcpStream::connect(&a, (B, 7000)).unwrap();
    let to: SocketAddr = format!("{B}:7000").parse().unwrap();
    let s3 = TcpStream::connect(&a, to).unwrap();
    for s in [&s1, &s2, &s3] {
        assert_eq!(s.peer_addr().unwrap(), to);
    }
    // A list: the first address fails (nobody listens there: refused), the next works.
    let addrs: Vec<SocketAddr> = vec![
        format!("{B}:7001").parse().unwrap(),
        format!("{B}:7000").parse().unwrap(),
    ];
    let s4 = TcpStream::connect(&a, &addrs[..]).unwrap();
    assert_eq!(s4.peer_addr().unwrap(), to);
    // Only failures: the last one's error.
    let err = TcpStream::connect(&a, format!("{B}:7001")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // A second listener on the same address: AddrInUse, as std.
    let err = TcpListener::bind(&b, format!("{B}:7000")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[test]
fn incoming_yields_each_connection() {
    let (a, b) = pair();
    let listener = TcpListener::bind(&b, (B, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&a, (B, port)).unwrap())
        .collect();
    let accepted: Vec<TcpStream> = listener.incoming().take(3).map(|s| s.unwrap()).collect();
    let mut peers: Vec<_> = accepted.iter().map(|s| s.peer_addr().unwrap()).collect();
    let mut locals: Vec<_> = clients.iter().map(|s| s.local_addr().unwrap()).collect();
    peers.sort();
    locals.sort();
    assert_eq!(peers, locals);
}

#[test]
fn nonblocking_accept_and_read_give_would_block() {
    let (a, b) = pair();
    let listener = TcpListener::bind(&b, (B, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(&a, (B, port)).unwrap();
    client.set_nonblocking(true).unwrap();
    assert_eq!(
        (&client).read(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        client.peek(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // Back to blocking: the accept waits for (and gets) the connection.
    listener.set_nonblocking(false).unwrap();
    let (server, _) = listener.accept().unwrap();
    (&server).write_all(b"now").unwrap();
    client.set_nonblocking(false).unwrap();
    let mut buf = [0u8; 3];
    (&client).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"now");
}

#[test]
fn connect_timeout_to_a_silent_peer_times_out() {
    let (a, _b) = pair();
    // 198.18.0.9 is nobody's: the SYN goes unanswered.
    let to: SocketAddr = "198.18.0.9:80".parse().unwrap();
    let err = TcpStream::connect_timeout(&a, &to, Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let err = TcpStream::connect_timeout(&a, &to, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "std refuses a zero timeout"
    );
}

#[test]
fn reads_and_writes_through_shared_references() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let got = std::thread::scope(|s| {
        // One thread writes through `&client` while another reads through `&client`.
        s.spawn(|| {
            (&client).write_all(&data).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        });
        let echo = s.spawn(|| {
            let mut buf = vec![0u8; 8192];
            loop {
                let n = (&server).read(&mut buf).unwrap();
                if n == 0 {
                    server.shutdown(Shutdown::Write).unwrap();
                    return;
                }
                (&server).write_all(&buf[..n]).unwrap();
            }
        });
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).unwrap();
        echo.join().unwrap();
        got
    });
    assert_eq!(got, data);
}

#[test]
fn options_are_shared_by_clones() {
    let (a, b) = pair();
    let (client, _server) = connected(&a, &b);
    let clone = client.try_clone().unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(40)))
        .unwrap();
    client.set_nodelay(true).unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(Duration::from_millis(40))
    );
    assert!(clone.nodelay().unwrap());
    assert_eq!(clone.write_timeout().unwrap(), None);
    assert_eq!(
        client
            .set_write_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn an_expired_read_timeout_is_would_block() {
    let (a, b) = pair();
    let (client, _server) = connected(&a, &b);
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let err = (&client).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "std on Unix: EAGAIN");
}

#[test]
fn shutdown_write_is_seen_as_end_of_stream() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b);
    (&client).write_all(b"last words").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    (&server).read_to_string(&mut got).unwrap();
    assert_eq!(got, "last words");
    assert_eq!(
        (&client).write(b"more").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    // The other direction still flows.
    (&server).write_all(b"reply").unwrap();
    let mut buf = [0u8; 5];
    (&client).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"reply");
}

#[test]
fn shutdown_read_ends_a_blocked_read() {
    let (a, b) = pair();
    let (client, _server) = connected(&a, &b);
    let reader = client.try_clone().unwrap();
    std::thread::scope(|s| {
        let blocked = s.spawn(move || (&reader).read(&mut [0u8; 8]));
        // Whether the reader is already parked or not, its read must end with EOF.
        client.shutdown(Shutdown::Read).unwrap();
        assert_eq!(blocked.join().unwrap().unwrap(), 0);
    });
    assert_eq!(
        (&client).read(&mut [0u8; 8]).unwrap(),
        0,
        "and every later read"
    );
}

#[test]
fn peek_then_read_returns_the_same_bytes() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b);
    (&server).write_all(b"abcdef").unwrap();
    let mut peeked = [0u8; 6];
    let n = client.peek(&mut peeked).unwrap();
    assert!(n > 0);
    let mut read = [0u8; 6];
    (&client).read_exact(&mut read[..n]).unwrap();
    assert_eq!(peeked[..n], read[..n]);
}

#[test]
fn linger_zero_resets_the_peer() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b);
    client.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(client.linger().unwrap(), Some(Duration::ZERO));
    drop(client);
    let err = (&server).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn linger_with_a_timeout_waits_for_the_fin_to_be_acknowledged() {
    let (a, b) = pair();
    let (client, server) = connected(&a, &b);
    client.set_linger(Some(Duration::from_secs(5))).unwrap();
    (&client).write_all(&[1u8; 100_000]).unwrap();
    let local = client.local_addr().unwrap();
    let remote = client.peer_addr().unwrap();
    drop(client);
    // The drop returned: the data and our FIN are acknowledged (FIN_WAIT_2 or later).
    let state = a.with_stacks(|stack, _| stack.state_of(local, remote))[0];
    assert!(
        matches!(
            state,
            Some(synack::TcpState::FinWait2 | synack::TcpState::TimeWait) | None
        ),
        "{state:?}"
    );
    let mut got = Vec::new();
    (&server).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 100_000);
}

/// A connected (client on `a`, server on `b`) pair of tokio streams.
async fn tokio_connected(
    a: &Interface,
    b: &Interface,
) -> (synack::tokio::TcpStream, synack::tokio::TcpStream) {
    let listener = synack::tokio::TcpListener::bind(b, (B, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = synack::tokio::TcpStream::connect(a, (B, port))
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tokio_bind_connect_split_and_reunite() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = pair();
    runtime().block_on(async {
        let listener = synack::tokio::TcpListener::bind(&b, format!("{B}:0"))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            // Borrowed halves: copy what comes back out.
            let (mut r, mut w) = stream.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let client = synack::tokio::TcpStream::connect(&a, (B, port))
            .await
            .unwrap();
        let (mut r, mut w) = client.into_split();
        let writer = tokio::spawn(async move {
            w.write_all(&[9u8; 50_000]).await.unwrap();
            w
        });
        let mut got = vec![0u8; 50_000];
        r.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|&x| x == 9));
        let w = writer.await.unwrap();
        let mut stream = r.reunite(w).expect("halves of one stream");
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server.await.unwrap();
    });
}

#[test]
fn dropping_the_owned_write_half_sends_fin() {
    use tokio::io::AsyncReadExt;
    let (a, b) = pair();
    runtime().block_on(async {
        let (client, mut server) = tokio_connected(&a, &b).await;
        let (_r, w) = client.into_split();
        drop(w);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "end-of-stream from the dropped write half");
    });
}

#[test]
fn tokio_try_read_and_try_write_never_wait() {
    let (a, b) = pair();
    runtime().block_on(async {
        let (client, server) = tokio_connected(&a, &b).await;
        assert_eq!(
            client.try_read(&mut [0u8; 8]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        client.writable().await.unwrap();
        assert_eq!(client.try_write(b"ping").unwrap(), 4);
        server.readable().await.unwrap();
        let mut buf = [0u8; 8];
        let n = server.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], &b"ping"[..n]);
        // Fill the send buffer without waiting: try_write stops with WouldBlock.
        let chunk = [0u8; 65536];
        let mut total = 0;
        loop {
            match server.try_write(&chunk) {
                Ok(n) => total += n,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WouldBlock);
                    break;
                }
            }
            assert!(total < 1 << 30, "try_write never filled the buffer");
        }
        assert!(total > 0);
    });
}
