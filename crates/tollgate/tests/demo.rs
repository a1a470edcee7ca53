//! `tollgate demo` works as printed: it starts, and every curl command in its banner
//! succeeds against it.

mod common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn demo_prints_commands_that_work_as_printed() {
    let proxy = tollgate_testkit::free_addr().unwrap();
    let admin = tollgate_testkit::free_addr().unwrap();
    let portal = tollgate_testkit::free_addr().unwrap();
    let mut child = Command::new(bin())
        .args([
            "demo",
            "--proxy-listen",
            &proxy.to_string(),
            "--admin-listen",
            &admin.to_string(),
            "--portal-listen",
            &portal.to_string(),
        ])
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut guard = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut banner = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("Press Ctrl-C");
                banner.push(line);
                if done {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    let text = banner.join("\n");
    assert!(
        text.contains("Press Ctrl-C"),
        "the demo did not start:\n{text}"
    );
    let curls: Vec<&str> = banner
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(curls.len() >= 5, "{text}");
    for cmd in curls {
        let cmd = cmd.split("  #").next().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd.replacen(
                "curl ",
                "curl --fail-with-body --silent --show-error --max-time 10 ",
                1,
            ))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        let expect_401 = banner_line_says(&text, cmd, "# 401");
        if expect_401 {
            assert_eq!(
                out.status.code(),
                Some(22),
                "`{cmd}` should answer 401: {body}"
            );
            assert!(body.contains("unauthenticated"), "{body}");
        } else if cmd.contains("/v3/") {
            assert_eq!(
                out.status.code(),
                Some(22),
                "`{cmd}` should answer 404: {body}"
            );
            assert!(
                body.contains("problem") || body.contains("not-found"),
                "{body}"
            );
        } else {
            assert!(
                out.status.success(),
                "`{cmd}` failed: {body} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if cmd.contains("/v1/orders") {
            assert!(body.to_lowercase().contains("deprecation: @"), "{body}");
        }
        if cmd.contains("/metrics") {
            assert!(body.contains("tollgate_requests_total"), "{body}");
        }
    }
    // The printed sign-ins work: the dashboard's and the portal's.
    for (who, url) in [
        ("admin@demo.test", format!("http://{admin}")),
        ("dev@acme.test", format!("http://{portal}")),
    ] {
        let line = banner
            .iter()
            .find(|l| l.contains(&format!("sign in: {who} / ")))
            .unwrap_or_else(|| panic!("no sign-in for {who}:\n{text}"));
        let password = line
            .split(&format!("{who} / "))
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert_eq!(sign_in(&url, who, password), 303, "{who} signs in at {url}");
        assert_eq!(sign_in(&url, who, "not the password"), 401);
    }
    let mut child = guard.0.take().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exited with {status:?}");
}

/// Signs in with curl as a browser would (the form's token and its cookie), and answers the
/// status of the sign-in.
fn sign_in(base: &str, email: &str, password: &str) -> u16 {
    let jar = tempfile::NamedTempFile::new().unwrap();
    let jar = jar.path().to_str().unwrap();
    let page = Command::new("curl")
        .args(["-s", "-c", jar, &format!("{base}/login")])
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&page.stdout);
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-b",
            jar,
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("email={email}"),
            "--data-urlencode",
            &format!("password={password}"),
            &format!("{base}/login"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// Whether the banner line that holds `cmd` carries `marker` in its comment.
fn banner_line_says(banner: &str, cmd: &str, marker: &str) -> bool {
    banner
        .lines()
        .any(|l| l.split("  #").next().unwrap_or("").trim() == cmd.trim() && l.contains(marker))
}

/// Stops the demo if the test fails before it does.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
