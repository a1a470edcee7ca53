//! How one subscription's month is billed: the stretches of the month it was on each plan
//! (its start, plan changes and end cut the month), the usage metered in each stretch, and
//! the pricing engine applied to each. Pure: the store is read by the callers.
//!
//! Rules (docs/products.md, "Billing a period"):
//! - a stretch's base fee is prorated by its seconds over the seconds of the plan's billing
//!   period (a month, or a year for yearly plans);
//! - a stretch's metered usage is priced on its own, tiers counted from zero: a plan change
//!   starts the new plan's tiers afresh;
//! - the setup fee of the plan a subscription started on is charged in the month it started;
//! - usage is counted by minute: the minute in which the plan changed counts for the new plan.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_model::product::Plan;
use tollgate_model::{Document, Subscription};
use tollgate_pricing::{BillingPeriod, Line, Quote, Share, bill};

/// A stretch of a month spent on one plan (Unix seconds, `[from, to)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub plan: String,
    pub from: i64,
    pub to: i64,
    /// The usage minutes that belong to this stretch, `[from, to)`.
    pub minutes: (i64, i64),
    /// The subscription started in this stretch: the setup fee is due.
    pub first: bool,
}

fn parse(t: &Option<String>) -> Option<i64> {
    t.as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map(OffsetDateTime::unix_timestamp)
}

/// The stretches of `[p0, p1)` (Unix seconds) a subscription was billable, each on its plan.
/// `on_plan` replaces every plan by one (the price simulator). Empty when the subscription
/// had not started or had ended by then.
pub fn stretches(sub: &Subscription, (p0, p1): (i64, i64), on_plan: Option<&str>) -> Vec<Stretch> {
    let started = parse(&sub.started_at);
    let ended = parse(&sub.ended_at);
    let from = started.map_or(p0, |s| s.max(p0));
    let to = ended.map_or(p1, |e| e.min(p1));
    if from >= to {
        return Vec::new();
    }
    // (plan, until) for each plan the subscription had, the current one last.
    let mut spans: Vec<(&str, i64)> = sub
        .history
        .iter()
        .filter_map(|h| Some((h.plan.as_str(), parse(&Some(h.until.clone()))?)))
        .collect();
    spans.push((sub.plan.as_str(), i64::MAX));
    let mut out: Vec<Stretch> = Vec::new();
    let mut begin = i64::MIN;
    for (plan, until) in spans {
        let (a, b) = (begin.max(from), until.min(to));
        begin = until;
        if a >= b {
            continue;
        }
        let plan = on_plan.unwrap_or(plan);
        match out.last_mut() {
            Some(last) if last.plan == plan => last.to = b,
            _ => out.push(Stretch {
                plan: plan.to_string(),
                from: a,
                to: b,
                minutes: (0, 0),
                first: false,
            }),
        }
    }
    let n = out.len();
    for (i, s) in out.iter_mut().enumerate() {
        let lo = if i == 0 { p0 } else { s.from };
        let hi = if i + 1 == n { p1 } else { s.to };
        s.minutes = (lo.div_euclid(60), hi.div_euclid(60));
        s.first = i == 0 && started.is_some_and(|st| st >= p0 && st == s.from);
    }
    out
}

/// Seconds of the billing period a base fee is charged for, around `at`.
fn period_seconds(period: BillingPeriod, (p0, p1): (i64, i64)) -> i64 {
    match period {
        BillingPeriod::Month => p1 - p0,
        BillingPeriod::Year => {
            let year = OffsetDateTime::from_unix_timestamp(p0).map_or(2000, |t| t.year());
            let days = if time::util::is_leap_year(year) {
                366
            } else {
                365
            };
            days * 86_400
        }
    }
}

fn day(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The plan of a product.
pub fn plan<'a>(doc: &'a Document, product: &str, plan: &str) -> Option<&'a Plan> {
    doc.products
        .iter()
        .find(|p| p.name == product)?
        .plans
        .iter()
        .find(|pl| pl.name == plan)
}

/// Prices each stretch with its billable units. With more than one stretch, every line
/// names its plan and dates. Refuses stretches priced in different currencies.
pub fn price(
    doc: &Document,
    sub: &Subscription,
    month: (i64, i64),
    stretches: &[(Stretch, u64)],
) -> Result<Quote, String> {
    let mut lines: Vec<Line> = Vec::new();
    let mut currency: Option<String> = None;
    for (s, units) in stretches {
        let p = plan(doc, &sub.product, &s.plan)
            .ok_or_else(|| format!("product `{}` has no plan `{}`", sub.product, s.plan))?;
        let share =
            if s.from == month.0 && s.to == month.1 && p.price.period == BillingPeriod::Month {
                Share::FULL
            } else {
                Share {
                    active: u64::try_from(s.to - s.from).unwrap_or(0),
                    whole: u64::try_from(period_seconds(p.price.period, month)).unwrap_or(1),
                }
            };
        let quote = bill(&p.price, *units, share, s.first);
        match &currency {
            Some(c) if *c != quote.currency && !quote.lines.is_empty() => {
                return Err(format!(
                    "subscription `{}` was on plans priced in {c} and {} in one period",
                    sub.key(),
                    quote.currency
                ));
            }
            None if !quote.lines.is_empty() => currency = Some(quote.currency.clone()),
            _ => {}
        }
        for mut line in quote.lines {
            if stretches.len() > 1 {
                line.description = format!("{}: {}", s.plan, line.description);
                line.detail = format!("{} (from {} to {})", line.detail, day(s.from), day(s.to));
            }
            lines.push(line);
        }
    }
    let currency = currency.unwrap_or_else(|| {
        stretches
            .first()
            .and_then(|(s, _)| plan(doc, &sub.product, &s.plan))
            .map_or_else(|| "USD".to_string(), |p| p.price.currency.clone())
    });
    Ok(Quote {
        total: lines.iter().map(|l| l.amount).sum(),
        currency,
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_model::{PastPlan, SubscriptionStatus};

    const NOV: (i64, i64) = (1_793_491_200, 1_796_083_200); // 2026-11-01 .. 2026-12-01

    fn sub(started: Option<&str>, history: &[(&str, &str)], plan: &str) -> Subscription {
        let mut s = Subscription::new("app", "orders", plan, SubscriptionStatus::Active);
        s.started_at = started.map(str::to_string);
        s.history = history
            .iter()
            .map(|(p, u)| PastPlan {
                plan: p.to_string(),
                until: u.to_string(),
            })
            .collect();
        s
    }

    #[test]
    fn a_subscription_older_than_the_month_is_one_whole_stretch() {
        let s = sub(Some("2026-01-05T00:00:00Z"), &[], "pro");
        let st = stretches(&s, NOV, None);
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].from, st[0].to), NOV);
        assert_eq!(st[0].minutes, (NOV.0 / 60, NOV.1 / 60));
        assert!(!st[0].first);
        assert!(
            stretches(&sub(None, &[], "pro"), NOV, None)[0].minutes == (NOV.0 / 60, NOV.1 / 60)
        );
    }

    #[test]
    fn start_change_and_end_cut_the_month() {
        let mut s = sub(
            Some("2026-11-10T00:00:00Z"),
            &[("free", "2026-11-16T12:00:30Z")],
            "pro",
        );
        s.ended_at = Some("2026-11-21T00:00:00Z".to_string());
        let st = stretches(&s, NOV, None);
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].plan, "free");
        assert!(st[0].first);
        assert_eq!(st[0].to - st[0].from, 6 * 86_400 + 12 * 3600 + 30);
        assert_eq!(st[1].plan, "pro");
        assert!(!st[1].first);
        // Minutes cover the whole month once; the change's minute goes to the new plan.
        assert_eq!(st[0].minutes.0, NOV.0 / 60);
        assert_eq!(st[0].minutes.1, st[1].minutes.0);
        assert_eq!(st[1].minutes.1, NOV.1 / 60);
        assert_eq!(
            st[1].minutes.0 * 60,
            1_793_491_200 + 15 * 86_400 + 12 * 3600
        );
    }

    #[test]
    fn changes_outside_the_month_and_the_simulated_plan() {
        let s = sub(
            Some("2026-09-01T00:00:00Z"),
            &[
                ("free", "2026-10-01T00:00:00Z"),
                ("basic", "2026-11-03T00:00:00Z"),
            ],
            "pro",
        );
        let st = stretches(&s, NOV, None);
        assert_eq!(
            st.iter().map(|s| s.plan.as_str()).collect::<Vec<_>>(),
            ["basic", "pro"]
        );
        let sim = stretches(&s, NOV, Some("free"));
        assert_eq!(sim.len(), 1);
        assert_eq!((sim[0].from, sim[0].to), NOV);
        // Started after the month, or ended before it: nothing to bill.
        assert!(stretches(&sub(Some("2026-12-02T00:00:00Z"), &[], "pro"), NOV, None).is_empty());
        let mut gone = sub(Some("2026-01-01T00:00:00Z"), &[], "pro");
        gone.ended_at = Some("2026-10-31T23:00:00Z".to_string());
        assert!(stretches(&gone, NOV, None).is_empty());
    }
}
