//! The exchange: verify → map → mint, over ports only. The core of claimex.
//!
//! [`Exchanger::exchange`] takes an [`ExchangeRequest`] (a credential of some
//! [`SubjectKind`] and an optional issuer id) and returns a signed token or a typed
//! [`ExchangeError`], always with the [`Audit`] record of the decision. It does no I/O and
//! draws no time or randomness itself: issuers come from the [`Registry`], the credential is
//! verified by the [`SubjectVerifier`] of its kind, the mapper is the entry's
//! [`ClaimsMapper`], the signature comes from a [`KeyStore`], and time and token ids from a
//! [`Clock`] and an [`IdSource`].

use std::sync::Arc;

use crate::audit::Audit;
use crate::error::{ExchangeError, Refusal};
use crate::mapper::{MapDecision, MapRequest, MapperError};
use crate::mint::{self, Stamp, TokenSettings};
use crate::registry::{Issuer, Lookup, Registry};
use crate::signer::{KeyStore, SignError};
use crate::subject::{Claimed, SubjectKind, SubjectPolicy, SubjectVerifier};

/// Seconds since the Unix epoch, as the core sees time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> u64;
}

/// Where the ids of minted tokens (`jti`) come from.
pub trait IdSource: Send + Sync {
    /// A fresh, unpredictable token id (base64url keeps it free of JSON escapes).
    fn token_id(&self) -> String;
}

/// One exchange to perform.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRequest<'a> {
    /// What kind of credential `credential` is.
    pub kind: SubjectKind,
    /// The credential, as presented.
    pub credential: &'a str,
    /// The issuer entry named by the caller, if any.
    pub issuer_id: Option<&'a str>,
}

/// The server-wide settings of the exchange.
#[derive(Debug, Clone)]
pub struct ExchangeSettings {
    /// claimex's own issuer URL, the `iss` of every token it mints.
    pub issuer_url: String,
    /// Lifetimes of minted tokens.
    pub token: TokenSettings,
}

/// A minted token.
#[derive(Debug, Clone)]
pub struct Exchanged {
    /// The signed JWT.
    pub token: String,
    /// Its `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The ports the exchange runs over.
pub struct Ports {
    /// The registered issuers.
    pub registry: Arc<Registry>,
    /// One verifier per subject kind accepted.
    pub subjects: Vec<Arc<dyn SubjectVerifier>>,
    /// The signing keys.
    pub signer: Arc<dyn KeyStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Token ids.
    pub ids: Arc<dyn IdSource>,
}

/// Longest deny reason passed on to the caller, in characters.
const MAX_REASON_CHARS: usize = 512;

/// Runs exchanges.
pub struct Exchanger {
    ports: Ports,
    settings: ExchangeSettings,
}

impl Exchanger {
    /// An exchanger over these ports.
    pub fn new(ports: Ports, settings: ExchangeSettings) -> Exchanger {
        Exchanger { ports, settings }
    }

    /// The settings.
    pub fn settings(&self) -> &ExchangeSettings {
        &self.settings
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.ports.registry
    }

    /// The key store.
    pub fn signer(&self) -> &Arc<dyn KeyStore> {
        &self.ports.signer
    }

    /// Exchanges the request's credential: verified against the entry the caller names, else
    /// the one its credential claims; mapped by that entry's mapper; signed.
    pub async fn exchange(
        &self,
        request: &ExchangeRequest<'_>,
    ) -> (Result<Exchanged, ExchangeError>, Audit) {
        let mut audit = Audit {
            subject_kind: Some(request.kind),
            issuer_id: request.issuer_id.map(str::to_owned),
            ..Audit::default()
        };
        let result = self.run(request, &mut audit).await;
        (result, audit)
    }

    async fn run(
        &self,
        request: &ExchangeRequest<'_>,
        audit: &mut Audit,
    ) -> Result<Exchanged, ExchangeError> {
        let verifier = self
            .ports
            .subjects
            .iter()
            .find(|v| v.kind() == request.kind)
            .ok_or_else(|| {
                ExchangeError::new(
                    Refusal::Malformed,
                    format!("claimex does not accept {} credentials", request.kind),
                )
            })?;
        let now = self.ports.clock.now();
        let mut chosen: Option<Arc<Issuer>> = None;
        let verified = {
            let mut choose = |claimed: Claimed<'_>| -> Result<SubjectPolicy, ExchangeError> {
                let issuer = self.choose_issuer(request, claimed)?;
                let policy = issuer.subject.clone();
                chosen = Some(issuer);
                Ok(policy)
            };
            let result = verifier.verify(request.credential, &mut choose, now).await;
            if let Some(issuer) = &chosen {
                audit.issuer_id = Some(issuer.id.clone());
                audit.mapper_sha256 = Some(issuer.mapper.sha256().to_owned());
            }
            result?
        };
        let issuer = chosen.ok_or_else(|| {
            ExchangeError::new(Refusal::Internal, "the verifier chose no issuer entry")
        })?;
        audit.inbound_iss = verified.iss;
        audit.inbound_sub = verified.sub;
        audit.inbound_jti = verified.jti;

        let outcome = issuer
            .mapper
            .map(&MapRequest {
                subject_kind: issuer.kind(),
                issuer_id: &issuer.id,
                issuer_url: issuer.subject.url().unwrap_or_default(),
                claims_json: &verified.claims_json,
                config_json: &issuer.mapper_config,
                explain: false,
            })
            .await;
        if !outcome.stderr.is_empty() {
            audit.mapper_stderr = Some(outcome.stderr);
        }
        let output = match outcome.result {
            Ok(MapDecision::Allow(json)) => json,
            Ok(MapDecision::Deny { code, reason }) => {
                audit.deny_code = Some(code);
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
                audit.detail = Some(e.to_string());
                // The guest's own error message is for the operator (audit line), not the caller.
                let description = match e {
                    MapperError::Failed(_) => {
                        format!("the mapper of issuer {:?} failed", issuer.id)
                    }
                    e => format!("the mapper of issuer {:?} failed: {e}", issuer.id),
                };
                return Err(ExchangeError::new(Refusal::MapperFailed, description));
            }
        };
        let checked = mint::check_output(&output, &issuer.output)?;
        audit.outbound_sub = Some(checked.sub.clone());
        audit.outbound_aud = checked.aud.clone();
        audit.tag_keys = checked
            .tags
            .as_ref()
            .map(|t| t.keys.clone())
            .unwrap_or_default();

        let lifetime = self.settings.token.lifetime(&issuer.output);
        let stamp = Stamp::new(
            &self.settings.issuer_url,
            now,
            lifetime,
            self.ports.ids.token_id(),
        );
        let key = self
            .ports
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

    /// The entry for a request: the one it names, else the one its credential claims; of
    /// the request's kind either way.
    fn choose_issuer(
        &self,
        request: &ExchangeRequest<'_>,
        claimed: Claimed<'_>,
    ) -> Result<Arc<Issuer>, ExchangeError> {
        let snapshot = self.ports.registry.snapshot();
        let issuer = match (request.issuer_id, claimed) {
            (Some(id), _) => snapshot.by_id(id).map_err(|_| {
                ExchangeError::new(
                    Refusal::UnknownIssuer,
                    format!("no issuer is registered with id {:?}", truncate(id, 64)),
                )
            })?,
            (None, Claimed::Issuer(url)) => {
                snapshot.by_url(url).map_err(|lookup| match lookup {
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
                })?
            }
            (None, Claimed::Unnamed(missing)) => {
                return Err(ExchangeError::new(
                    Refusal::Unverified,
                    format!("{missing}; name the issuer with ?issuerId="),
                ));
            }
        };
        if issuer.kind() != request.kind {
            return Err(ExchangeError::new(
                Refusal::UnknownIssuer,
                format!(
                    "issuer {:?} accepts {} credentials, not {}",
                    issuer.id,
                    issuer.kind(),
                    request.kind
                ),
            ));
        }
        Ok(issuer)
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
mod tests;
