//! Routing: `(method, path)` → [`Endpoint`]. One route per provider, so the reverse proxy
//! can expose exactly the callback routes and nothing else.

use crate::domain::ProviderId;
use crate::providers::registry::Route;
use http::Method;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /callbacks/{provider}[/{rest}]`.
    Callback {
        /// Which provider's route.
        provider: ProviderId,
        /// What follows the provider segment (a secret token for Daraja and Tujenge).
        rest: Option<String>,
    },
    /// `GET /healthz`: the process is alive.
    Healthz,
    /// `GET /readyz`: the store accepts writes.
    Readyz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
}

/// Why no endpoint matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such path (404).
    NotFound,
    /// The path exists for other methods (405), listed for the `Allow` header.
    MethodNotAllowed(&'static str),
}

/// Providers whose route carries a secret path segment (Daraja and Tujenge sign
/// nothing, so the token is their credential), as their registry entries say.
fn takes_path_token(p: ProviderId) -> bool {
    crate::providers::registry::entry(p).route == Route::PathToken
}

/// Matches a request line.
pub fn parse(method: &Method, path: &str) -> Result<Endpoint, RouteError> {
    let want = |allowed: &'static str, endpoint: Endpoint| {
        let ok = match allowed {
            "POST" => method == Method::POST,
            _ => method == Method::GET || method == Method::HEAD,
        };
        if ok {
            Ok(endpoint)
        } else {
            Err(RouteError::MethodNotAllowed(allowed))
        }
    };
    match path {
        "/healthz" => return want("GET, HEAD", Endpoint::Healthz),
        "/readyz" => return want("GET, HEAD", Endpoint::Readyz),
        "/metrics" => return want("GET, HEAD", Endpoint::Metrics),
        _ => {}
    }
    let rest = path
        .strip_prefix("/callbacks/")
        .ok_or(RouteError::NotFound)?;
    let (name, tail) = match rest.split_once('/') {
        Some((n, t)) => (n, Some(t)),
        None => (rest, None),
    };
    let provider: ProviderId = name.parse().map_err(|_| RouteError::NotFound)?;
    let tail = tail.filter(|t| !t.is_empty());
    if tail.is_some() && !takes_path_token(provider) {
        return Err(RouteError::NotFound);
    }
    want(
        "POST",
        Endpoint::Callback {
            provider,
            rest: tail.map(str::to_string),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_the_misses() {
        let post = |p: &str| parse(&Method::POST, p);
        let get = |p: &str| parse(&Method::GET, p);
        assert_eq!(get("/healthz"), Ok(Endpoint::Healthz));
        assert_eq!(get("/readyz"), Ok(Endpoint::Readyz));
        assert_eq!(get("/metrics"), Ok(Endpoint::Metrics));
        for p in ProviderId::ALL {
            let path = format!("/callbacks/{p}");
            assert_eq!(
                post(&path),
                Ok(Endpoint::Callback {
                    provider: p,
                    rest: None
                })
            );
            assert_eq!(get(&path), Err(RouteError::MethodNotAllowed("POST")));
        }
        assert_eq!(
            post("/callbacks/daraja/s3cr3t/validation"),
            Ok(Endpoint::Callback {
                provider: ProviderId::Daraja,
                rest: Some("s3cr3t/validation".into())
            })
        );
        assert_eq!(post("/callbacks/zengapay/extra"), Err(RouteError::NotFound));
        assert_eq!(post("/callbacks/paypal"), Err(RouteError::NotFound));
        assert_eq!(post("/callbacks"), Err(RouteError::NotFound));
        assert_eq!(get("/"), Err(RouteError::NotFound));
        assert_eq!(
            post("/healthz"),
            Err(RouteError::MethodNotAllowed("GET, HEAD"))
        );
    }
}
