//! Products, plans and subscriptions at the gateway: only subscribed apps get in, and the
//! plan's limits apply to each of them. Plus the pricing quote of the admin API.

mod common;
use common::*;

fn config(m: &MockUpstream) -> String {
    format!(
        r#"format_version: 1
upstreams:
{}apis:
  - name: orders
    policies: [{{ key_auth: {{}} }}]
    versions:
      - version: v1
        upstream: svc
        routes: [{{ path: /v1 }}]
      - version: v2
        upstream: svc
        routes: [{{ path: /v2 }}]
products:
  - name: orders
    apis: [orders@v2]
    plans:
      - name: free
        rate_limit: {{ limit: 2, window: 1m }}
        price: {{ model: free }}
      - name: pro
        approval: manual
        quota: {{ limit: 1000, period: month }}
        price:
          base_fee: 49.00
          metered: {{ model: graduated, tiers: [{{ up_to: 1000, unit_price: 0.10 }}, {{ up_to: 10000, unit_price: 0.05 }}, {{ unit_price: 0.01 }}] }}
developers:
  - email: dev@example.test
apps:
  - {{ name: one, owner: dev@example.test, keys: [{{ secret: key-one-0123456789 }}] }}
  - {{ name: two, owner: dev@example.test, keys: [{{ secret: key-two-0123456789 }}] }}
  - {{ name: three, owner: dev@example.test, keys: [{{ secret: key-three-012345678 }}] }}
subscriptions:
  - {{ app: one, product: orders, plan: free }}
  - {{ app: two, product: orders, plan: pro, status: pending }}
"#,
        upstream("svc", &[m.url()], "")
    )
}

#[tokio::test]
async fn only_subscribed_apps_call_a_product_and_plans_limit_each_app() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let client = Client::new();
    let call = |path: &'static str, key: &'static str| {
        let client = client.clone();
        let url = node.proxy_url(path);
        async move { client.get_with(&url, &[("x-api-key", key)]).await.unwrap() }
    };
    // The free plan: two calls a minute for app one, counted across the product.
    let r = call("/v2", "key-one-0123456789").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-policy"), Some("\"app-1m\";q=2;w=60"));
    assert_eq!(call("/v2", "key-one-0123456789").await.status, 200);
    let r = call("/v2", "key-one-0123456789").await;
    assert_eq!(r.status, 429);
    assert!(r.json()["type"].as_str().unwrap().ends_with("rate-limited"));

    // A pending subscription and no subscription: 403, saying why.
    let r = call("/v2", "key-two-0123456789").await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["detail"].as_str().unwrap().contains("is pending"),
        "{}",
        r.text()
    );
    let r = call("/v2", "key-three-012345678").await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("no subscription to product `orders`"),
        "{}",
        r.text()
    );
    // A version in no product needs only its policies.
    assert_eq!(call("/v1", "key-three-012345678").await.status, 200);
    assert_eq!(call("/v1", "key-one-0123456789").await.status, 200);

    // Approving the subscription lets app two in, under the pro plan's quota.
    let approved = config(&m).replace(
        "{ app: two, product: orders, plan: pro, status: pending }",
        "{ app: two, product: orders, plan: pro }",
    );
    let r = admin_put_yaml(&node, &approved).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call("/v2", "key-two-0123456789").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("ratelimit")
            .unwrap()
            .starts_with("\"quota-month\";r=999;"),
        "{:?}",
        r.header("ratelimit")
    );
}

#[tokio::test]
async fn bad_products_and_subscriptions_are_refused_by_path() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let bad = config(&m)
        .replace("apis: [orders@v2]", "apis: [orders@v9]")
        .replace("plan: free }", "plan: gold }")
        .replace(
            "rate_limit: { limit: 2, window: 1m }",
            "rate_limit: { limit: 2, window: 1m, by: ip }",
        )
        .replace("base_fee: 49.00", "base_fee: -1");
    let r = admin_put_yaml(&node, &bad).await.unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    let text = r.text();
    for needle in [
        "products[0].apis[0]",
        "products[0].plans[0].rate_limit.by",
        "products[0].plans[1].price.base_fee",
        "subscriptions[0].plan",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[tokio::test]
async fn the_pricing_quote_shows_the_worked_example() {
    let node = start("format_version: 1\n").await;
    let body = r#"{"price":{"currency":"USD","metered":{"model":"graduated","tiers":[{"up_to":1000,"unit_price":"0.10"},{"up_to":10000,"unit_price":0.05},{"unit_price":"0.01"}]}},"quantity":15000}"#;
    let r = node
        .admin_request(
            "POST",
            "/api/pricing/quote",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let q = r.json();
    assert_eq!(q["total"], "600.00");
    assert_eq!(q["lines"][1]["quantity"], 9000);
    assert_eq!(q["lines"][1]["unit_price"], "0.05");
    assert_eq!(q["lines"][1]["amount"], "450.00");
    let volume = body.replace("graduated", "volume");
    let r = node
        .admin_request(
            "POST",
            "/api/pricing/quote",
            &[("content-type", "application/json")],
            volume,
        )
        .await
        .unwrap();
    assert_eq!(r.json()["total"], "150.00");
    let bad = r#"{"price":{"metered":{"model":"graduated","tiers":[{"up_to":10}]}},"quantity":1}"#;
    let r = node
        .admin_request(
            "POST",
            "/api/pricing/quote",
            &[("content-type", "application/json")],
            bad.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("price.metered.tiers[0].up_to"),
        "{}",
        r.text()
    );
    // Without a token: 401.
    let r = Client::new()
        .post(&node.admin_url("/api/pricing/quote"), body.to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_viewer_may_quote_prices() {
    let node = start("format_version: 1\n").await;
    let r = node
        .admin_request(
            "POST",
            "/api/tokens",
            &[("content-type", "application/json")],
            r#"{"name":"ro","role":"viewer"}"#.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let quote =
        r#"{"price":{"metered":{"model":"per_unit","unit_price":"0.001"}},"quantity":1500}"#;
    let r = Client::new()
        .request(
            "POST",
            &node.admin_url("/api/pricing/quote"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            quote.as_bytes().to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["total"], "1.50");
    // The same viewer may not change anything.
    let r = Client::new()
        .request(
            "POST",
            &node.admin_url("/api/cache/purge"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"api":"x"}"#.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn usage_is_metered_per_subscription_exactly_and_survives_a_crash() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(&m).replace(
        "rate_limit: { limit: 2, window: 1m }",
        "rate_limit: { limit: 1000, window: 1m }",
    );
    let mut node = start(&yaml).await;
    let client = Client::new();
    let call = |path: &'static str| {
        let client = client.clone();
        let url = node.proxy_url(path);
        async move {
            client
                .get_with(&url, &[("x-api-key", "key-one-0123456789")])
                .await
                .unwrap()
                .status
        }
    };
    for _ in 0..5 {
        assert_eq!(call("/v2/orders").await, 200);
    }
    for _ in 0..2 {
        assert_eq!(call("/v2/status/500").await, 500);
    }
    // Not in a product: not metered.
    assert_eq!(call("/v1/orders").await, 200);
    let period = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let days = now.div_euclid(86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}")
    };
    let usage_path = format!("/api/usage?app=one&period={period}");
    let read = |node: &Node| {
        let path = usage_path.clone();
        let node_admin = node.admin_url(&path);
        let bearer = node.bearer();
        async move {
            Client::new()
                .get_with(&node_admin, &[("authorization", &bearer)])
                .await
                .unwrap()
                .json()
        }
    };
    // Counts reach the store within the flush interval (1 s).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let u = read(&node).await;
    assert_eq!(u["requests"], 7, "{u}");
    assert_eq!(u["billable"], 5, "only 2xx is billable on this plan: {u}");
    assert_eq!(u["subscriptions"][0]["product"], "orders");
    assert_eq!(u["subscriptions"][0]["plan"], "free");

    // A crash after the flush loses nothing; the restarted node adds to it.
    node.kill();
    node.restart().await.unwrap();
    let client = Client::new();
    let r = client
        .get_with(
            &node.proxy_url("/v2/orders"),
            &[("x-api-key", "key-one-0123456789")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let u = read(&node).await;
    assert_eq!(
        (u["requests"].as_u64(), u["billable"].as_u64()),
        (Some(8), Some(6)),
        "{u}"
    );

    let bad = Client::new()
        .get_with(
            &node.admin_url("/api/usage?app=one&period=2026-13"),
            &[("authorization", &node.bearer())],
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn an_invoice_bills_exactly_the_billable_calls_and_reruns_identically() {
    let m = MockUpstream::start("svc").await;
    let yaml = config(&m)
        .replace(
            "plan: free }",
            "plan: paid }",
        )
        .replace(
            "      - name: pro\n",
            "      - name: paid\n        price: { base_fee: 49.00, metered: { model: graduated, tiers: [{ up_to: 10, unit_price: 0.10 }, { up_to: 100, unit_price: 0.05 }, { unit_price: 0.01 }] } }\n      - name: pro\n",
        );
    let node = start(&yaml).await;
    let client = Client::new();
    for i in 0..153 {
        let path = if i % 51 == 50 {
            "/v2/status/503"
        } else {
            "/v2/o"
        };
        let r = client
            .get_with(
                &node.proxy_url(path),
                &[("x-api-key", "key-one-0123456789")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, if i % 51 == 50 { 503 } else { 200 });
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let period = node
        .admin_get("/api/usage?app=one&period=2000-01")
        .await
        .unwrap();
    assert_eq!(period.json()["requests"], 0, "nothing in another month");
    // This month, as the server's clock has it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let month = {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{now}"), "+%Y-%m"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let run_path = format!("/api/invoices/run?period={month}");
    let r = node
        .admin_request("POST", &run_path, &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json();
    let inv = first["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["app"] == "one")
        .unwrap()
        .clone();
    assert_eq!(inv["plan"], "paid");
    assert_eq!(inv["usage"]["billable"], 150, "{inv}");
    assert_eq!(inv["usage"]["requests"], 153);
    let amounts: Vec<(&str, &str)> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["description"].as_str().unwrap(),
                l["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        vec![
            ("base fee", "49.00"),
            ("usage, tier 1", "1.00"),
            ("usage, tier 2", "4.50"),
            ("usage, tier 3", "0.50")
        ]
    );
    assert_eq!(inv["total"], "55.00");
    // Running the period again gives the same invoices; they can be listed and fetched.
    let again = node
        .admin_request("POST", &run_path, &[], "")
        .await
        .unwrap()
        .json();
    assert_eq!(again, first);
    let listed = node
        .admin_get(&format!("/api/invoices?period={month}"))
        .await
        .unwrap()
        .json();
    assert_eq!(listed["invoices"], first["invoices"]);
    let one = node
        .admin_get(&format!("/api/invoices/{}", inv["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(one.json(), inv);
    assert_eq!(
        node.admin_get("/api/invoices/inv_nope")
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test]
async fn subscriptions_move_through_their_lifecycle_over_rest() {
    let m = MockUpstream::start("svc").await;
    let node = start(&config(&m)).await;
    let json = |v: &str| v.to_string();
    let n = &node;
    let post = |path: String, body: String| async move {
        n.admin_request("POST", &path, &[("content-type", "application/json")], body)
            .await
            .unwrap()
    };
    // The approval queue holds app two's pending subscription.
    let q = node
        .admin_get("/api/subscriptions?status=pending")
        .await
        .unwrap()
        .json();
    assert_eq!(q["subscriptions"][0]["id"], "two:orders", "{q}");
    let call = || {
        let url = node.proxy_url("/v2");
        async move {
            Client::new()
                .get_with(&url, &[("x-api-key", "key-three-012345678")])
                .await
                .unwrap()
                .status
        }
    };
    // A manual plan starts pending: still 403 until approved.
    let r = post(
        "/api/subscriptions".into(),
        json(r#"{"app":"three","product":"orders","plan":"pro"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(call().await, 403);
    let r = post(
        "/api/subscriptions/three:orders/approve".into(),
        String::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(call().await, 200);
    // Suspended: refused again; resumed: served.
    assert_eq!(
        post(
            "/api/subscriptions/three:orders/suspend".into(),
            String::new()
        )
        .await
        .status,
        200
    );
    assert_eq!(call().await, 403);
    let r = post(
        "/api/subscriptions/three:orders/approve".into(),
        String::new(),
    )
    .await;
    assert_eq!(r.status, 409, "approve is for pending ones: {}", r.text());
    assert_eq!(
        post(
            "/api/subscriptions/three:orders/resume".into(),
            String::new()
        )
        .await
        .status,
        200
    );
    assert_eq!(call().await, 200);
    // One subscription per app and product; a plan that does not exist is refused.
    let r = post(
        "/api/subscriptions".into(),
        json(r#"{"app":"three","product":"orders","plan":"free"}"#),
    )
    .await;
    assert_eq!(r.status, 409);
    let r = post(
        "/api/subscriptions".into(),
        json(r#"{"app":"two","product":"nope","plan":"free"}"#),
    )
    .await;
    assert!(r.status == 409 || r.status == 422, "{}", r.text());
    let r = post(
        "/api/subscriptions/three:orders/cancel".into(),
        String::new(),
    )
    .await;
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(call().await, 403);
    let products = node.admin_get("/api/products").await.unwrap().json();
    assert_eq!(products["products"][0]["plans"][1]["approval"], "manual");
}

/// The current month, `YYYY-MM`, as the node's clock has it.
fn this_month() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Checks `Tollgate-Signature` of a received webhook against the secret.
fn signed_by(hook: &Hook, secret: &str) -> bool {
    let Some(sig) = hook.headers.get("tollgate-signature") else {
        return false;
    };
    let Some(t) = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now - t).abs() < 300 && *sig == tollgate_admin::signature(secret, t, &hook.body)
}

fn billing_config(m: &MockUpstream, hooks: &HookReceiver, events: &str) -> String {
    format!(
        r#"format_version: 1
upstreams:
{}apis:
  - name: orders
    policies: [{{ key_auth: {{}} }}]
    versions:
      - version: v2
        upstream: svc
        routes: [{{ path: /v2 }}]
products:
  - name: orders
    apis: [orders@v2]
    plans:
      - name: basic
        price: {{ base_fee: 62.00, setup_fee: 5.00 }}
      - name: pro
        price: {{ base_fee: 31.00 }}
      - name: small
        quota: {{ limit: 5, period: month }}
        price: {{ metered: {{ model: per_unit, unit_price: 0.10 }} }}
      - name: tiny
        quota: {{ limit: 2, period: month }}
      - name: prepaid
        prepaid: true
        price: {{ metered: {{ model: per_unit, unit_price: 1.00 }} }}
developers:
  - {{ email: dev@example.test, billing_customer: cus_TEST123 }}
apps:
  - {{ name: one, owner: dev@example.test, keys: [{{ secret: key-one-0123456789 }}] }}
  - {{ name: two, owner: dev@example.test, keys: [{{ secret: key-two-0123456789 }}] }}
subscriptions:
  - app: one
    product: orders
    plan: pro
    started_at: "2026-10-11T00:00:00Z"
    history: [{{ plan: basic, until: "2026-10-21T00:00:00Z" }}]
webhooks:
  - name: billing
    url: {}
    events: [{events}]
    secret: whsec-test-0123456789
"#,
        upstream("svc", &[m.url()], ""),
        hooks.url()
    )
}

#[tokio::test]
async fn a_month_with_a_plan_change_is_billed_per_plan_and_finalized_with_a_signed_webhook() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let node = start(&billing_config(&m, &hooks, "invoice.finalized")).await;
    // The secret is sealed at rest: the export does not show it.
    let export = node.admin_get("/api/config").await.unwrap().text();
    assert!(!export.contains("whsec-test-0123456789"), "{export}");

    let r = node
        .admin_request("POST", "/api/invoices/run?period=2026-10", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let run = r.json();
    assert_eq!(run["status"], "final");
    let inv = &run["invoices"][0];
    let lines: Vec<(&str, &str)> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["description"].as_str().unwrap(),
                l["amount"].as_str().unwrap(),
            )
        })
        .collect();
    // basic from Oct 11 to 21 (10 of 31 days) with its setup fee, then pro (11 of 31 days).
    assert_eq!(
        lines,
        [
            ("basic: setup fee", "5.00"),
            ("basic: base fee", "20.00"),
            ("pro: base fee", "11.00")
        ],
        "{inv}"
    );
    assert_eq!(inv["total"], "36.00");
    assert_eq!(inv["plans"].as_array().unwrap().len(), 2);

    // invoice.finalized arrives once, signed; an identical re-run sends nothing new.
    assert!(
        wait_until(std::time::Duration::from_secs(10), || async {
            !hooks.received().is_empty()
        })
        .await
    );
    let hook = hooks.received()[0].clone();
    assert_eq!(
        hook.headers.get("tollgate-event").map(String::as_str),
        Some("invoice.finalized")
    );
    assert!(
        signed_by(&hook, "whsec-test-0123456789"),
        "{:?}",
        hook.headers
    );
    assert!(!signed_by(&hook, "whsec-test-other-secret"));
    assert_eq!(hook.json()["data"]["total"], "36.00");
    assert_eq!(hook.json()["type"], "invoice.finalized");
    node.admin_request("POST", "/api/invoices/run?period=2026-10", &[], "")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(hooks.received().len(), 1);
    let delivered = node
        .admin_get("/api/webhooks/deliveries?status=delivered")
        .await
        .unwrap()
        .json();
    assert_eq!(delivered["deliveries"].as_array().unwrap().len(), 1);
    let notices = node
        .admin_get("/api/notices?developer=dev@example.test")
        .await
        .unwrap()
        .json();
    assert_eq!(notices["notices"][0]["kind"], "invoice.finalized");

    // The same invoice as CSV, one row per line.
    let csv = node
        .admin_get("/api/invoices?period=2026-10&format=csv")
        .await
        .unwrap();
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let rows: Vec<&str> = csv
        .text()
        .leak()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].starts_with("invoice_id,period,app,product,plan,currency,line,"));
    assert!(
        rows[1].contains(",basic: setup fee,1,5,5.00,"),
        "{}",
        rows[1]
    );
    assert!(rows[3].ends_with(",36.00"), "{}", rows[3]);

    // The simulator: the same October on basic all along would have cost 47.00.
    let sim = node
        .admin_get("/api/simulate?app=one&product=orders&plan=basic&period=2026-10")
        .await
        .unwrap();
    assert_eq!(sim.status, 200, "{}", sim.text());
    let sim = sim.json();
    assert_eq!(sim["actual"]["total"], "36.00");
    assert_eq!(sim["simulated"]["total"], "47.00", "{sim}");
    assert_eq!(sim["difference"], "11.00");
    let nope = node
        .admin_get("/api/simulate?app=one&product=orders&plan=gold&period=2026-10")
        .await
        .unwrap();
    assert_eq!(nope.status, 404);
}

#[tokio::test]
async fn plan_changes_over_rest_are_dated_within_the_month_and_enforced_at_once() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let node = start(&billing_config(&m, &hooks, "\"*\"")).await;
    let r = node
        .admin_request(
            "POST",
            "/api/subscriptions",
            &[],
            r#"{"app":"two","product":"orders","plan":"small"}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json()["started_at"].as_str().is_some());
    let change = |body: &'static str| {
        let node = &node;
        async move {
            node.admin_request("POST", "/api/subscriptions/two:orders/change", &[], body)
                .await
                .unwrap()
        }
    };
    let r = change(r#"{"plan":"tiny","effective_at":"2020-01-01T00:00:00Z"}"#).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("current month")
    );
    let r = change(r#"{"plan":"tiny","effective_at":"2999-01-01T00:00:00Z"}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap().contains("future"));
    assert_eq!(change(r#"{"plan":"gold"}"#).await.status, 404);
    assert_eq!(change(r#"{"plan":"small"}"#).await.status, 409);
    let r = change(r#"{"plan":"tiny"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["plan"], "tiny");
    assert_eq!(r.json()["history"][0]["plan"], "small");
    // The new plan's quota (2 a month) applies to the very next calls.
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = client
            .get_with(
                &node.proxy_url("/v2/x"),
                &[("x-api-key", "key-two-0123456789")],
            )
            .await
            .unwrap();
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn plan_quotas_notify_at_80_and_100_percent_and_usage_exports_for_stripe() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let yaml = billing_config(&m, &hooks, "quota.warning, quota.exhausted").replace(
        "webhooks:",
        "  - { app: two, product: orders, plan: small }\nwebhooks:",
    );
    let node = start(&yaml).await;
    let client = Client::new();
    let call = || async {
        client
            .get_with(
                &node.proxy_url("/v2/x"),
                &[("x-api-key", "key-two-0123456789")],
            )
            .await
            .unwrap()
            .status
    };
    for _ in 0..3 {
        assert_eq!(call().await, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(hooks.received().is_empty(), "nothing below 80%");
    assert_eq!(call().await, 200); // 4 of 5: 80%
    assert!(
        wait_until(std::time::Duration::from_secs(10), || async {
            hooks.received().len() == 1
        })
        .await
    );
    assert_eq!(call().await, 200); // 5 of 5: 100%
    assert_eq!(call().await, 429);
    assert_eq!(call().await, 429);
    assert!(
        wait_until(std::time::Duration::from_secs(10), || async {
            hooks.received().len() >= 2
        })
        .await
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let got = hooks.received();
    let kinds: Vec<_> = got
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["quota.warning", "quota.exhausted"]);
    assert!(got.iter().all(|h| signed_by(h, "whsec-test-0123456789")));
    assert_eq!(got[0].json()["data"]["used"], 4);
    assert_eq!(got[0].json()["data"]["limit"], 5);
    let notices = node.admin_get("/api/notices?app=two").await.unwrap().json();
    let kinds: Vec<_> = notices["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{notices}");
    assert!(kinds.contains(&"quota.warning") && kinds.contains(&"quota.exhausted"));

    // Stripe meter events: this hour's 5 billable calls for the developer's customer id.
    let month = this_month();
    let r = node
        .admin_get(&format!("/api/usage/export?period={month}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "identifier,timestamp,event_name,payload_stripe_customer_id,payload_value,payload_subscription"
    );
    let values: u64 = rows[1..]
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            assert_eq!(f[2], "api_requests");
            assert_eq!(f[3], "cus_TEST123");
            assert_eq!(f[5], "two:orders");
            f[4].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(values, 5);
    let jsonl = node
        .admin_get(&format!(
            "/api/usage/export?period={month}&format=stripe-jsonl&event_name=calls"
        ))
        .await
        .unwrap()
        .text();
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_name"], "calls");
    assert_eq!(first["payload"]["stripe_customer_id"], "cus_TEST123");
    assert_eq!(
        node.admin_get(&format!("/api/usage/export?period={month}&format=xml"))
            .await
            .unwrap()
            .status,
        400
    );

    // Metering reconciles with the request counters: every call of the API, once.
    let usage = node
        .admin_get(&format!("/api/usage?app=two&period={month}"))
        .await
        .unwrap()
        .json();
    assert_eq!(usage["requests"], 7);
    assert_eq!(usage["billable"], 5);
    let metrics = node.admin_get("/metrics").await.unwrap().text();
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("tollgate_requests_total{") && l.contains("api=\"orders\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 7, "{metrics}");
}

#[tokio::test]
async fn prepaid_credit_stops_calls_when_spent_and_a_top_up_resumes_them() {
    let m = MockUpstream::start("svc").await;
    let hooks = HookReceiver::start().await;
    let yaml = billing_config(&m, &hooks, "credit.exhausted").replace(
        "webhooks:",
        "  - { app: two, product: orders, plan: prepaid }\nwebhooks:",
    );
    let node = start(&yaml).await;
    let top_up = |amount: &'static str| {
        let node = &node;
        async move {
            node.admin_request(
                "POST",
                "/api/subscriptions/two:orders/credit",
                &[],
                format!(r#"{{"amount":"{amount}","note":"test"}}"#),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(top_up("-5").await.status, 400);
    // Credit only where the plan is prepaid.
    let r = node
        .admin_request(
            "POST",
            "/api/subscriptions/one:orders/credit",
            &[],
            r#"{"amount":"5"}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(top_up("0.001").await.status, 400);
    let r = top_up("3.00").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["available"], "3.00");
    let client = Client::new();
    let call = || async {
        client
            .get_with(
                &node.proxy_url("/v2/x"),
                &[("x-api-key", "key-two-0123456789")],
            )
            .await
            .unwrap()
    };
    // Each call costs 1.00: after three, the credit is spent and calls get 402 within
    // seconds (what runs over is billed).
    let mut ok = 0;
    let stopped = loop {
        let r = call().await;
        if r.status == 402 {
            break r;
        }
        assert_eq!(r.status, 200);
        ok += 1;
        assert!(ok < 40, "credit never stopped the calls");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(ok >= 3, "{ok}");
    assert!(
        stopped.json()["type"]
            .as_str()
            .unwrap()
            .ends_with("credit-exhausted")
    );
    let credit = node
        .admin_get("/api/subscriptions/two:orders/credit")
        .await
        .unwrap()
        .json();
    assert_eq!(credit["balance"], "3.00");
    assert_eq!(credit["spent_not_invoiced"], format!("{ok}.00"), "{credit}");
    assert!(
        wait_until(std::time::Duration::from_secs(10), || async {
            !hooks.received().is_empty()
        })
        .await
    );
    assert_eq!(hooks.received()[0].json()["type"], "credit.exhausted");
    // A top-up lets the app call again.
    assert_eq!(top_up("100").await.status, 201);
    assert!(
        wait_until(std::time::Duration::from_secs(8), || async {
            call().await.status == 200
        })
        .await,
        "calls did not resume after a top-up"
    );
}
