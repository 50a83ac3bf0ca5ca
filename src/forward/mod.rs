//! The forwarder: delivers each outbox event to the merchant's application, signed
//! (Standard Webhooks), retried on a persisted schedule, dead-lettered, replayable.

pub mod sign;
