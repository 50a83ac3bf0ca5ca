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
pub mod ingest;
pub mod ops;
pub mod route;

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

/// Serves callbacks on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, ctx: Ctx, shutdown: impl Future<Output = ()>) {
    accept_loop(listener, ctx, shutdown, handle).await
}

/// The accept loop shared by the listeners: bounded connections, header timeout, graceful
/// drain; `handler` answers each request.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    ctx: Ctx,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
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
    tokio::pin!(shutdown);
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
            () = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            ctx.metrics.inc("payhook_connections_refused_total", &[]);
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
        Endpoint::Metrics => ops::metrics(&ctx),
    }
}
