//! AWS SDK clients, built once for every adapter that talks to AWS, and SDK errors described.
//!
//! Clients come from the standard `aws-config` chain (environment, profile, web identity,
//! container and instance credentials; region from the chain too), with two overrides from
//! the `[aws]` section: `region` and `endpoint_url` (emulators, VPC endpoints). The endpoint
//! override is set on each service client, so it wins over `AWS_ENDPOINT_URL[_<SERVICE>]`.
//! Every call is bounded by timeouts: a stalled AWS endpoint turns into an error the callers
//! map (a refused refresh, a 503), never into a hung request.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use serde::Deserialize;

/// AWS client settings shared by every AWS backend: the `[aws]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    /// Region override (default: the standard chain).
    pub region: Option<String>,
    /// Endpoint override, for emulators and VPC endpoints.
    pub endpoint_url: Option<String>,
}

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

/// Claimex's timeouts for one kind of call: connecting, one attempt, the whole call.
fn timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

/// Two attempts at most, for calls a request waits on: the second after the SDK's jittered
/// backoff, from `initial_backoff` up to `max_backoff`.
fn two_attempts(initial_backoff: Duration, max_backoff: Duration) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(initial_backoff)
        .with_max_backoff(max_backoff)
}

/// The shared AWS configuration: the standard chain with the `[aws]` region override and
/// claimex's timeouts. The endpoint override is applied per client ([`ssm_client_from`],
/// [`kms_client_from`], [`dynamodb_client_from`]).
pub async fn sdk_config(config: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts(ATTEMPT_TIMEOUT, OPERATION_TIMEOUT));
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// An SSM client from an already loaded [`SdkConfig`], with the endpoint override.
pub fn ssm_client_from(shared: &SdkConfig, config: &AwsSettings) -> aws_sdk_ssm::Client {
    let mut builder = aws_sdk_ssm::config::Builder::from(shared);
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_ssm::Client::from_conf(builder.build())
}

/// A KMS client from an already loaded [`SdkConfig`], with the endpoint override. Signing
/// sits on the request path, so it gives up sooner than the other calls: two attempts of
/// at most 3 s each, the second after at most half a second, 7 s in all.
pub fn kms_client_from(shared: &SdkConfig, config: &AwsSettings) -> aws_sdk_kms::Client {
    let mut builder = aws_sdk_kms::config::Builder::from(shared)
        .retry_config(two_attempts(
            Duration::from_millis(100),
            Duration::from_millis(500),
        ))
        .timeout_config(timeouts(KMS_ATTEMPT_TIMEOUT, KMS_OPERATION_TIMEOUT));
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_kms::Client::from_conf(builder.build())
}

/// Timeout of one attempt of a DynamoDB call (the one-use check is on the request path).
const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one DynamoDB call, retries included.
const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A DynamoDB client from an already loaded [`SdkConfig`], with the endpoint override, for
/// the shared one-use store of AWS identities (`[aws_iam] replay_table`). One conditional
/// `PutItem` sits on the request path, so it gives up soon: two attempts of at most 2 s
/// each, 5 s in all; a throttled or unreachable table then refuses the exchange (503).
pub fn dynamodb_client_from(shared: &SdkConfig, config: &AwsSettings) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_config(two_attempts(
            Duration::from_millis(50),
            Duration::from_millis(250),
        ))
        .timeout_config(timeouts(
            DYNAMODB_ATTEMPT_TIMEOUT,
            DYNAMODB_OPERATION_TIMEOUT,
        ));
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// An STS client for `AssumeRoleWithWebIdentity`, unsigned: no credentials provider at all
/// (the shared config's chain is not copied) and no-auth allowed, so claimex's own AWS
/// credentials are never sent. Region: `[aws] region`, else the chain's, else `us-east-1`
/// (STS is global); the endpoint override as for the other clients; the shared timeouts, and
/// two attempts at most (the caller waits).
pub fn unsigned_sts_client_from(shared: &SdkConfig, config: &AwsSettings) -> aws_sdk_sts::Client {
    let region = shared
        .region()
        .cloned()
        .unwrap_or_else(|| Region::new("us-east-1"));
    let mut builder = aws_sdk_sts::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .allow_no_auth()
        .retry_config(two_attempts(
            Duration::from_millis(100),
            Duration::from_millis(500),
        ))
        .timeout_config(timeouts(ATTEMPT_TIMEOUT, OPERATION_TIMEOUT));
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_sts::Client::from_conf(builder.build())
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
