//! The shared vocabulary: which provider, what kind of payment, what a source says about
//! it ([`StatusReport`]), a verified and a parsed callback, an open transaction. The
//! store, the providers, the reconciler and the forwarder all speak it; it depends on
//! none of them.

use crate::money::Money;
use crate::state::Status;
use bytes::Bytes;
use sha2::Digest;
use std::fmt;
use std::str::FromStr;

/// Declares [`ProviderId`], [`ProviderId::ALL`] and [`ProviderId::as_str`] from one list,
/// so that a provider cannot be missing from either: adding one is one line below.
macro_rules! provider_ids {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// The providers payhook speaks to. The lowercase spelling
        /// ([`ProviderId::as_str`]) is the route name, config key, SQL value, log field
        /// and metric label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProviderId {
            $( $(#[$doc])* $variant, )*
        }

        impl ProviderId {
            /// Every provider, in a fixed order.
            pub const ALL: [ProviderId; [$($name),*].len()] = [$(ProviderId::$variant),*];

            /// The one spelling used everywhere.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ProviderId::$variant => $name, )*
                }
            }
        }
    };
}

provider_ids! {
    /// ZengaPay (Uganda mobile money).
    ZengaPay => "zengapay",
    /// BitPesa / TransferZero.
    BitPesa => "bitpesa",
    /// Safaricom M-Pesa Daraja.
    Daraja => "daraja",
    /// Equity Jenga.
    Jenga => "jenga",
    /// Tujenge.
    Tujenge => "tujenge",
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that payhook does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?} (expected {expected})", expected = expected_providers())]
pub struct UnknownProvider(pub String);

/// `zengapay, bitpesa, daraja, jenga or tujenge`.
fn expected_providers() -> String {
    let names: Vec<&str> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl FromStr for ProviderId {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// What kind of payment a transaction is (`transactions.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// Money collected from a payer (ZengaPay collection).
    Collection,
    /// Money sent out (ZengaPay transfer, TransferZero payout).
    Transfer,
    /// Daraja STK push.
    Stk,
    /// Daraja C2B paybill/till payment.
    C2b,
    /// Daraja B2C payout.
    B2c,
    /// Jenga instant payment notification.
    Ipn,
    /// Not known (e.g. a Tujenge callback of unknown shape).
    Unknown,
}

impl TxnKind {
    /// The SQL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnKind::Collection => "collection",
            TxnKind::Transfer => "transfer",
            TxnKind::Stk => "stk",
            TxnKind::C2b => "c2b",
            TxnKind::B2c => "b2c",
            TxnKind::Ipn => "ipn",
            TxnKind::Unknown => "unknown",
        }
    }
}

impl FromStr for TxnKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "collection" => TxnKind::Collection,
            "transfer" => TxnKind::Transfer,
            "stk" => TxnKind::Stk,
            "c2b" => TxnKind::C2b,
            "b2c" => TxnKind::B2c,
            "ipn" => TxnKind::Ipn,
            "unknown" => TxnKind::Unknown,
            other => return Err(format!("unknown transaction kind {other:?}")),
        })
    }
}

/// A set of [`TxnKind`]s: which kinds of payment a provider can be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kinds(u8);

impl Kinds {
    /// No kind.
    pub const NONE: Kinds = Kinds(0);
    /// Every kind.
    pub const ALL: Kinds = Kinds(u8::MAX);
    const EVERY: [TxnKind; 7] = [
        TxnKind::Collection,
        TxnKind::Transfer,
        TxnKind::Stk,
        TxnKind::C2b,
        TxnKind::B2c,
        TxnKind::Ipn,
        TxnKind::Unknown,
    ];

    /// The kinds for which `f` holds.
    pub fn of(f: impl Fn(TxnKind) -> bool) -> Kinds {
        Kinds(
            Self::EVERY
                .iter()
                .filter(|k| f(**k))
                .fold(0, |set, k| set | (1 << *k as u8)),
        )
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: TxnKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
}

/// What one source (a callback or a status poll) says about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The provider's id of the transaction (`transactions.provider_ref`).
    pub provider_ref: String,
    /// Payment kind, if the source tells.
    pub kind: TxnKind,
    /// Normalised status (the `status` column of schema.sql).
    pub status: Status,
    /// Normalised reason for FAILED/INDETERMINATE (e.g. `CANCELLED_BY_USER`).
    pub reason: Option<String>,
    /// The provider's own status word or result code, verbatim.
    pub provider_status: Option<String>,
    /// Amount the provider reported, exact.
    pub money: Option<Money>,
    /// The merchant's reference the provider echoed back.
    pub merchant_ref: Option<String>,
    /// Phone number, as given (possibly masked).
    pub msisdn: Option<String>,
    /// Network receipt (M-Pesa receipt, MNO id).
    pub receipt: Option<String>,
}

impl StatusReport {
    /// A report with only the reference, kind and status set.
    pub fn new(provider_ref: impl Into<String>, kind: TxnKind, status: Status) -> Self {
        StatusReport {
            provider_ref: provider_ref.into(),
            kind,
            status,
            reason: None,
            provider_status: None,
            money: None,
            merchant_ref: None,
            msisdn: None,
            receipt: None,
        }
    }
}

/// A parsed callback: how to deduplicate it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEvent {
    /// Callback kind (`callbacks.kind`), e.g. `collection.success`.
    pub kind: String,
    /// Idempotency key unique per provider (`callbacks.dedup_key`).
    pub dedup_key: String,
    /// The transaction status it reports; `None` for callbacks about something else
    /// (a TransferZero `sender.approved`, say), which are stored but change nothing.
    pub report: Option<StatusReport>,
}

/// A callback whose credential checked out. Only a provider's `verify` can make one
/// (`#[non_exhaustive]` forbids struct literals outside the crate), and the store only accepts this type: unverified input cannot be stored
/// as accepted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedCallback {
    /// Which provider verified it.
    pub provider: ProviderId,
    /// Which check passed (`callbacks.auth`), e.g. `hmac-sha512`.
    pub auth: String,
    /// True when a signature or credential proved the whole body; false for a path
    /// token alone, or a signature over some fields only (ZengaPay's field variants).
    /// What an unsigned callback reports is a hint ([`crate::state::plan`]).
    pub signed: bool,
    /// What the credential covers: the whole body, some fields, or only "this provider
    /// called" (a path token).
    pub coverage: Coverage,
    /// A request nonce to check for replay (BitPesa).
    pub nonce: Option<String>,
    /// The path token it came with, if any (Tujenge correlates on it). Providers put a
    /// non-secret identifier of the matching token here, never the token itself, so
    /// that `Debug` output cannot leak it.
    pub path_token: Option<String>,
    /// The path after the token, e.g. `c2b/validation` for Daraja, if any: it tells
    /// apart callbacks whose bodies have the same shape (Daraja's C2B validation and confirmation).
    pub sub_route: Option<String>,
    /// The body exactly as received.
    pub body: Bytes,
    /// The payment a minted URL bound it to ([`crate::minted`]), if it came on one.
    pub payment: Option<String>,
}

impl VerifiedCallback {
    /// For providers' `verify` implementations only.
    pub(crate) fn new(
        provider: ProviderId,
        auth: impl Into<String>,
        signed: bool,
        body: Bytes,
    ) -> Self {
        VerifiedCallback {
            provider,
            auth: auth.into(),
            signed,
            coverage: if signed {
                Coverage::Body
            } else {
                Coverage::Token
            },
            nonce: None,
            path_token: None,
            sub_route: None,
            body,
            payment: None,
        }
    }
}

/// What a callback's credential proves about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A signature over the whole body, or a provider credential (HTTP Basic).
    Body,
    /// A signature over some fields only (ZengaPay: reference, MSISDN, amount).
    Fields,
    /// A secret path token: who called, not what they said.
    Token,
}

/// Why an authenticated body could not be understood. The callback is kept raw and
/// flagged for review; the provider still gets its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A required field is absent or empty.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field has a value payhook cannot interpret.
    #[error("invalid {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        ParseError::Json(e.to_string())
    }
}

/// An open transaction the reconciler asks its provider about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTxn {
    /// `transactions.id`.
    pub id: i64,
    /// Its provider.
    pub provider: ProviderId,
    /// The provider's reference, the key of the status query.
    pub provider_ref: String,
    /// Payment kind (ZengaPay has one endpoint per kind).
    pub kind: TxnKind,
    /// Current status: PENDING or INDETERMINATE, or NEEDS_REVIEW for a held success that a
    /// status query may still confirm (`store::polls::claim`).
    pub status: Status,
    /// True when an unsigned callback reported a success that a poll must confirm.
    pub unconfirmed: bool,
    /// Status queries made so far.
    pub poll_attempts: i64,
    /// When payhook first knew of it.
    pub created_at_ms: i64,
    /// Escalate to NEEDS_REVIEW if still open by then.
    pub deadline_at_ms: Option<i64>,
}

/// What a report means, as a hash: two bodies that state the same status, amount,
/// currency, merchant reference, phone number and receipt for the same reference have the
/// same fingerprint, whatever their bytes (white space, `"10"` against `10`).
pub fn report_fingerprint(r: &StatusReport) -> String {
    let amount = r
        .money
        .as_ref()
        .map(|m| format!("{} {}", m.minor, m.currency));
    let fields = [
        Some(r.provider_ref.trim()),
        Some(r.status.as_str()),
        amount.as_deref(),
        r.merchant_ref.as_deref().map(str::trim),
        r.msisdn.as_deref().map(str::trim),
        r.receipt.as_deref().map(str::trim),
    ];
    let text: Vec<&str> = fields.iter().map(|f| f.unwrap_or("")).collect();
    sha256_hex(text.join("\u{1f}").as_bytes())
}

/// Lowercase hex SHA-256 of `bytes` (body hashes, fallback dedup keys).
pub fn sha256_hex(bytes: &[u8]) -> String {
    // Three of these per callback (body, report, event id): a table lookup per nibble
    // instead of `hex::encode`'s iterator of chars.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_lowercase_hex_of_the_digest() {
        // The digests of "" and "abc" published with SHA-256.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for n in 0..300_u16 {
            let bytes: Vec<u8> = (0..n).map(|i| (i.wrapping_mul(31) ^ n) as u8).collect();
            assert_eq!(
                sha256_hex(&bytes),
                hex::encode(sha2::Sha256::digest(&bytes))
            );
        }
    }
}
