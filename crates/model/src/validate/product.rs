//! Checks of products, plans and subscriptions.

use std::collections::HashSet;

use super::{Errors, is_slug, traffic};
use crate::document::Document;
use crate::product::Subscription;
use crate::traffic::LimitBy;

pub(super) fn check_products(doc: &Document, errs: &mut Errors) {
    let versions: HashSet<String> = doc
        .apis
        .iter()
        .flat_map(|a| {
            a.versions
                .iter()
                .map(move |v| format!("{}@{}", a.name, v.version))
        })
        .collect();
    let mut names = HashSet::new();
    for (i, p) in doc.products.iter().enumerate() {
        let path = format!("products[{i}]");
        if !is_slug(&p.name) {
            errs.push(
                format!("{path}.name"),
                format!(
                    "`{}` is not a valid name: use lower-case letters, digits, `-` and `_`",
                    p.name
                ),
            );
        } else if !names.insert(p.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("product `{}` is defined twice", p.name),
            );
        }
        if p.apis.is_empty() {
            errs.push(
                format!("{path}.apis"),
                "a product needs at least one API version (api@version)",
            );
        }
        for (j, v) in p.apis.iter().enumerate() {
            if !v.contains('@') {
                errs.push(
                    format!("{path}.apis[{j}]"),
                    format!("`{v}` names no version: write api@version, e.g. orders@v1"),
                );
            } else if !versions.contains(v) {
                errs.push(
                    format!("{path}.apis[{j}]"),
                    format!("API version `{v}` does not exist"),
                );
            }
        }
        let mut plans = HashSet::new();
        for (j, plan) in p.plans.iter().enumerate() {
            let ppath = format!("{path}.plans[{j}]");
            if !is_slug(&plan.name) {
                errs.push(
                    format!("{ppath}.name"),
                    format!("`{}` is not a valid plan name", plan.name),
                );
            } else if !plans.insert(plan.name.as_str()) {
                errs.push(
                    format!("{ppath}.name"),
                    format!("plan `{}` is defined twice in this product", plan.name),
                );
            }
            if let Some(r) = &plan.rate_limit {
                let rpath = format!("{ppath}.rate_limit");
                traffic::check_rate_limit(r, &rpath, errs);
                if r.by != LimitBy::App {
                    errs.push(
                        format!("{rpath}.by"),
                        "a plan's limits count per subscribed app; remove `by`",
                    );
                }
            }
            if let Some(q) = &plan.quota {
                let qpath = format!("{ppath}.quota");
                traffic::check_quota(q, &qpath, errs);
                if q.by != LimitBy::App {
                    errs.push(
                        format!("{qpath}.by"),
                        "a plan's quota counts per subscribed app; remove `by`",
                    );
                }
            }
            for (k, class) in plan.billable.iter().enumerate() {
                if !["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&class.as_str()) {
                    errs.push(
                        format!("{ppath}.billable[{k}]"),
                        format!("`{class}` is not a status class: use 1xx, 2xx, 3xx, 4xx or 5xx"),
                    );
                }
            }
            for e in tollgate_pricing::validate(&plan.price) {
                errs.push(format!("{ppath}.price.{}", e.path), e.message);
            }
        }
    }
    let mut keys = HashSet::new();
    for (i, s) in doc.subscriptions.iter().enumerate() {
        let path = format!("subscriptions[{i}]");
        if !doc.apps.iter().any(|a| a.name == s.app) {
            errs.push(
                format!("{path}.app"),
                format!("app `{}` does not exist", s.app),
            );
        }
        match doc.products.iter().find(|p| p.name == s.product) {
            None => errs.push(
                format!("{path}.product"),
                format!("product `{}` does not exist", s.product),
            ),
            Some(p) => {
                if !p.plans.iter().any(|pl| pl.name == s.plan) {
                    errs.push(
                        format!("{path}.plan"),
                        format!("product `{}` has no plan `{}`", s.product, s.plan),
                    );
                }
                for (j, past) in s.history.iter().enumerate() {
                    if !p.plans.iter().any(|pl| pl.name == past.plan) {
                        errs.push(
                            format!("{path}.history[{j}].plan"),
                            format!(
                                "product `{}` has no plan `{}`: a plan a subscription was billed on stays in the product",
                                s.product, past.plan
                            ),
                        );
                    }
                }
            }
        }
        check_dates(s, &path, errs);
        if !keys.insert(s.key()) {
            errs.push(
                path,
                format!(
                    "app `{}` is subscribed to product `{}` twice; one subscription per app and product",
                    s.app, s.product
                ),
            );
        }
    }
}

fn rfc3339(t: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// A subscription's dates parse and follow each other: start, plan changes, end.
fn check_dates(s: &Subscription, path: &str, errs: &mut Errors) {
    let mut stamps: Vec<(String, &str)> = Vec::new();
    if let Some(t) = &s.started_at {
        stamps.push(("started_at".to_string(), t));
    }
    for (j, past) in s.history.iter().enumerate() {
        stamps.push((format!("history[{j}].until"), &past.until));
    }
    if let Some(t) = &s.ended_at {
        stamps.push(("ended_at".to_string(), t));
    }
    let mut last: Option<(time::OffsetDateTime, String)> = None;
    for (field, t) in stamps {
        let Some(at) = rfc3339(t) else {
            errs.push(
                format!("{path}.{field}"),
                format!("`{t}` is not an RFC 3339 time such as 2026-11-15T00:00:00Z"),
            );
            continue;
        };
        if let Some((before, name)) = &last
            && at < *before
        {
            errs.push(
                format!("{path}.{field}"),
                format!("`{t}` is before {name}: start, plan changes and end follow each other"),
            );
        }
        last = Some((at, field));
    }
}

/// Webhooks: unique names, a URL Tollgate may call, known events, a real secret.
pub(super) fn check_webhooks(doc: &Document, errs: &mut Errors) {
    let mut names = HashSet::new();
    for (i, w) in doc.webhooks.iter().enumerate() {
        let path = format!("webhooks[{i}]");
        if !is_slug(&w.name) {
            errs.push(
                format!("{path}.name"),
                format!("`{}` is not a valid webhook name", w.name),
            );
        } else if !names.insert(w.name.as_str()) {
            errs.push(
                format!("{path}.name"),
                format!("webhook `{}` is defined twice", w.name),
            );
        }
        match w.url.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {}
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some_and(is_loopback) => {}
            Ok(u) if u.scheme_str() == Some("http") => errs.push(
                format!("{path}.url"),
                "plain http is only allowed to a loopback address: use https",
            ),
            _ => errs.push(
                format!("{path}.url"),
                format!("`{}` is not an absolute https:// URL", w.url),
            ),
        }
        if w.events.is_empty() {
            errs.push(format!("{path}.events"), "name at least one event, or `*`");
        }
        for (j, e) in w.events.iter().enumerate() {
            if e != "*" && !crate::webhook::EVENTS.contains(&e.as_str()) {
                errs.push(
                    format!("{path}.events[{j}]"),
                    format!(
                        "`{e}` is not an event: use {} or `*`",
                        crate::webhook::EVENTS.join(", ")
                    ),
                );
            }
        }
        if !is_sealed(&w.secret) && w.secret.chars().count() < 16 {
            errs.push(
                format!("{path}.secret"),
                "a signing secret needs at least 16 characters",
            );
        }
    }
}

/// A sealed value (written by Tollgate itself) stands for a secret already checked.
fn is_sealed(v: &str) -> bool {
    v.starts_with("sealed:v1:")
}

/// `localhost` or a loopback address (`127.0.0.1`, `[::1]`).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
