//! The packetdrill library driven the way packetdrill drives it, through the function
//! table `packetdrill_interface_init` fills in (no packetdrill needed): packets in with
//! netdev_send, packets out with netdev_receive, socket calls, and the virtual clock.

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::ptr;

use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use synack_packetdrill::{packetdrill_interface_init, PacketdrillInterface};

const LOCAL: [u8; 4] = [198, 18, 0, 1];
const REMOTE: [u8; 4] = [198, 18, 0, 2];

struct Lib(PacketdrillInterface);

// The table is only ever used behind the library's own lock.
unsafe impl Send for Lib {}
unsafe impl Sync for Lib {}

fn open(flags: &str) -> Lib {
    let flags = CString::new(flags).unwrap();
    let mut ifc = std::mem::MaybeUninit::<PacketdrillInterface>::uninit();
    // SAFETY: a valid flags string and a table to fill in.
    unsafe { packetdrill_interface_init(flags.as_ptr(), ifc.as_mut_ptr()) };
    // SAFETY: packetdrill_interface_init wrote the whole table.
    Lib(unsafe { ifc.assume_init() })
}

fn sockaddr(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = addr else { panic!() };
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = v4.port().to_be();
    s.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    s
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Lib {
    fn ud(&self) -> *mut libc::c_void {
        self.0.userdata
    }

    fn now(&self) -> i64 {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: our table's function with a valid timeval.
        unsafe { self.0.gettimeofday.unwrap()(self.ud(), &mut tv, ptr::null_mut()) };
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }

    fn sleep_ms(&self, ms: u32) {
        // SAFETY: our table's function.
        unsafe { self.0.usleep.unwrap()(self.ud(), ms * 1000) };
    }

    fn inject(&self, seq: u32, ack: Option<u32>, flags: TcpFlags, payload: &[u8]) {
        let repr = TcpRepr {
            src_port: 50_000,
            dst_port: 8080,
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack.unwrap_or(0)),
            flags: if ack.is_some() {
                flags | TcpFlags::ACK
            } else {
                flags
            },
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: flags.syn().then_some(1460),
                ..TcpOptions::default()
            },
            payload,
        };
        let p =
            wire::emit_tcp_packet(IpAddr::from(REMOTE), IpAddr::from(LOCAL), 64, &repr).unwrap();
        // SAFETY: our table's function with a valid buffer.
        let r = unsafe { self.0.netdev_send.unwrap()(self.ud(), p.as_ptr().cast(), p.len()) };
        assert_eq!(r, 0);
    }

    /// The next packet synack sends, parsed: (flags, seq, ack, payload length, time µs).
    fn sniff(&self) -> Option<(TcpFlags, u32, u32, usize, i64)> {
        let mut buf = vec![0u8; 70_000];
        let mut n = buf.len();
        let mut t = 0i64;
        // SAFETY: our table's function with a buffer of `n` bytes.
        let r = unsafe {
            self.0.netdev_receive.unwrap()(self.ud(), buf.as_mut_ptr().cast(), &mut n, &mut t)
        };
        if r != 0 {
            return None;
        }
        let (_, seg) = wire::parse_tcp_packet(&buf[..n]).unwrap();
        Some((
            seg.flags,
            seg.seq.get(),
            seg.ack.get(),
            seg.payload.len(),
            t,
        ))
    }

    fn listener(&self) -> i32 {
        // SAFETY: our table's functions with valid arguments.
        unsafe {
            let fd = self.0.socket.unwrap()(self.ud(), libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let a = sockaddr(SocketAddr::from((LOCAL, 8080)));
            let len = std::mem::size_of_val(&a) as libc::socklen_t;
            assert_eq!(
                self.0.bind.unwrap()(self.ud(), fd, (&a as *const libc::sockaddr_in).cast(), len),
                0
            );
            assert_eq!(self.0.listen.unwrap()(self.ud(), fd, 1), 0);
            fd
        }
    }

    fn accept(&self, fd: i32) -> i32 {
        // SAFETY: our table's function; no address wanted.
        unsafe { self.0.accept.unwrap()(self.ud(), fd, ptr::null_mut(), ptr::null_mut()) }
    }

    /// A passive open by a scripted peer (ISN 0); returns synack's ISN.
    fn handshake(&self) -> u32 {
        self.inject(0, None, TcpFlags::SYN, b"");
        let (flags, isn, ack, _, _) = self.sniff().unwrap();
        assert_eq!((flags, ack), (TcpFlags::SYN | TcpFlags::ACK, 1));
        self.inject(1, Some(isn + 1), TcpFlags::empty(), b"");
        isn
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        // SAFETY: our table's free, called once.
        unsafe { self.0.free.unwrap()(self.ud()) };
    }
}

#[test]
fn a_passive_open_exchanges_data_and_closes_through_the_table() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    let l = lib.listener();
    let isn = lib.handshake();
    let fd = lib.accept(l);
    assert!(fd >= 0);
    lib.inject(1, Some(isn + 1), TcpFlags::PSH, b"hello");
    let (flags, _, ack, _, _) = lib.sniff().unwrap();
    assert_eq!(
        (flags, ack),
        (TcpFlags::ACK, 6),
        "the first data is ACKed at once"
    );
    let mut buf = [0u8; 16];
    // SAFETY: our table's function with a buffer of 16 bytes.
    let n = unsafe { lib.0.read.unwrap()(lib.ud(), fd, buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(&buf[..n as usize], b"hello");
    // SAFETY: our table's function with 5 readable bytes.
    let n = unsafe { lib.0.write.unwrap()(lib.ud(), fd, b"world".as_ptr().cast(), 5) };
    assert_eq!(n, 5);
    let (flags, seq, _, len, _) = lib.sniff().unwrap();
    assert_eq!(
        (flags, seq, len),
        (TcpFlags::PSH | TcpFlags::ACK, isn + 1, 5)
    );
    // SAFETY: our table's function.
    assert_eq!(unsafe { lib.0.close.unwrap()(lib.ud(), fd) }, 0);
    let (flags, seq, _, _, _) = lib.sniff().unwrap();
    assert_eq!((flags, seq), (TcpFlags::FIN | TcpFlags::ACK, isn + 6));
}

#[test]
fn the_clock_moves_only_when_packetdrill_sleeps_or_waits_for_a_packet() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    let t0 = lib.now();
    lib.sleep_ms(250);
    let t1 = lib.now();
    assert!((250_000..250_010).contains(&(t1 - t0)), "{}", t1 - t0);
    // Waiting for a packet runs the clock to the stack's next timer: the SYN-ACK is
    // sent again after the initial RTO of 1 s.
    let _l = lib.listener();
    lib.inject(0, None, TcpFlags::SYN, b"");
    let (_, _, _, _, first) = lib.sniff().unwrap();
    let (flags, _, _, _, again) = lib.sniff().unwrap();
    assert_eq!(flags, TcpFlags::SYN | TcpFlags::ACK);
    assert!((again - first - 1_000_000).abs() < 10, "{}", again - first);
}

#[test]
fn a_blocking_accept_returns_when_the_handshake_completes() {
    let lib = std::sync::Arc::new(open("local_ip=198.18.0.1,proc_sysctls=0"));
    let l = lib.listener();
    let waiter = {
        let lib = lib.clone();
        std::thread::spawn(move || lib.accept(l))
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!waiter.is_finished(), "accept waits for a connection");
    lib.handshake();
    assert!(waiter.join().unwrap() >= 0);
}

#[test]
fn errors_come_back_as_minus_one_and_errno() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    // SAFETY: our table's functions; fd 999 does not exist.
    unsafe {
        let mut buf = [0u8; 4];
        assert_eq!(
            lib.0.read.unwrap()(lib.ud(), 999, buf.as_mut_ptr().cast(), 4),
            -1
        );
        assert_eq!(errno(), libc::EBADF);
        let fd = lib.0.socket.unwrap()(lib.ud(), libc::AF_INET, libc::SOCK_STREAM, 0);
        let flags = lib.0.fcntl.unwrap()(lib.ud(), fd, libc::F_GETFL, 0);
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        lib.0.fcntl.unwrap()(
            lib.ud(),
            fd,
            libc::F_SETFL,
            libc::O_NONBLOCK as libc::c_long,
        );
        let a = sockaddr(SocketAddr::from((REMOTE, 8080)));
        let len = std::mem::size_of_val(&a) as libc::socklen_t;
        let r = lib.0.connect.unwrap()(lib.ud(), fd, (&a as *const libc::sockaddr_in).cast(), len);
        assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
        let mut v: libc::c_int = -1;
        let mut vlen = 4 as libc::socklen_t;
        let r = lib.0.getsockopt.unwrap()(
            lib.ud(),
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut vlen,
        );
        assert_eq!((r, v), (0, 0), "no error while the handshake runs");
    }
    let (flags, _, _, _, _) = lib.sniff().unwrap();
    assert_eq!(flags, TcpFlags::SYN, "the nonblocking connect sent its SYN");
}

#[test]
fn bad_flags_are_refused_with_their_reason() {
    let e = synack_packetdrill::Instance::new("local_ip=nonsense")
        .err()
        .unwrap();
    assert!(e.contains("local_ip"), "{e}");
    let e = synack_packetdrill::Instance::new("tcp_frto=2")
        .err()
        .unwrap();
    assert!(e.contains("tcp_frto"), "{e}");
}

// packetdrill runs a script's shell lines for real: the namespace's sysctls are what a
// socket made now gets, and `--so_flags` still wins over them.
#[test]
fn a_new_socket_takes_the_namespaces_tcp_sysctls_and_so_flags_win() {
    let proc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syn_retries")
        .expect("a Linux /proc")
        .trim()
        .parse::<u32>()
        .unwrap();
    let i = synack_packetdrill::Instance::new("local_ip=198.18.0.1").unwrap();
    // packetdrill's defaults.sh value until a socket is made...
    assert_eq!(i.with(|st| st.socks.stack.config().tcp_syn_retries), 5);
    i.with(|st| i.read_sysctls(st));
    // ...then the namespace's.
    assert_eq!(i.with(|st| st.socks.stack.config().tcp_syn_retries), proc);

    let i = synack_packetdrill::Instance::new("local_ip=198.18.0.1,tcp_syn_retries=2").unwrap();
    i.with(|st| i.read_sysctls(st));
    assert_eq!(i.with(|st| st.socks.stack.config().tcp_syn_retries), 2);

    let i = synack_packetdrill::Instance::new("local_ip=198.18.0.1,proc_sysctls=0").unwrap();
    i.with(|st| i.read_sysctls(st));
    assert_eq!(i.with(|st| st.socks.stack.config().tcp_syn_retries), 5);
}

// packetdrill asks for the next packet again for ever when there is none: the library
// fails the run once its receive timeout has passed, and a packet resets the wait.
#[test]
fn asking_for_a_packet_that_will_never_come_times_out() {
    let i = synack_packetdrill::Instance::new("local_ip=198.18.0.1,receive_timeout_ms=0").unwrap();
    assert!(i.starved_too_long(true));
    assert!(
        !i.starved_too_long(false),
        "a packet came: the wait starts over"
    );
    let i = synack_packetdrill::Instance::new("local_ip=198.18.0.1").unwrap();
    assert!(
        i.sniff().is_none(),
        "no socket, no timer: nothing will ever be sent"
    );
    assert!(
        !i.starved_too_long(true),
        "the first empty answer only starts the clock"
    );
}

// getsockopt(TCP_INFO) answers with Linux's struct tcp_info layout.
#[test]
fn tcp_info_comes_in_linuxs_struct_layout() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    let l = lib.listener();
    lib.handshake();
    let fd = lib.accept(l);
    // SAFETY: all-zero is a valid tcp_info.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: our table's function with a tcp_info-sized buffer and its length.
    let r = unsafe {
        lib.0.getsockopt.unwrap()(
            lib.ud(),
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    assert_eq!(len as usize, std::mem::size_of::<libc::tcp_info>());
    assert_eq!(info.tcpi_state, 1, "TCP_ESTABLISHED");
    assert_eq!(info.tcpi_snd_mss, 1460);
    assert_eq!(
        info.tcpi_snd_cwnd, 10,
        "RFC 6928's initial window, in segments"
    );
    assert_eq!(info.tcpi_snd_ssthresh, 0x7fff_ffff, "TCP_INFINITE_SSTHRESH");
    // A listener has no connection to describe.
    // SAFETY: as above.
    let r = unsafe {
        lib.0.getsockopt.unwrap()(
            lib.ud(),
            l,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!((r, errno()), (-1, libc::ENOTCONN));
}

// packetdrill's `%{ }%` blocks call the program's own getsockopt(), not the table: after
// packetdrill_interface_init that call reaches the library for its sockets and the
// kernel for every other descriptor. This test binary is "the program" here.
#[test]
fn the_programs_own_getsockopt_answers_for_library_sockets_and_passes_others_on() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    assert!(
        synack_packetdrill::hook::install() >= 1,
        "this binary calls getsockopt through a GOT slot, which must now point at the hook"
    );
    let l = lib.listener();
    lib.handshake();
    let fd = lib.accept(l);
    let mut info = synack_packetdrill::ffi::TcpInfo::default();
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: libc's getsockopt with a TcpInfo-sized buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut synack_packetdrill::ffi::TcpInfo).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "errno {}", errno());
    assert_eq!(
        len, 280,
        "Linux 6.18's struct tcp_info, as packetdrill insists"
    );
    assert_eq!((info.tcpi_state, info.tcpi_snd_cwnd), (1, 10));
    // TCP_CC_INFO: CUBIC has nothing to say, as on Linux (length 0, success).
    let mut cc = [0u8; 20];
    let mut cc_len = cc.len() as libc::socklen_t;
    // SAFETY: as above, a 20-byte buffer.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CC_INFO,
            cc.as_mut_ptr().cast(),
            &mut cc_len,
        )
    };
    assert_eq!((r, cc_len), (0, 0));
    // A kernel socket still gets the kernel's answer.
    // SAFETY: socket(2) with constant arguments; checked.
    let udp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(udp >= 0);
    let mut ty: libc::c_int = 0;
    let mut ty_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            udp,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut ty_len,
        )
    };
    // SAFETY: closing the socket made above.
    unsafe { libc::close(udp) };
    assert_eq!((r, ty), (0, libc::SOCK_DGRAM));
}

#[test]
fn epoll_through_the_table_reports_an_edge_triggered_item_once_per_arrival() {
    let lib = open("local_ip=198.18.0.1");
    let l = lib.listener();
    let isn = lib.handshake();
    let fd = lib.accept(l);
    // SAFETY: our table's function.
    let ep = unsafe { lib.0.epoll_create.unwrap()(lib.ud(), 1) };
    assert!(ep >= 0, "errno {}", errno());
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 42,
    };
    let ev_ptr = (&mut ev as *mut libc::epoll_event).cast();
    // SAFETY: our table's function with a valid epoll_event.
    let r = unsafe { lib.0.epoll_ctl.unwrap()(lib.ud(), ep, libc::EPOLL_CTL_ADD, fd, ev_ptr) };
    assert_eq!(r, 0, "errno {}", errno());
    let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
    let mut wait = || {
        // SAFETY: our table's function with room for 4 events; no waiting (timeout 0).
        let n = unsafe { lib.0.epoll_wait.unwrap()(lib.ud(), ep, out.as_mut_ptr().cast(), 4, 0) };
        (n, out[0].events, out[0].u64)
    };
    assert_eq!(wait().0, 0, "nothing to read yet");
    lib.inject(1, Some(isn + 1), TcpFlags::PSH, b"hello");
    lib.sniff().unwrap();
    assert_eq!(wait(), (1, libc::EPOLLIN as u32, 42));
    assert_eq!(wait().0, 0, "edge-triggered: once per arrival");
}

/// A control message as (level, type, data).
type Cmsg = (i32, i32, Vec<u8>);

/// recvmsg through the table into a 64-byte data buffer and a 256-byte control buffer:
/// (result, msg_flags, the control messages).
fn recvmsg(lib: &Lib, fd: i32, len: usize, flags: i32) -> (isize, i32, Vec<Cmsg>) {
    let mut data = [0u8; 64];
    let mut control = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: len.min(data.len()),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: our table's function with a valid msghdr.
    let r = unsafe { lib.0.recvmsg.unwrap()(lib.ud(), fd, &mut msg, flags) };
    let mut cmsgs = Vec::new();
    if r < 0 {
        return (r, msg.msg_flags, cmsgs);
    }
    // SAFETY: walking the control buffer the call filled in, as a program does.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let n = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
            let d = std::slice::from_raw_parts(libc::CMSG_DATA(c), n).to_vec();
            cmsgs.push(((*c).cmsg_level, (*c).cmsg_type, d));
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    (r, msg.msg_flags, cmsgs)
}

fn setsockopt_int(lib: &Lib, fd: i32, level: i32, name: i32, v: i32) -> i32 {
    // SAFETY: our table's function with a 4-byte value.
    unsafe { lib.0.setsockopt.unwrap()(lib.ud(), fd, level, name, (&v as *const i32).cast(), 4) }
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(d[at..at + 4].try_into().unwrap())
}

#[test]
fn a_zerocopy_completion_comes_back_as_an_ip_recverr_control_message() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    let l = lib.listener();
    assert_eq!(
        setsockopt_int(&lib, l, libc::SOL_SOCKET, 60, 1),
        0,
        "SO_ZEROCOPY"
    );
    let isn = lib.handshake();
    let fd = lib.accept(l);
    let data = [7u8; 100];
    // SAFETY: our table's function with 100 readable bytes.
    let n =
        unsafe { lib.0.send.unwrap()(lib.ud(), fd, data.as_ptr().cast(), 100, libc::MSG_ZEROCOPY) };
    assert_eq!(n, 100);
    assert_eq!(lib.sniff().unwrap().3, 100);
    let (r, _, _) = recvmsg(&lib, fd, 0, libc::MSG_ERRQUEUE);
    assert_eq!((r, errno()), (-1, libc::EAGAIN), "nothing acknowledged yet");
    lib.inject(1, Some(isn + 101), TcpFlags::empty(), b"");
    let (r, flags, cmsgs) = recvmsg(&lib, fd, 0, libc::MSG_ERRQUEUE);
    assert_eq!((r, flags), (0, libc::MSG_ERRQUEUE));
    assert_eq!(cmsgs.len(), 1);
    let (level, kind, d) = &cmsgs[0];
    assert_eq!((*level, *kind), (libc::SOL_IP, libc::IP_RECVERR));
    // sock_extended_err, then the (empty) offender address.
    assert_eq!(d.len(), 16 + 16);
    assert_eq!(
        (u32_at(d, 0), d[4], d[5], d[6]),
        (0, 5, 0, 1),
        "ZEROCOPY, COPIED"
    );
    assert_eq!((u32_at(d, 8), u32_at(d, 12)), (0, 0), "sends 0..=0");
}

#[test]
fn tcp_inq_and_timestamps_come_back_as_their_control_messages() {
    let lib = open("local_ip=198.18.0.1,proc_sysctls=0");
    let l = lib.listener();
    let isn = lib.handshake();
    let fd = lib.accept(l);
    assert_eq!(
        setsockopt_int(&lib, fd, libc::IPPROTO_TCP, libc::TCP_INQ, 1),
        0
    );
    lib.inject(1, Some(isn + 1), TcpFlags::PSH, b"0123456789");
    lib.sniff().unwrap();
    let (r, flags, cmsgs) = recvmsg(&lib, fd, 4, 0);
    assert_eq!((r, flags), (4, 0));
    assert_eq!(
        cmsgs,
        [(libc::SOL_TCP, libc::TCP_CM_INQ, 6i32.to_ne_bytes().to_vec())]
    );
    // SCHED | TX_SOFTWARE | SOFTWARE | OPT_ID: stamps at the write's last byte.
    let tsflags = (1 << 8) | (1 << 1) | (1 << 4) | (1 << 7);
    assert_eq!(setsockopt_int(&lib, fd, libc::SOL_SOCKET, 37, tsflags), 0);
    // SAFETY: our table's function with 5 readable bytes.
    let n = unsafe { lib.0.write.unwrap()(lib.ud(), fd, b"stamp".as_ptr().cast(), 5) };
    assert_eq!(n, 5);
    let (_, _, _, _, sent_at) = lib.sniff().unwrap();
    for tstype in [1, 0] {
        let (r, flags, cmsgs) = recvmsg(&lib, fd, 0, libc::MSG_ERRQUEUE);
        assert_eq!((r, flags), (0, libc::MSG_ERRQUEUE | libc::MSG_TRUNC));
        let [(l0, t0, ts), (l1, t1, ee)] = &cmsgs[..] else {
            panic!("{cmsgs:?}")
        };
        assert_eq!(
            (*l0, *t0, ts.len()),
            (libc::SOL_SOCKET, 37, 48),
            "scm_timestamping"
        );
        let sec = i64::from_ne_bytes(ts[..8].try_into().unwrap());
        let nsec = i64::from_ne_bytes(ts[8..16].try_into().unwrap());
        assert_eq!(
            sec * 1_000_000 + nsec / 1000,
            sent_at,
            "on packetdrill's clock"
        );
        assert_eq!((*l1, *t1), (libc::SOL_IP, libc::IP_RECVERR));
        assert_eq!(
            (u32_at(ee, 0), ee[4]),
            (libc::ENOMSG as u32, 4),
            "TIMESTAMPING"
        );
        assert_eq!(
            (u32_at(ee, 8), u32_at(ee, 12)),
            (tstype, 4),
            "SCHED then SND, byte 4"
        );
    }
}
