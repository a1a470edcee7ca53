//! The entitle phase (DESIGN §2): an API version sold in a product with plans is served
//! only to apps with an active subscription, and the subscribed plan's limits apply to
//! each app (counted per plan, across every version of the product).

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_model::{Document, SubscriptionStatus};

use crate::auth::Identity;
use crate::error::ProxyError;
use crate::limit::{LimitsShared, RouteLimits, Used};
use crate::metering::Billable;

enum Access {
    /// Active, with the plan's limits (none when the plan has no limits).
    Active(Entitled),
    Inactive {
        product: String,
        status: SubscriptionStatus,
    },
}

/// What an active subscription brings to a request.
pub struct Entitled {
    /// The plan's limits (none when the plan has none).
    pub limits: Option<Arc<RouteLimits>>,
    /// The subscription's name (`app:product`), what usage is metered under.
    pub subscription: Arc<str>,
    pub billable: Billable,
}

/// Who may call one API version, and under which plan.
pub struct Entitlement {
    /// The products with plans that include the version, for messages.
    products: String,
    apps: HashMap<String, Access>,
}

impl std::fmt::Debug for Entitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entitlement")
            .field("products", &self.products)
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl Entitlement {
    /// `None` when no product with plans includes `api@version`: the version is open to
    /// whatever its policies allow.
    pub fn compile(
        doc: &Document,
        api: &str,
        version: &str,
        shared: &LimitsShared,
        used: &mut Used,
    ) -> Option<Entitlement> {
        let id = format!("{api}@{version}");
        let products: Vec<_> = doc
            .products
            .iter()
            .filter(|p| !p.plans.is_empty() && p.apis.contains(&id))
            .collect();
        if products.is_empty() {
            return None;
        }
        let mut apps = HashMap::new();
        // One compiled set of limits per plan, shared by all its subscribers.
        let mut plan_limits: HashMap<(&str, &str), Option<Arc<RouteLimits>>> = HashMap::new();
        for s in &doc.subscriptions {
            let Some(product) = products.iter().find(|p| p.name == s.product) else {
                continue;
            };
            let Some(plan) = product.plans.iter().find(|p| p.name == s.plan) else {
                continue;
            };
            let access = if s.status == SubscriptionStatus::Active {
                let limits = plan_limits
                    .entry((product.name.as_str(), plan.name.as_str()))
                    .or_insert_with(|| {
                        let location = format!("plan:{}/{}", product.name, plan.name);
                        let rate: Vec<_> = plan.rate_limit.iter().collect();
                        let quota: Vec<_> = plan.quota.iter().collect();
                        RouteLimits::compile(
                            api,
                            (&location, &location),
                            &rate,
                            &quota,
                            shared,
                            used,
                        )
                        .map(|l| Arc::new(l.of_plan(&product.name, &plan.name)))
                    })
                    .clone();
                Access::Active(Entitled {
                    limits,
                    subscription: Arc::from(s.key()),
                    billable: Billable::from_classes(&plan.billable),
                })
            } else {
                Access::Inactive {
                    product: product.name.clone(),
                    status: s.status,
                }
            };
            // An active subscription wins over an inactive one to another product.
            match (apps.get(&s.app), &access) {
                (Some(Access::Active(_)), _) => {}
                (Some(Access::Inactive { .. }), Access::Inactive { .. }) => {}
                _ => {
                    apps.insert(s.app.clone(), access);
                }
            }
        }
        Some(Entitlement {
            products: products
                .iter()
                .map(|p| format!("`{}`", p.name))
                .collect::<Vec<_>>()
                .join(", "),
            apps,
        })
    }

    /// The caller's subscription, or 403 when it holds no active one.
    pub fn check(&self, identity: &Identity) -> Result<&Entitled, ProxyError> {
        let Some(app) = &identity.app else {
            return Err(ProxyError::Forbidden(format!(
                "this API version is offered in product {}: call it as an app subscribed to one of its plans",
                self.products
            )));
        };
        match self.apps.get(&app.name) {
            Some(Access::Active(entitled)) => Ok(entitled),
            Some(Access::Inactive { product, status }) => Err(ProxyError::Forbidden(format!(
                "the subscription of app `{}` to product `{product}` is {}",
                app.name,
                status.as_str()
            ))),
            None => Err(ProxyError::Forbidden(format!(
                "app `{}` has no subscription to product {}",
                app.name, self.products
            ))),
        }
    }
}
