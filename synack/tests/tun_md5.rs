//! TCP-MD5 (RFC 2385) against the Linux kernel: a synack listener with a key over TUN,
//! kernel clients that set `TCP_MD5SIG` on their sockets, in a network namespace the test
//! creates. With the same key they connect and the bytes go both ways (every segment
//! signed by one and checked by the other); with another key, or none, the kernel never
//! gets a SYN-ACK and synack counts the drops. Needs root; skipped otherwise (failed
//! under CI=true).

#[path = "support/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

use netns::*;
use synack::tun::Interface;
use synack::Md5Key;

const CHILD: &str = "SYNACK_TUN_MD5_CHILD";
const KEY: &[u8] = b"shared by synack and the kernel";

#[test]
fn the_kernel_and_synack_sign_and_check_each_others_segments() {
    if !privileged("the_kernel_and_synack_sign_and_check_each_others_segments") {
        return;
    }
    Netns::new().run_child_test("in_namespace_md5_with_the_kernel", CHILD, None);
}

/// A kernel socket with `TCP_MD5SIG` for 198.18.0.2 (none when `key` is None), connecting
/// to `port` there: a stream once connected, None when `wait` passed without it.
fn kernel_client(key: Option<&[u8]>, port: u16, wait: Duration) -> Option<TcpStream> {
    // SAFETY: plain socket calls on a descriptor this function owns; the structs are
    // zero-initialised C structs of the sizes passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        if let Some(key) = key {
            // struct tcp_md5sig (linux/tcp.h): sockaddr_storage, flags, prefixlen,
            // keylen, ifindex, key[80].
            let mut sig = [0u8; 216];
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes([198, 18, 0, 2]),
                },
                sin_zero: [0; 8],
            };
            std::ptr::copy_nonoverlapping(
                &sin as *const _ as *const u8,
                sig.as_mut_ptr(),
                std::mem::size_of::<libc::sockaddr_in>(),
            );
            sig[130..132].copy_from_slice(&(key.len() as u16).to_ne_bytes());
            sig[136..136 + key.len()].copy_from_slice(key);
            let r = libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_MD5SIG,
                sig.as_ptr() as *const libc::c_void,
                sig.len() as libc::socklen_t,
            );
            assert_eq!(r, 0, "setsockopt(TCP_MD5SIG)");
        }
        let tv = libc::timeval {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([198, 18, 0, 2]),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &to as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let stream = TcpStream::from_raw_fd(fd);
        (r == 0).then_some(stream)
    }
}

#[test]
#[ignore = "run inside a network namespace by the_kernel_and_synack_sign_and_check_each_others_segments"]
fn in_namespace_md5_with_the_kernel() {
    if !in_child(CHILD) {
        return;
    }
    let iface = Interface::open(tun0_config()).expect("TUN interface");
    let listener = synack::net::TcpListener::bind(&iface, "198.18.0.2:179").unwrap();
    listener
        .set_md5_key(Md5Key::new("198.18.0.1".parse().unwrap(), None, KEY).unwrap())
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::from(Ipv4Addr::new(198, 18, 0, 1))
        );
        let mut got = vec![0u8; 100_000];
        s.read_exact(&mut got).unwrap();
        s.write_all(&got).unwrap();
        got
    });
    // Another key, then none: no connection (the kernel's SYNs are dropped).
    for key in [Some(&b"not the key"[..]), None] {
        assert!(
            kernel_client(key, 179, Duration::from_secs(2)).is_none(),
            "connected with {key:?}"
        );
    }
    let drops = iface.with_stacks(|st, _| {
        let s = st.stats();
        (s.dropped("md5_failure"), s.dropped("md5_not_found"))
    });
    let (failure, not_found) = drops.iter().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    assert!(failure >= 1 && not_found >= 1, "{drops:?}");
    // The same key: connected, and 100 kB each way.
    let mut c = kernel_client(Some(KEY), 179, Duration::from_secs(5)).expect("connected");
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&sent).unwrap();
    let mut back = vec![0u8; sent.len()];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.read_exact(&mut back).unwrap();
    assert!(back == sent, "the echo differs");
    assert!(server.join().unwrap() == sent);
}
