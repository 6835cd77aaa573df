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
use crate::error::{ExchangeError, ReasonCode, Refusal, shown};
use crate::mapper::shadow::{Decided, ShadowJob, ShadowSink};
use crate::mapper::{MapDecision, MapperError};
use crate::mint::{self, CheckedClaims, OutputPolicy, Stamp, TokenSettings};
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
    /// The one audience the caller asks the token for (`POST /token`'s `audience`), if any:
    /// it must be among the entry's output audiences and, when the mapper sets `aud`, among
    /// the mapper's; the token then carries it alone. `None` (`/exchange`): the mapper's
    /// `aud` as written, or the default.
    pub audience: Option<&'a str>,
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
    /// Its `iat`, seconds since the Unix epoch.
    pub issued_at: u64,
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

/// Longest caller-given issuer id repeated in an answer or an audit line, in characters
/// (a registered id has at most 64).
const MAX_ID_CHARS: usize = 64;

/// Longest deny reason passed on to the caller, in characters.
const MAX_REASON_CHARS: usize = 512;

/// Runs exchanges.
pub struct Exchanger {
    ports: Ports,
    settings: ExchangeSettings,
    shadow: Option<Arc<dyn ShadowSink>>,
}

impl Exchanger {
    /// An exchanger over these ports.
    pub fn new(ports: Ports, settings: ExchangeSettings) -> Exchanger {
        Exchanger {
            ports,
            settings,
            shadow: None,
        }
    }

    /// Hands every live decision of an entry with a shadow mapper to `sink`, to be compared
    /// off the response path.
    pub fn with_shadow(mut self, sink: Arc<dyn ShadowSink>) -> Exchanger {
        self.shadow = Some(sink);
        self
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

    /// Now, by the exchange's clock (seconds since the Unix epoch).
    pub fn now(&self) -> u64 {
        self.ports.clock.now()
    }

    /// Exchanges the request's credential: verified against the entry the caller names, else
    /// the one its credential claims; mapped by that entry's mapper; signed.
    pub async fn exchange(
        &self,
        request: &ExchangeRequest<'_>,
    ) -> (Result<Exchanged, ExchangeError>, Audit) {
        let mut audit = Audit {
            subject_kind: Some(request.kind),
            // Caller-chosen: cut as the refusal cuts it, so a long id is not a long line.
            issuer_id: request.issuer_id.map(|id| truncate(id, MAX_ID_CHARS)),
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
                ExchangeError::coded(
                    ReasonCode::UnsupportedSubjectKind,
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
                audit.issuer_resolved = true;
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
        if let Some(audience) = request.audience
            && !issuer.output.audiences.iter().any(|a| a == audience)
        {
            return Err(ExchangeError::coded(
                ReasonCode::AudienceNotAllowed,
                format!(
                    "issuer {:?} may not mint for the audience {} (allowed: {})",
                    issuer.id,
                    shown(audience, MAX_ID_CHARS * 4),
                    issuer.output.audiences.join(", ")
                ),
            ));
        }

        let outcome = issuer
            .mapper
            .map(&issuer.map_request(&verified.claims_json))
            .await;
        if !outcome.stderr.is_empty() {
            audit.mapper_stderr = Some(outcome.stderr);
        }
        let mapped = decide(&issuer.id, &issuer.output, outcome.result, audit);
        if let (Some(sink), Some(_)) = (&self.shadow, &issuer.shadow) {
            sink.offer(ShadowJob {
                live: Decided::of(&mapped, audit.detail.as_deref()),
                issuer: issuer.clone(),
                claims_json: verified.claims_json,
                inbound: [
                    audit.inbound_iss.clone(),
                    audit.inbound_sub.clone(),
                    audit.inbound_jti.clone(),
                ],
            });
        }
        let (_, mut checked) = mapped?;
        if let Some(audience) = request.audience {
            checked.narrow_audience(audience)?;
        }
        // Moved, not copied: the token is built from the checked members' text alone.
        audit.outbound_sub = Some(std::mem::take(&mut checked.sub));
        audit.outbound_aud = std::mem::take(&mut checked.aud);
        audit.tag_keys = checked.tags.take().map(|t| t.keys).unwrap_or_default();

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
            issued_at: stamp.iat,
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
                ExchangeError::coded(
                    ReasonCode::UnknownIssuer,
                    format!(
                        "no issuer is registered with id {}",
                        shown(id, MAX_ID_CHARS)
                    ),
                )
            })?,
            (None, Claimed::Issuer(url)) => {
                snapshot.by_url(url).map_err(|lookup| match lookup {
                    Lookup::Ambiguous(ids) => ExchangeError::coded(
                        ReasonCode::AmbiguousIssuer,
                        format!(
                            "several issuers ({}) are registered for this token's iss; name one with ?issuerId=",
                            ids.join(", ")
                        ),
                    ),
                    _ => ExchangeError::coded(
                        ReasonCode::UnregisteredIssuer,
                        "no issuer is registered for this token's iss",
                    ),
                })?
            }
            (None, Claimed::OnlyOfKind) => {
                snapshot
                    .only_of_kind(request.kind)
                    .map_err(|lookup| match lookup {
                        Lookup::Ambiguous(ids) => ExchangeError::coded(
                            ReasonCode::AmbiguousIssuer,
                            format!(
                                "several {} issuer entries are registered ({}): name one with issuer_id (or ?issuerId=)",
                                request.kind,
                                ids.join(", ")
                            ),
                        ),
                        _ => ExchangeError::coded(
                            ReasonCode::UnknownIssuer,
                            format!("no {} issuer entry is registered", request.kind),
                        ),
                    })?
            }
            (None, Claimed::Unnamed(missing)) => {
                return Err(ExchangeError::coded(
                    ReasonCode::MissingClaim,
                    format!("{missing}; name the issuer with ?issuerId="),
                ));
            }
        };
        if issuer.kind() != request.kind {
            return Err(ExchangeError::coded(
                ReasonCode::IssuerKindMismatch,
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

/// What a mapper's answer means for the caller: the output as the mapper wrote it with its
/// checked claims, or the refusal (a denial with the mapper's code, a mapper failure, an
/// output that cannot be signed). Records the deny code or the failure's detail in `audit`.
/// The exchange, the shadow runner and `claimex mapper replay` all judge answers here.
pub fn decide(
    issuer_id: &str,
    output: &OutputPolicy,
    result: Result<MapDecision, MapperError>,
    audit: &mut Audit,
) -> Result<(String, CheckedClaims), ExchangeError> {
    match result {
        Ok(MapDecision::Allow(json)) => {
            let checked = mint::check_output(&json, output)?;
            Ok((json, checked))
        }
        Ok(MapDecision::Deny { code, reason }) => {
            audit.deny_code = Some(code.clone());
            Err(ExchangeError::denied(
                code,
                format!(
                    "the mapper of issuer {issuer_id:?} denied the exchange: {}",
                    clean_reason(&reason)
                ),
            ))
        }
        Err(e) => {
            audit.detail = Some(e.to_string());
            // The guest's own error message is for the operator (audit line), not the caller.
            let description = match e {
                MapperError::Failed(_) => format!("the mapper of issuer {issuer_id:?} failed"),
                e => format!("the mapper of issuer {issuer_id:?} failed: {e}"),
            };
            Err(ExchangeError::coded(ReasonCode::MapperFailed, description))
        }
    }
}

fn sign_error(e: SignError, audit: &mut Audit) -> ExchangeError {
    audit.detail = Some(e.to_string());
    match e {
        SignError::Unavailable(_) => ExchangeError::coded(
            ReasonCode::SigningUnavailable,
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
