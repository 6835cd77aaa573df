//! An issuer entry as the operator writes it (a file table or an SSM parameter's JSON), and
//! its validation into an [`Issuer`]: the fields every kind shares (mapper, output), then the
//! fields of its subject kind (`kind = "oidc"` by default), each checked once, at load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Issuer, Shadow};
use crate::credentials::CredentialsPolicy;
use crate::mapper::{ConfigError, LoadError, MapperLoader, MapperRole};
use crate::mint::{DEFAULT_AUDIENCE, OutputPolicy};
use crate::subject::aws_iam::{AwsIamSpec, policy::SPEC_FIELDS as AWS_IAM_FIELDS};
use crate::subject::jwt::{OidcSpec, policy::SPEC_FIELDS as OIDC_FIELDS};
use crate::subject::{PolicyError, SubjectKind, SubjectPolicy, check_names};

/// Why an entry was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The entry is not a table, or a field has the wrong type or name.
    #[error("{0}")]
    Parse(String),
    /// The id cannot name an issuer.
    #[error("issuer id {0:?} must be 1 to 64 of the characters A-Z a-z 0-9 _ . -")]
    BadId(String),
    /// `kind` names no subject kind.
    #[error("kind {0:?} is not a subject kind claimex knows (oidc, aws-iam)")]
    UnknownKind(String),
    /// A field does not hold.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// The mapper module cannot be run.
    #[error("mapper {path}: {source}")]
    Mapper {
        /// The module's path.
        path: PathBuf,
        /// Why.
        source: LoadError,
    },
    /// The mapper does not accept the entry's `mapper_config` (or could not check it).
    #[error("{0}")]
    MapperConfig(ConfigError),
}

/// The fields every entry has, whatever its kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSpec {
    /// The subject kind: `oidc` (default).
    #[serde(default)]
    kind: Option<String>,
    /// The mapper module (a `.wasm` component), relative to the mapper directory.
    mapper: PathBuf,
    /// The SHA-256 (hex) the mapper module must have, when pinned.
    #[serde(default)]
    mapper_sha256: Option<String>,
    /// Configuration handed to the mapper as JSON.
    #[serde(default)]
    mapper_config: Option<Value>,
    /// Audiences the mapper may give the outbound token. Default: `["sts.amazonaws.com"]`.
    #[serde(default)]
    output_audiences: Option<Vec<String>>,
    /// Lifetime of tokens minted for this issuer, capped by the server's maximum.
    #[serde(default)]
    token_lifetime_secs: Option<u64>,
    /// A shadow mapper: run after each live decision, off the response path, and compared.
    #[serde(default)]
    shadow_mapper: Option<PathBuf>,
    /// The SHA-256 (hex) the shadow mapper module must have, when pinned.
    #[serde(default)]
    shadow_mapper_sha256: Option<String>,
    /// The shadow mapper's own configuration (`null` when unset, as for `mapper_config`).
    #[serde(default)]
    shadow_mapper_config: Option<Value>,
    /// `POST /credentials`: the role ARN patterns callers of this entry may assume (`*`,
    /// `?`). Unset or empty: no AWS credentials for this entry.
    #[serde(default)]
    allowed_roles: Option<Vec<String>>,
    /// `POST /credentials`: the role when the caller names none.
    #[serde(default)]
    default_role_arn: Option<String>,
    /// `POST /credentials`: the longest session, seconds (900–43200, default 43200).
    #[serde(default)]
    max_duration_seconds: Option<u64>,
}

const COMMON_FIELDS: [&str; 12] = [
    "kind",
    "mapper",
    "mapper_sha256",
    "mapper_config",
    "output_audiences",
    "token_lifetime_secs",
    "shadow_mapper",
    "shadow_mapper_sha256",
    "shadow_mapper_config",
    "allowed_roles",
    "default_role_arn",
    "max_duration_seconds",
];

/// The fields of the entry's subject kind.
#[derive(Debug, Clone)]
enum KindSpec {
    Oidc(OidcSpec),
    AwsIam(AwsIamSpec),
}

/// One issuer entry, parsed but not yet validated.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    common: CommonSpec,
    kind: KindSpec,
}

/// How entries are validated.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    /// Where relative mapper paths start.
    pub mapper_dir: PathBuf,
    /// Accept `http://` issuer URLs whose host is a loopback address (tests, demos).
    pub allow_http_loopback: bool,
}

/// Whether `id` is a usable issuer id: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_issuer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `pin` is 64 hex digits.
pub fn valid_sha256_hex(pin: &str) -> bool {
    pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse<T: serde::de::DeserializeOwned>(fields: Map<String, Value>) -> Result<T, EntryError> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| EntryError::Parse(e.to_string()))
}

impl IssuerSpec {
    /// Reads an entry: the common fields, then the fields of its kind; any other field is
    /// refused by name.
    pub fn from_value(value: Value) -> Result<IssuerSpec, EntryError> {
        let Value::Object(fields) = value else {
            return Err(EntryError::Parse(
                "an issuer entry must be a table of fields".into(),
            ));
        };
        let (common, rest): (Map<String, Value>, Map<String, Value>) = fields
            .into_iter()
            .partition(|(k, _)| COMMON_FIELDS.contains(&k.as_str()));
        let common: CommonSpec = parse(common)?;
        let kind_name = common.kind.as_deref().unwrap_or("oidc");
        let kind = match SubjectKind::parse(kind_name) {
            Some(SubjectKind::Oidc) => {
                debug_assert!(OIDC_FIELDS.iter().all(|f| !COMMON_FIELDS.contains(f)));
                KindSpec::Oidc(parse(rest)?)
            }
            Some(SubjectKind::AwsIam) => {
                debug_assert!(AWS_IAM_FIELDS.iter().all(|f| !COMMON_FIELDS.contains(f)));
                KindSpec::AwsIam(parse(rest)?)
            }
            None => return Err(EntryError::UnknownKind(kind_name.to_owned())),
        };
        Ok(IssuerSpec { common, kind })
    }

    /// The mapper configuration as written.
    pub fn mapper_config(&self) -> Option<&Value> {
        self.common.mapper_config.as_ref()
    }

    /// The mapper module as written (relative to the mapper directory) and its pin.
    pub fn mapper(&self) -> (&Path, Option<&str>) {
        (&self.common.mapper, self.common.mapper_sha256.as_deref())
    }

    /// The shadow mapper module as written, its pin and its configuration, when set.
    pub fn shadow_mapper(&self) -> Option<(&Path, Option<&str>, Option<&Value>)> {
        let path = self.common.shadow_mapper.as_deref()?;
        Some((
            path,
            self.common.shadow_mapper_sha256.as_deref(),
            self.common.shadow_mapper_config.as_ref(),
        ))
    }

    /// The audiences the outbound token may carry.
    pub fn output_audiences(&self) -> Vec<String> {
        self.common
            .output_audiences
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()])
    }

    /// The issuer URL a credential of this entry names, if its kind has one.
    pub fn issuer_url(&self) -> Option<&str> {
        match &self.kind {
            KindSpec::Oidc(spec) => Some(&spec.issuer),
            KindSpec::AwsIam(_) => None,
        }
    }

    /// Validates the entry, loads its mapper, and yields the issuer `id`.
    pub fn into_issuer(
        self,
        id: &str,
        rules: &IssuerRules,
        loader: &dyn MapperLoader,
    ) -> Result<Issuer, EntryError> {
        if !valid_issuer_id(id) {
            return Err(EntryError::BadId(id.to_owned()));
        }
        let subject = match self.kind {
            KindSpec::Oidc(spec) => {
                SubjectPolicy::Oidc(Arc::new(spec.into_policy(id, rules.allow_http_loopback)?))
            }
            KindSpec::AwsIam(spec) => {
                SubjectPolicy::AwsIam(Arc::new(spec.into_policy(id, rules.allow_http_loopback)?))
            }
        };
        let common = self.common;
        let audiences = common
            .output_audiences
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]);
        check_names("output_audiences", &audiences)?;
        if let Some(pin) = &common.mapper_sha256
            && !valid_sha256_hex(pin)
        {
            return Err(PolicyError::new(
                "mapper_sha256",
                format!("mapper_sha256 {pin:?} is not 64 hex digits"),
            )
            .into());
        }
        let token_lifetime = match common.token_lifetime_secs {
            Some(0) => {
                return Err(PolicyError::new(
                    "token_lifetime_secs",
                    "token_lifetime_secs must be positive",
                )
                .into());
            }
            Some(s) => Some(Duration::from_secs(s)),
            None => None,
        };
        let credentials = CredentialsPolicy::from_entry(
            common.allowed_roles.clone(),
            common.default_role_arn.clone(),
            common.max_duration_seconds,
        )?;
        let path = mapper_path(&rules.mapper_dir, &common.mapper);
        let mapper = loader
            .load(&path, common.mapper_sha256.as_deref())
            .map_err(|source| EntryError::Mapper {
                path: path.clone(),
                source,
            })?;
        // A JSON value always serializes.
        let mapper_config = common
            .mapper_config
            .as_ref()
            .unwrap_or(&Value::Null)
            .to_string();
        let (shadow, shadow_error) = match shadow(&common, rules, loader) {
            Ok(shadow) => (shadow, None),
            Err(e) => (None, Some(e)),
        };
        Ok(Issuer {
            id: id.to_owned(),
            subject,
            output: OutputPolicy {
                issuer_id: id.to_owned(),
                audiences,
                token_lifetime,
            },
            credentials,
            mapper,
            mapper_config,
            shadow,
            shadow_error,
        })
    }
}

/// The entry's shadow mapper, loaded; `Err` says why it cannot run (the entry serves without
/// it: a shadow never stops the live mapper from serving).
fn shadow(
    common: &CommonSpec,
    rules: &IssuerRules,
    loader: &dyn MapperLoader,
) -> Result<Option<Shadow>, String> {
    let Some(relative) = &common.shadow_mapper else {
        if common.shadow_mapper_config.is_some() || common.shadow_mapper_sha256.is_some() {
            return Err(
                "shadow_mapper_config or shadow_mapper_sha256 is set, but shadow_mapper is not"
                    .into(),
            );
        }
        return Ok(None);
    };
    if let Some(pin) = &common.shadow_mapper_sha256
        && !valid_sha256_hex(pin)
    {
        return Err(format!("shadow_mapper_sha256 {pin:?} is not 64 hex digits"));
    }
    let path = mapper_path(&rules.mapper_dir, relative);
    let mapper = loader
        .load_as(
            &path,
            common.shadow_mapper_sha256.as_deref(),
            MapperRole::Shadow,
        )
        .map_err(|e| format!("shadow_mapper {}: {e}", path.display()))?;
    Ok(Some(Shadow {
        mapper,
        config: common
            .shadow_mapper_config
            .as_ref()
            .unwrap_or(&Value::Null)
            .to_string(),
        path,
    }))
}

fn mapper_path(dir: &Path, mapper: &Path) -> PathBuf {
    dir.join(mapper)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mapper::{ClaimsMapper, MapDecision, MapOutcome, MapRequest};
    use jsonwebtoken::Algorithm;

    struct Fixed;
    #[async_trait::async_trait]
    impl ClaimsMapper for Fixed {
        fn sha256(&self) -> &str {
            "00"
        }
        async fn validate_config(&self, _: &str) -> Result<(), ConfigError> {
            Ok(())
        }
        async fn map(&self, _: &MapRequest<'_>) -> MapOutcome {
            Ok(MapDecision::Deny {
                code: "fixed".into(),
                reason: "fixed".into(),
            })
            .into()
        }
    }
    struct Loader;
    impl MapperLoader for Loader {
        fn load(&self, path: &Path, _: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
            if path.ends_with("missing.wasm") {
                Err(LoadError::Io {
                    path: path.to_owned(),
                    reason: "no such file".into(),
                })
            } else {
                Ok(Arc::new(Fixed))
            }
        }
    }

    pub(crate) fn rules() -> IssuerRules {
        IssuerRules {
            mapper_dir: PathBuf::from("/m"),
            allow_http_loopback: false,
        }
    }

    pub(crate) fn issuer(id: &str, json: serde_json::Value) -> Result<Issuer, EntryError> {
        IssuerSpec::from_value(json)?.into_issuer(id, &rules(), &Loader)
    }

    fn spec(json: serde_json::Value) -> Result<Issuer, EntryError> {
        issuer("github", json)
    }

    pub(crate) fn base() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://token.actions.githubusercontent.com",
            "audiences": ["https://claimex.example.com"],
            "mapper": "github.wasm"
        })
    }

    fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut b = base();
        b[key] = value;
        b
    }

    #[test]
    fn defaults() {
        let issuer = spec(base()).unwrap();
        assert_eq!(
            issuer.subject.oidc().unwrap().algorithms,
            vec![Algorithm::RS256]
        );
        assert_eq!(issuer.subject.kind(), SubjectKind::Oidc);
        assert_eq!(issuer.output.audiences, vec!["sts.amazonaws.com"]);
        assert_eq!(issuer.mapper_config, "null");
    }

    #[test]
    fn refuses_bad_entries_with_reasons() {
        let cases = [
            (
                with("audiences", serde_json::json!([])),
                "audiences must not be empty",
            ),
            (
                with("issuer", serde_json::json!("http://example.com")),
                "uses http",
            ),
            (
                with("issuer", serde_json::json!("https://x.com/?a=b")),
                "query",
            ),
            (with("issuer", serde_json::json!("not a url")), "not a URL"),
            (
                with("algorithms", serde_json::json!(["HS256"])),
                "symmetric",
            ),
            (
                with("algorithms", serde_json::json!(["none"])),
                "never accepted",
            ),
            (
                with("algorithms", serde_json::json!([])),
                "must not be empty",
            ),
            (with("mapper_sha256", serde_json::json!("abc")), "64 hex"),
            (
                with("mapper", serde_json::json!("missing.wasm")),
                "no such file",
            ),
            (with("surprise", serde_json::json!(1)), "unknown field"),
            (with("kind", serde_json::json!("smoke-signal")), "kind"),
            (
                with("token_lifetime_secs", serde_json::json!(0)),
                "positive",
            ),
            (serde_json::json!([1]), "table"),
            (
                with("allowed_roles", serde_json::json!(["role/x"])),
                "allowed_roles",
            ),
            (
                with("max_duration_seconds", serde_json::json!(60)),
                "max_duration_seconds",
            ),
        ];
        for (json, needle) in cases {
            let err = spec(json.clone())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(needle), "{json}: {err}");
        }
        assert_eq!(
            issuer("a/b", base()).err(),
            Some(EntryError::BadId("a/b".into()))
        );
    }

    #[test]
    fn issuer_ids() {
        assert!(valid_issuer_id("github"));
        assert!(valid_issuer_id("gitlab.com-self_hosted"));
        assert!(!valid_issuer_id(""));
        assert!(!valid_issuer_id("a/b"));
        assert!(!valid_issuer_id(&"a".repeat(65)));
    }
}
