//! Providers: each one's wire format and authentication, behind the [`Provider`] trait.
//!
//! Providers do no I/O. `verify` checks the credential on the raw request bytes before
//! anything is parsed; `parse_callback` turns a verified body into a [`CallbackEvent`].
//! For reconciliation, `status_request` builds the status query of one open transaction
//! and `parse_status_reply` reads the answer; the reconciler sends it (providers never
//! touch the network) and whatever is not pure (the time, a nonce, an access token) is
//! passed in through [`PollInputs`]. The HTTP layer owns sockets, the store owns SQL.
//!
//! A provider is its module here (its wire format in `mod.rs`, its configuration table in
//! `config.rs`), its [`ProviderId`] variant, and one line in [`registry::ENTRIES`];
//! `CONTRIBUTING.md` walks through adding one.

pub mod bitpesa;
pub mod daraja;
pub mod jenga;
pub mod path_token;
pub mod registry;
pub mod sample;
pub mod tujenge;
pub mod zengapay;

pub use crate::domain::{
    report_fingerprint, sha256_hex, CallbackEvent, Coverage, Kinds, ParseError, PendingTxn,
    ProviderId, StatusReport, TxnKind, UnknownProvider, VerifiedCallback,
};
use crate::secret::Secret;
use bytes::Bytes;
use hmac::Mac;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
pub use registry::{ProviderConfig, ProvidersConfig, Registry};

/// A request as received, before anything has been checked.
#[derive(Debug, Clone, Copy)]
pub struct RawCallback<'a> {
    /// Path after `/callbacks/{provider}/` (a secret token, maybe a sub-route), if any.
    pub path_rest: Option<&'a str>,
    /// Request path as received, e.g. `/callbacks/bitpesa`.
    pub path: &'a str,
    /// Query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Raw body bytes.
    pub body: &'a Bytes,
    /// The payment id of a minted URL whose tag the HTTP layer verified; `path_rest` is
    /// then only the sub-route after it.
    pub payment: Option<&'a str>,
}

/// Why a request's credential was refused (all answer 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not of the expected form (e.g. not hex).
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The signature does not match the body under our secret.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// The API key presented is not ours.
    #[error("unknown API key")]
    WrongKey,
    /// The path token is missing or not one of the configured tokens.
    #[error("unknown callback token")]
    UnknownToken,
    /// Username/password (or other credential) wrong or missing.
    #[error("bad credentials")]
    BadCredentials,
}

impl VerifyError {
    /// Short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader(_) => "malformed_header",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::WrongKey => "wrong_key",
            VerifyError::UnknownToken => "unknown_token",
            VerifyError::BadCredentials => "bad_credentials",
        }
    }
}

/// The acknowledgement a provider expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// HTTP status (200 unless a provider wants otherwise).
    pub status: u16,
    /// JSON body.
    pub body: String,
}

impl Default for Ack {
    fn default() -> Self {
        Ack {
            status: 200,
            body: r#"{"status":"accepted"}"#.to_string(),
        }
    }
}

/// What building a status request may need that is not pure: the reconciler supplies
/// them, so providers stay deterministic and testable from fixtures.
#[derive(Debug, Clone, Copy)]
pub struct PollInputs<'a> {
    /// Now, epoch milliseconds (Daraja's timestamp).
    pub now_ms: i64,
    /// A fresh unique value (TransferZero's `Authorization-Nonce`).
    pub nonce: &'a str,
    /// A bearer token the reconciler fetched and cached (Daraja OAuth), if the provider
    /// uses one.
    pub access_token: Option<&'a Secret>,
}

/// Why a status poll gave no usable status. None of these changes a transaction's state
/// (invariant 5 in src/lib.rs): the reconciler records the poll and reschedules it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The provider has no status endpoint payhook can use (or it is not configured).
    #[error("no status endpoint")]
    Unsupported,
    /// The request could not be built (e.g. a reference that is not a valid path segment).
    #[error("cannot build the status request: {0}")]
    Request(String),
    /// 401/403: bad credentials or an egress IP the provider has not whitelisted.
    #[error("refused with HTTP {0}: check credentials and IP whitelisting")]
    Unauthorized(u16),
    /// 404: often just too soon after creation; never FAILED.
    #[error("not found (yet)")]
    NotFound,
    /// 429: over the provider's rate limit.
    #[error("rate limited")]
    RateLimited,
    /// Any other non-success answer (5xx, ...).
    #[error("HTTP {0}")]
    Http(u16),
    /// A success answer whose body payhook cannot read.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The provider answered with an error of its own (Daraja `errorCode`: spike arrest,
    /// quota, wrong credentials, ...), not a status.
    #[error("provider error: {0}")]
    Refused(String),
}

impl PollError {
    /// Short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            PollError::Unsupported => "unsupported",
            PollError::Request(_) => "request",
            PollError::Unauthorized(_) => "unauthorized",
            PollError::NotFound => "not_found",
            PollError::RateLimited => "rate_limited",
            PollError::Http(_) => "http",
            PollError::Malformed(_) => "malformed",
            PollError::Refused(_) => "refused",
        }
    }

    /// The failure a non-2xx answer means, for providers without special cases.
    pub fn from_status(status: StatusCode) -> PollError {
        match status.as_u16() {
            401 | 403 => PollError::Unauthorized(status.as_u16()),
            404 => PollError::NotFound,
            429 => PollError::RateLimited,
            other => PollError::Http(other),
        }
    }

    /// The failure a non-2xx answer to an access-token request means: token endpoints
    /// answer wrong client credentials with 400 as well as 401/403, and all three are a
    /// configuration problem rather than a passing one.
    pub fn from_token_status(status: StatusCode) -> PollError {
        match status.as_u16() {
            400 | 401 | 403 => PollError::Unauthorized(status.as_u16()),
            _ => PollError::from_status(status),
        }
    }
}

/// The JSON body of a 2xx answer from a provider's API. Any other HTTP status becomes the
/// failure `on_status` says it means ([`PollError::from_status`], or
/// [`PollError::from_token_status`] for token endpoints), whatever the body holds.
pub fn json_reply<'a, T: serde::Deserialize<'a>>(
    status: StatusCode,
    body: &'a [u8],
    on_status: fn(StatusCode) -> PollError,
) -> Result<T, PollError> {
    if !status.is_success() {
        return Err(on_status(status));
    }
    Ok(serde_json::from_slice(body).map_err(ParseError::from)?)
}

impl From<ParseError> for PollError {
    fn from(e: ParseError) -> Self {
        PollError::Malformed(e.to_string())
    }
}

/// A status query, built by a provider and sent by the reconciler.
pub type StatusRequest = http::Request<Full<Bytes>>;

/// One page of a provider's statement, read by the reconciler's sweep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepPage {
    /// The transactions listed (charges and other non-payment entries left out).
    pub reports: Vec<StatusReport>,
    /// Entries that could not be read and were skipped.
    pub skipped: usize,
    /// The next page to ask for, if there is one.
    pub next_page: Option<u32>,
}

/// An access token for a provider's status API (Daraja OAuth, Jenga merchant token),
/// fetched and cached by the reconciler.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// How long the provider says it stays valid.
    pub valid_for: std::time::Duration,
}

/// Percent-encodes a reference for use as one URL path segment: references come from
/// callbacks and merchants, and must not be able to change the path (`../`, `?`, `#`).
///
/// ```
/// assert_eq!(payhook::providers::path_segment("ab-1_2.~"), "ab-1_2.~");
/// assert_eq!(payhook::providers::path_segment("../x?y"), "..%2Fx%3Fy");
/// ```
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `GET` of a provider's JSON API with `headers` (credentials, signatures) and
/// `Accept: application/json`: the shape of the providers' status and statement queries.
pub(crate) fn get_json(url: &str, headers: &[(&str, &str)]) -> Result<StatusRequest, PollError> {
    let mut req = http::Request::get(url).header(http::header::ACCEPT, "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(Bytes::new()))
        .map_err(|e| PollError::Request(e.to_string()))
}

/// One provider's wire format and authentication. Implementations do no I/O.
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn id(&self) -> ProviderId;
    /// Checks the credential on the raw request, before anything is parsed.
    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError>;
    /// Reads a verified body.
    fn parse_callback(&self, cb: &VerifiedCallback) -> Result<CallbackEvent, ParseError>;
    /// What to answer once the callback is durably stored (`event` is `None` when the
    /// body could not be parsed).
    fn ack(&self, _event: Option<&CallbackEvent>) -> Ack {
        Ack::default()
    }
    /// The status query for one open transaction; `None` if the provider has none (or it
    /// is not configured), in which case the transaction waits for a callback or its
    /// deadline.
    fn status_request(
        &self,
        _txn: &PendingTxn,
        _inputs: PollInputs<'_>,
    ) -> Option<Result<StatusRequest, PollError>> {
        None
    }
    /// Reads the answer to [`Provider::status_request`]. Every HTTP status reaches this
    /// method, because some providers state a status in an error answer (Daraja's
    /// "being processed" comes as HTTP 500).
    fn parse_status_reply(
        &self,
        _txn: &PendingTxn,
        _status: StatusCode,
        _body: &[u8],
    ) -> Result<StatusReport, PollError> {
        Err(PollError::Unsupported)
    }
    /// A page of the provider's statement of transactions between `from_ms` and `to_ms`,
    /// for finding transactions payhook does not know; `None` if there is none.
    fn sweep_request(
        &self,
        _from_ms: i64,
        _to_ms: i64,
        _page: u32,
    ) -> Option<Result<StatusRequest, PollError>> {
        None
    }
    /// Reads the answer to [`Provider::sweep_request`].
    fn parse_sweep_reply(&self, _status: StatusCode, _body: &[u8]) -> Result<SweepPage, PollError> {
        Err(PollError::Unsupported)
    }
    /// The request that fetches an access token, when the status API needs one; the
    /// reconciler caches the token until it expires and passes it in [`PollInputs`].
    fn token_request(&self) -> Option<Result<StatusRequest, PollError>> {
        None
    }
    /// Whether payhook can ask the provider about a payment of `kind` (a status query is
    /// configured for it), so that a hint about it can wait for confirmation.
    fn confirms(&self, _kind: TxnKind) -> bool {
        false
    }
    /// Reads the answer to [`Provider::token_request`].
    fn parse_token_reply(
        &self,
        _status: StatusCode,
        _body: &[u8],
    ) -> Result<AccessToken, PollError> {
        Err(PollError::Unsupported)
    }
}

/// Verifies a hex-encoded MAC (either case) against `mac` in constant time
/// (`Mac::verify_slice`), refusing truncated values.
pub(crate) fn verify_hex_mac<M: Mac>(mac: M, signature_hex: &str) -> bool {
    match hex::decode(signature_hex.trim()) {
        Ok(sig) => mac.verify_slice(&sig).is_ok(),
        Err(_) => false,
    }
}

/// Constant-time equality of two byte strings (credentials, tokens).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // Length is not secret for our credentials; ct_eq on slices is false on length mismatch.
    a.ct_eq(b).into()
}

/// A header's value as UTF-8, if present and valid.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
