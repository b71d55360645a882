//! The OS boundary of the TUN backend: opening `/dev/net/tun` and the interface ioctls
//! (flags, offload, addresses, MTU, routes). With `device::sys` (`poll(2)` and the wake
//! pipe), every `unsafe` block of synack lives here.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
/// `_IOW('T', 208, unsigned int)`: which offloads the reader of the device can take.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// `struct ifreq`: a 16-byte name and a 24-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> io::Result<IfReq> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface name '{name}' must be 1 to 15 bytes without NUL"),
            ));
        }
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        r.name[..bytes.len()].copy_from_slice(bytes);
        Ok(r)
    }

    fn set_short(&mut self, v: libc::c_short) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }

    fn short(&self) -> libc::c_short {
        libc::c_short::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn int(&self) -> libc::c_int {
        libc::c_int::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }

    fn set_int(&mut self, v: libc::c_int) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }

    /// Store a `sockaddr_in` with `addr`.
    fn set_ipv4(&mut self, addr: Ipv4Addr) {
        self.data = [0; 24];
        self.data[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        self.data[4..8].copy_from_slice(&addr.octets());
    }
}

/// `struct in6_ifreq`.
#[repr(C)]
struct In6IfReq {
    addr: [u8; 16],
    prefixlen: u32,
    ifindex: libc::c_int,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Open `/dev/net/tun` and attach it to interface `name` (created if absent) in TUN
/// mode without packet information: each read or write is one bare IP packet, preceded
/// by a `virtio_net_hdr` when `vnet_hdr` is set. With `multi_queue` each call adds one
/// queue to the device (`IFF_MULTI_QUEUE`).
pub(crate) fn open_tun(name: &str, vnet_hdr: bool, multi_queue: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| annotate(e, "open /dev/net/tun"))?;
    let mut req = IfReq::new(name)?;
    let vnet = if vnet_hdr { IFF_VNET_HDR } else { 0 };
    let multi = if multi_queue { IFF_MULTI_QUEUE } else { 0 };
    req.set_short(IFF_TUN | IFF_NO_PI | vnet | multi);
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` matches in size
    // and layout (repr(C), 40 bytes); `req` outlives the call and the fd is open.
    cvt(unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) })
        .map_err(|e| annotate(e, "TUNSETIFF"))?;
    Ok(file)
}

/// Tell the kernel we take checksum-offloaded and TSO super-segments (IPv4 and IPv6),
/// so it may hand us up to 64 KiB of TCP in one read (and accept the same from us).
pub(crate) fn set_offload(device: &File) -> io::Result<()> {
    let flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int of flags); no
    // memory is passed and the fd is an open TUN device.
    cvt(unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            TUNSETOFFLOAD as _,
            flags as libc::c_ulong,
        )
    })
    .map_err(|e| annotate(e, "TUNSETOFFLOAD"))?;
    Ok(())
}

/// Explain permission errors the way a person needs to hear them.
fn annotate(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EPERM) {
        io::Error::new(
            e.kind(),
            format!("{what}: permission denied: creating and configuring a TUN interface needs root or CAP_NET_ADMIN (run with sudo, or grant the capability: setcap cap_net_admin+ep <binary>)"),
        )
    } else {
        io::Error::new(e.kind(), format!("{what}: {e}"))
    }
}

/// A datagram socket of `family`, used only as a handle for interface ioctls.
fn control_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory arguments; a non-negative result is a new fd
    // that we own exclusively.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_ioctl(sock: RawFd, request: libc::c_ulong, req: &mut IfReq, what: &str) -> io::Result<()> {
    // SAFETY: the SIOC{G,S}IF* requests used here read or write a `struct ifreq`, which
    // `IfReq` matches; `req` is valid for the whole call.
    cvt(unsafe { libc::ioctl(sock, request as _, req as *mut IfReq) })
        .map_err(|e| annotate(e, what))?;
    Ok(())
}

/// Bring interface `name` up.
pub(crate) fn set_up(name: &str) -> io::Result<()> {
    let sock = control_socket(libc::AF_INET)?;
    let mut req = IfReq::new(name)?;
    ifreq_ioctl(
        sock.as_raw_fd(),
        libc::SIOCGIFFLAGS,
        &mut req,
        "SIOCGIFFLAGS",
    )?;
    let flags = req.short() | libc::IFF_UP as libc::c_short | libc::IFF_RUNNING as libc::c_short;
    req.set_short(flags);
    ifreq_ioctl(
        sock.as_raw_fd(),
        libc::SIOCSIFFLAGS,
        &mut req,
        "SIOCSIFFLAGS",
    )
}

/// Set the MTU of interface `name`.
pub(crate) fn set_mtu(name: &str, mtu: usize) -> io::Result<()> {
    let sock = control_socket(libc::AF_INET)?;
    let mut req = IfReq::new(name)?;
    req.set_int(mtu as libc::c_int);
    ifreq_ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut req, "SIOCSIFMTU")
}

/// Give interface `name` the IPv4 address `addr/prefix` (the kernel's side of the link).
pub(crate) fn add_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let sock = control_socket(libc::AF_INET)?;
    let mut req = IfReq::new(name)?;
    req.set_ipv4(addr);
    ifreq_ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR")?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    req.set_ipv4(Ipv4Addr::from(mask));
    ifreq_ioctl(
        sock.as_raw_fd(),
        libc::SIOCSIFNETMASK,
        &mut req,
        "SIOCSIFNETMASK",
    )
}

/// The index of interface `name`.
fn ifindex(name: &str) -> io::Result<libc::c_int> {
    let sock = control_socket(libc::AF_INET)?;
    let mut req = IfReq::new(name)?;
    ifreq_ioctl(
        sock.as_raw_fd(),
        libc::SIOCGIFINDEX,
        &mut req,
        "SIOCGIFINDEX",
    )?;
    Ok(req.int())
}

/// Give interface `name` the IPv6 address `addr/prefix`, with duplicate address detection
/// switched off first (the link has only us on its other end).
pub(crate) fn add_ipv6(name: &str, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
    let dad = format!("/proc/sys/net/ipv6/conf/{name}/accept_dad");
    let _ = std::fs::write(dad, "0");
    let sock = control_socket(libc::AF_INET6)?;
    let mut req = In6IfReq {
        addr: addr.octets(),
        prefixlen: prefix as u32,
        ifindex: ifindex(name)?,
    };
    // SAFETY: SIOCSIFADDR on an AF_INET6 socket reads a `struct in6_ifreq`, which
    // `In6IfReq` matches (repr(C): 16-byte address, u32 prefix length, int ifindex).
    cvt(unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFADDR as _,
            &mut req as *mut In6IfReq,
        )
    })
    .map_err(|e| annotate(e, "SIOCSIFADDR (IPv6)"))?;
    Ok(())
}

/// `struct rtentry` (linux/route.h), for SIOCADDRT on an AF_INET socket.
#[repr(C)]
struct RtEntry {
    pad1: libc::c_ulong,
    dst: libc::sockaddr_in,
    gateway: libc::sockaddr_in,
    genmask: libc::sockaddr_in,
    flags: libc::c_ushort,
    pad2: libc::c_short,
    pad3: libc::c_ulong,
    pad4: *mut libc::c_void,
    metric: libc::c_short,
    dev: *mut libc::c_char,
    mtu: libc::c_ulong,
    window: libc::c_ulong,
    irtt: libc::c_ushort,
}

/// `struct in6_rtmsg` (linux/ipv6_route.h), for SIOCADDRT on an AF_INET6 socket.
#[repr(C)]
struct In6RtMsg {
    dst: [u8; 16],
    src: [u8; 16],
    gateway: [u8; 16],
    kind: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: libc::c_ulong,
    flags: u32,
    ifindex: libc::c_int,
}

const RTF_UP: u16 = 0x0001;

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Route `prefix` (its network address, `len` bits) to interface `name`, as
/// `ip route add PREFIX dev NAME` does. An existing identical route is left as it is.
pub(crate) fn add_route(name: &str, prefix: std::net::IpAddr, len: u8) -> io::Result<()> {
    let r = match prefix {
        std::net::IpAddr::V4(net) => {
            let sock = control_socket(libc::AF_INET)?;
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            let mut dev = std::ffi::CString::new(name)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?
                .into_bytes_with_nul();
            let mut rt = RtEntry {
                pad1: 0,
                dst: sockaddr_in(net),
                gateway: sockaddr_in(Ipv4Addr::UNSPECIFIED),
                genmask: sockaddr_in(Ipv4Addr::from(mask)),
                flags: RTF_UP,
                pad2: 0,
                pad3: 0,
                pad4: std::ptr::null_mut(),
                metric: 0,
                dev: dev.as_mut_ptr().cast(),
                mtu: 0,
                window: 0,
                irtt: 0,
            };
            // SAFETY: SIOCADDRT on an AF_INET socket reads a `struct rtentry`, which
            // `RtEntry` matches (repr(C), linux/route.h); `rt` and the NUL-terminated
            // device name it points to live until the call returns.
            cvt(unsafe {
                libc::ioctl(
                    sock.as_raw_fd(),
                    libc::SIOCADDRT as _,
                    &mut rt as *mut RtEntry,
                )
            })
        }
        std::net::IpAddr::V6(net) => {
            let sock = control_socket(libc::AF_INET6)?;
            let mut rt = In6RtMsg {
                dst: net.octets(),
                src: [0; 16],
                gateway: [0; 16],
                kind: 0,
                dst_len: u16::from(len),
                src_len: 0,
                metric: 1,
                info: 0,
                flags: u32::from(RTF_UP),
                ifindex: ifindex(name)?,
            };
            // SAFETY: SIOCADDRT on an AF_INET6 socket reads a `struct in6_rtmsg`, which
            // `In6RtMsg` matches (repr(C), linux/ipv6_route.h); `rt` lives until the call
            // returns.
            cvt(unsafe {
                libc::ioctl(
                    sock.as_raw_fd(),
                    libc::SIOCADDRT as _,
                    &mut rt as *mut In6RtMsg,
                )
            })
        }
    };
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(annotate(e, "SIOCADDRT (route to the device)")),
    }
}
