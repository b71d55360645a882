//! IPv6 headers (RFC 8200): a typed view, a representation, and extension-header walking.

use core::net::Ipv6Addr;

use super::WireError;

/// The fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet.
///
/// # Examples
///
/// ```
/// use synack::wire::{Ipv6Packet, Ipv6Repr};
/// let header = Ipv6Repr {
///     src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap(),
///     next_header: 59, payload_len: 0, hop_limit: 64, // 59: no next header
/// };
/// let mut buf = [0u8; 40];
/// header.emit(&mut buf).unwrap();
/// let view = Ipv6Packet::new_checked(&buf[..]).unwrap();
/// assert_eq!((view.version(), view.hop_limit(), view.next_header()), (6, 64, 59));
/// assert_eq!(Ipv6Repr::parse(&view).unwrap(), header);
/// assert_eq!(view.unfragmentable_part().unwrap(), None); // no Fragment header
/// ```
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap bytes without checking them.
    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wrap bytes whose fixed header and payload length fit the buffer.
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, WireError> {
        let p = Ipv6Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Check version and payload length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if HEADER_LEN + self.payload_len() as usize > b.len() {
            return Err(WireError::BadPayloadLength);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version field (6).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (self.b()[0] << 4) | (self.b()[1] >> 4)
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.b()[1] & 0x0f, self.b()[2], self.b()[3]])
    }

    /// Length of everything after the fixed header.
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.b()[4], self.b()[5]])
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[8..24]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[24..40]);
        Ipv6Addr::from(a)
    }

    /// Everything after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }

    /// Walk extension headers (RFC 8200 4): skip hop-by-hop (0), routing (43) and
    /// destination options (60); a fragment header (44) means a fragment. Returns the
    /// upper-layer protocol and its bytes.
    pub fn upper_layer(&self) -> Result<(u8, &[u8]), WireError> {
        let (proto, range) = self.upper_layer_range()?;
        Ok((proto, &self.b()[range]))
    }

    /// Like [`Ipv6Packet::upper_layer`], as a byte range of the buffer.
    pub fn upper_layer_range(&self) -> Result<(u8, core::ops::Range<usize>), WireError> {
        match self.walk()? {
            Walk::Upper(proto, range) => Ok((proto, range)),
            Walk::Fragment(_) => Err(WireError::Fragmented),
        }
    }

    /// Where the Fragment header is, if the packet has one (RFC 8200 4.5): right after the
    /// fixed header, or after hop-by-hop, routing and destination options headers.
    pub fn unfragmentable_part(&self) -> Result<Option<UnfragmentablePart>, WireError> {
        match self.walk()? {
            Walk::Upper(..) => Ok(None),
            Walk::Fragment(part) => Ok(Some(part)),
        }
    }

    fn walk(&self) -> Result<Walk, WireError> {
        let end = HEADER_LEN + self.payload_len() as usize;
        let mut next = self.next_header();
        let mut next_header_at = 6;
        let mut at = HEADER_LEN;
        loop {
            let rest = &self.b()[at..end];
            match next {
                0 | 43 | 60 => {
                    if rest.len() < 8 {
                        return Err(WireError::Truncated);
                    }
                    let len = (rest[1] as usize + 1) * 8;
                    if len > rest.len() {
                        return Err(WireError::Truncated);
                    }
                    next = rest[0];
                    next_header_at = at;
                    at += len;
                }
                NEXT_HEADER_FRAGMENT => {
                    if rest.len() < FRAGMENT_HEADER_LEN {
                        return Err(WireError::Truncated);
                    }
                    return Ok(Walk::Fragment(UnfragmentablePart {
                        len: at,
                        next_header_at,
                    }));
                }
                other => return Ok(Walk::Upper(other, at..end)),
            }
        }
    }
}

enum Walk {
    Upper(u8, core::ops::Range<usize>),
    Fragment(UnfragmentablePart),
}

/// Next-header number of the IPv6 Fragment header (RFC 8200 4.5).
pub const NEXT_HEADER_FRAGMENT: u8 = 44;
/// Length of the IPv6 Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// The Unfragmentable Part of a fragment (RFC 8200 4.5): the IPv6 header and the extension
/// headers before the Fragment header, which follows it at offset `len`.
///
/// # Examples
///
/// ```
/// use synack::wire::{self, Ipv6Packet, SeqNum, TcpFlags, TcpRepr};
/// let segment = TcpRepr {
///     src_port: 1, dst_port: 2, seq: SeqNum::new(0), ack: SeqNum::new(0),
///     flags: TcpFlags::ACK, window: 0, urgent: 0, options: Default::default(), payload: &[0u8; 32],
/// };
/// let packet = wire::emit_tcp_packet("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), 64, &segment).unwrap();
/// let fragments = wire::fragment_packet(&packet, &[24], 1);
/// let part = Ipv6Packet::new_checked(&fragments[0][..]).unwrap().unfragmentable_part().unwrap().unwrap();
/// assert_eq!((part.len, part.next_header_at), (40, 6)); // the Fragment header follows the fixed header
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnfragmentablePart {
    /// Its length in bytes: where the Fragment header starts.
    pub len: usize,
    /// Where the Next Header field that names the Fragment header is: 6 in the fixed header,
    /// else the first byte of the extension header before it.
    pub next_header_at: usize,
}

/// A view of an IPv6 Fragment header (RFC 8200 4.5): next header, fragment offset, M flag
/// and identification, in 8 bytes.
///
/// # Examples
///
/// ```
/// use synack::wire::Ipv6FragmentHeader;
/// let mut bytes = [0u8; 8];
/// let mut header = Ipv6FragmentHeader::new_checked(&mut bytes[..]).unwrap();
/// header.set_next_header(6);
/// header.set_frag_offset(1232);
/// header.set_more_frags(true);
/// header.set_ident(42);
/// assert_eq!((header.next_header(), header.frag_offset(), header.more_frags(), header.ident()), (6, 1232, true, 42));
/// ```
#[derive(Debug, Clone)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    /// Wrap bytes without checking them (accessors panic if fewer than 8).
    pub fn new_unchecked(buffer: T) -> Ipv6FragmentHeader<T> {
        Ipv6FragmentHeader { buffer }
    }

    /// Wrap bytes that hold at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Ipv6FragmentHeader<T>, WireError> {
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Ipv6FragmentHeader { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The first header of the Fragmentable Part (the upper-layer protocol, or an
    /// extension header).
    pub fn next_header(&self) -> u8 {
        self.b()[0]
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]]) & 0xfff8
    }

    /// The M flag: more fragments follow.
    pub fn more_frags(&self) -> bool {
        self.b()[3] & 1 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        u32::from_be_bytes([self.b()[4], self.b()[5], self.b()[6], self.b()[7]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragmentHeader<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set the next header (and clear the reserved byte after it).
    pub fn set_next_header(&mut self, next: u8) {
        self.bm()[0] = next;
        self.bm()[1] = 0;
    }

    /// Set the fragment offset in bytes (rounded down to a multiple of 8; M is kept).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let m = u16::from(self.b()[3] & 1);
        self.bm()[2..4].copy_from_slice(&((offset & 0xfff8) | m).to_be_bytes());
    }

    /// Set or clear the M flag.
    pub fn set_more_frags(&mut self, more: bool) {
        self.bm()[3] = (self.b()[3] & !1) | u8::from(more);
    }

    /// Set the identification.
    pub fn set_ident(&mut self, ident: u32) {
        self.bm()[4..8].copy_from_slice(&ident.to_be_bytes());
    }
}

/// The fields of an IPv6 header that synack uses.
///
/// # Examples
///
/// ```
/// use synack::wire::Ipv6Repr;
/// let header = Ipv6Repr {
///     src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap(),
///     next_header: 6, payload_len: 20, hop_limit: 64,
/// };
/// let mut buf = [0u8; 40];
/// header.emit(&mut buf).unwrap();
/// assert_eq!(buf[0] >> 4, 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header (upper-layer protocol; synack emits no extension headers).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Read a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr, WireError> {
        p.check_len()?;
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
        })
    }

    /// Write the 40-byte fixed header into `buf[..40]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = u16::try_from(self.payload_len).map_err(|_| WireError::BadPayloadLength)?;
        let b = &mut buf[..HEADER_LEN];
        b.fill(0);
        b[0] = 0x60;
        b[4..6].copy_from_slice(&len.to_be_bytes());
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src.octets());
        b[24..40].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8], next: u8) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 64,
        }
        .emit(&mut b)
        .unwrap();
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    #[test]
    fn emitted_header_parses_back() {
        let b = sample(&[1, 2, 3, 4], 6);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r.dst, "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper_layer().unwrap(), (6, &[1u8, 2, 3, 4][..]));
    }

    #[test]
    fn extension_headers_are_skipped_and_fragments_reported() {
        // hop-by-hop (8 bytes) then TCP
        let mut ext = vec![6u8, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[9, 9]);
        let b = sample(&ext, 0);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap(), (6, &[9u8, 9][..]));
        let b = sample(&[6, 0, 0, 0, 0, 0, 0, 0], 44);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer()
                .unwrap_err(),
            WireError::Fragmented
        );
        let b = sample(&[6, 5, 0], 60);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer()
                .unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn the_fragment_header_is_found_after_extension_headers() {
        // destination options (8 bytes), then the Fragment header, then 4 bytes of data
        let mut payload = vec![NEXT_HEADER_FRAGMENT, 0, 0, 0, 0, 0, 0, 0];
        let mut frag = [0u8; FRAGMENT_HEADER_LEN];
        let mut h = Ipv6FragmentHeader::new_unchecked(&mut frag[..]);
        h.set_next_header(6);
        h.set_more_frags(true);
        h.set_frag_offset(1232);
        h.set_ident(0xdead_beef);
        payload.extend_from_slice(&frag);
        payload.extend_from_slice(&[1, 2, 3, 4]);
        let b = sample(&payload, 60);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.upper_layer().unwrap_err(), WireError::Fragmented);
        let part = p.unfragmentable_part().unwrap().unwrap();
        assert_eq!(
            part,
            UnfragmentablePart {
                len: HEADER_LEN + 8,
                next_header_at: HEADER_LEN
            }
        );
        let h = Ipv6FragmentHeader::new_checked(&b[part.len..]).unwrap();
        assert_eq!(
            (h.next_header(), h.frag_offset(), h.more_frags(), h.ident()),
            (6, 1232, true, 0xdead_beef)
        );
        // A Fragment header cut short.
        let b = sample(&[6, 0, 0, 0], NEXT_HEADER_FRAGMENT);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.unfragmentable_part().unwrap_err(), WireError::Truncated);
        // No Fragment header.
        let b = sample(&[1, 2], 6);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.unfragmentable_part().unwrap(), None);
    }

    #[test]
    fn payload_length_beyond_the_buffer_is_rejected() {
        let mut b = sample(&[1, 2], 6);
        b[5] = 50;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadPayloadLength
        );
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            WireError::BadVersion
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..30]).unwrap_err(),
            WireError::Truncated
        );
    }
}
