//! Provider signatures written out independently of payhook's code (ZengaPay's HMAC-SHA256 and
//! TransferZero's HMAC-SHA512 schemes), and realistic callback bodies, for tests that drive the daemon over sockets.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// ZengaPay secret used by [`zp_config`].
pub const ZP_SECRET: &str = "zp-test-secret";
/// BitPesa API key used by [`bp_config`].
pub const BP_KEY: &str = "bp-key";
/// BitPesa API secret used by [`bp_config`].
pub const BP_SECRET: &str = "bp-secret";
/// The public URL TransferZero signs (`public_base_url` + path).
pub const BP_URL: &str = "https://hooks.example.com/callbacks/bitpesa";

/// Config enabling ZengaPay and BitPesa with the secrets above.
pub fn both_config() -> String {
    format!(
        "public_base_url = \"https://hooks.example.com\"\n[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n[providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\n"
    )
}

/// HMAC-SHA256 of the raw body, hex (ZengaPay's raw-body variant).
pub fn zp_sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// TransferZero's HMAC-SHA512 of `nonce&POST&url&sha512hex(body)`, hex.
pub fn bp_sign(secret: &str, nonce: &str, url: &str, body: &[u8]) -> String {
    let to_sign = format!("{nonce}&POST&{url}&{}", hex::encode(Sha512::digest(body)));
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A ZengaPay collection callback shaped like the documented one (≈ 470 bytes).
pub fn zp_body(reference: &str, status: &str, amount: &str) -> String {
    // ZengaPay's dedup key is `event:reference`, so each status needs its own event name.
    let event = match status {
        "FAILED" => "collection.failed",
        "PENDING" => "collection.pending",
        _ => "collection.success",
    };
    serde_json::json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": reference,
        "transactionExternalReference": format!("order-{reference}"),
        "MNOTransactionReferenceId": "42026012031", "currencyCode": "UGX-MTNMM",
        "amount": amount, "msisdn": "256772000001", "channel": "API",
        "transactionType": "INBOUND_MSISDN_CREDIT",
        "transactionInitiationDate": "2020-08-05 13:16:43",
        "transactionCompletionDate": "2020-08-05 13:16:55"}})
    .to_string()
}

/// Header lines (without the final blank line) for a signed ZengaPay POST of `body`.
pub fn zp_headers(body: &[u8]) -> String {
    format!("X-ZENGAPAY-SIGNATURE: {}\r\n", zp_sign(ZP_SECRET, body))
}

/// Copies the Jenga test signing key to `dir/jenga.pem`, readable by its owner only (the
/// config refuses a key file others can read), and returns its path.
pub fn jenga_key_in(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("jenga.pem");
    std::fs::copy(
        format!(
            "{}/fixtures/jenga/test_private_key.pem",
            env!("CARGO_MANIFEST_DIR")
        ),
        &key,
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

/// The event id payhook must give the `seq`-th transition of a transaction, written out
/// from its documented form (`evt_` + the row id as 12 hex digits + the first 20 hex
/// digits of sha256("provider\x1freference\x1fseq")) with `sha2` directly, so that a
/// test does not compare the code under test with itself.
pub fn event_id(transaction_id: i64, provider: &str, reference: &str, seq: i64) -> String {
    let digest = hex::encode(Sha256::digest(
        format!("{provider}\u{1f}{reference}\u{1f}{seq}").as_bytes(),
    ));
    format!("evt_{transaction_id:012x}{}", &digest[..20])
}

/// sha256 of `bytes` as lowercase hex, computed with `sha2` directly.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
