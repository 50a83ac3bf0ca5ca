-- The provider check on a new transaction refuses with RAISE(FAIL) instead of RAISE(ABORT).
-- A statement that may ABORT after it has written, as one with a trigger may, makes SQLite
-- keep a statement journal: a copy of every page the INSERT touches, so that it can undo
-- the statement alone: 7.5 % of the writer's time in a profile of new callbacks
-- (docs/benchmarks.md). With FAIL, and payhook's own INSERT OR FAIL, nothing
-- in the insert can abort, so no copy is kept. What a row may hold does not change: the
-- trigger runs before its row is written, so an unknown provider is still refused and a
-- single-row INSERT writes nothing. A multi-row INSERT now keeps the rows before the one
-- refused, unless it runs inside a transaction its writer rolls back (schema.sql).
DROP TRIGGER transactions_provider_insert;
CREATE TRIGGER transactions_provider_insert BEFORE INSERT ON transactions
    WHEN NEW.provider NOT IN (SELECT name FROM providers)
BEGIN
    SELECT RAISE(FAIL, 'unknown provider: not in the providers table');
END;
