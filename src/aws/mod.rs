//! AWS adapters: the SSM Parameter Store issuer source ([`ssm`]) and the KMS signer with its
//! rotation state ([`kms`]).
//!
//! Clients come from the standard `aws-config` chain (environment, profile, web identity,
//! container and instance credentials; region from the chain too), with two overrides from
//! the `[aws]` section: `region` and `endpoint_url` (emulators, VPC endpoints). The endpoint
//! override is set on each service client, so it wins over `AWS_ENDPOINT_URL[_<SERVICE>]`.
//! Every call is bounded by timeouts: a stalled AWS endpoint turns into an error the callers
//! map (a refused refresh, a 503), never into a hung request.

pub mod kms;
pub mod ssm;

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::Config;
use crate::registry::IssuerSource;
use crate::signer::KeyStore;

/// Connect timeout for every AWS call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one attempt of an AWS call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one AWS call, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of one attempt of a KMS call (signing is on the request path).
const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one KMS call, retries included.
const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(7);

/// The shared AWS configuration: the standard chain with the `[aws]` region override and
/// claimex's timeouts. The endpoint override is applied per client ([`ssm_client`],
/// [`kms_client`]).
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build(),
    );
    if let Some(region) = &config.aws.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// An SSM client for `config` (standard chain, `[aws]` overrides).
pub async fn ssm_client(config: &Config) -> aws_sdk_ssm::Client {
    ssm_client_from(&sdk_config(config).await, config)
}

/// An SSM client from an already loaded [`SdkConfig`], with the endpoint override.
pub fn ssm_client_from(shared: &SdkConfig, config: &Config) -> aws_sdk_ssm::Client {
    let mut builder = aws_sdk_ssm::config::Builder::from(shared);
    if let Some(url) = &config.aws.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_ssm::Client::from_conf(builder.build())
}

/// A KMS client from an already loaded [`SdkConfig`], with the endpoint override. Signing
/// sits on the request path, so it gives up sooner than the other calls: two attempts of
/// at most 3 s each, the second after at most half a second, 7 s in all.
pub fn kms_client_from(shared: &SdkConfig, config: &Config) -> aws_sdk_kms::Client {
    let mut builder = aws_sdk_kms::config::Builder::from(shared)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(KMS_ATTEMPT_TIMEOUT)
                .operation_timeout(KMS_OPERATION_TIMEOUT)
                .build(),
        );
    if let Some(url) = &config.aws.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_kms::Client::from_conf(builder.build())
}

/// A KMS client for `config` (standard chain, `[aws]` overrides).
pub async fn kms_client(config: &Config) -> aws_sdk_kms::Client {
    kms_client_from(&sdk_config(config).await, config)
}

/// The SSM issuer source for `config` (`registry.ssm_prefix`).
pub async fn ssm_source(config: &Config) -> anyhow::Result<Box<dyn IssuerSource>> {
    let client = ssm_client(config).await;
    Ok(Box::new(ssm::SsmSource::new(
        client,
        &config.registry.ssm_prefix,
    )))
}

/// The KMS key store for `config`: loads the key set (the `signer.kms_keys_parameter` SSM
/// parameter when set and present, else `signer.kms_key_id` and
/// `signer.kms_published_key_ids`), fetches every public key, and, with a parameter, starts
/// re-reading it every `registry.refresh_secs`. Fails when a key is unusable or KMS cannot
/// be reached: claimex does not start without a working signing key.
pub async fn kms_store(config: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    let shared = sdk_config(config).await;
    let kms = kms_client_from(&shared, config);
    let ssm = ssm_client_from(&shared, config);
    let store = kms::KmsKeyStore::load(kms, ssm, &config.signer).await?;
    let store = Arc::new(store);
    if store.watches_parameter() {
        tokio::spawn(
            store
                .clone()
                .refresh_forever(Duration::from_secs(config.registry.refresh_secs)),
        );
    }
    Ok(store)
}

/// A short description of an SDK error with its cause chain (the SDK's `Display` alone
/// says little more than "dispatch failure" or "service error").
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
        depth += 1;
        if depth > 6 {
            break;
        }
    }
    text
}
