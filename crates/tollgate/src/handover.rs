//! Zero-downtime restart: a serving node hands its listening sockets to the node that
//! replaces it, so that no connection a client opens during the restart is refused or
//! reset.
//!
//! A serving node listens on a Unix socket in its data directory, `handover.sock` (mode
//! 0600, and only a process of the same user is answered). A new `tollgate serve` with the
//! same data directory connects to it just before it would bind its listeners:
//!
//! ```text
//! new → old   tollgate-handover 1 <pid>
//! old → new   sockets <count> <pid>
//! old → new   <address> <role>             one line per socket, the socket attached (SCM_RIGHTS)
//!             … the new node takes those sockets instead of binding, starts serving …
//! new → old   serving
//! old → new   draining                     the old node stops accepting and drains
//! ```
//!
//! Both processes then hold the same kernel sockets: connections waiting in an accept
//! queue stay there until the new node accepts them, where binding anew and closing the old
//! sockets would reset them. The old node drains as on SIGTERM (see the gateway's
//! `listener` module for how open connections are moved over without a failed request).
//! Roles are the names the binary gives its listeners (`proxy`, `proxy TLS`, `admin API`);
//! every proxy worker has a socket of its own, and all of them are handed over.
//!
//! If anything goes wrong before the new node says `serving`, the old one keeps serving
//! as if nothing happened and the new one binds its own sockets (which fails as before
//! when a port is taken). A file lock (`handover.lock`) keeps a second new node out until
//! the first has its own control socket.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

/// The control socket, in the data directory.
const SOCKET: &str = "handover.sock";
/// Held by a starting node from asking for the sockets until its own control socket is up.
const LOCK: &str = "handover.lock";
/// First line of a request; the number is the protocol version.
const HELLO: &str = "tollgate-handover 1";
/// How long a new node waits for a starting node before it to finish taking over.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each step of the exchange may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the old node waits, sockets handed over, for the new one to serve.
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest protocol line.
const MAX_LINE: usize = 512;

/// A listening socket and the role it plays.
struct Socket {
    role: String,
    addr: SocketAddr,
    listener: std::net::TcpListener,
}

/// This process's listening sockets, as far as a hand-over is concerned.
struct Sockets {
    /// Received from the previous node and not taken by a listener yet.
    inherited: Vec<Socket>,
    /// Copies (duplicate descriptors) of the sockets this node serves on, for a successor.
    /// Cleared when the node stops, so that the sockets then close.
    serving: Vec<Socket>,
}

/// The sockets belong to the process, as inherited descriptors do: every listener the
/// binary binds goes through [`take`] and [`keep`], wherever in `serve` it is made.
static SOCKETS: Mutex<Sockets> = Mutex::new(Sockets {
    inherited: Vec::new(),
    serving: Vec::new(),
});

fn sockets() -> MutexGuard<'static, Sockets> {
    SOCKETS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes an inherited socket of `role` bound to `addr` (any port if `addr`'s is 0), ready
/// for `tokio::net::TcpListener::from_std`.
pub fn take(role: &str, addr: SocketAddr) -> Option<std::net::TcpListener> {
    let mut sockets = sockets();
    let at = sockets.inherited.iter().position(|s| {
        s.role == role
            && s.addr.ip() == addr.ip()
            && (addr.port() == 0 || s.addr.port() == addr.port())
    })?;
    let socket = sockets.inherited.remove(at);
    if let Err(e) = socket.listener.set_nonblocking(true) {
        tracing::warn!(error = %e, role, %addr, "an inherited socket cannot be used; binding anew");
        return None;
    }
    tracing::debug!(role, addr = %socket.addr, "listening on an inherited socket");
    Some(socket.listener)
}

/// Takes every inherited socket of `role` on `addr` still left: the previous node had more
/// proxy workers than this one, and their queued connections must be served all the same.
pub fn take_all(role: &str, addr: SocketAddr) -> Vec<std::net::TcpListener> {
    std::iter::from_fn(|| take(role, addr)).collect()
}

/// Records a socket this node serves on as `role`, to hand it to a successor.
pub fn keep(role: &str, listener: &impl AsFd) {
    let kept = listener
        .as_fd()
        .try_clone_to_owned()
        .map(std::net::TcpListener::from)
        .and_then(|l| Ok((l.local_addr()?, l)));
    match kept {
        Ok((addr, listener)) => sockets().serving.push(Socket {
            role: role.to_string(),
            addr,
            listener,
        }),
        Err(e) => tracing::warn!(error = %e, role,
            "cannot keep a copy of a listening socket: a successor will bind it anew"),
    }
}

/// A node's start, from asking a running node for its sockets to serving.
pub struct Start {
    dir: PathBuf,
    /// Keeps another new node from connecting to the old one meanwhile.
    lock: Option<File>,
    /// The node that handed its sockets over, still waiting to hear that this one serves.
    predecessor: Option<(UnixStream, u32)>,
}

impl Start {
    /// Takes the listening sockets of the node serving from `data_dir`, if there is one;
    /// [`take`] then hands them out. Never fails: without them the node binds its own.
    pub async fn begin(data_dir: &Path) -> Start {
        let lock = match lock(data_dir).await {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the hand-over lock; going on without it");
                None
            }
        };
        let path = data_dir.join(SOCKET);
        let predecessor = match UnixStream::connect(&path).await {
            Ok(stream) => match take_over(stream).await {
                Ok(predecessor) => Some(predecessor),
                Err(e) => {
                    sockets().inherited.clear();
                    tracing::warn!(error = %e, path = %path.display(),
                        "the running node did not hand its listening sockets over; binding them anew");
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(),
                    "no node answers on the hand-over socket (left by a node that stopped); removing it");
                let _ = std::fs::remove_file(&path);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(),
                    "cannot reach the hand-over socket; binding the listeners anew");
                None
            }
        };
        Start {
            dir: data_dir.to_path_buf(),
            lock,
            predecessor,
        }
    }

    /// Called once this node serves (its listeners are bound and its configuration is
    /// loaded): closes inherited sockets no listener took, tells the previous node to
    /// drain, and opens this node's own control socket. `stop` turning true ends it.
    pub async fn serving(self, stop: watch::Receiver<bool>) -> Control {
        for unused in sockets().inherited.drain(..) {
            tracing::warn!(role = unused.role, addr = %unused.addr,
                "this node does not listen where the previous one did; closing that socket");
        }
        if let Some((mut stream, pid)) = self.predecessor {
            match tell_serving(&mut stream).await {
                Ok(()) => tracing::info!(
                    previous = pid,
                    "the previous node stopped accepting and drains its connections"
                ),
                Err(e) => tracing::warn!(error = %e, previous = pid,
                    "the previous node did not confirm the hand-over; it may still be serving"),
            }
        }
        let (tx, rx) = oneshot::channel();
        match listen(&self.dir) {
            Ok((listener, path, inode)) => {
                tracing::info!(path = %path.display(),
                    "hand-over socket open: a node started on this data directory takes over without downtime");
                tokio::spawn(answer_successors(listener, path, inode, stop, tx));
            }
            Err(e) => {
                // No successor can ask: the copies would only keep the sockets open after
                // the listeners close on a stop.
                sockets().serving.clear();
                tracing::warn!(error = %e, dir = %self.dir.display(),
                    "no hand-over socket: a restart of this node will refuse connections for a moment");
            }
        }
        drop(self.lock);
        Control { taken_over: rx }
    }
}

/// This node's side of a future hand-over.
pub struct Control {
    taken_over: oneshot::Receiver<()>,
}

impl Control {
    /// Resolves once a new node serves on this node's sockets: this one should stop
    /// accepting and drain. Never resolves otherwise.
    pub async fn taken_over(&mut self) {
        if (&mut self.taken_over).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for the hand-over lock; another node may be taking over right now.
async fn lock(dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !told {
                    tracing::info!(
                        "another node is starting on this data directory; waiting for it"
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "another starting node held it for 60 s",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Asks the running node for its sockets and keeps them in [`SOCKETS`].
async fn take_over(mut stream: UnixStream) -> io::Result<(UnixStream, u32)> {
    let hello = format!("{HELLO} {}\n", std::process::id());
    step(stream.write_all(hello.as_bytes())).await?;
    let (pid, received) = step(receive_sockets(&stream)).await?;
    tracing::info!(
        previous = pid,
        sockets = received.len(),
        "took the listening sockets over from the running node"
    );
    sockets().inherited = received;
    Ok((stream, pid))
}

/// Reads `sockets <count> <pid>`, then each socket's line and descriptor.
async fn receive_sockets(stream: &UnixStream) -> io::Result<(u32, Vec<Socket>)> {
    let mut bytes = Vec::new();
    let mut fds = std::collections::VecDeque::<OwnedFd>::new();
    let mut expected: Option<(usize, u32)> = None;
    let mut received = Vec::new();
    loop {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = bytes.drain(..=end).collect();
            let line = std::str::from_utf8(&line[..end]).map_err(|_| invalid("not UTF-8"))?;
            match expected {
                None => expected = Some(parse_header(line)?),
                Some(_) => {
                    let (addr, role) = line
                        .split_once(' ')
                        .ok_or_else(|| invalid(format!("bad socket line `{line}`")))?;
                    let addr: SocketAddr = addr
                        .parse()
                        .map_err(|_| invalid(format!("bad address in `{line}`")))?;
                    let fd = fds
                        .pop_front()
                        .ok_or_else(|| invalid("a socket line came without its socket"))?;
                    let listener = std::net::TcpListener::from(fd);
                    let bound = listener.local_addr()?;
                    if bound != addr {
                        return Err(invalid(format!(
                            "the socket for {addr} is bound to {bound}"
                        )));
                    }
                    received.push(Socket {
                        role: role.to_string(),
                        addr,
                        listener,
                    });
                }
            }
            if let Some((count, pid)) = expected
                && received.len() == count
            {
                if !fds.is_empty() || !bytes.is_empty() {
                    return Err(invalid("more than the announced sockets"));
                }
                return Ok((pid, received));
            }
        }
        if bytes.len() > MAX_LINE {
            return Err(invalid("line too long"));
        }
        let mut buf = [0u8; 1024];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let (read, got) = stream
            .async_io(Interest::READABLE, || {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let mut iov = [io::IoSliceMut::new(&mut buf)];
                let msg =
                    rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
                let mut got = Vec::new();
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = message {
                        got.extend(fds);
                    }
                }
                if msg.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(invalid("descriptors were cut off"));
                }
                Ok((msg.bytes, got))
            })
            .await?;
        if read == 0 && got.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the running node closed the connection",
            ));
        }
        bytes.extend_from_slice(&buf[..read]);
        fds.extend(got);
    }
}

fn parse_header(line: &str) -> io::Result<(usize, u32)> {
    let mut words = line.split(' ');
    let (Some("sockets"), Some(count), Some(pid), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(invalid(format!("unexpected answer `{line}`")));
    };
    let count = count.parse().map_err(|_| invalid("bad socket count"))?;
    let pid = pid.parse().map_err(|_| invalid("bad process id"))?;
    Ok((count, pid))
}

/// Tells the previous node that this one serves, and waits for it to confirm.
async fn tell_serving(stream: &mut UnixStream) -> io::Result<()> {
    step(stream.write_all(b"serving\n")).await?;
    let answer = step(read_line(stream)).await?;
    if answer != "draining" {
        return Err(invalid(format!("unexpected answer `{answer}`")));
    }
    Ok(())
}

/// Binds this node's control socket: under a name of its own first, then renamed over
/// the old one, so that the path always leads to a node that answers.
fn listen(dir: &Path) -> io::Result<(UnixListener, PathBuf, u64)> {
    let path = dir.join(SOCKET);
    let temp = dir.join(format!("{SOCKET}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    let installed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temp, &path))
        .and_then(|()| std::fs::metadata(&path));
    match installed {
        Ok(meta) => Ok((listener, path, meta.ino())),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Answers new nodes on the control socket until one takes over or this node stops.
async fn answer_successors(
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
    mut stop: watch::Receiver<bool>,
    taken_over: oneshot::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "hand-over socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match hand_over(stream, &mut stop).await {
            Ok(Some(successor)) => {
                tracing::info!(
                    successor,
                    "a new node serves on this node's sockets; stopping accepting and draining"
                );
                // The socket file is the new node's now.
                sockets().serving.clear();
                let _ = taken_over.send(());
                return;
            }
            Ok(None) => break,
            Err(e) => tracing::warn!(error = %e,
                "hand-over to a new node failed; this node goes on serving"),
        }
    }
    // Stopping: the copies must not keep the listening sockets open.
    sockets().serving.clear();
    if std::fs::metadata(&path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(&path);
    }
}

/// Sends this node's sockets to a new node and waits until it serves. `Ok(None)`: this
/// node was told to stop meanwhile.
async fn hand_over(
    mut stream: UnixStream,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Option<u32>> {
    same_user(&stream)?;
    let hello = step(read_line(&mut stream)).await?;
    let successor: u32 = hello
        .strip_prefix(HELLO)
        .and_then(|rest| rest.trim().parse().ok())
        .ok_or_else(|| invalid(format!("unexpected request `{hello}`")))?;
    // Copies, so that the lock is not held while sending.
    let copies: Vec<(String, SocketAddr, std::net::TcpListener)> = sockets()
        .serving
        .iter()
        .map(|s| Ok((s.role.clone(), s.addr, s.listener.try_clone()?)))
        .collect::<io::Result<_>>()?;
    let header = format!("sockets {} {}\n", copies.len(), std::process::id());
    step(stream.write_all(header.as_bytes())).await?;
    for (role, addr, listener) in &copies {
        step(send_socket(
            &mut stream,
            &format!("{addr} {role}\n"),
            listener,
        ))
        .await?;
    }
    drop(copies);
    tracing::info!(
        successor,
        "listening sockets sent to a new node; waiting for it to serve"
    );
    let serving = tokio::select! {
        line = tokio::time::timeout(SERVING_TIMEOUT, read_line(&mut stream)) => line,
        _ = stop.wait_for(|stop| *stop) => return Ok(None),
    };
    let serving = serving.map_err(|_| timed_out())??;
    if serving != "serving" {
        return Err(invalid(format!("unexpected message `{serving}`")));
    }
    step(stream.write_all(b"draining\n")).await?;
    Ok(Some(successor))
}

/// Writes `line` with `socket` attached.
async fn send_socket(
    stream: &mut UnixStream,
    line: &str,
    socket: &std::net::TcpListener,
) -> io::Result<()> {
    let fds = [socket.as_fd()];
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(invalid("no room for the descriptor"));
            }
            let sent = rustix::net::sendmsg(
                &*stream,
                &[io::IoSlice::new(line.as_bytes())],
                &mut control,
                SendFlags::NOSIGNAL,
            )?;
            Ok(sent)
        })
        .await?;
    // The descriptor went with the first byte; the rest of the line follows plainly.
    stream.write_all(&line.as_bytes()[sent..]).await
}

/// Reads one line, a byte at a time: nothing past it is consumed.
async fn read_line(stream: &mut UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            return String::from_utf8(line).map_err(|_| invalid("not UTF-8"));
        }
        if line.len() == MAX_LINE {
            return Err(invalid("line too long"));
        }
        line.push(byte);
    }
}

/// Only a process of this node's user gets its sockets (the file mode says the same).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn same_user(stream: &UnixStream) -> io::Result<()> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    if peer.uid != rustix::process::getuid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a process of another user asked for the listening sockets",
        ));
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn same_user(_: &UnixStream) -> io::Result<()> {
    Ok(())
}

async fn step<T>(work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .map_err(|_| timed_out())?
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the other node did not answer in time",
    )
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_and_their_roles_cross_over_a_unix_connection() {
        let (mut old, new) = UnixStream::pair().unwrap();
        let bound: Vec<(String, std::net::TcpListener)> = ["proxy", "proxy", "admin API"]
            .into_iter()
            .map(|role| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                (role.to_string(), l)
            })
            .collect();
        let addrs: Vec<SocketAddr> = bound.iter().map(|(_, l)| l.local_addr().unwrap()).collect();
        let sending = async {
            old.write_all(format!("sockets {} 42\n", bound.len()).as_bytes())
                .await
                .unwrap();
            for (role, listener) in &bound {
                let line = format!("{} {role}\n", listener.local_addr().unwrap());
                send_socket(&mut old, &line, listener).await.unwrap();
            }
        };
        let (received, ()) = tokio::join!(receive_sockets(&new), sending);
        let (pid, received) = received.unwrap();
        assert_eq!(pid, 42);
        let got: Vec<(&str, SocketAddr)> =
            received.iter().map(|s| (s.role.as_str(), s.addr)).collect();
        assert_eq!(
            got,
            vec![
                ("proxy", addrs[0]),
                ("proxy", addrs[1]),
                ("admin API", addrs[2])
            ]
        );
        // The very same socket: a connection to it is accepted through the received copy
        // once the original is closed.
        drop(bound);
        let client = std::net::TcpStream::connect(addrs[2]).unwrap();
        let (accepted, peer) = received[2].listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        drop(accepted);
    }

    #[tokio::test]
    async fn a_connection_closed_early_or_a_line_without_its_socket_is_an_error() {
        let (mut old, new) = UnixStream::pair().unwrap();
        old.write_all(b"sockets 1 7\n").await.unwrap();
        drop(old);
        let err = receive_sockets(&new).await.err().expect("closed early");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let (mut old, new) = UnixStream::pair().unwrap();
        old.write_all(b"sockets 1 7\n127.0.0.1:80 proxy\n")
            .await
            .unwrap();
        let err = receive_sockets(&new).await.err().expect("no descriptor");
        assert!(err.to_string().contains("without its socket"), "{err}");

        assert!(parse_header("sockets 2 9").is_ok());
        assert!(parse_header("sockets two 9").is_err());
        assert!(parse_header("hello").is_err());
    }
}
