//! A small W3C WebDriver client for browser tests, driving headless Chromium through
//! `chromedriver`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use tollgate_testkit::browser::{Browser, screenshot_dir};
//!
//! let Some(browser) = Browser::launch_or_skip().await else { return Ok(()) };
//! browser.goto("http://127.0.0.1:8081/").await?;
//! browser.fill("#email", "ada@example.com").await?;
//! browser.click("button[type=submit]").await?;
//! browser.wait_for_text(".flash", "Welcome", Duration::from_secs(5)).await?;
//! browser.screenshot(screenshot_dir("sign_in").join("done.png")).await?;
//! # Ok(()) }
//! ```
//!
//! Binaries: `chromedriver` from `TOLLGATE_CHROMEDRIVER`, `/usr/bin/chromedriver` or `PATH`;
//! the browser from `TOLLGATE_CHROMIUM`, `/usr/bin/chromium` or `PATH`. Each [`Browser`]
//! runs its own `chromedriver` (in its own process group) on a free port with a fresh
//! profile directory; dropping it — also while a test panics — ends the session and kills
//! that process group, so no browser outlives its test.
//!
//! Errors name the command, the CSS selector involved and the WebDriver error, e.g.
//! ``click `#save`: element click intercepted: … ``.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The key under which WebDriver serialises element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Deadline of one WebDriver command (page loads included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `chromedriver` may take to report ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Polling interval of the `wait_*` helpers.
const POLL: Duration = Duration::from_millis(50);

/// Whether the `CI` environment variable asks for strict behaviour (set, non-empty and
/// not `0`/`false`).
fn on_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

/// Finds an executable: the path in `env` if that variable is set (it must exist), else
/// the first of `defaults` that exists, else the first of `names` on `PATH`.
fn locate(env: &str, defaults: &[&str], names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env}={} does not exist", path.display()))
        };
    }
    if let Some(found) = defaults.iter().map(Path::new).find(|p| p.is_file()) {
        return Ok(found.to_path_buf());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            for name in names {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
    }
    Err(format!(
        "{} not found (set {env}, or install it: apt-get install chromium chromium-driver)",
        names.first().copied().unwrap_or("binary")
    ))
}

fn chromedriver_path() -> Result<PathBuf, String> {
    locate(
        "TOLLGATE_CHROMEDRIVER",
        &["/usr/bin/chromedriver"],
        &["chromedriver"],
    )
}

fn chromium_path() -> Result<PathBuf, String> {
    locate(
        "TOLLGATE_CHROMIUM",
        &["/usr/bin/chromium"],
        &["chromium", "chromium-browser", "google-chrome"],
    )
}

/// The directory for a test's screenshots: `<target>/browser-screenshots/<test>/`, where
/// `<target>` is `CARGO_TARGET_DIR` if set, else the workspace's `target/`. The directory
/// is created.
pub fn screenshot_dir(test: &str) -> PathBuf {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        }
        None => root.join("target"),
    };
    let dir = target.join("browser-screenshots").join(test);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The workspace root: the nearest ancestor of the crate under test (or of this crate)
/// whose `Cargo.toml` declares `[workspace]`.
fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|toml| toml.lines().any(|l| l.trim() == "[workspace]"))
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

/// The HTTP side of a WebDriver session: the endpoint and the session's path prefix.
struct Wire {
    client: HyperClient<HttpConnector, Full<Bytes>>,
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// `/session/<id>` once a session exists.
    session: String,
}

impl Wire {
    fn new(base: String) -> Wire {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Wire {
            client,
            base,
            session: String::new(),
        }
    }

    /// Sends one command to `path` (absolute, or relative to the session when it does not
    /// start with `/`) and returns the answer's `value`, or the WebDriver error as
    /// `<error>: <message>`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else if path.is_empty() {
            format!("{}{}", self.base, self.session)
        } else {
            format!("{}{}/{path}", self.base, self.session)
        };
        let what = format!("{method} {url}");
        let mut builder = Request::builder().method(method).uri(&url);
        let payload = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json; charset=utf-8");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(payload))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{what}: no answer from chromedriver within {COMMAND_TIMEOUT:?}"))?
            .with_context(|| format!("{what}: chromedriver unreachable"))?;
        let answer: Value = serde_json::from_slice(&body).with_context(|| {
            format!(
                "{what}: answer is not JSON (status {status}): {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() || value.get("error").is_some_and(Value::is_string) {
            let error = value["error"].as_str().unwrap_or("unknown error");
            // Chromium appends session and stack details on further lines.
            let message = value["message"].as_str().unwrap_or("").lines().next();
            return Err(match message {
                Some(m) if !m.is_empty() && m != error => anyhow!("{error}: {m}"),
                _ => anyhow!("{error} (HTTP {status})"),
            });
        }
        Ok(value)
    }
}

/// The processes and files behind a [`Browser`]; torn down exactly once.
struct Driver {
    child: Option<Child>,
    profile: Option<tempfile::TempDir>,
}

impl Driver {
    /// Kills `chromedriver`'s whole process group (the browser and its helpers included)
    /// and reaps `chromedriver`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            #[cfg(unix)]
            {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Helpers that left the process group (the crash handler starts its own session)
        // still name the profile directory, which is unique to this browser.
        if let Some(profile) = &self.profile {
            kill_processes_naming(&profile.path().to_string_lossy());
        }
        // Removing the profile directory only after the browser is gone.
        self.profile.take();
    }
}

/// Kills the processes whose command line contains `marker` (Linux; elsewhere a no-op).
fn kill_processes_naming(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A headless Chromium session. See the [module documentation](self).
pub struct Browser {
    wire: Arc<Wire>,
    driver: Driver,
    failure_screenshot: Option<PathBuf>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.wire.base)
            .field("session", &self.wire.session)
            .finish()
    }
}

/// A cookie as the browser holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: Option<String>,
    pub domain: Option<String>,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, when the browser reports it.
    pub same_site: Option<String>,
    /// Expiry in seconds since the Unix epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

impl Cookie {
    fn from_json(v: &Value) -> Cookie {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Cookie {
            name: s("name").unwrap_or_default(),
            value: s("value").unwrap_or_default(),
            path: s("path"),
            domain: s("domain"),
            secure: v.get("secure").and_then(Value::as_bool).unwrap_or(false),
            http_only: v.get("httpOnly").and_then(Value::as_bool).unwrap_or(false),
            same_site: s("sameSite"),
            expiry: v.get("expiry").and_then(Value::as_u64),
        }
    }
}

impl Browser {
    /// `Ok` when `chromedriver` and the browser binary are both found; otherwise why not.
    pub fn available() -> Result<(), String> {
        chromedriver_path()?;
        chromium_path()?;
        Ok(())
    }

    /// Launches a browser when the binaries are present. When they are missing it prints
    /// the reason and returns `None` so the test can return early — unless `CI` is set,
    /// where a missing browser is a failure and this panics. A browser that is present but
    /// fails to start panics everywhere.
    pub async fn launch_or_skip() -> Option<Browser> {
        if let Err(reason) = Browser::available() {
            if on_ci() {
                panic!("browser tests cannot run on CI: {reason}");
            }
            eprintln!("skipping browser test: {reason}");
            return None;
        }
        match Browser::launch().await {
            Ok(browser) => Some(browser),
            Err(e) => panic!("browser failed to start: {e:#}"),
        }
    }

    /// Starts `chromedriver` on a free port and opens a headless session at 1280×800 with a
    /// fresh profile.
    pub async fn launch() -> anyhow::Result<Browser> {
        let driver_bin = chromedriver_path().map_err(|e| anyhow!(e))?;
        let browser_bin = chromium_path().map_err(|e| anyhow!(e))?;
        let mut last_error = anyhow!("chromedriver did not start");
        for _attempt in 0..5 {
            match Browser::start(&driver_bin, &browser_bin).await {
                Ok(browser) => return Ok(browser),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// One attempt: pick a port, start `chromedriver`, wait for it, create the session.
    async fn start(driver_bin: &Path, browser_bin: &Path) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("tollgate-browser-")
            .tempdir()
            .context("creating the browser profile directory")?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let log = profile.path().join("chromedriver.log");
        let mut command = Command::new(driver_bin);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Keeps the browser's own state (crash reports, caches) inside the profile
            // directory rather than the user's home.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"));
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", driver_bin.display()))?;
        let user_data = profile.path().join("profile");
        let mut browser = Browser {
            wire: Arc::new(Wire::new(format!("http://127.0.0.1:{port}"))),
            driver: Driver {
                child: Some(child),
                profile: Some(profile),
            },
            failure_screenshot: None,
        };
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };

        // Wait until the driver answers `/status` with `ready: true`.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = browser.driver.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "chromedriver exited ({status}) on port {port}:\n{}",
                    log_tail()
                );
            }
            if let Ok(v) = browser.wire.call(Method::GET, "/status", None).await
                && v["ready"].as_bool() == Some(true)
            {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "chromedriver not ready within {STARTUP_TIMEOUT:?} on port {port}:\n{}",
                    log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }

        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
                    "goog:chromeOptions": {
                        "binary": browser_bin.display().to_string(),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,800",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--disable-extensions",
                            "--hide-scrollbars",
                            "--disable-crash-reporter",
                            "--disable-breakpad",
                            format!("--user-data-dir={}", user_data.display()),
                        ],
                    },
                },
            },
        });
        let session = browser
            .wire
            .call(Method::POST, "/session", Some(capabilities))
            .await
            .map_err(|e| anyhow!("creating a browser session: {e:#}\n{}", log_tail()))?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("new session answer without sessionId: {session}"))?;
        match Arc::get_mut(&mut browser.wire) {
            Some(wire) => wire.session = format!("/session/{id}"),
            None => bail!("browser wire shared before the session existed"),
        }
        Ok(browser)
    }

    /// When the test panics while this browser is open, a screenshot is saved to `path`
    /// before the browser closes (e.g. `screenshot_dir("test").join("failure.png")`).
    pub fn screenshot_on_failure(&mut self, path: impl Into<PathBuf>) {
        self.failure_screenshot = Some(path.into());
    }

    /// Ends the session and stops the browser and `chromedriver`. Dropping the browser
    /// does the same; this variant reports nothing and never blocks the runtime.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.wire.call(Method::DELETE, "", None),
        )
        .await;
        self.failure_screenshot = None;
        self.driver.kill();
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.wire.call(method, path, body).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(Method::POST, "url", Some(json!({ "url": url })))
            .await
            .with_context(|| format!("goto {url}"))?;
        Ok(())
    }

    /// Goes back in history.
    pub async fn back(&self) -> anyhow::Result<()> {
        self.cmd(Method::POST, "back", Some(json!({})))
            .await
            .context("back")?;
        Ok(())
    }

    /// Reloads the page.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.cmd(Method::POST, "refresh", Some(json!({})))
            .await
            .context("refresh")?;
        Ok(())
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let v = self
            .cmd(Method::GET, "url", None)
            .await
            .context("current url")?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The current page's `<title>`.
    pub async fn title(&self) -> anyhow::Result<String> {
        let v = self
            .cmd(Method::GET, "title", None)
            .await
            .context("title")?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The current page's HTML as serialised by the browser.
    pub async fn page_source(&self) -> anyhow::Result<String> {
        let v = self
            .cmd(Method::GET, "source", None)
            .await
            .context("page source")?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    fn element(&self, value: &Value, css: &str) -> anyhow::Result<Element> {
        let id = value
            .get(ELEMENT_KEY)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("find `{css}`: answer without an element reference: {value}"))?;
        Ok(Element {
            wire: self.wire.clone(),
            id: id.to_owned(),
            selector: css.to_owned(),
        })
    }

    /// The first element matching `css` (no waiting; see [`Browser::wait_for`]).
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let v = self
            .cmd(
                Method::POST,
                "element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("find `{css}`"))?;
        self.element(&v, css)
    }

    /// Every element matching `css`, in document order (possibly none).
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let v = self
            .cmd(
                Method::POST,
                "elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("find all `{css}`"))?;
        v.as_array()
            .map(|items| items.iter().map(|i| self.element(i, css)).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// Polls until an element matches `css`, then returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css).await {
                Ok(element) => return Ok(element),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "waited {timeout:?} for `{css}` on {}",
                        self.current_url().await.unwrap_or_default()
                    )));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Polls until the first element matching `css` exists and its visible text contains
    /// `text`, then returns it.
    pub async fn wait_for_text(
        &self,
        css: &str,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = match self.find(css).await {
                Ok(element) => match element.text().await {
                    Ok(t) if t.contains(text) => return Ok(element),
                    Ok(t) => format!("its text is {t:?}"),
                    Err(e) => format!("{e:#}"),
                },
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("waited {timeout:?} for `{css}` to contain {text:?}: {seen}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the first element matching `css` is gone (or no element matches).
    pub async fn wait_gone(&self, css: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.find_all(css).await?.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("waited {timeout:?} for `{css}` to disappear");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await
    }

    /// Clears the first input matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.find(css).await?.fill(text).await
    }

    /// Selects the option with `value` in the first `<select>` matching `css` and
    /// dispatches `input` and `change` events.
    pub async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let script = "const [el, value] = arguments;\
             if (el.tagName !== 'SELECT') return 'not a <select> but <' + el.tagName.toLowerCase() + '>';\
             if (![...el.options].some(o => o.value === value)) \
               return 'no option with value ' + JSON.stringify(value) + ' (options: ' + \
                 [...el.options].map(o => JSON.stringify(o.value)).join(', ') + ')';\
             el.value = value;\
             el.dispatchEvent(new Event('input', { bubbles: true }));\
             el.dispatchEvent(new Event('change', { bubbles: true }));\
             return null;";
        let answer = self
            .execute(script, vec![element.to_json(), json!(value)])
            .await
            .with_context(|| format!("select {value:?} in `{css}`"))?;
        match answer.as_str() {
            Some(problem) => bail!("select {value:?} in `{css}`: {problem}"),
            None => Ok(()),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        self.find(css).await?.text().await
    }

    /// An attribute of the first element matching `css` (`None` when absent).
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        self.find(css).await?.attr(name).await
    }

    /// Runs `script` as the body of a function with `args` as `arguments` and returns its
    /// result. A returned `Promise` is awaited. Pass elements with [`Element::to_json`].
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let first_line = script.lines().next().unwrap_or_default();
        self.cmd(
            Method::POST,
            "execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
        .with_context(|| format!("execute `{first_line}`"))
    }

    /// Saves a PNG screenshot of the viewport to `path`, creating parent directories.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let v = self
            .cmd(Method::GET, "screenshot", None)
            .await
            .context("screenshot")?;
        write_png(path, &v)
    }

    /// Sets the outer window size in CSS pixels.
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.cmd(
            Method::POST,
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .with_context(|| format!("set window size {width}×{height}"))?;
        Ok(())
    }

    /// Sizes the window so that the page's viewport (`innerWidth` × `innerHeight`) is
    /// `width` × `height` CSS pixels, e.g. 390×844 for a phone.
    pub async fn set_viewport_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.set_window_size(width, height).await?;
        let inner = self
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let measured = |i: usize, wanted: u32| {
            inner[i]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(wanted)
        };
        let (w, h) = (measured(0, width), measured(1, height));
        if (w, h) != (width, height) {
            self.set_window_size(
                (width + width).saturating_sub(w),
                (height + height).saturating_sub(h),
            )
            .await?;
        }
        Ok(())
    }

    /// Every cookie visible to the current page.
    pub async fn cookies(&self) -> anyhow::Result<Vec<Cookie>> {
        let v = self
            .cmd(Method::GET, "cookie", None)
            .await
            .context("cookies")?;
        Ok(v.as_array()
            .map(|items| items.iter().map(Cookie::from_json).collect())
            .unwrap_or_default())
    }

    /// The cookie called `name`, if the current page sees one.
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<Cookie>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name == name))
    }

    /// Removes every cookie of the current page's domain.
    pub async fn delete_cookies(&self) -> anyhow::Result<()> {
        self.cmd(Method::DELETE, "cookie", None)
            .await
            .context("delete cookies")?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.driver.child.is_none() {
            return;
        }
        // The session is ended on a thread of its own with its own runtime: `drop` cannot
        // await, and may run on (or outside) any runtime, including while unwinding.
        let base = self.wire.base.clone();
        let session = self.wire.session.clone();
        let screenshot = self
            .failure_screenshot
            .take()
            .filter(|_| std::thread::panicking());
        let ended = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if session.is_empty() {
                    return;
                }
                let wire = Wire {
                    session,
                    ..Wire::new(base)
                };
                if let Some(path) = screenshot {
                    let shot = tokio::time::timeout(
                        Duration::from_secs(10),
                        wire.call(Method::GET, "screenshot", None),
                    )
                    .await;
                    match shot {
                        Ok(Ok(v)) => match write_png(&path, &v) {
                            Ok(()) => eprintln!("failure screenshot: {}", path.display()),
                            Err(e) => eprintln!("failure screenshot not saved: {e:#}"),
                        },
                        Ok(Err(e)) => eprintln!("failure screenshot not taken: {e:#}"),
                        Err(_) => eprintln!("failure screenshot timed out"),
                    }
                }
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    wire.call(Method::DELETE, "", None),
                )
                .await;
            });
        });
        let _ = ended.join();
        self.driver.kill();
    }
}

/// Decodes a WebDriver screenshot answer (base64 PNG) and writes it to `path`.
fn write_png(path: &Path, value: &Value) -> anyhow::Result<()> {
    let encoded = value
        .as_str()
        .ok_or_else(|| anyhow!("screenshot answer is not a string"))?;
    let png = base64_decode(encoded).context("screenshot answer is not base64")?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}

/// Standard base64 (with or without padding; whitespace ignored).
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.as_bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = sextet(c).ok_or_else(|| anyhow!("invalid base64 byte {c:#04x}"))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// An element found on the current page, remembered with the selector that found it so
/// errors can name it.
#[derive(Clone)]
pub struct Element {
    wire: Arc<Wire>,
    id: String,
    selector: String,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Element(`{}`)", self.selector)
    }
}

impl Element {
    /// The selector this element was found with.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The element as a script argument for [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn cmd(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.wire
            .call(method, &format!("element/{}/{path}", self.id), body)
            .await
            .with_context(|| format!("{what} `{}`", self.selector))
    }

    /// Clicks the element (scrolled into view first).
    pub async fn click(&self) -> anyhow::Result<()> {
        self.cmd("click", Method::POST, "click", Some(json!({})))
            .await?;
        Ok(())
    }

    /// Clears the element (an input or textarea).
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.cmd("clear", Method::POST, "clear", Some(json!({})))
            .await?;
        Ok(())
    }

    /// Types `text` into the element.
    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.cmd(
            "type into",
            Method::POST,
            "value",
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    /// Clears the element, then types `text`.
    pub async fn fill(&self, text: &str) -> anyhow::Result<()> {
        self.clear().await?;
        self.send_keys(text).await
    }

    /// The rendered text (as a user sees it).
    pub async fn text(&self) -> anyhow::Result<String> {
        let v = self.cmd("text of", Method::GET, "text", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute's value, `None` when the element lacks it.
    pub async fn attr(&self, name: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .cmd(
                &format!("attribute {name:?} of"),
                Method::GET,
                &format!("attribute/{name}"),
                None,
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// A DOM property (e.g. `value`, `checked`), `Null` when undefined.
    pub async fn property(&self, name: &str) -> anyhow::Result<Value> {
        self.cmd(
            &format!("property {name:?} of"),
            Method::GET,
            &format!("property/{name}"),
            None,
        )
        .await
    }

    /// Whether the element is rendered visibly.
    pub async fn is_displayed(&self) -> anyhow::Result<bool> {
        let v = self
            .cmd("visibility of", Method::GET, "displayed", None)
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Whether the element is enabled (not `disabled`).
    pub async fn is_enabled(&self) -> anyhow::Result<bool> {
        let v = self.cmd("state of", Method::GET, "enabled", None).await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Lower-case tag name.
    pub async fn tag_name(&self) -> anyhow::Result<String> {
        let v = self.cmd("tag of", Method::GET, "name", None).await?;
        Ok(v.as_str().unwrap_or_default().to_ascii_lowercase())
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a*b").is_err());
    }

    #[test]
    fn screenshot_dir_is_under_the_workspace_target() {
        let dir = screenshot_dir("unit-probe");
        assert!(dir.ends_with("browser-screenshots/unit-probe"), "{dir:?}");
        let _ = std::fs::remove_dir(&dir);
    }
}
