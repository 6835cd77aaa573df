//! The identity STS confirmed, and the claims the mapper sees for it: the ARN (also as `sub`), account and
//! user id as STS gave them, and what the ARN says (principal type, role and session name,
//! user name), with the region of the signature and the STS endpoint called.

use serde_json::{Value, json};

use super::request::SignedRequest;

/// What `GetCallerIdentity` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `Arn`.
    pub arn: String,
    /// `Account`, 12 digits.
    pub account: String,
    /// `UserId`.
    pub user_id: String,
}

/// What an ARN says of its principal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// `assumed-role`, `user`, `root`, `federated-user`, or another resource type.
    pub principal_type: String,
    /// For an assumed role: the role name.
    pub role_name: Option<String>,
    /// For an assumed role: the session name.
    pub session_name: Option<String>,
    /// For a user or a federated user: the name (without path).
    pub user_name: Option<String>,
}

/// Reads `arn:<partition>:<iam|sts>::<account>:<resource>`.
pub fn principal(arn: &str) -> Principal {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    if resource == "root" {
        return Principal {
            principal_type: "root".into(),
            ..Principal::default()
        };
    }
    let mut parts = resource.split('/');
    let kind = parts.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = parts.collect();
    match kind.as_str() {
        "assumed-role" if rest.len() >= 2 => Principal {
            principal_type: kind,
            role_name: Some(rest[0].to_owned()),
            session_name: Some(rest[1..].join("/")),
            user_name: None,
        },
        "user" | "federated-user" => Principal {
            principal_type: kind,
            user_name: rest.last().map(|s| (*s).to_owned()),
            ..Principal::default()
        },
        _ => Principal {
            principal_type: kind,
            ..Principal::default()
        },
    }
}

impl CallerIdentity {
    /// The claims the mapper sees.
    pub fn claims(&self, request: &SignedRequest) -> Value {
        let p = principal(&self.arn);
        json!({
            "sub": self.arn,
            "arn": self.arn,
            "account": self.account,
            "user_id": self.user_id,
            "principal_type": p.principal_type,
            "role_name": p.role_name,
            "session_name": p.session_name,
            "user_name": p.user_name,
            "region": request.region,
            "sts_endpoint": request.url.origin().ascii_serialization(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arn_shapes() {
        let p = principal("arn:aws:sts::123456789012:assumed-role/deploy/ci-run-7");
        assert_eq!(p.principal_type, "assumed-role");
        assert_eq!(p.role_name.as_deref(), Some("deploy"));
        assert_eq!(p.session_name.as_deref(), Some("ci-run-7"));
        let p = principal("arn:aws:iam::123456789012:user/team/alice");
        assert_eq!(p.principal_type, "user");
        assert_eq!(p.user_name.as_deref(), Some("alice"));
        assert_eq!(
            principal("arn:aws:iam::123456789012:root").principal_type,
            "root"
        );
        let p = principal("arn:aws:sts::123456789012:federated-user/bob");
        assert_eq!(p.user_name.as_deref(), Some("bob"));
        assert_eq!(principal("garbage").principal_type, "");
    }
}
