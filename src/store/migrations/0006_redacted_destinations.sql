-- Destination URLs are stored as check-config shows them, query and fragment replaced
-- by [redacted]: a receiver's token often rides in the query, and the database is copied
-- into backups and bug reports. This rewrites the rows older versions stored verbatim
-- (the cut is at the first '?' or '#', as config::redacted_url does).

UPDATE attempts SET destination = substr(destination, 1, instr(destination, '#') - 1) || '?[redacted]'
 WHERE instr(destination, '#') > 0;
UPDATE attempts SET destination = substr(destination, 1, instr(destination, '?') - 1) || '?[redacted]'
 WHERE instr(destination, '?') > 0;

UPDATE OR REPLACE destinations SET url = substr(url, 1, instr(url, '#') - 1) || '?[redacted]'
 WHERE instr(url, '#') > 0;
UPDATE OR REPLACE destinations SET url = substr(url, 1, instr(url, '?') - 1) || '?[redacted]'
 WHERE instr(url, '?') > 0;
