//! Price sheets: AWS's published on-demand prices (US East) by default, or a file.

use serde::{Deserialize, Serialize};

use crate::money::Price;

/// One duration tier: `price` per GB-second up to `up_to_gb_seconds` of the month's usage
/// (the last tier has no bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub up_to_gb_seconds: Option<u64>,
    pub price: Price,
}

/// Prices per architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByArch<T> {
    pub x86_64: T,
    pub arm64: T,
}

/// Everything usage is priced with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSheet {
    pub currency: String,
    pub request_per_million: Price,
    /// Tiers in order, applied to the account's monthly GB-seconds per architecture.
    pub duration: ByArch<Vec<Tier>>,
    /// Per GB-second of ephemeral storage above 512 MB.
    pub ephemeral_storage_gb_second: Price,
    pub provisioned_concurrency_gb_second: ByArch<Price>,
    pub provisioned_duration_gb_second: ByArch<Price>,
    /// Per GB streamed beyond the first 6 MB of each response.
    pub streamed_gb: Price,
    /// Monthly free tier, per account, shared by both architectures.
    pub free_requests: u64,
    pub free_gb_seconds: u64,
    pub free_streamed_gb: u64,
    /// Whether the INIT phase of on-demand functions is billed (AWS: yes, since 2025-08-01).
    pub bill_init: bool,
}

fn p(s: &str) -> Price {
    Price::parse(s).expect("built-in prices parse")
}

impl Default for PriceSheet {
    /// AWS Lambda, US East (N. Virginia), as published in 2026.
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            request_per_million: p("0.20"),
            duration: ByArch {
                x86_64: vec![
                    Tier {
                        up_to_gb_seconds: Some(6_000_000_000),
                        price: p("0.0000166667"),
                    },
                    Tier {
                        up_to_gb_seconds: Some(15_000_000_000),
                        price: p("0.000015"),
                    },
                    Tier {
                        up_to_gb_seconds: None,
                        price: p("0.0000133334"),
                    },
                ],
                arm64: vec![
                    Tier {
                        up_to_gb_seconds: Some(7_500_000_000),
                        price: p("0.0000133334"),
                    },
                    Tier {
                        up_to_gb_seconds: Some(18_750_000_000),
                        price: p("0.0000120001"),
                    },
                    Tier {
                        up_to_gb_seconds: None,
                        price: p("0.0000106667"),
                    },
                ],
            },
            ephemeral_storage_gb_second: p("0.0000000309"),
            provisioned_concurrency_gb_second: ByArch {
                x86_64: p("0.0000041667"),
                arm64: p("0.0000033334"),
            },
            provisioned_duration_gb_second: ByArch {
                x86_64: p("0.0000097222"),
                arm64: p("0.0000077778"),
            },
            streamed_gb: p("0.008"),
            free_requests: 1_000_000,
            free_gb_seconds: 400_000,
            free_streamed_gb: 100,
            bill_init: true,
        }
    }
}

impl PriceSheet {
    /// Reads a sheet from TOML (every field required, so that nothing is priced by accident).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let sheet: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        for tiers in [&sheet.duration.x86_64, &sheet.duration.arm64] {
            if tiers.is_empty() || tiers.last().is_some_and(|t| t.up_to_gb_seconds.is_some()) {
                return Err(
                    "each architecture needs tiers ending with one without up_to_gb_seconds".into(),
                );
            }
            if tiers.windows(2).any(|w| {
                w[0].up_to_gb_seconds >= w[1].up_to_gb_seconds && w[1].up_to_gb_seconds.is_some()
            }) {
                return Err("tier bounds must increase".into());
            }
        }
        Ok(sheet)
    }
}
