//! Operations endpoints: liveness, readiness (the store accepts durable writes), metrics.

use super::error::{json, text, Body};
use crate::Ctx;
use http::{Response, StatusCode};

/// `GET /healthz`: the process is alive and serving.
pub fn healthz() -> Response<Body> {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// `GET /readyz`: 200 when a durable write to the store succeeds now, else 503.
pub async fn readyz(ctx: &Ctx) -> Response<Body> {
    match ctx.store.ping().await {
        Ok(()) => json(StatusCode::OK, r#"{"status":"ready"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: store not writable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"store unavailable"}"#,
            )
        }
    }
}

/// `GET /metrics`: Prometheus text exposition, with the backlog gauges read from the
/// store now (left out, and logged, when the store cannot be read).
pub async fn metrics(ctx: &Ctx) -> Response<Body> {
    let backlog = match ctx.store.read(crate::store::queries::backlog).await {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the backlog from the store");
            None
        }
    };
    text(
        StatusCode::OK,
        ctx.metrics.render(backlog.as_ref(), crate::clock::now_ms()),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}
