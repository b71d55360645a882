//! The C boundary packetdrill calls: `packetdrill_interface_init` fills in packetdrill's
//! function table (`struct packetdrill_interface` of packetdrill.h; [`PacketdrillInterface`]
//! has the same layout) with functions that turn C arguments into Rust values, call
//! [`Instance`], and turn results back (-1 with `errno` set on failure, as libc does).
//! Every `unsafe` block of the crate is here.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libc::{
    c_char, c_int, c_long, c_uint, c_ulong, c_void, iovec, msghdr, nfds_t, pollfd, size_t,
    sockaddr, socklen_t, ssize_t, timeval, useconds_t,
};
use synack_drill::epoll::Op;
use synack_drill::sockets::{CallResult, Cmsg, Errno, OptValue, Shutdown};

use crate::instance::EPOCH_USECS;
use crate::Instance;

type Ud = *mut c_void;

/// packetdrill's `struct packetdrill_interface`, field for field.
#[repr(C)]
pub struct PacketdrillInterface {
    pub userdata: Ud,
    pub free: Option<unsafe extern "C" fn(Ud)>,
    pub socket: Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub listen: Option<unsafe extern "C" fn(Ud, c_int, c_int) -> c_int>,
    pub accept: Option<unsafe extern "C" fn(Ud, c_int, *mut sockaddr, *mut socklen_t) -> c_int>,
    pub connect: Option<unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub read: Option<unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t) -> ssize_t>,
    pub readv: Option<unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t>,
    pub recv: Option<unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    pub recvfrom: Option<
        unsafe extern "C" fn(
            Ud,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    pub recvmsg: Option<unsafe extern "C" fn(Ud, c_int, *mut msghdr, c_int) -> ssize_t>,
    pub write: Option<unsafe extern "C" fn(Ud, c_int, *const c_void, size_t) -> ssize_t>,
    pub writev: Option<unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t>,
    pub send: Option<unsafe extern "C" fn(Ud, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    pub sendto: Option<
        unsafe extern "C" fn(
            Ud,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    pub sendmsg: Option<unsafe extern "C" fn(Ud, c_int, *const msghdr, c_int) -> ssize_t>,
    /// Variadic in C (`int cmd, ...`): declared with its one extra argument, which the
    /// x86-64 and AArch64 Linux calling conventions pass exactly as a named one.
    pub fcntl: Option<unsafe extern "C" fn(Ud, c_int, c_int, c_long) -> c_int>,
    /// Variadic in C (`unsigned long request, ...`): as `fcntl`.
    pub ioctl: Option<unsafe extern "C" fn(Ud, c_int, c_ulong, *mut c_void) -> c_int>,
    pub close: Option<unsafe extern "C" fn(Ud, c_int) -> c_int>,
    pub shutdown: Option<unsafe extern "C" fn(Ud, c_int, c_int) -> c_int>,
    pub getsockopt:
        Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int>,
    pub setsockopt:
        Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int>,
    pub poll: Option<unsafe extern "C" fn(Ud, *mut pollfd, nfds_t, c_int) -> c_int>,
    pub netdev_send: Option<unsafe extern "C" fn(Ud, *const c_void, size_t) -> c_int>,
    pub netdev_receive:
        Option<unsafe extern "C" fn(Ud, *mut c_void, *mut size_t, *mut i64) -> c_int>,
    pub usleep: Option<unsafe extern "C" fn(Ud, useconds_t) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(Ud, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<unsafe extern "C" fn(Ud, c_int) -> c_int>,
    pub epoll_ctl: Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut c_void) -> c_int>,
    pub epoll_wait: Option<unsafe extern "C" fn(Ud, c_int, *mut c_void, c_int, c_int) -> c_int>,
    pub pipe: Option<unsafe extern "C" fn(Ud, *mut c_int) -> c_int>,
    pub splice: Option<
        unsafe extern "C" fn(Ud, c_int, *mut c_void, c_int, *mut c_void, size_t, c_uint) -> c_int,
    >,
}

/// Called by packetdrill once, after loading the library: make a stack (configured by
/// `--so_flags`, see [`Instance::new`]) and fill in the table.
///
/// # Safety
/// `flags` is null or a NUL-terminated string; `ifc` points to a writable table.
#[no_mangle]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut PacketdrillInterface,
) {
    let flags = if flags.is_null() {
        String::new()
    } else {
        // SAFETY: packetdrill passes its `--so_flags` string, NUL-terminated.
        unsafe { CStr::from_ptr(flags) }
            .to_string_lossy()
            .into_owned()
    };
    let instance = match Instance::new(&flags) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("synack-packetdrill: --so_flags: {e}");
            std::process::exit(1);
        }
    };
    let instance = Box::into_raw(Box::new(instance));
    // `%{ }%` blocks reach the library through the program's own getsockopt (see hook).
    crate::hook::register(instance);
    crate::hook::install();
    let table = PacketdrillInterface {
        userdata: instance.cast(),
        free: Some(free),
        socket: Some(socket),
        bind: Some(bind),
        listen: Some(listen),
        accept: Some(accept),
        connect: Some(connect),
        read: Some(read),
        readv: Some(readv),
        recv: Some(recv),
        recvfrom: Some(recvfrom),
        recvmsg: Some(recvmsg),
        write: Some(write),
        writev: Some(writev),
        send: Some(send),
        sendto: Some(sendto),
        sendmsg: Some(sendmsg),
        fcntl: Some(fcntl),
        ioctl: Some(ioctl),
        close: Some(close),
        shutdown: Some(shutdown),
        getsockopt: Some(getsockopt),
        setsockopt: Some(setsockopt),
        poll: Some(poll),
        netdev_send: Some(netdev_send),
        netdev_receive: Some(netdev_receive),
        usleep: Some(usleep),
        gettimeofday: Some(gettimeofday),
        epoll_create: Some(epoll_create),
        epoll_ctl: Some(epoll_ctl),
        epoll_wait: Some(epoll_wait),
        pipe: Some(pipe),
        splice: Some(splice),
    };
    // SAFETY: packetdrill hands us its table to fill in; it is valid for writes.
    unsafe { ifc.write(table) };
}

/// The instance behind packetdrill's `userdata`.
///
/// # Safety
/// `ud` is the pointer `packetdrill_interface_init` made, not yet freed.
unsafe fn inst<'a>(ud: Ud) -> &'a Instance {
    // SAFETY: made by Box::into_raw in packetdrill_interface_init and freed only by
    // `free`, after which packetdrill makes no call.
    unsafe { &*ud.cast::<Instance>() }
}

fn set_errno(e: Errno) {
    // SAFETY: __errno_location returns this thread's errno, always valid to write.
    unsafe { *libc::__errno_location() = e.number() };
}

/// A call's result as C returns it: the value, or -1 with errno set.
fn ret(r: CallResult) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// A C buffer as a slice (empty for null).
///
/// # Safety
/// `buf` is null or valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(buf: *const c_void, len: usize) -> &'a [u8] {
    if buf.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller promises `len` readable bytes at `buf`.
    unsafe { std::slice::from_raw_parts(buf.cast(), len) }
}

/// Copy `data` into a C buffer of at least `data.len()` bytes.
///
/// # Safety
/// `buf` is valid for writes of `data.len()` bytes.
unsafe fn copy_out(data: &[u8], buf: *mut c_void) {
    if !data.is_empty() {
        // SAFETY: the caller promises room for `data.len()` bytes at `buf`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.cast(), data.len()) };
    }
}

/// A buffer in packetdrill's memory, as the kernel sees one: (address, length) pieces in
/// order (one for read(2)/write(2), one per iovec).
type UserBuf = Vec<(usize, usize)>;

/// At most this many pieces go to one process_vm_readv/writev (IOV_MAX).
const IOV_BATCH: usize = 1024;

/// The pieces of `buf` split where pages end, at most `limit` bytes, empty ones left out:
/// process_vm_readv/writev move a piece whole or not at all, so a transfer that meets
/// an unmapped page stops at that page, as the kernel's own copy does.
fn page_pieces(buf: &[(usize, usize)], mut limit: usize) -> Vec<iovec> {
    let mut out = Vec::new();
    for &(mut at, len) in buf {
        let mut len = len.min(limit);
        limit -= len;
        while len > 0 {
            let piece = len.min(PAGE - at % PAGE);
            out.push(iovec {
                iov_base: at as *mut c_void,
                iov_len: piece,
            });
            at = at.wrapping_add(piece);
            len -= piece;
        }
    }
    out
}

/// Move `len` bytes between our `local` buffer and the user buffer `buf` (`to_user`:
/// into it), as the kernel's copy_from_user/copy_to_user do: through process_vm_readv
/// and process_vm_writev on our own process, which check every address and report
/// EFAULT for memory that is not mapped instead of faulting. Returns the bytes moved, in
/// order (fewer than `len`: a fault stopped the copy).
///
/// # Safety
/// `local` is valid for `len` bytes (for writes unless `to_user`).
unsafe fn user_copy(local: *mut u8, len: usize, buf: &[(usize, usize)], to_user: bool) -> usize {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut done = 0;
    for batch in page_pieces(buf, len).chunks(IOV_BATCH) {
        let want: usize = batch.iter().map(|v| v.iov_len).sum();
        let here = iovec {
            // SAFETY: done + want <= len: inside `local`.
            iov_base: unsafe { local.add(done) }.cast(),
            iov_len: want,
        };
        let (local_iov, count) = (&raw const here, batch.len() as c_ulong);
        // SAFETY: `here` describes our own buffer (caller's promise); the kernel checks
        // the user addresses of `batch` itself and fails with EFAULT where unmapped.
        let moved = unsafe {
            if to_user {
                libc::process_vm_writev(pid, local_iov, 1, batch.as_ptr(), count, 0)
            } else {
                libc::process_vm_readv(pid, local_iov, 1, batch.as_ptr(), count, 0)
            }
        };
        if moved < 0 {
            // SAFETY: __errno_location returns this thread's errno.
            let errno = unsafe { *libc::__errno_location() };
            if errno == libc::EFAULT {
                break;
            }
            // The calls are refused here (ENOSYS, EPERM under a sandbox): copy directly,
            // trusting any pointer but null as before.
            // SAFETY: the syscall's contract, as for packetdrill's own calls: the
            // buffers it passes are valid for their lengths.
            return done + unsafe { direct_copy(local.add(done), batch, to_user) };
        }
        done += moved as usize;
        if (moved as usize) < want {
            break;
        }
    }
    done
}

/// [`user_copy`] without the kernel's checks (where process_vm_readv is refused): a null
/// address faults.
///
/// # Safety
/// `local` has room for the pieces' bytes; each piece not null is valid memory.
unsafe fn direct_copy(local: *mut u8, pieces: &[iovec], to_user: bool) -> usize {
    let mut done = 0;
    for v in pieces {
        if v.iov_base.is_null() {
            break;
        }
        // SAFETY: as the caller promises.
        unsafe {
            let (user, here) = (v.iov_base.cast::<u8>(), local.add(done));
            if to_user {
                std::ptr::copy_nonoverlapping(here, user, v.iov_len);
            } else {
                std::ptr::copy_nonoverlapping(user, here, v.iov_len);
            }
        }
        done += v.iov_len;
    }
    done
}

/// The bytes of the user buffer `buf` that can be read, in order (short: a fault).
fn user_read(buf: &[(usize, usize)]) -> Vec<u8> {
    let len = buf.iter().map(|p| p.1).fold(0usize, usize::saturating_add);
    let mut out = Vec::new();
    // A length beyond what memory can hold is as unmapped: read what there is.
    if out.try_reserve_exact(len.min(1 << 30)).is_err() {
        return out;
    }
    out.resize(len.min(1 << 30), 0);
    // SAFETY: `out` has `out.len()` writable bytes.
    let n = unsafe { user_copy(out.as_mut_ptr(), out.len(), buf, false) };
    out.truncate(n);
    out
}

/// Copy `data` into the user buffer `buf`; the bytes copied (short: a fault).
fn user_write(data: &[u8], buf: &[(usize, usize)]) -> usize {
    // SAFETY: `data` is readable; process_vm_writev only reads our side.
    unsafe { user_copy(data.as_ptr().cast_mut(), data.len(), buf, true) }
}

/// How much of the user buffer `buf` can be written, from its start: its bytes are read
/// and written back as they were (packetdrill's buffer is its own while the call lasts).
fn user_writable(buf: &[(usize, usize)]) -> usize {
    user_write(&user_read(buf), buf)
}

/// The pieces of the iovec array at `iov` (`n` of them): an array that cannot be read is
/// EFAULT, as the kernel's import_iovec finds it.
fn user_iovecs(iov: *const iovec, n: c_int) -> Result<UserBuf, Errno> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    let size = std::mem::size_of::<iovec>();
    let raw = user_read(&[(iov as usize, size * n as usize)]);
    if raw.len() < size * n as usize {
        return Err(Errno("EFAULT"));
    }
    let word = std::mem::size_of::<usize>();
    let at = |c: &[u8], i: usize| {
        let mut w = [0u8; std::mem::size_of::<usize>()];
        w.copy_from_slice(&c[i * word..(i + 1) * word]);
        usize::from_ne_bytes(w)
    };
    Ok(raw
        .chunks_exact(size)
        .map(|c| (at(c, 0), at(c, 1)))
        .collect())
}

/// What a send takes from the user buffer: the bytes that could be read (`short`: a
/// fault stopped the copy).
struct UserData {
    bytes: Vec<u8>,
    short: bool,
}

impl UserData {
    fn read(buf: &[(usize, usize)]) -> UserData {
        let bytes = user_read(buf);
        let want = buf.iter().map(|p| p.1).fold(0usize, usize::saturating_add);
        UserData {
            short: bytes.len() < want,
            bytes,
        }
    }

    /// A send's result as Linux's tcp_sendmsg_locked gives it: when a fault stops the
    /// copy the call returns what it copied before, or EFAULT when that is nothing (the
    /// socket's own errors come first).
    fn result(&self, r: CallResult) -> CallResult {
        match r {
            Ok(0) if self.short => Err(Errno("EFAULT")),
            r => r,
        }
    }
}

/// A C socket address as a Rust one.
///
/// # Safety
/// `addr` is null or valid for reads of `len` bytes.
unsafe fn sockaddr_in(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: at least sa_family is readable when len covers it (checked per family).
    let family = c_int::from(unsafe { (*addr).sa_family });
    match family {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family and length say this is a sockaddr_in.
            let a = unsafe { &*addr.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family and length say this is a sockaddr_in6.
            let a = unsafe { &*addr.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Write a Rust socket address into a C one (as much as `*len` allows; `*len` becomes
/// the full size, as accept() and recvfrom() do).
///
/// # Safety
/// `addr` and `len` are null, or `len` is readable and writable and `addr` has `*len`
/// writable bytes.
unsafe fn sockaddr_out(a: SocketAddr, addr: *mut sockaddr, len: *mut socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let bytes: Vec<u8> = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
            let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = v4.port().to_be();
            s.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            // SAFETY: viewing a plain struct as its bytes.
            unsafe { pod_bytes(&s) }.to_vec()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
            let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = v6.port().to_be();
            s.sin6_addr.s6_addr = v6.ip().octets();
            // SAFETY: viewing a plain struct as its bytes.
            unsafe { pod_bytes(&s) }.to_vec()
        }
    };
    // SAFETY: `len` is valid (caller's promise); we write at most *len bytes to `addr`.
    unsafe {
        let room = (*len as usize).min(bytes.len());
        copy_out(&bytes[..room], addr.cast());
        *len = bytes.len() as socklen_t;
    }
}

/// The bytes of a plain C struct.
///
/// # Safety
/// `T` has no padding that matters to the reader (the socket address structs).
unsafe fn pod_bytes<T>(t: &T) -> &[u8] {
    // SAFETY: `t` is a valid reference; its size is exact.
    unsafe { std::slice::from_raw_parts((t as *const T).cast(), std::mem::size_of::<T>()) }
}

/// The name of a socket option the socket layer knows.
fn option_name(level: c_int, name: c_int) -> Option<&'static str> {
    Some(match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => "SO_REUSEADDR",
        (libc::SOL_SOCKET, libc::SO_ERROR) => "SO_ERROR",
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => "SO_SNDBUF",
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => "SO_RCVBUF",
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SO_KEEPALIVE",
        (libc::SOL_SOCKET, libc::SO_LINGER) => "SO_LINGER",
        (libc::SOL_SOCKET, libc::SO_OOBINLINE) => "SO_OOBINLINE",
        (libc::IPPROTO_IP, libc::IP_FREEBIND) => "IP_FREEBIND",
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => "TCP_NODELAY",
        (libc::IPPROTO_TCP, libc::TCP_CORK) => "TCP_CORK",
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => "TCP_MAXSEG",
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => "TCP_USER_TIMEOUT",
        (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => "TCP_SYNCNT",
        (libc::IPPROTO_TCP, libc::TCP_INQ) => "TCP_INQ",
        (libc::SOL_SOCKET, SO_ZEROCOPY) => "SO_ZEROCOPY",
        (libc::SOL_SOCKET, SO_TIMESTAMPING_OLD) => "SO_TIMESTAMPING",
        (libc::SOL_SOCKET, SO_TIMESTAMPING_NEW) => "SO_TIMESTAMPING_NEW",
        (libc::SOL_SOCKET, SO_MARK) => "SO_MARK",
        (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => "TCP_NOTSENT_LOWAT",
        (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => "TCP_FASTOPEN",
        (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT) => "TCP_FASTOPEN_CONNECT",
        (libc::IPPROTO_TCP, TCP_FASTOPEN_KEY) => "TCP_FASTOPEN_KEY",
        (libc::IPPROTO_TCP, TCP_MD5SIG) => "TCP_MD5SIG",
        (libc::IPPROTO_TCP, TCP_MD5SIG_EXT) => "TCP_MD5SIG_EXT",
        (libc::IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE) => "TCP_FASTOPEN_NO_COOKIE",
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => "TCP_KEEPIDLE",
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => "TCP_KEEPINTVL",
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => "TCP_KEEPCNT",
        (libc::IPPROTO_IP, libc::IP_TOS) => "IP_TOS",
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER) => "IP_MTU_DISCOVER",
        _ => return None,
    })
}

unsafe extern "C" fn free(ud: Ud) {
    crate::hook::unregister(ud.cast());
    // SAFETY: `ud` came from Box::into_raw; packetdrill frees it once, last.
    drop(unsafe { Box::from_raw(ud.cast::<Instance>()) });
}

unsafe extern "C" fn socket(ud: Ud, domain: c_int, ty: c_int, _protocol: c_int) -> c_int {
    if !matches!(domain, libc::AF_INET | libc::AF_INET6) || ty & 0xf != libc::SOCK_STREAM {
        set_errno(Errno("EAFNOSUPPORT"));
        return -1;
    }
    // SAFETY: `ud` is our instance (see `inst`).
    let i = unsafe { inst(ud) };
    i.with(|st| {
        i.read_sysctls(st);
        let fd = st.socks.socket();
        own_number(st, fd)
    })
}

/// Give a new socket the number of a real descriptor (of /dev/null) held for it:
/// packetdrill closes the descriptors of its sockets with the real close() when a
/// script ends, so they must exist in the process.
fn own_number(st: &mut crate::instance::State, fd: i32) -> c_int {
    // SAFETY: open(2) with a constant NUL-terminated path; the result is checked.
    let real = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if real >= 0 && st.socks.renumber(fd, real) {
        real
    } else {
        if real >= 0 {
            // SAFETY: closing the descriptor just opened, which nothing else uses.
            unsafe { libc::close(real) };
        }
        fd
    }
}

unsafe extern "C" fn bind(ud: Ud, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: packetdrill passes a socket address of `len` bytes.
    let Some(a) = (unsafe { sockaddr_in(addr, len) }) else {
        set_errno(Errno::EINVAL);
        return -1;
    };
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| {
        if !a.ip().is_unspecified() && !st.socks.stack.addresses().contains(&a.ip()) {
            st.socks.stack.add_address(a.ip());
            if st.socks.local.is_unspecified() {
                st.socks.local = a.ip();
            }
        }
        st.socks.bind(fd, a)
    })) as c_int
}

unsafe extern "C" fn listen(ud: Ud, fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| st.socks.listen(fd, backlog.max(1) as usize, 0))) as c_int
}

unsafe extern "C" fn accept(ud: Ud, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let mut peer = None;
    let r = i.call(fd, |st| {
        let now = st.now;
        st.socks.accept(now, fd).map(|(new, p)| {
            peer = Some(p);
            i64::from(own_number(st, new))
        })
    });
    if let Some(p) = peer {
        // SAFETY: packetdrill passes a buffer of *len bytes, or nulls.
        unsafe { sockaddr_out(p, addr, len) };
    }
    ret(r) as c_int
}

unsafe extern "C" fn connect(ud: Ud, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: packetdrill passes a socket address of `len` bytes.
    let Some(a) = (unsafe { sockaddr_in(addr, len) }) else {
        set_errno(Errno::EINVAL);
        return -1;
    };
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.connect(fd, a)) as c_int
}

/// Read up to `len` bytes (blocking as the socket says) and hand them to `put`.
/// read(2) and its kin into the user buffer `buf`: at most what can be written of it
/// (Linux's tcp_recvmsg_locked stops at a fault, and with nothing copied the call is
/// EFAULT, its data left in the queue).
fn read_into(i: &Instance, fd: c_int, buf: &[(usize, usize)]) -> ssize_t {
    let want = buf.iter().map(|p| p.1).fold(0usize, usize::saturating_add);
    let room = user_writable(buf);
    let mut got = vec![0u8; room];
    let r = i.call(fd, |st| {
        let now = st.now;
        if room == 0 && want > 0 {
            let queued = st
                .socks
                .handle(fd)
                .and_then(|h| st.socks.stack.recv_queue(h).ok());
            if queued.is_some_and(|q| q > 0) {
                return Err(Errno("EFAULT"));
            }
            // Nothing to copy: the call ends as any other would (EAGAIN, end of stream,
            // an error), or waits.
            return match st.socks.read(now, fd, &mut [0u8; 1])? {
                0 => Ok(0),
                _ => Err(Errno("EFAULT")),
            };
        }
        st.socks.read(now, fd, &mut got)
    });
    if let Ok(n) = r {
        user_write(&got[..n as usize], buf);
    }
    ret(r) as ssize_t
}

/// write(2) of `data` (bytes the library holds) to one of `i`'s sockets (sendfile's
/// hook writes through it).
pub(crate) fn write_to(i: &Instance, fd: c_int, data: &[u8]) -> ssize_t {
    let data = UserData {
        bytes: data.to_vec(),
        short: false,
    };
    write_from(i, fd, &data)
}

fn write_from(i: &Instance, fd: c_int, data: &UserData) -> ssize_t {
    send_from(i, fd, data, 0)
}

/// send(2) and its kin with their flags word (MSG_MORE and MSG_EOR are modelled).
fn send_from(i: &Instance, fd: c_int, data: &UserData, flags: c_int) -> ssize_t {
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    let flags = synack_drill::msg::flags_from_bits(i64::from(flags));
    ret(data.result(i.call_flags(fd, dontwait, |st| {
        let now = st.now;
        st.socks.send(now, fd, &data.bytes, flags)
    }))) as ssize_t
}

unsafe extern "C" fn read(ud: Ud, fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    // SAFETY: `ud` is our instance.
    read_into(unsafe { inst(ud) }, fd, &[(buf as usize, n)])
}

unsafe extern "C" fn recv(ud: Ud, fd: c_int, buf: *mut c_void, n: size_t, f: c_int) -> ssize_t {
    // SAFETY: `ud` is our instance.
    recv_into(unsafe { inst(ud) }, fd, &[(buf as usize, n)], f)
}

/// recv(2) with its flags: MSG_OOB (the urgent byte, never waiting) and MSG_PEEK; other
/// flags as a read, MSG_DONTWAIT as on a nonblocking socket.
fn recv_into(i: &Instance, fd: c_int, buf: &[(usize, usize)], flags: c_int) -> ssize_t {
    if flags & (libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_DONTWAIT) == 0 {
        return read_into(i, fd, buf);
    }
    let mut got = vec![0u8; user_writable(buf)];
    // tcp_recv_urg: MSG_OOB never waits, on a blocking socket too.
    let dontwait = flags & (libc::MSG_DONTWAIT | libc::MSG_OOB) != 0;
    let r = i.call_flags(fd, dontwait, |st| {
        let now = st.now;
        st.socks.recv_flags(now, fd, &mut got, flags as u32)
    });
    if let Ok(n) = r {
        user_write(&got[..n as usize], buf);
    }
    ret(r) as ssize_t
}

unsafe extern "C" fn recvfrom(
    ud: Ud,
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    // SAFETY: as `recv`.
    let r = unsafe { recv(ud, fd, buf, n, flags) };
    if r >= 0 {
        let peer = i.with(|st| {
            st.socks
                .handle(fd)
                .and_then(|h| st.socks.stack.peer_addr(h).ok())
        });
        if let Some(p) = peer {
            // SAFETY: recvfrom(2)'s contract: a buffer of *len bytes, or nulls.
            unsafe { sockaddr_out(p, addr, len) };
        }
    }
    r
}

unsafe extern "C" fn readv(ud: Ud, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let buf = match user_iovecs(iov, n) {
        Ok(buf) => buf,
        Err(e) => return ret(Err(e)) as ssize_t,
    };
    // SAFETY: `ud` is our instance.
    read_into(unsafe { inst(ud) }, fd, &buf)
}

unsafe extern "C" fn recvmsg(ud: Ud, fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() {
        set_errno(Errno::EINVAL);
        return -1;
    }
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let v6 = i.with(|st| {
        st.socks
            .handle(fd)
            .and_then(|h| st.socks.stack.local_addr(h).ok())
            .is_some_and(|a| a.is_ipv6())
    });
    if flags & libc::MSG_ERRQUEUE != 0 {
        // ip_recv_error: one report as control messages, never waiting.
        return match i.with(|st| st.socks.recv_errqueue(fd)) {
            Ok(m) => {
                let trunc = if m.truncated { libc::MSG_TRUNC } else { 0 };
                // SAFETY: recvmsg(2)'s contract: a valid msghdr with its control buffer.
                unsafe { put_cmsgs(msg, &encode_cmsgs(&m.cmsgs, v6), libc::MSG_ERRQUEUE | trunc) };
                0
            }
            Err(e) => {
                set_errno(e);
                -1
            }
        };
    }
    let r = if flags & (libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_DONTWAIT) != 0 {
        // SAFETY: recvmsg(2)'s contract: a valid msghdr.
        let (iov, n) = unsafe { ((*msg).msg_iov, (*msg).msg_iovlen as c_int) };
        match user_iovecs(iov, n) {
            Ok(buf) => recv_into(i, fd, &buf, flags),
            Err(e) => ret(Err(e)) as ssize_t,
        }
    } else {
        // SAFETY: recvmsg(2)'s contract: a valid msghdr.
        unsafe { readv(ud, fd, (*msg).msg_iov, (*msg).msg_iovlen as c_int) }
    };
    if flags & libc::MSG_OOB != 0 {
        // tcp_recv_urg: the urgent byte comes with MSG_OOB in msg_flags.
        // SAFETY: as above.
        unsafe { put_cmsgs(msg, &[], if r > 0 { libc::MSG_OOB } else { 0 }) };
        return r;
    }
    // tcp_recvmsg: TCP_INQ's hint follows a successful read.
    let hint = if r >= 0 {
        i.with(|st| st.socks.inq_hint(fd))
    } else {
        None
    };
    let cmsgs: Vec<Cmsg> = hint.map(Cmsg::Inq).into_iter().collect();
    // SAFETY: as above.
    unsafe { put_cmsgs(msg, &encode_cmsgs(&cmsgs, v6), 0) };
    r
}

/// SIOCATMARK (asm-generic/sockios.h), which libc does not name.
const SIOCATMARK: c_ulong = 0x8905;

/// SOL_SOCKET options libc does not name on every target (asm-generic/socket.h).
const SO_MARK: c_int = 36;
/// TCP_MD5SIG and TCP_MD5SIG_EXT (include/uapi/linux/tcp.h).
const TCP_MD5SIG: c_int = 14;
const TCP_MD5SIG_EXT: c_int = 32;

/// `struct tcp_md5sig` (include/uapi/linux/tcp.h): a sockaddr_storage (128 bytes), then
/// flags (u8), prefix length (u8), key length (u16), ifindex (int) and an 80-byte key.
/// The peer, the prefix (with TCP_MD5SIG_EXT and TCP_MD5SIG_FLAG_PREFIX) and the key;
/// None when the struct is short or its address is neither AF_INET nor AF_INET6 (Linux's
/// tcp_v4_parse_md5_keys: EINVAL).
fn parse_md5sig(raw: &[u8], ext: bool) -> Option<(IpAddr, Option<u8>, &[u8])> {
    const STORAGE: usize = 128;
    if raw.len() < STORAGE + 8 + 80 {
        return None;
    }
    let family = i32::from(u16::from_ne_bytes([raw[0], raw[1]]));
    let peer: IpAddr = match family {
        libc::AF_INET => {
            let a: [u8; 4] = raw[4..8].try_into().ok()?;
            a.into()
        }
        libc::AF_INET6 => {
            let a: [u8; 16] = raw[8..24].try_into().ok()?;
            let v6 = Ipv6Addr::from(a);
            // A v4-mapped address keys an IPv4 peer (tcp_v6_parse_md5_keys).
            v6.to_ipv4_mapped().map_or(v6.into(), Into::into)
        }
        _ => return None,
    };
    let (flags, prefix) = (raw[STORAGE], raw[STORAGE + 1]);
    let keylen = usize::from(u16::from_ne_bytes([raw[STORAGE + 2], raw[STORAGE + 3]]));
    // TCP_MD5SIG_FLAG_PREFIX.
    let prefix = (ext && flags & 1 != 0).then_some(prefix);
    if keylen > 80 {
        return None;
    }
    Some((peer, prefix, &raw[STORAGE + 8..STORAGE + 8 + keylen]))
}

/// TCP_FASTOPEN_KEY and TCP_FASTOPEN_NO_COOKIE (include/uapi/linux/tcp.h).
const TCP_FASTOPEN_KEY: c_int = 33;
const TCP_FASTOPEN_NO_COOKIE: c_int = 34;
const SO_TIMESTAMPING_OLD: c_int = 37;
const SO_ZEROCOPY: c_int = 60;
const SO_TIMESTAMPING_NEW: c_int = 65;

/// Control messages laid out as a `msg_control` buffer (`cmsghdr` + data, each padded
/// to CMSG_SPACE), one entry per message.
fn encode_cmsgs(cmsgs: &[Cmsg], v6: bool) -> Vec<Vec<u8>> {
    cmsgs
        .iter()
        .map(|c| {
            let (level, kind, data) = match *c {
                Cmsg::Inq(n) => (libc::SOL_TCP, libc::TCP_CM_INQ, n.to_ne_bytes().to_vec()),
                Cmsg::Timestamping(at) => {
                    // struct scm_timestamping: ts[0] is the software stamp, on the
                    // clock packetdrill reads (gettimeofday).
                    let ns = EPOCH_USECS as u128 * 1000 + (at - synack::Instant::ZERO).as_nanos();
                    let mut d = Vec::with_capacity(48);
                    d.extend_from_slice(&((ns / 1_000_000_000) as i64).to_ne_bytes());
                    d.extend_from_slice(&((ns % 1_000_000_000) as i64).to_ne_bytes());
                    d.resize(48, 0);
                    (libc::SOL_SOCKET, SO_TIMESTAMPING_OLD, d)
                }
                Cmsg::RecvErr(e) => {
                    // ip(v6)_recv_error: sock_extended_err, then the offender's address
                    // (none for these reports: zeros).
                    let mut d = Vec::with_capacity(44);
                    d.extend_from_slice(&e.errno.to_ne_bytes());
                    d.extend_from_slice(&[e.origin, e.kind, e.code, 0]);
                    d.extend_from_slice(&e.info.to_ne_bytes());
                    d.extend_from_slice(&e.data.to_ne_bytes());
                    if v6 {
                        d.resize(16 + 28, 0);
                        (libc::SOL_IPV6, libc::IPV6_RECVERR, d)
                    } else {
                        d.resize(16 + 16, 0);
                        (libc::SOL_IP, libc::IP_RECVERR, d)
                    }
                }
            };
            let header = std::mem::size_of::<libc::cmsghdr>();
            let mut out = Vec::new();
            out.extend_from_slice(&(header + data.len()).to_ne_bytes());
            out.extend_from_slice(&level.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.resize(header, 0);
            out.extend_from_slice(&data);
            let align = std::mem::size_of::<usize>();
            out.resize(out.len().div_ceil(align) * align, 0);
            out
        })
        .collect()
}

/// Fill a msghdr's control buffer with whole messages (MSG_CTRUNC when one does not
/// fit, as put_cmsg), and set its length and `msg_flags`.
///
/// # Safety
/// `msg` is a valid msghdr whose `msg_control` is null or has `msg_controllen` bytes.
unsafe fn put_cmsgs(msg: *mut msghdr, cmsgs: &[Vec<u8>], flags: c_int) {
    // SAFETY: the caller promises a valid msghdr and control buffer.
    unsafe {
        let cap = if (*msg).msg_control.is_null() {
            0
        } else {
            (*msg).msg_controllen
        };
        let (mut used, mut flags) = (0, flags);
        for c in cmsgs {
            if used + c.len() > cap {
                flags |= libc::MSG_CTRUNC;
                break;
            }
            copy_out(c, (*msg).msg_control.cast::<u8>().add(used).cast());
            used += c.len();
        }
        (*msg).msg_controllen = used;
        (*msg).msg_flags = flags;
    }
}

unsafe extern "C" fn write(ud: Ud, fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    // SAFETY: `ud` is our instance.
    write_from(
        unsafe { inst(ud) },
        fd,
        &UserData::read(&[(buf as usize, n)]),
    )
}

unsafe extern "C" fn send(ud: Ud, fd: c_int, buf: *const c_void, n: size_t, f: c_int) -> ssize_t {
    // SAFETY: `ud` is our instance.
    sendmsg_from(unsafe { inst(ud) }, fd, &[(buf as usize, n)], f)
}

/// send(2), sendto(2) on a connected socket and sendmsg(2): the bytes of the user buffer
/// `buf`, with MSG_ZEROCOPY or not.
fn sendmsg_from(i: &Instance, fd: c_int, buf: &[(usize, usize)], flags: c_int) -> ssize_t {
    let data = UserData::read(buf);
    if flags & libc::MSG_ZEROCOPY != 0 {
        return zerocopy_from(i, fd, &data, &page_frags(buf.iter().copied()));
    }
    send_from(i, fd, &data, flags)
}

/// send(MSG_ZEROCOPY): a completion on the error queue once the bytes are acknowledged;
/// `frags`: the page fragments the bytes come from ([`page_frags`]).
fn zerocopy_from(i: &Instance, fd: c_int, data: &UserData, frags: &[usize]) -> ssize_t {
    ret(data.result(i.call(fd, |st| {
        let now = st.now;
        st.socks.send_zerocopy(now, fd, &data.bytes, frags)
    }))) as ssize_t
}

/// The memory page size (x86-64's PAGE_SIZE).
const PAGE: usize = 4096;

/// The page fragments Linux's MSG_ZEROCOPY makes of buffers at (address, length): each
/// piece of a buffer within one page, a piece that continues the previous one in the same
/// page joining it (skb_zerocopy_iter_stream, skb_append_pagefrags).
fn page_frags(bufs: impl IntoIterator<Item = (usize, usize)>) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let mut end = None;
    for (mut at, mut len) in bufs {
        while len > 0 {
            let piece = len.min(PAGE - at % PAGE);
            match out.last_mut() {
                Some(last) if end == Some(at) && at % PAGE != 0 => *last += piece,
                _ => out.push(piece),
            }
            at += piece;
            len -= piece;
            end = Some(at);
        }
    }
    out
}

unsafe extern "C" fn sendto(
    ud: Ud,
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    if flags & libc::MSG_FASTOPEN != 0 {
        // SAFETY: packetdrill passes a socket address of `len` bytes (or none).
        let to = unsafe { sockaddr_in(addr, len) };
        let data = UserData::read(&[(buf as usize, n)]);
        // SAFETY: `ud` is our instance.
        return fastopen_from(unsafe { inst(ud) }, fd, &data.bytes, to, flags);
    }
    // SAFETY: as `send` (a connected socket ignores the address).
    unsafe { send(ud, fd, buf, n, flags) }
}

/// sendto()/sendmsg() with MSG_FASTOPEN: TCP Fast Open's connect-and-send (the
/// address is required on a socket not yet connected; AF_UNSPEC is EOPNOTSUPP).
fn fastopen_from(
    i: &Instance,
    fd: c_int,
    data: &[u8],
    to: Option<SocketAddr>,
    flags: c_int,
) -> ssize_t {
    let mut first = true;
    ret(i.call_flags(fd, flags & libc::MSG_DONTWAIT != 0, |st| {
        let now = st.now;
        let first = std::mem::take(&mut first);
        if first {
            // Linux's tcp_sendmsg_fastopen reads net.ipv4.tcp_fastopen at the call (a
            // script may change it after socket()).
            i.read_sysctls(st);
        }
        match (first, to) {
            (true, Some(to)) => st.socks.sendto_fastopen_zerocopy(
                now,
                fd,
                to,
                data,
                flags & libc::MSG_ZEROCOPY != 0,
            ),
            (true, None) => Err(Errno::EOPNOTSUPP),
            // A blocking call waits for the handshake, then writes the rest.
            (false, _) => st.socks.write(now, fd, data),
        }
    })) as ssize_t
}

unsafe extern "C" fn writev(ud: Ud, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let buf = match user_iovecs(iov, n) {
        Ok(buf) => buf,
        Err(e) => return ret(Err(e)) as ssize_t,
    };
    // SAFETY: `ud` is our instance.
    write_from(unsafe { inst(ud) }, fd, &UserData::read(&buf))
}

unsafe extern "C" fn sendmsg(ud: Ud, fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() {
        set_errno(Errno::EINVAL);
        return -1;
    }
    let buf = match user_msghdr(msg).and_then(|m| user_iovecs(m.msg_iov, m.msg_iovlen as c_int)) {
        Ok(buf) => buf,
        Err(e) => return ret(Err(e)) as ssize_t,
    };
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    if flags & libc::MSG_FASTOPEN != 0 {
        // SAFETY: sendmsg(2)'s contract: a valid msghdr whose name is a socket address
        // of msg_namelen bytes (or none).
        let to = unsafe { sockaddr_in((*msg).msg_name as *const sockaddr, (*msg).msg_namelen) };
        return fastopen_from(i, fd, &UserData::read(&buf).bytes, to, flags);
    }
    sendmsg_from(i, fd, &buf, flags)
}

/// The msghdr at `msg`, read as the kernel's copy_msghdr_from_user does (EFAULT when it
/// cannot be read).
fn user_msghdr(msg: *const msghdr) -> Result<msghdr, Errno> {
    let size = std::mem::size_of::<msghdr>();
    let raw = user_read(&[(msg as usize, size)]);
    if raw.len() < size {
        return Err(Errno("EFAULT"));
    }
    // SAFETY: `raw` holds `size` bytes; msghdr is plain old data (pointers and integers),
    // valid for any bits.
    Ok(unsafe { std::ptr::read_unaligned(raw.as_ptr().cast::<msghdr>()) })
}

unsafe extern "C" fn fcntl(ud: Ud, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| match cmd {
        libc::F_GETFL => Ok(i64::from(libc::O_RDWR)
            | if st.socks.nonblocking(fd) {
                i64::from(libc::O_NONBLOCK)
            } else {
                0
            }),
        libc::F_SETFL => st
            .socks
            .set_nonblocking(fd, arg & c_long::from(libc::O_NONBLOCK) != 0),
        _ => Err(Errno::EINVAL),
    })) as c_int
}

unsafe extern "C" fn ioctl(ud: Ud, fd: c_int, request: c_ulong, argp: *mut c_void) -> c_int {
    let name = match request {
        libc::FIONREAD => "SIOCINQ",
        libc::TIOCOUTQ => "SIOCOUTQ",
        SIOCATMARK => "SIOCATMARK",
        _ => {
            set_errno(Errno::EINVAL);
            return -1;
        }
    };
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let r = i.with(|st| st.socks.ioctl(fd, name));
    if let (Ok(v), false) = (r, argp.is_null()) {
        // SAFETY: these requests take a pointer to an int to fill in.
        unsafe { *argp.cast::<c_int>() = v as c_int };
    }
    ret(r.map(|_| 0)) as c_int
}

unsafe extern "C" fn close(ud: Ud, fd: c_int) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let r = i.with(|st| {
        let now = st.now;
        st.socks.close(now, fd)
    });
    if r.is_ok() {
        // SAFETY: the descriptor held for this socket (own_number); closing it ends
        // the hold. If it was not ours the call fails harmlessly with EBADF.
        unsafe { libc::close(fd) };
    } else if r == Err(Errno::EBADF) {
        // Not one of ours: a file packetdrill opened with the real open() (open and
        // sendfile do not go through the library), which the kernel closes.
        // SAFETY: close(2) of a descriptor the program gave us to close.
        return unsafe { libc::close(fd) };
    }
    ret(r) as c_int
}

unsafe extern "C" fn shutdown(ud: Ud, fd: c_int, how: c_int) -> c_int {
    let how = match how {
        libc::SHUT_RD => Shutdown::Read,
        libc::SHUT_WR => Shutdown::Write,
        libc::SHUT_RDWR => Shutdown::Both,
        _ => {
            set_errno(Errno::EINVAL);
            return -1;
        }
    };
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| {
        let now = st.now;
        st.socks.shutdown(now, fd, how)
    })) as c_int
}

/// Linux's `struct tcp_info` (include/uapi/linux/tcp.h) as of Linux 6.18, 280 bytes: what
/// packetdrill's `struct _tcp_info` holds and the size its blocks insist on. libc's
/// `tcp_info` stops earlier.
#[repr(C)]
#[derive(Default)]
pub struct TcpInfo {
    pub tcpi_state: u8,
    pub tcpi_ca_state: u8,
    pub tcpi_retransmits: u8,
    pub tcpi_probes: u8,
    pub tcpi_backoff: u8,
    pub tcpi_options: u8,
    /// tcpi_snd_wscale in the low 4 bits, tcpi_rcv_wscale in the high 4.
    pub tcpi_snd_rcv_wscale: u8,
    /// tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2.
    pub tcpi_flags: u8,
    pub tcpi_rto: u32,
    pub tcpi_ato: u32,
    pub tcpi_snd_mss: u32,
    pub tcpi_rcv_mss: u32,
    pub tcpi_unacked: u32,
    pub tcpi_sacked: u32,
    pub tcpi_lost: u32,
    pub tcpi_retrans: u32,
    pub tcpi_fackets: u32,
    pub tcpi_last_data_sent: u32,
    pub tcpi_last_ack_sent: u32,
    pub tcpi_last_data_recv: u32,
    pub tcpi_last_ack_recv: u32,
    pub tcpi_pmtu: u32,
    pub tcpi_rcv_ssthresh: u32,
    pub tcpi_rtt: u32,
    pub tcpi_rttvar: u32,
    pub tcpi_snd_ssthresh: u32,
    pub tcpi_snd_cwnd: u32,
    pub tcpi_advmss: u32,
    pub tcpi_reordering: u32,
    pub tcpi_rcv_rtt: u32,
    pub tcpi_rcv_space: u32,
    pub tcpi_total_retrans: u32,
    pub tcpi_pacing_rate: u64,
    pub tcpi_max_pacing_rate: u64,
    pub tcpi_bytes_acked: u64,
    pub tcpi_bytes_received: u64,
    pub tcpi_segs_out: u32,
    pub tcpi_segs_in: u32,
    pub tcpi_notsent_bytes: u32,
    pub tcpi_min_rtt: u32,
    pub tcpi_data_segs_in: u32,
    pub tcpi_data_segs_out: u32,
    pub tcpi_delivery_rate: u64,
    pub tcpi_busy_time: u64,
    pub tcpi_rwnd_limited: u64,
    pub tcpi_sndbuf_limited: u64,
    pub tcpi_delivered: u32,
    pub tcpi_delivered_ce: u32,
    pub tcpi_bytes_sent: u64,
    pub tcpi_bytes_retrans: u64,
    pub tcpi_dsack_dups: u32,
    pub tcpi_reord_seen: u32,
    pub tcpi_rcv_ooopack: u32,
    pub tcpi_snd_wnd: u32,
    pub tcpi_rcv_wnd: u32,
    pub tcpi_rehash: u32,
    pub tcpi_total_rto: u16,
    pub tcpi_total_rto_recoveries: u16,
    pub tcpi_total_rto_time: u32,
    pub tcpi_received_ce: u32,
    pub tcpi_delivered_e1_bytes: u32,
    pub tcpi_delivered_e0_bytes: u32,
    pub tcpi_delivered_ce_bytes: u32,
    pub tcpi_received_e1_bytes: u32,
    pub tcpi_received_e0_bytes: u32,
    pub tcpi_received_ce_bytes: u32,
    /// tcpi_ecn_mode:2, tcpi_accecn_opt_seen:2, tcpi_accecn_fail_mode:4, tcpi_options2:24.
    pub tcpi_ecn_bits: u32,
}

/// Linux's `struct tcp_info` from a connection's snapshot: the fields synack gives
/// (`synack_drill::code::linux_tcp_info`), the others zero.
pub fn tcp_info(c: &synack::ConnectionInfo) -> TcpInfo {
    let mut t = TcpInfo::default();
    let (mut snd_wscale, mut rcv_wscale) = (0u8, 0u8);
    for (name, v) in synack_drill::code::linux_tcp_info(c) {
        let v32 = v.min(u64::from(u32::MAX)) as u32;
        match name {
            "tcpi_state" => t.tcpi_state = v as u8,
            "tcpi_ca_state" => t.tcpi_ca_state = v as u8,
            "tcpi_options" => t.tcpi_options = v as u8,
            "tcpi_snd_wscale" => snd_wscale = v as u8,
            "tcpi_rcv_wscale" => rcv_wscale = v as u8,
            "tcpi_backoff" => t.tcpi_backoff = v.min(255) as u8,
            "tcpi_rto" => t.tcpi_rto = v32,
            "tcpi_snd_mss" => t.tcpi_snd_mss = v32,
            "tcpi_rcv_mss" => t.tcpi_rcv_mss = v32,
            "tcpi_unacked" => t.tcpi_unacked = v32,
            "tcpi_sacked" => t.tcpi_sacked = v32,
            "tcpi_lost" => t.tcpi_lost = v32,
            "tcpi_retrans" => t.tcpi_retrans = v32,
            "tcpi_last_data_recv" => t.tcpi_last_data_recv = v32,
            "tcpi_rtt" => t.tcpi_rtt = v32,
            "tcpi_rttvar" => t.tcpi_rttvar = v32,
            "tcpi_snd_ssthresh" => t.tcpi_snd_ssthresh = v32,
            "tcpi_snd_cwnd" => t.tcpi_snd_cwnd = v32,
            "tcpi_advmss" => t.tcpi_advmss = v32,
            "tcpi_reordering" => t.tcpi_reordering = v32,
            "tcpi_total_retrans" => t.tcpi_total_retrans = v32,
            "tcpi_bytes_acked" => t.tcpi_bytes_acked = v,
            "tcpi_bytes_received" => t.tcpi_bytes_received = v,
            "tcpi_segs_out" => t.tcpi_segs_out = v32,
            "tcpi_segs_in" => t.tcpi_segs_in = v32,
            "tcpi_notsent_bytes" => t.tcpi_notsent_bytes = v32,
            "tcpi_busy_time" => t.tcpi_busy_time = v,
            "tcpi_rwnd_limited" => t.tcpi_rwnd_limited = v,
            "tcpi_sndbuf_limited" => t.tcpi_sndbuf_limited = v,
            "tcpi_delivered" => t.tcpi_delivered = v32,
            "tcpi_delivered_ce" => t.tcpi_delivered_ce = v32,
            "tcpi_bytes_sent" => t.tcpi_bytes_sent = v,
            "tcpi_bytes_retrans" => t.tcpi_bytes_retrans = v,
            "tcpi_dsack_dups" => t.tcpi_dsack_dups = v32,
            "tcpi_reord_seen" => t.tcpi_reord_seen = v32,
            "tcpi_rcv_ooopack" => t.tcpi_rcv_ooopack = v32,
            "tcpi_snd_wnd" => t.tcpi_snd_wnd = v32,
            "tcpi_rcv_wnd" => t.tcpi_rcv_wnd = v32,
            "tcpi_received_ce" => t.tcpi_received_ce = v32,
            _ => {}
        }
    }
    // The two 4-bit fields share a byte, snd_wscale in the low bits (x86's bitfield order).
    t.tcpi_snd_rcv_wscale = (snd_wscale & 0xf) | (rcv_wscale << 4);
    t
}

/// SOL_SOCKET's SO_MEMINFO (asm-generic/socket.h), which libc does not name.
const SO_MEMINFO: c_int = 55;

/// SO_MEMINFO's nine counters (Linux's `sk_get_meminfo`): rmem_alloc, rcvbuf, wmem_alloc,
/// sndbuf, fwd_alloc, wmem_queued, optmem, backlog, drops.
fn meminfo(st: &mut crate::instance::State, fd: c_int) -> Result<Vec<u8>, Errno> {
    let now = st.now;
    let int = |v: Result<OptValue, Errno>| match v {
        Ok(OptValue::Int(n)) => n.max(0) as u32,
        _ => 0,
    };
    let rcvbuf = int(st.socks.getsockopt(now, fd, "SO_RCVBUF"));
    let sndbuf = int(st.socks.getsockopt(now, fd, "SO_SNDBUF"));
    let (rq, sq) = st
        .socks
        .handle(fd)
        .and_then(|h| st.socks.stack.info(now, h).ok())
        .map_or((0, 0), |c| (c.recv_queue as u32, c.send_queue as u32));
    let v: [u32; 9] = [rq, rcvbuf, sq, sndbuf, 0, sq, 0, 0, 0];
    Ok(v.iter().flat_map(|x| x.to_ne_bytes()).collect())
}

/// An option's value as getsockopt(2) writes it.
fn opt_bytes(v: OptValue) -> Vec<u8> {
    match v {
        OptValue::Int(n) => (n as c_int).to_ne_bytes().to_vec(),
        OptValue::Linger(on, secs) => {
            let l = libc::linger {
                l_onoff: on as c_int,
                l_linger: secs as c_int,
            };
            // SAFETY: viewing a plain struct as its bytes.
            unsafe { pod_bytes(&l) }.to_vec()
        }
    }
}

/// getsockopt through the table, and through the program's own getsockopt (`hook`).
///
/// # Safety
/// `ud` is a live instance; getsockopt(2)'s contract for the rest.
pub(crate) unsafe extern "C" fn getsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let r: Result<Vec<u8>, Errno> = if level == libc::IPPROTO_TCP && name == libc::TCP_CC_INFO {
        // Linux answers with no bytes when the congestion control has no get_info
        // (Reno, CUBIC: tcp.c's TCP_CC_INFO).
        i.with(|st| st.socks.owns(fd).then(Vec::new).ok_or(Errno::EBADF))
    } else if level == libc::SOL_SOCKET && name == SO_MEMINFO {
        i.with(|st| meminfo(st, fd))
    } else if level == libc::IPPROTO_TCP && name == libc::TCP_INFO {
        i.with(|st| {
            let h = st.socks.handle(fd).ok_or(Errno::ENOTCONN)?;
            let now = st.now;
            let c = st.socks.stack.info(now, h).map_err(|_| Errno::ENOTCONN)?;
            // SAFETY: viewing a plain struct as its bytes.
            Ok(unsafe { pod_bytes(&tcp_info(&c)) }.to_vec())
        })
    } else {
        let Some(opt) = option_name(level, name) else {
            set_errno(Errno::ENOPROTOOPT);
            return -1;
        };
        i.with(|st| {
            let now = st.now;
            st.socks.getsockopt(now, fd, opt).map(opt_bytes)
        })
    };
    let out = match r {
        Ok(out) => out,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    if !val.is_null() && !len.is_null() {
        // SAFETY: getsockopt(2)'s contract: `len` readable and writable, `val` has *len bytes.
        unsafe {
            let room = (*len as usize).min(out.len());
            copy_out(&out[..room], val);
            *len = room as socklen_t;
        }
    }
    0
}

unsafe extern "C" fn setsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    let Some(opt) = option_name(level, name) else {
        set_errno(Errno::ENOPROTOOPT);
        return -1;
    };
    // SAFETY: setsockopt(2)'s contract: `len` readable bytes at `val`.
    let raw = unsafe { bytes(val, len as usize) };
    if opt == "TCP_FASTOPEN_KEY" {
        // The key's bytes, not an int (16, or 32 with a backup).
        // SAFETY: `ud` is our instance.
        let i = unsafe { inst(ud) };
        return ret(i.with(|st| st.socks.set_fastopen_key(fd, raw))) as c_int;
    }
    if opt == "TCP_MD5SIG" || opt == "TCP_MD5SIG_EXT" {
        // SAFETY: `ud` is our instance.
        let i = unsafe { inst(ud) };
        let Some((peer, prefix, key)) = parse_md5sig(raw, opt == "TCP_MD5SIG_EXT") else {
            set_errno(Errno::EINVAL);
            return -1;
        };
        return ret(i.with(|st| {
            let now = st.now;
            st.socks.set_md5_key(now, fd, peer, prefix, key)
        })) as c_int;
    }
    let int = |b: &[u8]| {
        b.get(..4)
            .map(|x| i64::from(c_int::from_ne_bytes([x[0], x[1], x[2], x[3]])))
    };
    let value = if opt == "SO_LINGER" {
        match (int(raw), raw.get(4..).and_then(int)) {
            (Some(on), Some(secs)) => OptValue::Linger(on, secs),
            _ => OptValue::Linger(0, 0),
        }
    } else if level == libc::IPPROTO_IP && raw.len() < 4 {
        // Linux's do_ip_setsockopt: an int, or a single byte when shorter.
        OptValue::Int(raw.first().map_or(0, |b| i64::from(*b)))
    } else {
        OptValue::Int(int(raw).unwrap_or(0))
    };
    let short_ok = level == libc::IPPROTO_IP && !raw.is_empty();
    if raw.len() < 4 && !short_ok {
        set_errno(Errno::EINVAL);
        return -1;
    }
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| {
        if opt == "TCP_FASTOPEN_CONNECT" {
            // Linux's do_tcp_setsockopt reads net.ipv4.tcp_fastopen at the call.
            i.read_sysctls(st);
        }
        let now = st.now;
        st.socks.setsockopt(now, fd, opt, value)
    })) as c_int
}

unsafe extern "C" fn poll(ud: Ud, fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    let set: &mut [pollfd] = if fds.is_null() || n == 0 {
        &mut []
    } else {
        // SAFETY: poll(2)'s contract: `n` pollfds at `fds`, readable and writable.
        unsafe { std::slice::from_raw_parts_mut(fds, n as usize) }
    };
    let asked: Vec<(i32, u32)> = set
        .iter()
        .map(|p| (p.fd, u32::from(p.events as u16)))
        .collect();
    // SAFETY: `ud` is our instance.
    let revents = unsafe { inst(ud) }.poll(&asked, timeout);
    for (p, r) in set.iter_mut().zip(&revents) {
        p.revents = *r as i16;
    }
    revents.iter().filter(|r| **r != 0).count() as c_int
}

unsafe extern "C" fn netdev_send(ud: Ud, buf: *const c_void, n: size_t) -> c_int {
    // SAFETY: `ud` is our instance; packetdrill passes `n` bytes of packet at `buf`.
    unsafe { inst(ud) }.inject(unsafe { bytes(buf, n) });
    0
}

unsafe extern "C" fn netdev_receive(
    ud: Ud,
    buf: *mut c_void,
    n: *mut size_t,
    t: *mut i64,
) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let got = i.sniff();
    if i.starved_too_long(got.is_none()) {
        // packetdrill calls again for ever when there is no packet (its receive timeout
        // is not passed to the library): fail the run as that timeout would.
        eprintln!(
            "synack-packetdrill: timed out waiting for a packet: the script expects one \
             but synack has none queued, no timer pending and no call in progress"
        );
        std::process::exit(1);
    }
    // SAFETY: packetdrill passes its buffer, its size in *n, and a place for the time.
    unsafe {
        match got {
            Some((p, usecs)) if p.len() <= *n => {
                copy_out(&p, buf);
                *n = p.len();
                *t = usecs;
                0
            }
            // Nothing will ever be sent, or it does not fit: report no packet.
            _ => {
                *n = 0;
                -1
            }
        }
    }
}

unsafe extern "C" fn usleep(ud: Ud, usecs: useconds_t) -> c_int {
    // SAFETY: `ud` is our instance.
    unsafe { inst(ud) }.sleep(u64::from(usecs));
    0
}

unsafe extern "C" fn gettimeofday(ud: Ud, tv: *mut timeval, _tz: *mut c_void) -> c_int {
    // SAFETY: `ud` is our instance.
    let us = unsafe { inst(ud) }.now_usecs();
    if !tv.is_null() {
        // SAFETY: gettimeofday(2)'s contract: `tv` is writable.
        unsafe {
            (*tv).tv_sec = (us / 1_000_000) as libc::time_t;
            (*tv).tv_usec = (us % 1_000_000) as libc::suseconds_t;
        }
    }
    0
}

/// epoll_create(): a new epoll instance, on a real descriptor as sockets are.
unsafe extern "C" fn epoll_create(ud: Ud, size: c_int) -> c_int {
    if size <= 0 {
        set_errno(Errno::EINVAL);
        return -1;
    }
    // SAFETY: `ud` is our instance.
    unsafe { inst(ud) }.with(|st| {
        let fd = st.socks.epoll_create();
        own_number(st, fd)
    })
}

unsafe extern "C" fn epoll_ctl(
    ud: Ud,
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut c_void,
) -> c_int {
    let op = match op {
        libc::EPOLL_CTL_ADD => Op::Add,
        libc::EPOLL_CTL_MOD => Op::Mod,
        libc::EPOLL_CTL_DEL => Op::Del,
        _ => {
            set_errno(Errno::EINVAL);
            return -1;
        }
    };
    let (events, data) = if ev.is_null() {
        (0, 0)
    } else {
        // SAFETY: epoll_ctl(2)'s contract: `ev` points at a struct epoll_event (packed
        // on x86-64, hence the unaligned read).
        let e = unsafe { std::ptr::read_unaligned(ev as *const libc::epoll_event) };
        (e.events, e.u64)
    };
    if ev.is_null() && op != Op::Del {
        set_errno(Errno("EFAULT"));
        return -1;
    }
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    ret(i.with(|st| {
        let now = st.now;
        st.socks.epoll_ctl(now, epfd, op, fd, events, data)
    })) as c_int
}

unsafe extern "C" fn epoll_wait(
    ud: Ud,
    epfd: c_int,
    ev: *mut c_void,
    max: c_int,
    timeout: c_int,
) -> c_int {
    if ev.is_null() {
        set_errno(Errno("EFAULT"));
        return -1;
    }
    // SAFETY: `ud` is our instance.
    let got = match unsafe { inst(ud) }.epoll_wait(epfd, i64::from(max), timeout) {
        Ok(got) => got,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    let out = ev as *mut libc::epoll_event;
    for (k, (events, data)) in got.iter().enumerate() {
        let e = libc::epoll_event {
            events: *events,
            u64: *data,
        };
        // SAFETY: epoll_wait(2)'s contract: room for `max` events at `ev`, and `got`
        // holds at most `max` (packed on x86-64, hence the unaligned write).
        unsafe { std::ptr::write_unaligned(out.add(k), e) };
    }
    got.len() as c_int
}

/// pipe(): an in-library pipe (see `synack_drill::sockets::files`), both ends numbered
/// with real descriptors held for them, as sockets are.
unsafe extern "C" fn pipe(ud: Ud, fds: *mut c_int) -> c_int {
    if fds.is_null() {
        set_errno(Errno("EFAULT"));
        return -1;
    }
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let (r, w) = i.with(|st| {
        let (r, w) = st.socks.pipe();
        (own_number(st, r), own_number(st, w))
    });
    // SAFETY: pipe(2)'s contract: room for two descriptors at `fds`.
    unsafe {
        *fds = r;
        *fds.add(1) = w;
    }
    0
}

/// splice(): from a socket into a pipe (Linux's tcp_splice_read, stopping at the urgent
/// mark) or from a pipe into a socket. The offsets must be absent for both (packetdrill
/// passes pointers to the script's values, NULL read as 0), so they are not read.
unsafe extern "C" fn splice(
    ud: Ud,
    fd_in: c_int,
    _off_in: *mut c_void,
    fd_out: c_int,
    _off_out: *mut c_void,
    len: size_t,
    flags: c_uint,
) -> c_int {
    // SAFETY: `ud` is our instance.
    let i = unsafe { inst(ud) };
    let nonblock = flags & synack_drill::sockets::files::SPLICE_F_NONBLOCK != 0;
    ret(i.call_flags(fd_in, nonblock, |st| {
        let now = st.now;
        st.socks.splice(now, fd_in, fd_out, len, flags)
    })) as c_int
}

/// The stack's first address, for tests that build packets to it.
pub fn local_address(ifc: &PacketdrillInterface) -> IpAddr {
    // SAFETY: `userdata` is the instance packetdrill_interface_init made.
    unsafe { inst(ifc.userdata) }.with(|st| st.socks.local)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct tcp_md5sig` as Linux's uapi header lays it out (216 bytes).
    fn md5sig(family: i32, addr: &[u8], flags: u8, prefix: u8, key: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 216];
        b[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        let at = if family == libc::AF_INET { 4 } else { 8 };
        b[at..at + addr.len()].copy_from_slice(addr);
        b[128] = flags;
        b[129] = prefix;
        b[130..132].copy_from_slice(&(key.len() as u16).to_ne_bytes());
        b[136..136 + key.len().min(80)].copy_from_slice(&key[..key.len().min(80)]);
        b
    }

    #[test]
    fn a_tcp_md5sig_struct_gives_its_peer_prefix_and_key() {
        let raw = md5sig(libc::AF_INET, &[198, 18, 0, 2], 1, 24, b"secret");
        let peer: IpAddr = "198.18.0.2".parse().unwrap();
        assert_eq!(
            parse_md5sig(&raw, false),
            Some((peer, None, &b"secret"[..]))
        );
        assert_eq!(
            parse_md5sig(&raw, true),
            Some((peer, Some(24), &b"secret"[..]))
        );
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 2;
        let raw = md5sig(libc::AF_INET6, &v6, 0, 0, b"");
        let peer: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(parse_md5sig(&raw, false), Some((peer, None, &b""[..])));
        // Short, of another family, or a key over 80 bytes: EINVAL.
        assert_eq!(parse_md5sig(&raw[..100], false), None);
        assert_eq!(
            parse_md5sig(&md5sig(libc::AF_UNIX, &[], 0, 0, b"k"), false),
            None
        );
        let mut long = md5sig(libc::AF_INET, &[198, 18, 0, 2], 0, 0, b"k");
        long[130..132].copy_from_slice(&81u16.to_ne_bytes());
        assert_eq!(parse_md5sig(&long, false), None);
    }

    #[test]
    fn user_memory_that_is_not_mapped_ends_a_copy_instead_of_faulting() {
        let mut mine = vec![7u8; 10];
        let at = mine.as_mut_ptr() as usize;
        // Page 0 is never mapped.
        assert!(user_read(&[(0, 1000)]).is_empty());
        assert_eq!(user_read(&[(at, 4), (0, 4), (at, 4)]), vec![7; 4]);
        assert_eq!(user_write(&[1, 2, 3], &[(at, 2), (16, 1)]), 2);
        assert_eq!(user_writable(&[(at, 10)]), 10);
        assert_eq!(mine[..3], [1, 2, 7]);
        let d = UserData::read(&[(0, 5)]);
        assert_eq!(d.result(Ok(0)), Err(Errno("EFAULT")));
        assert_eq!(UserData::read(&[(at, 0)]).result(Ok(0)), Ok(0));
    }

    #[test]
    fn zerocopy_frags_are_pages_and_contiguous_pieces_of_one_page_join() {
        assert_eq!(page_frags([(4090, 10)]), vec![6, 4]);
        assert_eq!(page_frags([(100, 1), (101, 1), (300, 1)]), vec![2, 1]);
        // Contiguous across a page end: a new frag.
        assert_eq!(page_frags([(4095, 1), (4096, 1)]), vec![1, 1]);
    }
}
