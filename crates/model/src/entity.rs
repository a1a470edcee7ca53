//! The entity view of a configuration: what the store keeps as rows, and what a plan
//! compares. A [`Document`] splits into upstreams, APIs (without their versions), versions
//! (`api@version`) and global policies; an [`EntitySet`] joins back into a document.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{Api, Document, Settings, Upstream, Version};
use crate::identity::{App, Developer};
use crate::policy::Policy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Upstream,
    Api,
    Version,
    Policy,
    Settings,
    Developer,
    App,
    Certificate,
    Product,
    Subscription,
    Webhook,
    Governance,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Upstream => "upstream",
            EntityKind::Api => "api",
            EntityKind::Version => "version",
            EntityKind::Policy => "policy",
            EntityKind::Settings => "settings",
            EntityKind::Developer => "developer",
            EntityKind::App => "app",
            EntityKind::Certificate => "certificate",
            EntityKind::Product => "product",
            EntityKind::Subscription => "subscription",
            EntityKind::Webhook => "webhook",
            EntityKind::Governance => "governance",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        Some(match s {
            "upstream" => EntityKind::Upstream,
            "api" => EntityKind::Api,
            "version" => EntityKind::Version,
            "policy" => EntityKind::Policy,
            "settings" => EntityKind::Settings,
            "developer" => EntityKind::Developer,
            "app" => EntityKind::App,
            "certificate" => EntityKind::Certificate,
            "product" => EntityKind::Product,
            "subscription" => EntityKind::Subscription,
            "webhook" => EntityKind::Webhook,
            "governance" => EntityKind::Governance,
            _ => return None,
        })
    }
}

/// Identifies one entity: its kind and its name (`orders`, `orders@v1`, `ip_restrict`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityKey {
    pub kind: EntityKind,
    pub name: String,
}

impl EntityKey {
    pub fn new(kind: EntityKind, name: impl Into<String>) -> Self {
        EntityKey {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Create,
    Update,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        Some(match s {
            "create" => ChangeOp::Create,
            "update" => ChangeOp::Update,
            "delete" => ChangeOp::Delete,
            _ => return None,
        })
    }

    fn sign(self) -> char {
        match self {
            ChangeOp::Create => '+',
            ChangeOp::Update => '~',
            ChangeOp::Delete => '-',
        }
    }
}

/// One entity to write: its new body, or `None` for a delete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub op: ChangeOp,
    #[serde(flatten)]
    pub key: EntityKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.op.sign(), self.op.as_str(), self.key)
    }
}

/// What applying a document would change, in a stable order (upstreams first on create,
/// last on delete, so references never dangle halfway through).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, op: ChangeOp) -> usize {
        self.changes.iter().filter(|c| c.op == op).count()
    }

    /// `N to create, N to update, N to delete`.
    pub fn summary(&self) -> String {
        format!(
            "{} to create, {} to update, {} to delete",
            self.count(ChangeOp::Create),
            self.count(ChangeOp::Update),
            self.count(ChangeOp::Delete)
        )
    }
}

/// All entities of a configuration, keyed and ordered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntitySet(pub BTreeMap<EntityKey, Value>);

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Names global policies by type, numbering repeats (`rate_limit`, `rate_limit-2`), so
/// the same list always gives the same names.
pub fn policy_names(policies: &[Policy]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    policies
        .iter()
        .map(|p| {
            let n = seen.entry(p.kind()).or_default();
            *n += 1;
            if *n == 1 {
                p.kind().to_string()
            } else {
                format!("{}-{n}", p.kind())
            }
        })
        .collect()
}

impl EntitySet {
    /// Splits a document into entities.
    pub fn from_document(doc: &Document) -> EntitySet {
        let mut set = BTreeMap::new();
        for up in &doc.upstreams {
            set.insert(EntityKey::new(EntityKind::Upstream, &up.name), to_value(up));
        }
        for api in &doc.apis {
            let mut head = api.clone();
            head.versions.clear();
            set.insert(EntityKey::new(EntityKind::Api, &api.name), to_value(&head));
            for v in &api.versions {
                set.insert(
                    EntityKey::new(EntityKind::Version, format!("{}@{}", api.name, v.version)),
                    to_value(v),
                );
            }
        }
        for (name, p) in policy_names(&doc.policies).into_iter().zip(&doc.policies) {
            set.insert(EntityKey::new(EntityKind::Policy, name), to_value(p));
        }
        if doc.settings != Settings::default() {
            set.insert(
                EntityKey::new(EntityKind::Settings, "settings"),
                to_value(&doc.settings),
            );
        }
        for d in &doc.developers {
            set.insert(EntityKey::new(EntityKind::Developer, &d.email), to_value(d));
        }
        for a in &doc.apps {
            set.insert(EntityKey::new(EntityKind::App, &a.name), to_value(a));
        }
        for c in &doc.certificates {
            set.insert(
                EntityKey::new(EntityKind::Certificate, &c.name),
                to_value(c),
            );
        }
        for p in &doc.products {
            set.insert(EntityKey::new(EntityKind::Product, &p.name), to_value(p));
        }
        for s in &doc.subscriptions {
            set.insert(
                EntityKey::new(EntityKind::Subscription, s.key()),
                to_value(s),
            );
        }
        for w in &doc.webhooks {
            set.insert(EntityKey::new(EntityKind::Webhook, &w.name), to_value(w));
        }
        if doc.governance != crate::document::Governance::default() {
            set.insert(
                EntityKey::new(EntityKind::Governance, "governance"),
                to_value(&doc.governance),
            );
        }
        EntitySet(set)
    }

    /// Joins entities back into a document. Entities that no longer parse (written by a
    /// newer build) are reported, not dropped.
    pub fn to_document(&self) -> Result<Document, String> {
        let mut doc = Document {
            format_version: 1,
            ..Document::default()
        };
        let mut versions: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
        for (key, body) in &self.0 {
            let bad = |e: serde_json::Error| format!("stored {key} cannot be read: {e}");
            match key.kind {
                EntityKind::Upstream => doc
                    .upstreams
                    .push(Upstream::deserialize(body).map_err(bad)?),
                EntityKind::Api => doc.apis.push(Api::deserialize(body).map_err(bad)?),
                EntityKind::Version => {
                    let api = key
                        .name
                        .split_once('@')
                        .map(|(a, _)| a)
                        .unwrap_or(&key.name);
                    versions
                        .entry(api)
                        .or_default()
                        .push(Version::deserialize(body).map_err(bad)?);
                }
                EntityKind::Policy => doc.policies.push(Policy::deserialize(body).map_err(bad)?),
                EntityKind::Settings => doc.settings = Settings::deserialize(body).map_err(bad)?,
                EntityKind::Developer => doc
                    .developers
                    .push(Developer::deserialize(body).map_err(bad)?),
                EntityKind::App => doc.apps.push(App::deserialize(body).map_err(bad)?),
                EntityKind::Certificate => doc
                    .certificates
                    .push(crate::document::Certificate::deserialize(body).map_err(bad)?),
                EntityKind::Product => doc
                    .products
                    .push(crate::product::Product::deserialize(body).map_err(bad)?),
                EntityKind::Subscription => doc
                    .subscriptions
                    .push(crate::product::Subscription::deserialize(body).map_err(bad)?),
                EntityKind::Webhook => doc
                    .webhooks
                    .push(crate::webhook::Webhook::deserialize(body).map_err(bad)?),
                EntityKind::Governance => {
                    doc.governance = crate::document::Governance::deserialize(body).map_err(bad)?
                }
            }
        }
        for api in &mut doc.apis {
            let mut list = versions.remove(api.name.as_str()).unwrap_or_default();
            list.sort_by(|a, b| natural_cmp(&a.version, &b.version));
            api.versions = list;
        }
        if let Some((api, _)) = versions.into_iter().next() {
            return Err(format!(
                "stored versions belong to API `{api}`, which does not exist"
            ));
        }
        Ok(doc)
    }

    /// This set with `other`'s entities added or replacing; with `prune`, exactly `other`.
    /// A document's API entry carries its versions, so merging an API without `prune`
    /// keeps its other stored versions.
    pub fn merged_with(&self, other: &EntitySet, prune: bool) -> EntitySet {
        if prune {
            return other.clone();
        }
        let mut out = self.0.clone();
        out.extend(other.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        EntitySet(out)
    }

    /// The changes that turn `self` into `desired`.
    pub fn plan_to(&self, desired: &EntitySet) -> Plan {
        let mut changes = Vec::new();
        for (key, body) in &desired.0 {
            match self.0.get(key) {
                None => changes.push(Change {
                    op: ChangeOp::Create,
                    key: key.clone(),
                    body: Some(body.clone()),
                }),
                Some(old) if old != body => changes.push(Change {
                    op: ChangeOp::Update,
                    key: key.clone(),
                    body: Some(body.clone()),
                }),
                Some(_) => {}
            }
        }
        for key in self.0.keys() {
            if !desired.0.contains_key(key) {
                changes.push(Change {
                    op: ChangeOp::Delete,
                    key: key.clone(),
                    body: None,
                });
            }
        }
        // Creates and updates in dependency order, deletes in reverse.
        changes.sort_by(|a, b| {
            let rank = |c: &Change| match c.op {
                ChangeOp::Delete => (1, -(c.key.kind as i32)),
                _ => (0, c.key.kind as i32),
            };
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.key.name.cmp(&b.key.name))
        });
        Plan { changes }
    }

    /// Applies a plan's changes in memory.
    pub fn apply(&mut self, plan: &Plan) {
        for c in &plan.changes {
            match &c.body {
                Some(body) => {
                    self.0.insert(c.key.clone(), body.clone());
                }
                None => {
                    self.0.remove(&c.key);
                }
            }
        }
    }
}

/// Orders `v2` before `v10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| {
        let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
        (
            s.trim_end_matches(|c: char| c.is_ascii_digit()).to_string(),
            digits.len(),
            digits,
        )
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse_document;

    const DOC: &str = r#"
format_version: 1
upstreams:
  - name: svc
    targets: [{ url: "http://127.0.0.1:9001" }]
apis:
  - name: orders
    versions:
      - { version: v2, upstream: svc, routes: [{ path: /v2/orders }] }
      - { version: v10, upstream: svc }
      - { version: v1, upstream: svc, status: deprecated, successor: v2 }
policies:
  - ip_restrict: { deny: [203.0.113.0/24] }
  - ip_restrict: { deny: [198.51.100.0/24] }
"#;

    #[test]
    fn document_round_trips_through_entities() {
        let (doc, _) = parse_document(DOC).unwrap();
        let set = EntitySet::from_document(&doc);
        assert_eq!(set.0.len(), 1 + 1 + 3 + 2);
        assert!(
            set.0
                .contains_key(&EntityKey::new(EntityKind::Version, "orders@v1"))
        );
        assert!(
            set.0
                .contains_key(&EntityKey::new(EntityKind::Policy, "ip_restrict-2"))
        );
        let back = set.to_document().unwrap();
        let names: Vec<_> = back.apis[0]
            .versions
            .iter()
            .map(|v| v.version.as_str())
            .collect();
        assert_eq!(names, ["v1", "v2", "v10"]);
        // Re-splitting the joined document gives the same entities: export then apply is a no-op.
        assert!(set.plan_to(&EntitySet::from_document(&back)).is_empty());
    }

    #[test]
    fn plans_create_in_dependency_order_and_delete_in_reverse() {
        let (doc, _) = parse_document(DOC).unwrap();
        let desired = EntitySet::from_document(&doc);
        let plan = EntitySet::default().plan_to(&desired);
        let kinds: Vec<_> = plan.changes.iter().map(|c| c.key.kind).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(kinds, sorted);
        let deletes = desired.plan_to(&EntitySet::default());
        assert_eq!(
            deletes.changes.first().unwrap().key.kind,
            EntityKind::Policy
        );
        assert_eq!(
            deletes.changes.last().unwrap().key.kind,
            EntityKind::Upstream
        );
        assert_eq!(plan.summary(), "7 to create, 0 to update, 0 to delete");
        assert_eq!(plan.changes[0].to_string(), "+ create upstream svc");
    }

    #[test]
    fn document_merge_matches_entity_merge() {
        let (stored, _) = parse_document(DOC).unwrap();
        let (file, _) = parse_document(
            "format_version: 1\nupstreams:\n  - name: other\n    targets: [{ url: \"http://127.0.0.1:1\" }]\napis:\n  - name: orders\n    title: New\n    versions:\n      - { version: v2, upstream: other }\npolicies:\n  - ip_restrict: { deny: [192.0.2.0/24] }\n",
        )
        .unwrap();
        let merged = file.merged_over(&stored);
        let by_entities =
            EntitySet::from_document(&stored).merged_with(&EntitySet::from_document(&file), false);
        assert_eq!(EntitySet::from_document(&merged), by_entities);
        assert_eq!(
            merged.upstreams[0].name, "other",
            "the file's entries come first"
        );
        assert_eq!(merged.apis[0].versions[0].version, "v2");
    }

    #[test]
    fn merge_keeps_what_the_file_lacks_unless_pruning() {
        let (doc, _) = parse_document(DOC).unwrap();
        let current = EntitySet::from_document(&doc);
        let (small, _) = parse_document("format_version: 1\nupstreams:\n  - name: other\n    targets: [{ url: \"http://127.0.0.1:1\" }]\n").unwrap();
        let small = EntitySet::from_document(&small);
        assert_eq!(
            current.merged_with(&small, false).0.len(),
            current.0.len() + 1
        );
        assert_eq!(current.merged_with(&small, true).0.len(), 1);
    }
}
