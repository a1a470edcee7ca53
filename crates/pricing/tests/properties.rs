//! Properties of the pricing engine that must hold for every plan and every usage.

use proptest::prelude::*;
use tollgate_pricing::{Decimal, Metered, Money, Price, Tier, Tiers, quote, round_cents, validate};

/// Ascending tiers with prices in tenths of a cent, the last one open.
fn tiers() -> impl Strategy<Value = Vec<Tier>> {
    proptest::collection::vec((1u64..5_000, 0i64..2_000, 0i64..500), 1..5).prop_map(|raw| {
        let mut bound = 0;
        let n = raw.len();
        raw.into_iter()
            .enumerate()
            .map(|(i, (step, price, flat))| {
                bound += step;
                Tier {
                    up_to: (i + 1 < n).then_some(bound),
                    unit_price: Money(Decimal::new(price, 4)),
                    flat_fee: Money(Decimal::new(flat, 2)),
                }
            })
            .collect()
    })
}

fn with(metered: Metered) -> Price {
    let mut p = Price::free();
    p.model = None;
    p.metered = Some(metered);
    p
}

proptest! {
    #[test]
    fn graduated_charges_each_used_unit_exactly_once(t in tiers(), units in 0u64..30_000) {
        let p = with(Metered::Graduated(Tiers { tiers: t }));
        prop_assert!(validate(&p).is_empty());
        let q = quote(&p, units);
        let charged: u64 = q.lines.iter().map(|l| l.quantity).sum();
        prop_assert_eq!(charged, units);
    }

    #[test]
    fn graduated_never_costs_more_than_volume_at_the_highest_price(t in tiers(), units in 0u64..30_000) {
        let max = t.iter().map(|x| x.unit_price.0).max().unwrap();
        let flats: Decimal = t.iter().map(|x| x.flat_fee.0).sum();
        let p = with(Metered::Graduated(Tiers { tiers: t }));
        // Each line is rounded to cents once: allow half a cent per line.
        let slack = Decimal::new(5, 3) * Decimal::from(q_len(&p, units));
        prop_assert!(quote(&p, units).total <= Decimal::from(units) * max + flats + slack);
    }

    #[test]
    fn more_usage_never_costs_less_graduated(t in tiers(), a in 0u64..20_000, extra in 0u64..20_000) {
        let p = with(Metered::Graduated(Tiers { tiers: t }));
        prop_assert!(quote(&p, a + extra).total + Decimal::new(5, 2) >= quote(&p, a).total);
    }

    #[test]
    fn the_bill_is_the_same_whatever_the_order_of_usage(
        t in tiers(),
        usage in proptest::collection::vec(0u64..2_000, 0..20),
        seed in any::<u64>(),
    ) {
        let p = with(Metered::Volume(Tiers { tiers: t.clone() }));
        let g = with(Metered::Graduated(Tiers { tiers: t }));
        let mut shuffled = usage.clone();
        // A deterministic shuffle driven by the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let total = |u: &[u64]| u.iter().sum::<u64>();
        prop_assert_eq!(quote(&p, total(&usage)), quote(&p, total(&shuffled)));
        prop_assert_eq!(quote(&g, total(&usage)), quote(&g, total(&shuffled)));
    }

    #[test]
    fn volume_charges_every_unit_at_the_reached_price(t in tiers(), units in 1u64..30_000) {
        let p = with(Metered::Volume(Tiers { tiers: t.clone() }));
        let q = quote(&p, units);
        prop_assert_eq!(q.lines.len(), 1);
        let line = &q.lines[0];
        prop_assert_eq!(line.quantity, units);
        let tier = t.iter().find(|x| x.up_to.is_none_or(|u| units <= u)).unwrap();
        prop_assert_eq!(line.amount, round_cents(Decimal::from(units) * tier.unit_price.0 + tier.flat_fee.0));
    }

    #[test]
    fn totals_are_the_sum_of_their_lines(t in tiers(), units in 0u64..30_000) {
        for m in [
            Metered::Graduated(Tiers { tiers: t.clone() }),
            Metered::Volume(Tiers { tiers: t.clone() }),
            Metered::Bundles(Tiers { tiers: t.clone() }),
        ] {
            let q = quote(&with(m), units);
            prop_assert_eq!(q.total, q.lines.iter().map(|l| l.amount).sum::<Decimal>());
            prop_assert!(q.lines.iter().all(|l| l.amount.scale() <= 2));
        }
    }
}

fn q_len(p: &Price, units: u64) -> usize {
    quote(p, units).lines.len()
}
