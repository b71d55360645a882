//! Segmentation and checksum offload on the TUN device (`IFF_VNET_HDR` + `TUNSETOFFLOAD`).
//! Every packet crossing the device carries a `virtio_net_hdr`. From the kernel we may get
//! TSO super-segments (up to 64 KiB of one connection's data in one read) whose TCP
//! checksum is left partial (the packet was made on this host and never summed): the stack
//! takes it without summing. Towards the kernel, the stack leaves its TCP checksums
//! partial for the kernel to finish, and runs of full-sized segments it emits back to
//! back are written as one super-segment (one `writev`: the first segment's headers, then
//! each segment's payload where it lies), which the kernel takes as one packet.

use std::ops::Range;

use std::net::IpAddr;

use crate::wire::{checksum, finish, pseudo_header, Ipv4Packet, Ipv6Packet, PROTO_TCP};

/// `sizeof(struct virtio_net_hdr)`: what precedes each packet on a vnet-header device.
pub(crate) const VNET_HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel has checked the checksum.
const F_DATA_VALID: u8 = 2;
/// The largest IP packet a super-segment may become.
const MAX_SUPER: usize = 65535;
/// The most segments merged into one super-segment (the iovec of its `writev`).
pub(crate) const MAX_RUN: usize = 64;

/// What offload did so far.
///
/// ```
/// use synack::device::{memory, DeviceConfig, Interface};
/// let (a, _b) = memory::pair(256);
/// let iface = Interface::new(a, DeviceConfig::new("198.18.0.1".parse()?))?;
/// // A memory device has no virtio header, so no offload (TUN usually has it).
/// let stats = iface.offload_stats();
/// assert!(!stats.enabled);
/// assert_eq!(stats.super_out, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OffloadStats {
    /// Whether the kernel accepted the offload flags for this device.
    pub enabled: bool,
    /// Super-segments (more than one MSS) received from the kernel.
    pub super_in: u64,
    /// The largest packet received from the kernel, in bytes.
    pub largest_in: usize,
    /// Super-segments written to the kernel.
    pub super_out: u64,
    /// Stack segments merged into those super-segments.
    pub segments_merged: u64,
    /// Packets whose partial checksum we completed.
    pub checksums_completed: u64,
    /// Reads whose virtio header was unusable (dropped).
    pub bad_headers: u64,
}

/// A `virtio_net_hdr` (native byte order, as the legacy TUN interface uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VnetHdr {
    flags: u8,
    gso_type: u8,
    hdr_len: u16,
    gso_size: u16,
    csum_start: u16,
    csum_offset: u16,
}

impl VnetHdr {
    fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// A read from the device: strip the header. Returns where the IP packet is in `buf`,
/// and whether its TCP checksum needs no verifying: the kernel left it partial (made on
/// this host, never summed) or marked it valid. A partial checksum is completed only when
/// `complete` asks (a capture shows packets as a wire would carry them). None when the
/// header cannot be used.
pub(crate) fn inbound(
    buf: &mut [u8],
    stats: &mut OffloadStats,
    complete: bool,
) -> Option<(Range<usize>, bool)> {
    let Some(hdr) = VnetHdr::parse(buf) else {
        stats.bad_headers += 1;
        return None;
    };
    let packet = &mut buf[VNET_HDR_LEN..];
    let mut verified = hdr.flags & F_DATA_VALID != 0;
    if hdr.flags & F_NEEDS_CSUM != 0 {
        let start = usize::from(hdr.csum_start);
        let at = start + usize::from(hdr.csum_offset);
        if at + 2 > packet.len() {
            stats.bad_headers += 1;
            return None;
        }
        if complete {
            // The field holds the pseudo-header sum; summing from csum_start over it
            // gives the full checksum (virtio 1.1, 5.1.6.2).
            let c = checksum(&packet[start..]);
            packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
            stats.checksums_completed += 1;
        }
        verified = true;
    }
    if hdr.gso_type & !0x80 != GSO_NONE {
        stats.super_in += 1;
    }
    stats.largest_in = stats.largest_in.max(packet.len());
    Some((VNET_HDR_LEN..buf.len(), verified))
}

/// Complete the partial TCP checksum of a packet the stack made (for a capture).
pub(crate) fn complete_checksum(p: &mut [u8]) {
    if let Some(f) = shape(p) {
        let c = checksum(&p[f.ip_len..]);
        p[f.ip_len + 16..f.ip_len + 18].copy_from_slice(&c.to_be_bytes());
    }
}

/// The header for a packet written as is (checksums already complete).
pub(crate) const PLAIN: VnetHdr = VnetHdr {
    flags: 0,
    gso_type: GSO_NONE,
    hdr_len: 0,
    gso_size: 0,
    csum_start: 0,
    csum_offset: 0,
};

/// The TCP facts needed to decide whether two packets can travel as one.
struct Shape {
    ip_len: usize,
    tcp_len: usize,
    seq: u32,
    flags: u8,
    payload: usize,
}

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// Read what coalescing needs from a packet the stack built (IPv4 without options, or
/// IPv6 without extension headers, carrying TCP). None for anything else.
fn shape(p: &[u8]) -> Option<Shape> {
    let (ip_len, proto) = match p.first()? >> 4 {
        4 if p[0] & 0x0f == 5 => (20, *p.get(9)?),
        6 => (40, *p.get(6)?),
        _ => return None,
    };
    if proto != PROTO_TCP {
        return None;
    }
    let tcp = p.get(ip_len..)?;
    let tcp_len = usize::from(tcp.get(12)? >> 4) * 4;
    if tcp_len < 20 || tcp.len() < tcp_len {
        return None;
    }
    Some(Shape {
        ip_len,
        tcp_len,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        flags: tcp[13],
        payload: tcp.len() - tcp_len,
    })
}

/// Whether a packet from the kernel is a TCP segment without payload (an ACK).
pub(crate) fn is_bare_tcp(p: &[u8]) -> bool {
    shape(p).is_some_and(|s| s.payload == 0)
}

/// Whether `next` continues the run that starts with `first` and has `run_bytes` of
/// payload so far: same addresses, ports, ack, window and options, plain ACK (PSH may
/// end the run), the very next sequence number, no bigger than the first.
fn continues(first: &[u8], f: &Shape, run_bytes: usize, next: &[u8], n: &Shape) -> bool {
    let (hl, ip) = (f.ip_len + f.tcp_len, f.ip_len);
    let addrs = if ip == 20 { 12..20 } else { 8..40 };
    n.ip_len == f.ip_len
        && n.tcp_len == f.tcp_len
        && n.payload > 0
        && n.payload <= f.payload
        && (n.flags == ACK || n.flags == ACK | PSH)
        && n.seq == f.seq.wrapping_add(run_bytes as u32)
        && first[addrs.clone()] == next[addrs]
        // ports, then ack and the data offset, then window; then the options
        && first[ip..ip + 4] == next[ip..ip + 4]
        && first[ip + 8..ip + 13] == next[ip + 8..ip + 13]
        && first[ip + 14..ip + 16] == next[ip + 14..ip + 16]
        && first[ip + 20..hl] == next[ip + 20..hl]
        && hl + run_bytes + n.payload <= MAX_SUPER
}

/// A packet the stack made, with the segment size the device is to cut it at (0: one
/// segment as it is; else a super-segment the stack built with `Config::tso_max`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    /// A buffer whose first `len` bytes are the packet (it is reused for others).
    pub(crate) bytes: Vec<u8>,
    pub(crate) len: usize,
    pub(crate) segment_size: u16,
}

impl Packet {
    /// The packet's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[..self.len.min(self.bytes.len())]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len.min(self.bytes.len());
        &mut self.bytes[..len]
    }
}

/// One `write(2)` of a batch: packets `first..end` behind `hdr`. More than one packet is
/// a super-segment: the first packet whole (its headers already fixed up to describe
/// the run), then the payload (from `hdr_len` on) of each of the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Write {
    pub(crate) hdr: VnetHdr,
    pub(crate) first: usize,
    pub(crate) end: usize,
}

impl Write {
    /// Bytes of the packets after the first that this write skips (their headers).
    pub(crate) fn hdr_len(&self) -> usize {
        usize::from(self.hdr.hdr_len)
    }
}

/// Plan the writes of a batch the stack made, in order, into `writes`: runs of
/// consecutive full-sized segments of one connection become TSO super-segments (when
/// `merge`); TCP packets whose checksum the stack left partial (`partial`) ask the
/// kernel to finish it. Only the first packet of each run is changed.
pub(crate) fn plan(
    batch: &mut [Packet],
    partial: bool,
    merge: bool,
    stats: &mut OffloadStats,
    writes: &mut Vec<Write>,
) {
    writes.clear();
    let mut i = 0;
    while i < batch.len() {
        let first = i;
        i += 1;
        let f = match shape(batch[first].data()) {
            Some(f) => f,
            None => {
                writes.push(Write {
                    hdr: PLAIN,
                    first,
                    end: i,
                });
                continue;
            }
        };
        let csum = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            hdr_len: (f.ip_len + f.tcp_len) as u16,
            gso_size: 0,
            csum_start: f.ip_len as u16,
            csum_offset: 16,
        };
        let single = if partial { csum } else { PLAIN };
        let gso_type = if f.ip_len == 20 { GSO_TCPV4 } else { GSO_TCPV6 };
        let size = batch[first].segment_size;
        if size > 0 {
            // A super-segment the stack built: the device cuts it (its checksum is
            // partial: the stack builds them only with offload on).
            stats.super_out += 1;
            stats.segments_merged += f.payload.div_ceil(usize::from(size)) as u64;
            writes.push(Write {
                hdr: VnetHdr {
                    gso_type,
                    gso_size: size,
                    ..csum
                },
                first,
                end: i,
            });
            continue;
        }
        if !merge || f.flags != ACK || f.payload == 0 {
            writes.push(Write {
                hdr: single,
                first,
                end: i,
            });
            continue;
        }
        let mut run_bytes = f.payload;
        let mut last_flags = f.flags;
        while i < batch.len() && i - first < MAX_RUN && batch[i].segment_size == 0 {
            let Some(n) = shape(batch[i].data()) else {
                break;
            };
            // Every segment but the last must be full-sized.
            if last_flags != ACK || run_bytes % f.payload != 0 {
                break;
            }
            if !continues(batch[first].data(), &f, run_bytes, batch[i].data(), &n) {
                break;
            }
            run_bytes += n.payload;
            last_flags = n.flags;
            i += 1;
        }
        if i - first == 1 {
            writes.push(Write {
                hdr: single,
                first,
                end: i,
            });
            continue;
        }
        finish_super(batch[first].data_mut(), &f, run_bytes, last_flags);
        stats.super_out += 1;
        stats.segments_merged += (i - first) as u64;
        writes.push(Write {
            hdr: VnetHdr {
                gso_type,
                gso_size: f.payload as u16,
                ..csum
            },
            first,
            end: i,
        });
    }
}

/// Fix the headers of the first packet of a run to describe the whole super-segment
/// (`run_bytes` of payload): the IP header as for any packet, the last segment's flags,
/// and the TCP checksum field holding the pseudo-header sum for the kernel to finish per
/// segment (CHECKSUM_PARTIAL). The packet's own bytes stay where they are.
fn finish_super(p: &mut [u8], f: &Shape, run_bytes: usize, flags: u8) {
    let ip = f.ip_len;
    let tcp_total = f.tcp_len + run_bytes;
    let total = ip + tcp_total;
    let (src, dst): (IpAddr, IpAddr) = if ip == 20 {
        let mut v4 = Ipv4Packet::new_unchecked(&mut *p);
        v4.set_total_len(total as u16);
        v4.fill_checksum();
        (v4.src_addr().into(), v4.dst_addr().into())
    } else {
        // The IPv6 payload length; the addresses are read through the packet view.
        p[4..6].copy_from_slice(&(tcp_total as u16).to_be_bytes());
        let v6 = Ipv6Packet::new_unchecked(&*p);
        (v6.src_addr().into(), v6.dst_addr().into())
    };
    p[ip + 13] = flags;
    let partial = !finish(pseudo_header(&src, &dst, PROTO_TCP, tcp_total as u32));
    p[ip + 16..ip + 18].copy_from_slice(&partial.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, sum, SeqNum, TcpFlags, TcpRepr};
    use std::net::IpAddr;

    fn segment(v6: bool, seq: u32, flags: TcpFlags, len: usize) -> Vec<u8> {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::2".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            )
        } else {
            ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap())
        };
        let payload: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
        let repr = TcpRepr {
            src_port: 8080,
            dst_port: 40000,
            seq: SeqNum::new(seq),
            ack: SeqNum::new(77),
            flags,
            window: 512,
            urgent: 0,
            options: Default::default(),
            payload: &payload,
        };
        wire::emit_tcp_packet(s, d, 64, &repr).unwrap()
    }

    /// What the kernel's GSO does with a super-segment: cut it at gso_size, copy the
    /// headers, fix lengths, sequence numbers, flags and checksums.
    fn kernel_segments(hdr: VnetHdr, p: &[u8]) -> Vec<Vec<u8>> {
        let hl = usize::from(hdr.hdr_len);
        let ip = usize::from(hdr.csum_start);
        let f = shape(p).unwrap();
        let data = &p[hl..];
        let chunks: Vec<&[u8]> = data.chunks(usize::from(hdr.gso_size)).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut s = p[..hl].to_vec();
                s.extend_from_slice(chunk);
                let seq = f.seq.wrapping_add((i * usize::from(hdr.gso_size)) as u32);
                s[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
                if i != last {
                    s[ip + 13] &= !PSH;
                }
                let n = s.len();
                if ip == 20 {
                    s[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                    s[10..12].copy_from_slice(&[0, 0]);
                    let c = checksum(&s[..20]);
                    s[10..12].copy_from_slice(&c.to_be_bytes());
                } else {
                    s[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
                }
                let (info, _) = wire::parse_ip(&s).unwrap();
                let (src, dst) = (info.src, info.dst);
                let tcp_len = s.len() - ip;
                s[ip + 16..ip + 18].copy_from_slice(&[0, 0]);
                let c = finish(sum(
                    pseudo_header(&src, &dst, PROTO_TCP, tcp_len as u32),
                    &s[ip..],
                ));
                s[ip + 16..ip + 18].copy_from_slice(&c.to_be_bytes());
                s
            })
            .collect()
    }

    /// Plan `batch` and return what each write puts on the device, as the driver's
    /// `writev` gathers it.
    fn written(
        batch: Vec<Vec<u8>>,
        partial: bool,
        stats: &mut OffloadStats,
    ) -> Vec<(VnetHdr, Vec<u8>)> {
        let mut batch: Vec<Packet> = batch
            .into_iter()
            .map(|bytes| Packet {
                len: bytes.len(),
                bytes,
                segment_size: 0,
            })
            .collect();
        let mut writes = Vec::new();
        plan(&mut batch, partial, true, stats, &mut writes);
        writes
            .iter()
            .map(|w| {
                let mut p = batch[w.first].data().to_vec();
                for q in &batch[w.first + 1..w.end] {
                    p.extend_from_slice(&q.data()[w.hdr_len()..]);
                }
                (w.hdr, p)
            })
            .collect()
    }

    /// A packet the stack made with its checksum left partial.
    fn partial(mut p: Vec<u8>) -> Vec<u8> {
        let (info, _) = wire::parse_ip(&p).unwrap();
        let ip = if info.src.is_ipv4() { 20 } else { 40 };
        let pseudo = !finish(pseudo_header(
            &info.src,
            &info.dst,
            PROTO_TCP,
            (p.len() - ip) as u32,
        ));
        p[ip + 16..ip + 18].copy_from_slice(&pseudo.to_be_bytes());
        p
    }

    #[test]
    fn a_lone_segment_with_a_partial_checksum_asks_the_kernel_to_finish_it() {
        for v6 in [false, true] {
            let whole = segment(v6, 9, TcpFlags::ACK | TcpFlags::PSH, 100);
            let mut stats = OffloadStats::default();
            let out = written(vec![partial(whole.clone())], true, &mut stats);
            let (hdr, mut p) = out[0].clone();
            let ip = if v6 { 40 } else { 20 };
            assert_eq!((hdr.flags, hdr.gso_type), (F_NEEDS_CSUM, GSO_NONE));
            assert_eq!((hdr.csum_start, hdr.csum_offset), (ip, 16));
            // What the kernel does with it: sum from csum_start, store at the offset.
            let c = checksum(&p[ip as usize..]);
            p[usize::from(ip) + 16..usize::from(ip) + 18].copy_from_slice(&c.to_be_bytes());
            assert_eq!(p, whole);
            let mut captured = partial(whole.clone());
            complete_checksum(&mut captured);
            assert_eq!(captured, whole);
        }
    }

    #[test]
    fn a_run_of_full_segments_becomes_one_super_segment_the_kernel_can_cut_back() {
        for v6 in [false, true] {
            let mss = 1000;
            let originals: Vec<Vec<u8>> = (0..5)
                .map(|i| {
                    let flags = if i == 4 {
                        TcpFlags::ACK | TcpFlags::PSH
                    } else {
                        TcpFlags::ACK
                    };
                    segment(
                        v6,
                        1000 + i * mss as u32,
                        flags,
                        if i == 4 { 300 } else { mss },
                    )
                })
                .collect();
            // Whether the stack summed its segments or left that to the kernel.
            for sums in [true, false] {
                let batch = if sums {
                    originals.clone()
                } else {
                    originals.iter().cloned().map(partial).collect()
                };
                let mut stats = OffloadStats::default();
                let out = written(batch, !sums, &mut stats);
                assert_eq!(out.len(), 1, "v6={v6}");
                assert_eq!((stats.super_out, stats.segments_merged), (1, 5));
                let (hdr, p) = &out[0];
                assert_eq!(usize::from(hdr.gso_size), mss);
                // Cut back (as the kernel does), it gives exactly the stack's segments.
                assert_eq!(kernel_segments(*hdr, p), originals, "v6={v6}");
            }
        }
    }

    #[test]
    fn segments_that_differ_are_not_merged() {
        let a = segment(false, 1000, TcpFlags::ACK, 1000);
        let gap = segment(false, 2500, TcpFlags::ACK, 1000);
        let fin = segment(false, 3500, TcpFlags::ACK | TcpFlags::FIN, 1000);
        let short_first = segment(false, 10, TcpFlags::ACK, 10);
        let after_short = segment(false, 20, TcpFlags::ACK, 10);
        let after_short2 = segment(false, 30, TcpFlags::ACK, 10);
        let mut stats = OffloadStats::default();
        let out = written(
            vec![a, gap, fin, short_first, after_short, after_short2],
            false,
            &mut stats,
        );
        // gap: not contiguous; FIN: never merged; the three 10-byte ones do merge.
        assert_eq!(out.len(), 4);
        assert_eq!(stats.segments_merged, 3);
        assert!(out[..3].iter().all(|(h, _)| *h == PLAIN));
    }

    #[test]
    fn a_partial_checksum_from_the_kernel_is_trusted_and_completed_only_for_a_capture() {
        let p = segment(true, 5, TcpFlags::ACK, 3000);
        let mut partial = p.clone();
        let (info, _) = wire::parse_ip(&p).unwrap();
        let pseudo = !finish(pseudo_header(
            &info.src,
            &info.dst,
            PROTO_TCP,
            (p.len() - 40) as u32,
        ));
        partial[40 + 16..40 + 18].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 60,
            gso_size: 1000,
            csum_start: 40,
            csum_offset: 16,
        };
        let mut buf = hdr.to_bytes().to_vec();
        buf.extend_from_slice(&partial);
        let mut stats = OffloadStats::default();
        // Without a capture it is taken as it is, its checksum vouched for.
        let mut kept = buf.clone();
        let (range, verified) = inbound(&mut kept, &mut stats, false).unwrap();
        assert!(verified);
        assert_eq!(&kept[range], &partial[..]);
        let (range, verified) = inbound(&mut buf, &mut stats, true).unwrap();
        assert!(verified);
        assert_eq!(&buf[range], &p[..]);
        assert_eq!((stats.super_in, stats.checksums_completed), (2, 1));
        // A plain packet's checksum is the stack's to verify.
        let mut plain = PLAIN.to_bytes().to_vec();
        plain.extend_from_slice(&p);
        assert_eq!(
            inbound(&mut plain, &mut stats, false).map(|r| r.1),
            Some(false)
        );
        // A header pointing past the packet is refused, not trusted.
        let mut bad = VnetHdr {
            csum_start: 60000,
            ..hdr
        }
        .to_bytes()
        .to_vec();
        bad.extend_from_slice(&partial);
        assert_eq!(inbound(&mut bad, &mut stats, false), None);
        assert_eq!(inbound(&mut [0u8; 4], &mut stats, false), None);
        assert_eq!(stats.bad_headers, 2);
    }
}
