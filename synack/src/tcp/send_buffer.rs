//! The send buffer: bytes the application wrote that the peer has not acknowledged yet.
//! Offset 0 is SND.UNA (or ISS+1 before the handshake completes).

/// How long the storage of an emptied buffer outlives its emptying: a busy connection (a
/// keep-alive answer after another) keeps it, an idle one gives it all back, so that
/// memory follows what a connection has in flight, not the most it ever had. (Under
/// memory pressure it goes back at once: see `Connection::release_idle_storage`.)
pub(crate) const IDLE_RELEASE: core::time::Duration = core::time::Duration::from_secs(1);

use super::ring::{ByteRing, MAX_STORAGE};

/// The smallest ring storage allocated: a first small write takes little (bigger ones
/// take what they need, and growth doubles). With 4 KiB here, a relay opening 10,000
/// connections that each sent one byte held 40 MB of rings through their idle second,
/// and the allocator kept that peak: 74 MB of RSS against 38 MB now.
const MIN_STORAGE: usize = 256;

/// Unacknowledged and unsent bytes, bounded by a capacity: a ring whose storage grows
/// on demand up to the capacity and is given back when everything is acknowledged.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    ring: ByteRing,
    /// At most MAX_STORAGE (2^31), so 32 bits hold it.
    capacity: u32,
    /// Where the newest skb begins (a sequence number), for
    /// [`crate::SendAccounting::LinuxSkb`]: a write appends to it while it has room.
    skb_tail: u32,
}

impl SendBuffer {
    pub(crate) fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: ByteRing::default(),
            capacity: capacity.min(MAX_STORAGE) as u32,
            skb_tail: 0,
        }
    }

    /// The most bytes the application may queue.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Where the newest skb begins (see [`crate::SendAccounting::LinuxSkb`]).
    pub(crate) fn skb_tail(&self) -> u32 {
        self.skb_tail
    }

    /// Note where the newest skb begins.
    pub(crate) fn set_skb_tail(&mut self, seq: u32) {
        self.skb_tail = seq;
    }

    /// Change the capacity (bytes already queued stay, even beyond it).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.min(MAX_STORAGE) as u32;
    }

    /// Bytes held (sent-but-unacknowledged plus unsent).
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    /// Room left for the application.
    pub(crate) fn free(&self) -> usize {
        self.capacity().saturating_sub(self.len())
    }

    /// Room enough to count as writable, as Linux's `sk_stream_is_writeable` judges it:
    /// free space at least half of what is queued (a third of the buffer when full), so
    /// a writer woken by an ACK has a worthwhile amount to write.
    /// `overhead`: bytes queued beyond the payload (the truesize of Linux's skbs, when
    /// they are modelled).
    pub(crate) fn write_space_with(&self, overhead: usize) -> bool {
        let queued = self.len() + overhead;
        let free = self.capacity().saturating_sub(queued);
        free > 0 && free >= queued / 2
    }

    /// Make the storage hold at least `needed` bytes, doubling as it grows.
    fn reserve(&mut self, needed: usize) {
        let storage = self.ring.storage();
        if needed <= storage {
            return;
        }
        let size = needed
            .max(storage * 2)
            .max(MIN_STORAGE)
            .min(needed.max(self.capacity()));
        self.ring.grow_to(size);
    }

    /// Append as much of `bytes` as fits; returns how much was taken.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        self.reserve(self.len() + n);
        self.ring.push(&bytes[..n]);
        n
    }

    /// Append all of `bytes` whatever the capacity (up to the ring's limit): the caller
    /// judged the room itself (Linux's skb accounting may overshoot the capacity).
    pub(crate) fn push_beyond(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(MAX_STORAGE.saturating_sub(self.len()));
        self.reserve(self.len() + n);
        self.ring.push(&bytes[..n]);
        n
    }

    /// Let `fill` write up to `max` bytes (bounded by the free room, and by the end of
    /// the ring's contiguous free space) directly after the queued data; keep the `n` it
    /// reports writing.
    pub(crate) fn write_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> usize {
        let room = self.free().min(max);
        if room == 0 {
            return 0;
        }
        self.reserve(self.len() + room);
        self.ring.write_with(room, fill)
    }

    /// The peer acknowledged `n` bytes from the front: forget them.
    pub(crate) fn ack(&mut self, n: usize) {
        self.ring.consume(n);
    }

    /// Storage held while empty: what an idle release would free.
    pub(crate) fn idle_storage(&self) -> bool {
        self.ring.is_empty() && self.ring.storage() > 0
    }

    /// Give back the storage of an empty buffer.
    pub(crate) fn release_idle(&mut self) {
        self.ring.release_if_empty();
    }

    /// Bytes of storage held (what the buffer costs, whatever it holds).
    pub(crate) fn storage(&self) -> usize {
        self.ring.storage()
    }

    /// Shrink storage that is more than twice what the data and the capacity need (the
    /// capacity was lowered under memory pressure); the data is laid out from index 0.
    pub(crate) fn fit(&mut self) {
        let need = self.len().max(self.capacity()).max(MIN_STORAGE);
        if self.ring.storage() > 2 * need {
            self.ring.relayout(need);
        }
    }

    /// The `len` bytes starting `offset` bytes after the front (as far as they are
    /// held), as two slices: the second is non-empty when they wrap around the ring.
    pub(crate) fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        self.ring.slices(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `slices` names, joined.
    fn bytes(b: &SendBuffer, offset: usize, len: usize) -> Vec<u8> {
        let (x, y) = b.slices(offset, len);
        [x, y].concat()
    }

    #[test]
    fn storage_beyond_the_need_is_given_back_when_the_capacity_is_lowered() {
        let mut b = SendBuffer::new(1 << 20);
        assert_eq!(b.push(&[7u8; 600_000]), 600_000);
        b.ack(590_000);
        b.set_capacity(8192);
        b.fit();
        assert_eq!(b.storage(), 10_000);
        assert_eq!(bytes(&b, 0, 10_000), vec![7u8; 10_000]);
        b.fit();
        assert_eq!(b.storage(), 10_000, "nothing to do when it fits");
    }

    #[test]
    fn storage_grown_for_a_burst_is_given_back_by_an_idle_release_only_when_empty() {
        let mut b = SendBuffer::new(256 * 1024);
        assert_eq!(b.push(&[7u8; 100_000]), 100_000);
        assert!(b.storage() >= 100_000);
        b.ack(60_000);
        b.release_idle();
        assert!(b.storage() >= 100_000, "kept while bytes are in flight");
        b.ack(40_000);
        assert!(
            b.idle_storage() && b.storage() >= 100_000,
            "kept until released"
        );
        b.release_idle();
        assert_eq!(b.storage(), 0, "given back when empty");
        // A small one too: an idle connection holds no buffer storage.
        b.push(&[1u8; 1000]);
        b.ack(1000);
        assert!(b.idle_storage());
        b.release_idle();
        assert_eq!(b.storage(), 0);
        // And it still works after being given back.
        b.push(b"again");
        let out = bytes(&b, 0, 5);
        assert_eq!(out, b"again");
    }

    #[test]
    fn push_is_bounded_by_capacity() {
        let mut b = SendBuffer::new(4);
        assert_eq!(b.push(b"abcdef"), 4);
        assert_eq!(b.free(), 0);
        b.ack(2);
        assert_eq!(b.push(b"xyz"), 2);
        let out = bytes(&b, 1, 10);
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
        let out = bytes(&b, 0, 8);
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn write_with_offers_the_contiguous_room_after_a_wrap() {
        let mut b = SendBuffer::new(8192);
        assert_eq!(b.push(&[1u8; 4096]), 4096);
        b.ack(4000);
        // The storage (4096) ends 4000 bytes after the head: first the room up to its end.
        let n = b.write_with(10_000, |room| room.len());
        assert!(n > 0);
        let total: usize = (0..10)
            .map(|_| b.write_with(10_000, |room| room.len()))
            .sum();
        assert_eq!(b.len(), 96 + n + total);
        assert!(b.len() <= 8192);
    }

    proptest::proptest! {
        /// Any mix of writes (copied or filled in place) and acknowledgments keeps
        /// exactly the bytes a plain queue would, whatever the ring's wraps and growth.
        #[test]
        fn the_ring_holds_what_a_queue_would(
            ops in proptest::collection::vec((0u8..3, 1usize..5000), 1..60),
            capacity in 1usize..20_000,
        ) {
            let mut b = SendBuffer::new(capacity);
            let mut model = alloc::collections::VecDeque::new();
            let mut next = 0u8;
            for (op, n) in ops {
                match op {
                    0 => {
                        let data: Vec<u8> = (0..n).map(|i| next.wrapping_add(i as u8)).collect();
                        let k = b.push(&data);
                        proptest::prop_assert_eq!(k, n.min(capacity - model.len().min(capacity)));
                        model.extend(&data[..k]);
                        next = next.wrapping_add(k as u8);
                    }
                    1 => {
                        let k = b.write_with(n, |room| {
                            for (i, x) in room.iter_mut().enumerate() {
                                *x = next.wrapping_add(i as u8);
                            }
                            room.len()
                        });
                        model.extend((0..k).map(|i| next.wrapping_add(i as u8)));
                        next = next.wrapping_add(k as u8);
                    }
                    _ => {
                        let k = n.min(model.len());
                        b.ack(k);
                        model.drain(..k);
                    }
                }
                proptest::prop_assert_eq!(b.len(), model.len());
                let want: Vec<u8> = model.iter().copied().collect();
                proptest::prop_assert_eq!(bytes(&b, 0, b.len()), want);
            }
        }
    }

    #[test]
    fn an_idle_buffer_holds_no_storage() {
        let b = SendBuffer::new(1 << 20);
        assert_eq!(b.storage(), 0);
    }

    #[test]
    fn slices_span_the_ring_wraparound() {
        let mut b = SendBuffer::new(8);
        b.push(b"12345678");
        b.ack(6);
        b.push(b"abcdef");
        assert_eq!(b.slices(0, 8), (&b"78"[..], &b"abcdef"[..]));
        assert_eq!(b.slices(1, 3), (&b"8"[..], &b"ab"[..]));
        assert_eq!(b.slices(3, 9), (&b""[..], &b"bcdef"[..]));
    }
}
