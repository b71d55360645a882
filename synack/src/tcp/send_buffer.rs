//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//! Offset 0 is SND.UNA (or ISS+1 before the handshake completes).

use std::collections::VecDeque;

/// Unacknowledged and unsent bytes, bounded by a capacity.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    data: VecDeque<u8>,
    capacity: usize,
}

impl SendBuffer {
    pub(crate) fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            data: VecDeque::new(),
            capacity,
        }
    }

    /// Change the capacity (bytes already queued stay, even beyond it).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Bytes held (sent-but-unacknowledged plus unsent).
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Room left for the application.
    pub(crate) fn free(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// Append as much of `bytes` as fits; returns how much was taken.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        self.data.extend(&bytes[..n]);
        n
    }

    /// Let `fill` write up to `max` bytes (bounded by the free room) directly after the
    /// queued data; keep the `n` it reports writing.
    pub(crate) fn write_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> usize {
        let old = self.data.len();
        let room = self.free().min(max);
        if room == 0 {
            return 0;
        }
        self.data.resize(old + room, 0);
        self.data.make_contiguous();
        let n = fill(&mut self.data.as_mut_slices().0[old..]).min(room);
        self.data.truncate(old + n);
        n
    }

    /// The peer acknowledged `n` bytes from the front: forget them.
    pub(crate) fn ack(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
    }

    /// Copy `len` bytes starting `offset` bytes after the front into `out`.
    pub(crate) fn copy_out(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        let end = (offset + len).min(self.data.len());
        if offset >= end {
            return;
        }
        let (a, b) = self.data.as_slices();
        if offset < a.len() {
            out.extend_from_slice(&a[offset..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[offset.saturating_sub(a.len())..end - a.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_bounded_by_capacity() {
        let mut b = SendBuffer::new(4);
        assert_eq!(b.push(b"abcdef"), 4);
        assert_eq!(b.free(), 0);
        b.ack(2);
        assert_eq!(b.push(b"xyz"), 2);
        let mut out = Vec::new();
        b.copy_out(1, 10, &mut out);
        assert_eq!(out, b"dxy");
    }

    #[test]
    fn write_with_fills_the_free_room_in_place() {
        let mut b = SendBuffer::new(8);
        b.push(b"abc");
        let n = b.write_with(100, |room| {
            assert_eq!(room.len(), 5, "bounded by the capacity");
            room[..2].copy_from_slice(b"de");
            2
        });
        assert_eq!(n, 2);
        let mut out = Vec::new();
        b.copy_out(0, 8, &mut out);
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn copy_out_spans_the_ring_wraparound() {
        let mut b = SendBuffer::new(8);
        b.push(b"12345678");
        b.ack(6);
        b.push(b"abcdef");
        let mut out = Vec::new();
        b.copy_out(0, 8, &mut out);
        assert_eq!(out, b"78abcdef");
    }
}
