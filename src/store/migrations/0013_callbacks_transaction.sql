-- A transaction's callbacks are found by callbacks.transaction_id (`payhook show`, and the
-- same question asked in SQL), which no index covered: the lookup read the whole table, 1.6 s
-- on a store of a million callbacks. The index is partial, so that an unparsed callback
-- (no transaction) adds nothing to it, and only the writer's UPDATE that links a callback
-- to its transaction writes it, mostly near the index's end, since a callback usually
-- reports on a recent transaction. It costs the writer about 8 k instructions per new
-- callback, 5 % of its 153 k; the ingest bench did not tell the two apart
-- (docs/benchmarks.md).
CREATE INDEX callbacks_transaction ON callbacks (transaction_id)
    WHERE transaction_id IS NOT NULL;
