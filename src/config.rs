//! The server configuration: a TOML file, environment overrides, defaults, validation.
//!
//! Every key has a default except `public_url`. An environment variable
//! `CLAIMEX_<KEY>` overrides a top-level key and `CLAIMEX_<SECTION>__<KEY>` a key of a
//! section (`CLAIMEX_SIGNER__BACKEND=kms`); values are read as TOML when they parse as a
//! number, boolean or array, else as strings. Relative paths are relative to the config
//! file's directory. Validation names the offending key and says what is accepted.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::aws::AwsSettings;
use crate::http::HttpSettings;
use crate::mapper::shadow_runner::ShadowSettings;
use crate::mapper::wasm::MapperSettings;
use crate::mint::TokenSettings;
use crate::registry::RegistrySettings;
use crate::settings::SettingError;
use crate::signer::SignerSettings;
use crate::subject::aws_iam::AwsIamSettings;
use crate::subject::jwt::issuer_keys::JwksSettings;
use crate::subject::jwt::{VerifyPolicy, check_issuer_url};

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CLAIMEX_CONFIG";
const ENV_PREFIX: &str = "CLAIMEX_";
/// Variables with the prefix that are not configuration keys.
const NOT_KEYS: [&str; 3] = ["CLAIMEX_CONFIG", "CLAIMEX_LOG", "CLAIMEX_LOG_FLUSH_MS"];

/// The whole configuration: the server's own keys, then one section per part.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// claimex's issuer URL: the `iss` of its tokens, where IAM finds its discovery document.
    pub public_url: String,
    /// The socket address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where `GET /metrics` is served (Prometheus/OpenMetrics), e.g. `127.0.0.1:9464`: a
    /// listener of its own, never the public one. Unset (the default): no metrics are kept.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// HTTP worker threads; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// Accept `http://` on loopback hosts for `public_url` and issuer URLs (tests, demos).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// `[token]`: outbound token lifetimes ([`TokenSettings`]).
    #[serde(default)]
    pub token: TokenSettings,
    /// `[verify]`: inbound token limits ([`VerifyPolicy`]).
    #[serde(default)]
    pub verify: VerifyPolicy,
    /// `[jwks]`: issuer key fetching and caching ([`JwksSettings`]).
    #[serde(default)]
    pub jwks: JwksSettings,
    /// `[mapper]`: the mapper directory and sandbox ([`MapperSettings`]).
    #[serde(default)]
    pub mapper: MapperSettings,
    /// `[registry]`: where issuers are registered ([`RegistrySettings`]).
    #[serde(default)]
    pub registry: RegistrySettings,
    /// `[signer]`: where the signing key lives ([`SignerSettings`]).
    #[serde(default)]
    pub signer: SignerSettings,
    /// `[aws]`: AWS client settings shared by the AWS backends ([`AwsSettings`]).
    #[serde(default)]
    pub aws: AwsSettings,
    /// `[aws_iam]`: server-wide settings of AWS identities, the shared one-use store
    /// ([`AwsIamSettings`]).
    #[serde(default)]
    pub aws_iam: AwsIamSettings,
    /// `[shadow]`: the shadow mapper queue ([`ShadowSettings`]).
    #[serde(default)]
    pub shadow: ShadowSettings,
    /// `[http]`: how the HTTP server treats clients ([`HttpSettings`]).
    #[serde(default)]
    pub http: HttpSettings,
    /// What loading noticed but did not refuse (`CLAIMEX_*` variables that name no key), for
    /// the caller to log once logging is set up.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The top-level keys, and the sections (each a part's settings struct): what a
/// `CLAIMEX_<KEY>` or `CLAIMEX_<SECTION>__<KEY>` variable may name.
const TOP_LEVEL_KEYS: [&str; 5] = [
    "public_url",
    "listen",
    "workers",
    "allow_http_loopback",
    "metrics_listen",
];
const SECTIONS: [&str; 10] = [
    "token", "verify", "jwks", "mapper", "registry", "signer", "aws", "aws_iam", "http", "shadow",
];

fn default_listen() -> String {
    "127.0.0.1:8080".into()
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
        let text = match path {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?,
            ),
            None => None,
        };
        Config::from_text(text.as_deref(), path, env)
    }

    /// [`Config::load_with_env`] with the file's text already read (`None`: no file); `path`
    /// names it in errors and anchors relative paths. Does no I/O: the fuzz target `config`
    /// drives it.
    pub fn from_text(
        text: Option<&str>,
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let shown_path = path.map_or_else(|| "(no file)".into(), |p| p.display().to_string());
        let (mut table, base) = match text {
            Some(text) => {
                let table: toml::Table =
                    toml::from_str(text).map_err(|e| ConfigError(format!("{shown_path}: {e}")))?;
                let base = path
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                (table, base)
            }
            None => (toml::Table::new(), PathBuf::from(".")),
        };
        let mut applied = Vec::new();
        let mut warnings = Vec::new();
        for (name, raw) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NOT_KEYS.contains(&name.as_str()) || key.is_empty() {
                continue;
            }
            let key = key.to_ascii_lowercase();
            // A variable that names no key nor section (a container's CLAIMEX_VERSION, say) is
            // not configuration: it is reported, not refused. One naming a section must name
            // one of its keys, like the file's keys: a typo there would silently drop a
            // setting (CLAIMEX_SIGNER__BAKEND=kms).
            let known = match key.split_once("__") {
                Some((section, _)) => SECTIONS.contains(&section),
                None => TOP_LEVEL_KEYS.contains(&key.as_str()),
            };
            if !known {
                warnings.push(format!(
                    "ignoring the environment variable {name}: it names no configuration key"
                ));
                continue;
            }
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
        let shown = shown_path;
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
        if config.mapper.cache_dir.is_none() {
            config.mapper.default_cache_dir =
                Some(crate::mapper::wasm::default_cache_dir(env, &base));
        }
        config.validate()?;
        config.warnings = warnings;
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
        // IAM refuses OIDC provider URLs with a port; loopback http is for tests and demos.
        if has_port(&self.public_url) && !self.public_url.starts_with("http://") {
            return Err(bad(
                "public_url",
                format!(
                    "{:?} has a port: AWS IAM refuses OIDC provider URLs with a port (serve \
                     claimex on 443 behind its public name)",
                    self.public_url
                ),
            ));
        }
        self.listen.parse::<std::net::SocketAddr>().map_err(|e| {
            bad(
                "listen",
                format!("{:?} is not an address:port ({e})", self.listen),
            )
        })?;
        if let Some(metrics) = &self.metrics_listen {
            let addr = metrics.parse::<std::net::SocketAddr>().map_err(|e| {
                bad(
                    "metrics_listen",
                    format!("{metrics:?} is not an address:port ({e})"),
                )
            })?;
            if self.listen.parse::<std::net::SocketAddr>().ok() == Some(addr) && addr.port() != 0 {
                return Err(bad(
                    "metrics_listen",
                    "must differ from listen: metrics are served on a listener of their own",
                ));
            }
        }
        section("token", self.token.validate())?;
        section("verify", self.verify.validate())?;
        section("jwks", self.jwks.validate())?;
        section("mapper", self.mapper.validate())?;
        section("registry", self.registry.validate())?;
        section("signer", self.signer.validate())?;
        section("shadow", self.shadow.validate())?;
        section("http", self.http.validate())?;
        section("aws_iam", self.aws_iam.validate())?;
        Ok(())
    }
}

/// Whether a URL's authority names a port, even the scheme's default (which `url` drops).
fn has_port(raw: &str) -> bool {
    let rest = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    // An IPv6 literal's colons are inside its brackets.
    let after_host = host_port.rsplit(']').next().unwrap_or_default();
    after_host.contains(':')
}

/// Prefixes a part's setting error with its section.
fn section(name: &str, checked: Result<(), SettingError>) -> Result<(), ConfigError> {
    checked.map_err(|e| bad(&format!("{name}.{}", e.key), e.message))
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
        assert_eq!(
            config.registry.backend,
            crate::registry::RegistryBackend::File
        );
        assert_eq!(config.signer.alg, crate::signer::SigningAlg::Rs256);
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
                ("CLAIMEX_AWS_IAM__REPLAY_TABLE", "claimex-replay"),
                ("CLAIMEX_LOG", "debug"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.aws_iam.replay_table.as_deref(),
            Some("claimex-replay")
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.signer.backend, crate::signer::SignerBackend::Kms);
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
            (
                vec![
                    ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                    ("CLAIMEX_AWS_IAM__REPLAY_TABLE", "no/such table"),
                ],
                "aws_iam.replay_table",
            ),
        ];
        for (vars, needle) in cases {
            let err = Config::load_with_env(None, &env(&vars))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{vars:?}: {err}");
        }
    }

    /// Issue 14: an unrelated variable with the prefix (a container's `CLAIMEX_VERSION`)
    /// stopped start-up; it is now a warning. A variable naming a section claimex has must
    /// still name one of its keys, and file keys stay strict.
    #[test]
    fn unrelated_prefixed_variables_are_warnings() {
        let config = Config::load_with_env(
            None,
            &env(&[
                ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                ("CLAIMEX_VERSION", "1.2.3"),
                ("CLAIMEX_BUILD__SHA", "abc"),
            ]),
        )
        .unwrap();
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("CLAIMEX_VERSION"));
        assert!(config.warnings[1].contains("CLAIMEX_BUILD__SHA"));
        let err = Config::load_with_env(
            None,
            &env(&[
                ("CLAIMEX_PUBLIC_URL", "https://c.example"),
                ("CLAIMEX_SIGNER__BAKEND", "kms"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bakend"), "{err}");
    }

    /// Issue 14: IAM refuses provider URLs with a port; loopback http (tests, demos) keeps it.
    #[test]
    fn a_public_url_with_a_port_is_refused() {
        let load = |url: &str, loopback: &str| {
            Config::load_with_env(
                None,
                &env(&[
                    ("CLAIMEX_PUBLIC_URL", url),
                    ("CLAIMEX_ALLOW_HTTP_LOOPBACK", loopback),
                ]),
            )
        };
        let err = load("https://claimex.example.com:8443", "false")
            .unwrap_err()
            .to_string();
        assert!(err.contains("public_url") && err.contains("port"), "{err}");
        assert!(load("https://claimex.example.com:443", "false").is_err());
        assert!(load("https://claimex.example.com/tenant", "false").is_ok());
        assert!(load("http://127.0.0.1:8080", "true").is_ok());
        assert!(load("http://localhost:8080/tenant", "true").is_ok());
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
