//! Standard Webhooks signatures, pure: no I/O, no clock.
//!
//! A secret is `whsec_<base64>`; the base64 part decoded is the HMAC-SHA256 key. The
//! signed content is `{webhook-id}.{webhook-timestamp}.{body}` and the header value is
//! `v1,<base64 of the MAC>`. While a secret is being rotated several are active at once:
//! the header then carries one signature per secret, separated by spaces, and a receiver
//! holding any one of them accepts (Standard Webhooks, "Signature scheme").
//!
//! This module only computes; `forward` decides which id and timestamp to sign.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the event id, stable across retries and replays.
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the signing time, integer seconds since the Unix epoch.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest key accepted, in bytes. The specification asks for 24 to 64 bytes: shorter
/// keys are guessable, longer ones add nothing to HMAC-SHA256.
pub const MIN_KEY_BYTES: usize = 24;
/// Longest key accepted, in bytes (see [`MIN_KEY_BYTES`]).
pub const MAX_KEY_BYTES: usize = 64;

/// Why a secret is not a usable Standard Webhooks secret. Messages never contain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The value does not start with `whsec_`.
    #[error("must start with {SECRET_PREFIX} (Standard Webhooks secret format)")]
    MissingPrefix,
    /// The part after the prefix is not standard base64.
    #[error("the part after {SECRET_PREFIX} is not standard base64")]
    NotBase64,
    /// The decoded key is too short or too long.
    #[error("decodes to {0} bytes; a key must have {MIN_KEY_BYTES} to {MAX_KEY_BYTES}")]
    KeyLength(usize),
    /// No secret was given.
    #[error("at least one secret is required")]
    NoSecret,
}

/// One decoded HMAC key. `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses a `whsec_<base64>` secret.
    ///
    /// ```
    /// use payhook::forward::sign::{SigningKey, SignError};
    /// assert!(SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    /// assert_eq!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(), SignError::MissingPrefix);
    /// ```
    pub fn parse(secret: &str) -> Result<SigningKey, SignError> {
        let encoded = secret
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SignError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SignError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SignError::KeyLength(key.len()));
        }
        Ok(SigningKey { key })
    }

    /// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
    ///
    /// The Standard Webhooks published vector:
    /// ```
    /// use payhook::forward::sign::SigningKey;
    /// let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    /// assert_eq!(
    ///     key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
    ///     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    /// );
    /// ```
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        // new_from_slice accepts keys of any length for HMAC; the length is checked above.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The active secrets, in configuration order: all of them sign every request.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<SigningKey>,
}

impl Signer {
    /// Parses every secret; the first bad one is reported with its position.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Signer, (usize, SignError)> {
        let keys = secrets
            .into_iter()
            .enumerate()
            .map(|(i, s)| SigningKey::parse(s).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err((0, SignError::NoSecret));
        }
        Ok(Signer { keys })
    }

    /// The `webhook-signature` header value: one `v1,` signature per secret, separated by
    /// single spaces.
    pub fn signature(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| k.sign(id, timestamp_secs, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// `fixtures/forward/signature_vectors.json`: computed outside payhook (see
    /// fixtures/README.md), including the specification's published example.
    #[test]
    fn every_fixture_vector_reproduces_exactly() {
        let vectors: Vec<Value> = serde_json::from_str(include_str!(
            "../../fixtures/forward/signature_vectors.json"
        ))
        .unwrap();
        assert!(vectors.len() >= 3);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let secrets: Vec<&str> = v["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let signer = Signer::new(secrets).unwrap();
            let got = signer.signature(
                v["id"].as_str().unwrap(),
                v["timestamp"].as_i64().unwrap(),
                v["body"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(got, v["signature"].as_str().unwrap(), "{name}");
        }
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        assert_eq!(
            SigningKey::parse("whsec_not*base64").unwrap_err(),
            SignError::NotBase64
        );
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").unwrap_err(),
            SignError::KeyLength(5)
        );
        assert_eq!(Signer::new([]).unwrap_err(), (0, SignError::NoSecret));
        let bad = Signer::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "oops-secret"]);
        assert_eq!(bad.unwrap_err(), (1, SignError::MissingPrefix));
        let e = SignError::MissingPrefix.to_string();
        assert!(!e.contains("oops"));
        let k = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!format!("{k:?}").contains("MfKQ"));
    }

    /// The independent verifier (the `standardwebhooks` crate, a dev-dependency) accepts
    /// what we sign with either active secret, and refuses a tampered body or id.
    #[test]
    fn the_standardwebhooks_crate_accepts_ours_with_either_secret_and_refuses_tampering() {
        let (old, new) = (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        );
        let signer = Signer::new([old, new]).unwrap();
        let ts = crate::clock::now_ms() / 1000;
        let body = br#"{"id":"evt_1","type":"transaction.succeeded"}"#;
        let headers = |id: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(HEADER_WEBHOOK_ID, id.parse().unwrap());
            h.insert(HEADER_WEBHOOK_TIMESTAMP, ts.to_string().parse().unwrap());
            h.insert(
                HEADER_WEBHOOK_SIGNATURE,
                signer.signature("evt_1", ts, body).parse().unwrap(),
            );
            h
        };
        for secret in [old, new] {
            let wh = standardwebhooks::Webhook::new(secret).unwrap();
            wh.verify(body, &headers("evt_1")).unwrap();
            assert!(wh
                .verify(
                    br#"{"id":"evt_1","type":"transaction.failed"}"#,
                    &headers("evt_1")
                )
                .is_err());
            assert!(wh.verify(body, &headers("evt_2")).is_err());
        }
        let stranger =
            standardwebhooks::Webhook::new("whsec_cGF5aG9vay1mb3J3YXJkLXRlc3Qta2V5LW9uZS0zMmI=")
                .unwrap();
        assert!(stranger.verify(body, &headers("evt_1")).is_err());
    }
}
