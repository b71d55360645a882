//! Descriptors that are not sockets, for the calls that move bytes between them and a
//! socket: `pipe()` (an in-memory pipe of Linux's default 64 KiB), `splice()` from a
//! socket into a pipe (Linux's tcp_splice_read, which stops at the urgent mark) or from
//! a pipe into a socket, `open()` of a file for reading, and `sendfile()` from it to a
//! socket. Reads and writes on these descriptors go to the pipe or file.

use std::collections::{BTreeMap, VecDeque};

use synack::{Error, Instant};

use super::{CallResult, Errno, Kind, Sockets};

/// Linux's default pipe capacity (PIPE_DEF_BUFFERS pages).
pub const PIPE_CAPACITY: usize = 16 * 4096;

/// SPLICE_F_NONBLOCK.
pub const SPLICE_F_NONBLOCK: u32 = 2;

/// A descriptor that is not a socket.
#[derive(Clone, Debug)]
pub(super) enum Other {
    /// One end of a pipe (its bytes in `Files::pipes`).
    PipeRead(u32),
    PipeWrite(u32),
    /// A file opened read-only: its bytes as of open(), and the file position.
    File {
        data: Vec<u8>,
        pos: usize,
    },
}

/// The non-socket descriptors' state.
#[derive(Clone, Debug, Default)]
pub struct Files {
    pub(super) by_fd: BTreeMap<i32, Other>,
    pipes: BTreeMap<u32, VecDeque<u8>>,
    next_pipe: u32,
}

impl Sockets {
    fn other_fd(&mut self, other: Other) -> i32 {
        let fd = self.socket();
        if let Some(s) = self.table.get_mut(&fd) {
            s.kind = Kind::Other;
        }
        self.files.by_fd.insert(fd, other);
        fd
    }

    /// pipe(): the read end and the write end.
    pub fn pipe(&mut self) -> (i32, i32) {
        let id = self.files.next_pipe;
        self.files.next_pipe += 1;
        self.files.pipes.insert(id, VecDeque::new());
        let r = self.other_fd(Other::PipeRead(id));
        let w = self.other_fd(Other::PipeWrite(id));
        (r, w)
    }

    /// open(path, O_RDONLY) of a file whose bytes are `data`.
    pub fn open_file(&mut self, data: Vec<u8>) -> i32 {
        self.other_fd(Other::File { data, pos: 0 })
    }

    /// Is `fd` a pipe end or a file?
    pub fn is_other(&self, fd: i32) -> bool {
        self.files.by_fd.contains_key(&fd)
    }

    /// What poll() reports for a pipe end or file.
    pub(super) fn poll_other(&self, fd: i32) -> u32 {
        use crate::args::{POLLIN, POLLOUT, POLLRDNORM};
        match self.files.by_fd.get(&fd) {
            Some(Other::PipeRead(id))
                if self.files.pipes.get(id).is_some_and(|p| !p.is_empty()) =>
            {
                POLLIN | POLLRDNORM
            }
            Some(Other::PipeRead(_)) => 0,
            Some(Other::PipeWrite(id))
                if self.files.pipes.get(id).map_or(0, VecDeque::len) < PIPE_CAPACITY =>
            {
                POLLOUT
            }
            Some(Other::PipeWrite(_)) => 0,
            Some(Other::File { .. }) => POLLIN | POLLRDNORM | POLLOUT,
            None => crate::args::POLLNVAL,
        }
    }

    /// close() of a pipe end or file (a pipe's bytes go with its last end).
    pub(super) fn close_other(&mut self, fd: i32) {
        let Some(other) = self.files.by_fd.remove(&fd) else {
            return;
        };
        if let Other::PipeRead(id) | Other::PipeWrite(id) = other {
            let open = self
                .files
                .by_fd
                .values()
                .any(|o| matches!(o, Other::PipeRead(i) | Other::PipeWrite(i) if *i == id));
            if !open {
                self.files.pipes.remove(&id);
            }
        }
    }

    /// read() of a pipe's read end or a file; None when `fd` is neither.
    pub(super) fn read_other(&mut self, fd: i32, buf: &mut [u8]) -> Option<CallResult> {
        let files = &mut self.files;
        Some(match files.by_fd.get_mut(&fd)? {
            Other::PipeRead(id) => {
                let id = *id;
                let writer = files
                    .by_fd
                    .values()
                    .any(|o| matches!(o, Other::PipeWrite(i) if *i == id));
                let pipe = files.pipes.entry(id).or_default();
                if pipe.is_empty() {
                    // No writer left: end of file; else wait (EAGAIN when nonblocking).
                    return Some(if writer { Err(Errno::EAGAIN) } else { Ok(0) });
                }
                let n = buf.len().min(pipe.len());
                for (b, v) in buf.iter_mut().zip(pipe.drain(..n)) {
                    *b = v;
                }
                Ok(n as i64)
            }
            Other::File { data, pos } => {
                let n = buf.len().min(data.len().saturating_sub(*pos));
                buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                *pos += n;
                Ok(n as i64)
            }
            Other::PipeWrite(_) => Err(Errno::EBADF),
        })
    }

    /// write() to a pipe's write end (a file is read-only: EBADF); None when `fd` is
    /// neither.
    pub(super) fn write_other(&mut self, fd: i32, data: &[u8]) -> Option<CallResult> {
        let files = &mut self.files;
        Some(match files.by_fd.get(&fd)? {
            Other::PipeWrite(id) => {
                let pipe = files.pipes.entry(*id).or_default();
                let n = data
                    .len()
                    .min(PIPE_CAPACITY - pipe.len().min(PIPE_CAPACITY));
                if n == 0 {
                    return Some(Err(Errno::EAGAIN));
                }
                pipe.extend(&data[..n]);
                Ok(n as i64)
            }
            _ => Err(Errno::EBADF),
        })
    }

    /// splice(fd_in, NULL, fd_out, NULL, len, flags): socket to pipe (Linux's
    /// tcp_splice_read: up to the urgent mark, 0 when at it with bytes queued behind it)
    /// or pipe to socket. Other pairs are EINVAL.
    pub fn splice(
        &mut self,
        now: Instant,
        fd_in: i32,
        fd_out: i32,
        len: usize,
        flags: u32,
    ) -> CallResult {
        self.sock(fd_in)?;
        self.sock(fd_out)?;
        match (self.files.by_fd.get(&fd_in), self.files.by_fd.get(&fd_out)) {
            (None, Some(Other::PipeWrite(id))) => {
                let id = *id;
                let h = self.handle(fd_in).ok_or(Errno::EINVAL)?;
                let nonblocking = flags & SPLICE_F_NONBLOCK != 0
                    || self.table.get(&fd_in).is_some_and(|s| s.nonblocking);
                let queued = self.files.pipes.get(&id).map_or(0, VecDeque::len);
                let room = PIPE_CAPACITY.saturating_sub(queued);
                if len == 0 {
                    return Ok(0);
                }
                if room == 0 {
                    return Err(Errno::EAGAIN);
                }
                let mut buf = vec![0u8; len.min(room)];
                let n = match self.stack.recv_to_mark(now, h, &mut buf) {
                    Ok(0) if self.stack.recv_queue(h).unwrap_or(0) > 0 => {
                        // At the urgent mark: tcp_splice_read returns 0 rather than wait
                        // while the receive queue is not empty (a nonblocking one says
                        // EAGAIN first).
                        return if nonblocking {
                            Err(Errno::EAGAIN)
                        } else {
                            Ok(0)
                        };
                    }
                    Ok(n) => n,
                    Err(Error::WouldBlock) => return Err(Errno::EAGAIN),
                    Err(e) => return Err(e.into()),
                };
                self.files.pipes.entry(id).or_default().extend(&buf[..n]);
                Ok(n as i64)
            }
            (Some(Other::PipeRead(id)), None) => {
                let id = *id;
                let pipe = self.files.pipes.entry(id).or_default();
                let take = len.min(pipe.len());
                if take == 0 {
                    return Err(Errno::EAGAIN);
                }
                let data: Vec<u8> = pipe.iter().take(take).copied().collect();
                let n = self.write(now, fd_out, &data)?;
                if let Some(pipe) = self.files.pipes.get_mut(&id) {
                    pipe.drain(..(n as usize).min(pipe.len()));
                }
                Ok(n)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// sendfile(out_fd, in_fd, offset, count): the file's bytes from `offset` (None: from
    /// the file position, which then moves) written to the socket as one write (Linux
    /// pushes the last piece of a sendfile like the end of a write).
    pub fn sendfile(
        &mut self,
        now: Instant,
        out_fd: i32,
        in_fd: i32,
        offset: Option<usize>,
        count: usize,
    ) -> CallResult {
        self.sock(out_fd)?;
        let Some(Other::File { data, pos }) = self.files.by_fd.get(&in_fd) else {
            return Err(if self.is_other(in_fd) || self.table.contains_key(&in_fd) {
                Errno::EINVAL
            } else {
                Errno::EBADF
            });
        };
        let from = offset.unwrap_or(*pos);
        let end = data.len().min(from.saturating_add(count));
        let bytes = data.get(from..end).unwrap_or(&[]).to_vec();
        if bytes.is_empty() {
            return Ok(0);
        }
        let n = self.write(now, out_fd, &bytes)?;
        if offset.is_none() {
            if let Some(Other::File { pos, .. }) = self.files.by_fd.get_mut(&in_fd) {
                *pos += n as usize;
            }
        }
        Ok(n)
    }
}
