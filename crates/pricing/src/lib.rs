//! The pricing engine: a plan's price and a period's usage in, invoice lines out. Pure: no
//! I/O, no clock, no floating point. Money is [`Decimal`], read from a number or a decimal
//! string exactly as written (`49.00`, `"0.0005"`), and every amount is rounded to cents
//! once, per line, half away from zero; a total is the sum of its lines.
//!
//! Models of metered usage (CONTRACT §2; worked examples in `docs/pricing.md`):
//! - `per_unit`: every unit at one price;
//! - `graduated`: each tier's units at that tier's price (plus its `flat_fee` once reached);
//! - `volume`: all units at the price of the tier the total reaches (plus its `flat_fee`);
//! - `package`: a price per started block of `package_size`, after `free_units`;
//! - `bundles`: the `flat_fee` of every band the total enters, added up.

use std::fmt;
use std::str::FromStr;

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An amount of money or a unit price, exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl FromStr for Money {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.contains(['e', 'E']) {
            return Err(format!("`{s}` is not a plain decimal number"));
        }
        Decimal::from_str_exact(t)
            .map(Money)
            .map_err(|_| format!("`{s}` is not a decimal amount"))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount: a number or a decimal string such as \"49.00\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Ok(Money(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                // A number the reader parsed as a float: its shortest round-trip form is
                // the text that was written (0.0005 stays 0.0005), read as a decimal.
                if !v.is_finite() {
                    return Err(E::custom("an amount must be a finite number"));
                }
                format!("{v}").parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// How often a plan's base fee is charged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingPeriod {
    #[default]
    Month,
    Year,
}

/// Only `free` can be written as a whole price (`price: { model: free }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceModel {
    Free,
}

fn is_zero(m: &Money) -> bool {
    m.0.is_zero()
}

fn default_currency() -> String {
    "USD".to_string()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A plan's price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// `free`: nothing is ever charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PriceModel>,
    /// ISO 4217 code.
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub period: BillingPeriod,
    /// Charged each period, prorated for a partial one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub base_fee: Money,
    /// Charged once, in the first period of a subscription.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub setup_fee: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered: Option<Metered>,
}

impl Price {
    pub fn free() -> Price {
        Price {
            model: Some(PriceModel::Free),
            currency: default_currency(),
            period: BillingPeriod::Month,
            base_fee: Money::ZERO,
            setup_fee: Money::ZERO,
            metered: None,
        }
    }
}

/// One tier (band) of usage: units up to `up_to` (inclusive; the last tier has none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unit_price: Money,
    /// Charged once when usage reaches this tier.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flat_fee: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerUnit {
    pub unit_price: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub tiers: Vec<Tier>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub package_size: u64,
    pub package_price: Money,
    #[serde(default, skip_serializing_if = "is_default")]
    pub free_units: u64,
}

/// How metered usage is charged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Metered {
    PerUnit(PerUnit),
    Graduated(Tiers),
    Volume(Tiers),
    Package(Package),
    Bundles(Tiers),
}

/// One line of a quote or an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    pub description: String,
    pub quantity: u64,
    /// Exact, as configured (`0.0005`).
    #[serde(serialize_with = "exact")]
    pub unit_price: Decimal,
    /// Rounded to cents.
    #[serde(serialize_with = "cents")]
    pub amount: Decimal,
    /// How the amount was computed.
    pub detail: String,
}

/// Lines and their total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub currency: String,
    pub lines: Vec<Line>,
    #[serde(serialize_with = "cents")]
    pub total: Decimal,
}

fn exact<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.normalize())
}

fn cents<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_cents(*d))
}

/// `600` → `"600.00"`.
pub fn format_cents(d: Decimal) -> String {
    let mut r = round_cents(d);
    r.rescale(2);
    r.to_string()
}

/// Half away from zero, to two decimals.
pub fn round_cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// What part of a billing period a subscription was active: `active / whole`, in any unit
/// (seconds, days). Prorates the base fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub active: u64,
    pub whole: u64,
}

impl Share {
    pub const FULL: Share = Share {
        active: 1,
        whole: 1,
    };

    fn is_full(&self) -> bool {
        self.active >= self.whole
    }
}

/// A problem in a price, with the path of the field inside the price (`metered.tiers[1]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceError {
    pub path: String,
    pub message: String,
}

fn negative(m: Money) -> bool {
    m.0.is_sign_negative() && !m.0.is_zero()
}

fn err(path: &str, message: impl Into<String>) -> PriceError {
    PriceError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Checks a price: currency, non-negative amounts, tiers in ascending order with only the
/// last one open, package sizes above zero.
pub fn validate(price: &Price) -> Vec<PriceError> {
    let mut out = Vec::new();
    if price.model == Some(PriceModel::Free)
        && (!price.base_fee.0.is_zero() || !price.setup_fee.0.is_zero() || price.metered.is_some())
    {
        out.push(err(
            "model",
            "a free price has no base_fee, setup_fee or metered part",
        ));
    }
    let c = price.currency.as_bytes();
    if c.len() != 3 || !c.iter().all(u8::is_ascii_uppercase) {
        out.push(err(
            "currency",
            format!("`{}` is not an ISO 4217 code such as USD", price.currency),
        ));
    }
    for (name, m) in [("base_fee", price.base_fee), ("setup_fee", price.setup_fee)] {
        if negative(m) {
            out.push(err(name, "must not be negative"));
        }
    }
    match &price.metered {
        None => {}
        Some(Metered::PerUnit(p)) if negative(p.unit_price) => {
            out.push(err("metered.unit_price", "must not be negative"));
        }
        Some(Metered::PerUnit(_)) => {}
        Some(Metered::Package(p)) => {
            if p.package_size == 0 {
                out.push(err("metered.package_size", "must be above 0"));
            }
            if negative(p.package_price) {
                out.push(err("metered.package_price", "must not be negative"));
            }
        }
        Some(Metered::Graduated(t)) | Some(Metered::Volume(t)) | Some(Metered::Bundles(t)) => {
            check_tiers(&t.tiers, &mut out)
        }
    }
    out
}

fn check_tiers(tiers: &[Tier], out: &mut Vec<PriceError>) {
    if tiers.is_empty() {
        out.push(err("metered.tiers", "at least one tier is needed"));
        return;
    }
    let mut prev = 0u64;
    for (i, t) in tiers.iter().enumerate() {
        let path = format!("metered.tiers[{i}]");
        let last = i + 1 == tiers.len();
        match (t.up_to, last) {
            (None, false) => out.push(err(
                &format!("{path}.up_to"),
                "only the last tier may be open (no up_to)",
            )),
            (Some(_), true) => out.push(err(
                &format!("{path}.up_to"),
                "the last tier must be open: remove its up_to so every unit has a price",
            )),
            (Some(u), false) if u <= prev && !(i == 0 && u > 0) => out.push(err(
                &format!("{path}.up_to"),
                format!("tiers must rise: {u} is not above {prev}"),
            )),
            _ => {}
        }
        if let Some(u) = t.up_to {
            if i == 0 && u == 0 {
                out.push(err(&format!("{path}.up_to"), "must be above 0"));
            }
            prev = prev.max(u);
        }
        for (name, m) in [("unit_price", t.unit_price), ("flat_fee", t.flat_fee)] {
            if negative(m) {
                out.push(err(&format!("{path}.{name}"), "must not be negative"));
            }
        }
    }
}

fn range(lo: u64, hi: Option<u64>) -> String {
    match hi {
        Some(hi) => format!("{}–{hi}", lo + 1),
        None => format!("above {lo}"),
    }
}

fn dec(n: u64) -> Decimal {
    Decimal::from(n)
}

/// The lines for `units` of metered usage.
pub fn metered_lines(metered: &Metered, units: u64) -> Vec<Line> {
    match metered {
        Metered::PerUnit(p) => vec![Line {
            description: "usage".to_string(),
            quantity: units,
            unit_price: p.unit_price.0,
            amount: round_cents(dec(units) * p.unit_price.0),
            detail: format!("{units} × {}", p.unit_price),
        }],
        Metered::Graduated(t) => graduated(&t.tiers, units),
        Metered::Volume(t) => volume(&t.tiers, units),
        Metered::Package(p) => package(p, units),
        Metered::Bundles(t) => bundles(&t.tiers, units),
    }
}

fn graduated(tiers: &[Tier], units: u64) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut lo = 0u64;
    for (i, t) in tiers.iter().enumerate() {
        if units <= lo && !(i == 0 && units == 0) {
            break;
        }
        let hi = t.up_to.map_or(units, |u| u.min(units));
        let qty = hi.saturating_sub(lo);
        let flat = if qty > 0 { t.flat_fee.0 } else { Decimal::ZERO };
        let amount = round_cents(dec(qty) * t.unit_price.0 + flat);
        let mut detail = format!(
            "tier {} ({}): {qty} × {}",
            i + 1,
            range(lo, t.up_to),
            t.unit_price
        );
        if !flat.is_zero() {
            detail.push_str(&format!(" + flat fee {}", t.flat_fee));
        }
        lines.push(Line {
            description: format!("usage, tier {}", i + 1),
            quantity: qty,
            unit_price: t.unit_price.0,
            amount,
            detail,
        });
        match t.up_to {
            Some(u) => lo = u,
            None => break,
        }
    }
    lines
}

/// The tier a total of `units` reaches: the first whose `up_to` holds it.
fn reached(tiers: &[Tier], units: u64) -> (usize, u64) {
    let mut lo = 0;
    for (i, t) in tiers.iter().enumerate() {
        match t.up_to {
            Some(u) if units > u => lo = u,
            _ => return (i, lo),
        }
    }
    (tiers.len().saturating_sub(1), lo)
}

fn volume(tiers: &[Tier], units: u64) -> Vec<Line> {
    if tiers.is_empty() {
        return Vec::new();
    }
    let (i, lo) = reached(tiers, units);
    let t = &tiers[i];
    let flat = if units > 0 {
        t.flat_fee.0
    } else {
        Decimal::ZERO
    };
    let mut detail = format!(
        "{units} units reach tier {} ({}): all {units} × {}",
        i + 1,
        range(lo, t.up_to),
        t.unit_price
    );
    if !flat.is_zero() {
        detail.push_str(&format!(" + flat fee {}", t.flat_fee));
    }
    vec![Line {
        description: format!("usage, tier {}", i + 1),
        quantity: units,
        unit_price: t.unit_price.0,
        amount: round_cents(dec(units) * t.unit_price.0 + flat),
        detail,
    }]
}

fn package(p: &Package, units: u64) -> Vec<Line> {
    let billable = units.saturating_sub(p.free_units);
    let packages = if p.package_size == 0 {
        0
    } else {
        billable.div_ceil(p.package_size)
    };
    vec![Line {
        description: "usage, packages".to_string(),
        quantity: packages,
        unit_price: p.package_price.0,
        amount: round_cents(dec(packages) * p.package_price.0),
        detail: format!(
            "{units} units − {} free = {billable}; {packages} started package(s) of {} × {}",
            p.free_units, p.package_size, p.package_price
        ),
    }]
}

fn bundles(tiers: &[Tier], units: u64) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut lo = 0u64;
    for (i, t) in tiers.iter().enumerate() {
        // A band is entered by its first unit; the first band also by zero units, so a
        // plan always charges its entry bundle.
        if units <= lo && i > 0 {
            break;
        }
        lines.push(Line {
            description: format!("bundle {}", i + 1),
            quantity: 1,
            unit_price: t.flat_fee.0,
            amount: round_cents(t.flat_fee.0),
            detail: format!(
                "band {} ({}) entered: flat fee {}",
                i + 1,
                range(lo, t.up_to),
                t.flat_fee
            ),
        });
        match t.up_to {
            Some(u) => lo = u,
            None => break,
        }
    }
    lines
}

/// Everything one billing period of a subscription costs: the base fee (prorated by
/// `share`), the setup fee in the first period, and the metered usage.
pub fn bill(price: &Price, units: u64, share: Share, first_period: bool) -> Quote {
    let mut lines = Vec::new();
    if price.model != Some(PriceModel::Free) {
        if first_period && !price.setup_fee.0.is_zero() {
            lines.push(Line {
                description: "setup fee".to_string(),
                quantity: 1,
                unit_price: price.setup_fee.0,
                amount: round_cents(price.setup_fee.0),
                detail: "charged once, in the first period".to_string(),
            });
        }
        if !price.base_fee.0.is_zero() {
            let (amount, detail) = if share.is_full() || share.whole == 0 {
                (round_cents(price.base_fee.0), "whole period".to_string())
            } else {
                (
                    round_cents(price.base_fee.0 * dec(share.active) / dec(share.whole)),
                    format!(
                        "prorated: {} × {}/{} of the period",
                        price.base_fee, share.active, share.whole
                    ),
                )
            };
            lines.push(Line {
                description: "base fee".to_string(),
                quantity: 1,
                unit_price: price.base_fee.0,
                amount,
                detail,
            });
        }
        if let Some(m) = &price.metered {
            lines.extend(metered_lines(m, units));
        }
    }
    let total = lines.iter().map(|l| l.amount).sum();
    Quote {
        currency: price.currency.clone(),
        lines,
        total,
    }
}

/// One whole period with `units` of usage (`POST /api/pricing/quote`).
pub fn quote(price: &Price, units: u64) -> Quote {
    bill(price, units, Share::FULL, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(yaml: &str) -> Price {
        let p: Price = yaml_serde::from_str(yaml).unwrap();
        assert_eq!(validate(&p), vec![], "{yaml}");
        p
    }

    const TIERS: &str = "[{ up_to: 1000, unit_price: 0.10 }, { up_to: 10000, unit_price: 0.05 }, { unit_price: 0.01 }]";

    #[test]
    fn the_worked_example_graduated_600_volume_150() {
        let g = price(&format!(
            "{{ metered: {{ model: graduated, tiers: {TIERS} }} }}"
        ));
        let q = quote(&g, 15_000);
        assert_eq!(format_cents(q.total), "600.00");
        let parts: Vec<(u64, String)> = q
            .lines
            .iter()
            .map(|l| (l.quantity, format_cents(l.amount)))
            .collect();
        assert_eq!(
            parts,
            vec![
                (1000, "100.00".into()),
                (9000, "450.00".into()),
                (5000, "50.00".into())
            ]
        );
        assert_eq!(q.lines[1].detail, "tier 2 (1001–10000): 9000 × 0.05");
        let v = price(&format!(
            "{{ metered: {{ model: volume, tiers: {TIERS} }} }}"
        ));
        let q = quote(&v, 15_000);
        assert_eq!(format_cents(q.total), "150.00");
        assert_eq!(
            q.lines[0].detail,
            "15000 units reach tier 3 (above 10000): all 15000 × 0.01"
        );
    }

    #[test]
    fn amounts_read_exactly_from_numbers_and_strings() {
        let p = price(r#"{ base_fee: 49.00, metered: { model: per_unit, unit_price: "0.0005" } }"#);
        assert_eq!(p.base_fee.0, Decimal::new(4900, 2));
        let q = quote(&p, 3);
        // 3 × 0.0005 = 0.0015 → 0.00 once rounded; the unit price stays exact.
        assert_eq!(format_cents(q.lines[1].amount), "0.00");
        assert_eq!(q.lines[1].unit_price.to_string(), "0.0005");
        let p = price("{ metered: { model: per_unit, unit_price: 0.1 } }");
        // 0.1 × 3 is exactly 0.3 in decimal (in floating point it is not).
        assert_eq!(quote(&p, 3).total, Decimal::new(3, 1));
        assert!(yaml_serde::from_str::<Price>(r#"{ base_fee: "1e3" }"#).is_err());
        assert!(yaml_serde::from_str::<Price>("{ base_fee: abc }").is_err());
    }

    #[test]
    fn package_and_bundles() {
        let p = price(
            "{ metered: { model: package, package_size: 100, package_price: 5.00, free_units: 100 } }",
        );
        assert_eq!(format_cents(quote(&p, 100).total), "0.00");
        assert_eq!(format_cents(quote(&p, 101).total), "5.00");
        assert_eq!(format_cents(quote(&p, 300).total), "10.00");
        assert_eq!(format_cents(quote(&p, 301).total), "15.00");
        let b = price(
            "{ metered: { model: bundles, tiers: [{ up_to: 100, flat_fee: 150 }, { up_to: 1000, flat_fee: 300 }, { flat_fee: 1000 }] } }",
        );
        assert_eq!(format_cents(quote(&b, 0).total), "150.00");
        assert_eq!(format_cents(quote(&b, 100).total), "150.00");
        assert_eq!(format_cents(quote(&b, 101).total), "450.00");
        assert_eq!(format_cents(quote(&b, 5000).total), "1450.00");
    }

    #[test]
    fn base_fee_prorates_and_setup_fee_comes_once() {
        let p = price("{ base_fee: 49.00, setup_fee: 100 }");
        let q = bill(
            &p,
            0,
            Share {
                active: 10,
                whole: 30,
            },
            true,
        );
        let amounts: Vec<String> = q.lines.iter().map(|l| format_cents(l.amount)).collect();
        assert_eq!(amounts, vec!["100.00", "16.33"]);
        assert_eq!(format_cents(q.total), "116.33");
        assert_eq!(format_cents(bill(&p, 0, Share::FULL, false).total), "49.00");
        assert_eq!(quote(&Price::free(), 1_000_000).lines, vec![]);
    }

    #[test]
    fn flat_fees_of_graduated_tiers_come_when_reached() {
        let p = price(
            "{ metered: { model: graduated, tiers: [{ up_to: 100, unit_price: 0 }, { up_to: 1000, unit_price: 0.0005, flat_fee: 10 }, { unit_price: 0.0002 }] } }",
        );
        assert_eq!(format_cents(quote(&p, 100).total), "0.00");
        assert_eq!(format_cents(quote(&p, 101).total), "10.00");
        assert_eq!(format_cents(quote(&p, 1100).total), "10.47");
    }

    #[test]
    fn bad_prices_name_the_field() {
        let p: Price = yaml_serde::from_str(
            "{ currency: usd, base_fee: -1, metered: { model: graduated, tiers: [{ up_to: 10 }, { up_to: 5 }, { up_to: 20 }] } }",
        )
        .unwrap();
        let paths: Vec<String> = validate(&p).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            vec![
                "currency",
                "base_fee",
                "metered.tiers[1].up_to",
                "metered.tiers[2].up_to"
            ]
        );
        let p: Price = yaml_serde::from_str("{ model: free, base_fee: 5 }").unwrap();
        assert_eq!(validate(&p)[0].path, "model");
        assert!(yaml_serde::from_str::<Price>("{ metered: { model: linear } }").is_err());
        assert!(
            yaml_serde::from_str::<Price>(
                "{ metered: { model: per_unit, unit_price: 1, extra: 2 } }"
            )
            .is_err()
        );
    }

    #[test]
    fn quotes_serialize_money_as_decimal_strings() {
        let p = price(&format!(
            "{{ metered: {{ model: graduated, tiers: {TIERS} }} }}"
        ));
        let json = serde_json::to_value(quote(&p, 15_000)).unwrap();
        assert_eq!(json["total"], "600.00");
        assert_eq!(json["lines"][0]["unit_price"], "0.1");
        assert_eq!(json["lines"][0]["amount"], "100.00");
    }
}
