//! Exact money: integer minor units plus an ISO-4217 currency code. No floats anywhere.
//!
//! Providers send amounts as JSON strings (`"126600"`), JSON numbers (`1.00`, `150`) or
//! empty strings. [`decimal_text`] reads the *text* of either form without ever going
//! through `f64`, and [`Money::parse`] scales it to minor units using the currency's
//! exponent. An amount more precise than its currency allows is refused rather than
//! rounded: rounding money silently is how ledgers drift.

use serde_json::value::RawValue;
use std::fmt;

/// Why an amount could not be read exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain decimal number (`12`, `12.50`).
    #[error("not a decimal amount: {0:?}")]
    NotDecimal(String),
    /// More fractional digits than the currency has minor units (e.g. `1.005` KES).
    #[error("{amount} has more precision than {currency} allows")]
    TooPrecise {
        /// The amount as given.
        amount: String,
        /// The currency code.
        currency: String,
    },
    /// Signed (`-150`, `+150`): a payment's amount is never negative, and a sign is how a
    /// forged or garbled body would turn a payment into a debit.
    #[error("a payment amount has no sign: {0:?}")]
    Signed(String),
    /// Larger than an `i64` of minor units can hold.
    #[error("amount out of range: {0}")]
    OutOfRange(String),
    /// Not a three-letter currency code.
    #[error("not a currency code: {0:?}")]
    BadCurrency(String),
}

/// An exact amount of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for KES, shillings for UGX).
    pub minor: i64,
    /// Upper-case ISO-4217 code, e.g. `UGX`.
    pub currency: String,
}

/// Number of decimal places of a currency's minor unit (ISO 4217). Unknown codes get 2,
/// the most common exponent; the ones payhook's providers use are listed explicitly.
pub fn minor_exponent(currency: &str) -> u32 {
    match currency {
        // Zero-decimal currencies, among them UGX and RWF used by ZengaPay and TransferZero.
        "UGX" | "RWF" | "XOF" | "XAF" | "BIF" | "DJF" | "GNF" | "KMF" | "JPY" | "KRW" | "VND"
        | "CLP" | "PYG" | "ISK" | "VUV" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

impl Money {
    /// Reads `amount` (decimal text) in `currency`.
    ///
    /// ```
    /// use payhook::money::Money;
    /// assert_eq!(Money::parse("126600.00", "UGX").unwrap().minor, 126600);
    /// assert_eq!(Money::parse("1.5", "KES").unwrap().minor, 150);
    /// assert!(Money::parse("1.005", "KES").is_err());
    /// ```
    pub fn parse(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = normalise_currency(currency)?;
        let minor = to_minor(amount, minor_exponent(&currency), &currency)?;
        Ok(Money { minor, currency })
    }

    /// The amount as decimal text with the currency's number of places (`1.50`, `126600`).
    pub fn decimal(&self) -> String {
        let exp = minor_exponent(&self.currency);
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let scale = scale as u64;
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exp as usize
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal(), self.currency)
    }
}

fn normalise_currency(code: &str) -> Result<String, MoneyError> {
    let code = code.trim();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(MoneyError::BadCurrency(code.to_string()))
    }
}

/// Scales decimal text to an integer number of minor units, refusing lost precision.
fn to_minor(text: &str, exponent: u32, currency: &str) -> Result<i64, MoneyError> {
    let digits = text.trim();
    if digits.starts_with(['-', '+']) {
        return Err(MoneyError::Signed(text.to_string()));
    }
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || (int_part.is_empty() && !digits.starts_with('.'))
    {
        return Err(MoneyError::NotDecimal(text.to_string()));
    }
    let exp = exponent as usize;
    let significant = frac_part.trim_end_matches('0');
    if significant.len() > exp {
        return Err(MoneyError::TooPrecise {
            amount: text.to_string(),
            currency: currency.to_string(),
        });
    }
    let out_of_range = || MoneyError::OutOfRange(text.to_string());
    let mut minor: i64 = 0;
    for b in int_part
        .bytes()
        .chain(significant.bytes().chain(std::iter::repeat(b'0')).take(exp))
    {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(out_of_range)?;
    }
    Ok(minor)
}

/// The decimal text of a JSON amount given as a string or a number, read from its raw
/// JSON text so that `1.10` stays `1.10`. An empty string or `null` is `None`.
pub fn decimal_text(raw: &RawValue) -> Result<Option<String>, MoneyError> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let s: String =
            serde_json::from_str(text).map_err(|_| MoneyError::NotDecimal(text.to_string()))?;
        let s = s.trim();
        return Ok(if s.is_empty() {
            None
        } else {
            Some(s.to_string())
        });
    }
    // A JSON number; exponent forms (1e3) are refused by Money::parse later.
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn parses_exactly_without_floats() {
        assert_eq!(Money::parse("126600", "UGX").unwrap().minor, 126600);
        assert_eq!(Money::parse("126600.00", "ugx").unwrap().currency, "UGX");
        assert_eq!(Money::parse("0.10", "KES").unwrap().minor, 10);
        assert_eq!(Money::parse(".5", "KES").unwrap().minor, 50);
        // 0.1 + 0.2 style drift is impossible: 10874.0 NGN is exactly 1087400 kobo.
        assert_eq!(Money::parse("10874.0", "NGN").unwrap().minor, 1_087_400);
    }

    #[test]
    fn refuses_what_it_cannot_represent_exactly() {
        assert!(matches!(
            Money::parse("1.005", "KES"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1.5", "UGX"),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in ["", "abc", "1e3", "1.2.3", "--1", "1,000", "."] {
            assert!(Money::parse(bad, "KES").is_err(), "{bad:?} must be refused");
        }
        assert!(Money::parse("99999999999999999999", "KES").is_err());
        for signed in ["-150", "+150", "-0.05", " -1"] {
            assert!(
                matches!(Money::parse(signed, "KES"), Err(MoneyError::Signed(_))),
                "{signed:?} must be refused"
            );
        }
        assert!(Money::parse("1", "KESH").is_err());
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        assert_eq!(Money::parse("1", "KES").unwrap().decimal(), "1.00");
        assert_eq!(Money::parse("0.05", "KES").unwrap().decimal(), "0.05");
        assert_eq!(
            Money::parse("126600", "UGX").unwrap().to_string(),
            "126600 UGX"
        );
    }

    #[test]
    fn three_decimal_currencies_and_signs_format_exactly() {
        // Three-decimal currencies (ISO 4217): a fils is a thousandth of a dinar.
        assert_eq!(minor_exponent("KWD"), 3);
        assert_eq!(Money::parse("1.234", "KWD").unwrap().minor, 1234);
        assert_eq!(Money::parse("1.234", "KWD").unwrap().decimal(), "1.234");
        assert!(Money::parse("1.2345", "KWD").is_err());
        // Zero has no sign; a negative amount (never parsed, but formatted if stored) does.
        let money = |minor| Money {
            minor,
            currency: "KES".into(),
        };
        assert_eq!(money(0).decimal(), "0.00");
        assert_eq!(money(-150).decimal(), "-1.50");
        assert_eq!(money(150).decimal(), "1.50");
    }

    #[test]
    fn json_amounts_keep_their_text() {
        assert_eq!(decimal_text(&raw("1.10")).unwrap().as_deref(), Some("1.10"));
        assert_eq!(
            decimal_text(&raw("\"126600\"")).unwrap().as_deref(),
            Some("126600")
        );
        assert_eq!(decimal_text(&raw("\"\"")).unwrap(), None);
        assert_eq!(decimal_text(&raw("null")).unwrap(), None);
    }
}
