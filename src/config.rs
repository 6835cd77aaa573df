//! The server configuration: a TOML file, environment overrides, defaults, validation.
//!
//! Every key has a default except `public_url`. An environment variable
//! `CLAIMEX_<KEY>` overrides a top-level key and `CLAIMEX_<SECTION>__<KEY>` a key of a
//! section (`CLAIMEX_SIGNER__BACKEND=kms`); values are read as TOML when they parse as a
//! number, boolean or array, else as strings. Relative paths are relative to the config
//! file's directory. Validation names the offending key and says what is accepted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::discovery::JwksSettings;
use crate::registry::check_issuer_url;
use crate::signer::SigningAlg;
use crate::verify::VerifyPolicy;
use crate::wasm::Limits;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CLAIMEX_CONFIG";
const ENV_PREFIX: &str = "CLAIMEX_";
/// Variables with the prefix that are not configuration keys.
const NOT_KEYS: [&str; 2] = ["CLAIMEX_CONFIG", "CLAIMEX_LOG"];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// claimex's issuer URL: the `iss` of its tokens, where IAM finds its discovery document.
    pub public_url: String,
    /// The socket address to listen on.
    #[serde(default = "defaults::listen")]
    pub listen: String,
    /// HTTP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Accept `http://` on loopback hosts for `public_url` and issuer URLs (tests, demos).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Outbound tokens.
    #[serde(default)]
    pub token: TokenConfig,
    /// Inbound token checks.
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Issuer key fetching and caching.
    #[serde(default)]
    pub jwks: JwksConfig,
    /// The mapper sandbox.
    #[serde(default)]
    pub mapper: MapperConfig,
    /// Where issuers are registered.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Where the signing key lives.
    #[serde(default)]
    pub signer: SignerConfig,
    /// AWS client settings shared by the SSM and KMS backends.
    #[serde(default)]
    pub aws: AwsConfig,
}

/// `[token]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Lifetime of minted tokens, seconds.
    pub lifetime_secs: u64,
    /// Longest lifetime any issuer entry may ask for, seconds.
    pub max_lifetime_secs: u64,
}

/// `[verify]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Clock skew tolerated, seconds (at most 300).
    pub leeway_secs: u64,
    /// Largest inbound token, bytes.
    pub max_token_bytes: usize,
    /// Oldest inbound token (by `iat`), seconds.
    pub max_token_age_secs: u64,
}

/// `[jwks]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksConfig {
    /// Cache lifetime when the issuer sends no `max-age`, seconds.
    pub default_ttl_secs: u64,
    /// Lower bound on the cache lifetime, seconds.
    pub min_ttl_secs: u64,
    /// Upper bound on the cache lifetime, seconds.
    pub max_ttl_secs: u64,
    /// Least time between two refetches for one issuer, seconds.
    pub refetch_interval_secs: u64,
    /// HTTP timeout, milliseconds.
    pub timeout_ms: u64,
}

/// `[mapper]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapperConfig {
    /// Where relative mapper paths of issuer entries start (default: the config's directory).
    pub dir: Option<PathBuf>,
    /// Wall-clock deadline of one call, milliseconds.
    pub deadline_ms: u64,
    /// Memory cap of one instance, MiB.
    pub memory_mib: u64,
    /// Largest mapper output, bytes.
    pub max_output_bytes: usize,
    /// Mapper instances that may run at once.
    pub max_concurrent: u32,
    /// Where compiled mappers are cached across restarts (none: compile at every start).
    pub cache_dir: Option<PathBuf>,
}

/// Issuer registry backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryBackend {
    /// A local TOML or JSON file.
    File,
    /// AWS SSM Parameter Store.
    Ssm,
}

/// `[registry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// `file` or `ssm`.
    pub backend: RegistryBackend,
    /// The issuers file (file backend).
    pub path: PathBuf,
    /// The parameter path prefix (ssm backend).
    pub ssm_prefix: String,
    /// Seconds between two refreshes.
    pub refresh_secs: u64,
}

/// Signer backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerBackend {
    /// A local PKCS#8 key file.
    Local,
    /// AWS KMS.
    Kms,
}

/// `[signer]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignerConfig {
    /// `local` or `kms`.
    pub backend: SignerBackend,
    /// The key file (local backend); generated when missing.
    pub path: PathBuf,
    /// The algorithm of a generated local key.
    pub alg: SigningAlg,
    /// Public key files published besides the signing key (local backend, rotation).
    #[serde(deserialize_with = "list_or_csv")]
    pub published_paths: Vec<PathBuf>,
    /// The KMS key that signs (id, ARN or alias).
    pub kms_key_id: Option<String>,
    /// KMS keys published besides the signing key (previous and pending, during rotation).
    #[serde(deserialize_with = "list_or_csv")]
    pub kms_published_key_ids: Vec<String>,
    /// An SSM parameter naming the KMS keys, JSON `{"current": KEY, "published": [KEY, ...]}`,
    /// re-read every `registry.refresh_secs` and edited by `claimex keys stage|promote|retire`.
    /// When it exists it takes precedence over `kms_key_id` and `kms_published_key_ids`.
    pub kms_keys_parameter: Option<String>,
}

/// `[aws]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Region override (default: the standard chain).
    pub region: Option<String>,
    /// Endpoint override, for emulators and VPC endpoints.
    pub endpoint_url: Option<String>,
}

mod defaults {
    pub fn listen() -> String {
        "127.0.0.1:8080".into()
    }
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            lifetime_secs: 900,
            max_lifetime_secs: 3600,
        }
    }
}

impl Default for VerifyConfig {
    fn default() -> VerifyConfig {
        VerifyConfig {
            leeway_secs: 60,
            max_token_bytes: 16 * 1024,
            max_token_age_secs: 3600,
        }
    }
}

impl Default for JwksConfig {
    fn default() -> JwksConfig {
        JwksConfig {
            default_ttl_secs: 300,
            min_ttl_secs: 60,
            max_ttl_secs: 86_400,
            refetch_interval_secs: 30,
            timeout_ms: 5000,
        }
    }
}

impl Default for MapperConfig {
    fn default() -> MapperConfig {
        MapperConfig {
            dir: None,
            deadline_ms: 100,
            memory_mib: 64,
            max_output_bytes: 64 * 1024,
            max_concurrent: 64,
            cache_dir: None,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig {
            backend: RegistryBackend::File,
            path: "issuers.toml".into(),
            ssm_prefix: "/claimex/issuers/".into(),
            refresh_secs: 30,
        }
    }
}

impl Default for SignerConfig {
    fn default() -> SignerConfig {
        SignerConfig {
            backend: SignerBackend::Local,
            path: "claimex-key.pem".into(),
            alg: SigningAlg::Rs256,
            published_paths: Vec::new(),
            kms_key_id: None,
            kms_published_key_ids: Vec::new(),
            kms_keys_parameter: None,
        }
    }
}

fn list_or_csv<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::List(list) => list,
        Either::Csv(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
    .into_iter()
    .map(T::from)
    .collect())
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, what: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {what}"))
}

impl Config {
    /// Loads `path` (or only the environment when `None`), applies `CLAIMEX_*` overrides,
    /// resolves relative paths, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Config::load_with_env(path, &vars)
    }

    /// [`Config::load`] with an explicit environment (tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let (mut table, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (table, base)
            }
            None => (toml::Table::new(), PathBuf::from(".")),
        };
        let mut applied = Vec::new();
        for (name, raw) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NOT_KEYS.contains(&name.as_str()) || key.is_empty() {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let value = env_value(raw);
            match key.split_once("__") {
                Some((section, field)) => {
                    let entry = table
                        .entry(section.to_owned())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    let Some(section_table) = entry.as_table_mut() else {
                        return Err(bad(name, format!("{section} is not a section")));
                    };
                    section_table.insert(field.to_owned(), value);
                }
                None => {
                    table.insert(key, value);
                }
            }
            applied.push(name.clone());
        }
        let shown = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no file)".into());
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let origin = if applied.is_empty() {
                        String::new()
                    } else {
                        format!(" (with environment overrides {})", applied.join(", "))
                    };
                    ConfigError(format!("{shown}{origin}: {}", e.message()))
                })?;
        config.resolve(&base);
        config.validate()?;
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.registry.path);
        join(&mut self.signer.path);
        self.signer.published_paths.iter_mut().for_each(join);
        match &mut self.mapper.dir {
            Some(dir) => join(dir),
            None => self.mapper.dir = Some(base.to_path_buf()),
        }
        if let Some(dir) = &mut self.mapper.cache_dir {
            join(dir);
        }
    }

    /// Checks ranges and combinations, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_issuer_url(&self.public_url, self.allow_http_loopback)
            .map_err(|e| bad("public_url", e.replace("issuer", "public_url")))?;
        if self.public_url.ends_with('/') {
            return Err(bad("public_url", "must not end with /"));
        }
        self.listen.parse::<std::net::SocketAddr>().map_err(|e| {
            bad(
                "listen",
                format!("{:?} is not an address:port ({e})", self.listen),
            )
        })?;
        let t = &self.token;
        range("token.lifetime_secs", t.lifetime_secs, 60, 43_200)?;
        range("token.max_lifetime_secs", t.max_lifetime_secs, 60, 43_200)?;
        if t.lifetime_secs > t.max_lifetime_secs {
            return Err(bad(
                "token.lifetime_secs",
                "must not exceed token.max_lifetime_secs",
            ));
        }
        let v = &self.verify;
        range("verify.leeway_secs", v.leeway_secs, 0, 300)?;
        range(
            "verify.max_token_bytes",
            v.max_token_bytes as u64,
            256,
            1024 * 1024,
        )?;
        range(
            "verify.max_token_age_secs",
            v.max_token_age_secs,
            60,
            86_400,
        )?;
        let j = &self.jwks;
        range("jwks.min_ttl_secs", j.min_ttl_secs, 1, 86_400)?;
        range(
            "jwks.max_ttl_secs",
            j.max_ttl_secs,
            j.min_ttl_secs,
            7 * 86_400,
        )?;
        range(
            "jwks.default_ttl_secs",
            j.default_ttl_secs,
            j.min_ttl_secs,
            j.max_ttl_secs,
        )?;
        range(
            "jwks.refetch_interval_secs",
            j.refetch_interval_secs,
            1,
            3600,
        )?;
        range("jwks.timeout_ms", j.timeout_ms, 100, 60_000)?;
        let m = &self.mapper;
        range("mapper.deadline_ms", m.deadline_ms, 1, 10_000)?;
        range("mapper.memory_mib", m.memory_mib, 1, 4096)?;
        range(
            "mapper.max_output_bytes",
            m.max_output_bytes as u64,
            256,
            16 * 1024 * 1024,
        )?;
        range("mapper.max_concurrent", m.max_concurrent as u64, 1, 10_000)?;
        range(
            "registry.refresh_secs",
            self.registry.refresh_secs,
            1,
            86_400,
        )?;
        if self.registry.backend == RegistryBackend::Ssm
            && !self.registry.ssm_prefix.starts_with('/')
        {
            return Err(bad("registry.ssm_prefix", "must start with /"));
        }
        if self.signer.backend == SignerBackend::Kms
            && self.signer.kms_key_id.as_deref().unwrap_or("").is_empty()
            && self
                .signer
                .kms_keys_parameter
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            return Err(bad(
                "signer.kms_key_id",
                "is required with signer.backend = \"kms\" (or set signer.kms_keys_parameter)",
            ));
        }
        Ok(())
    }

    /// The inbound token policy.
    pub fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            leeway: Duration::from_secs(self.verify.leeway_secs),
            max_token_bytes: self.verify.max_token_bytes,
            max_token_age: Duration::from_secs(self.verify.max_token_age_secs),
        }
    }

    /// The key-cache settings.
    pub fn jwks_settings(&self) -> JwksSettings {
        let j = &self.jwks;
        JwksSettings {
            default_ttl: Duration::from_secs(j.default_ttl_secs),
            min_ttl: Duration::from_secs(j.min_ttl_secs),
            max_ttl: Duration::from_secs(j.max_ttl_secs),
            refetch_interval: Duration::from_secs(j.refetch_interval_secs),
            timeout: Duration::from_millis(j.timeout_ms),
            allow_http_loopback: self.allow_http_loopback,
            ..JwksSettings::default()
        }
    }

    /// The mapper sandbox limits.
    pub fn mapper_limits(&self) -> Limits {
        let m = &self.mapper;
        Limits {
            deadline: Duration::from_millis(m.deadline_ms),
            memory_bytes: (m.memory_mib as usize) * 1024 * 1024,
            max_output_bytes: m.max_output_bytes,
            max_concurrent: m.max_concurrent,
        }
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(bad(
            key,
            format!("{value} is out of range; use {min} to {max}"),
        ));
    }
    Ok(())
}

fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match trimmed {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    if trimmed.starts_with('[')
        && let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {trimmed}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_only_with_defaults() {
        let config = Config::load_with_env(
            None,
            &env(&[("CLAIMEX_PUBLIC_URL", "https://claimex.example.com")]),
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.token.lifetime_secs, 900);
        assert_eq!(config.registry.backend, RegistryBackend::File);
        assert_eq!(config.signer.alg, SigningAlg::Rs256);
    }

    #[test]
    fn overrides_sections_and_lists() {
        let config = Config::load_with_env(
            None,
            &env(&[
                ("CLAIMEX_PUBLIC_URL", "https://claimex.example.com"),
                ("CLAIMEX_SIGNER__BACKEND", "kms"),
                ("CLAIMEX_SIGNER__KMS_KEY_ID", "alias/claimex"),
                ("CLAIMEX_SIGNER__KMS_PUBLISHED_KEY_IDS", "k1, k2"),
                ("CLAIMEX_TOKEN__LIFETIME_SECS", "600"),
                ("CLAIMEX_LOG", "debug"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.signer.backend, SignerBackend::Kms);
        assert_eq!(config.signer.kms_published_key_ids, vec!["k1", "k2"]);
        assert_eq!(config.token.lifetime_secs, 600);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (vec![], "public_url"),
            (
                vec![("CLAIMEX_PUBLIC_URL", "http://claimex.example.com")],
                "public_url",
            ),
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_TOKEN__LIFETIME_SECS", "7200"),
                ],
                "token.lifetime_secs",
            ),
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_VERIFY__LEEWAY_SECS", "9999"),
                ],
                "verify.leeway_secs",
            ),
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_SIGNER__BACKEND", "kms"),
                ],
                "signer.kms_key_id",
            ),
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_TOKEN__LIFETIME", "1"),
                ],
                "unknown field",
            ),
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_LISTEN", "nowhere"),
                ],
                "listen",
            ),
        ];
        for (vars, needle) in cases {
            let err = Config::load_with_env(None, &env(&vars))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{vars:?}: {err}");
        }
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = std::env::temp_dir().join(format!("claimex-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("claimex.toml");
        std::fs::write(
            &file,
            "public_url = \"https://c.example\"\n[registry]\npath = \"issuers.toml\"\n",
        )
        .unwrap();
        let config = Config::load_with_env(Some(&file), &[]).unwrap();
        assert_eq!(config.registry.path, dir.join("issuers.toml"));
        assert_eq!(config.mapper.dir.as_deref(), Some(dir.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
