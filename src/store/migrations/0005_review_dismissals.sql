-- The review queue can be worked down to empty: every item gets an id, and a conflict or
-- an unparsed callback a human has looked at is closed by a row here (payhook review
-- dismiss, or payhook resolve for the transaction's conflicts). The history itself is
-- never edited.
CREATE TABLE review_dismissals (
    item      TEXT    NOT NULL CHECK (item IN ('conflict','callback')), -- what was closed
    target_id INTEGER NOT NULL,                 -- transitions.id of a conflict, callbacks.id of an unparsed callback
    note      TEXT    NOT NULL,                 -- why, as the operator wrote it
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (item, target_id)
) WITHOUT ROWID;

DROP VIEW review_queue;
CREATE VIEW review_queue AS
    SELECT 'txn-' || t.id AS id, 'transaction' AS item, t.provider, t.provider_ref, t.status,
           t.reason AS detail, t.updated_at_ms AS at_ms
    FROM transactions t WHERE t.status = 'NEEDS_REVIEW'
    UNION ALL
    SELECT 'conflict-' || r.id, 'conflict', t.provider, t.provider_ref, r.to_status, COALESCE(r.reason, r.note), r.at_ms
    FROM transitions r JOIN transactions t ON t.id = r.transaction_id
    WHERE r.outcome = 'conflict'
      AND NOT EXISTS (SELECT 1 FROM review_dismissals d WHERE d.item = 'conflict' AND d.target_id = r.id)
    UNION ALL
    SELECT 'callback-' || c.id, 'callback', c.provider, c.provider_ref, NULL, c.parse_error, c.first_seen_at_ms
    FROM callbacks c
    WHERE c.parse_error IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM review_dismissals d WHERE d.item = 'callback' AND d.target_id = c.id);
