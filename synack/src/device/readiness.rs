//! Who waits for what on a TUN interface: wakers kept per socket and per interest
//! (reading or writing), woken only by the events of that socket. An event costs the
//! same whether ten or a million sockets are registered, and no task or thread is woken
//! for another socket's packet. Async tasks register their `Waker`; a thread blocked in
//! the `net` API registers one that unparks it ([`ThreadWaker`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::Thread;

use crate::stack::UdpHandle;
use crate::{ConnectionHandle, Event, ListenerHandle};

/// What a caller waits on: a connection or a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum WakeKey {
    /// A connection.
    Conn(ConnectionHandle),
    /// A listener.
    Listener(ListenerHandle),
    /// A UDP socket.
    Udp(UdpHandle),
}

/// What a caller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Data, end of stream or an error to read; a connection to accept.
    Read,
    /// Room in the send buffer; the end of a handshake.
    Write,
}

/// The wakers waiting on one socket.
#[derive(Default)]
struct Waiting {
    read: Vec<Waker>,
    write: Vec<Waker>,
}

/// Wakers by socket and interest.
#[derive(Default)]
pub(crate) struct Readiness {
    waiting: HashMap<WakeKey, Waiting>,
}

impl Readiness {
    /// Wake `waker` at the next event of `key` that concerns `interest` (called with the
    /// interface's lock held, so no event can slip between a failed attempt and this).
    pub(crate) fn register(&mut self, key: WakeKey, interest: Interest, waker: &Waker) {
        let w = self.waiting.entry(key).or_default();
        let list = match interest {
            Interest::Read => &mut w.read,
            Interest::Write => &mut w.write,
        };
        if !list.iter().any(|x| x.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    /// Wake whoever waits for what `e` reports: data wakes readers, room wakes writers,
    /// a new connection wakes the listener's acceptors, a change of state or an error
    /// wakes both. Returns how many were woken.
    pub(crate) fn on_event(&mut self, e: &Event) -> usize {
        let (key, read, write) = match *e {
            Event::Readable(c) => (WakeKey::Conn(c), true, false),
            Event::Writable(c) => (WakeKey::Conn(c), false, true),
            Event::Incoming(l) | Event::Request(l) => (WakeKey::Listener(l), true, false),
            Event::UdpReadable(u) => (WakeKey::Udp(u), true, false),
            Event::StateChanged { conn, .. }
            | Event::Connected(conn)
            | Event::SoftError { conn, .. }
            | Event::ErrorQueue(conn)
            | Event::Error { conn, .. } => (WakeKey::Conn(conn), true, true),
            Event::Warning { .. } => return 0,
        };
        let Some(w) = self.waiting.get_mut(&key) else {
            return 0;
        };
        let mut woken = Vec::new();
        if read {
            woken.append(&mut w.read);
        }
        if write {
            woken.append(&mut w.write);
        }
        if w.read.is_empty() && w.write.is_empty() {
            self.waiting.remove(&key);
        }
        let n = woken.len();
        for waker in woken {
            waker.wake();
        }
        n
    }

    /// Wake everyone (the interface is going away).
    pub(crate) fn wake_all(&mut self) {
        for (_, w) in self.waiting.drain() {
            for waker in w.read.into_iter().chain(w.write) {
                waker.wake();
            }
        }
    }

    /// Sockets with someone waiting on them.
    #[cfg(test)]
    fn sockets_waited_on(&self) -> usize {
        self.waiting.len()
    }
}

/// A waker that unparks a thread blocked in the `net` API.
pub(crate) struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl ThreadWaker {
    /// A waker for the calling thread.
    pub(crate) fn current() -> Arc<ThreadWaker> {
        Arc::new(ThreadWaker {
            thread: std::thread::current(),
            woken: AtomicBool::new(false),
        })
    }

    /// Whether it was woken since the last call (and forget that it was).
    pub(crate) fn take(&self) -> bool {
        self.woken.swap(false, Ordering::SeqCst)
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn conn(index: u32) -> ConnectionHandle {
        ConnectionHandle {
            index,
            generation: 0,
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&c), Waker::from(c))
    }

    /// `idle` sockets with a reader and a writer each, plus one busy socket; 100 events
    /// of the busy one. Returns (wakers woken in all, idle wakers woken).
    fn wakeups_with(idle: u32) -> (u64, usize) {
        let mut r = Readiness::default();
        let idle_count = Arc::new(Count(AtomicUsize::new(0)));
        let idle_waker = Waker::from(Arc::clone(&idle_count));
        for i in 0..idle {
            let key = WakeKey::Conn(conn(i + 1));
            r.register(key, Interest::Read, &idle_waker);
            r.register(key, Interest::Write, &idle_waker);
        }
        let busy = conn(0);
        let mut woken = 0;
        for _ in 0..100 {
            let (_, reader) = counter();
            r.register(WakeKey::Conn(busy), Interest::Read, &reader);
            woken += r.on_event(&Event::Readable(busy)) as u64;
        }
        (woken, idle_count.0.load(Ordering::SeqCst))
    }

    #[test]
    fn an_event_wakes_only_its_socket_whatever_the_number_registered() {
        for idle in [10, 1_000, 10_000] {
            let (woken, idle_woken) = wakeups_with(idle);
            assert_eq!(woken, 100, "one wake-up per event with {idle} idle sockets");
            assert_eq!(idle_woken, 0, "no idle socket woken with {idle} registered");
        }
    }

    #[test]
    fn data_wakes_readers_room_wakes_writers_and_a_state_change_wakes_both() {
        let mut r = Readiness::default();
        let c = conn(7);
        let key = WakeKey::Conn(c);
        let (reads, reader) = counter();
        let (writes, writer) = counter();
        r.register(key, Interest::Read, &reader);
        r.register(key, Interest::Write, &writer);
        assert_eq!(r.on_event(&Event::Writable(c)), 1);
        assert_eq!(
            (
                reads.0.load(Ordering::SeqCst),
                writes.0.load(Ordering::SeqCst)
            ),
            (0, 1)
        );
        // Woken once: a writer registers again to be woken again.
        assert_eq!(r.on_event(&Event::Writable(c)), 0);
        r.register(key, Interest::Write, &writer);
        // The same waker twice is kept once.
        r.register(key, Interest::Read, &reader);
        assert_eq!(r.on_event(&Event::Connected(c)), 2);
        assert_eq!(
            (
                reads.0.load(Ordering::SeqCst),
                writes.0.load(Ordering::SeqCst)
            ),
            (1, 2)
        );
        assert_eq!(r.sockets_waited_on(), 0, "nothing kept once all are woken");
    }

    #[test]
    fn a_new_connection_wakes_the_acceptors_of_its_listener_only() {
        let mut r = Readiness::default();
        let (a, acceptor) = counter();
        let (b, other) = counter();
        let l = ListenerHandle(1);
        r.register(WakeKey::Listener(l), Interest::Read, &acceptor);
        r.register(WakeKey::Listener(ListenerHandle(2)), Interest::Read, &other);
        assert_eq!(r.on_event(&Event::Incoming(l)), 1);
        assert_eq!(
            (a.0.load(Ordering::SeqCst), b.0.load(Ordering::SeqCst)),
            (1, 0)
        );
        r.wake_all();
        assert_eq!(
            b.0.load(Ordering::SeqCst),
            1,
            "the interface going wakes all"
        );
    }

    #[test]
    fn a_thread_waker_records_and_unparks() {
        let t = ThreadWaker::current();
        assert!(!t.take());
        Waker::from(Arc::clone(&t)).wake_by_ref();
        assert!(t.take());
        assert!(!t.take(), "taken once");
    }
}
