//! Packet capture in the classic pcap format (what tcpdump writes and Wireshark reads),
//! with the raw IP link type: each record is an IPv4 or IPv6 packet exactly as synack
//! sent or received it, stamped with the time it happened (virtual time in the
//! simulator, the wall clock on a TUN device).

use std::io::{self, Write};

#[cfg(feature = "sim")]
use crate::sim::PacketRecord;
use crate::Instant;

/// LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;

/// The largest packet kept whole (longer ones are cut, with their original length noted).
pub const SNAPLEN: u32 = 262_144;

/// Writes a pcap stream: the file header at creation, then one record per packet.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use synack::sim::{LinkConfig, Network};
/// # use synack::{Config, Instant, Stack, TcpState};
/// # fn host(addr: &str) -> Stack {
/// #     let mut stack = Stack::new(Config::deterministic(1));
/// #     stack.add_address(addr.parse().unwrap());
/// #     stack
/// # }
/// # let mut net: Network<Stack> = Network::new(7);
/// # let client = net.add_host("client", &["198.18.0.1".parse().unwrap()], host("198.18.0.1"));
/// # let server = net.add_host("server", &["198.18.0.2".parse().unwrap()], host("198.18.0.2"));
/// # net.host_mut(server).listen("198.18.0.2:80".parse().unwrap(), 128).unwrap();
/// # let conn = net.host_mut(client).connect(Instant::ZERO, "198.18.0.2:80".parse().unwrap()).unwrap();
/// # net.flush();
/// # net.run_for(Duration::from_millis(100));
/// # use synack::trace::Trace;
/// # let mut trace = Trace::new(&["client", "server"]);
/// # trace.add_packets(net.log());
/// # for (i, id) in [client, server].into_iter().enumerate() {
/// #     while let Some(event) = net.host_mut(id).poll_event() { trace.add_event(i, &event); }
/// # }
/// # trace.sort();
/// use synack::trace::pcap::PcapWriter;
/// let mut pcap = PcapWriter::new(Vec::new()).unwrap();
/// for record in net.log() {
///     pcap.write_packet(record.sent_at.as_micros(), &record.bytes).unwrap();
/// }
/// let bytes = pcap.into_inner();
/// assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes()); // the pcap magic
/// ```
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Start a capture: writes the pcap file header (microsecond timestamps, raw IP).
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?; // magic: microseconds, little-endian
        out.write_all(&2u16.to_le_bytes())?; // version 2.4
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone: UTC
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&SNAPLEN.to_le_bytes())?;
        out.write_all(&LINKTYPE_RAW.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// One packet, `micros` after the Unix epoch (or after the simulation's start).
    pub fn write_packet(&mut self, micros: u64, packet: &[u8]) -> io::Result<()> {
        let kept = packet.len().min(SNAPLEN as usize);
        self.out
            .write_all(&((micros / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((micros % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&(kept as u32).to_le_bytes())?;
        self.out.write_all(&(packet.len() as u32).to_le_bytes())?;
        self.out.write_all(&packet[..kept])
    }

    /// Push what is buffered to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Microseconds of a virtual instant, for a capture of a simulated run.
pub fn micros(at: Instant) -> u64 {
    (at - Instant::ZERO).as_micros() as u64
}

/// A capture of a simulated run: every packet as it left its sender (lost ones
/// included: the capture point is the sender's interface), in sending order.
#[cfg(feature = "sim")]
pub fn write_sim<W: Write>(out: W, packets: &[PacketRecord]) -> io::Result<W> {
    let mut w = PcapWriter::new(out)?;
    for p in packets {
        w.write_packet(micros(p.sent_at), &p.bytes)?;
    }
    w.flush()?;
    Ok(w.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_a_record_have_pcaps_layout() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1_500_000, &[0x45, 0, 0, 20]).unwrap();
        let b = w.into_inner();
        assert_eq!(b.len(), 24 + 16 + 4);
        assert_eq!(&b[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(b[20..24].try_into().unwrap()),
            LINKTYPE_RAW
        );
        // ts_sec 1, ts_usec 500000, incl_len 4, orig_len 4.
        let rec: Vec<u32> = b[24..40]
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(rec, [1, 500_000, 4, 4]);
        assert_eq!(&b[40..], &[0x45, 0, 0, 20]);
    }
}
