//! The review queue's writes: an operator's decision about a NEEDS_REVIEW transaction
//! ([`resolve`]), and closing a conflict or an unparsed callback a human has looked at.
//! The history is never edited; a dismissal is a row of its own (`review_dismissals`),
//! and the `review_queue` view leaves dismissed items out. NEEDS_REVIEW transactions
//! leave the queue only through a decision.

use super::transactions::{apply, Applied, Schedule, Source, Trust};
use super::StoreError;
use crate::domain::{ProviderId, StatusReport};
use crate::state::plan::{self, Channel};
use crate::state::Status;
use rusqlite::{params, Connection, OptionalExtension};

/// A review item's id as the `review_queue` view spells it: `txn-N`, `conflict-N`,
/// `callback-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemId {
    /// A NEEDS_REVIEW transaction (`transactions.id`).
    Transaction(i64),
    /// A conflict (`transitions.id`).
    Conflict(i64),
    /// An unparsed callback (`callbacks.id`).
    Callback(i64),
}

impl std::str::FromStr for ItemId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a review item id (txn-N, conflict-N or callback-N)");
        let (kind, n) = s.trim().split_once('-').ok_or_else(bad)?;
        let n: i64 = n.parse().map_err(|_| bad())?;
        match kind {
            "txn" => Ok(ItemId::Transaction(n)),
            "conflict" => Ok(ItemId::Conflict(n)),
            "callback" => Ok(ItemId::Callback(n)),
            _ => Err(bad()),
        }
    }
}

/// Closes review item `id` with `note`. A transaction is refused: it leaves review only
/// through a decision (`payhook resolve`). Dismissing an item twice is refused, as is an
/// id that names no open item of its kind.
pub fn dismiss(conn: &Connection, id: ItemId, note: &str, now_ms: i64) -> Result<(), StoreError> {
    if note.trim().is_empty() {
        return Err(StoreError::Refused("a note is required".into()));
    }
    let (item, target, exists_sql) =
        match id {
            ItemId::Transaction(_) => return Err(StoreError::Refused(
                "a transaction in review leaves it by a decision: payhook resolve REF --status S \
                 --note N"
                    .into(),
            )),
            ItemId::Conflict(n) => (
                "conflict",
                n,
                "SELECT 1 FROM transitions WHERE id = ?1 AND outcome = 'conflict'",
            ),
            ItemId::Callback(n) => (
                "callback",
                n,
                "SELECT 1 FROM callbacks WHERE id = ?1 AND parse_error IS NOT NULL",
            ),
        };
    let exists = conn
        .prepare_cached(exists_sql)?
        .query_row([target], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound(format!("review item {item}-{target}")));
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO review_dismissals (item, target_id, note, at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![item, target, note, now_ms])?;
    if inserted == 0 {
        return Err(StoreError::Refused(format!(
            "{item}-{target} was already dismissed"
        )));
    }
    Ok(())
}

/// Closes every open conflict of transaction `txn` with `note`: the operator's decision
/// (`payhook resolve`) answers them. Returns how many were closed.
pub fn dismiss_conflicts(
    conn: &Connection,
    txn: i64,
    note: &str,
    now_ms: i64,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO review_dismissals (item, target_id, note, at_ms)
             SELECT 'conflict', id, ?2, ?3 FROM transitions
              WHERE transaction_id = ?1 AND outcome = 'conflict'
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![txn, note, now_ms])?)
}

/// Reason recorded with an operator's decision; the note is in `transitions.note`.
pub const OPERATOR_REASON: &str = "OPERATOR_DECISION";

/// Records a human decision about transaction `id` (`payhook resolve`) through [`apply`]
/// with `Source::Operator(note)`. Only a transition the state machine allows is written:
/// a decision that contradicts a terminal status is refused, not recorded as a conflict,
/// since the operator is here to be told.
pub fn resolve(
    conn: &Connection,
    id: i64,
    status: Status,
    note: &str,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    if note.trim().is_empty() {
        return Err(StoreError::Refused("a note is required".into()));
    }
    let (provider, provider_ref, kind, current): (String, String, String, String) = conn
        .prepare_cached(
            "SELECT provider, provider_ref, kind, status FROM transactions WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("transaction {id}")))?;
    let refused = |e: String| StoreError::Refused(e);
    let provider: ProviderId = provider
        .parse()
        .map_err(|e: crate::domain::UnknownProvider| refused(e.to_string()))?;
    let current: Status = current
        .parse()
        .map_err(|e: crate::state::UnknownStatus| refused(e.to_string()))?;
    plan::resolution(current, status)
        .map_err(|why| refused(format!("{provider} {provider_ref}: {why}")))?;
    let mut report = StatusReport::new(
        provider_ref,
        kind.parse().unwrap_or(crate::domain::TxnKind::Unknown),
        status,
    );
    report.reason = Some(OPERATOR_REASON.to_string());
    apply(
        conn,
        provider,
        &report,
        Trust::vouched(Channel::Operator),
        Source::Operator(note),
        Schedule::default(),
        now_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_read_as_the_view_spells_them() {
        assert_eq!("txn-3".parse(), Ok(ItemId::Transaction(3)));
        assert_eq!("conflict-12".parse(), Ok(ItemId::Conflict(12)));
        assert_eq!("callback-7".parse(), Ok(ItemId::Callback(7)));
        for bad in ["", "txn", "txn-", "conflict-x", "event-1", "7"] {
            assert!(bad.parse::<ItemId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dismissed_callback_leaves_the_queue_once() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrations::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO callbacks (id, provider, kind, dedup_key, auth, signed, body, body_sha256,
                                    headers, parse_error, first_seen_at_ms, last_seen_at_ms)
             VALUES (5, 'jenga', 'unparsed', 'k', 'basic', 1, x'7b7d', 'h', '{}', 'no reference', 1, 1)",
            [],
        )
        .unwrap();
        let queue = |c: &Connection| crate::store::queries::review_queue(c).unwrap();
        assert_eq!(queue(&c)[0].id, "callback-5");
        assert!(matches!(
            dismiss(&c, ItemId::Callback(5), " ", 2),
            Err(StoreError::Refused(_))
        ));
        dismiss(&c, ItemId::Callback(5), "test body from the sandbox", 2).unwrap();
        assert!(queue(&c).is_empty());
        assert!(matches!(
            dismiss(&c, ItemId::Callback(5), "again", 3),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            dismiss(&c, ItemId::Callback(6), "none", 3),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            dismiss(&c, ItemId::Transaction(1), "no", 3),
            Err(StoreError::Refused(_))
        ));
    }
}
