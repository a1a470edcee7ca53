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
