-- The review queue (the review_queue view: `payhook review`, and the count that every
-- GET /metrics reads) selects NEEDS_REVIEW transactions, conflict transitions and unparsed
-- callbacks, and had no index for any of the three: each read scanned the three tables, about
-- 2 s on a store of a million payments, on every metrics scrape. Each index is partial: it
-- holds the transactions now in review, and every conflict and unparsed callback, dismissed
-- or not (a dismissal is a row of review_dismissals; the history is not edited). So a
-- callback that settles a payment, the common case, writes none of them; its insert only
-- tests the index's condition.
CREATE INDEX transactions_review ON transactions (updated_at_ms)
    WHERE status = 'NEEDS_REVIEW';
CREATE INDEX transitions_conflicts ON transitions (at_ms)
    WHERE outcome = 'conflict';
CREATE INDEX callbacks_unparsed ON callbacks (first_seen_at_ms)
    WHERE parse_error IS NOT NULL;
