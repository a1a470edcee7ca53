//! Spawning and controlling a real `tollgate` process.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use tempfile::TempDir;

use crate::client::{Client, Reply};

/// How long [`Node::start`] waits for `/readyz` to answer 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Environment variable carrying the admin token.
const TOKEN_ENV: &str = "TOLLGATE_ADMIN_TOKEN";

/// Options for [`Node::start_with`].
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// YAML configuration, written to a temp file and passed as `--config FILE`.
    pub config: Option<String>,
    /// Extra command-line arguments appended after the standard ones.
    pub extra_args: Vec<String>,
    /// Extra environment variables (override the defaults, e.g. `RUST_LOG`
    /// or `TOLLGATE_ADMIN_TOKEN`, whose value then becomes [`Node::token`]).
    pub env: Vec<(String, String)>,
    /// Use this data directory instead of a fresh temporary one (the caller
    /// keeps it alive), e.g. to start a second node on the same state.
    pub data_dir: Option<PathBuf>,
    /// Return right after spawning instead of waiting for `/readyz` to
    /// answer 200 (default `false`: do wait).
    pub no_wait: bool,
}

impl NodeOptions {
    /// Options with no config, arguments or environment.
    pub fn new() -> NodeOptions {
        NodeOptions::default()
    }

    /// Sets the YAML configuration.
    pub fn config(mut self, yaml: impl Into<String>) -> NodeOptions {
        self.config = Some(yaml.into());
        self
    }

    /// Appends a command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> NodeOptions {
        self.extra_args.push(arg.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> NodeOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Uses an existing data directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> NodeOptions {
        self.data_dir = Some(dir.into());
        self
    }

    /// Returns as soon as the process is spawned, without waiting for
    /// readiness (for tests of startup failures; see [`Node::wait_ready`]).
    pub fn no_wait(mut self) -> NodeOptions {
        self.no_wait = true;
        self
    }
}

/// A running `tollgate` process for end-to-end tests.
///
/// The process is killed when the `Node` is dropped.
pub struct Node {
    /// Proxy listener address.
    pub proxy: SocketAddr,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Developer portal listener address.
    pub portal: SocketAddr,
    /// Admin bearer token (`TOLLGATE_ADMIN_TOKEN`).
    pub token: String,
    /// The `--data-dir` passed to the process.
    pub data_dir: PathBuf,
    /// Scratch directory holding logs, the config file and (by default) the data dir.
    pub work_dir: PathBuf,
    child: Child,
    command: Command,
    _temp: Option<TempDir>,
}

impl Node {
    /// Spawns `bin serve` with an optional YAML config and waits until ready.
    pub async fn start(bin: &Path, config: Option<&str>) -> anyhow::Result<Node> {
        let opts = NodeOptions {
            config: config.map(str::to_owned),
            ..NodeOptions::default()
        };
        Node::start_with(bin, opts).await
    }

    /// Spawns `bin serve --data-dir D --proxy-listen 127.0.0.1:P
    /// --admin-listen 127.0.0.1:A [--config FILE] EXTRA...` with
    /// `TOLLGATE_ADMIN_TOKEN` (random 32 hex) and `RUST_LOG=info`, stdout and
    /// stderr captured to files, then waits (≤ 20 s) until `GET /readyz` on
    /// the admin listener answers 200 (unless [`NodeOptions::no_wait`]).
    pub async fn start_with(bin: &Path, opts: NodeOptions) -> anyhow::Result<Node> {
        let temp = tempfile::Builder::new()
            .prefix("tollgate-node-")
            .tempdir()
            .context("create node temp dir")?;
        let work_dir = temp.path().to_path_buf();
        let data_dir = match &opts.data_dir {
            Some(dir) => dir.clone(),
            None => work_dir.join("data"),
        };
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create data dir {}", data_dir.display()))?;
        let token = opts
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == TOKEN_ENV)
            .map_or_else(random_token, |(_, v)| v.clone());
        let config_file = match &opts.config {
            Some(yaml) => {
                let file = work_dir.join("config.yaml");
                std::fs::write(&file, yaml).context("write config file")?;
                Some(file)
            }
            None => None,
        };

        // A port found free can be taken by another socket before the node binds it (an
        // outgoing connection gets it as its ephemeral port): then the node is started
        // again on other ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (proxy, admin) = free_port_pair()?;
            let portal = free_addr()?;
            let mut command = Command::new(bin);
            command
                .arg("serve")
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--proxy-listen")
                .arg(proxy.to_string())
                .arg("--admin-listen")
                .arg(admin.to_string());
            if !opts.extra_args.iter().any(|a| a == "--portal-listen") {
                command.arg("--portal-listen").arg(portal.to_string());
            }
            if let Some(file) = &config_file {
                command.arg("--config").arg(file);
            }
            command.args(&opts.extra_args);
            // Keep the developer's own TOLLGATE_* settings from leaking into tests.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("TOLLGATE_") {
                    command.env_remove(key);
                }
            }
            command
                .env(TOKEN_ENV, &token)
                .env("RUST_LOG", "info")
                .envs(opts.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&work_dir)
                .stdin(Stdio::null());

            let child = spawn(&mut command, &work_dir)
                .with_context(|| format!("spawn {}", bin.display()))?;
            let mut node = Node {
                proxy,
                admin,
                portal,
                token: token.clone(),
                data_dir: data_dir.clone(),
                work_dir: work_dir.clone(),
                child,
                command,
                _temp: None,
            };
            if opts.no_wait {
                node._temp = Some(temp);
                return Ok(node);
            }
            match node.wait_ready(READY_TIMEOUT).await {
                Ok(()) => {
                    node._temp = Some(temp);
                    return Ok(node);
                }
                Err(_) if attempt < 3 && node.logs().contains("Address already in use") => {
                    node.kill();
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until `GET /readyz` on the admin listener answers 200.
    ///
    /// Fails early (with the logs) if the process exits first.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = Client::new().with_timeout(Duration::from_secs(2));
        let url = self.admin_url("/readyz");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "tollgate exited with {status} before becoming ready\n{}",
                    self.logs()
                );
            }
            let last = match client.get(&url).await {
                Ok(reply) if reply.status == 200 => return Ok(()),
                Ok(reply) => format!("status {}: {}", reply.status, reply.text()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "tollgate not ready after {timeout:?} (last /readyz: {last})\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts the process with the same arguments, ports, token and data
    /// dir: SIGTERM, wait (≤ 10 s, then SIGKILL), spawn, wait until ready.
    /// Logs of all runs accumulate in the same files.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.terminate();
        if self.exited(Duration::from_secs(10)).await.is_none() {
            self.kill();
        }
        self.child = spawn(&mut self.command, &self.work_dir).context("respawn tollgate")?;
        self.wait_ready(READY_TIMEOUT).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:P` (proxy) followed by `path`.
    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// `ws://127.0.0.1:P` (proxy) followed by `path`.
    pub fn proxy_ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.proxy, path)
    }

    /// `http://127.0.0.1:W` (developer portal) followed by `path`.
    pub fn portal_url(&self, path: &str) -> String {
        format!("http://{}{}", self.portal, path)
    }

    /// `http://127.0.0.1:A` (admin) followed by `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The `Authorization` header value for the admin API.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Sends an authenticated admin request (`Authorization: Bearer TOKEN`)
    /// to `path` on the admin listener, with extra headers and a body.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let bearer = self.bearer();
        let mut all = vec![("authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        Client::new()
            .request(method, &self.admin_url(path), &all, body)
            .await
    }

    /// Authenticated `GET` on the admin API.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Reply> {
        self.admin_request("GET", path, &[], Bytes::new()).await
    }

    /// Everything the process wrote to stdout and stderr so far (all runs).
    pub fn logs(&self) -> String {
        let read = |name: &str| {
            std::fs::read(self.work_dir.join(name))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("<unreadable: {e}>"))
        };
        format!(
            "----- tollgate stdout -----\n{}----- tollgate stderr -----\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (graceful shutdown). No-op if the process already exited.
    pub fn terminate(&mut self) {
        if self.is_running() {
            // Best effort: failure here means the process is already gone.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Sends SIGKILL and reaps the process. No-op if it already exited.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Blocks the current thread until the process exits, for at most `timeout`.
    ///
    /// Returns `None` if it is still running. In async tests prefer
    /// [`exited`](Self::exited), which does not block the runtime.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// Async variant of [`wait_exit`](Self::wait_exit).
    pub async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return None,
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns the command with stdout/stderr appended to log files in `work_dir`.
fn spawn(command: &mut Command, work_dir: &Path) -> anyhow::Result<Child> {
    let open = |name: &str| -> anyhow::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(work_dir.join(name))
            .with_context(|| format!("open {name}"))
    };
    command
        .stdout(Stdio::from(open("stdout.log")?))
        .stderr(Stdio::from(open("stderr.log")?));
    Ok(command.spawn()?)
}

/// Two distinct free ports on 127.0.0.1, neither handed out before in this process.
fn free_port_pair() -> anyhow::Result<(SocketAddr, SocketAddr)> {
    Ok((free_addr()?, free_addr()?))
}

/// A free local address whose port is below the kernel's ephemeral range, for a listener a
/// test closes and binds again on the same port (a store that goes away and comes back):
/// no outgoing connection can take such a port while the listener is away.
pub fn stable_addr() -> anyhow::Result<SocketAddr> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(12_000).max(1024), low);
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..200 {
        let port = rand::random_range(from..to);
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            given.push(port);
            return Ok(listener.local_addr()?);
        }
    }
    anyhow::bail!("no free port in {from}..{to}")
}

/// One free port on 127.0.0.1 (bound, then released), e.g. for a node's
/// `extra_args` or for an address that should refuse connections.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    // The port is free once the probe closes, so the kernel may hand it out again to the
    // next probe: never give the same port twice in one test process (a node's proxy, TLS
    // and admin listeners once got the same one).
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").context("pick a free port")?;
        let addr = listener.local_addr()?;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return Ok(addr);
        }
    }
    anyhow::bail!("no free port that was not handed out before")
}

/// 32 random hex characters.
fn random_token() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends `PUT /api/config` with `Content-Type: application/yaml` and the
/// node's bearer token.
pub async fn admin_put_yaml(node: &Node, yaml: &str) -> anyhow::Result<Reply> {
    node.admin_request(
        "PUT",
        "/api/config",
        &[("content-type", "application/yaml")],
        yaml.to_owned(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_32_hex() {
        let t = random_token();
        assert_eq!(t.len(), 32);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(t, random_token());
    }

    /// Writes an executable shell script standing in for the real binary.
    fn fake_bin(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-tollgate");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn early_exit_fails_with_logs_and_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(
            dir.path(),
            "echo \"args: $*\"; echo \"token=$TOLLGATE_ADMIN_TOKEN log=$RUST_LOG x=$X\"; \
             echo oops >&2; exit 3",
        );
        let opts = NodeOptions::new()
            .config("routes: []\n")
            .arg("--extra")
            .env("X", "y")
            .env(TOKEN_ENV, "fixed-token");
        let err = Node::start_with(&bin, opts).await.err().expect("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("exited with exit status: 3"), "{msg}");
        assert!(msg.contains("args: serve --data-dir "), "{msg}");
        assert!(msg.contains(" --proxy-listen 127.0.0.1:"), "{msg}");
        assert!(msg.contains(" --admin-listen 127.0.0.1:"), "{msg}");
        assert!(msg.contains("/config.yaml --extra"), "{msg}");
        assert!(msg.contains("token=fixed-token log=info x=y"), "{msg}");
        assert!(msg.contains("----- tollgate stderr -----\noops"), "{msg}");
    }

    #[tokio::test]
    async fn terminate_and_wait_exit() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "exec sleep 30");
        let mut node = Node::start_with(&bin, NodeOptions::new().no_wait())
            .await
            .unwrap();
        assert!(node.is_running());
        assert_eq!(node.token.len(), 32);
        assert!(node.data_dir.is_dir());
        assert!(node.proxy_url("/x").starts_with("http://127.0.0.1:"));
        assert_eq!(node.wait_exit(Duration::from_millis(50)), None);
        node.terminate();
        let status = node.exited(Duration::from_secs(5)).await.expect("exits");
        assert!(!status.success());
        assert!(!node.is_running());
        node.terminate(); // no-op once exited
    }

    #[tokio::test]
    async fn start_reports_missing_binary() {
        let err = Node::start(Path::new("/nonexistent/tollgate"), None)
            .await
            .err()
            .expect("spawning a missing binary fails");
        assert!(format!("{err:#}").contains("spawn"), "{err:#}");
    }
}
