//! The two journeys of the web UI, end to end in headless Chromium against the real binary:
//!
//! 1. A developer signs up in the portal, creates an app, subscribes it to the free plan,
//!    gets a key, calls the API through the gateway (plain HTTP calls, as curl would, and
//!    once from the reference page's console), and sees those calls in the app's usage.
//! 2. An administrator signs in to the dashboard, sees the calls on the overview, approves
//!    a pending subscription, deprecates a version, and finds that change in the audit
//!    log; the developer's app page then warns about the deprecated version.
//!
//! Every page visited is saved as a PNG under `target/browser-screenshots/web_journeys/`.
//! Without Chromium the test is skipped locally (with the reason) and fails in CI.

mod common;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tollgate_testkit::browser::{Browser, screenshot_dir};

const SPEC: &str = r#"
openapi: 3.0.3
info: { title: Weather, version: "1", description: Forecasts by city. }
servers: [{ url: /weather/v1 }]
paths:
  /today:
    get:
      operationId: today
      summary: Today's weather
      parameters:
        - { name: city, in: query, schema: { type: string }, description: City name }
      responses: { "200": { description: The forecast } }
"#;

fn config(upstream: &str) -> String {
    let spec: String = SPEC.lines().map(|l| format!("          {l}\n")).collect();
    format!(
        r#"
format_version: 1
upstreams:
  - name: svc
    targets: [{{ url: "{upstream}" }}]
apis:
  - name: weather
    title: Weather
    visibility: public
    versions:
      - version: v1
        upstream: svc
        spec: |
{spec}
        routes:
          - path: /weather/v1
            policies: [{{ key_auth: {{}} }}]
      - version: v2
        upstream: svc
        routes:
          - path: /weather/v2
            policies: [{{ key_auth: {{}} }}]
products:
  - name: weather
    title: Weather data
    description: Forecasts for every city.
    visibility: public
    apis: [weather@v1, weather@v2]
    plans:
      - name: free
        title: Free
        quota: {{ limit: 1000, period: month }}
      - name: pro
        title: Pro
        approval: manual
        price: {{ base_fee: "49.00", metered: {{ model: per_unit, unit_price: "0.001" }} }}
"#
    )
}

const WAIT: Duration = Duration::from_secs(10);

/// Saves a screenshot named `NN-what.png`.
async fn shot(b: &Browser, n: &mut u32, what: &str) {
    *n += 1;
    let path = screenshot_dir("web_journeys").join(format!("{:02}-{what}.png", *n));
    b.screenshot(&path).await.unwrap();
}

/// Reloads the page until `check` holds on the text of `css`, or fails after `timeout`.
async fn reload_until(
    b: &Browser,
    css: &str,
    timeout: Duration,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = b.text(css).await.unwrap_or_default();
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "`{css}` still reads {text:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.refresh().await.unwrap();
    }
}

fn number(text: &str) -> u64 {
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn web_journeys() {
    let Some(mut dev) = Browser::launch_or_skip().await else {
        return;
    };
    // Screenshots of this run only.
    let _ = std::fs::remove_dir_all(screenshot_dir("web_journeys"));
    let dir = screenshot_dir("web_journeys");
    dev.screenshot_on_failure(dir.join("failure-developer.png"));
    let upstream = MockUpstream::start("svc").await;
    let node = Node::start(bin(), Some(&config(&upstream.url())))
        .await
        .unwrap();
    let portal = |p: &str| node.portal_url(p);
    let dash = |p: &str| node.admin_url(p);
    let mut n = 0;

    // ---- Journey 1: the developer ----
    dev.goto(&portal("/")).await.unwrap();
    dev.wait_for("#product-weather", WAIT).await.unwrap();
    assert!(
        dev.text("#plan-weather-pro")
            .await
            .unwrap()
            .contains("49.00 USD / month")
    );
    shot(&dev, &mut n, "portal-catalog").await;

    dev.goto(&portal("/apps")).await.unwrap();
    assert!(
        dev.current_url().await.unwrap().contains("/login?next="),
        "apps need a session"
    );
    dev.goto(&portal("/signup")).await.unwrap();
    dev.fill("#email", "dana@example.com").await.unwrap();
    dev.fill("#name", "Dana").await.unwrap();
    dev.fill("#password", "short").await.unwrap();
    dev.click("button[type=submit]").await.unwrap();
    dev.wait_for("#password-error", WAIT).await.unwrap();
    shot(&dev, &mut n, "portal-signup-error").await;
    dev.fill("#password", "a long enough password")
        .await
        .unwrap();
    dev.click("button[type=submit]").await.unwrap();
    dev.wait_for_text(".flash.ok", "Welcome", WAIT)
        .await
        .unwrap();
    shot(&dev, &mut n, "portal-apps-empty").await;

    dev.fill("#app-name", "dana-weather").await.unwrap();
    dev.click("form[action='/apps'] button[type=submit]")
        .await
        .unwrap();
    dev.wait_for_text("h1", "dana-weather", WAIT).await.unwrap();
    dev.select("#plan", "weather:free").await.unwrap();
    dev.click("form[action$='/subscribe'] button[type=submit]")
        .await
        .unwrap();
    dev.wait_for_text(".flash.ok", "Subscribed", WAIT)
        .await
        .unwrap();
    dev.click("#create-key").await.unwrap();
    let key = dev
        .wait_for("#new-secret", WAIT)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(key.len() >= 16, "{key}");
    shot(&dev, &mut n, "portal-app-new-key").await;

    // Calls through the gateway with the new key, as curl would make them.
    let client = Client::new();
    for i in 0..7 {
        let reply = client
            .get_with(
                &node.proxy_url(&format!("/weather/v1/today?city=c{i}")),
                &[("x-api-key", &key)],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let refused = client
        .get(&node.proxy_url("/weather/v1/today"))
        .await
        .unwrap();
    assert_eq!(refused.status, 401);

    // And one from the reference page's console.
    dev.goto(&portal("/docs/weather/v1")).await.unwrap();
    dev.wait_for("#op-today", WAIT).await.unwrap();
    dev.fill("#try-key", &key).await.unwrap();
    dev.fill("#query-today", "city=Lisbon").await.unwrap();
    dev.click("#op-today button[type=submit]").await.unwrap();
    let status = dev
        .wait_for("#result-today [data-status]", WAIT)
        .await
        .unwrap();
    assert_eq!(
        status.attr("data-status").await.unwrap().as_deref(),
        Some("200 OK")
    );
    assert!(
        dev.current_url()
            .await
            .unwrap()
            .ends_with("/docs/weather/v1"),
        "htmx kept the page"
    );
    shot(&dev, &mut n, "portal-reference-try-it").await;
    assert_eq!(upstream.requests().len(), 8);

    // The developer sees the eight calls in the app's usage.
    dev.goto(&portal("/apps/dana-weather")).await.unwrap();
    reload_until(&dev, "#usage-requests", Duration::from_secs(15), |t| {
        number(t) == 8
    })
    .await;
    // Usage counts are written every second, analytics (which the chart draws) every two:
    // the page may need another load before the chart has its points.
    let deadline = Instant::now() + Duration::from_secs(15);
    while dev
        .wait_for("#chart-usage[data-rendered]", Duration::from_secs(3))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the usage chart was never drawn");
        dev.refresh().await.unwrap();
    }
    shot(&dev, &mut n, "portal-app-usage").await;

    // A second app asks for the plan that needs approval.
    dev.goto(&portal("/apps")).await.unwrap();
    dev.fill("#app-name", "dana-batch").await.unwrap();
    dev.click("form[action='/apps'] button[type=submit]")
        .await
        .unwrap();
    dev.wait_for_text("h1", "dana-batch", WAIT).await.unwrap();
    dev.select("#plan", "weather:pro").await.unwrap();
    dev.click("form[action$='/subscribe'] button[type=submit]")
        .await
        .unwrap();
    dev.wait_for_text(".flash.ok", "waits for approval", WAIT)
        .await
        .unwrap();
    assert!(
        dev.text("#subscriptions")
            .await
            .unwrap()
            .contains("pending")
    );
    shot(&dev, &mut n, "portal-app-pending").await;

    // ---- Journey 2: the administrator ----
    let reply = node
        .admin_request(
            "POST",
            "/api/users",
            &[("content-type", "application/json")],
            json!({"email": "ops@example.com", "password": "operator password", "role": "admin"})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    let mut admin = Browser::launch().await.unwrap();
    admin.screenshot_on_failure(dir.join("failure-admin.png"));
    admin.goto(&dash("/")).await.unwrap();
    admin.wait_for("#password", WAIT).await.unwrap();
    assert!(admin.current_url().await.unwrap().ends_with("/login"));
    shot(&admin, &mut n, "dashboard-sign-in").await;
    admin.fill("#email", "ops@example.com").await.unwrap();
    admin.fill("#password", "operator password").await.unwrap();
    admin.click("button[type=submit]").await.unwrap();
    admin.wait_for("#stat-requests", WAIT).await.unwrap();

    // The calls reach the overview once the analytics flush (a few seconds).
    reload_until(&admin, "#stat-requests", Duration::from_secs(30), |t| {
        number(t) >= 8
    })
    .await;
    admin
        .wait_for("#chart-traffic[data-rendered]", WAIT)
        .await
        .unwrap();
    let chart = admin.text("#chart-traffic").await.unwrap();
    assert!(
        !chart.contains("No traffic"),
        "the chart shows the calls: {chart}"
    );
    let plotted: u64 = admin
        .execute(
            "const u = document.querySelector('#chart-traffic .uplot'); return u ? 1 : 0;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(0);
    assert_eq!(plotted, 1, "a uPlot chart is drawn");
    assert!(
        admin
            .text("#top-routes")
            .await
            .unwrap()
            .contains("weather@v1")
    );
    assert!(
        admin
            .text("#top-apps")
            .await
            .unwrap()
            .contains("dana-weather")
    );
    shot(&admin, &mut n, "dashboard-overview").await;
    admin.set_viewport_size(390, 844).await.unwrap();
    shot(&admin, &mut n, "dashboard-overview-phone").await;
    let overflow = admin
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(false), "no sideways scrolling on a phone");
    admin.set_viewport_size(1280, 800).await.unwrap();

    // The approval queue.
    admin.click("a[href='/subscriptions']").await.unwrap();
    let row = "[id='sub-dana-batch:weather']";
    admin
        .wait_for(&format!("#approval-queue {row}"), WAIT)
        .await
        .unwrap();
    shot(&admin, &mut n, "dashboard-approval-queue").await;
    admin.click(&format!("{row} button.primary")).await.unwrap();
    admin
        .wait_for_text(".flash.ok", "approved", WAIT)
        .await
        .unwrap();
    let sub = node
        .admin_get("/api/subscriptions/dana-batch:weather")
        .await
        .unwrap()
        .json();
    assert_eq!(sub["status"], "active", "{sub}");
    shot(&admin, &mut n, "dashboard-approved").await;

    // Deprecate v1 with a sunset date and its successor.
    admin.click("a[href='/apis']").await.unwrap();
    admin.wait_for("#version-weather-v1", WAIT).await.unwrap();
    admin
        .execute(
            "document.querySelector('#sunset-weather-v1').value = arguments[0];",
            vec![json!("2027-06-30")],
        )
        .await
        .unwrap();
    admin.fill("#successor-weather-v1", "v2").await.unwrap();
    admin
        .click("#version-weather-v1 button[type=submit]")
        .await
        .unwrap();
    admin
        .wait_for("#version-weather-v1 [data-status='deprecated']", WAIT)
        .await
        .unwrap();
    shot(&admin, &mut n, "dashboard-deprecated").await;
    let deprecated = client
        .get_with(&node.proxy_url("/weather/v1/today"), &[("x-api-key", &key)])
        .await
        .unwrap();
    assert_eq!(deprecated.status, 200);
    assert!(deprecated.header("deprecation").is_some());
    assert!(deprecated.header("sunset").unwrap().contains("2027"));

    // The change is in the audit log, by this person.
    admin.click("a[href='/audit']").await.unwrap();
    let entries = admin
        .wait_for("#audit-entries", WAIT)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let newest = entries.split("user:").nth(1).unwrap_or_default();
    assert!(
        newest.starts_with("ops@example.com") && newest.contains("weather@v1"),
        "the newest change is this person's: {entries}"
    );
    assert!(entries.contains("deprecated"), "{entries}");
    assert!(
        admin
            .text("#audit-intact")
            .await
            .unwrap()
            .contains("intact")
    );
    shot(&admin, &mut n, "dashboard-audit-log").await;

    // Every dashboard page answers for the signed-in user.
    for (path, name) in [
        ("/products", "products"),
        ("/apps", "apps"),
        ("/invoices", "invoices"),
        ("/nodes", "nodes"),
        ("/users", "users"),
    ] {
        admin.goto(&dash(path)).await.unwrap();
        admin.wait_for("main.content h1", WAIT).await.unwrap();
        shot(&admin, &mut n, &format!("dashboard-{name}")).await;
    }

    // Back in the portal, the developer is told about the deprecated version they call.
    dev.goto(&portal("/apps/dana-weather")).await.unwrap();
    let warning = dev
        .wait_for(".flash.deprecation", WAIT)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        warning.contains("weather v1") && warning.contains("v2"),
        "{warning}"
    );
    shot(&dev, &mut n, "portal-deprecation-notice").await;

    // The portal's pages read on a phone too: nothing scrolls sideways.
    dev.set_viewport_size(390, 844).await.unwrap();
    for (path, name) in [
        ("/", "catalog"),
        ("/apps/dana-weather", "app"),
        ("/docs/weather/v1", "reference"),
    ] {
        dev.goto(&portal(path)).await.unwrap();
        dev.wait_for("main.content h1", WAIT).await.unwrap();
        let overflow = dev
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth + 1;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(overflow, json!(false), "{path} scrolls sideways on a phone");
        shot(&dev, &mut n, &format!("portal-{name}-phone")).await;
    }

    admin.close().await;
    dev.close().await;
}
