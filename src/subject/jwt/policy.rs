//! What an issuer entry of kind `oidc` says, checked once when the entry is loaded, and the
//! server-wide limits on inbound tokens: plain data for the pure checks of this folder.

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::settings::{SettingError, range};
use crate::subject::{PolicyError, check_names};

/// An OIDC issuer as the checks see it: who it is and what its tokens must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcPolicy {
    /// The registered issuer id.
    pub id: String,
    /// The issuer URL, exactly as registered: the token's `iss` and the discovery
    /// document's `issuer` must equal it.
    pub url: String,
    /// Accepted inbound audiences (non-empty): the token's `aud` must contain one.
    pub audiences: Vec<String>,
    /// Accepted inbound algorithms (non-empty, asymmetric).
    pub algorithms: Vec<Algorithm>,
}

/// The `oidc` fields of an issuer entry, as the operator writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    /// The issuer URL.
    pub issuer: String,
    /// Accepted inbound audiences. Required, non-empty.
    pub audiences: Vec<String>,
    /// Accepted inbound signature algorithms (asymmetric only). Default: `["RS256"]`.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
}

/// The names of [`OidcSpec`]'s fields, for the registry to tell them from the common ones.
pub const SPEC_FIELDS: [&str; 3] = ["issuer", "audiences", "algorithms"];

impl OidcSpec {
    /// Checks the fields and yields the policy of issuer `id`.
    pub fn into_policy(
        self,
        id: &str,
        allow_http_loopback: bool,
    ) -> Result<OidcPolicy, PolicyError> {
        check_issuer_url(&self.issuer, allow_http_loopback)
            .map_err(|reason| PolicyError::new("issuer", reason))?;
        check_names("audiences", &self.audiences)?;
        let algorithms = match &self.algorithms {
            None => vec![Algorithm::RS256],
            Some(names) if names.is_empty() => {
                return Err(PolicyError::new(
                    "algorithms",
                    "algorithms must not be empty",
                ));
            }
            Some(names) => names
                .iter()
                .map(|n| parse_algorithm(n))
                .collect::<Result<_, _>>()
                .map_err(|reason| PolicyError::new("algorithms", reason))?,
        };
        Ok(OidcPolicy {
            id: id.to_owned(),
            url: self.issuer,
            audiences: self.audiences,
            algorithms,
        })
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" | "HS384" | "HS512" => {
            return Err(format!(
                "algorithm {name} is symmetric: issuers must sign with a public-key algorithm"
            ));
        }
        "none" => return Err("algorithm none is never accepted".into()),
        other => return Err(format!("unknown algorithm {other:?}")),
    };
    Ok(alg)
}

/// Checks an issuer URL: `https://` with a host, no query or fragment, no user info;
/// `http://` only for loopback hosts and only when allowed.
pub fn check_issuer_url(raw: &str, allow_http_loopback: bool) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("issuer {raw:?} is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("issuer {raw:?} must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("issuer {raw:?} must not contain credentials"));
    }
    let host = url
        .host()
        .ok_or_else(|| format!("issuer {raw:?} has no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http_loopback && is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "issuer {raw:?} uses http: issuers must use https (plain http is accepted only for \
             loopback hosts with the top-level `allow_http_loopback = true`)"
        )),
        other => Err(format!("issuer {raw:?} has scheme {other:?}: use https")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Limits applied to every inbound token: the `[verify]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyPolicy {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (at most 300).
    pub leeway_secs: u64,
    /// Largest token accepted, bytes.
    pub max_token_bytes: usize,
    /// Oldest token accepted, measured from `iat`, seconds.
    pub max_token_age_secs: u64,
}

impl Default for VerifyPolicy {
    fn default() -> VerifyPolicy {
        VerifyPolicy {
            leeway_secs: 60,
            max_token_bytes: 16 * 1024,
            max_token_age_secs: 3600,
        }
    }
}

impl VerifyPolicy {
    /// Checks the ranges, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("leeway_secs", self.leeway_secs, 0, 300)?;
        range(
            "max_token_bytes",
            self.max_token_bytes as u64,
            256,
            1024 * 1024,
        )?;
        range("max_token_age_secs", self.max_token_age_secs, 60, 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the refusal named `jwks.allow_http_loopback`, a key that does not exist.
    #[test]
    fn the_http_refusal_names_the_real_key() {
        let reason = check_issuer_url("http://ci.example", true).unwrap_err();
        assert!(
            reason.contains("top-level `allow_http_loopback = true`"),
            "{reason}"
        );
        assert!(!reason.contains("jwks."), "{reason}");
        assert!(check_issuer_url("http://127.0.0.1:9000", true).is_ok());
        assert!(check_issuer_url("http://127.0.0.1:9000", false).is_err());
    }
}
