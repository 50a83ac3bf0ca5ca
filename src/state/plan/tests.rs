//! The decision rules' tests: a matrix of stored rows × reports × channels, one test per
//! rule, and a property over random report sequences.

use super::Channel::*;
use super::*;
use crate::state::Status::*;
use proptest::prelude::*;

const CHANNELS: [Channel; 8] = [
    Signed,
    FieldSigned,
    Token,
    TokenAllowlisted,
    Configured,
    StatusQuery,
    Operator,
    Payhook,
];

fn ugx(minor: i64) -> Money {
    Money {
        minor,
        currency: "UGX".into(),
    }
}

fn details(minor: i64, order: &str) -> Details {
    Details {
        amount: Some(ugx(minor)),
        merchant_ref: Some(order.into()),
        msisdn: None,
        receipt: None,
    }
}

fn stored(status: Status, reason: Option<&str>) -> Stored {
    Stored {
        status,
        reason: reason.map(str::to_string),
        known: Details::default(),
        expected: None,
        held: None,
        status_confirmed: true,
        unconfirmed: Details::default(),
    }
}

fn inc<'a>(status: Status, d: &'a Details, channel: Channel, confirmable: bool) -> Incoming<'a> {
    Incoming {
        status,
        reason: None,
        details: d,
        channel,
        confirmable,
    }
}

/// The stored rows every matrix test walks through.
fn rows() -> Vec<Option<Stored>> {
    let mut held = stored(Pending, None);
    held.held = Some(Held {
        status: Succeeded,
        details: details(100, "o-1"),
    });
    let mut settled = stored(Succeeded, None);
    settled.known = details(100, "o-1");
    vec![
        None,
        Some(stored(Pending, None)),
        Some(stored(Indeterminate, None)),
        Some(stored(NeedsReview, Some(DEADLINE_PASSED))),
        Some(stored(NeedsReview, Some("AMOUNT_MISMATCH: registered 1"))),
        Some(held),
        Some(settled),
        Some(stored(Failed, None)),
        Some(stored(Reversed, None)),
    ]
}

#[test]
fn the_matrix_never_regresses_a_terminal_status_and_hints_never_settle_what_can_be_checked() {
    for d in [details(100, "o-1"), details(200, "o-2"), Details::default()] {
        matrix_with(&d);
    }
}

/// Every stored row × every reported status × every channel, with the given values.
fn matrix_with(d: &Details) {
    let d = d.clone();
    for cur in rows() {
        for status in Status::ALL {
            for channel in CHANNELS {
                for confirmable in [false, true] {
                    let p = plan(cur.as_ref(), &inc(status, &d, channel, confirmable));
                    let what = format!("{cur:?} + {status} by {channel:?} ({confirmable})");
                    if let Some(c) = &cur {
                        if c.status.is_terminal() && p.status != c.status {
                            assert_eq!((c.status, p.status), (Succeeded, Reversed), "{what}");
                        }
                    }
                    if !channel.vouches() && confirmable {
                        assert!(
                            !p.status.is_terminal()
                                || cur.as_ref().is_some_and(|c| c.status == p.status),
                            "{what}: {p:?}"
                        );
                        if p.status.is_terminal() {
                            assert_ne!(p.emit, Emit::Settled, "{what}");
                        }
                    }
                    if !channel.vouches() {
                        assert_eq!(p.fill, Details::default(), "{what}: a hint fills nothing");
                    }
                    if p.emit == Emit::Settled {
                        assert!(p.status.is_settled(), "{what}");
                        assert!(p.record == Some(Record::Applied), "{what}");
                    }
                    if let HoldChange::Set(h) = &p.hold {
                        assert!(h.status.is_terminal() && !channel.vouches(), "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_settled_payment_reported_again_with_other_values_gets_a_conflict_not_a_review() {
    let mut settled = stored(Succeeded, None);
    settled.known = details(100, "o-1");
    for channel in [Signed, StatusQuery, TokenAllowlisted, Configured] {
        for other in [details(15000, "o-1"), details(100, "o-2")] {
            let p = plan(Some(&settled), &inc(Succeeded, &other, channel, true));
            assert_eq!(
                (p.status, p.record, p.emit),
                (Succeeded, Some(Record::Conflict), Emit::Conflict),
                "{channel:?} {other:?}"
            );
        }
    }
    // An unauthenticated body disputing a confirmed settlement is only noted.
    let p = disputed(&settled, "CALLBACK_MISMATCH: x".into(), Token);
    assert_eq!((p.record, p.emit), (Some(Record::Stale), Emit::Nothing));
}

#[test]
fn a_hint_is_held_where_a_status_query_exists_and_applied_unconfirmed_where_none_does() {
    let d = details(100, "o-1");
    for channel in [Token, FieldSigned] {
        let p = plan(None, &inc(Succeeded, &d, channel, true));
        assert_eq!((p.status, p.poll), (Pending, PollChange::Now));
        assert!(matches!(
            p.hold,
            HoldChange::Set(Held {
                status: Succeeded,
                ..
            })
        ));
        let p = plan(None, &inc(Failed, &d, channel, true));
        assert!(matches!(
            p.hold,
            HoldChange::Set(Held { status: Failed, .. })
        ));
        let p = plan(None, &inc(Succeeded, &d, channel, false));
        assert_eq!(
            (p.status, p.status_confirmed, p.emit),
            (Succeeded, Some(false), Emit::Settled)
        );
    }
    // Token plus a trusted allowlist, and the status endpoint, vouch at once.
    for channel in [TokenAllowlisted, StatusQuery, Signed, Configured] {
        let p = plan(None, &inc(Succeeded, &d, channel, true));
        assert_eq!((p.status, p.status_confirmed), (Succeeded, Some(true)));
        assert_eq!(p.fill, d);
    }
}

#[test]
fn a_confirming_answer_is_compared_with_the_hint_field_by_field() {
    let mut held = stored(Pending, None);
    held.held = Some(Held {
        status: Succeeded,
        details: details(100, "o-1"),
    });
    let reason = |held: &Stored, d: &Details, status: Status| {
        plan(Some(held), &inc(status, d, StatusQuery, true))
            .reason
            .flatten()
    };
    let agrees = plan(
        Some(&held),
        &inc(Succeeded, &details(100, "o-1"), StatusQuery, true),
    );
    assert_eq!(
        (agrees.status, agrees.hold.clone()),
        (Succeeded, HoldChange::Clear)
    );
    assert_eq!(agrees.unconfirmed, Some(Details::default()));
    for (d, status, field) in [
        (details(100, "o-1"), Failed, "status"),
        (details(200, "o-1"), Succeeded, "amount"),
        (details(100, "o-2"), Succeeded, "merchant_ref"),
        (
            Details {
                amount: Some(Money {
                    minor: 100,
                    currency: "KES".into(),
                }),
                ..details(100, "o-1")
            },
            Succeeded,
            "currency",
        ),
    ] {
        let why = reason(&held, &d, status).unwrap_or_default();
        assert!(
            why.starts_with(&format!("{UNCONFIRMED_MISMATCH}: {field}")),
            "{field}: {why}"
        );
    }
    // No amount in the answer: the hint's must match the registration.
    held.expected = Some(ugx(150));
    let none = Details {
        merchant_ref: Some("o-1".into()),
        ..Details::default()
    };
    assert!(reason(&held, &none, Succeeded).is_some_and(|r| r.contains("amount")));
    held.expected = Some(ugx(100));
    let p = plan(Some(&held), &inc(Succeeded, &none, StatusQuery, true));
    assert_eq!(p.status, Succeeded);
    assert_eq!(
        p.unconfirmed.and_then(|u| u.amount),
        None,
        "confirmed by the registration"
    );
    held.expected = None;
    let p = plan(Some(&held), &inc(Succeeded, &none, StatusQuery, true));
    assert_eq!(
        p.unconfirmed.and_then(|u| u.amount),
        Some(ugx(100)),
        "left unconfirmed"
    );
}

#[test]
fn amounts_are_compared_whatever_the_order() {
    let mut cur = stored(Pending, None);
    cur.expected = Some(ugx(100));
    let p = plan(
        Some(&cur),
        &inc(Succeeded, &details(200, "o"), Signed, true),
    );
    assert_eq!(p.status, NeedsReview);
    assert!(p.reason.flatten().unwrap().starts_with(AMOUNT_MISMATCH));
    // Registration after the provider stated an amount.
    let mut settled = stored(Succeeded, None);
    settled.known = details(100, "o");
    assert_eq!(register(&settled, Some(&ugx(100))), Registration::Fill);
    assert!(matches!(
        register(&settled, Some(&ugx(101))),
        Registration::Contradicts(_)
    ));
    let p = disputed(&settled, "AMOUNT_MISMATCH: x".into(), Payhook);
    assert_eq!(
        (p.status, p.record, p.emit),
        (Succeeded, Some(Record::Conflict), Emit::Conflict)
    );
    let mut open = stored(Pending, None);
    open.known = details(100, "o");
    let p = disputed(&open, "AMOUNT_MISMATCH: x".into(), Payhook);
    assert_eq!((p.status, p.emit), (NeedsReview, Emit::Settled));
    // Another amount registered before: refused, nothing changes.
    let mut registered = stored(Pending, None);
    registered.expected = Some(ugx(100));
    assert!(matches!(
        register(&registered, Some(&ugx(5))),
        Registration::Refuse(_)
    ));
    // A success of another amount after FAILED contradicts it.
    let mut failed = stored(Failed, None);
    failed.expected = Some(ugx(100));
    let p = plan(
        Some(&failed),
        &inc(Succeeded, &details(5, "o"), Signed, false),
    );
    assert_eq!((p.status, p.record), (Failed, Some(Record::Conflict)));
}

#[test]
fn unauthenticated_reports_against_a_confirmed_status_are_history_not_alarms() {
    let settled = stored(Succeeded, None);
    let d = details(1, "x");
    for channel in [Token, FieldSigned] {
        let p = plan(Some(&settled), &inc(Failed, &d, channel, true));
        assert_eq!(
            (p.record, p.emit, p.status),
            (Some(Record::Stale), Emit::Nothing, Succeeded)
        );
    }
    let mut unconfirmed = settled.clone();
    unconfirmed.status_confirmed = false;
    let p = plan(Some(&unconfirmed), &inc(Failed, &d, Token, false));
    assert_eq!((p.record, p.emit), (Some(Record::Conflict), Emit::Conflict));
}

#[test]
fn details_with_any_one_value_are_not_empty() {
    assert!(Details::default().is_empty());
    let one = [
        Details {
            amount: Some(ugx(1)),
            ..Details::default()
        },
        Details {
            merchant_ref: Some("o-1".into()),
            ..Details::default()
        },
        Details {
            msisdn: Some("256700000001".into()),
            ..Details::default()
        },
        Details {
            receipt: Some("R1".into()),
            ..Details::default()
        },
    ];
    for d in one {
        assert!(!d.is_empty(), "{d:?}");
    }
}

#[test]
fn a_hint_nothing_can_confirm_keeps_its_values_apart_and_states_none_when_it_has_none() {
    let d = details(100, "o-1");
    let p = plan(None, &inc(Succeeded, &d, Token, false));
    assert_eq!(
        (
            p.status,
            p.status_confirmed,
            &p.fill,
            p.unconfirmed.as_ref()
        ),
        (Succeeded, Some(false), &Details::default(), Some(&d))
    );
    // Without values there is nothing unconfirmed to keep (no empty record).
    let p = plan(None, &inc(Succeeded, &Details::default(), Token, false));
    assert_eq!((p.status, p.unconfirmed), (Succeeded, None));
}

#[test]
fn an_operator_s_decision_is_not_compared_with_a_held_hint() {
    // The hint claimed a failure; the operator, who checked with the provider, decides
    // it succeeded. Only a provider's report confirms or contradicts a hint.
    let mut held = stored(Pending, None);
    held.held = Some(Held {
        status: Failed,
        details: details(100, "o-1"),
    });
    let p = plan(
        Some(&held),
        &inc(Succeeded, &Details::default(), Operator, false),
    );
    assert_eq!(
        (p.status, p.record, p.emit, &p.hold),
        (
            Succeeded,
            Some(Record::Applied),
            Emit::Settled,
            &HoldChange::Clear
        )
    );
}

#[test]
fn a_hint_repeating_a_settled_status_is_no_news() {
    let d = details(100, "o-1");
    for confirmed in [true, false] {
        let mut settled = stored(Succeeded, None);
        settled.status_confirmed = confirmed;
        let p = plan(Some(&settled), &inc(Succeeded, &d, Token, true));
        assert_eq!(
            (p.status, p.record, p.emit),
            (Succeeded, None, Emit::Nothing)
        );
    }
}

#[test]
fn a_review_for_a_disagreement_is_left_to_the_reviewer() {
    let d = details(100, "o-1");
    for reason in [
        AMOUNT_MISMATCH,
        MERCHANT_REF_MISMATCH,
        UNCONFIRMED_MISMATCH,
        CALLBACK_MISMATCH,
    ] {
        let why = format!("{reason}: registered 100 UGX, provider reported 200 UGX");
        let c = stored(NeedsReview, Some(&why));
        // A hint is history: not held, not applied.
        let p = plan(Some(&c), &inc(Succeeded, &d, Token, true));
        assert_eq!(
            (p.status, p.record, &p.hold),
            (NeedsReview, Some(Record::Unconfirmed), &HoldChange::Keep),
            "{reason}"
        );
        // An authenticated success that names no other amount does not settle it.
        for details in [Details::default(), d.clone()] {
            let p = plan(Some(&c), &inc(Succeeded, &details, StatusQuery, false));
            assert_eq!(
                (p.status, p.record, p.emit),
                (NeedsReview, None, Emit::Nothing),
                "{reason}"
            );
        }
    }
    // A review for a passed deadline is not a disagreement: a hint is held again.
    let c = stored(NeedsReview, Some(DEADLINE_PASSED));
    let p = plan(Some(&c), &inc(Succeeded, &d, Token, true));
    assert!(matches!(p.hold, HoldChange::Set(_)), "{p:?}");
}

#[test]
fn a_provider_still_reporting_pending_leaves_a_held_hint_held() {
    let mut held = stored(Pending, None);
    held.held = Some(Held {
        status: Succeeded,
        details: details(100, "o-1"),
    });
    let p = plan(
        Some(&held),
        &inc(Pending, &Details::default(), StatusQuery, false),
    );
    assert_eq!(
        (p.status, p.record, &p.hold, p.emit),
        (Pending, None, &HoldChange::Keep, Emit::Nothing)
    );
}

#[test]
fn a_failure_after_a_disputed_success_is_a_conflict_beside_the_review() {
    let c = stored(
        NeedsReview,
        Some("AMOUNT_MISMATCH: registered 100 UGX, provider reported 200 UGX"),
    );
    let none = Details::default();
    let p = plan(Some(&c), &inc(Failed, &none, StatusQuery, false));
    assert_eq!(
        (p.status, p.record, p.emit),
        (NeedsReview, Some(Record::Conflict), Emit::Nothing)
    );
    // A provider still saying "pending" is stale, not a conflict.
    let p = plan(Some(&c), &inc(Pending, &none, StatusQuery, false));
    assert_eq!((p.status, p.record), (NeedsReview, Some(Record::Stale)));
    // The reviewer's decision is applied.
    let p = plan(Some(&c), &inc(Failed, &none, Operator, false));
    assert_eq!(
        (p.status, p.record, p.emit),
        (Failed, Some(Record::Applied), Emit::Settled)
    );
}

#[test]
fn a_provider_s_report_of_the_status_a_hint_set_confirms_it() {
    let none = Details::default();
    let mut unconfirmed = stored(Pending, None);
    unconfirmed.status_confirmed = false;
    let p = plan(Some(&unconfirmed), &inc(Pending, &none, StatusQuery, false));
    assert_eq!((p.status, p.status_confirmed), (Pending, Some(true)));
    // Already confirmed: nothing to write.
    let p = plan(
        Some(&stored(Pending, None)),
        &inc(Pending, &none, StatusQuery, false),
    );
    assert_eq!(p.status_confirmed, None);
    // An operator restating it does not make a provider's statement of it.
    let p = plan(Some(&unconfirmed), &inc(Pending, &none, Operator, false));
    assert_eq!(p.status_confirmed, None);
    // Nothing held: a repeated settlement has no hold to clear.
    let p = plan(
        Some(&stored(Succeeded, None)),
        &inc(Succeeded, &none, StatusQuery, false),
    );
    assert_eq!((p.record, &p.hold), (None, &HoldChange::Keep));
}

#[test]
fn an_open_status_keeps_its_polls_and_a_settled_one_stops_them() {
    let none = Details::default();
    let p = plan(
        Some(&stored(Pending, None)),
        &inc(Indeterminate, &none, StatusQuery, false),
    );
    assert_eq!((p.status, p.poll), (Indeterminate, PollChange::Keep));
    let p = plan(
        Some(&stored(Pending, None)),
        &inc(Failed, &none, StatusQuery, false),
    );
    assert_eq!((p.status, p.poll), (Failed, PollChange::Stop));
}

#[test]
fn an_authenticated_report_s_values_are_known_not_unconfirmed() {
    let d = details(100, "o-1");
    let p = plan(None, &inc(Succeeded, &d, Signed, false));
    assert_eq!(
        (
            p.status,
            p.status_confirmed,
            &p.fill,
            p.unconfirmed.as_ref()
        ),
        (Succeeded, Some(true), &d, None)
    );
    let p = plan(
        Some(&stored(Pending, None)),
        &inc(Succeeded, &d, StatusQuery, false),
    );
    assert_eq!(
        (p.status, &p.fill, p.unconfirmed.as_ref()),
        (Succeeded, &d, None)
    );
}

#[test]
fn a_hint_in_another_currency_than_registered_is_not_confirmed_by_an_answer_without_amount() {
    let mut c = stored(Pending, None);
    c.expected = Some(ugx(100));
    c.held = Some(Held {
        status: Succeeded,
        details: Details {
            amount: Some(Money {
                minor: 100,
                currency: "KES".into(),
            }),
            ..Details::default()
        },
    });
    let p = plan(
        Some(&c),
        &inc(Succeeded, &Details::default(), StatusQuery, false),
    );
    assert_eq!(p.status, NeedsReview);
    assert!(p
        .reason
        .flatten()
        .is_some_and(|r| r.starts_with(UNCONFIRMED_MISMATCH) && r.contains("currency")));
}

#[test]
fn a_held_merchant_reference_is_compared_with_the_registered_one_when_the_answer_has_none() {
    let none = Details::default();
    for (hinted, settles) in [("o-1", true), ("o-2", false)] {
        let mut c = stored(Pending, None);
        c.known.merchant_ref = Some("o-1".into());
        c.held = Some(Held {
            status: Succeeded,
            details: Details {
                merchant_ref: Some(hinted.into()),
                ..Details::default()
            },
        });
        let p = plan(Some(&c), &inc(Succeeded, &none, StatusQuery, false));
        if settles {
            assert_eq!(p.status, Succeeded);
        } else {
            assert_eq!(p.status, NeedsReview);
            assert!(p
                .reason
                .flatten()
                .is_some_and(|r| r.contains("merchant_ref")));
        }
    }
}

#[test]
fn an_authenticated_success_is_compared_with_what_is_known_by_currency_and_reference() {
    let mut c = stored(Pending, None);
    c.expected = Some(ugx(100));
    c.known.merchant_ref = Some("o-1".into());
    let same = details(100, "o-1");
    let p = plan(Some(&c), &inc(Succeeded, &same, StatusQuery, false));
    assert_eq!(p.status, Succeeded);
    let kes = Details {
        amount: Some(Money {
            minor: 100,
            currency: "KES".into(),
        }),
        ..same.clone()
    };
    let p = plan(Some(&c), &inc(Succeeded, &kes, StatusQuery, false));
    assert_eq!(p.status, NeedsReview);
    assert!(p
        .reason
        .flatten()
        .is_some_and(|r| r.starts_with(AMOUNT_MISMATCH)));
    let other = details(100, "o-2");
    let p = plan(Some(&c), &inc(Succeeded, &other, StatusQuery, false));
    assert!(p
        .reason
        .flatten()
        .is_some_and(|r| r.starts_with(MERCHANT_REF_MISMATCH)));
}

#[test]
fn a_confirmed_hint_leaves_unconfirmed_only_what_nothing_authenticated_stated() {
    let hint = Details {
        msisdn: Some("256700000001".into()),
        receipt: Some("R-HINT".into()),
        ..Details::default()
    };
    let answer = Details {
        msisdn: Some("256700000002".into()),
        receipt: Some("R-ANSWER".into()),
        ..Details::default()
    };
    let mut c = stored(Pending, None);
    c.held = Some(Held {
        status: Succeeded,
        details: hint.clone(),
    });
    // The answer states both: nothing of the hint is left over.
    let p = plan(Some(&c), &inc(Succeeded, &answer, StatusQuery, false));
    assert_eq!(
        (p.status, p.unconfirmed),
        (Succeeded, Some(Details::default()))
    );
    // Already known: nothing left over either.
    c.known = answer.clone();
    let p = plan(
        Some(&c),
        &inc(Succeeded, &Details::default(), StatusQuery, false),
    );
    assert_eq!(
        (p.status, p.unconfirmed),
        (Succeeded, Some(Details::default()))
    );
    // Stated by no one else: the hint's values stay, unconfirmed.
    c.known = Details::default();
    let p = plan(
        Some(&c),
        &inc(Succeeded, &Details::default(), StatusQuery, false),
    );
    assert_eq!(p.unconfirmed, Some(hint));
}

#[test]
fn an_operator_may_only_make_a_transition_the_state_machine_allows() {
    assert!(resolution(Pending, Succeeded).is_ok());
    assert!(resolution(NeedsReview, Failed).is_ok());
    assert!(resolution(Succeeded, Reversed).is_ok());
    assert!(resolution(Succeeded, Succeeded).is_ok());
    let refused = resolution(Succeeded, Failed).unwrap_err();
    assert!(refused.contains("is SUCCEEDED"), "{refused}");
    assert!(resolution(Failed, Pending).is_err());
}

#[test]
fn a_dispute_names_its_reason_unless_a_review_already_names_a_disagreement() {
    let why = || format!("{CALLBACK_MISMATCH}: two bodies");
    // A review for a disagreement keeps the first reason; the dispute is history.
    let c = stored(NeedsReview, Some("AMOUNT_MISMATCH: registered 1"));
    let p = disputed(&c, why(), Signed);
    assert_eq!(
        (p.status, p.record, &p.reason, p.emit),
        (NeedsReview, Some(Record::Applied), &None, Emit::Nothing)
    );
    // A deadline review, or an open payment with a reason of its own, takes it.
    for c in [
        stored(NeedsReview, Some(DEADLINE_PASSED)),
        stored(Indeterminate, Some("TIMEOUT")),
    ] {
        let p = disputed(&c, why(), Signed);
        assert_eq!(
            (p.status, &p.reason),
            (NeedsReview, &Some(Some(why()))),
            "{c:?}"
        );
    }
    let p = disputed(&stored(Indeterminate, Some("TIMEOUT")), why(), Signed);
    assert_eq!(p.emit, Emit::Settled);
}

#[test]
fn an_operator_s_decision_keeps_a_held_hint_s_amount_as_unconfirmed() {
    // The operator settles a payment whose hint claimed another amount than registered:
    // the claim is not known, and stays beside the decision as unconfirmed.
    let mut c = stored(Pending, None);
    c.expected = Some(ugx(100));
    let hint = Details {
        amount: Some(ugx(200)),
        ..Details::default()
    };
    c.held = Some(Held {
        status: Succeeded,
        details: hint.clone(),
    });
    let p = plan(
        Some(&c),
        &inc(Succeeded, &Details::default(), Operator, false),
    );
    assert_eq!((p.status, p.unconfirmed), (Succeeded, Some(hint)));
}

/// A model of the store: applies a plan to the stored row the way
/// `store::transactions` does.
fn execute(cur: Option<Stored>, p: &Plan) -> Stored {
    let mut s = cur.unwrap_or(Stored {
        status: p.status,
        reason: None,
        known: Details::default(),
        expected: None,
        held: None,
        status_confirmed: true,
        unconfirmed: Details::default(),
    });
    s.status = p.status;
    if let Some(r) = &p.reason {
        s.reason.clone_from(r);
    }
    if let Some(c) = p.status_confirmed {
        s.status_confirmed = c;
    }
    let fill = |known: &mut Option<String>, new: &Option<String>| {
        if known.is_none() {
            known.clone_from(new);
        }
    };
    if s.known.amount.is_none() {
        s.known.amount.clone_from(&p.fill.amount);
    }
    fill(&mut s.known.merchant_ref, &p.fill.merchant_ref);
    match &p.hold {
        HoldChange::Keep => {}
        HoldChange::Set(h) => s.held = Some(h.clone()),
        HoldChange::Clear => s.held = None,
    }
    s
}

proptest! {
    /// Whatever reports arrive, from any channel and in any order, payhook never
    /// records as known (or settles, with its status confirmed, on) a value that no
    /// authenticated source stated. Authenticated sources state the truth; hints
    /// state anything.
    #[test]
    fn nothing_unconfirmed_is_ever_known(
        reports in proptest::collection::vec(
            (0usize..8, 0usize..6, 0i64..3, 0usize..3, any::<bool>()), 1..12),
        truth_ok in any::<bool>(),
    ) {
        let truth_status = if truth_ok { Succeeded } else { Failed };
        let truth = details(100, "o-1");
        let orders = ["o-1", "o-2", "o-3"];
        let mut cur: Option<Stored> = None;
        for (ch, st, amount, order, confirmable) in reports {
            let channel = CHANNELS[ch];
            // Operators and payhook are left out: they decide, they do not state values.
            if matches!(channel, Operator | Payhook | Configured) { continue; }
            let (status, d) = if channel.vouches() {
                // An authenticated source states the truth, or that it is still open.
                if st % 2 == 0 { (truth_status, truth.clone()) } else { (Pending, truth.clone()) }
            } else {
                (Status::ALL[st], details(100 + amount, orders[order]))
            };
            // A provider whose status query exists answers to it: hints there are
            // confirmable; channels without one are not (and announce unconfirmed).
            let p = plan(cur.as_ref(), &inc(status, &d, channel, confirmable));
            cur = Some(execute(cur, &p));
            let s = cur.as_ref().unwrap();
            if s.status_confirmed {
                // Everything recorded as known came from the truth.
                prop_assert!(s.known.amount.as_ref().is_none_or(|a| *a == truth.amount.clone().unwrap()),
                    "{s:?}");
                prop_assert!(s.known.merchant_ref.as_deref().is_none_or(|r| r == "o-1"), "{s:?}");
                if s.status.is_terminal() {
                    prop_assert!(s.status == truth_status || (truth_status == Succeeded && s.status == Reversed),
                        "{s:?}");
                }
            }
        }
    }
}
