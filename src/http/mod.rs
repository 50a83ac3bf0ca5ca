//! The callback listener: a raw hyper 1.x HTTP/1.1 server, no framework. The admin
//! listener ([`admin`]) runs on the same accept loop with its own handler.
//!
//! The accept loop bounds concurrent connections, bounds how long a client may take to
//! send its headers, and on shutdown stops accepting, then drains in-flight requests for
//! at most [`DRAIN_DEADLINE`] (hyper-util's `GracefulShutdown`).

pub mod admin;
pub mod allowlist;
pub mod client_ip;
pub mod error;
pub mod feed;
pub mod ingest;
pub mod ops;
pub mod route;

use crate::shutdown::Shutdown;
use crate::Ctx;
use error::{Body, HttpError};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use route::Endpoint;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long in-flight requests may take to finish after shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// Time a client has to send a complete header section (slowloris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a complete body once its headers arrived.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest header section accepted; larger gets 431 from hyper.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Concurrent connections; beyond it new ones are closed at once so that idle or
/// hostile connections cannot exhaust memory or file descriptors.
pub const MAX_CONNECTIONS: usize = 4096;

/// Descriptors payhook needs besides the callback connections: admin connections, the
/// store's files, and outbound connections to providers and the merchant.
const OTHER_DESCRIPTORS: u64 = 1024;

/// A warning when the process's soft open-files limit, read from `limits` (the text of
/// `/proc/self/limits`), is below [`MAX_CONNECTIONS`] plus what the rest of payhook needs.
/// Past that limit, accepting a connection and connecting out both fail (EMFILE): a few
/// hundred idle connections would then lock out providers and deliveries long before the
/// connection cap refuses anyone. `None` when the limit is high enough or unknown.
pub fn open_files_warning(limits: &str) -> Option<String> {
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?;
    let needed = MAX_CONNECTIONS as u64 + OTHER_DESCRIPTORS;
    match soft.parse::<u64>() {
        Ok(n) if n < needed => Some(format!(
            "the open-files limit is {n}, below the {needed} payhook needs for \
             {MAX_CONNECTIONS} callback connections and its own files; past it, callbacks \
             and deliveries fail to connect. Raise it (LimitNOFILE= in the unit, ulimit -n)."
        )),
        // "unlimited", or enough.
        _ => None,
    }
}

/// Serves callbacks on `listener` until `shutdown` starts, then drains.
pub async fn serve(listener: TcpListener, ctx: Ctx, shutdown: Shutdown) {
    accept_loop(listener, ctx, shutdown, handle).await
}

/// The accept loop shared by the listeners: bounded connections, header timeout, graceful
/// drain; `handler` answers each request.
pub async fn accept_loop<H, F>(listener: TcpListener, ctx: Ctx, mut shutdown: Shutdown, handler: H)
where
    H: Fn(Ctx, SocketAddr, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        // A client may shut down its write side once its request is sent and still wait
        // for the answer; without this hyper drops such a connection unanswered.
        .half_close(true)
        .keep_alive(true);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.recv() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.metrics
                .inc(crate::metrics::CONNECTIONS_REFUSED_TOTAL, &[]);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let service = service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(handler(ctx, peer, req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are client-side (reset, timeout, malformed request): nothing to do.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("listener closed; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!(deadline = ?DRAIN_DEADLINE, "drain deadline passed; closing remaining connections");
        }
    }
}

async fn handle(ctx: Ctx, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let endpoint = match route::parse(req.method(), req.uri().path()) {
        Ok(e) => e,
        Err(route::RouteError::NotFound) => return HttpError::NotFound.response(),
        Err(route::RouteError::MethodNotAllowed(allow)) => {
            return HttpError::MethodNotAllowed(allow).response()
        }
    };
    match endpoint {
        Endpoint::Callback { provider, rest } => ingest::handle(&ctx, provider, rest, peer, req)
            .await
            .unwrap_or_else(|e| e.response()),
        Endpoint::Healthz => ops::healthz(),
        Endpoint::Readyz => ops::readyz(&ctx).await,
        Endpoint::Metrics => ops::metrics(&ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(soft: &str) -> String {
        format!(
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max processes             96364                96364                processes \n\
             Max open files            {soft:<20} 524288               files     \n"
        )
    }

    #[test]
    fn a_low_open_files_limit_is_warned_about() {
        let w = open_files_warning(&limits("1024")).expect("1024 is too low");
        assert!(w.contains("1024") && w.contains("LimitNOFILE"), "{w}");
        for fine in ["5120", "20000", "unlimited"] {
            assert_eq!(open_files_warning(&limits(fine)), None, "{fine}");
        }
        assert_eq!(open_files_warning("no such line"), None);
    }
}
