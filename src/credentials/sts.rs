//! The STS adapter of the [`RoleAssumer`] port: `AssumeRoleWithWebIdentity` through
//! `aws-sdk-sts`, unsigned. The client has no credentials provider at all (and allows no
//! auth), so claimex's own AWS credentials are never sent and need no IAM permission for it:
//! the role's trust policy alone decides. Built on first use (`[aws]` region and endpoint
//! override, as for SSM and KMS); STS's error codes become [`StsFailure`]s.

use async_trait::async_trait;
use aws_sdk_sts::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sts::primitives::DateTimeFormat;
use tokio::sync::OnceCell;

use super::{AwsCredentials, RoleAssumer, RoleSession, StsFailure};
use crate::aws::{AwsSettings, describe_error};

/// `AssumeRoleWithWebIdentity` over the network.
pub struct StsRoleAssumer {
    settings: AwsSettings,
    client: OnceCell<aws_sdk_sts::Client>,
}

impl StsRoleAssumer {
    /// An adapter with the `[aws]` settings; the client is built at the first call.
    pub fn new(settings: AwsSettings) -> StsRoleAssumer {
        StsRoleAssumer {
            settings,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_sts::Client {
        self.client
            .get_or_init(|| async {
                let shared = crate::aws::sdk_config(&self.settings).await;
                crate::aws::unsigned_sts_client_from(&shared, &self.settings)
            })
            .await
    }
}

/// STS's error codes, as the query protocol names them (the SDK's modelled errors and the
/// generic ones: AccessDenied, Throttling...).
fn failure(code: Option<&str>, message: String, status: Option<u16>) -> StsFailure {
    match code.unwrap_or_default() {
        "AccessDenied" | "AccessDeniedException" => StsFailure::AccessDenied(message),
        "InvalidIdentityToken" => StsFailure::InvalidIdentityToken(message),
        "IDPRejectedClaim" => StsFailure::IdpRejectedClaim(message),
        "ExpiredToken" | "ExpiredTokenException" => StsFailure::ExpiredToken(message),
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "SlowDown" => StsFailure::Throttled(message),
        "IDPCommunicationError" | "ServiceUnavailable" | "InternalFailure" | "InternalError" => {
            StsFailure::Unavailable(message)
        }
        _ if status.is_some_and(|s| s >= 500) => StsFailure::Unavailable(message),
        "" => StsFailure::Unavailable(message),
        other => StsFailure::Refused {
            code: other.to_owned(),
            message,
        },
    }
}

#[async_trait]
impl RoleAssumer for StsRoleAssumer {
    async fn assume(
        &self,
        session: &RoleSession,
        web_identity_token: &str,
    ) -> Result<AwsCredentials, StsFailure> {
        let client = self.client().await;
        let sent = client
            .assume_role_with_web_identity()
            .role_arn(&session.role_arn)
            .role_session_name(&session.session_name)
            .web_identity_token(web_identity_token)
            .duration_seconds(i32::try_from(session.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) => {
                let status = e.raw().status().as_u16();
                let err = e.err();
                let message = err.message().unwrap_or("no message").to_owned();
                return Err(failure(err.code(), message, Some(status)));
            }
            Err(e) => return Err(StsFailure::Unavailable(describe_error(&e))),
        };
        let Some(c) = out.credentials() else {
            return Err(StsFailure::Refused {
                code: "NoCredentials".into(),
                message: "STS answered without credentials".into(),
            });
        };
        let expiration =
            c.expiration()
                .fmt(DateTimeFormat::DateTime)
                .map_err(|e| StsFailure::Refused {
                    code: "BadExpiration".into(),
                    message: e.to_string(),
                })?;
        Ok(AwsCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().to_owned(),
            expiration,
            expires_at: u64::try_from(c.expiration().secs()).unwrap_or(0),
            assumed_role_arn: out.assumed_role_user().map(|u| u.arn().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_failures() {
        let f = |code: &str, status| failure(Some(code), "m".into(), Some(status));
        assert!(matches!(
            f("AccessDenied", 403),
            StsFailure::AccessDenied(_)
        ));
        assert!(matches!(
            f("InvalidIdentityToken", 400),
            StsFailure::InvalidIdentityToken(_)
        ));
        assert!(matches!(
            f("IDPRejectedClaim", 403),
            StsFailure::IdpRejectedClaim(_)
        ));
        assert!(matches!(
            f("ExpiredToken", 400),
            StsFailure::ExpiredToken(_)
        ));
        assert!(matches!(f("Throttling", 400), StsFailure::Throttled(_)));
        assert!(matches!(f("Weird", 503), StsFailure::Unavailable(_)));
        assert!(matches!(
            f("ValidationError", 400),
            StsFailure::Refused { .. }
        ));
        assert!(matches!(
            failure(None, "m".into(), None),
            StsFailure::Unavailable(_)
        ));
    }
}
