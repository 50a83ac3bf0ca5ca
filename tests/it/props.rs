//! Hostile input as properties: every provider's `verify` and `parse_callback`
//! (ZengaPay, BitPesa, Daraja, Jenga, Tujenge), and the trusted-proxy address resolution,
//! on arbitrary bytes and headers.
//!
//! - Nothing panics, whatever the input.
//! - Nothing verifies without the secret: bodies signed with any other key, made-up
//!   signatures, arbitrary header values, wrong Basic credentials and path tokens that are
//!   not configured are all refused.
//! - Whatever verifies parses to `Ok` or a `ParseError`, never a panic.
//! - `resolve` never picks a hop to the left of an untrusted one.
//!
//! Case counts are proptest's default (256), overridable with `PROPTEST_CASES`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use payhook::config::Config;
use payhook::http::client_ip::{resolve, FORWARDED_FOR, UNKNOWN};
use payhook::providers::{Coverage, Provider, ProviderId, RawCallback, Registry};
use proptest::prelude::*;
use std::net::IpAddr;
use std::sync::Arc;

use crate::support::sign::{bp_sign, zp_sign};

const BP_PUBLIC: &str = "https://hooks.example.com";
const BP_PATH: &str = "/callbacks/bitpesa";

/// A provider built the way the daemon builds it, from configuration text.
fn provider(id: ProviderId, config: &str) -> Arc<dyn Provider> {
    let dir = std::env::temp_dir();
    let cfg = Config::from_toml(config, &dir).expect("valid test config");
    Registry::from_config(&cfg)
        .get(id)
        .expect("provider enabled")
        .clone()
}

fn zengapay(secret: &str) -> Arc<dyn Provider> {
    provider(
        ProviderId::ZengaPay,
        &format!("[providers.zengapay]\nsecret_hash = \"{secret}\"\n"),
    )
}

fn bitpesa(key: &str, secret: &str) -> Arc<dyn Provider> {
    provider(
        ProviderId::BitPesa,
        &format!("public_base_url = \"{BP_PUBLIC}\"\n[providers.bitpesa]\napi_key = \"{key}\"\napi_secret = \"{secret}\"\n"),
    )
}

fn raw<'a>(path: &'a str, headers: &'a HeaderMap, body: &'a Bytes) -> RawCallback<'a> {
    raw_rest(path, None, headers, body)
}

fn raw_rest<'a>(
    path: &'a str,
    path_rest: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
) -> RawCallback<'a> {
    RawCallback {
        path_rest,
        path,
        query: None,
        headers,
        body,
        payment: None,
    }
}

/// Secrets as an operator writes them in TOML (no quotes or backslashes to escape).
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_+/=-]{1,48}"
}

/// Arbitrary header values, including obs-text bytes (0x80–0xFF) that are not UTF-8.
/// Built from the bytes a header value may hold (tab, visible ASCII, obs-text) rather than
/// filtered from random bytes, which would throw most draws away and make proptest abort
/// at higher case counts.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    let legal_byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff];
    prop::collection::vec(legal_byte, 0..160)
        .prop_map(|b| HeaderValue::from_bytes(&b).expect("only legal header bytes"))
}

/// Arbitrary extra headers, sometimes named like the ones providers read.
fn extra_headers() -> impl Strategy<Value = Vec<(HeaderName, HeaderValue)>> {
    let name = prop_oneof![
        Just(HeaderName::from_static("x-zengapay-signature")),
        Just(HeaderName::from_static("authorization-key")),
        Just(HeaderName::from_static("authorization-nonce")),
        Just(HeaderName::from_static("authorization-signature")),
        Just(HeaderName::from_static("content-type")),
        "[a-z][a-z0-9-]{0,20}".prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()),
    ];
    prop::collection::vec((name, header_value()), 0..6)
}

/// Bodies: arbitrary bytes, or JSON shaped like a callback with arbitrary field values
/// (to reach the parser's deeper branches, not just "invalid JSON").
fn body() -> impl Strategy<Value = Vec<u8>> {
    let text = || {
        prop_oneof![
            Just(None),
            any::<String>().prop_map(Some),
            "[A-Z_]{0,12}".prop_map(Some)
        ]
    };
    let amount = prop_oneof![
        Just(serde_json::Value::Null),
        "-?[0-9]{0,20}(\\.[0-9]{0,6})?".prop_map(serde_json::Value::String),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    let event = prop_oneof![
        Just("collection.success".to_string()),
        Just("transfer.failed".to_string()),
        Just("transaction.paid_out".to_string()),
        Just("recipient.error".to_string()),
        any::<String>(),
    ];
    let zp_shaped = (
        event.clone(),
        text(),
        text(),
        text(),
        amount.clone(),
        text(),
    )
        .prop_map(|(event, status, reference, currency, amount, msisdn)| {
            serde_json::json!({"event": event, "data": {
                "transactionStatus": status, "transactionReference": reference,
                "currencyCode": currency, "amount": amount, "msisdn": msisdn}})
            .to_string()
            .into_bytes()
        });
    let bp_shaped =
        (event, text(), text(), amount, text()).prop_map(|(event, id, state, amount, currency)| {
            serde_json::json!({"webhook": "w", "event": event, "object": {
                "id": id, "state": state, "input_amount": amount, "input_currency": currency,
                "state_reason_details": {"category": state}}})
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        zp_shaped,
        bp_shaped,
    ]
}

fn headers_of(list: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(n.clone(), v.clone());
    }
    h
}

proptest! {
    #[test]
    fn zengapay_never_verifies_arbitrary_headers_or_another_key(
        secret in secret(),
        other in secret(),
        body in body(),
        extra in extra_headers(),
    ) {
        prop_assume!(secret != other);
        let p = zengapay(&secret);
        let body = Bytes::from(body);
        // Whatever headers came (a signature header among them or not): refused.
        let h = headers_of(&extra);
        prop_assert!(p.verify(&raw("/callbacks/zengapay", &h, &body)).is_err());
        // Signed correctly, but with another key: refused.
        let mut h = headers_of(&extra);
        h.insert("x-zengapay-signature", zp_sign(&other, &body).parse().unwrap());
        prop_assert!(p.verify(&raw("/callbacks/zengapay", &h, &body)).is_err());
        // Signed with the secret: accepted, and parsing never panics.
        h.insert("x-zengapay-signature", zp_sign(&secret, &body).parse().unwrap());
        let verified = p.verify(&raw("/callbacks/zengapay", &h, &body));
        prop_assert!(verified.is_ok(), "{verified:?}");
        let verified = verified.unwrap();
        prop_assert_eq!(verified.provider, ProviderId::ZengaPay);
        prop_assert_eq!(&verified.body, &body);
        if let Ok(event) = p.parse_callback(&verified) {
            prop_assert!(!event.dedup_key.is_empty());
        }
    }

    #[test]
    fn bitpesa_never_verifies_arbitrary_headers_another_key_or_another_secret(
        key in secret(),
        secret in secret(),
        other in secret(),
        nonce in "[ -~]{1,40}",
        body in body(),
        extra in extra_headers(),
    ) {
        prop_assume!(secret != other && key != other);
        prop_assume!(!nonce.trim().is_empty());
        let p = bitpesa(&key, &secret);
        let body = Bytes::from(body);
        let url = format!("{BP_PUBLIC}{BP_PATH}");
        let h = headers_of(&extra);
        prop_assert!(p.verify(&raw(BP_PATH, &h, &body)).is_err());
        let signed = |key: &str, secret: &str| {
            let mut h = headers_of(&extra);
            h.insert("authorization-key", key.parse().unwrap());
            h.insert("authorization-nonce", nonce.parse().unwrap());
            h.insert("authorization-signature", bp_sign(secret, nonce.trim(), &url, &body).parse().unwrap());
            h
        };
        // Our key with another secret, and another key with our secret: refused.
        prop_assert!(p.verify(&raw(BP_PATH, &signed(&key, &other), &body)).is_err());
        prop_assert!(p.verify(&raw(BP_PATH, &signed(&other, &secret), &body)).is_err());
        // Signed over another URL (a Host-header trick): refused.
        let mut h = signed(&key, &secret);
        h.insert("authorization-signature", bp_sign(&secret, nonce.trim(), "https://evil.example/callbacks/bitpesa", &body).parse().unwrap());
        prop_assert!(p.verify(&raw(BP_PATH, &h, &body)).is_err());
        // Ours: accepted, and parsing never panics.
        let verified = p.verify(&raw(BP_PATH, &signed(&key, &secret), &body));
        prop_assert!(verified.is_ok(), "{verified:?}");
        let verified = verified.unwrap();
        prop_assert_eq!(verified.nonce.as_deref(), Some(nonce.trim()));
        if let Ok(event) = p.parse_callback(&verified) {
            prop_assert!(!event.dedup_key.is_empty());
        }
    }

    #[test]
    fn a_tampered_body_or_signature_never_verifies(
        secret in secret(),
        body in body(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        sig_flip in 0usize..64,
    ) {
        let zp = zengapay(&secret);
        let bp = bitpesa("k", &secret);
        let url = format!("{BP_PUBLIC}{BP_PATH}");
        let good = Bytes::from(body.clone());
        let mut sig = zp_sign(&secret, &good).into_bytes();
        // One hex digit of the signature changed (to another hex digit).
        sig[sig_flip] = if sig[sig_flip] == b'0' { b'1' } else { b'0' };
        let mut h = HeaderMap::new();
        h.insert("x-zengapay-signature", HeaderValue::from_bytes(&sig).unwrap());
        prop_assert!(zp.verify(&raw("/callbacks/zengapay", &h, &good)).is_err());
        if !body.is_empty() {
            // One bit of the body flipped under a signature of the original.
            let mut tampered = body.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 1 << bit;
            let tampered = Bytes::from(tampered);
            let mut h = HeaderMap::new();
            h.insert("x-zengapay-signature", zp_sign(&secret, &good).parse().unwrap());
            // The field variants may legitimately still match when the flip hit a byte
            // outside the signed fields; the raw-body variant must not, and whatever
            // matched must come back as covering the fields only: unsigned, a hint.
            if let Ok(v) = zp.verify(&raw("/callbacks/zengapay", &h, &tampered)) {
                prop_assert_ne!(v.auth.as_str(), "hmac-sha256:raw-body");
                prop_assert!(v.auth.starts_with("hmac-sha256:fields-"), "{}", v.auth);
                prop_assert!(!v.signed, "a tampered body verified as signed: {}", v.auth);
                prop_assert_eq!(v.coverage, Coverage::Fields);
            }
            let mut h = HeaderMap::new();
            h.insert("authorization-key", HeaderValue::from_static("k"));
            h.insert("authorization-nonce", HeaderValue::from_static("n-1"));
            h.insert("authorization-signature", bp_sign(&secret, "n-1", &url, &good).parse().unwrap());
            prop_assert!(bp.verify(&raw(BP_PATH, &h, &tampered)).is_err());
        }
    }
}

/// Addresses from a few small networks, so that generated proxies often contain them.
fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4).prop_map(|d| IpAddr::from([10, 0, 0, d])),
        (0u8..4).prop_map(|d| IpAddr::from([127, 0, 0, d])),
        (0u8..4).prop_map(|d| IpAddr::from([196, 201, 214, d])),
        (0u16..4).prop_map(|d| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, d])),
        (0u8..4).prop_map(|d| IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, d as u16])),
        any::<IpAddr>(),
    ]
}

fn network() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        Just("10.0.0.0/8".parse().unwrap()),
        Just("127.0.0.1/32".parse().unwrap()),
        Just("2001:db8::/126".parse().unwrap()),
        Just("::1/128".parse().unwrap()),
        (address(), 0u8..=128).prop_map(|(ip, len)| {
            let len = if ip.is_ipv4() { len.min(32) } else { len };
            IpNet::new(ip, len).unwrap().trunc()
        }),
    ]
}

/// One `X-Forwarded-For` hop as written by proxies, or garbage.
fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => address().prop_map(|ip| ip.to_string()),
        1 => (address(), any::<u16>()).prop_map(|(ip, port)| std::net::SocketAddr::new(ip, port).to_string()),
        1 => "[ -~]{0,20}",
    ]
}

/// How `resolve` reads a hop (the documented forms); `None` for garbage.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

proptest! {
    #[test]
    fn resolve_never_picks_a_hop_left_of_an_untrusted_one(
        peer in address(),
        proxies in prop::collection::vec(network(), 0..4),
        headers in prop::collection::vec(prop::collection::vec(hop(), 0..5), 0..3),
        raw_values in prop::collection::vec(header_value(), 0..2),
    ) {
        let mut h = HeaderMap::new();
        let mut hops: Vec<String> = Vec::new();
        for list in &headers {
            let value = list.join(", ");
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(FORWARDED_FOR, v);
                hops.extend(value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
            }
        }
        // Arbitrary bytes too (not UTF-8, commas, nothing): must not panic.
        let mut h_raw = h.clone();
        for v in &raw_values {
            h_raw.append(FORWARDED_FOR, v.clone());
        }
        let _ = resolve(peer, &h_raw, &proxies);

        let trusted = |ip: IpAddr| proxies.iter().any(|n| n.contains(&ip));
        let peer_c = peer.to_canonical();
        let got = resolve(peer, &h, &proxies);
        if !trusted(peer_c) {
            prop_assert_eq!(got, peer_c, "an untrusted peer chose its address");
        } else if got != peer_c {
            // `got` must be a hop with only trusted proxies to its right, or, when the
            // hop there is garbage, the address that stands for "unknown".
            let ok = (0..hops.len()).any(|i| {
                let hop = parse_hop(&hops[i]);
                (hop == Some(got) || (got == UNKNOWN && hop.is_none()))
                    && hops[i + 1..].iter().all(|h| parse_hop(h).is_some_and(trusted))
            });
            prop_assert!(ok, "picked {got} from {hops:?} (proxies {proxies:?})");
        } else {
            // The peer itself: then no untrusted hop can be adjacent on the right end.
            if let Some(last) = hops.last() {
                prop_assert!(
                    parse_hop(last).is_none_or(trusted),
                    "ignored the untrusted right-most hop {last} ({hops:?})"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Daraja, Jenga, Tujenge: a path token or HTTP Basic credentials.

/// Path tokens as an operator configures them.
/// A token the configuration accepts: the shape it requires, and never one of the words
/// Daraja refuses in callback URLs, which the configuration rightly rejects. Each of those
/// words contains an `e`, `m` or `q`, so the alphabet leaves those letters out (checked
/// below, so a new banned word cannot slip through unnoticed).
fn token() -> impl Strategy<Value = String> {
    "[A-DF-LN-PR-Za-df-ln-pr-z0-9_-]{16,40}"
}

#[test]
fn the_token_alphabet_cannot_spell_a_banned_word() {
    for word in payhook::providers::daraja::DARAJA_BANNED_URL_WORDS {
        assert!(word.contains(['e', 'm', 'q']), "{word} could be generated");
    }
}

/// What may follow `/callbacks/{provider}/`: arbitrary segments, sometimes a known sub-route.
fn path_rest() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[ -~]{0,60}".prop_map(Some),
        (
            "[A-Za-z0-9_-]{0,40}",
            prop::sample::select(vec![
                "",
                "/stk",
                "/b2c",
                "/c2b/validation",
                "/c2b/confirmation",
                "/timeout",
                "/status",
                "/status/timeout",
                "//x/"
            ])
        )
            .prop_map(|(t, s)| Some(format!("{t}{s}"))),
    ]
}

/// Bodies shaped like Daraja's, Jenga's or anything else, with arbitrary values.
fn token_provider_body() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null)
    ];
    let stk = (code.clone(), any::<String>(), any::<String>()).prop_map(|(code, id, v)| {
        serde_json::json!({"Body": {"stkCallback": {"MerchantRequestID": "m", "CheckoutRequestID": id,
            "ResultCode": code, "ResultDesc": v, "CallbackMetadata": {"Item": [
                {"Name": "Amount", "Value": v}, {"Name": "MpesaReceiptNumber", "Value": "R"}]}}}})
        .to_string().into_bytes()
    });
    let result = (code, any::<String>(), any::<String>()).prop_map(|(code, id, v)| {
        serde_json::json!({"Result": {"ResultType": 0, "ResultCode": code, "ResultDesc": v,
            "OriginatorConversationID": id, "ConversationID": id, "TransactionID": v,
            "ResultParameters": {"ResultParameter": [{"Key": "TransactionAmount", "Value": v}]}}})
        .to_string()
        .into_bytes()
    });
    let c2b = (any::<String>(), any::<String>()).prop_map(|(id, amount)| {
        serde_json::json!({"TransactionType": "Pay Bill", "TransID": id, "TransTime": "20240101120000",
            "TransAmount": amount, "BusinessShortCode": "600000", "BillRefNumber": id, "MSISDN": "2547"})
        .to_string().into_bytes()
    });
    let jenga = (any::<String>(), any::<String>(), any::<String>()).prop_map(|(r, amount, status)| {
        serde_json::json!({"callbackType": "IPN", "customer": {"name": r, "mobileNumber": "", "reference": r},
            "transaction": {"date": "2024-01-01 12:00:00", "reference": format!(" {r}"), "paymentMode": "TPG",
            "amount": amount, "billNumber": r, "orderAmount": amount, "status": status, "remarks": status},
            "bank": {"reference": r, "transactionType": "C", "account": null}})
        .to_string().into_bytes()
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        stk,
        result,
        c2b,
        jenga
    ]
}

proptest! {
    #[test]
    fn daraja_and_tujenge_verify_only_a_configured_token(
        tokens in prop::collection::vec(token(), 1..3),
        rest in path_rest(),
        sub in prop::sample::select(vec!["", "/stk", "/b2c", "/c2b/validation", "/c2b/confirmation", "/timeout", "/b2c/timeout", "/status", "/status/timeout", "/zz"]),
        body in token_provider_body(),
        extra in extra_headers(),
    ) {
        let list = tokens.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        let daraja = provider(ProviderId::Daraja, &format!("[providers.daraja]\ncallback_tokens = [{list}]\n"));
        let tujenge = provider(ProviderId::Tujenge, &format!("[providers.tujenge]\ncallback_tokens = [{list}]\n"));
        let body = Bytes::from(body);
        let h = headers_of(&extra);
        for p in [&daraja, &tujenge] {
            // Any path whose first segment is not a configured token: refused.
            let first = rest.as_deref().map(|r| r.split('/').next().unwrap_or(""));
            if !first.is_some_and(|f| tokens.iter().any(|t| t == f)) {
                prop_assert!(p.verify(&raw_rest("/callbacks/x", rest.as_deref(), &h, &body)).is_err(), "{rest:?}");
            }
            // A configured token, any sub-route, any body: verified (unsigned), parsed or refused, no panic.
            let path = format!("{}{sub}", tokens[tokens.len() - 1]);
            let v = p.verify(&raw_rest("/callbacks/x", Some(&path), &h, &body));
            prop_assert!(v.is_ok(), "{v:?}");
            let v = v.unwrap();
            prop_assert!(!v.signed, "a path token is not a signature");
            if let Ok(event) = p.parse_callback(&v) {
                prop_assert!(!event.dedup_key.is_empty());
            }
        }
    }

    #[test]
    fn jenga_verifies_only_both_basic_credentials(
        user in "[A-Za-z0-9_.-]{1,24}",
        pass in "[A-Za-z0-9_.:-]{1,32}",
        other in "[A-Za-z0-9_.:-]{1,32}",
        authorization in header_value(),
        body in token_provider_body(),
    ) {
        prop_assume!(other != pass && other != user);
        use base64::Engine as _;
        let jenga = provider(ProviderId::Jenga, &format!("[providers.jenga]\nipn_username = \"{user}\"\nipn_password = \"{pass}\"\n"));
        let body = Bytes::from(body);
        let basic = |u: &str, p: &str| {
            let mut h = HeaderMap::new();
            let v = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
            h.insert("authorization", v.parse().unwrap());
            h
        };
        // Arbitrary Authorization values (not UTF-8, not Basic, not base64): refused.
        let mut h = HeaderMap::new();
        h.insert("authorization", authorization);
        prop_assert!(jenga.verify(&raw("/callbacks/jenga", &h, &body)).is_err());
        prop_assert!(jenga.verify(&raw("/callbacks/jenga", &HeaderMap::new(), &body)).is_err());
        // One of the two wrong, or a prefix of the password: refused.
        prop_assert!(jenga.verify(&raw("/callbacks/jenga", &basic(&user, &other), &body)).is_err());
        prop_assert!(jenga.verify(&raw("/callbacks/jenga", &basic(&other, &pass), &body)).is_err());
        prop_assert!(jenga.verify(&raw("/callbacks/jenga", &basic(&user, &pass[..pass.len() - 1]), &body)).is_err());
        // Both right: verified, parsed or refused, no panic.
        let v = jenga.verify(&raw("/callbacks/jenga", &basic(&user, &pass), &body));
        prop_assert!(v.is_ok(), "{v:?}");
        if let Ok(event) = jenga.parse_callback(&v.unwrap()) {
            prop_assert!(!event.dedup_key.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A ZengaPay field signature (reference + MSISDN + amount) verifies whatever the rest
    /// of the body says, and then only as a field signature, never as signed; changing
    /// any one character of a signed field makes it fail.
    #[test]
    fn a_field_signature_covers_its_fields_only(
        secret in secret(),
        reference in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        msisdn in "256[0-9]{9}",
        amount in "[1-9][0-9]{0,8}",
        status in "[A-Z]{0,12}",
        event in "[a-z.]{0,24}",
        which in 0usize..3,
        at in any::<prop::sample::Index>(),
    ) {
        let zp = zengapay(&secret);
        let body = |reference: &str, msisdn: &str, amount: &str| {
            Bytes::from(serde_json::json!({"event": event, "data": {
                "transactionStatus": status, "transactionReference": reference,
                "currencyCode": "UGX-MTNMM", "amount": amount, "msisdn": msisdn}})
                .to_string())
        };
        let sig = zp_sign(&secret, format!("{reference}{msisdn}{amount}").as_bytes());
        let mut h = HeaderMap::new();
        h.insert("x-zengapay-signature", sig.parse().unwrap());
        let v = zp.verify(&raw("/callbacks/zengapay", &h, &body(&reference, &msisdn, &amount)));
        prop_assert!(v.is_ok(), "{v:?}");
        let v = v.unwrap();
        prop_assert_eq!(v.auth.as_str(), "hmac-sha256:fields-amount-as-sent");
        prop_assert!(!v.signed);
        prop_assert_eq!(v.coverage, Coverage::Fields);

        // One character of one signed field changed (a digit stays a digit).
        let change = |s: &str| {
            let mut b = s.as_bytes().to_vec();
            let i = at.index(b.len());
            b[i] = match b[i] {
                b'9' => b'8',
                c if c.is_ascii_digit() => c + 1,
                b'z' | b'Z' => b'a',
                b'-' => b'x',
                c => c + 1,
            };
            String::from_utf8(b).unwrap()
        };
        let tampered = match which {
            0 => body(&change(&reference), &msisdn, &amount),
            1 => body(&reference, &change(&msisdn), &amount),
            _ => body(&reference, &msisdn, &change(&amount)),
        };
        prop_assert!(zp.verify(&raw("/callbacks/zengapay", &h, &tampered)).is_err());
    }
}
