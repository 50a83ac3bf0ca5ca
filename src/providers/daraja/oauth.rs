//! The OAuth token of Daraja's API: `GET /oauth/v1/generate` with the consumer key and
//! secret, cached by the reconciler for the hour it lives.

use super::*;

/// `/oauth/v1/generate` answer: `expires_in` is a string of seconds (a number accepted).
#[derive(Deserialize)]
struct TokenReply<'a> {
    access_token: Option<String>,
    #[serde(borrow)]
    expires_in: Option<&'a RawValue>,
}

/// The OAuth client-credentials request (`GET /oauth/v1/generate`, Basic consumer
/// key:secret).
pub(super) fn token_request(api: &DarajaApi, base_url: &str) -> Result<StatusRequest, PollError> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        api.consumer_key.expose(),
        api.consumer_secret.expose()
    ));
    http::Request::get(format!(
        "{base_url}/oauth/v1/generate?grant_type=client_credentials"
    ))
    .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
    .body(Full::new(Bytes::new()))
    .map_err(|e| PollError::Request(e.to_string()))
}

/// Reads the OAuth answer: the token and how long it lives.
pub(super) fn parse_token_reply(status: StatusCode, body: &[u8]) -> Result<AccessToken, PollError> {
    let reply: TokenReply = json_reply(status, body, PollError::from_token_status)?;
    let token = reply
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(ParseError::Missing("access_token"))?;
    // Documented as "valid ~1 h"; when unreadable, assume the documented hour.
    let secs = value_text(reply.expires_in)
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(3600);
    Ok(AccessToken {
        token: Secret::new(token),
        valid_for: std::time::Duration::from_secs(secs),
    })
}
