//! Zero-downtime restart: a node started on the data directory of a serving node takes its
//! listening sockets over while the old one drains, and clients hammering the proxy over
//! keep-alive connections see no failed request.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Concurrent keep-alive clients.
const CLIENTS: usize = 6;

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// The first failures, for the assertion message.
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
    }
}

/// One client: requests one after another on a keep-alive connection, a new connection
/// only when the server announced the end of the old one with `Connection: close`. No
/// retries: a refused or reset connection, or one closed without notice, is a failure.
async fn hammer(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut open: Option<SendRequest<Empty<Bytes>>> = None;
    while !stop.load(Ordering::Relaxed) {
        let sender = match open.as_mut() {
            Some(sender) => sender,
            None => match connect(addr).await {
                Ok(sender) => open.insert(sender),
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if let Err(e) = sender.ready().await {
            tally.fail(format!("connection closed without notice: {e}"));
            open = None;
            continue;
        }
        let request = http::Request::get("/load")
            .header("host", addr.to_string())
            .body(Empty::new())
            .unwrap();
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let close = response
                    .headers()
                    .get(http::header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                match response.into_body().collect().await {
                    Ok(_) if status == 200 => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => tally.fail(format!("status {status}")),
                    Err(e) => tally.fail(format!("body: {e}")),
                }
                if close {
                    open = None;
                }
            }
            Err(e) => {
                tally.fail(format!("request: {e}"));
                open = None;
            }
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A `tollgate serve` started by the test itself: the command line of the first node with
/// a few values changed. Killed when dropped.
struct Process {
    child: Child,
    name: String,
    log: PathBuf,
}

/// The command line and environment (`TOLLGATE_*`, `RUST_LOG`) of a running process.
struct Invocation {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Invocation {
    fn of(pid: u32) -> Invocation {
        let read = |what: &str| -> Vec<String> {
            let path = format!("/proc/{pid}/{what}");
            std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        let env = read("environ")
            .into_iter()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key.starts_with("TOLLGATE_") || key == "RUST_LOG")
                    .then(|| (key.to_string(), value.to_string()))
            })
            .collect();
        Invocation {
            args: read("cmdline"),
            env,
        }
    }
}

impl Process {
    /// Starts the binary with `base`'s arguments and environment, replacing the value
    /// after each flag in `set`.
    fn start(base: &Invocation, work_dir: &Path, name: &str, set: &[(&str, &str)]) -> Process {
        let mut args = base.args.clone();
        for (flag, value) in set {
            let at = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("the first node has no {flag}"));
            args[at + 1] = value.to_string();
        }
        let log = work_dir.join(format!("{name}.log"));
        let mut command = Command::new(bin());
        command.args(&args[1..]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TOLLGATE_") {
                command.env_remove(key);
            }
        }
        command.envs(base.env.iter().map(|(k, v)| (k, v)));
        let file = std::fs::File::create(&log).unwrap();
        command
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Process {
            child: command.spawn().unwrap(),
            name: name.to_string(),
            log,
        }
    }

    fn logs(&self) -> String {
        format!(
            "----- {} -----\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    async fn exited(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_under_load_fail_no_request() {
    let upstream_server = MockUpstream::start("svc").await;
    let yaml = config(
        &[upstream("svc", &[upstream_server.url()], "")],
        &[api("x", "svc", &["{ path: /load }"])],
    )
    .replace("versions:", "access_log: {}\n    versions:");
    let logs = tempfile::tempdir().unwrap();
    let access_log = |name: &str| logs.path().join(format!("{name}.access.log"));
    let tls = tollgate_testkit::free_addr().unwrap();
    // Three generations, each with its own access log to tell who answered; the worker
    // counts differ so that sockets are both added (2 → 3) and left over (3 → 1).
    let mut first = Node::start_with(
        bin(),
        NodeOptions::new()
            .config(yaml)
            .arg("--node-name")
            .arg("first")
            .arg("--workers")
            .arg("2")
            .arg("--proxy-tls-listen")
            .arg(tls.to_string())
            .arg("--access-log")
            .arg(access_log("first").display().to_string()),
    )
    .await
    .expect("the first node starts");
    let base = Invocation::of(first.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(hammer(first.proxy, stop.clone(), tally.clone())))
        .collect();
    let report = |tally: &Tally| {
        format!(
            "{} ok, {} failed: {:?}",
            tally.ok.load(Ordering::Relaxed),
            tally.failed.load(Ordering::Relaxed),
            tally.errors.lock().unwrap()
        )
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(tally.ok.load(Ordering::Relaxed) > 0, "{}", report(&tally));
    assert!(first.is_running(), "{}\n{}", report(&tally), first.logs());

    // The second generation takes over from the first, under load.
    let second_log = access_log("second").display().to_string();
    let mut second = Process::start(
        &base,
        &first.work_dir,
        "second",
        &[
            ("--node-name", "second"),
            ("--workers", "3"),
            ("--access-log", &second_log),
        ],
    );
    let status = first.exited(Duration::from_secs(60)).await;
    let status = status.unwrap_or_else(|| {
        panic!(
            "the first node did not hand over and exit\n{}\n{}",
            first.logs(),
            second.logs()
        )
    });
    assert!(status.success(), "{status}\n{}", first.logs());
    assert!(
        second.exited(Duration::ZERO).await.is_none(),
        "{}",
        second.logs()
    );
    let after_first = tally.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        tally.ok.load(Ordering::Relaxed) > after_first,
        "no request served after the first hand-over: {}",
        report(&tally)
    );

    // And the third from the second.
    let third_log = access_log("third").display().to_string();
    let mut third = Process::start(
        &base,
        &first.work_dir,
        "third",
        &[
            ("--node-name", "third"),
            ("--workers", "1"),
            ("--access-log", &third_log),
        ],
    );
    let status = second.exited(Duration::from_secs(60)).await;
    let status = status.unwrap_or_else(|| {
        panic!(
            "the second node did not hand over and exit\n{}\n{}",
            second.logs(),
            third.logs()
        )
    });
    assert!(status.success(), "{status}\n{}", second.logs());
    let after_second = tally.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        tally.ok.load(Ordering::Relaxed) > after_second,
        "no request served after the second hand-over: {}",
        report(&tally)
    );

    // The TLS socket came along through both hand-overs.
    tokio::net::TcpStream::connect(tls)
        .await
        .expect("the TLS listener is still there");

    // A plain stop writes the access log's last lines.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(third.child.id().to_string())
        .status();
    let stopped = third.exited(Duration::from_secs(30)).await;
    let last = third.logs();
    assert!(stopped.is_some_and(|s| s.success()), "{last}");

    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed,
        0,
        "{}\n{}\n{}\n{last}",
        report(&tally),
        first.logs(),
        second.logs()
    );
    assert!(ok >= 100, "too little load to mean anything: {ok}");
    let served = ["first", "second", "third"].map(|name| lines(&access_log(name)));
    eprintln!("{ok} requests, {failed} failed; answered per generation: {served:?}");
    assert!(
        served.iter().all(|n| *n > 0),
        "every generation answered requests: {served:?}"
    );
    assert_eq!(
        served.iter().sum::<usize>() as u64,
        ok,
        "every answer was logged by exactly one node: {served:?}"
    );
    assert!(second.logs().contains("took the listening sockets over"));
    assert!(last.contains("took the listening sockets over"), "{last}");
}
