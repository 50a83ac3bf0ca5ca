//! ZengaPay's signature variants, parsing and status answers, against its documented
//! webhook and the vectors of `fixtures/zengapay/`.

use super::*;
use bytes::Bytes;
use http::HeaderMap;

#[test]
fn only_a_decimal_amount_is_re_formatted_for_the_field_variants() {
    let variants = |amount: &str| -> Vec<&'static str> {
        field_candidates("r", "256700000001", amount)
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    };
    assert_eq!(
        variants("12.5"),
        [variant::FIELDS_AS_SENT, variant::FIELDS_2DP]
    );
    // Each signed string once: "126600" is already the integer form...
    assert_eq!(
        variants("126600"),
        [variant::FIELDS_AS_SENT, variant::FIELDS_2DP]
    );
    // ...and "126600.00" already the two-decimal one.
    assert_eq!(
        variants("126600.00"),
        [variant::FIELDS_AS_SENT, variant::FIELDS_INTEGER]
    );
    // Not a decimal number: signed only as sent, never re-formatted.
    for amount in ["abc", ".5", "", "12.x", "1a.00"] {
        assert_eq!(variants(amount), [variant::FIELDS_AS_SENT], "{amount:?}");
    }
}

const REF: &str = "566a4a89-4024-584c-b1f5-8c59aff0d334";
const BODY: &str = r#"{"event":"collection.success","data":{"transactionStatus":"SUCCEEDED","transactionReference":"566a4a89-4024-584c-b1f5-8c59aff0d334","transactionExternalReference":"20080513164357","MNOTransactionReferenceId":"42026012031","currencyCode":"UGX-ATLMM","amount":"126600","msisdn":"256755329361","channel":"API","transactionType":"INBOUND_MSISDN_CREDIT","transactionInitiationDate":"2020-08-05 13:16:43","transactionCompletionDate":"2020-08-05 13:16:55"}}"#;

fn provider() -> ZengaPay {
    ZengaPay {
        secret_hash: Secret::new("SECRET_HASH"),
        api_token: Some(Secret::new("TOKEN")),
        base_url: "https://api.sandbox.zengapay.com".into(),
    }
}

fn pending(kind: TxnKind) -> PendingTxn {
    PendingTxn {
        id: 1,
        provider: ProviderId::ZengaPay,
        provider_ref: REF.into(),
        kind,
        status: Status::Pending,
        unconfirmed: false,
        poll_attempts: 0,
        created_at_ms: 0,
        deadline_at_ms: None,
    }
}

const INPUTS: PollInputs<'static> = PollInputs {
    now_ms: 0,
    nonce: "n",
    access_token: None,
};

#[test]
fn status_requests_use_the_kind_endpoint_and_the_bearer_token() {
    let p = provider();
    let req = p
        .status_request(&pending(TxnKind::Transfer), INPUTS)
        .unwrap()
        .unwrap();
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(
        req.uri().to_string(),
        format!("https://api.sandbox.zengapay.com/v1/transfers/{REF}")
    );
    assert_eq!(req.headers()["authorization"], "Bearer TOKEN");
    let req = p
        .status_request(&pending(TxnKind::Unknown), INPUTS)
        .unwrap()
        .unwrap();
    assert!(req.uri().path().starts_with("/v1/collections/"));
    let no_token = ZengaPay {
        api_token: None,
        ..provider()
    };
    assert!(no_token
        .status_request(&pending(TxnKind::Collection), INPUTS)
        .is_none());
}

#[test]
fn the_documented_statement_reads_payments_and_leaves_charges_out() {
    // The "Account Statement" sample of ZengaPay's API documentation, trimmed to one
    // payment and one charge (whose amount 2152.2 is not even representable in UGX).
    let body = r#"{"code":200,"status":"OK","statement":{"current_page":1,"data":[
        {"transactionSystemId":"ZPY200806176137TX","transactionReference":"9122712b-6f0c-54ff-ab53-515b8d29fae4","transactionStatus":"SUCCEEDED","amount":107610,"msisdn":"256784553576","channel":"API","currencyCode":"UGX-MTNMM","transactionExternalReference":"20080620471018","transactionEntryGeneralType":"CREDIT","transactionEntryDesignation":"TRANSACTION","transactionEntrySpecificType":"INBOUND_MSISDN_CREDIT"},
        {"transactionSystemId":"ZPY200806205562TX","transactionReference":"ac24cc4d-56b7-53ee-9070-579aa9afa8a4","transactionStatus":"SUCCEEDED","amount":2152.2,"msisdn":null,"channel":"BACK_END_PROCESSOR","currencyCode":"UGX-MTNMM","transactionEntryGeneralType":"DEBIT","transactionEntryDesignation":"CHARGES","transactionEntrySpecificType":"OUTBOUND_ZPACCT_DEBIT"}
        ],"last_page":3,"per_page":25}}"#;
    let page = provider()
        .parse_sweep_reply(StatusCode::OK, body.as_bytes())
        .unwrap();
    assert_eq!(
        (page.reports.len(), page.skipped, page.next_page),
        (1, 0, Some(2))
    );
    let r = &page.reports[0];
    assert_eq!((r.kind, r.status), (TxnKind::Collection, Status::Succeeded));
    assert_eq!(r.money.as_ref().unwrap().minor, 107_610);
    assert_eq!(r.merchant_ref.as_deref(), Some("20080620471018"));
    let req = provider().sweep_request(0, 3_600_000, 2).unwrap().unwrap();
    assert_eq!(
        req.uri().query().unwrap(),
        "start=1970-01-01%2003:00:00&end=1970-01-01%2004:00:00&designation=TRANSACTION&limit=100&page=2"
    );
}

#[test]
fn status_answers_map_and_failures_stay_failures() {
    let p = provider();
    let txn = pending(TxnKind::Collection);
    let body = format!(
        r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{REF}","transactionStatus":"SUCCEEDED","amount":126600,"currencyCode":"UGX-MTNMM","transactionExternalReference":"o-1","transactionCompletionDate":"0000-00-00 00:00:00"}}}}"#
    );
    let r = p
        .parse_status_reply(&txn, StatusCode::OK, body.as_bytes())
        .unwrap();
    assert_eq!((r.status, r.reason), (Status::Succeeded, None));
    assert_eq!(r.money.unwrap().minor, 126600);
    let failed = body.replace("SUCCEEDED", "FAILED");
    let r = p
        .parse_status_reply(&txn, StatusCode::OK, failed.as_bytes())
        .unwrap();
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (Status::Failed, Some("PROVIDER_FAILED"))
    );
    let indeterminate = body.replace("SUCCEEDED", "INDETERMINATE");
    assert_eq!(
        p.parse_status_reply(&txn, StatusCode::OK, indeterminate.as_bytes())
            .unwrap()
            .status,
        Status::Indeterminate
    );
    assert_eq!(
        p.parse_status_reply(&txn, StatusCode::NOT_FOUND, b"{}"),
        Err(PollError::NotFound)
    );
    assert_eq!(
        p.parse_status_reply(&txn, StatusCode::TOO_MANY_REQUESTS, b""),
        Err(PollError::RateLimited)
    );
    assert!(matches!(
        p.parse_status_reply(&txn, StatusCode::OK, b"<html>"),
        Err(PollError::Malformed(_))
    ));
    let other = body.replace(REF, "someone-else");
    assert!(matches!(
        p.parse_status_reply(&txn, StatusCode::OK, other.as_bytes()),
        Err(PollError::Malformed(_))
    ));
}

fn verify(body: &str, sig: &str) -> Result<VerifiedCallback, VerifyError> {
    let mut headers = HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, sig.parse().unwrap());
    let body = Bytes::from(body.to_string());
    provider().verify(&RawCallback {
        path_rest: None,
        path: "/callbacks/zengapay",
        query: None,
        headers: &headers,
        body: &body,
        payment: None,
    })
}

// The three composed vectors of fixtures/zengapay/signature_vectors.json (computed with
// Python's hmac; see fixtures/README.md).
#[test]
fn composed_vectors_verify_and_name_their_variant() {
    let raw = verify(
        BODY,
        "d34107c824ace4fe52cba89ff796e9d682249c5eb0836a9fdfdb1fe692b9607a",
    )
    .unwrap();
    assert_eq!((raw.auth.as_str(), raw.signed), (variant::RAW_BODY, true));
    let two_dp = verify(
        BODY,
        "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23",
    )
    .unwrap();
    assert_eq!(two_dp.auth, variant::FIELDS_2DP);
    let as_sent = verify(
        BODY,
        "9c7b2d4eec031ecbee18b5c96861c3896d7f355166edd7c14a5e97a5d3f13a58",
    )
    .unwrap();
    assert_eq!(as_sent.auth, variant::FIELDS_AS_SENT);
    // A field signature leaves the status, the event and the currency unproven: the
    // same one verifies a body that says something else about the same payment.
    assert!(!two_dp.signed && !as_sent.signed);
    // ...and so covers fields only: what it reports is a hint, the raw body's is not.
    assert_eq!(raw.coverage, crate::domain::Coverage::Body);
    assert_eq!(
        (two_dp.coverage, as_sent.coverage),
        (
            crate::domain::Coverage::Fields,
            crate::domain::Coverage::Fields
        )
    );
    let flipped = BODY.replace("SUCCEEDED", "FAILED").replace("UGX", "KES");
    assert_ne!(flipped, BODY);
    let still = verify(
        &flipped,
        "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23",
    )
    .unwrap();
    assert!(!still.signed);
    // Hex case does not matter.
    let upper = "0B4D07070EE1E2D4FE7B292462FFD6DA1D683A1052CB483A3D5FBB31DC930B23";
    assert!(verify(BODY, upper).is_ok());
}

#[test]
fn wrong_truncated_or_foreign_signatures_are_refused() {
    let good = "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23";
    assert_eq!(
        verify(BODY, &good[..62]).unwrap_err(),
        VerifyError::SignatureMismatch
    );
    assert_eq!(
        verify(BODY, "zz").unwrap_err(),
        VerifyError::SignatureMismatch
    );
    let tampered = BODY.replace("126600", "126601");
    assert!(verify(&tampered, good).is_err());
    let mut other = Hmac::<Sha256>::new_from_slice(b"OTHER").unwrap();
    other.update(BODY.as_bytes());
    assert!(verify(BODY, &hex::encode(other.finalize().into_bytes())).is_err());
}

/// Signs `input` as ZengaPay's plugin does (HMAC-SHA256 hex of the concatenation).
fn field_sig(input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"SECRET_HASH").unwrap();
    mac.update(input.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn a_field_signature_is_refused_where_its_fields_could_be_split_otherwise() {
    let body = |reference: &str, msisdn: &str, amount: &str| {
        format!(
            r#"{{"event":"collection.success","data":{{"transactionStatus":"SUCCEEDED","transactionReference":"{reference}","msisdn":"{msisdn}","amount":"{amount}","currencyCode":"UGX"}}}}"#
        )
    };
    let sig = field_sig(&format!("{REF}256755329361126600.00"));
    assert!(verify(&body(REF, "256755329361", "126600"), &sig).is_ok());
    // One digit moved from the MSISDN to the amount: same signed string, refused.
    assert_eq!(
        verify(&body(REF, "25675532936", "1126600"), &sig).unwrap_err(),
        VerifyError::SignatureMismatch
    );
    // The reference swallowing the MSISDN's first digits, the MSISDN the amount's.
    let sig = field_sig(&format!("{REF}256772560001126600.00"));
    let shifted = body(&format!("{REF}25677"), "256000112660", "0.00");
    assert!(verify(&shifted, &sig).is_err());
    // A leading zero or a sign would let digits pass between the fields too.
    let sig = field_sig(&format!("{REF}2567553293610126600"));
    assert!(verify(&body(REF, "256755329361", "0126600"), &sig).is_err());
}

/// What ZengaPay's parser makes of `body` (verification is not its concern).
fn parse(body: &str) -> Result<CallbackEvent, ParseError> {
    let v = VerifiedCallback::new(
        ProviderId::ZengaPay,
        "t",
        true,
        Bytes::from(body.to_string()),
    );
    provider().parse_callback(&v)
}

#[test]
fn every_status_word_has_its_status() {
    for (word, status) in [
        ("PENDING", Some(Status::Pending)),
        ("INDETERMINATE", Some(Status::Indeterminate)),
        ("SUCCEEDED", Some(Status::Succeeded)),
        ("Successful", Some(Status::Succeeded)),
        (" success ", Some(Status::Succeeded)),
        ("failed", Some(Status::Failed)),
        ("REVERSED", None),
        ("", None),
    ] {
        assert_eq!(parse_status(word), status, "{word:?}");
    }
}

#[test]
fn without_a_status_field_the_event_name_decides() {
    let body =
        |event: &str| format!(r#"{{"event":"{event}","data":{{"transactionReference":"{REF}"}}}}"#);
    let report = |event: &str| parse(&body(event)).unwrap().report.unwrap();
    let r = report("transfer.success");
    assert_eq!(
        (r.kind, r.status, r.reason),
        (TxnKind::Transfer, Status::Succeeded, None)
    );
    let r = report("collection.failed");
    assert_eq!(
        (r.kind, r.status, r.reason.as_deref()),
        (TxnKind::Collection, Status::Failed, Some("PROVIDER_FAILED"))
    );
    assert!(matches!(
        parse(&body("collection.pending")),
        Err(ParseError::Missing("data.transactionStatus"))
    ));
    // An amount that is not a number is an error, not an absent amount.
    let odd = format!(
        r#"{{"event":"collection.success","data":{{"transactionReference":"{REF}","transactionStatus":"SUCCEEDED","amount":true,"currencyCode":"UGX"}}}}"#
    );
    assert!(matches!(
        parse(&odd),
        Err(ParseError::Invalid {
            field: "data.amount",
            ..
        })
    ));
}

#[test]
fn parses_the_documented_webhook() {
    let p = provider();
    let cb = verify(
        BODY,
        "d34107c824ace4fe52cba89ff796e9d682249c5eb0836a9fdfdb1fe692b9607a",
    )
    .unwrap();
    let ev = p.parse_callback(&cb).unwrap();
    assert_eq!(ev.dedup_key, format!("collection.success:{REF}"));
    let r = ev.report.unwrap();
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!(r.kind, TxnKind::Collection);
    assert_eq!(
        r.money,
        Some(Money {
            minor: 126600,
            currency: "UGX".into()
        })
    );
    assert_eq!(r.merchant_ref.as_deref(), Some("20080513164357"));
    assert_eq!(r.receipt.as_deref(), Some("42026012031"));
}

#[test]
fn candidates_never_round() {
    let c = field_candidates("r", "m", "12.345");
    assert_eq!(
        c.len(),
        1,
        "only the as-sent form for an amount with 3 decimals: {c:?}"
    );
    let c = field_candidates("r", "m", "12.5");
    assert!(c.iter().any(|(_, s)| s == "rm12.50"));
    assert!(!c.iter().any(|(v, _)| *v == variant::FIELDS_INTEGER));
}
