//! The one mapping from failures to HTTP answers. Bodies describe the request's fault,
//! never internals; details go to the log (4xx at `info`, 5xx at `warn`).

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

/// The response body type of every handler.
pub type Body = Full<Bytes>;

/// Everything a handler can answer with besides success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Unknown route (404).
    #[error("not found")]
    NotFound,
    /// Known route, wrong method (405), with the allowed methods.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// Credential missing or wrong (401); the label says which check failed.
    #[error("unauthorized")]
    Unauthorized(&'static str),
    /// Source address refused (403).
    #[error("forbidden")]
    Forbidden,
    /// Body over the configured limit (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body could not be read (400).
    #[error("bad request")]
    BadRequest,
    /// The client was too slow sending its body (408).
    #[error("request timeout")]
    Timeout,
    /// The store cannot take the write now (503): the provider should retry.
    #[error("service unavailable")]
    Unavailable,
    /// A bug (500); the provider retries too.
    #[error("internal error")]
    Internal,
}

impl HttpError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden => StatusCode::FORBIDDEN,
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BadRequest => StatusCode::BAD_REQUEST,
            HttpError::Timeout => StatusCode::REQUEST_TIMEOUT,
            HttpError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response.
    pub fn response(&self) -> Response<Body> {
        let mut resp = json(self.status(), &format!(r#"{{"error":"{self}"}}"#));
        let headers = resp.headers_mut();
        if let HttpError::MethodNotAllowed(allow) = self {
            headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        if let HttpError::Unavailable = self {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        if matches!(
            self,
            HttpError::PayloadTooLarge
                | HttpError::Timeout
                | HttpError::BadRequest
                | HttpError::Forbidden
        ) {
            // The rest of the body was not read; the connection cannot be reused.
            headers.insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A plain-text response.
pub fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
