//! TEMPORARY stub of the wire API (replaced by the real module on merge).
#![allow(missing_docs, dead_code, unused_variables)]
use std::net::IpAddr;
use std::ops::{Add, AddAssign, BitOr, BitOrAssign, Sub};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNum(u32);
impl SeqNum {
    pub const fn new(v: u32) -> Self {
        SeqNum(v)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
    pub fn max(self, o: SeqNum) -> SeqNum {
        if self > o {
            self
        } else {
            o
        }
    }
    pub fn min(self, o: SeqNum) -> SeqNum {
        if self < o {
            self
        } else {
            o
        }
    }
    pub fn in_range(self, s: SeqNum, e: SeqNum) -> bool {
        s <= self && self < e
    }
}
impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}
impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n)
    }
}
impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}
impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    fn sub(self, o: SeqNum) -> i32 {
        self.0.wrapping_sub(o.0) as i32
    }
}
impl PartialOrd for SeqNum {
    fn partial_cmp(&self, o: &SeqNum) -> Option<std::cmp::Ordering> {
        Some((*self - *o).cmp(&0))
    }
}
impl std::fmt::Display for SeqNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TcpFlags(u8);
impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(1);
    pub const SYN: TcpFlags = TcpFlags(2);
    pub const RST: TcpFlags = TcpFlags(4);
    pub const PSH: TcpFlags = TcpFlags(8);
    pub const ACK: TcpFlags = TcpFlags(16);
    pub const URG: TcpFlags = TcpFlags(32);
    pub const fn empty() -> Self {
        TcpFlags(0)
    }
    pub fn contains(self, f: TcpFlags) -> bool {
        self.0 & f.0 == f.0
    }
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn from_bits(b: u8) -> Self {
        TcpFlags(b)
    }
    pub fn short(&self) -> String {
        String::new()
    }
}
impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
}
impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, o: TcpFlags) {
        self.0 |= o.0
    }
}
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SackBlocks {
    n: u8,
}
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack_blocks: SackBlocks,
    pub timestamps: Option<Timestamps>,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}
impl TcpRepr<'_> {
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn() as u32 + self.flags.fin() as u32
    }
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireError {
    Truncated,
    BadVersion,
    BadIhl,
    BadTotalLength,
    BadPayloadLength,
    BadIpChecksum,
    Fragmented,
    UnsupportedProtocol(u8),
    BadDataOffset,
    BadTcpChecksum,
    BadOption,
    AddressFamilyMismatch,
}
impl WireError {
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub ttl: u8,
}
pub fn parse_tcp_packet(packet: &[u8]) -> Result<(IpInfo, TcpRepr<'_>), WireError> {
    todo!()
}
pub fn emit_tcp_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tcp: &TcpRepr,
) -> Result<Vec<u8>, WireError> {
    todo!()
}
