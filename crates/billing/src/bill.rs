//! A month's bill for one account: line items computed exactly and rounded to cents each; the
//! total is the sum of the rounded lines, as AWS shows it.

use serde::Serialize;

use crate::money::{Exact, format_cents};
use crate::sheet::{PriceSheet, Tier};

/// MB·ms in one GB-second (1 GB = 1024 MB, 1 s = 1000 ms).
pub const MB_MS_PER_GB_S: u128 = 1024 * 1000;
const BYTES_PER_GB: u128 = 1 << 30;

/// An account's usage in one month, in exact integer units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub requests: u64,
    /// Σ memory MB × billed ms, x86_64.
    pub x86_mb_ms: u128,
    /// Σ memory MB × billed ms, arm64.
    pub arm_mb_ms: u128,
    /// Σ (ephemeral storage MB − 512) × billed ms.
    pub storage_mb_ms: u128,
    pub provisioned_x86_mb_ms: u128,
    pub provisioned_arm_mb_ms: u128,
    pub provisioned_duration_x86_mb_ms: u128,
    pub provisioned_duration_arm_mb_ms: u128,
    /// Bytes streamed beyond the first 6 MB of each response.
    pub streamed_bytes: u128,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.requests += o.requests;
        self.x86_mb_ms += o.x86_mb_ms;
        self.arm_mb_ms += o.arm_mb_ms;
        self.storage_mb_ms += o.storage_mb_ms;
        self.provisioned_x86_mb_ms += o.provisioned_x86_mb_ms;
        self.provisioned_arm_mb_ms += o.provisioned_arm_mb_ms;
        self.provisioned_duration_x86_mb_ms += o.provisioned_duration_x86_mb_ms;
        self.provisioned_duration_arm_mb_ms += o.provisioned_duration_arm_mb_ms;
        self.streamed_bytes += o.streamed_bytes;
    }

    /// On-demand GB-seconds (both architectures), exact as a fraction of MB·ms.
    pub fn gb_seconds(&self) -> f64 {
        (self.x86_mb_ms + self.arm_mb_ms) as f64 / MB_MS_PER_GB_S as f64
    }
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub item: String,
    pub cents: u128,
    pub amount: String,
}

/// A month's bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bill {
    pub currency: String,
    pub lines: Vec<Line>,
    pub total_cents: u128,
    pub total: String,
}

/// Prices `mb_ms` through `tiers`, starting `already_mb_ms` into them.
fn tiered(mb_ms: u128, tiers: &[Tier]) -> Exact {
    let mut left = mb_ms;
    let mut floor: u128 = 0;
    let mut total = Exact {
        numerator: 0,
        denominator: MB_MS_PER_GB_S,
    };
    for t in tiers {
        let ceiling = t.up_to_gb_seconds.map(|g| g as u128 * MB_MS_PER_GB_S);
        let room = ceiling.map_or(left, |c| c.saturating_sub(floor).min(left));
        total = total.plus(Exact::of(room, t.price, MB_MS_PER_GB_S));
        left -= room;
        if let Some(c) = ceiling {
            floor = c;
        }
        if left == 0 {
            break;
        }
    }
    total
}

/// Bills one account-month.
pub fn bill(sheet: &PriceSheet, usage: &Usage) -> Bill {
    let mut lines = Vec::new();
    let mut push = |item: String, exact: Exact| {
        let cents = exact.cents();
        if exact.numerator > 0 {
            lines.push(Line {
                item,
                cents,
                amount: format_cents(cents),
            });
        }
    };
    let billable_requests = usage.requests.saturating_sub(sheet.free_requests) as u128;
    push(
        format!(
            "requests: {} ({} free)",
            usage.requests,
            usage.requests.min(sheet.free_requests)
        ),
        Exact::of(billable_requests, sheet.request_per_million, 1_000_000),
    );
    // The free GB-seconds go to x86 first (the dearer), then arm.
    let mut free = sheet.free_gb_seconds as u128 * MB_MS_PER_GB_S;
    let x86_free = free.min(usage.x86_mb_ms);
    free -= x86_free;
    let arm_free = free.min(usage.arm_mb_ms);
    for (name, mb_ms, free, tiers) in [
        ("x86_64", usage.x86_mb_ms, x86_free, &sheet.duration.x86_64),
        ("arm64", usage.arm_mb_ms, arm_free, &sheet.duration.arm64),
    ] {
        push(
            format!(
                "duration {name}: {} GB-s ({} free)",
                gb_s(mb_ms),
                gb_s(free)
            ),
            tiered(mb_ms - free, tiers),
        );
    }
    push(
        format!(
            "ephemeral storage above 512 MB: {} GB-s",
            gb_s(usage.storage_mb_ms)
        ),
        Exact::of(
            usage.storage_mb_ms,
            sheet.ephemeral_storage_gb_second,
            MB_MS_PER_GB_S,
        ),
    );
    for (name, mb_ms, price) in [
        (
            "provisioned concurrency x86_64",
            usage.provisioned_x86_mb_ms,
            sheet.provisioned_concurrency_gb_second.x86_64,
        ),
        (
            "provisioned concurrency arm64",
            usage.provisioned_arm_mb_ms,
            sheet.provisioned_concurrency_gb_second.arm64,
        ),
        (
            "duration with provisioned concurrency x86_64",
            usage.provisioned_duration_x86_mb_ms,
            sheet.provisioned_duration_gb_second.x86_64,
        ),
        (
            "duration with provisioned concurrency arm64",
            usage.provisioned_duration_arm_mb_ms,
            sheet.provisioned_duration_gb_second.arm64,
        ),
    ] {
        push(
            format!("{name}: {} GB-s", gb_s(mb_ms)),
            Exact::of(mb_ms, price, MB_MS_PER_GB_S),
        );
    }
    let free_bytes = sheet.free_streamed_gb as u128 * BYTES_PER_GB;
    push(
        format!(
            "response streaming beyond 6 MB: {} bytes",
            usage.streamed_bytes
        ),
        Exact::of(
            usage.streamed_bytes.saturating_sub(free_bytes),
            sheet.streamed_gb,
            BYTES_PER_GB,
        ),
    );
    let total_cents = lines.iter().map(|l| l.cents).sum();
    Bill {
        currency: sheet.currency.clone(),
        lines,
        total_cents,
        total: format_cents(total_cents),
    }
}

fn gb_s(mb_ms: u128) -> String {
    let whole = mb_ms / MB_MS_PER_GB_S;
    let frac = (mb_ms % MB_MS_PER_GB_S) * 1000 / MB_MS_PER_GB_S;
    format!("{whole}.{frac:03}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Price;

    /// MB·ms of `count` invocations of `ms` each at `mb`.
    fn mb_ms(count: u128, ms: u128, mb: u128) -> u128 {
        count * ms * mb
    }

    fn no_free_tier() -> PriceSheet {
        PriceSheet {
            free_requests: 0,
            free_gb_seconds: 0,
            free_streamed_gb: 0,
            ..PriceSheet::default()
        }
    }

    #[test]
    fn on_demand_1_mobile_backend() {
        // 3M requests, 120 ms, 1536 MB, x86: $2.33 + $0.40 = $2.73.
        let u = Usage {
            requests: 3_000_000,
            x86_mb_ms: mb_ms(3_000_000, 120, 1536),
            ..Usage::default()
        };
        let b = bill(&PriceSheet::default(), &u);
        assert_eq!(
            b.lines
                .iter()
                .map(|l| l.amount.as_str())
                .collect::<Vec<_>>(),
            ["0.40", "2.33"]
        );
        assert_eq!(b.total, "2.73");
    }

    #[test]
    fn on_demand_2_telemetry_without_free_tier() {
        // 7,440,000 messages, 2 s, 1 GB: $1.49 + $248.00 = $249.49 (the page applies no free tier).
        let u = Usage {
            requests: 7_440_000,
            x86_mb_ms: mb_ms(7_440_000, 2000, 1024),
            ..Usage::default()
        };
        let b = bill(&no_free_tier(), &u);
        assert_eq!(
            b.lines
                .iter()
                .map(|l| l.amount.as_str())
                .collect::<Vec<_>>(),
            ["1.49", "248.00"]
        );
        assert_eq!(b.total, "249.49");
    }

    #[test]
    fn on_demand_3_bert_with_ephemeral_storage() {
        // 6M requests, 280 ms, 4096 MB, 2048 MB /tmp: $1.00 + $105.33 + $0.08 = $106.41.
        let u = Usage {
            requests: 6_000_000,
            x86_mb_ms: mb_ms(6_000_000, 280, 4096),
            storage_mb_ms: mb_ms(6_000_000, 280, 2048 - 512),
            ..Usage::default()
        };
        let b = bill(&PriceSheet::default(), &u);
        assert_eq!(
            b.lines
                .iter()
                .map(|l| l.amount.as_str())
                .collect::<Vec<_>>(),
            ["1.00", "105.33", "0.08"]
        );
        assert_eq!(b.total, "106.41");
    }

    #[test]
    fn provisioned_concurrency_1_app_launch() {
        // PC 100 × 1.5 GB for 8 h; 500k requests at 100 ms under PC; 2.5M at 120 ms on demand.
        let u = Usage {
            requests: 3_000_000,
            provisioned_x86_mb_ms: 100 * 1536 * 28_800_000,
            provisioned_duration_x86_mb_ms: mb_ms(500_000, 100, 1536),
            x86_mb_ms: mb_ms(2_500_000, 120, 1536),
            ..Usage::default()
        };
        let b = bill(&PriceSheet::default(), &u);
        let amounts: Vec<&str> = b.lines.iter().map(|l| l.amount.as_str()).collect();
        assert_eq!(amounts, ["0.40", "0.83", "18.00", "0.73"]);
        assert_eq!(b.total, "19.96");
    }

    #[test]
    fn provisioned_concurrency_2_cyber_monday() {
        // PC 7 × 4 GB for 24 h; 2M requests at 280 ms; the page applies no free tier.
        let u = Usage {
            requests: 2_000_000,
            provisioned_x86_mb_ms: 7 * 4096 * 86_400_000,
            provisioned_duration_x86_mb_ms: mb_ms(2_000_000, 280, 4096),
            ..Usage::default()
        };
        let b = bill(&no_free_tier(), &u);
        assert_eq!(
            b.lines
                .iter()
                .map(|l| l.amount.as_str())
                .collect::<Vec<_>>(),
            ["0.40", "10.08", "21.78"]
        );
        assert_eq!(b.total, "32.26");
    }

    #[test]
    fn streaming_ssr() {
        // 3M requests, 500 ms, 1536 MB; 1M responses of 7 MB stream 1 MB each beyond 6 MB; the
        // 100 GB of free streaming is already used.
        let u = Usage {
            requests: 3_000_000,
            x86_mb_ms: mb_ms(3_000_000, 500, 1536),
            streamed_bytes: 1_000_000 * (1 << 20),
            ..Usage::default()
        };
        let sheet = PriceSheet {
            free_streamed_gb: 0,
            ..PriceSheet::default()
        };
        let b = bill(&sheet, &u);
        assert_eq!(
            b.lines
                .iter()
                .map(|l| l.amount.as_str())
                .collect::<Vec<_>>(),
            ["0.40", "30.83", "7.81"]
        );
        assert_eq!(b.total, "39.04", "AWS sums the rounded lines");
    }

    #[test]
    fn legacy_100ms_era_example() {
        // 3M requests, 1 s, 512 MB at the old $0.00001667: $18.34 + $0.40 = $18.74.
        let mut sheet = PriceSheet::default();
        sheet.duration.x86_64 = vec![Tier {
            up_to_gb_seconds: None,
            price: Price::parse("0.00001667").unwrap(),
        }];
        let u = Usage {
            requests: 3_000_000,
            x86_mb_ms: mb_ms(3_000_000, 1000, 512),
            ..Usage::default()
        };
        assert_eq!(bill(&sheet, &u).total, "18.74");
    }

    #[test]
    fn a_month_across_the_6_billion_boundary_uses_both_tiers() {
        // 7 billion GB-s of x86 without free tier: 6e9 × 0.0000166667 + 1e9 × 0.000015
        // = $100,000.20 + $15,000.00.
        let u = Usage {
            x86_mb_ms: 7_000_000_000 * MB_MS_PER_GB_S,
            ..Usage::default()
        };
        let b = bill(&no_free_tier(), &u);
        assert_eq!(b.total_cents, 10_000_020 + 1_500_000);
        // And across both boundaries: 16e9 GB-s.
        let u = Usage {
            x86_mb_ms: 16_000_000_000 * MB_MS_PER_GB_S,
            ..Usage::default()
        };
        let expected = 10_000_020 + 13_500_000 + 1_333_340;
        assert_eq!(bill(&no_free_tier(), &u).total_cents, expected);
        // Arm has its own boundaries (7.5e9).
        let u = Usage {
            arm_mb_ms: 8_000_000_000 * MB_MS_PER_GB_S,
            ..Usage::default()
        };
        assert_eq!(bill(&no_free_tier(), &u).total_cents, 10_000_050 + 600_005);
    }

    #[test]
    fn free_tier_is_shared_and_applied_once() {
        let u = Usage {
            requests: 900_000,
            x86_mb_ms: 300_000 * MB_MS_PER_GB_S,
            arm_mb_ms: 300_000 * MB_MS_PER_GB_S,
            ..Usage::default()
        };
        let b = bill(&PriceSheet::default(), &u);
        // x86 is free; arm pays for 200,000 GB-s at $0.0000133334 = $2.67.
        assert_eq!(b.total, "2.67");
        assert_eq!(
            bill(&PriceSheet::default(), &Usage::default()).total_cents,
            0,
            "nothing used, nothing billed"
        );
    }

    #[test]
    fn sheets_load_from_toml() {
        let text = r#"
            currency = "EUR"
            request_per_million = "0.18"
            ephemeral_storage_gb_second = "0"
            streamed_gb = "0"
            free_requests = 0
            free_gb_seconds = 0
            free_streamed_gb = 0
            bill_init = false
            provisioned_concurrency_gb_second = { x86_64 = "0", arm64 = "0" }
            provisioned_duration_gb_second = { x86_64 = "0", arm64 = "0" }
            [[duration.x86_64]]
            price = "0.00001"
            [[duration.arm64]]
            price = "0.000008"
        "#;
        let sheet = PriceSheet::from_toml(text).unwrap();
        assert_eq!(sheet.currency, "EUR");
        let u = Usage {
            requests: 1_000_000,
            x86_mb_ms: 1_000 * MB_MS_PER_GB_S,
            ..Usage::default()
        };
        assert_eq!(bill(&sheet, &u).total, "0.19");
        assert!(PriceSheet::from_toml("currency = 3").is_err());
    }
}
