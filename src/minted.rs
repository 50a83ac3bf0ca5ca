//! Per-payment callback URLs: `/callbacks/<provider>/p/<payment id>.<tag>[/<sub-route>]`.
//!
//! Tujenge sends no payment id of its own and signs nothing, and Daraja signs nothing: the
//! only thing that ties their callback to a payment is the URL the merchant passed when
//! starting it. A static path token proves "the provider called", for every payment made
//! through it. A minted URL proves "the provider called about *this* payment": right
//! before starting a payment, the application asks payhook for a URL bound to it
//! (`payhook callback-url`, `POST /v1/callback-urls`), which also registers the payment.
//!
//! The tag is HMAC-SHA256, keyed with the first of `callback_url_keys`, over the provider
//! and the payment id, truncated to 128 bits and written in base64url. Verification is
//! stateless and constant time: every configured key is tried (so a key can be rotated in
//! before the old one goes), nothing is looked up before the tag checks out, and a URL
//! minted for one provider never verifies on another's route.

use crate::domain::ProviderId;
use crate::providers::daraja::DARAJA_BANNED_URL_WORDS;
use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The path segment after `/callbacks/<provider>/` that marks a minted URL.
pub const SEGMENT: &str = "p";

/// Bytes of randomness in a payment id (128 bits).
const ID_BYTES: usize = 16;
/// Bytes of the HMAC kept in the tag (128 bits).
const TAG_BYTES: usize = 16;
/// Length of both in base64url without padding.
const ENCODED_LEN: usize = 22;

/// Mints and verifies per-payment callback URLs with `callback_url_keys`.
#[derive(Clone, Default)]
pub struct Minter {
    keys: Vec<Secret>,
}

/// A freshly minted URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The payment id (base64url, 22 characters): Tujenge's transaction reference.
    pub payment_id: String,
    /// The path to append to `public_base_url`: `/callbacks/<provider>/p/<id>.<tag>`.
    pub path: String,
}

/// Why no URL could be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// `callback_url_keys` is empty.
    #[error("no callback_url_keys are configured")]
    NoKey,
    /// The operating system's random source failed.
    #[error("no randomness available")]
    Random,
    /// The provider signs its callbacks, or has no route of its own to mint on.
    #[error("{0} callbacks are authenticated by their own signature: use /callbacks/{0}")]
    Signed(ProviderId),
    /// `public_base_url` is not set, so there is no public URL to hand out.
    #[error("public_base_url is not set: payhook does not know its public address")]
    NoPublicUrl,
}

/// A payment to mint a callback URL for, as the application describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Daraja or Tujenge.
    pub provider: ProviderId,
    /// Payment kind; `None`: STK push for Daraja, unknown for Tujenge.
    pub kind: Option<crate::domain::TxnKind>,
    /// The merchant's own reference.
    pub merchant_ref: Option<String>,
    /// The amount the merchant expects.
    pub expected: Option<crate::money::Money>,
}

/// A minted URL and the payment to record with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// The full URL to give the provider (`callBackUrl`, `CallBackURL`, `ResultURL`).
    pub url: String,
    /// What the store records ([`crate::store::payments::mint`]).
    pub payment: crate::store::payments::MintedPayment,
}

/// Mints the URL of a new payment described by `req`, on `public_base_url`.
pub fn new_payment(
    minter: &Minter,
    public_base_url: Option<&str>,
    req: &PaymentRequest,
) -> Result<NewPayment, MintError> {
    use crate::domain::TxnKind;
    let kind = match (req.provider, req.kind) {
        (ProviderId::Daraja | ProviderId::Tujenge, Some(k)) => k,
        (ProviderId::Daraja, None) => TxnKind::Stk,
        (ProviderId::Tujenge, None) => TxnKind::Unknown,
        (other, _) => return Err(MintError::Signed(other)),
    };
    let base = public_base_url.ok_or(MintError::NoPublicUrl)?;
    let minted = minter.mint(req.provider)?;
    // Tujenge sends no reference of its own: the payment id is its transaction's.
    let provider_ref = match req.provider {
        ProviderId::Tujenge => minted.payment_id.clone(),
        _ => String::new(),
    };
    Ok(NewPayment {
        url: format!("{}{}", base.trim_end_matches('/'), minted.path),
        payment: crate::store::payments::MintedPayment {
            payment_id: minted.payment_id,
            registration: crate::store::transactions::Registration {
                provider: req.provider,
                provider_ref,
                kind,
                expected: req.expected.clone(),
                merchant_ref: req.merchant_ref.clone(),
            },
        },
    })
}

impl Minter {
    /// From `callback_url_keys` (the first one signs).
    pub fn new(keys: Vec<Secret>) -> Minter {
        Minter { keys }
    }

    /// Whether any key is configured (minted URLs are accepted at all).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Mints a URL path for a new payment of `provider`. The id is random; one whose path
    /// would contain a word Daraja refuses in URLs is drawn again.
    pub fn mint(&self, provider: ProviderId) -> Result<Minted, MintError> {
        let key = self.keys.first().ok_or(MintError::NoKey)?;
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut raw = [0u8; ID_BYTES];
            ring::rand::SecureRandom::fill(&rng, &mut raw).map_err(|_| MintError::Random)?;
            let payment_id = URL_SAFE_NO_PAD.encode(raw);
            let tag = tag(key, provider, &payment_id);
            let path = format!("/callbacks/{provider}/{SEGMENT}/{payment_id}.{tag}");
            let lower = path.to_ascii_lowercase();
            if DARAJA_BANNED_URL_WORDS
                .iter()
                .any(|w| lower.contains(&w.to_ascii_lowercase()))
            {
                continue;
            }
            return Ok(Minted { payment_id, path });
        }
    }

    /// Checks `<id>.<tag>` for `provider` and returns the payment id, or `None` (401).
    pub fn verify(&self, provider: ProviderId, id_and_tag: &str) -> Option<String> {
        let (id, presented) = id_and_tag.split_once('.')?;
        if !well_formed(id) || !well_formed(presented) {
            return None;
        }
        // Every key is tried, whatever matched, so the time does not tell which one.
        let mut ok = false;
        for key in &self.keys {
            let want = tag(key, provider, id);
            ok |= crate::providers::ct_eq(want.as_bytes(), presented.as_bytes());
        }
        ok.then(|| id.to_string())
    }
}

/// The tag of payment `id` of `provider` under `key`.
fn tag(key: &Secret, provider: ProviderId, id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    // The unit separator keeps provider and id apart: no pair can be shifted into another.
    mac.update(format!("payhook callback url\u{1f}{provider}\u{1f}{id}").as_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..TAG_BYTES])
}

fn well_formed(part: &str) -> bool {
    part.len() == ENCODED_LEN
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits what follows `/callbacks/<provider>/` into the `<id>.<tag>` of a minted URL and
/// its sub-route, or `None` when it is not a minted URL.
pub fn split(rest: &str) -> Option<(&str, Option<&str>)> {
    let after = rest.strip_prefix(SEGMENT)?.strip_prefix('/')?;
    Some(match after.split_once('/') {
        Some((id_tag, sub)) => (id_tag, Some(sub).filter(|s| !s.is_empty())),
        None => (after, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(keys: &[&str]) -> Minter {
        Minter::new(keys.iter().map(|k| Secret::new(*k)).collect())
    }

    const K1: &str = "first-key-0123456789-0123456789-abcdef";
    const K2: &str = "second-key-0123456789-0123456789-abcdef";

    #[test]
    fn a_minted_url_verifies_for_its_provider_only() {
        let m = minter(&[K1]);
        let url = m.mint(ProviderId::Tujenge).unwrap();
        let rest = url.path.strip_prefix("/callbacks/tujenge/").unwrap();
        let (id_tag, sub) = split(rest).unwrap();
        assert_eq!(sub, None);
        assert_eq!(
            m.verify(ProviderId::Tujenge, id_tag),
            Some(url.payment_id.clone())
        );
        assert_eq!(m.verify(ProviderId::Daraja, id_tag), None);
        // A changed id or tag is refused.
        let mut bad = id_tag.to_string();
        let flip = if bad.ends_with('A') { "B" } else { "A" };
        bad.replace_range(bad.len() - 1.., flip);
        assert_eq!(m.verify(ProviderId::Tujenge, &bad), None);
        let other_id = format!("{}{}", flip, &id_tag[1..]);
        assert_eq!(m.verify(ProviderId::Tujenge, &other_id), None);
        assert_eq!(m.verify(ProviderId::Tujenge, "short.tag"), None);
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = minter(&[K1]).mint(ProviderId::Daraja).unwrap();
        let rotated = minter(&[K2, K1]);
        let id_tag = |p: &str| {
            split(p.strip_prefix("/callbacks/daraja/").unwrap())
                .unwrap()
                .0
                .to_string()
        };
        assert!(rotated
            .verify(ProviderId::Daraja, &id_tag(&old.path))
            .is_some());
        let new = rotated.mint(ProviderId::Daraja).unwrap();
        assert!(minter(&[K2])
            .verify(ProviderId::Daraja, &id_tag(&new.path))
            .is_some());
        assert!(minter(&[K1])
            .verify(ProviderId::Daraja, &id_tag(&new.path))
            .is_none());
        assert_eq!(
            Minter::default().mint(ProviderId::Daraja),
            Err(MintError::NoKey)
        );
    }

    #[test]
    fn sub_routes_follow_the_tag() {
        assert_eq!(
            split("p/abc.def/timeout"),
            Some(("abc.def", Some("timeout")))
        );
        assert_eq!(split("p/abc.def"), Some(("abc.def", None)));
        assert_eq!(split("token/timeout"), None);
    }
}
