//! The orchestrator with fakes at every port: a fixed clock and id source, an in-memory
//! registry, issuer keys that count their fetches, a mapper that answers what it is told, and
//! a signer that fails on demand. The real OIDC verifier runs in between.

use std::sync::Mutex;

use async_trait::async_trait;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;
use crate::mapper::{
    ClaimsMapper, ConfigError, LoadError, MapOutcome, MapRequest, MapperError, MapperLoader,
};
use crate::registry::{IssuerRules, IssuerSource, IssuerSpec, RawEntry, SourceError};
use crate::signer::{PublicJwk, SigningAlg, SigningKey};
use crate::subject::jwt::{IssuerKeys, JwtVerifier, KeySet, KeysError, OidcPolicy, VerifyPolicy};

const NOW: u64 = 1_800_000_000;
const URL: &str = "https://ci.example";

struct Clock0;
impl Clock for Clock0 {
    fn now(&self) -> u64 {
        NOW
    }
}

struct Ids;
impl IdSource for Ids {
    fn token_id(&self) -> String {
        "jti-1".into()
    }
}

/// An issuer's signing key with its JWK.
struct IssuerKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl IssuerKey {
    fn new(kid: &str) -> IssuerKey {
        IssuerKey {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    }

    fn mint(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn claims() -> Value {
    json!({"iss": URL, "aud": "claimex", "sub": "repo:a/b", "jti": "in-1",
           "iat": NOW - 10, "exp": NOW + 300})
}

/// Serves the first JWKS until a refetch is asked for, then the second.
struct Keys {
    before: Vec<Value>,
    after: Vec<Value>,
    calls: Mutex<Vec<Option<String>>>,
    down: bool,
}

#[async_trait]
impl IssuerKeys for Keys {
    async fn keys(
        &self,
        _: &OidcPolicy,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysError> {
        self.calls
            .lock()
            .unwrap()
            .push(unknown_kid.map(str::to_owned));
        if self.down {
            return Err(KeysError::Unavailable {
                reason: "the issuer is down".into(),
                retry_after: std::time::Duration::from_secs(7),
            });
        }
        let keys = if unknown_kid.is_some() {
            &self.after
        } else {
            &self.before
        };
        let jwks = json!({"keys": keys}).to_string();
        Ok(Arc::new(KeySet::from_jwks(jwks.as_bytes()).unwrap()))
    }
}

/// What the fake mapper was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: SubjectKind,
    claims_json: String,
    config_json: String,
    explain: bool,
}

/// Answers every call with the decision it was given, and remembers the last request.
struct Mapper {
    answer: Result<MapDecision, MapperError>,
    seen: Mutex<Option<Seen>>,
}

#[async_trait]
impl ClaimsMapper for Mapper {
    fn sha256(&self) -> &str {
        "feed"
    }
    async fn validate_config(&self, _: &str) -> Result<(), ConfigError> {
        Ok(())
    }
    async fn map(&self, request: &MapRequest<'_>) -> MapOutcome {
        *self.seen.lock().unwrap() = Some(Seen {
            kind: request.subject_kind,
            claims_json: request.claims_json.to_owned(),
            config_json: request.config_json.to_owned(),
            explain: request.explain,
        });
        MapOutcome {
            result: self.answer.clone(),
            checks: Vec::new(),
            stderr: "guest said hi".into(),
        }
    }
}

struct Loader(Arc<Mapper>);
impl MapperLoader for Loader {
    fn load(
        &self,
        _: &std::path::Path,
        _: Option<&str>,
    ) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        Ok(self.0.clone())
    }
}

struct Entries(Vec<(&'static str, Value)>);
#[async_trait]
impl IssuerSource for Entries {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn load(&self) -> Result<Vec<RawEntry>, SourceError> {
        Ok(self
            .0
            .iter()
            .map(|(id, value)| RawEntry {
                id: (*id).into(),
                origin: (*id).into(),
                spec: IssuerSpec::from_value(value.clone()),
            })
            .collect())
    }
}

/// Signs with a fixed signature, or fails as told.
struct Signer {
    fail: Option<fn() -> SignError>,
    on_key: bool,
}

#[async_trait]
impl SigningKey for Signer {
    fn alg(&self) -> SigningAlg {
        SigningAlg::Es256
    }
    fn kid(&self) -> &str {
        "claimex-key"
    }
    async fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.fail {
            Some(error) if !self.on_key => Err(error()),
            _ => Ok(vec![7; 64]),
        }
    }
}

struct Store(Arc<Signer>);
impl KeyStore for Store {
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError> {
        match self.0.fail {
            Some(error) if self.0.on_key => Err(error()),
            _ => Ok(self.0.clone()),
        }
    }
    fn published(&self) -> Vec<PublicJwk> {
        Vec::new()
    }
}

struct Setup {
    keys: Arc<Keys>,
    mapper: Arc<Mapper>,
    signer: Signer,
    entries: Vec<(&'static str, Value)>,
}

fn entry(url: &str) -> Value {
    json!({"issuer": url, "audiences": ["claimex"], "algorithms": ["ES256"],
           "mapper": "m.wasm", "mapper_config": {"team": "a"}})
}

impl Setup {
    fn new(key: &IssuerKey) -> Setup {
        Setup {
            keys: Arc::new(Keys {
                before: vec![key.jwk()],
                after: vec![key.jwk()],
                calls: Mutex::new(Vec::new()),
                down: false,
            }),
            mapper: Arc::new(Mapper {
                answer: Ok(MapDecision::Allow(
                    json!({"sub": "repo:a/b", "https://aws.amazon.com/tags":
                           {"principal_tags": {"repo": ["a/b"]}}})
                    .to_string(),
                )),
                seen: Mutex::new(None),
            }),
            signer: Signer {
                fail: None,
                on_key: false,
            },
            entries: vec![("ci", entry(URL))],
        }
    }

    async fn exchanger(self) -> (Exchanger, Arc<Keys>, Arc<Mapper>) {
        let registry = Arc::new(Registry::new(
            Box::new(Entries(self.entries)),
            IssuerRules {
                mapper_dir: "/m".into(),
                allow_http_loopback: false,
            },
            Arc::new(Loader(self.mapper.clone())),
        ));
        registry.refresh().await.unwrap();
        let ports = Ports {
            registry,
            subjects: vec![Arc::new(JwtVerifier::new(
                self.keys.clone(),
                VerifyPolicy::default(),
            ))],
            signer: Arc::new(Store(Arc::new(self.signer))),
            clock: Arc::new(Clock0),
            ids: Arc::new(Ids),
        };
        let settings = ExchangeSettings {
            issuer_url: "https://claimex.example".into(),
            token: TokenSettings::default(),
        };
        (Exchanger::new(ports, settings), self.keys, self.mapper)
    }
}

fn request(token: &str) -> ExchangeRequest<'_> {
    ExchangeRequest {
        kind: SubjectKind::Oidc,
        credential: token,
        issuer_id: None,
        audience: None,
    }
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn an_exchange_fills_every_audit_field_and_stamps_with_the_ports() {
    let key = IssuerKey::new("k1");
    let (exchanger, keys, mapper) = Setup::new(&key).exchanger().await;
    let token = key.mint(&claims());
    let (result, audit) = exchanger.exchange(&request(&token)).await;
    let minted = result.unwrap();
    let out = payload(&minted.token);
    assert_eq!(out["iss"], "https://claimex.example");
    assert_eq!(out["iat"], NOW);
    assert_eq!(out["exp"], NOW + 900);
    assert_eq!(out["jti"], "jti-1");
    assert_eq!(out["aud"], "sts.amazonaws.com");
    assert_eq!(minted.expires_at, NOW + 900);
    assert!(minted.token.ends_with(&URL_SAFE_NO_PAD.encode([7u8; 64])));
    assert_eq!(
        audit,
        Audit {
            subject_kind: Some(SubjectKind::Oidc),
            issuer_id: Some("ci".into()),
            issuer_resolved: true,
            inbound_iss: Some(URL.into()),
            inbound_sub: Some("repo:a/b".into()),
            inbound_jti: Some("in-1".into()),
            mapper_sha256: Some("feed".into()),
            deny_code: None,
            mapper_stderr: Some("guest said hi".into()),
            outbound_sub: Some("repo:a/b".into()),
            outbound_aud: vec!["sts.amazonaws.com".into()],
            outbound_jti: Some("jti-1".into()),
            kid: Some("claimex-key".into()),
            tag_keys: vec!["repo".into()],
            detail: None,
        }
    );
    // The mapper saw the payload as signed, the entry's config and kind, and no request to
    // explain (the exchange path never pays for checks).
    assert_eq!(
        mapper.seen.lock().unwrap().clone().unwrap(),
        Seen {
            kind: SubjectKind::Oidc,
            claims_json: claims().to_string(),
            config_json: r#"{"team":"a"}"#.into(),
            explain: false,
        }
    );
    assert_eq!(*keys.calls.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_then_verifies() {
    let old = IssuerKey::new("old");
    let new = IssuerKey::new("new");
    let mut setup = Setup::new(&old);
    setup.keys = Arc::new(Keys {
        before: vec![old.jwk()],
        after: vec![old.jwk(), new.jwk()],
        calls: Mutex::new(Vec::new()),
        down: false,
    });
    let (exchanger, keys, _) = setup.exchanger().await;
    let (result, _) = exchanger.exchange(&request(&new.mint(&claims()))).await;
    result.unwrap();
    assert_eq!(
        *keys.calls.lock().unwrap(),
        vec![None, Some("new".to_owned())]
    );
    // A kid the refetch does not know either is refused after one refetch.
    let stranger = IssuerKey::new("stranger");
    keys.calls.lock().unwrap().clear();
    let (result, _) = exchanger
        .exchange(&request(&stranger.mint(&claims())))
        .await;
    let error = result.unwrap_err();
    assert_eq!(error.refusal, Refusal::Unverified);
    assert!(error.description.contains("kid"), "{}", error.description);
    assert_eq!(keys.calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn each_sign_error_maps_to_its_refusal_with_the_detail_in_the_audit_only() {
    let key = IssuerKey::new("k1");
    let token = key.mint(&claims());
    type Case = (fn() -> SignError, bool, Refusal);
    let cases: [Case; 4] = [
        (
            || SignError::Unavailable("KMS throttled".into()),
            false,
            Refusal::Unavailable,
        ),
        (
            || SignError::Failed("bad signature".into()),
            false,
            Refusal::Internal,
        ),
        (
            || SignError::Unavailable("no key yet".into()),
            true,
            Refusal::Unavailable,
        ),
        (
            || SignError::Failed("key gone".into()),
            true,
            Refusal::Internal,
        ),
    ];
    for (error, on_key, refusal) in cases {
        let mut setup = Setup::new(&key);
        setup.signer = Signer {
            fail: Some(error),
            on_key,
        };
        let (exchanger, _, _) = setup.exchanger().await;
        let (result, audit) = exchanger.exchange(&request(&token)).await;
        let refused = result.unwrap_err();
        assert_eq!(refused.refusal, refusal);
        let detail = error().to_string();
        assert_eq!(audit.detail.as_deref(), Some(detail.as_str()));
        assert!(!refused.description.contains(&detail), "{refused}");
    }
}

#[tokio::test]
async fn mapper_decisions_and_failures_become_their_refusals() {
    let key = IssuerKey::new("k1");
    let token = key.mint(&claims());
    let cases = [
        (
            Ok(MapDecision::Deny {
                code: "owner_not_allowed".into(),
                reason: "not\nallowed".into(),
            }),
            Refusal::Denied,
            "denied the exchange: not allowed",
        ),
        (
            Err(MapperError::Deadline(100)),
            Refusal::MapperFailed,
            "100 ms deadline",
        ),
        (
            Err(MapperError::Failed("internal detail".into())),
            Refusal::MapperFailed,
            "the mapper of issuer \"ci\" failed",
        ),
        (
            Ok(MapDecision::Allow(
                json!({"sub": "s", "exp": 1}).to_string(),
            )),
            Refusal::InvalidOutput,
            "\"exp\"",
        ),
    ];
    for (answer, refusal, needle) in cases {
        let mut setup = Setup::new(&key);
        setup.mapper = Arc::new(Mapper {
            answer,
            seen: Mutex::new(None),
        });
        let (exchanger, _, _) = setup.exchanger().await;
        let (result, audit) = exchanger.exchange(&request(&token)).await;
        let error = result.unwrap_err();
        assert_eq!(error.refusal, refusal);
        assert!(error.description.contains(needle), "{}", error.description);
        assert_eq!(audit.outbound_jti, None, "nothing was minted");
        // The deny code goes to the audit line; a mapper's own error message only there.
        let code = (refusal == Refusal::Denied).then(|| "owner_not_allowed".to_owned());
        assert_eq!(audit.deny_code, code);
        assert!(!error.description.contains("internal detail"), "{error}");
        if needle.ends_with("failed") {
            assert_eq!(
                audit.detail.as_deref(),
                Some("the mapper reported an error: internal detail")
            );
        }
    }
}

#[tokio::test]
async fn issuers_are_chosen_by_id_or_iss_and_unavailable_keys_are_503() {
    let key = IssuerKey::new("k1");
    let token = key.mint(&claims());
    let mut setup = Setup::new(&key);
    setup.entries = vec![
        ("a", entry(URL)),
        ("b", entry(URL)),
        ("c", entry("https://c.example")),
    ];
    let (exchanger, _, _) = setup.exchanger().await;
    let (result, _) = exchanger.exchange(&request(&token)).await;
    let error = result.unwrap_err();
    assert_eq!(error.refusal, Refusal::UnknownIssuer);
    assert!(error.description.contains("a, b"), "{}", error.description);
    let named = ExchangeRequest {
        issuer_id: Some("b"),
        ..request(&token)
    };
    let (result, audit) = exchanger.exchange(&named).await;
    result.unwrap();
    assert_eq!(audit.issuer_id.as_deref(), Some("b"));
    // Entry c verifies only tokens whose iss is its URL.
    let wrong = ExchangeRequest {
        issuer_id: Some("c"),
        ..request(&token)
    };
    let (result, audit) = exchanger.exchange(&wrong).await;
    assert_eq!(result.unwrap_err().refusal, Refusal::Unverified);
    assert_eq!(audit.issuer_id.as_deref(), Some("c"));
    let unknown = ExchangeRequest {
        issuer_id: Some("zzz"),
        ..request(&token)
    };
    let (result, _) = exchanger.exchange(&unknown).await;
    assert_eq!(result.unwrap_err().refusal, Refusal::UnknownIssuer);
    // Issue 14: an unknown id reaches the audit line cut as the answer cuts it.
    let long = "i".repeat(8192);
    let unknown = ExchangeRequest {
        issuer_id: Some(&long),
        ..request(&token)
    };
    let (result, audit) = exchanger.exchange(&unknown).await;
    let error = result.unwrap_err();
    assert_eq!(error.refusal, Refusal::UnknownIssuer);
    assert!(error.description.len() < 200, "{}", error.description);
    let audited = audit.issuer_id.unwrap();
    assert!(
        audited.len() <= 80,
        "{} bytes in the audit line",
        audited.len()
    );
    assert!(error.description.contains(&audited[..64]));

    let mut setup = Setup::new(&key);
    setup.keys = Arc::new(Keys {
        before: vec![],
        after: vec![],
        calls: Mutex::new(Vec::new()),
        down: true,
    });
    let (exchanger, keys, _) = setup.exchanger().await;
    let (result, _) = exchanger.exchange(&request(&token)).await;
    let error = result.unwrap_err();
    assert_eq!(error.refusal, Refusal::Unavailable);
    assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(7)));
    assert_eq!(keys.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_algorithm_costs_no_key_fetch() {
    let key = IssuerKey::new("k1");
    let mut setup = Setup::new(&key);
    let mut rs256_only = entry(URL);
    rs256_only["algorithms"] = json!(["RS256"]);
    setup.entries = vec![("ci", rs256_only)];
    let (exchanger, keys, _) = setup.exchanger().await;
    let (result, _) = exchanger.exchange(&request(&key.mint(&claims()))).await;
    let error = result.unwrap_err();
    assert_eq!(error.refusal, Refusal::Unverified);
    assert!(error.description.contains("ES256"), "{}", error.description);
    assert!(keys.calls.lock().unwrap().is_empty());
}

#[test]
fn reasons_are_cleaned_and_bounded() {
    assert_eq!(clean_reason("a\nb\u{7}"), "a b ");
    let long = "x".repeat(1000);
    assert_eq!(clean_reason(&long).chars().count(), MAX_REASON_CHARS + 1);
}
