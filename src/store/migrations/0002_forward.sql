-- Issue 5, the forwarder: destinations that can be disabled (410 Gone) across restarts,
-- and the start of each event's current retry schedule (replay restarts it).

-- Where events are delivered, and whether payhook may still post there.
CREATE TABLE destinations (
    url             TEXT    PRIMARY KEY,        -- the [forward] url events are POSTed to
    disabled_at_ms  INTEGER,                    -- set when it answered 410 Gone: nothing is posted until re-enabled (payhook events enable-destination)
    disabled_reason TEXT                        -- why it was disabled, e.g. "410 Gone"
) WITHOUT ROWID;

ALTER TABLE events ADD COLUMN schedule_started_at_ms INTEGER; -- start of the current retry schedule (NULL: created_at_ms); replay resets it; retry_horizon counts from it
