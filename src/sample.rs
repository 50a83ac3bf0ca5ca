//! Sample callbacks: a realistic body for each provider, authenticated with the
//! configured credentials exactly as the provider would (ZengaPay's HMAC-SHA256 of the raw
//! body, TransferZero's HMAC-SHA512 over the public URL, Daraja's and Tujenge's path token,
//! Jenga's HTTP Basic). `payhook send-test` posts one to an installation; `payhook demo`
//! posts one per provider to its own daemon. The bodies follow the shapes in `fixtures/`.

use crate::config::Config;
use crate::domain::ProviderId;
use crate::providers::sample::Sample;
pub use crate::providers::sample::{
    zengapay_signature, SampleCallback, SampleError, SampleSpec, SampleStatus,
};

/// Builds the sample callback `spec` describes for `provider`, with `cfg`'s credentials.
pub fn build(
    cfg: &Config,
    provider: ProviderId,
    spec: &SampleSpec,
) -> Result<SampleCallback, SampleError> {
    let amount = &spec.amount;
    let valid_amount = {
        let (int, frac) = amount.split_once('.').unwrap_or((amount, "0"));
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    };
    if !valid_amount {
        return Err(SampleError::BadAmount(amount.clone()));
    }
    let table = cfg
        .providers
        .table(provider)
        .ok_or(SampleError::NotConfigured(provider))?;
    table.sample(&Sample {
        provider,
        spec,
        amount,
    })
}
