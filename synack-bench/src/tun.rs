//! `tun`: bulk throughput through synack's TUN backend, beside the kernel talking to
//! itself over a veth pair, every packet inside network namespaces the benchmark makes
//! (see [`crate::netns`]). Each run moves `Sizes::tun_bytes` over one connection at MTU
//! 1500, timed from just before connect() until the receiver reads the end of the
//! stream; the receiver checks it got exactly that many bytes. Gbit/s.
//!
//! - `kernel_to_synack` and `synack_to_kernel`, system `synack`, offload on and off
//!   (`--netns-role tun:DIRECTION:on|off:BYTES`): one child process in a fresh namespace
//!   opens `tun0` with `synack::tun::Interface` (synack 198.18.0.2/15, the kernel's side
//!   198.18.0.1; `InterfaceConfig::offload` on or off: TSO/GSO super-segments and
//!   checksum offload through `IFF_VNET_HDR`) and uses it through `synack::net` on its
//!   main thread; the kernel's side is a `std::net` socket on a second thread of the same
//!   process. synack's buffers are `crate::BUFFER` (4 MiB, as in `bulk`), the kernel's
//!   its defaults with autotuning. The offload figure recorded is what the interface
//!   actually got (`Interface::offload_stats().enabled`).
//! - `kernel_to_kernel`, system `linux` (`--netns-role veth:BYTES:PEER_NS`): two
//!   namespaces joined by a veth pair (198.18.0.1/15 and 198.18.0.2/15), created inside
//!   the first so that it never appears outside them; the child runs in the first and
//!   sends, its receiving thread enters the second with setns(2). veth's offload is left
//!   at its default (TSO and GSO on); the child reads both with the ethtool ioctl and
//!   the row records `.offload(tso && gso)`, so `offload on` means the kernel's default.
//!
//! Each child runs under the watchdog of [`crate::netns::WATCHDOG`] (60 s) and its
//! sockets fail after 20 s without progress.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use synack::tun::{Interface, InterfaceConfig};

use crate::linux::{drain, field, fill};
use crate::netns::{self, Netns};
use crate::report::{Measurement, Report};
use crate::{Selection, Sizes};

/// The kernel's side of tun0, and the first end of the veth pair.
const KERNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// synack's side of tun0, and the second end of the veth pair.
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PREFIX: u8 = 15;
const PORT: u16 = 5001;
const STALL: Duration = Duration::from_secs(20);
const DIRECTIONS: [&str; 2] = ["kernel_to_synack", "synack_to_kernel"];

/// Run the TUN benchmarks.
pub fn run(sizes: &Sizes, report: &mut Report, systems: &Selection) {
    let (synack, linux) = (systems.has("synack"), systems.has("linux"));
    if !synack && !linux {
        return;
    }
    if let Err(why) = netns::available() {
        for (wanted, system) in [(synack, "synack"), (linux, "linux")] {
            if wanted {
                report.skip("tun", system, why.clone());
            }
        }
        return;
    }
    if synack {
        for direction in DIRECTIONS {
            for offload in [true, false] {
                let flag = if offload { "on" } else { "off" };
                let role = format!("tun:{direction}:{flag}:{}", sizes.tun_bytes);
                let r = Netns::new().and_then(|ns| ns.run_role(&role));
                match r.and_then(|v| Ok((field(&v, "gbit")?, v["offload"].as_bool()))) {
                    Ok((gbit, got)) => {
                        let got = got.unwrap_or(offload);
                        if got != offload {
                            eprintln!(
                                "  (tun {direction}: offload asked {flag}, the device gave {got})"
                            );
                        }
                        report.add(
                            Measurement::new("tun", "synack", gbit, "Gbit/s")
                                .direction(direction)
                                .offload(got),
                        );
                    }
                    Err(e) => {
                        report.skip("tun", "synack", format!("{direction}, offload {flag}: {e}"))
                    }
                }
            }
        }
    }
    if linux {
        match veth(sizes.tun_bytes) {
            Ok((gbit, offload)) => report.add(
                Measurement::new("tun", "linux", gbit, "Gbit/s")
                    .direction("kernel_to_kernel")
                    .offload(offload),
            ),
            Err(e) => report.skip("tun", "linux", format!("kernel_to_kernel: {e}")),
        }
    }
}

/// Two namespaces, a veth pair between them, the `veth` role in the first.
fn veth(bytes: u64) -> Result<(f64, bool), String> {
    let (a, b) = netns::veth_pair(KERNEL, PEER, PREFIX)?;
    let v = a.run_role(&format!("veth:{bytes}:{}", b.name))?;
    let offload = v["offload"]
        .as_bool()
        .ok_or_else(|| format!("the result has no offload: {v}"))?;
    Ok((field(&v, "gbit")?, offload))
}

/// The part that runs inside a namespace (`--netns-role ROLE`); returns the exit code.
/// Prints the result as one JSON line on stdout.
pub fn netns_role(role: &str) -> i32 {
    netns::child_setup();
    let r = if role.starts_with("linux-") {
        crate::linux::netns_role(role)
    } else if role.starts_with("http:") {
        crate::http::netns_role(role)
    } else if role.starts_with("relay-") {
        crate::relay::netns_role(role)
    } else {
        let parts: Vec<&str> = role.split(':').collect();
        match parts.as_slice() {
            ["tun", direction, flag @ ("on" | "off"), bytes] if DIRECTIONS.contains(direction) => {
                match bytes.parse() {
                    Ok(bytes) => tun(direction, *flag == "on", bytes),
                    Err(_) => Err(format!("role {role}: {bytes} is not a number of bytes")),
                }
            }
            ["veth", bytes, peer] => match bytes.parse() {
                Ok(bytes) => veth_role(bytes, peer),
                Err(_) => Err(format!("role {role}: {bytes} is not a number of bytes")),
            },
            _ => Err(format!("unknown namespace role {role}")),
        }
        .map_err(|e| format!("{role}: {e}"))
    };
    match r {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            eprintln!("synack-bench: {e}");
            1
        }
    }
}

/// One transfer through tun0 between synack (main thread) and the kernel (a thread).
fn tun(direction: &str, offload: bool, bytes: u64) -> Result<serde_json::Value, String> {
    let mut config = InterfaceConfig::new(
        "tun0",
        synack::tun::Cidr {
            addr: IpAddr::V4(PEER),
            prefix: PREFIX,
        },
        IpAddr::V4(KERNEL),
    );
    config.offload = offload;
    config.stack = {
        let mut config = synack::Config::default();
        config.recv_buffer = crate::BUFFER;
        config.send_buffer = crate::BUFFER;
        config.tcp_rmem_max = crate::BUFFER;
        config
    };
    let iface = Interface::open(config).map_err(|e| format!("cannot open tun0: {e}"))?;
    let (got, t0, t1) = if direction == "kernel_to_synack" {
        let addr = SocketAddr::from((PEER, PORT));
        let listener = synack::net::TcpListener::bind(&iface, addr)
            .map_err(|e| format!("synack cannot listen on {addr}: {e}"))?;
        let t0 = Instant::now();
        let sender = std::thread::spawn(move || -> io::Result<()> {
            let mut s = std::net::TcpStream::connect_timeout(&addr, STALL)?;
            s.set_write_timeout(Some(STALL))?;
            fill(&mut s, bytes)?;
            s.shutdown(Shutdown::Write)
        });
        let (mut s, _) = listener
            .accept()
            .map_err(|e| format!("synack accept: {e}"))?;
        s.set_read_timeout(Some(STALL)).map_err(|e| e.to_string())?;
        let (got, t1) = drain(&mut s).map_err(|e| format!("synack receiving: {e}"))?;
        sender
            .join()
            .map_err(|_| "the kernel's sender panicked".to_string())?
            .map_err(|e| format!("the kernel's sender: {e}"))?;
        (got, t0, t1)
    } else {
        let addr = SocketAddr::from((KERNEL, PORT));
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("the kernel cannot listen on {addr}: {e}"))?;
        let receiver = std::thread::spawn(move || -> io::Result<(u64, Instant)> {
            let (mut s, _) = listener.accept()?;
            s.set_read_timeout(Some(STALL))?;
            drain(&mut s)
        });
        let t0 = Instant::now();
        let mut s = synack::net::TcpStream::connect_timeout(&iface, &addr, STALL)
            .map_err(|e| format!("synack connect: {e}"))?;
        s.set_write_timeout(Some(STALL))
            .map_err(|e| e.to_string())?;
        fill(&mut s, bytes).map_err(|e| format!("synack sending: {e}"))?;
        s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        let (got, t1) = receiver
            .join()
            .map_err(|_| "the kernel's receiver panicked".to_string())?
            .map_err(|e| format!("the kernel's receiver: {e}"))?;
        drop(s);
        iface.wait_closed(Duration::from_secs(2));
        (got, t0, t1)
    };
    if got != bytes {
        return Err(format!("received {got} bytes of {bytes}"));
    }
    let stats = iface.offload_stats();
    Ok(json!({
        "gbit": crate::synack_sys::gbit(got, t1 - t0),
        "bytes": got,
        "offload": stats.enabled,
        "super_in": stats.super_in,
        "super_out": stats.super_out,
    }))
}

/// Kernel to kernel over veth: this thread (in the first namespace) sends, a thread in
/// `peer` (the second) receives.
fn veth_role(bytes: u64, peer: &str) -> Result<serde_json::Value, String> {
    let (tso, gso) = (
        ethtool("veth-a", ETHTOOL_GTSO)?,
        ethtool("veth-a", ETHTOOL_GGSO)?,
    );
    let netns = std::fs::File::open(format!("/run/netns/{peer}"))
        .map_err(|e| format!("cannot open namespace {peer}: {e}"))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || -> io::Result<(u64, Instant)> {
        use std::os::fd::AsRawFd;
        // SAFETY: setns takes a file descriptor we own (open for the call's duration)
        // and moves only this thread into that network namespace; no memory is shared.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = io::Error::last_os_error();
            let _ = ready_tx.send(Err(e.to_string()));
            return Err(e);
        }
        let listener = match std::net::TcpListener::bind((PEER, PORT)) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return Err(e);
            }
        };
        let _ = ready_tx.send(Ok(()));
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(STALL))?;
        drain(&mut s)
    });
    ready_rx
        .recv_timeout(STALL)
        .map_err(|_| "the receiver never started".to_string())?
        .map_err(|e| format!("the receiver in {peer}: {e}"))?;
    let addr = SocketAddr::from((PEER, PORT));
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect_timeout(&addr, STALL)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_write_timeout(Some(STALL))
        .map_err(|e| e.to_string())?;
    fill(&mut s, bytes).map_err(|e| format!("sending: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let (got, t1) = receiver
        .join()
        .map_err(|_| "the receiver panicked".to_string())?
        .map_err(|e| format!("the receiver: {e}"))?;
    if got != bytes {
        return Err(format!("received {got} bytes of {bytes}"));
    }
    Ok(json!({
        "gbit": crate::synack_sys::gbit(got, t1 - t0),
        "bytes": got,
        "offload": tso && gso,
        "tso": tso,
        "gso": gso,
    }))
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_GGSO: u32 = 0x23;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with `ifr_data` (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 24 - std::mem::size_of::<usize>()],
}

/// One on/off ethtool setting of `dev` (in this thread's namespace).
fn ethtool(dev: &str, cmd: u32) -> Result<bool, String> {
    use std::os::fd::AsRawFd;
    let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_else(|_| std::net::UdpSocket::bind((KERNEL, 0)))
        .map_err(|e| format!("no socket for ethtool: {e}"))?;
    let mut value = EthtoolValue { cmd, data: 0 };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 24 - std::mem::size_of::<usize>()],
    };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: `req` is a valid ifreq whose name is NUL-terminated (dev is shorter than
    // IFNAMSIZ) and whose data points at `value`, which outlives the call; SIOCETHTOOL
    // with a GTSO/GGSO command writes only `value.data`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if r != 0 {
        return Err(format!(
            "ethtool ioctl {cmd:#x} on {dev}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(value.data != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_for_ethtool_has_the_kernels_size() {
        assert_eq!(
            std::mem::size_of::<IfreqData>(),
            std::mem::size_of::<libc::ifreq>()
        );
    }

    #[test]
    fn malformed_linux_roles_are_refused() {
        for role in [
            "linux-bulk:1500",
            "linux-bulk:x:1",
            "linux-nothing:1",
            "linux-latency",
        ] {
            assert!(crate::linux::netns_role(role).is_err(), "{role}");
        }
    }
}
