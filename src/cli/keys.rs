//! `claimex keys`: print the published keys (`jwks`), and perform the operator's rotation
//! steps on the KMS signing-keys parameter (`show`, `stage`, `promote`, `retire`), printing
//! the resulting state as JSON. The state machine is [`crate::signer::rotation`]; this file
//! reads and writes the SSM parameter and asks KMS what each key is.

use std::process::ExitCode;

use aws_sdk_ssm::types::ParameterType;
use serde::Serialize;

use super::KeysCommand;
use crate::aws::describe_error;
use crate::config::Config;
use crate::signer::envelope::{create, read_record};
use crate::signer::kms::{KmsKey, read_parameter};
use crate::signer::rotation::KeyRefs;
use crate::signer::{SignerBackend, SignerSettings, SigningKey as _};

/// `claimex keys jwks` prints the JWKS; `claimex keys show|stage|promote|retire` perform one
/// step on the KMS signing-keys parameter and print the resulting state as JSON.
pub async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let (config, step) = match command {
        KeysCommand::Jwks { config } => {
            let config = Config::load(config.as_deref())?;
            let store = crate::app::key_store(&config).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"keys": store.published()}))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::CreateEnvelope {
            parameter,
            kms_key_id,
            alg,
            config,
        } => {
            let config = Config::load(config.as_deref())?;
            let kms_key_id = kms_key_id
                .or(config.signer.kms_key_id.clone())
                .filter(|k| !k.trim().is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "name the symmetric KMS key to encrypt under: --kms-key-id, or \
                         signer.kms_key_id"
                    )
                })?;
            let alg = alg.unwrap_or(config.signer.alg);
            let shared = crate::aws::sdk_config(&config.aws).await;
            let kms = crate::aws::kms_client_from(&shared, &config.aws);
            let ssm = crate::aws::ssm_client_from(&shared, &config.aws);
            let record = create(&kms, &ssm, &parameter, &kms_key_id, alg).await?;
            let kid = record
                .public_jwk()
                .map_err(anyhow::Error::msg)?
                .kid()
                .to_owned();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "parameter": parameter,
                    "alg": record.alg,
                    "kid": kid,
                    "kms_key_id": record.kms_key_id,
                    "next": format!("claimex keys stage {parameter} (or promote --force for the first key)"),
                }))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::Show { config } => (config, RotationStep::Show),
        KeysCommand::Stage { key, config } => (config, RotationStep::Stage(key)),
        KeysCommand::Promote { key, force, config } => (config, RotationStep::Promote(key, force)),
        KeysCommand::Retire { key, config } => (config, RotationStep::Retire(key)),
    };
    let config = Config::load(config.as_deref())?;
    let shared = crate::aws::sdk_config(&config.aws).await;
    let rotation = Rotation::new(
        crate::aws::kms_client_from(&shared, &config.aws),
        crate::aws::ssm_client_from(&shared, &config.aws),
        &config.signer,
    )?;
    let report = match step {
        RotationStep::Show => rotation.show().await?,
        RotationStep::Stage(key) => rotation.stage(&key).await?,
        RotationStep::Promote(key, force) => rotation.promote(&key, force).await?,
        RotationStep::Retire(key) => rotation.retire(&key).await?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

enum RotationStep {
    Show,
    Stage(String),
    Promote(String, bool),
    Retire(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// The key as stored (an ARN when claimex wrote it).
    pub key: String,
    /// Its JWS algorithm, when KMS could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Its `kid` in the JWKS, when KMS could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Why KMS could not describe it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rotation state after a `claimex keys` step.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// The SSM parameter.
    pub parameter: String,
    /// Its version after the step (none when it does not exist).
    pub version: Option<i64>,
    /// What the step did.
    pub action: String,
    /// The key that signs.
    pub current: KeySummary,
    /// The keys published besides it.
    pub published: Vec<KeySummary>,
}

/// The operator's rotation steps on the signing-keys parameter. Keys are stored as the
/// ARNs KMS reports, so every instance resolves them identically.
pub struct Rotation {
    kms: aws_sdk_kms::Client,
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    fallback: Option<KeyRefs>,
    /// `kms-envelope`: the keys are the SSM parameters of envelope keys, not KMS keys.
    envelope: bool,
}

impl Rotation {
    /// Rotation on `signer.kms_keys_parameter`; starts from `signer.kms_key_id` and
    /// `signer.kms_published_key_ids` while the parameter does not exist.
    pub fn new(
        kms: aws_sdk_kms::Client,
        ssm: aws_sdk_ssm::Client,
        signer: &SignerSettings,
    ) -> anyhow::Result<Rotation> {
        let parameter = signer
            .kms_keys_parameter
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "signer.kms_keys_parameter is not set: the rotation steps edit that SSM \
                     parameter (e.g. /claimex/signing-keys)"
                )
            })?;
        Ok(Rotation {
            kms,
            ssm,
            parameter,
            fallback: (signer.backend != SignerBackend::KmsEnvelope)
                .then(|| KeyRefs::from_settings(signer))
                .flatten(),
            envelope: signer.backend == SignerBackend::KmsEnvelope,
        })
    }

    /// What `key` is: a KMS key asked of KMS (named by its ARN), or an envelope key read
    /// from its parameter (named by the parameter).
    async fn describe(&self, key: &str) -> anyhow::Result<KeySummary> {
        if self.envelope {
            let record = read_record(&self.ssm, key).await?;
            let jwk = record
                .public_jwk()
                .map_err(|e| anyhow::anyhow!("ssm parameter {key}: {e}"))?;
            return Ok(KeySummary {
                key: key.to_owned(),
                alg: Some(record.alg.as_str().to_owned()),
                kid: Some(jwk.kid().to_owned()),
                error: None,
            });
        }
        Ok(summary(&KmsKey::fetch(&self.kms, key).await?))
    }

    /// The state in force, with the keys resolved to ARNs where KMS knows them.
    async fn state(&self) -> anyhow::Result<(Option<KeyRefs>, Option<i64>)> {
        let (refs, version) = match read_parameter(&self.ssm, &self.parameter)
            .await
            .map_err(anyhow::Error::msg)?
        {
            Some((refs, version)) => (Some(refs), Some(version)),
            None => (self.fallback.clone(), None),
        };
        let Some(refs) = refs else {
            return Ok((None, version));
        };
        let current = self.arn_or_literal(&refs.current).await;
        let mut published = Vec::new();
        for key in &refs.published {
            published.push(self.arn_or_literal(key).await);
        }
        let refs = KeyRefs { current, published }
            .checked()
            .map_err(anyhow::Error::msg)?;
        Ok((Some(refs), version))
    }

    async fn arn_or_literal(&self, key: &str) -> String {
        match self.describe(key).await {
            Ok(k) => k.key,
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot resolve a key of the rotation state; keeping it as written");
                key.to_owned()
            }
        }
    }

    /// The key `key` names, which must be able to sign.
    async fn usable(&self, key: &str) -> anyhow::Result<KeySummary> {
        self.describe(key).await
    }

    async fn write(&self, refs: &KeyRefs, exists: bool) -> anyhow::Result<i64> {
        let value = serde_json::to_string(refs)?;
        let out = self
            .ssm
            .put_parameter()
            .name(&self.parameter)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(exists)
            .description("claimex signing keys: current signs, published are in the JWKS")
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "ssm PutParameter {}: {}",
                    self.parameter,
                    describe_error(&e)
                )
            })?;
        Ok(out.version())
    }

    async fn report(&self, refs: &KeyRefs, version: Option<i64>, action: String) -> RotationReport {
        let mut summaries = Vec::new();
        for key in refs.all() {
            summaries.push(match self.describe(key).await {
                Ok(k) => k,
                Err(e) => KeySummary {
                    key: key.to_owned(),
                    alg: None,
                    kid: None,
                    error: Some(e.to_string()),
                },
            });
        }
        let current = summaries.remove(0);
        RotationReport {
            parameter: self.parameter.clone(),
            version,
            action,
            current,
            published: summaries,
        }
    }

    /// The rotation state without changing it.
    pub async fn show(&self) -> anyhow::Result<RotationReport> {
        let (refs, version) = self.state().await?;
        let refs = refs.ok_or_else(|| {
            anyhow::anyhow!(
                "no signing keys yet: {} does not exist and signer.kms_key_id is not set",
                self.parameter
            )
        })?;
        let action = match version {
            Some(_) => "show".to_owned(),
            None => format!(
                "show (from the configuration: {} does not exist yet)",
                self.parameter
            ),
        };
        Ok(self.report(&refs, version, action).await)
    }

    /// Publishes `key` as the pending key.
    pub async fn stage(&self, key: &str) -> anyhow::Result<RotationReport> {
        let new = self.usable(key).await?;
        let (refs, version) = self.state().await?;
        let mut refs = refs.ok_or_else(|| {
            anyhow::anyhow!(
                "no current key: set signer.kms_key_id, or make {key} the first current key \
                 with `claimex keys promote --force {key}`"
            )
        })?;
        refs.stage(new.key.as_str()).map_err(anyhow::Error::msg)?;
        let refs = refs.checked().map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!(
            "staged {} (kid {}): published, not signing",
            new.key.as_str(),
            new.kid.as_deref().unwrap_or_default()
        );
        Ok(self.report(&refs, Some(version), action).await)
    }

    /// Makes `key` the current key; the previous current key stays published.
    pub async fn promote(&self, key: &str, force: bool) -> anyhow::Result<RotationReport> {
        let new = self.usable(key).await?;
        let (refs, version) = self.state().await?;
        let refs = match refs {
            Some(mut refs) => {
                refs.promote(new.key.as_str(), force)
                    .map_err(anyhow::Error::msg)?;
                refs
            }
            None if force => KeyRefs {
                current: new.key.as_str().to_owned(),
                published: Vec::new(),
            },
            None => anyhow::bail!(
                "there is no current key yet; use `claimex keys promote --force {key}` to make \
                 it the first one"
            ),
        };
        let refs = refs.checked().map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!(
            "promoted {} (kid {}): it signs now; the previous key stays published",
            new.key.as_str(),
            new.kid.as_deref().unwrap_or_default()
        );
        Ok(self.report(&refs, Some(version), action).await)
    }

    /// Stops publishing `key`; refuses the current key.
    pub async fn retire(&self, key: &str) -> anyhow::Result<RotationReport> {
        let (refs, version) = self.state().await?;
        let mut refs = refs.ok_or_else(|| anyhow::anyhow!("there are no keys to retire"))?;
        let literal = refs.all().any(|k| k == key);
        let target = if literal {
            key.to_owned()
        } else {
            self.usable(key).await?.key
        };
        refs.retire(&target).map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!("retired {target}: no longer published");
        Ok(self.report(&refs, Some(version), action).await)
    }
}

/// What a key is, for the operator: `{"key", "alg", "kid"}`.
fn summary(key: &KmsKey) -> KeySummary {
    KeySummary {
        key: key.arn().to_owned(),
        alg: Some(key.alg().as_str().to_owned()),
        kid: Some(key.kid().to_owned()),
        error: None,
    }
}
