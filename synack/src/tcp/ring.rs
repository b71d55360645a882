//! The byte ring under the send and the receive buffer: storage allocated on demand,
//! grown (or shrunk) by laying the bytes out again from index 0, and given back when
//! empty. The free room after the data can be written in place before it counts, which
//! is how a received payload is copied and checksummed in one pass (`stage`).

use crate::wire as checksum;
use alloc::boxed::Box;
use alloc::vec;

/// The most a ring holds (2 GiB, Linux's bound on SO_SNDBUF/SO_RCVBUF); the buffers'
/// capacities are clamped to it.
pub(crate) const MAX_STORAGE: usize = 1 << 31;

/// A byte queue in one allocation that wraps around.
#[derive(Debug, Default)]
pub(crate) struct ByteRing {
    ring: Box<[u8]>,
    /// Where the first byte is in `ring`.
    head: u32,
    len: u32,
    /// Bytes written after the data by `stage`, not yet committed.
    staged: u32,
}

impl ByteRing {
    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage held, used or not.
    pub(crate) fn storage(&self) -> usize {
        self.ring.len()
    }

    /// Make the storage at least `size` bytes (at most `MAX_STORAGE`).
    pub(crate) fn grow_to(&mut self, size: usize) {
        if size > self.ring.len() {
            self.relayout(size.min(MAX_STORAGE));
        }
    }

    /// Move the held bytes into new storage of `size` bytes (at least what is held),
    /// from index 0. Staged bytes are forgotten.
    pub(crate) fn relayout(&mut self, size: usize) {
        let size = size.max(self.len()).min(MAX_STORAGE);
        let mut ring = vec![0u8; size].into_boxed_slice();
        let (a, b) = self.as_slices();
        ring[..a.len()].copy_from_slice(a);
        ring[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.ring = ring;
        self.head = 0;
        self.staged = 0;
    }

    /// Give the storage back if nothing is held.
    pub(crate) fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.ring = Box::default();
            self.head = 0;
            self.staged = 0;
        }
    }

    /// The held bytes, in order, as two slices.
    pub(crate) fn as_slices(&self) -> (&[u8], &[u8]) {
        let (head, len, size) = (self.head as usize, self.len(), self.ring.len());
        if head + len <= size {
            (&self.ring[head..head + len], &[])
        } else {
            let first = size - head;
            (&self.ring[head..], &self.ring[..len - first])
        }
    }

    /// The `len` bytes starting `offset` bytes after the front (as far as they are
    /// held), as two slices: the second is non-empty when they wrap around the ring.
    pub(crate) fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let end = (offset + len).min(self.len());
        if offset >= end {
            return (&[], &[]);
        }
        let (a, b) = self.as_slices();
        let first = &a[offset.min(a.len())..end.min(a.len())];
        let second = if end > a.len() {
            &b[offset.saturating_sub(a.len())..end - a.len()]
        } else {
            &[]
        };
        (first, second)
    }

    /// The free storage right after the data, up to `max` bytes: to the end of the
    /// storage or up to the head, whichever comes first (the storage does not grow).
    fn spare(&mut self, max: usize) -> &mut [u8] {
        let size = self.ring.len();
        if self.len() == size {
            return &mut [];
        }
        let (head, len) = (self.head as usize, self.len());
        let tail = (head + len) % size;
        let contiguous = if tail >= head {
            size - tail
        } else {
            head - tail
        };
        &mut self.ring[tail..tail + contiguous.min(max)]
    }

    /// Let `fill` write up to `max` bytes in place after the data (growing the storage
    /// to hold `max` more first); keep the `n` it reports writing. Less than `max` is
    /// offered when the free room wraps around the end of the storage.
    pub(crate) fn write_with(
        &mut self,
        max: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> usize {
        self.grow_to(self.len() + max);
        let room = self.spare(max);
        let n = fill(room).min(room.len());
        self.len += n as u32;
        self.staged = 0;
        n
    }

    /// Append all of `bytes`, growing the storage as needed.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let k = self.write_with(bytes.len(), |room| {
                let k = room.len().min(bytes.len());
                room[..k].copy_from_slice(&bytes[..k]);
                k
            });
            bytes = &bytes[k..];
        }
    }

    /// Copy `bytes` into the free room right after the data without holding them yet,
    /// adding them to the running checksum `acc` on the way (one pass over the bytes);
    /// `None` (and nothing written) unless they fit there whole without growing the
    /// storage. `commit_staged` keeps them; anything else that changes the ring forgets
    /// them.
    pub(crate) fn stage(&mut self, acc: u32, bytes: &[u8]) -> Option<u32> {
        let room = self.spare(bytes.len());
        if room.len() < bytes.len() || bytes.is_empty() {
            return None;
        }
        let sum = checksum::copy_and_sum(acc, room, bytes);
        self.staged = bytes.len() as u32;
        Some(sum)
    }

    /// Hold the first `n` staged bytes, if that many are staged: they are the bytes a
    /// `push` of them would have appended.
    pub(crate) fn commit_staged(&mut self, n: usize) -> bool {
        if n > self.staged as usize {
            return false;
        }
        self.len += n as u32;
        self.staged = 0;
        true
    }

    /// Forget staged bytes.
    pub(crate) fn unstage(&mut self) {
        self.staged = 0;
    }

    /// Drop `n` bytes from the front (acknowledged, or read by the application).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        if n == 0 {
            return;
        }
        self.head = ((self.head as usize + n) % self.ring.len()) as u32;
        self.len -= n as u32;
        if self.len == 0 && self.staged == 0 {
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(r: &ByteRing) -> Vec<u8> {
        let (a, b) = r.as_slices();
        [a, b].concat()
    }

    #[test]
    fn staged_bytes_count_only_once_committed_and_sum_as_the_checksum_would() {
        let mut r = ByteRing::default();
        r.grow_to(16);
        r.push(b"abc");
        let sum = r.stage(0, b"defgh").expect("fits in the free room");
        assert_eq!(sum, checksum::sum(0, b"defgh"));
        assert_eq!(held(&r), b"abc", "staged bytes are not held yet");
        assert!(!r.commit_staged(6), "more than was staged");
        assert!(r.commit_staged(4), "a prefix of what was staged");
        assert_eq!(held(&r), b"abcdefg");
        assert!(!r.commit_staged(1), "a commit ends the staging");
    }

    #[test]
    fn staging_needs_contiguous_room_and_never_grows_the_storage() {
        let mut r = ByteRing::default();
        assert_eq!(r.stage(0, b"x"), None, "no storage yet");
        r.grow_to(8);
        r.push(b"123456");
        r.consume(4);
        // Free: 2 bytes at the end of the storage, then 4 at its start.
        assert_eq!(r.stage(0, b"abc"), None, "the free room wraps");
        assert!(r.stage(0, b"ab").is_some());
        assert!(r.commit_staged(2));
        assert_eq!(held(&r), b"56ab");
        assert_eq!(r.storage(), 8);
    }

    #[test]
    fn a_relayout_forgets_what_was_staged() {
        let mut r = ByteRing::default();
        r.grow_to(8);
        r.stage(0, b"abc").unwrap();
        r.relayout(16);
        assert!(!r.commit_staged(3));
        r.stage(0, b"abc").unwrap();
        r.push(b"z");
        assert!(!r.commit_staged(1), "a push writes over staged bytes");
        assert_eq!(held(&r), b"z");
    }

    proptest::proptest! {
        /// Any mix of appends (copied, filled in place or staged and committed) and
        /// consumption keeps exactly the bytes a plain queue would, whatever the wraps,
        /// growth and re-layouts.
        #[test]
        fn the_ring_holds_what_a_queue_would(
            ops in proptest::collection::vec((0u8..5, 1usize..5000), 1..60),
        ) {
            let mut r = ByteRing::default();
            let mut model = alloc::collections::VecDeque::new();
            let mut next = 0u8;
            for (op, n) in ops {
                let data: Vec<u8> = (0..n).map(|i| next.wrapping_add(i as u8)).collect();
                match op {
                    0 => {
                        r.push(&data);
                        model.extend(&data);
                        next = next.wrapping_add(n as u8);
                    }
                    1 => {
                        let k = r.write_with(n, |room| {
                            room.copy_from_slice(&data[..room.len()]);
                            room.len()
                        });
                        model.extend(&data[..k]);
                        next = next.wrapping_add(k as u8);
                    }
                    2 => {
                        if let Some(sum) = r.stage(0, &data) {
                            proptest::prop_assert_eq!(sum, checksum::sum(0, &data));
                            let k = n / 2 + 1;
                            proptest::prop_assert!(r.commit_staged(k));
                            model.extend(&data[..k]);
                            next = next.wrapping_add(k as u8);
                        }
                    }
                    3 => r.relayout(n),
                    _ => {
                        let k = n.min(model.len());
                        r.consume(k);
                        model.drain(..k);
                    }
                }
                proptest::prop_assert_eq!(r.len(), model.len());
                let want: Vec<u8> = model.iter().copied().collect();
                proptest::prop_assert_eq!(held(&r), want);
            }
        }
    }
}
