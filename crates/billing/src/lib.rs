//! Lambda's pricing: per request and per GB-second at 1 ms granularity, with monthly tiers and a
//! free tier, on a replaceable price sheet. Money is exact: prices are decimals parsed into
//! integers, amounts are integer fractions, and rounding to cents happens once per line.

pub mod bill;
pub mod money;
pub mod sheet;

pub use bill::{Bill, Line, MB_MS_PER_GB_S, Usage, bill};
pub use money::{Price, format_cents};
pub use sheet::{ByArch, PriceSheet, Tier};
