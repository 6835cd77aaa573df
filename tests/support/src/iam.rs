//! An IAM acceptance checker: what AWS IAM and STS would say to a claimex token, written from
//! AWS's documentation (the rules with their numbers are collected in
//! `/work/shared/reference/aws-facts.md`; each rule below cites its AWS page). The emulator's
//! `AssumeRoleWithWebIdentity` accepts any token, so this is the test that a token would be
//! accepted by the real service, not a hope.
//!
//! [`Provider::discover`] reads the discovery document and the JWKS as IAM does;
//! [`Provider::check_token`] checks a token as `AssumeRoleWithWebIdentity` does; [`Trust`] is
//! a small trust-policy condition set (`StringEquals`/`StringLike` on `aws:RequestTag/*`,
//! `<provider>:aud`, `<provider>:sub`); [`Provider::assume`] runs both and returns the STS
//! error code IAM would answer with ([`StsError::code`]).
//!
//! What it does not model: certificate-chain checks of the JWKS host (loopback here), the
//! packed-size budget of tags (`PackedPolicyTooLarge`), role tags, session policies, and
//! condition operators beyond the two.

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::client::http;

/// The usual client id (audience) of an IAM OIDC provider for STS.
pub const STS_CLIENT_ID: &str = "sts.amazonaws.com";
/// The session-tags claim.
pub const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";

/// An STS refusal, as `AssumeRoleWithWebIdentity` would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsError {
    /// `InvalidIdentityToken`.
    InvalidIdentityToken(String),
    /// `ExpiredToken`.
    ExpiredToken(String),
    /// `IDPCommunicationError`: the discovery document or the JWKS cannot be read.
    IdpCommunicationError(String),
    /// `AccessDenied`: the trust policy does not admit the request.
    AccessDenied(String),
    /// `ValidationError`: a parameter breaks the API's constraints.
    ValidationError(String),
}

impl StsError {
    /// The error code STS answers with.
    pub fn code(&self) -> &'static str {
        match self {
            StsError::InvalidIdentityToken(_) => "InvalidIdentityToken",
            StsError::ExpiredToken(_) => "ExpiredToken",
            StsError::IdpCommunicationError(_) => "IDPCommunicationError",
            StsError::AccessDenied(_) => "AccessDenied",
            StsError::ValidationError(_) => "ValidationError",
        }
    }
}

fn invalid(text: impl Into<String>) -> StsError {
    StsError::InvalidIdentityToken(text.into())
}

/// JWS algorithms STS accepts. Source: IAM User Guide, "Create an OpenID Connect (OIDC)
/// identity provider in IAM" (id_roles_providers_create_oidc.html): RSA (RS256/384/512) and,
/// since 2024-11-20, ECDSA (ES256/384/512); no EdDSA, no HMAC, no `none`.
pub const ALGORITHMS: [&str; 6] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];

/// Most keys of each type IAM reads from a JWKS. Source: id_roles_providers_create_oidc.html
/// ("up to 100 RSA keys and 100 EC keys").
pub const MAX_KEYS_PER_TYPE: usize = 100;

/// Token length bounds, characters. Source: STS API Reference, AssumeRoleWithWebIdentity,
/// `WebIdentityToken` (Length Constraints: Minimum 4, Maximum 20000).
pub const TOKEN_CHARS: std::ops::RangeInclusive<usize> = 4..=20_000;

/// `sub` length bounds. Source: STS API Reference, AssumeRoleWithWebIdentity, response
/// element `SubjectFromWebIdentityToken` (Length Constraints: Minimum 6, Maximum 255).
pub const SUB_CHARS: std::ops::RangeInclusive<usize> = 6..=255;

/// Clock skew STS allows past `exp`, seconds. Source: aws-facts.md ("5 minutes of clock skew
/// allowed past exp"), from the IAM User Guide's OIDC federation pages.
pub const CLOCK_SKEW_SECS: u64 = 300;

/// Session-tag limits. Source: IAM User Guide, "Passing session tags in AWS STS"
/// (id_session-tags.html): at most 50 tags, transitive keys at most 50 and among the tags;
/// "Tagging rules" (id_tags.html): key 1–128, value 0–256 characters of
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, no `aws:` prefix, keys unique ignoring case.
const MAX_TAGS: usize = 50;
const TAG_KEY_CHARS: std::ops::RangeInclusive<usize> = 1..=128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// An IAM OIDC provider: its URL (the token's `iss` must equal it) and client ids.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The provider URL.
    pub url: String,
    /// The client ids (audiences).
    pub client_ids: Vec<String>,
    /// The keys read from the JWKS (after [`Provider::discover`]).
    pub jwks: Value,
}

/// A claim check's success: what the role session would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `SubjectFromWebIdentityToken`.
    pub sub: String,
    /// The session tags.
    pub tags: BTreeMap<String, String>,
    /// The transitive tag keys.
    pub transitive: Vec<String>,
    /// The token's audiences.
    pub aud: Vec<String>,
}

impl Provider {
    /// Reads `<url>/.well-known/openid-configuration` and the JWKS its `jwks_uri` names, as IAM
    /// does when the provider is used. Source: id_roles_providers_create_oidc.html (IAM
    /// fetches the discovery document from the provider URL and the keys from `jwks_uri`; the
    /// document's `issuer` must equal the provider URL).
    pub async fn discover(url: &str, client_ids: &[&str]) -> Result<Provider, StsError> {
        // Source: id_roles_providers_create_oidc.html: up to 100 client ids of ≤ 255 chars.
        if client_ids.is_empty()
            || client_ids.len() > 100
            || client_ids.iter().any(|c| c.is_empty() || c.len() > 255)
        {
            return Err(StsError::ValidationError(
                "1 to 100 client ids of 1-255 chars".into(),
            ));
        }
        let discovery = get(&format!("{url}/.well-known/openid-configuration")).await?;
        if discovery["issuer"] != url {
            return Err(invalid(format!(
                "the discovery document's issuer {} is not the provider URL {url}",
                discovery["issuer"]
            )));
        }
        let Some(jwks_uri) = discovery["jwks_uri"].as_str() else {
            return Err(StsError::IdpCommunicationError("no jwks_uri".into()));
        };
        let jwks = get(jwks_uri).await?;
        check_jwks(&jwks)?;
        Ok(Provider {
            url: url.to_owned(),
            client_ids: client_ids.iter().map(|c| (*c).to_owned()).collect(),
            jwks,
        })
    }

    /// The provider's condition-key prefix: its URL without the scheme
    /// (`token.actions.githubusercontent.com`). Source: IAM User Guide, "Available keys for
    /// AWS OIDC federation" (reference_policies_iam-condition-keys.html#condition-keys-wif).
    pub fn host(&self) -> &str {
        self.url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"))
            .unwrap_or(&self.url)
    }

    /// Checks `token` as `AssumeRoleWithWebIdentity` would at time `now` (seconds).
    pub fn check_token(&self, token: &str, now: u64) -> Result<Accepted, StsError> {
        // Source: API_AssumeRoleWithWebIdentity.html, WebIdentityToken: 4-20000 characters.
        if !TOKEN_CHARS.contains(&token.chars().count()) {
            return Err(StsError::ValidationError(format!(
                "WebIdentityToken must be 4 to 20000 characters, not {}",
                token.chars().count()
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let alg = format!("{:?}", header.alg);
        // Source: id_roles_providers_create_oidc.html (supported algorithms).
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(invalid(format!("algorithm {alg} is not supported")));
        }
        // Source: id_roles_providers_create_oidc.html: the key is chosen by `kid` among the
        // JWKS's keys.
        let kid = header.kid.ok_or_else(|| invalid("the token has no kid"))?;
        let jwk = self.jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .ok_or_else(|| invalid(format!("no key with kid {kid} in the JWKS")))?;
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(jwk.clone()).map_err(|e| invalid(e.to_string()))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| invalid(e.to_string()))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| invalid(format!("signature: {e}")))?
            .claims;
        // Source: id_roles_providers_create_oidc.html: `iss` equals the provider URL.
        if claims["iss"] != self.url.as_str() {
            return Err(invalid(format!(
                "iss {} is not {}",
                claims["iss"], self.url
            )));
        }
        // Source: id_roles_providers_create_oidc.html: `aud` must match a client id.
        let aud: Vec<String> = match &claims["aud"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if !aud.iter().any(|a| self.client_ids.contains(a)) {
            return Err(invalid(format!("Incorrect token audience: {aud:?}")));
        }
        // Source: aws-facts.md: `iat` present; 5 minutes of skew past `exp`.
        let exp = claims["exp"].as_u64().ok_or_else(|| invalid("no exp"))?;
        let iat = claims["iat"].as_u64().ok_or_else(|| invalid("no iat"))?;
        if now > exp + CLOCK_SKEW_SECS {
            return Err(StsError::ExpiredToken(format!(
                "expired at {exp}, now {now}"
            )));
        }
        if iat > now + CLOCK_SKEW_SECS {
            return Err(invalid(format!("issued in the future ({iat} > {now})")));
        }
        // Source: API_AssumeRoleWithWebIdentity.html, SubjectFromWebIdentityToken: 6-255.
        let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
        if !SUB_CHARS.contains(&sub.chars().count()) {
            return Err(invalid(format!(
                "sub must be 6 to 255 characters, not {}",
                sub.chars().count()
            )));
        }
        let (tags, transitive) = match claims.get(TAGS_CLAIM) {
            None => (BTreeMap::new(), Vec::new()),
            Some(value) => check_tags(value)?,
        };
        Ok(Accepted {
            sub,
            tags,
            transitive,
            aud,
        })
    }

    /// `AssumeRoleWithWebIdentity` for a role trusting this provider with `trust`: the token
    /// checks, then the trust policy.
    pub fn assume(&self, token: &str, trust: &Trust, now: u64) -> Result<Accepted, StsError> {
        let accepted = self.check_token(token, now)?;
        trust.evaluate(self.host(), &accepted)?;
        Ok(accepted)
    }
}

async fn get(url: &str) -> Result<Value, StsError> {
    let response = http()
        .get(url)
        .send()
        .await
        .map_err(|e| StsError::IdpCommunicationError(format!("GET {url}: {e}")))?;
    if response.status() != 200 {
        return Err(StsError::IdpCommunicationError(format!(
            "GET {url}: {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| StsError::IdpCommunicationError(format!("GET {url}: not JSON: {e}")))
}

/// The JWKS rules: at most 100 RSA and 100 EC keys, no other key types counted as usable, and
/// every key with a `kid`. Source: id_roles_providers_create_oidc.html.
pub fn check_jwks(jwks: &Value) -> Result<(), StsError> {
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| StsError::IdpCommunicationError("the JWKS has no keys array".into()))?;
    let count = |kty: &str| keys.iter().filter(|k| k["kty"] == kty).count();
    for kty in ["RSA", "EC"] {
        if count(kty) > MAX_KEYS_PER_TYPE {
            return Err(invalid(format!(
                "more than {MAX_KEYS_PER_TYPE} {kty} keys in the JWKS"
            )));
        }
    }
    if keys.iter().any(|k| k["kty"] != "RSA" && k["kty"] != "EC") {
        return Err(invalid("the JWKS has a key that is neither RSA nor EC"));
    }
    Ok(())
}

/// Whether `c` may appear in a tag key or value: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Source:
/// id_tags.html ("Tagging rules"). `char::is_alphanumeric` is Unicode L + N; `\p{Z}` is the
/// separator category (space, no-break space, ...), approximated by Unicode whitespace minus
/// the control characters.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// The tags claim's rules. Source: id_session-tags.html ("Passing session tags using
/// AssumeRoleWithWebIdentity": `principal_tags` maps each key to an array of one string,
/// `transitive_tag_keys` ⊆ the tag keys, ≤ 50 each) and id_tags.html (lengths, charset, no
/// `aws:` prefix, keys unique ignoring case).
pub fn check_tags(value: &Value) -> Result<(BTreeMap<String, String>, Vec<String>), StsError> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the tags claim is not an object"))?;
    let principal = object
        .get("principal_tags")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the tags claim has no principal_tags object"))?;
    if principal.len() > MAX_TAGS {
        return Err(invalid(format!(
            "{} session tags, at most {MAX_TAGS}",
            principal.len()
        )));
    }
    let mut tags = BTreeMap::new();
    let mut lower = HashSet::new();
    for (key, values) in principal {
        if !TAG_KEY_CHARS.contains(&key.chars().count()) || !key.chars().all(tag_char) {
            return Err(invalid(format!("tag key {key:?} breaks the tagging rules")));
        }
        if key.to_lowercase().starts_with("aws:") {
            return Err(invalid(format!("tag key {key:?} starts with aws:")));
        }
        if !lower.insert(key.to_lowercase()) {
            return Err(invalid(format!(
                "tag key {key:?} is given twice, ignoring case"
            )));
        }
        let [Value::String(v)] = values.as_array().map(Vec::as_slice).unwrap_or_default() else {
            return Err(invalid(format!(
                "tag {key:?} must be an array of exactly one string"
            )));
        };
        if v.chars().count() > MAX_TAG_VALUE_CHARS || !v.chars().all(tag_char) {
            return Err(invalid(format!(
                "tag {key:?}'s value breaks the tagging rules"
            )));
        }
        if v.to_lowercase().starts_with("aws:") {
            return Err(invalid(format!("tag {key:?}'s value starts with aws:")));
        }
        tags.insert(key.clone(), v.clone());
    }
    let transitive: Vec<String> = match object.get("transitive_tag_keys") {
        None => Vec::new(),
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("a transitive tag key is not a string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("transitive_tag_keys is not an array")),
    };
    if transitive.len() > MAX_TAGS {
        return Err(invalid("more than 50 transitive tag keys"));
    }
    if let Some(stray) = transitive.iter().find(|k| !tags.contains_key(*k)) {
        return Err(invalid(format!(
            "transitive tag key {stray:?} is not a session tag"
        )));
    }
    Ok((tags, transitive))
}

/// A condition operator. Source: IAM User Guide, "IAM JSON policy elements: Condition
/// operators" (reference_policies_elements_condition_operators.html): `StringEquals` exact
/// and case-sensitive; `StringLike` with `*` (any run) and `?` (one character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `StringEquals`.
    StringEquals,
    /// `StringLike`.
    StringLike,
}

/// One condition: the operator, the key (`aws:RequestTag/<k>`, `<host>:aud`, `<host>:sub`)
/// and the values (any may match).
#[derive(Debug, Clone)]
pub struct Condition {
    /// The operator.
    pub operator: Operator,
    /// The condition key.
    pub key: String,
    /// The values, any of which may match.
    pub values: Vec<String>,
}

/// A role's trust policy, reduced to what claimex's tokens meet: one `Allow` statement for
/// `sts:AssumeRoleWithWebIdentity` (and `sts:TagSession` when `tag_session`) by the provider,
/// with conditions that must all hold.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Whether `sts:TagSession` is allowed too. Source: id_session-tags.html ("the role's
    /// trust policy must allow sts:TagSession" when the token carries tags).
    pub tag_session: bool,
    /// The conditions (AND).
    pub conditions: Vec<Condition>,
}

impl Trust {
    /// A trust policy with `sts:TagSession` and these conditions.
    pub fn with(conditions: Vec<Condition>) -> Trust {
        Trust {
            tag_session: true,
            conditions,
        }
    }

    /// Evaluates the policy for a token of the provider at `host`. A condition whose key the
    /// request lacks fails (no `...IfExists`). Source: reference_policies_elements_condition_operators.html
    /// and reference_policies_iam-condition-keys.html (`aws:RequestTag/${TagKey}`;
    /// `<host>:aud`, `<host>:sub` for OIDC providers).
    pub fn evaluate(&self, host: &str, accepted: &Accepted) -> Result<(), StsError> {
        if !accepted.tags.is_empty() && !self.tag_session {
            return Err(StsError::AccessDenied(
                "the trust policy does not allow sts:TagSession".into(),
            ));
        }
        for condition in &self.conditions {
            let present: Vec<&str> =
                if let Some(tag) = condition.key.strip_prefix("aws:RequestTag/") {
                    accepted
                        .tags
                        .get(tag)
                        .map(String::as_str)
                        .into_iter()
                        .collect()
                } else if condition.key == format!("{host}:aud") {
                    accepted.aud.iter().map(String::as_str).collect()
                } else if condition.key == format!("{host}:sub") {
                    vec![accepted.sub.as_str()]
                } else {
                    Vec::new()
                };
            let holds = present.iter().any(|have| {
                condition
                    .values
                    .iter()
                    .any(|want| match condition.operator {
                        Operator::StringEquals => have == want,
                        Operator::StringLike => like(want, have),
                    })
            });
            if !holds {
                return Err(StsError::AccessDenied(format!(
                    "condition {:?} {} {:?} does not hold for {present:?}",
                    condition.operator, condition.key, condition.values
                )));
            }
        }
        Ok(())
    }
}

/// `StringLike`: `*` any run of characters, `?` one, case-sensitive — the matcher claimex
/// applies to ARN patterns (`allowed_roles`), which follows the same IAM rule.
fn like(pattern: &str, text: &str) -> bool {
    claimex::credentials::glob_match(pattern, text)
}

/// A condition, briefly.
pub fn condition(operator: Operator, key: &str, values: &[&str]) -> Condition {
    Condition {
        operator,
        key: key.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

/// The payload of a compact JWS, unverified (for tests that build tokens to break a rule).
pub fn payload(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TestIssuer, now};
    use serde_json::json;

    /// A provider for the test issuer (RS256, loopback) with client id `sts.amazonaws.com`,
    /// and claims that pass every rule.
    async fn setup() -> (TestIssuer, Provider, Value) {
        let issuer = TestIssuer::start().unwrap();
        let provider = Provider::discover(issuer.url(), &[STS_CLIENT_ID])
            .await
            .unwrap();
        let mut claims = issuer.github_claims(STS_CLIENT_ID, now());
        claims[TAGS_CLAIM] = json!({
            "principal_tags": {"repository": ["octo-org/octo-repo"], "ref": ["refs/heads/main"]},
            "transitive_tag_keys": ["repository"],
        });
        (issuer, provider, claims)
    }

    fn code(r: Result<Accepted, StsError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_rule_refuses_a_token_that_breaks_it() {
        let (issuer, provider, good) = setup().await;
        let t = now();
        let check = |claims: &Value| code(provider.check_token(&issuer.mint(claims), t));
        assert_eq!(check(&good), "ok");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = good.clone();
            f(&mut c);
            c
        };
        // aud among the client ids.
        assert_eq!(
            check(&with(&|c| c["aud"] = json!("other"))),
            "InvalidIdentityToken"
        );
        assert_eq!(
            check(&with(&|c| c["aud"] = json!(["x", STS_CLIENT_ID]))),
            "ok"
        );
        // iss equals the provider URL.
        assert_eq!(
            check(&with(&|c| c["iss"] = json!("https://elsewhere"))),
            "InvalidIdentityToken"
        );
        // exp with 5 minutes of skew; iat present and not in the future.
        assert_eq!(check(&with(&|c| c["exp"] = json!(t - 200))), "ok");
        assert_eq!(check(&with(&|c| c["exp"] = json!(t - 301))), "ExpiredToken");
        assert_eq!(
            check(&with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            })),
            "InvalidIdentityToken"
        );
        assert_eq!(
            check(&with(&|c| c["iat"] = json!(t + 400))),
            "InvalidIdentityToken"
        );
        // sub 6-255.
        assert_eq!(
            check(&with(&|c| c["sub"] = json!("abcde"))),
            "InvalidIdentityToken"
        );
        assert_eq!(check(&with(&|c| c["sub"] = json!("abcdef"))), "ok");
        assert_eq!(
            check(&with(&|c| c["sub"] = json!("s".repeat(256)))),
            "InvalidIdentityToken"
        );
        // token length ≤ 20000.
        let mut big = good.clone();
        crate::issuer::pad_claims(&mut big, 16_000);
        assert_eq!(check(&big), "ValidationError");
        assert_eq!(code(provider.check_token("a.b", t)), "ValidationError");
        // tags claim rules.
        for (tags, why) in [
            (json!({"principal_tags": {"k": ["a", "b"]}}), "two values"),
            (json!({"principal_tags": {"k": "a"}}), "not an array"),
            (json!({"principal_tags": {"aws:k": ["a"]}}), "aws: key"),
            (json!({"principal_tags": {"k": ["aws:a"]}}), "aws: value"),
            (
                json!({"principal_tags": {"Key": ["a"], "key": ["b"]}}),
                "case collision",
            ),
            (json!({"principal_tags": {"k": ["a;b"]}}), "bad character"),
            (
                json!({"principal_tags": {"k": ["v".repeat(257)]}}),
                "long value",
            ),
            (
                json!({"principal_tags": {"k".repeat(129): ["v"]}}),
                "long key",
            ),
            (json!({"principal_tags": {"": ["v"]}}), "empty key"),
            (
                json!({"principal_tags": {"k": ["v"]}, "transitive_tag_keys": ["other"]}),
                "transitive not a tag",
            ),
            (json!({"transitive_tag_keys": []}), "no principal_tags"),
        ] {
            assert_eq!(
                check(&with(&|c| c[TAGS_CLAIM] = tags.clone())),
                "InvalidIdentityToken",
                "{why}"
            );
        }
        let many: serde_json::Map<String, Value> =
            (0..51).map(|i| (format!("k{i}"), json!(["v"]))).collect();
        assert_eq!(
            check(&with(
                &|c| c[TAGS_CLAIM] = json!({"principal_tags": many.clone()})
            )),
            "InvalidIdentityToken"
        );
        assert_eq!(
            check(&with(
                &|c| c[TAGS_CLAIM] = json!({"principal_tags": {"k": [""], "é x": ["ü 1"]}})
            )),
            "ok"
        );
        // signature by kid; algorithm.
        let foreign = issuer.mint_with_header(json!({"alg": "RS256", "kid": "nope"}), &good);
        assert_eq!(
            code(provider.check_token(&foreign, t)),
            "InvalidIdentityToken"
        );
        let good_token = issuer.mint(&good);
        let (head, _) = good_token.rsplit_once('.').unwrap();
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]));
        assert_eq!(
            code(provider.check_token(&forged, t)),
            "InvalidIdentityToken"
        );
        use crate::hostile;
        for token in [
            hostile::alg_none(&good),
            hostile::hs256_keyed_with_public_key(&issuer, &good),
            hostile::foreign_key_with_kid(&issuer.kid(), &good),
            hostile::mislabelled_alg(&issuer, "ES256", &good),
        ] {
            assert_eq!(
                code(provider.check_token(&token, t)),
                "InvalidIdentityToken"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discovery_and_jwks_rules() {
        let issuer = TestIssuer::start().unwrap();
        issuer.set_discovery_issuer(Some("https://impostor.example"));
        let e = Provider::discover(issuer.url(), &[STS_CLIENT_ID])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidIdentityToken");
        issuer.set_discovery_issuer(None);
        issuer.set_up(false);
        let e = Provider::discover(issuer.url(), &[STS_CLIENT_ID])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "IDPCommunicationError");
        issuer.set_up(true);
        assert!(Provider::discover(issuer.url(), &[]).await.is_err());
        let rsa =
            |i: usize| json!({"kty": "RSA", "kid": format!("r{i}"), "n": "AQAB", "e": "AQAB"});
        let ec = |i: usize| json!({"kty": "EC", "kid": format!("e{i}"), "crv": "P-256"});
        let keys = |r: usize, e: usize| json!({"keys": (0..r).map(rsa).chain((0..e).map(ec)).collect::<Vec<_>>()});
        assert!(check_jwks(&keys(100, 100)).is_ok());
        assert_eq!(
            check_jwks(&keys(101, 0)).unwrap_err().code(),
            "InvalidIdentityToken"
        );
        assert_eq!(
            check_jwks(&keys(0, 101)).unwrap_err().code(),
            "InvalidIdentityToken"
        );
        assert!(check_jwks(&json!({"keys": [{"kty": "OKP", "crv": "Ed25519"}]})).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trust_policy_conditions() {
        let (issuer, provider, good) = setup().await;
        let token = issuer.mint(&good);
        let host = provider.host().to_owned();
        let t = now();
        let run = |trust: Trust| code(provider.assume(&token, &trust, t));
        let aud = format!("{host}:aud");
        let sub = format!("{host}:sub");
        assert_eq!(
            run(Trust::with(vec![
                condition(Operator::StringEquals, &aud, &[STS_CLIENT_ID]),
                condition(Operator::StringLike, &sub, &["repo:octo-org/*"]),
                condition(
                    Operator::StringEquals,
                    "aws:RequestTag/repository",
                    &["octo-org/octo-repo"]
                ),
            ])),
            "ok"
        );
        assert_eq!(
            run(Trust::with(vec![condition(
                Operator::StringEquals,
                &sub,
                &["repo:octo-org/*"]
            )])),
            "AccessDenied"
        );
        assert_eq!(
            run(Trust::with(vec![condition(
                Operator::StringLike,
                &sub,
                &["repo:other/*", "repo:octo-org/octo-r?po:*"]
            )])),
            "ok"
        );
        assert_eq!(
            run(Trust::with(vec![condition(
                Operator::StringEquals,
                "aws:RequestTag/repository",
                &["octo-org/other"]
            )])),
            "AccessDenied"
        );
        assert_eq!(
            run(Trust::with(vec![condition(
                Operator::StringEquals,
                "aws:RequestTag/missing",
                &["x"]
            )])),
            "AccessDenied"
        );
        assert_eq!(
            run(Trust::with(vec![condition(
                Operator::StringEquals,
                &aud,
                &["other"]
            )])),
            "AccessDenied"
        );
        assert_eq!(
            run(Trust {
                tag_session: false,
                conditions: vec![]
            }),
            "AccessDenied"
        );
        assert!(like("a*c", "abbc") && !like("a?c", "abbc") && like("*", ""));
    }
}
