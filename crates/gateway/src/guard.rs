//! A guard in front of the HTTP/1 parser against request smuggling.
//!
//! hyper already refuses most malformed framing (invalid chunk sizes, conflicting
//! `Content-Length` values, obsolete line folding, `Transfer-Encoding` in HTTP/1.0). One
//! case it accepts, as RFC 9112 §6.1 allows: a request with both `Content-Length` and
//! `Transfer-Encoding`, read as chunked and the connection closed afterwards. A gateway
//! in front of servers that may frame such a request differently should refuse it
//! outright, so this guard reads each request head before hyper does and turns such a
//! head into one hyper answers with 400 and a closed connection.
//!
//! To find every head on a kept-alive connection, the guard follows the framing of the
//! bodies in between (length or chunks). Anything it does not understand it hands to
//! hyper untouched and stops looking: hyper's own parser then decides.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What hyper is given instead of a head carrying both framings: a head it rejects with
/// 400 (an invalid `Content-Length`), after which it closes the connection.
const REJECTED_HEAD: &[u8] =
    b"POST / HTTP/1.1\r\nhost: tollgate\r\ncontent-length: smuggled\r\n\r\n";

const READ_CHUNK: usize = 16 * 1024;
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the size line; `digits` seen so far, `ext` once a `;` or space was seen.
    Size {
        size: u64,
        digits: u32,
        ext: bool,
        len: usize,
    },
    /// Chunk data left.
    Data(u64),
    /// The CRLF after chunk data: how many of its bytes were seen.
    DataEnd(u8),
    /// Trailer section; `line_len` bytes of the current line seen.
    Trailer { line_len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    /// Not HTTP/1 framing the guard follows (HTTP/2, an upgrade, a malformed head):
    /// hyper reads the rest directly.
    Passthrough,
    /// A smuggling attempt was replaced: nothing after it is read.
    Rejected,
}

/// Wraps a connection's byte stream; see the module documentation.
#[derive(Debug)]
pub struct SmugglingGuard<T> {
    inner: T,
    state: State,
    /// Bytes read from the connection and not yet handed to hyper.
    pending: Vec<u8>,
    /// Bytes cleared for hyper, from `pending[..released]`.
    released: usize,
    eof: bool,
    max_head: usize,
    /// Time a client has to finish a head once it started sending it.
    head_timeout: std::time::Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SmugglingGuard<T> {
    pub fn new(inner: T, max_head: usize, head_timeout: std::time::Duration) -> SmugglingGuard<T> {
        SmugglingGuard {
            inner,
            state: State::Head,
            pending: Vec::new(),
            released: 0,
            eof: false,
            max_head: max_head.max(1024),
            head_timeout,
            deadline: None,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Advances the framing over `pending[released..]`, clearing bytes for hyper. Returns
    /// false when more input is needed to decide.
    fn advance(&mut self) -> bool {
        loop {
            let rest = &self.pending[self.released..];
            if rest.is_empty() {
                return self.released > 0;
            }
            match self.state {
                State::Passthrough => {
                    self.released = self.pending.len();
                    return true;
                }
                State::Rejected => {
                    self.pending.truncate(self.released);
                    return self.released > 0;
                }
                State::Head => match inspect_head(rest, self.max_head) {
                    HeadCheck::Incomplete => return self.released > 0,
                    HeadCheck::Unknown => self.state = State::Passthrough,
                    HeadCheck::Smuggled { len } => {
                        let at = self.released;
                        self.pending
                            .splice(at..at + len, REJECTED_HEAD.iter().copied());
                        self.pending.truncate(at + REJECTED_HEAD.len());
                        self.released = self.pending.len();
                        self.state = State::Rejected;
                        return true;
                    }
                    HeadCheck::Ok { len, next } => {
                        self.released += len;
                        self.state = next;
                    }
                },
                State::Body(left) => {
                    let n = (rest.len() as u64).min(left);
                    self.released += n as usize;
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Body(left - n)
                    };
                }
                State::Chunked(chunk) => {
                    let (used, next) = step_chunked(chunk, rest);
                    self.released += used;
                    self.state = next;
                }
            }
        }
    }
}

enum HeadCheck {
    Incomplete,
    /// Not a head the guard follows; hand everything to hyper.
    Unknown,
    Smuggled {
        len: usize,
    },
    Ok {
        len: usize,
        next: State,
    },
}

fn inspect_head(bytes: &[u8], max_head: usize) -> HeadCheck {
    // Empty lines before a request line are allowed (RFC 9112 §2.2).
    let skip = bytes
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let Some(end) = find_head_end(&bytes[skip..]) else {
        return if bytes.len() > max_head {
            HeadCheck::Unknown
        } else {
            HeadCheck::Incomplete
        };
    };
    let len = skip + end;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&bytes[skip..len]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return HeadCheck::Unknown,
    }
    let mut content_length = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return HeadCheck::Unknown;
            };
            if content_length.is_some_and(|c| c != n) {
                return HeadCheck::Unknown;
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if transfer_encoding && content_length.is_some() {
        return HeadCheck::Smuggled { len };
    }
    if upgrade || req.method == Some("CONNECT") || (transfer_encoding && !chunked) {
        return HeadCheck::Unknown;
    }
    let next = match (chunked, content_length) {
        (true, _) => State::Chunked(Chunk::Size {
            size: 0,
            digits: 0,
            ext: false,
            len: 0,
        }),
        (false, Some(n)) if n > 0 => State::Body(n),
        _ => State::Head,
    };
    HeadCheck::Ok { len, next }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Follows chunked framing over `bytes`; returns how many bytes were consumed and the
/// state after them.
fn step_chunked(mut chunk: Chunk, bytes: &[u8]) -> (usize, State) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        chunk = match chunk {
            Chunk::Size {
                size,
                digits,
                ext,
                len,
            } => {
                if len > MAX_CHUNK_LINE {
                    return (i, State::Passthrough);
                }
                match b {
                    b'\n' if digits > 0 => {
                        i += 1;
                        if size == 0 {
                            chunk = Chunk::Trailer { line_len: 0 };
                        } else {
                            chunk = Chunk::Data(size);
                        }
                        continue;
                    }
                    b'\n' => return (i, State::Passthrough),
                    _ if ext => Chunk::Size {
                        size,
                        digits,
                        ext,
                        len: len + 1,
                    },
                    b';' | b' ' | b'\t' | b'\r' => Chunk::Size {
                        size,
                        digits,
                        ext: true,
                        len: len + 1,
                    },
                    _ => {
                        let Some(d) = (b as char).to_digit(16) else {
                            return (i, State::Passthrough);
                        };
                        let Some(size) = size.checked_mul(16).and_then(|s| s.checked_add(d as u64))
                        else {
                            return (i, State::Passthrough);
                        };
                        Chunk::Size {
                            size,
                            digits: digits + 1,
                            ext,
                            len: len + 1,
                        }
                    }
                }
            }
            Chunk::Data(left) => {
                let n = ((bytes.len() - i) as u64).min(left);
                i += n as usize;
                chunk = if n == left {
                    Chunk::DataEnd(0)
                } else {
                    Chunk::Data(left - n)
                };
                continue;
            }
            Chunk::DataEnd(seen) => match (seen, b) {
                (0, b'\r') => Chunk::DataEnd(1),
                (0, b'\n') | (1, b'\n') => Chunk::Size {
                    size: 0,
                    digits: 0,
                    ext: false,
                    len: 0,
                },
                _ => return (i, State::Passthrough),
            },
            Chunk::Trailer { line_len } => {
                if line_len > MAX_CHUNK_LINE {
                    return (i, State::Passthrough);
                }
                match b {
                    b'\n' if line_len == 0 => return (i + 1, State::Head),
                    b'\n' => Chunk::Trailer { line_len: 0 },
                    // A bare CR before LF does not count toward the line.
                    b'\r' => Chunk::Trailer { line_len },
                    _ => Chunk::Trailer {
                        line_len: line_len + 1,
                    },
                }
            }
        };
        i += 1;
    }
    (i, State::Chunked(chunk))
}

impl<T: AsyncRead + Unpin> AsyncRead for SmugglingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.released > 0 {
                let n = this.released.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.released -= n;
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Passthrough && this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.state == State::Rejected {
                // End of input for hyper: it answers the rejected head and closes.
                return Poll::Ready(Ok(()));
            }
            if this.advance() {
                continue;
            }
            if this.eof {
                // Hand over what is left; hyper reports the truncated request.
                this.released = this.pending.len();
                if this.released == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // A head that has begun must be finished in time (the guard holds it back
            // from hyper, so hyper's own header timer cannot see it).
            if this.state == State::Head && !this.pending.is_empty() {
                let timeout = this.head_timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not send its request head in time",
                    )));
                }
            } else {
                this.deadline = None;
            }
            let start = this.pending.len();
            this.pending.resize(start + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut this.pending[start..]);
            let result = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let filled = read.filled().len();
            this.pending.truncate(start + filled);
            ready!(result)?;
            if filled == 0 {
                this.eof = true;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SmugglingGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What hyper would read through the guard, fed in pieces of `step` bytes.
    async fn through(input: &[u8], step: usize) -> Vec<u8> {
        let mut builder = tokio_test_io(input, step);
        let mut out = Vec::new();
        let mut guard =
            SmugglingGuard::new(&mut builder, 64 * 1024, std::time::Duration::from_secs(5));
        guard.read_to_end(&mut out).await.unwrap();
        out
    }

    fn tokio_test_io(input: &[u8], step: usize) -> impl AsyncRead + Unpin {
        let pieces: Vec<Vec<u8>> = input.chunks(step.max(1)).map(<[u8]>::to_vec).collect();
        futures_util::stream::iter(pieces.into_iter().map(Ok::<_, io::Error>))
            .into_async_read_compat()
    }

    trait IntoAsyncReadCompat {
        fn into_async_read_compat(self) -> Pieces;
    }

    impl<S: futures_util::Stream<Item = io::Result<Vec<u8>>> + Unpin + Send + 'static>
        IntoAsyncReadCompat for S
    {
        fn into_async_read_compat(self) -> Pieces {
            Pieces(Box::pin(self), Vec::new())
        }
    }

    struct Pieces(
        Pin<Box<dyn futures_util::Stream<Item = io::Result<Vec<u8>>> + Send>>,
        Vec<u8>,
    );

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.1.is_empty() {
                match ready!(self.0.as_mut().poll_next(cx)) {
                    Some(Ok(v)) => self.1 = v,
                    Some(Err(e)) => return Poll::Ready(Err(e)),
                    None => return Poll::Ready(Ok(())),
                }
            }
            let n = self.1.len().min(buf.remaining());
            buf.put_slice(&self.1[..n]);
            self.1.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    const KEEPALIVE: &[u8] = b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\ntrailer: 1\r\n\r\nGET /c HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn well_framed_traffic_passes_unchanged_in_any_pieces() {
        for step in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(through(KEEPALIVE, step).await, KEEPALIVE, "step {step}");
        }
    }

    #[tokio::test]
    async fn both_framings_become_a_rejected_head() {
        let attack = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n";
        for step in [1, 5, 4096] {
            let out = through(attack, step).await;
            assert!(out.starts_with(REJECTED_HEAD), "step {step}");
            assert!(
                !out.windows(6).any(|w| w == b"/admin"),
                "the smuggled request never reaches hyper"
            );
        }
        // The same after an innocent request on the same connection.
        let mut second = b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        second.extend_from_slice(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
        );
        let out = through(&second, 3).await;
        assert!(out.ends_with(REJECTED_HEAD));
        // Hidden inside a chunked body's data it is just data.
        let inside = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1a\r\ncontent-length: 1\r\n\r\nxxxxxx\r\n0\r\n\r\n";
        assert_eq!(through(inside, 4).await, inside);
    }

    #[tokio::test]
    async fn unknown_framing_is_left_to_hyper() {
        for input in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"[..],
            b"GET / HTTP/1.1\r\nupgrade: websocket\r\n\r\n\x81\x05hello",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(through(input, 3).await, input);
        }
    }
}
