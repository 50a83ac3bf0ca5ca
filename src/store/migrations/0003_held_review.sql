-- A success that only an unsigned callback reported, arriving after the transaction was
-- escalated to NEEDS_REVIEW for passing its deadline, is confirmed by a status query like
-- a held success on an open row (src/store/polls.rs). The reconciler's second work queue:
-- review rows holding such a success, by due time. A NULL next_poll_at_ms on these rows
-- means "no longer polled": left for the reviewer, after review_polls queries at most.
CREATE INDEX transactions_held_due ON transactions (next_poll_at_ms)
    WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
      AND next_poll_at_ms IS NOT NULL;

ALTER TABLE transactions ADD COLUMN review_polls INTEGER NOT NULL DEFAULT 0; -- status queries made to confirm a success held on a NEEDS_REVIEW row; the reconciler stops at its cap
