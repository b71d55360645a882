//! epoll instances with Linux's semantics (fs/eventpoll.c), for the socket layer: the
//! items an instance watches, its ready list, level- and edge-triggered reporting and
//! EPOLLONESHOT. A socket's wakeups (data arrived, room appeared, a state change, an
//! error) put its items on the ready lists of the instances watching it, when the
//! wakeup's kind meets the events asked for (`ep_poll_callback`); `epoll_wait` then
//! reports each listed item with the socket's *current* readiness masked by what the
//! item asks for (`ep_send_events`), keeping level-triggered items listed while they
//! stay ready.

use std::collections::BTreeMap;

pub const EPOLLIN: u32 = 0x001;
pub const EPOLLPRI: u32 = 0x002;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
pub const EPOLLRDNORM: u32 = 0x040;
pub const EPOLLRDBAND: u32 = 0x080;
pub const EPOLLWRNORM: u32 = 0x100;
pub const EPOLLWRBAND: u32 = 0x200;
pub const EPOLLRDHUP: u32 = 0x2000;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;

/// Flags that say how to report, not what (Linux's EP_PRIVATE_BITS).
const PRIVATE: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;

/// The kind of a wakeup, as the key Linux's socket callbacks pass to the wait queue.
pub mod wake {
    use super::*;
    /// `sk_data_ready` (data, a connection to accept).
    pub const DATA: u32 = EPOLLIN | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND;
    /// `sk_write_space` (room to write).
    pub const SPACE: u32 = EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
    /// `sk_error_report`.
    pub const ERROR: u32 = EPOLLERR;
    /// `sk_state_change`: no key, every item is woken.
    pub const ALL: u32 = 0;
}

/// `epoll_ctl`'s operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Mod,
    Del,
}

/// One watched descriptor.
#[derive(Clone, Debug)]
struct Item {
    /// What it asks for, with EPOLLERR and EPOLLHUP always added; only the private
    /// flags once an EPOLLONESHOT item has been reported.
    events: u32,
    /// `epoll_data`, reported as given (`fd=N` or `ptr=N`).
    data: u64,
}

/// One epoll instance.
#[derive(Clone, Debug, Default)]
pub struct Epoll {
    items: BTreeMap<i32, Item>,
    /// The ready list, in the order items were woken.
    ready: Vec<i32>,
}

impl Epoll {
    /// `epoll_ctl`; `mask` is the descriptor's readiness now (an item already ready is
    /// listed at once). Errors as Linux's: EEXIST, ENOENT, EINVAL.
    pub fn ctl(
        &mut self,
        op: Op,
        fd: i32,
        events: u32,
        data: u64,
        mask: u32,
    ) -> Result<(), &'static str> {
        let events = events | EPOLLERR | EPOLLHUP;
        if events & EPOLLEXCLUSIVE != 0 && (op == Op::Mod || events & EPOLLONESHOT != 0) {
            return Err("EINVAL");
        }
        match op {
            Op::Add if self.items.contains_key(&fd) => return Err("EEXIST"),
            Op::Add => {
                self.items.insert(fd, Item { events, data });
            }
            Op::Mod => {
                let item = self.items.get_mut(&fd).ok_or("ENOENT")?;
                if item.events & EPOLLEXCLUSIVE != 0 {
                    return Err("EINVAL");
                }
                *item = Item { events, data };
            }
            Op::Del if self.remove(fd) => return Ok(()),
            Op::Del => return Err("ENOENT"),
        }
        if mask & events & !PRIVATE != 0 {
            self.list(fd);
        }
        Ok(())
    }

    /// The descriptor is closed: it is no longer watched.
    pub fn remove(&mut self, fd: i32) -> bool {
        self.ready.retain(|f| *f != fd);
        self.items.remove(&fd).is_some()
    }

    /// A wakeup of kind `key` (see [`wake`]) on `fd`: list its item if it asks for
    /// something the wakeup is about and is not a spent EPOLLONESHOT.
    pub fn wake(&mut self, fd: i32, key: u32) {
        let Some(item) = self.items.get(&fd) else {
            return;
        };
        let asks = item.events & !PRIVATE;
        if asks == 0 || (key != wake::ALL && key & asks == 0) {
            return;
        }
        self.list(fd);
    }

    fn list(&mut self, fd: i32) {
        if !self.ready.contains(&fd) {
            self.ready.push(fd);
        }
    }

    /// Anything listed? (what `epoll_wait` would find, before checking readiness).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// `epoll_wait`'s harvest: up to `max` (events, data) pairs, `mask(fd)` giving a
    /// descriptor's readiness now. Items not ready any more leave the list; reported
    /// level-triggered ones stay (at its end), edge-triggered ones leave, EPOLLONESHOT
    /// ones are disabled until EPOLL_CTL_MOD.
    pub fn harvest(&mut self, max: usize, mut mask: impl FnMut(i32) -> u32) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let listed = std::mem::take(&mut self.ready);
        let mut keep = Vec::new();
        let mut rest = listed.into_iter();
        for fd in rest.by_ref() {
            let Some(item) = self.items.get_mut(&fd) else {
                continue;
            };
            let revents = mask(fd) & item.events & !PRIVATE;
            if revents == 0 {
                continue;
            }
            out.push((revents, item.data));
            if item.events & EPOLLONESHOT != 0 {
                item.events &= PRIVATE;
            } else if item.events & EPOLLET == 0 {
                keep.push(fd);
            }
            if out.len() >= max {
                break;
            }
        }
        // Those not looked at stay first; level-triggered ones reported go to the end.
        self.ready = rest.chain(keep).collect();
        out
    }
}

const NAMES: [(&str, u32); 15] = [
    ("EPOLLIN", EPOLLIN),
    ("EPOLLPRI", EPOLLPRI),
    ("EPOLLOUT", EPOLLOUT),
    ("EPOLLERR", EPOLLERR),
    ("EPOLLHUP", EPOLLHUP),
    ("EPOLLRDNORM", EPOLLRDNORM),
    ("EPOLLRDBAND", EPOLLRDBAND),
    ("EPOLLWRNORM", EPOLLWRNORM),
    ("EPOLLWRBAND", EPOLLWRBAND),
    ("EPOLLRDHUP", EPOLLRDHUP),
    ("EPOLLEXCLUSIVE", EPOLLEXCLUSIVE),
    ("EPOLLWAKEUP", EPOLLWAKEUP),
    ("EPOLLONESHOT", EPOLLONESHOT),
    ("EPOLLET", EPOLLET),
    ("EPOLLMSG", 0x400),
];

/// `EPOLLIN|EPOLLET` (or a number) as bits.
pub fn bits(s: &str) -> Result<u32, String> {
    crate::args::flag_bits(&NAMES, s, "an epoll event")
}

/// Bits back to names, as a script writes them.
pub fn names(bits: u32) -> String {
    crate::args::flag_names(&NAMES, bits)
}

/// One `struct epoll_event` as a script writes it: `{events=EPOLLIN, fd=4}` (or
/// `ptr=N`, `u32=N`, `u64=N`).
pub fn event(arg: &str) -> Result<(u32, u64), String> {
    let body = arg
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim();
    let body = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| format!("'{arg}' is not an epoll_event"))?;
    let (mut events, mut data) = (0, 0);
    for kv in body.split(',') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        match k.trim() {
            "events" => events = bits(v)?,
            "fd" | "ptr" | "u32" | "u64" => {
                data = crate::args::integer(v.trim()).ok_or_else(|| format!("epoll data '{v}'"))?
                    as u64
            }
            other => return Err(format!("epoll_event field '{other}'")),
        }
    }
    Ok((events, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_triggered_items_stay_listed_while_ready_edge_triggered_ones_once_per_wakeup() {
        let mut ep = Epoll::default();
        ep.ctl(Op::Add, 4, EPOLLIN, 4, 0).unwrap();
        ep.ctl(Op::Add, 5, EPOLLIN | EPOLLET, 5, 0).unwrap();
        ep.wake(4, wake::DATA);
        ep.wake(5, wake::DATA);
        assert_eq!(ep.harvest(8, |_| EPOLLIN), [(EPOLLIN, 4), (EPOLLIN, 5)]);
        assert_eq!(ep.harvest(8, |_| EPOLLIN), [(EPOLLIN, 4)]);
        // Drained: the level-triggered item leaves the list.
        assert!(ep.harvest(8, |_| 0).is_empty());
        assert!(!ep.has_ready());
    }

    #[test]
    fn a_wakeup_of_another_kind_lists_nothing_a_state_change_lists_all() {
        let mut ep = Epoll::default();
        ep.ctl(Op::Add, 4, EPOLLIN | EPOLLET, 4, 0).unwrap();
        ep.wake(4, wake::SPACE);
        assert!(!ep.has_ready());
        ep.wake(4, wake::ALL);
        assert_eq!(ep.harvest(1, |_| EPOLLIN | EPOLLOUT), [(EPOLLIN, 4)]);
    }

    #[test]
    fn oneshot_reports_once_until_modified() {
        let mut ep = Epoll::default();
        ep.ctl(Op::Add, 4, EPOLLOUT | EPOLLONESHOT, 7, EPOLLOUT)
            .unwrap();
        assert_eq!(ep.harvest(1, |_| EPOLLOUT), [(EPOLLOUT, 7)]);
        ep.wake(4, wake::SPACE);
        assert!(ep.harvest(1, |_| EPOLLOUT).is_empty());
        ep.ctl(Op::Mod, 4, EPOLLOUT | EPOLLONESHOT, 7, EPOLLOUT)
            .unwrap();
        assert_eq!(ep.harvest(1, |_| EPOLLOUT), [(EPOLLOUT, 7)]);
    }

    #[test]
    fn ctl_errors_are_linuxs() {
        let mut ep = Epoll::default();
        assert_eq!(ep.ctl(Op::Mod, 4, EPOLLIN, 0, 0), Err("ENOENT"));
        assert_eq!(ep.ctl(Op::Del, 4, 0, 0, 0), Err("ENOENT"));
        ep.ctl(Op::Add, 4, EPOLLIN | EPOLLEXCLUSIVE, 0, 0).unwrap();
        assert_eq!(ep.ctl(Op::Add, 4, EPOLLIN, 0, 0), Err("EEXIST"));
        assert_eq!(ep.ctl(Op::Mod, 4, EPOLLIN, 0, 0), Err("EINVAL"));
    }

    #[test]
    fn events_parse_with_fd_or_ptr() {
        assert_eq!(
            event("{events=EPOLLIN|EPOLLET, fd=4}"),
            Ok((EPOLLIN | EPOLLET, 4))
        );
        assert_eq!(event("{events=0, ptr=0}"), Ok((0, 0)));
        assert_eq!(names(EPOLLIN | EPOLLOUT), "EPOLLIN|EPOLLOUT");
    }
}
