//! The exchange pipeline: verify → map → mint. The core of claimex.
//!
//! [`Exchanger::exchange`] takes a raw token and an optional issuer id and returns a signed
//! token or a typed [`ExchangeError`], always together with the [`Audit`] record of the
//! decision. It knows nothing of HTTP or AWS: issuers come from the [`Registry`], issuer
//! keys through [`IssuerKeys`], the mapper through [`crate::mapping::ClaimsMapper`], and
//! the signature through [`KeyStore`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::audit::Audit;
use crate::error::{ExchangeError, Refusal};
use crate::mapping::{MapDecision, MapRequest};
use crate::mint::{self, Stamp};
use crate::registry::{Issuer, Lookup, Registry};
use crate::signer::{KeyStore, SignError};
use crate::verify::{self, KeyMatch, KeySet, Unverified, VerifyPolicy};

/// Why an issuer's keys could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeysError {
    /// The issuer cannot be reached and no keys are cached.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the core gets an issuer's verification keys.
#[async_trait]
pub trait IssuerKeys: Send + Sync {
    /// The issuer's current keys. `unknown_kid` is set when a token named a key the last
    /// answer did not have: implementations may then refetch, at a bounded rate.
    async fn keys(
        &self,
        issuer: &Issuer,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysError>;
}

/// The server-wide settings of the exchange.
#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// claimex's own issuer URL, the `iss` of every token it mints.
    pub issuer_url: String,
    /// Limits on inbound tokens.
    pub verify: VerifyPolicy,
    /// Lifetime of minted tokens unless the issuer entry sets one.
    pub token_lifetime: Duration,
    /// Longest lifetime of a minted token.
    pub max_token_lifetime: Duration,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// The signed JWT.
    pub token: String,
    /// Its `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Longest deny reason passed on to the caller, in characters.
const MAX_REASON_CHARS: usize = 512;

/// Runs exchanges.
pub struct Exchanger {
    registry: Arc<Registry>,
    keys: Arc<dyn IssuerKeys>,
    signer: Arc<dyn KeyStore>,
    settings: ExchangeSettings,
    clock: fn() -> u64,
}

/// Seconds since the Unix epoch, by the system clock.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Exchanger {
    /// An exchanger over these parts.
    pub fn new(
        registry: Arc<Registry>,
        keys: Arc<dyn IssuerKeys>,
        signer: Arc<dyn KeyStore>,
        settings: ExchangeSettings,
    ) -> Exchanger {
        Exchanger {
            registry,
            keys,
            signer,
            settings,
            clock: system_now,
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Exchanger {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &ExchangeSettings {
        &self.settings
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The key store.
    pub fn signer(&self) -> &Arc<dyn KeyStore> {
        &self.signer
    }

    /// Exchanges `token`, verified against issuer `issuer_id` when given, else against the
    /// issuer registered for its `iss`.
    pub async fn exchange(
        &self,
        token: &str,
        issuer_id: Option<&str>,
    ) -> (Result<Exchanged, ExchangeError>, Audit) {
        let mut audit = Audit::default();
        let result = self.run(token, issuer_id, &mut audit).await;
        (result, audit)
    }

    async fn run(
        &self,
        token: &str,
        issuer_id: Option<&str>,
        audit: &mut Audit,
    ) -> Result<Exchanged, ExchangeError> {
        audit.issuer_id = issuer_id.map(str::to_owned);
        let seen = verify::inspect(token, &self.settings.verify)?;
        let issuer = self.choose_issuer(issuer_id, &seen)?;
        audit.issuer_id = Some(issuer.id.clone());
        audit.mapper_sha256 = Some(issuer.mapper.sha256().to_owned());

        if !issuer.algorithms.contains(&seen.header.alg) {
            return Err(ExchangeError::new(
                Refusal::Unverified,
                format!(
                    "the token is signed with {:?}, which issuer {:?} does not accept",
                    seen.header.alg, issuer.id
                ),
            ));
        }
        let kid = seen.header.kid.as_deref();
        let mut keys = self.keys(&issuer, None).await?;
        if matches!(keys.find(kid, seen.header.alg), KeyMatch::UnknownKid) {
            keys = self.keys(&issuer, kid).await?;
        }
        let key = match keys.find(kid, seen.header.alg) {
            KeyMatch::Found(key) => key,
            KeyMatch::UnknownKid => {
                return Err(ExchangeError::new(
                    Refusal::Unverified,
                    format!(
                        "the token's kid is not among the keys of issuer {:?}",
                        issuer.id
                    ),
                ));
            }
            KeyMatch::NoKey => {
                return Err(ExchangeError::new(
                    Refusal::Unverified,
                    format!(
                        "no key of issuer {:?} fits the token's kid and alg",
                        issuer.id
                    ),
                ));
            }
        };
        let now = (self.clock)();
        let verified = verify::verify(seen, &issuer, key, &self.settings.verify, now)?;
        audit.inbound_iss = verified.registered.iss;
        audit.inbound_sub = verified.registered.sub;
        audit.inbound_jti = verified.registered.jti;

        let outcome = issuer
            .mapper
            .map(&MapRequest {
                issuer_id: &issuer.id,
                issuer_url: &issuer.url,
                claims_json: &verified.claims_json,
                config_json: &issuer.mapper_config,
            })
            .await;
        if !outcome.stderr.is_empty() {
            audit.mapper_stderr = Some(outcome.stderr);
        }
        let output = match outcome.result {
            Ok(MapDecision::Allow(json)) => json,
            Ok(MapDecision::Deny(reason)) => {
                return Err(ExchangeError::new(
                    Refusal::Denied,
                    format!(
                        "the mapper of issuer {:?} denied the exchange: {}",
                        issuer.id,
                        clean_reason(&reason)
                    ),
                ));
            }
            Err(e) => {
                return Err(ExchangeError::new(
                    Refusal::MapperFailed,
                    format!("the mapper of issuer {:?} failed: {e}", issuer.id),
                ));
            }
        };
        let checked = mint::check_output(&output, &issuer)?;
        audit.outbound_sub = Some(checked.sub.clone());
        audit.outbound_aud = checked.aud.clone();
        audit.tag_keys = checked
            .tags
            .as_ref()
            .map(|t| t.keys.clone())
            .unwrap_or_default();

        let lifetime = mint::lifetime(
            &issuer,
            self.settings.token_lifetime,
            self.settings.max_token_lifetime,
        );
        let stamp = Stamp::new(&self.settings.issuer_url, now, lifetime);
        let key = self
            .signer
            .signing_key()
            .map_err(|e| sign_error(e, audit))?;
        audit.outbound_jti = Some(stamp.jti.clone());
        audit.kid = Some(key.kid().to_owned());
        let input = mint::signing_input(key.alg(), key.kid(), &checked, &stamp)?;
        let signature = key
            .sign(input.as_bytes())
            .await
            .map_err(|e| sign_error(e, audit))?;
        let token = mint::assemble(input, &signature)?;
        Ok(Exchanged {
            token,
            expires_at: stamp.exp,
        })
    }

    fn choose_issuer(
        &self,
        issuer_id: Option<&str>,
        seen: &Unverified<'_>,
    ) -> Result<Arc<Issuer>, ExchangeError> {
        let snapshot = self.registry.snapshot();
        match issuer_id {
            Some(id) => snapshot.by_id(id).map_err(|_| {
                ExchangeError::new(
                    Refusal::UnknownIssuer,
                    format!("no issuer is registered with id {:?}", truncate(id, 64)),
                )
            }),
            None => {
                let iss = seen.iss().ok_or_else(|| {
                    ExchangeError::new(
                        Refusal::Unverified,
                        "the token has no iss claim; name the issuer with ?issuerId=",
                    )
                })?;
                snapshot.by_url(&iss).map_err(|lookup| match lookup {
                    Lookup::Ambiguous(ids) => ExchangeError::new(
                        Refusal::UnknownIssuer,
                        format!(
                            "several issuers ({}) are registered for this token's iss; name one with ?issuerId=",
                            ids.join(", ")
                        ),
                    ),
                    _ => ExchangeError::new(
                        Refusal::Unverified,
                        "no issuer is registered for this token's iss",
                    ),
                })
            }
        }
    }

    async fn keys(
        &self,
        issuer: &Issuer,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, ExchangeError> {
        self.keys
            .keys(issuer, unknown_kid)
            .await
            .map_err(|KeysError::Unavailable(e)| ExchangeError::new(Refusal::Unavailable, e))
    }
}

fn sign_error(e: SignError, audit: &mut Audit) -> ExchangeError {
    audit.detail = Some(e.to_string());
    match e {
        SignError::Unavailable(_) => ExchangeError::new(
            Refusal::Unavailable,
            "the signing key is temporarily unavailable; try again shortly",
        ),
        SignError::Failed(_) => {
            ExchangeError::new(Refusal::Internal, "the token could not be signed")
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A deny reason fit to return: control characters replaced, length bounded.
fn clean_reason(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.chars().count() > MAX_REASON_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cleaned_and_bounded() {
        assert_eq!(clean_reason("a\nb\u{7}"), "a b ");
        let long = "x".repeat(1000);
        assert_eq!(clean_reason(&long).chars().count(), MAX_REASON_CHARS + 1);
    }
}
