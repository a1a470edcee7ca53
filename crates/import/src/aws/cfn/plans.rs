//! Usage plans → plans of products, API keys → apps, usage plan keys → subscriptions.

use serde_json::{Map, Value, json};

use super::template::Template;
use super::{Doc, KEY_OWNER, VersionAt, add_to_route, unique};
use crate::{Report, aws, slug};

/// Usage plans over the same versions: one product.
struct Group<'a> {
    versions: Vec<VersionAt>,
    usage_plans: Vec<&'a str>,
}

/// The plan a usage plan became.
struct Made<'a> {
    usage_plan: &'a str,
    product: String,
    plan: String,
}

impl<'a> Template<'a> {
    /// Usage plans → plans of products; API keys → apps; usage plan keys → subscriptions.
    pub(super) fn usage_plans(&self, doc: &mut Doc, report: &mut Report) {
        let mut groups: Vec<Group<'a>> = Vec::new();
        for id in self.of_type("AWS::ApiGateway::UsagePlan") {
            let at = format!("Resources.{id}.Properties.ApiStages");
            let mut versions = Vec::new();
            for (i, s) in self.api_stages(id).iter().enumerate() {
                match self.api_stage(s) {
                    Some((api, stage)) => match doc.version_of(api, &stage) {
                        Some(v) => versions.push(v),
                        None => report.unsupported(
                            format!("{at}[{i}]"),
                            format!("stage `{stage}` of `{api}` is not in this template"),
                        ),
                    },
                    None => report.unsupported(
                        format!("{at}[{i}]"),
                        "an API stage not defined in this template",
                    ),
                }
            }
            if versions.is_empty() {
                report.unsupported(
                    format!("Resources.{id}"),
                    "a usage plan for no API stage of this template",
                );
                continue;
            }
            versions.sort_unstable();
            versions.dedup();
            match groups.iter_mut().find(|g| g.versions == versions) {
                Some(g) => g.usage_plans.push(id),
                None => groups.push(Group {
                    versions,
                    usage_plans: vec![id],
                }),
            }
        }
        let mut made = Vec::new();
        for group in &groups {
            let apis: Vec<String> = group.versions.iter().map(|v| doc.version_ref(*v)).collect();
            let product = unique(slug(&apis.join(" "), "product"), |n| {
                doc.products.iter().any(|p| p["name"] == n)
            });
            let mut plans: Vec<Value> = Vec::new();
            for id in &group.usage_plans {
                let plan = self.plan(id, &plans, group, doc, report);
                made.push(Made {
                    usage_plan: id,
                    product: product.clone(),
                    plan: plan["name"].as_str().unwrap_or("").to_string(),
                });
                plans.push(plan);
            }
            for v in &group.versions {
                require_keys(doc, *v, group.usage_plans[0], report);
            }
            doc.products
                .push(json!({ "name": product, "apis": apis, "plans": plans }));
        }
        self.keys(&made, doc, report);
    }

    /// A usage plan's `ApiStages`.
    fn api_stages(&self, id: &str) -> Vec<Value> {
        self.prop(id, "ApiStages")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The RestApi and the stage of one of `ApiStages`.
    fn api_stage(&self, s: &Value) -> Option<(&'a str, String)> {
        let (api, _) = self.target(s.get("ApiId")?)?;
        Some((api, s.get("Stage")?.as_str()?.to_string()))
    }

    /// The plan made from usage plan `id` of `group`, whose product already has `siblings`.
    fn plan(
        &self,
        id: &str,
        siblings: &[Value],
        group: &Group<'_>,
        doc: &mut Doc,
        report: &mut Report,
    ) -> Value {
        let at = format!("Resources.{id}.Properties");
        let title = self.text(id, "UsagePlanName");
        let mut name = slug(title.as_deref().unwrap_or(id), "plan");
        if siblings.iter().any(|p| p["name"] == json!(name)) {
            name = slug(id, "plan");
        }
        let mut plan = Map::new();
        plan.insert("name".into(), json!(name));
        if let Some(t) = title {
            plan.insert("title".into(), json!(t));
        }
        if let Some(Value::Object(t)) = self.prop(id, "Throttle")
            && let Some(limit) = aws::rate_limit(
                t.get("RateLimit"),
                t.get("BurstLimit"),
                &format!("{at}.Throttle"),
                report,
            )
        {
            plan.insert("rate_limit".into(), limit);
        }
        if let Some(Value::Object(q)) = self.prop(id, "Quota")
            && let Some(quota) = aws::quota(&q, &format!("{at}.Quota"), report)
        {
            plan.insert("quota".into(), quota);
        }
        // Per-method throttles: a rate_limit on the route, for every caller of that route.
        for (i, s) in self.api_stages(id).iter().enumerate() {
            let Some(throttles) = s.get("Throttle").and_then(Value::as_object) else {
                continue;
            };
            let Some((api, stage)) = self.api_stage(s) else {
                continue;
            };
            let Some((a, v)) = doc
                .version_of(api, &stage)
                .filter(|v| group.versions.contains(v))
            else {
                continue;
            };
            for (key, t) in throttles {
                let t_at = format!("{at}.ApiStages[{i}].Throttle.{key}");
                let Some(limit) =
                    aws::rate_limit(t.get("RateLimit"), t.get("BurstLimit"), &t_at, report)
                else {
                    continue;
                };
                let prefix = doc.prefix((a, v)).to_string();
                let Some(version) = doc.apis[a]["versions"][v].as_object_mut() else {
                    continue;
                };
                if group.usage_plans.len() == 1 {
                    if !add_to_route(version, key, &prefix, limit) {
                        report
                            .unsupported(&t_at, format!("`{key}` is no method of stage `{stage}`"));
                    } else {
                        report.note(
                            &t_at,
                            "a rate_limit on the route, for each app that calls it",
                        );
                    }
                } else {
                    report.unsupported(
                        &t_at,
                        "a per-method throttle in one of several plans of a product: a route's rate_limit applies to every plan",
                    );
                }
            }
        }
        Value::Object(plan)
    }

    /// API keys → apps; usage plan keys → subscriptions to the plans in `made`.
    fn keys(&self, made: &[Made<'_>], doc: &mut Doc, report: &mut Report) {
        let mut apps: Vec<(&str, String)> = Vec::new();
        for id in self.of_type("AWS::ApiGateway::ApiKey") {
            let at = format!("Resources.{id}");
            let name = unique(
                slug(
                    &self.text(id, "Name").unwrap_or_else(|| id.to_string()),
                    "app",
                ),
                |n| apps.iter().any(|(_, a)| a == n),
            );
            let mut app = Map::new();
            app.insert("name".into(), json!(name));
            app.insert("owner".into(), json!(KEY_OWNER));
            if let Some(d) = self.text(id, "Description") {
                app.insert("description".into(), json!(d));
            }
            match self.prop(id, "Value") {
                Some(Value::String(key)) if key.len() >= 16 => {
                    app.insert("keys".into(), json!([{ "secret": key }]));
                }
                Some(Value::String(_)) => report.unsupported(
                    format!("{at}.Properties.Value"),
                    "a key shorter than 16 characters: Tollgate refuses such keys",
                ),
                Some(_) => report.note(
                    format!("{at}.Properties.Value"),
                    format!("the key's value is known only at deployment: app `{name}` has no key; add it as apps[].keys[].secret"),
                ),
                None => report.note(
                    &at,
                    format!(
                        "API Gateway generates the key's value at deployment, so the template does not hold it: app `{name}` has no key; add the generated one as apps[].keys[].secret (aws apigateway get-api-key --include-value), or make a new key (POST /api/apps/{name}/keys)"
                    ),
                ),
            }
            if self
                .prop(id, "Enabled")
                .is_some_and(|v| v == json!(false) || v == json!("false"))
            {
                app.insert("disabled".into(), json!(true));
            }
            doc.apps.push(Value::Object(app));
            apps.push((id, name));
        }
        for id in self.of_type("AWS::ApiGateway::UsagePlanKey") {
            let at = format!("Resources.{id}.Properties");
            let key = self
                .props(id)
                .and_then(|p| p.get("KeyId"))
                .and_then(|k| self.target(k))
                .map(|(k, _)| k);
            let plan = self
                .props(id)
                .and_then(|p| p.get("UsagePlanId"))
                .and_then(|k| self.target(k))
                .map(|(k, _)| k);
            let app = key
                .and_then(|k| apps.iter().find(|(a, _)| *a == k))
                .map(|(_, n)| n);
            let Some(app) = app else {
                report.unsupported(format!("{at}.KeyId"), "a key not defined in this template");
                continue;
            };
            let Some(Made { product, plan, .. }) =
                plan.and_then(|p| made.iter().find(|m| m.usage_plan == p))
            else {
                report.unsupported(
                    format!("{at}.UsagePlanId"),
                    "a usage plan not imported from this template",
                );
                continue;
            };
            if doc
                .subscriptions
                .iter()
                .any(|s| s["app"] == json!(app) && s["product"] == json!(product))
            {
                report.unsupported(
                    &at,
                    format!("a second plan of product `{product}` for app `{app}`: an app holds one subscription per product"),
                );
                continue;
            }
            doc.subscriptions
                .push(json!({ "app": app, "product": product, "plan": plan }));
        }
    }
}

/// A version in a product with plans is served only to subscribed apps, which `key_auth`
/// tells apart (API Gateway reads usage plan keys from `x-api-key` too). The version at `v`
/// gets it when some of its routes did not ask for a key, with a note naming them (usage
/// plan `usage_plan` put it in the product).
fn require_keys(doc: &mut Doc, v: VersionAt, usage_plan: &str, report: &mut Report) {
    let name = doc.version_ref(v);
    let version = &mut doc.apis[v.0]["versions"][v.1];
    let has_key = |policies: &Value| {
        policies
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p.get("key_auth").is_some()))
    };
    if has_key(&version["policies"]) {
        return;
    }
    let open: Vec<String> = version["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !has_key(&r["policies"]))
        .map(|r| {
            let methods: Vec<&str> = r["methods"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{} {}",
                methods.join("|"),
                r["path"].as_str().unwrap_or("").trim_start_matches('=')
            )
        })
        .collect();
    if open.is_empty() {
        return;
    }
    match version["policies"].as_array_mut() {
        Some(p) => p.insert(0, json!({ "key_auth": {} })),
        None => version["policies"] = json!([{ "key_auth": {} }]),
    }
    report.note(
        format!("Resources.{usage_plan}"),
        format!(
            "API Gateway applies a usage plan only to methods that require an API key, and serves the others to anyone ({}); Tollgate serves a version in a product with plans only to subscribed apps, so `{name}` gets key_auth on x-api-key",
            open.join(", ")
        ),
    );
}
