//! Path tokens: the secret segment that authenticates the callbacks of providers that
//! sign nothing (Daraja, Tujenge), and per-payment URLs minted in its place.

use super::{ct_eq, sha256_hex, ProviderId, RawCallback, VerifiedCallback};
use crate::secret::Secret;

/// Which configured token `candidate` is, compared in constant time against *every*
/// token (no early exit, so the timing does not tell which one matched or how many
/// there are beyond their count). `None` when it is none of them.
pub fn match_token(tokens: &[Secret], candidate: &str) -> Option<usize> {
    let mut found: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
        let eq = ct_eq(candidate.as_bytes(), t.expose().as_bytes());
        // `found.or(...)` on every iteration: the same work whether or not it matched.
        found = found.or(eq.then_some(i));
    }
    found
}

/// A non-secret identifier of a callback token: the first 16 hex digits of its
/// SHA-256. Lets logs and the store name a token without revealing it.
pub fn token_id(token: &str) -> String {
    sha256_hex(token.as_bytes())[..16].to_string()
}

/// A callback that came on a minted URL for `payment` (its tag already verified): like a
/// token, it says who called, and for which payment. `callbacks.auth` names the payment;
/// its dedup and correlation key is the payment id, never a secret.
pub fn minted(provider: ProviderId, payment: &str, req: &RawCallback<'_>) -> VerifiedCallback {
    let mut v = VerifiedCallback::new(
        provider,
        format!("minted-url:{payment}"),
        false,
        req.body.clone(),
    );
    v.path_token = Some(format!("pay-{payment}"));
    v.sub_route = req
        .path_rest
        .map(|s| s.trim_matches('/').to_string())
        .filter(|s| !s.is_empty());
    v.payment = Some(payment.to_string());
    v
}

/// Splits `{token}[/{sub-route}]` into the token and the normalised sub-route.
pub fn split_path(rest: Option<&str>) -> (Option<&str>, Option<&str>) {
    let Some(rest) = rest else {
        return (None, None);
    };
    let (token, sub) = match rest.split_once('/') {
        Some((t, s)) => (t, Some(s.trim_matches('/'))),
        None => (rest, None),
    };
    (
        Some(token).filter(|t| !t.is_empty()),
        sub.filter(|s| !s.is_empty()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_token_finds_the_index_without_stopping_early() {
        let tokens = [Secret::new("a"), Secret::new("b"), Secret::new("b")];
        assert_eq!(match_token(&tokens, "b"), Some(1));
        assert_eq!(match_token(&tokens, "c"), None);
        assert_eq!(match_token(&[], "c"), None);
    }

    #[test]
    fn a_minted_callback_keeps_its_sub_route_and_names_its_payment() {
        let headers = http::HeaderMap::new();
        let body = bytes::Bytes::from_static(b"{}");
        let raw = |rest| RawCallback {
            path_rest: rest,
            path: "/callbacks/daraja/p/…",
            query: None,
            headers: &headers,
            body: &body,
            payment: Some("pay_1"),
        };
        let v = minted(ProviderId::Daraja, "pay_1", &raw(Some("/result/")));
        assert_eq!(v.sub_route.as_deref(), Some("result"));
        assert_eq!(
            (v.payment.as_deref(), v.path_token.as_deref()),
            (Some("pay_1"), Some("pay-pay_1"))
        );
        assert_eq!(v.auth, "minted-url:pay_1");
        for rest in [None, Some("/"), Some("")] {
            assert_eq!(
                minted(ProviderId::Daraja, "pay_1", &raw(rest)).sub_route,
                None,
                "{rest:?}"
            );
        }
    }
}
