//! TCP options (RFC 9293 3.1 MSS, RFC 7323 window scale and timestamps, RFC 2018 SACK,
//! RFC 7413 Fast Open, RFC 2385 MD5 signatures): parsing with unknown options skipped by
//! length, and emission in Linux's layouts.

use super::{SeqNum, WireError};

const EOL: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const WSCALE: u8 = 3;
const SACK_PERMITTED: u8 = 4;
const SACK: u8 = 5;
const TIMESTAMPS: u8 = 8;
/// RFC 2385 §3.0: the MD5 signature option (kind 19, length 18: a 16-byte digest).
pub(crate) const MD5SIG: u8 = 19;
/// Its length byte.
pub(crate) const MD5SIG_LEN: usize = 18;
/// The bytes it takes as Linux writes it: `nop,nop,md5` (TCPOLEN_MD5SIG_ALIGNED).
pub const MD5SIG_ALIGNED_LEN: usize = 20;
/// RFC 7413 4.1.1: the Fast Open option.
const FAST_OPEN: u8 = 34;
/// RFC 6994 shared experimental option, which Linux also speaks for Fast Open (with the
/// magic 0xF989, as before kind 34 was assigned).
const EXPERIMENTAL: u8 = 254;
const FAST_OPEN_MAGIC: [u8; 2] = [0xF9, 0x89];

/// The longest TCP option area (a 60-byte header less the 20 fixed bytes).
pub const MAX_OPTIONS_LEN: usize = 40;

/// The TCP Fast Open option (RFC 7413 4.1.1): a cookie of 4 to 16 bytes (even), or none
/// at all, which asks the server for one. `experimental` marks the older form Linux
/// still accepts and sends to servers that answered it (kind 254, magic 0xF989).
///
/// # Examples
///
/// ```
/// use synack::wire::{FastOpenCookie, TcpOptions};
/// let mut options = TcpOptions::default();
/// options.fast_open = FastOpenCookie::new(&[0xab, 0xcd, 0x12, 0x34], false);
/// let mut bytes = vec![0u8; options.emitted_len(true)];
/// options.emit(&mut bytes, true).unwrap();
/// // kind 34, length 6, the cookie, then two NOPs to a 32-bit boundary.
/// assert_eq!(bytes, [34, 6, 0xab, 0xcd, 0x12, 0x34, 1, 1]);
/// assert_eq!(TcpOptions::parse(&bytes).unwrap(), options);
/// assert!(FastOpenCookie::request(false).is_request());
/// assert_eq!(FastOpenCookie::new(&[1, 2, 3], false), None); // odd: not a cookie
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FastOpenCookie {
    len: u8,
    bytes: [u8; 16],
    /// Sent (or received) as the experimental option 254 with magic 0xF989.
    pub experimental: bool,
}

impl FastOpenCookie {
    /// The shortest and longest cookies (RFC 7413 4.1.1).
    pub const MIN_LEN: usize = 4;
    /// See [`FastOpenCookie::MIN_LEN`].
    pub const MAX_LEN: usize = 16;

    /// A cookie request: the option with no cookie.
    pub fn request(experimental: bool) -> FastOpenCookie {
        FastOpenCookie {
            experimental,
            ..FastOpenCookie::default()
        }
    }

    /// A cookie, or None when `bytes` is not 4 to 16 bytes long and even (RFC 7413
    /// 4.1.1; Linux ignores such an option).
    pub fn new(bytes: &[u8], experimental: bool) -> Option<FastOpenCookie> {
        let len = bytes.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) || len % 2 != 0 {
            return None;
        }
        let mut c = FastOpenCookie::request(experimental);
        c.bytes[..len].copy_from_slice(bytes);
        c.len = len as u8;
        Some(c)
    }

    /// The cookie (empty for a request).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// No cookie: a request for one.
    pub fn is_request(&self) -> bool {
        self.len == 0
    }

    /// The option's length byte.
    fn option_len(&self) -> usize {
        usize::from(self.len) + if self.experimental { 4 } else { 2 }
    }

    /// Parse the data of option `kind` (None: not a Fast Open option, or malformed).
    fn parse(kind: u8, data: &[u8]) -> Option<FastOpenCookie> {
        let (cookie, experimental) = match kind {
            FAST_OPEN => (data, false),
            EXPERIMENTAL if data.len() >= 2 && data[..2] == FAST_OPEN_MAGIC => (&data[2..], true),
            _ => return None,
        };
        if cookie.is_empty() {
            Some(FastOpenCookie::request(experimental))
        } else {
            FastOpenCookie::new(cookie, experimental)
        }
    }
}

/// RFC 7323 3.2: TSval and TSecr.
///
/// # Examples
///
/// ```
/// use synack::wire::{TcpOptions, Timestamps};
/// let mut options = TcpOptions::default();
/// options.timestamps = Some(Timestamps { tsval: 5, tsecr: 0 });
/// let mut bytes = vec![0u8; options.emitted_len(false)];
/// options.emit(&mut bytes, false).unwrap();
/// assert_eq!(TcpOptions::parse(&bytes).unwrap().timestamps, options.timestamps);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// The sender's timestamp clock.
    pub tsval: u32,
    /// The most recent TSval received from the peer.
    pub tsecr: u32,
}

/// Up to four SACK blocks (RFC 2018 3), without allocation.
///
/// # Examples
///
/// ```
/// use synack::wire::{SackBlocks, SeqNum};
/// let mut blocks = SackBlocks::default();
/// assert!(blocks.push((SeqNum::new(100), SeqNum::new(200))));
/// assert_eq!(blocks.len(), 1);
/// assert_eq!(blocks.as_slice()[0].1, SeqNum::new(200));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); 4],
    len: u8,
}

impl SackBlocks {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append a (left edge, right edge) block; false when four are already held.
    pub fn push(&mut self, block: (SeqNum, SeqNum)) -> bool {
        if self.len as usize >= self.blocks.len() {
            return false;
        }
        self.blocks[self.len as usize] = block;
        self.len += 1;
        true
    }

    /// The blocks, first to last.
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        &self.blocks[..self.len as usize]
    }

    /// Iterate over the blocks.
    pub fn iter(&self) -> impl Iterator<Item = &(SeqNum, SeqNum)> {
        self.as_slice().iter()
    }
}

/// The options synack understands; everything else is skipped.
///
/// # Examples
///
/// ```
/// use synack::wire::TcpOptions;
/// let mut options = TcpOptions::default();
/// options.mss = Some(1460);
/// options.window_scale = Some(7);
/// options.sack_permitted = true;
/// // A SYN's options, padded to whole 32-bit words.
/// let mut bytes = vec![0u8; options.emitted_len(true)];
/// options.emit(&mut bytes, true).unwrap();
/// assert_eq!(bytes.len() % 4, 0);
/// assert_eq!(TcpOptions::parse(&bytes).unwrap(), options);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift, raw as received (the engine clamps above 14: RFC 7323 2.3).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// SACK blocks.
    pub sack_blocks: SackBlocks,
    /// Timestamps.
    pub timestamps: Option<Timestamps>,
    /// TCP Fast Open cookie or cookie request (SYN and SYN-ACK only; RFC 7413).
    pub fast_open: Option<FastOpenCookie>,
    /// The TCP-MD5 signature option's digest (RFC 2385). Emitted first, as Linux does
    /// (`nop,nop,md5`); the stack fills the digest once the packet is built
    /// ([`crate::wire::sign_tcp_md5`]).
    pub md5: Option<[u8; 16]>,
    /// An MD5 option of the wrong length, or more than one (Linux's
    /// tcp_parse_auth_options refuses the segment: SKB_DROP_REASON_TCP_AUTH_HDR).
    pub md5_malformed: bool,
}

impl TcpOptions {
    /// Parse an option area. Unknown options are skipped by their length; a known option
    /// with the wrong length is ignored (as Linux does). A length byte that is missing,
    /// below 2, or runs past the end is an error.
    pub fn parse(mut bytes: &[u8]) -> Result<TcpOptions, WireError> {
        let mut o = TcpOptions::default();
        while let Some(&kind) = bytes.first() {
            match kind {
                EOL => break,
                NOP => {
                    bytes = &bytes[1..];
                    continue;
                }
                _ => {}
            }
            let len = *bytes.get(1).ok_or(WireError::BadOption)? as usize;
            if len < 2 || len > bytes.len() {
                return Err(WireError::BadOption);
            }
            let data = &bytes[2..len];
            match (kind, len) {
                (MSS, 4) => o.mss = Some(u16::from_be_bytes([data[0], data[1]])),
                (WSCALE, 3) => o.window_scale = Some(data[0]),
                (SACK_PERMITTED, 2) => o.sack_permitted = true,
                (SACK, l) if l >= 10 && (l - 2) % 8 == 0 => {
                    for c in data.chunks_exact(8) {
                        let left = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                        let right = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
                        o.sack_blocks.push((SeqNum::new(left), SeqNum::new(right)));
                    }
                }
                (FAST_OPEN | EXPERIMENTAL, _) => {
                    if let Some(c) = FastOpenCookie::parse(kind, data) {
                        o.fast_open = Some(c);
                    }
                }
                (MD5SIG, l) => {
                    // Linux's tcp_do_parse_auth_options: one option of length 18.
                    if l != MD5SIG_LEN || o.md5.is_some() {
                        o.md5_malformed = true;
                    } else {
                        let mut digest = [0u8; 16];
                        digest.copy_from_slice(data);
                        o.md5 = Some(digest);
                    }
                }
                (TIMESTAMPS, 10) => {
                    o.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                        tsecr: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
                    })
                }
                _ => {}
            }
            bytes = &bytes[len..];
        }
        Ok(o)
    }

    /// Bytes [`TcpOptions::emit`] writes (a multiple of 4, at most 40).
    pub fn emitted_len(&self, syn: bool) -> usize {
        let mut n = if self.md5.is_some() {
            MD5SIG_ALIGNED_LEN
        } else {
            0
        };
        if syn {
            if self.mss.is_some() {
                n += 4;
            }
            n += match (self.sack_permitted, self.timestamps.is_some()) {
                (true, true) => 12,
                (false, true) => 12,
                (true, false) => 4,
                (false, false) => 0,
            };
            if self.window_scale.is_some() {
                n += 4;
            }
            n += self.fast_open_len(n);
        } else if self.timestamps.is_some() {
            n += 12;
        }
        let room = (MAX_OPTIONS_LEN - n).saturating_sub(4) / 8;
        let blocks = self.sack_blocks.len().min(room);
        if blocks > 0 {
            n += 4 + 8 * blocks;
        }
        n
    }

    /// The Fast Open option's bytes, padded, when it fits after `used` bytes (else 0).
    fn fast_open_len(&self, used: usize) -> usize {
        let need = self
            .fast_open
            .map_or(0, |fo| fo.option_len().div_ceil(4) * 4);
        if used + need <= MAX_OPTIONS_LEN {
            need
        } else {
            0
        }
    }

    /// Write the options in Linux's layouts; `buf` must be `emitted_len(syn)` long.
    /// SYN: `mss | sackOK TS | nop wscale | FO cookie` (Linux's `mss,sackOK,TS,nop,wscale,FO`), with
    /// `nop nop` padding where an option is absent; others: `nop nop TS`, then SACK blocks.
    /// An MD5 signature comes first of all, as `nop nop md5` (Linux's tcp_options_write).
    pub fn emit(&self, buf: &mut [u8], syn: bool) -> Result<(), WireError> {
        if buf.len() != self.emitted_len(syn) {
            return Err(WireError::Truncated);
        }
        let mut w = Writer { buf, at: 0 };
        if let Some(digest) = self.md5 {
            w.put(&[NOP, NOP, MD5SIG, MD5SIG_LEN as u8]);
            w.put(&digest);
        }
        if syn {
            if let Some(mss) = self.mss {
                w.put(&[MSS, 4]);
                w.put(&mss.to_be_bytes());
            }
            match (self.sack_permitted, self.timestamps) {
                (true, Some(ts)) => {
                    w.put(&[SACK_PERMITTED, 2]);
                    w.timestamps(ts);
                }
                (false, Some(ts)) => {
                    w.put(&[NOP, NOP]);
                    w.timestamps(ts);
                }
                (true, None) => w.put(&[NOP, NOP, SACK_PERMITTED, 2]),
                (false, None) => {}
            }
            if let Some(ws) = self.window_scale {
                w.put(&[NOP, WSCALE, 3, ws]);
            }
            if let Some(fo) = self.fast_open.filter(|_| self.fast_open_len(w.at) > 0) {
                // Linux's tcp_options_write: the option, then NOPs to a 32-bit boundary.
                let len = fo.option_len();
                if fo.experimental {
                    w.put(&[EXPERIMENTAL, len as u8]);
                    w.put(&FAST_OPEN_MAGIC);
                } else {
                    w.put(&[FAST_OPEN, len as u8]);
                }
                w.put(fo.as_bytes());
                while w.at % 4 != 0 {
                    w.put(&[NOP]);
                }
            }
        } else if let Some(ts) = self.timestamps {
            w.put(&[NOP, NOP]);
            w.timestamps(ts);
        }
        let room = (MAX_OPTIONS_LEN - w.at).saturating_sub(4) / 8;
        let blocks = &self.sack_blocks.as_slice()[..self.sack_blocks.len().min(room)];
        if !blocks.is_empty() {
            w.put(&[NOP, NOP, SACK, (2 + 8 * blocks.len()) as u8]);
            for (l, r) in blocks {
                w.put(&l.get().to_be_bytes());
                w.put(&r.get().to_be_bytes());
            }
        }
        Ok(())
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn timestamps(&mut self, ts: Timestamps) {
        self.put(&[TIMESTAMPS, 10]);
        self.put(&ts.tsval.to_be_bytes());
        self.put(&ts.tsecr.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_syn() -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 0x01020304,
                tsecr: 0,
            }),
            ..TcpOptions::default()
        }
    }

    #[test]
    fn syn_options_use_linux_layout_byte_for_byte() {
        let o = full_syn();
        let mut b = vec![0u8; o.emitted_len(true)];
        o.emit(&mut b, true).unwrap();
        assert_eq!(
            b,
            [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7],
            "mss,sackOK,TS,nop,wscale"
        );
        assert_eq!(TcpOptions::parse(&b).unwrap(), o);
    }

    #[test]
    fn data_segment_options_round_trip_with_sack_blocks() {
        let mut o = TcpOptions {
            timestamps: Some(Timestamps { tsval: 9, tsecr: 8 }),
            ..TcpOptions::default()
        };
        for i in 0..4 {
            o.sack_blocks
                .push((SeqNum::new(i * 100), SeqNum::new(i * 100 + 50)));
        }
        let n = o.emitted_len(false);
        assert_eq!(n, 12 + 4 + 8 * 3, "only three blocks fit beside timestamps");
        let mut b = vec![0u8; n];
        o.emit(&mut b, false).unwrap();
        let p = TcpOptions::parse(&b).unwrap();
        assert_eq!(p.timestamps, o.timestamps);
        assert_eq!(p.sack_blocks.as_slice(), &o.sack_blocks.as_slice()[..3]);
    }

    #[test]
    fn unknown_options_are_skipped_by_length() {
        let b = [30, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4];
        assert_eq!(TcpOptions::parse(&b).unwrap().mss, Some(1460));
    }

    #[test]
    fn option_running_past_header_is_rejected() {
        assert_eq!(
            TcpOptions::parse(&[2, 4, 5]).unwrap_err(),
            WireError::BadOption
        );
        assert_eq!(TcpOptions::parse(&[8]).unwrap_err(), WireError::BadOption);
    }

    #[test]
    fn option_length_below_two_is_rejected() {
        assert_eq!(
            TcpOptions::parse(&[30, 0, 1, 1]).unwrap_err(),
            WireError::BadOption
        );
        assert_eq!(
            TcpOptions::parse(&[30, 1, 1, 1]).unwrap_err(),
            WireError::BadOption
        );
    }

    #[test]
    fn known_option_with_wrong_length_is_ignored() {
        let o = TcpOptions::parse(&[2, 3, 5, 1, 0, 0]).unwrap();
        assert_eq!(o.mss, None);
    }

    #[test]
    fn eol_ends_parsing() {
        let o = TcpOptions::parse(&[0, 2, 4, 5, 0xb4]).unwrap();
        assert_eq!(o, TcpOptions::default());
    }

    #[test]
    fn fast_open_option_follows_linux_syn_layout() {
        // Linux: <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 8,FO abcd1234,nop,nop>.
        let mut o = full_syn();
        o.fast_open = FastOpenCookie::new(&[0xab, 0xcd, 0x12, 0x34], false);
        let mut b = vec![0u8; o.emitted_len(true)];
        o.emit(&mut b, true).unwrap();
        assert_eq!(b.len(), 28);
        assert_eq!(&b[20..], &[34, 6, 0xab, 0xcd, 0x12, 0x34, NOP, NOP]);
        assert_eq!(TcpOptions::parse(&b).unwrap(), o);
        // A request is `FO,nop,nop`; the experimental request `FOEXP` is 4 bytes.
        o.fast_open = Some(FastOpenCookie::request(false));
        let mut b = vec![0u8; o.emitted_len(true)];
        o.emit(&mut b, true).unwrap();
        assert_eq!(&b[20..], &[34, 2, NOP, NOP]);
        o.fast_open = Some(FastOpenCookie::request(true));
        let mut b = vec![0u8; o.emitted_len(true)];
        o.emit(&mut b, true).unwrap();
        assert_eq!(&b[20..], &[254, 4, 0xF9, 0x89]);
        assert_eq!(TcpOptions::parse(&b).unwrap(), o);
    }

    #[test]
    fn an_md5_option_is_read_and_a_bad_or_second_one_marked_malformed() {
        let mut b = vec![NOP, NOP, MD5SIG, 18];
        b.extend(1..=16u8);
        let o = TcpOptions::parse(&b).unwrap();
        assert_eq!(o.md5, Some(core::array::from_fn(|i| i as u8 + 1)));
        assert!(!o.md5_malformed);
        // Linux's tcp_do_parse_auth_options: a second MD5 option, or one of another
        // length, makes the segment's options unacceptable (the stack drops it).
        let mut twice = b.clone();
        twice.extend_from_slice(&b[2..]);
        assert!(TcpOptions::parse(&twice).unwrap().md5_malformed);
        let short = [MD5SIG, 6, 1, 2, 3, 4, NOP, NOP];
        let o = TcpOptions::parse(&short).unwrap();
        assert!(o.md5_malformed && o.md5.is_none());
    }

    #[test]
    fn fast_open_option_with_bad_length_or_magic_is_ignored() {
        // An odd cookie length, a 2-byte cookie, and kind 254 with another magic.
        for bytes in [
            &[34, 5, 1, 2, 3, NOP][..],
            &[34, 4, 1, 2],
            &[254, 8, 0x12, 0x34, 1, 2, 3, 4],
        ] {
            assert_eq!(
                TcpOptions::parse(bytes).unwrap().fast_open,
                None,
                "{bytes:?}"
            );
        }
    }
}
