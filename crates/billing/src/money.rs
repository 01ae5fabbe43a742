//! Exact money: decimal prices parsed without floating point, amounts as exact fractions of
//! pico-units (10⁻¹² of the currency unit), rounded half-up to cents only when shown.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Pico-units per currency unit.
pub const PICO: u128 = 1_000_000_000_000;
const PICO_PER_CENT: u128 = PICO / 100;

/// Why a price could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("'{0}' is not a decimal price with at most 12 digits after the point")]
    Invalid(String),
}

/// A non-negative decimal price, exact to 10⁻¹² of the currency unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Price(u128);

impl Price {
    /// Parses `"0.0000166667"`, `"0.20"`, `"3"`.
    pub fn parse(s: &str) -> Result<Self, PriceError> {
        let bad = || PriceError::Invalid(s.to_owned());
        let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 12
        {
            return Err(bad());
        }
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut frac_pico: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        for _ in frac.len()..12 {
            frac_pico *= 10;
        }
        int.checked_mul(PICO)
            .and_then(|i| i.checked_add(frac_pico))
            .map(Price)
            .ok_or_else(bad)
    }

    /// Pico-units.
    pub fn pico(self) -> u128 {
        self.0
    }
}

impl TryFrom<String> for Price {
    type Error = PriceError;
    fn try_from(s: String) -> Result<Self, PriceError> {
        Self::parse(&s)
    }
}

impl From<Price> for String {
    fn from(p: Price) -> String {
        p.to_string()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.0 / PICO;
        let frac = format!("{:012}", self.0 % PICO);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            write!(f, "{int}")
        } else {
            write!(f, "{int}.{frac}")
        }
    }
}

/// An exact amount: `numerator / denominator` pico-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exact {
    pub numerator: u128,
    pub denominator: u128,
}

impl Exact {
    pub const ZERO: Self = Self {
        numerator: 0,
        denominator: 1,
    };

    /// `quantity × price / per` (e.g. MB·ms × price per GB-s / 1,024,000).
    pub fn of(quantity: u128, price: Price, per: u128) -> Self {
        Self {
            numerator: quantity * price.pico(),
            denominator: per,
        }
    }

    /// Adds an amount with the same denominator.
    pub fn plus(self, other: Self) -> Self {
        if self.numerator == 0 {
            return other;
        }
        assert_eq!(
            self.denominator, other.denominator,
            "amounts of one line share a denominator"
        );
        Self {
            numerator: self.numerator + other.numerator,
            denominator: self.denominator,
        }
    }

    /// Rounded half-up to whole cents.
    pub fn cents(self) -> u128 {
        let d = self.denominator * PICO_PER_CENT;
        (self.numerator + d / 2) / d
    }
}

/// Cents as `12.34`.
pub fn format_cents(cents: u128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prices_exactly() {
        assert_eq!(Price::parse("0.0000166667").unwrap().pico(), 16_666_700);
        assert_eq!(Price::parse("0.20").unwrap().pico(), 200_000_000_000);
        assert_eq!(Price::parse("3").unwrap().pico(), 3 * PICO);
        assert_eq!(Price::parse(".5").unwrap().pico(), PICO / 2);
        assert_eq!(
            Price::parse("0.0000000309").unwrap().to_string(),
            "0.0000000309"
        );
        for bad in ["", ".", "1.2.3", "-1", "0.0000000000001", "abc", "1e-5"] {
            assert!(Price::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rounds_half_up_to_cents() {
        let p = Price::parse("0.005").unwrap();
        assert_eq!(Exact::of(1, p, 1).cents(), 1);
        let p = Price::parse("0.0049999").unwrap();
        assert_eq!(Exact::of(1, p, 1).cents(), 0);
        assert_eq!(format_cents(24949), "249.49");
        assert_eq!(format_cents(5), "0.05");
    }
}
