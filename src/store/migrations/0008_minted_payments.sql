-- Payments a per-payment callback URL was minted for (payhook callback-url,
-- POST /v1/callback-urls; src/minted.rs). A callback on such a URL is tied to its payment:
-- Tujenge's transaction is the payment itself (provider_ref is the payment id); Daraja's
-- CheckoutRequestID or ConversationID is bound to it on its first callback, and a later
-- callback that would bind another reference, or bind the reference to another payment, is
-- a conflict for review.
CREATE TABLE minted_payments (
    payment_id            TEXT    PRIMARY KEY,  -- the id in the URL (base64url, 22 characters)
    provider              TEXT    NOT NULL,     -- the provider whose route the URL is for
    kind                  TEXT    NOT NULL DEFAULT 'unknown', -- payment kind, as registered
    merchant_ref          TEXT,                 -- the merchant's own reference, as registered
    expected_amount_minor INTEGER,              -- the amount the merchant expects, in minor units
    expected_currency     TEXT,                 -- ISO-4217 code of expected_amount_minor
    provider_ref          TEXT,                 -- the provider's reference bound to it (NULL until the first callback, for Daraja)
    created_at_ms         INTEGER NOT NULL,
    bound_at_ms           INTEGER,              -- when provider_ref was bound
    UNIQUE (provider, provider_ref)
) WITHOUT ROWID;
