//! What an issuer entry of kind `aws-iam` says, checked once when the entry is loaded: the
//! accepted AWS accounts, the STS endpoints claimex may send a signed request to, and the
//! server id the request must be bound to. Plain data for the pure checks of this folder.

use serde::Deserialize;

use crate::subject::PolicyError;

/// Where a signed request may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsEndpoints {
    /// The AWS partition's STS endpoints over `https` on port 443: `sts.amazonaws.com`,
    /// `sts.<region>.amazonaws.com`, `sts-fips.<region>.amazonaws.com`.
    AwsPartition,
    /// These origins exactly (scheme, host, port), as configured.
    Listed(Vec<url::Url>),
}

impl StsEndpoints {
    /// Whether `url`'s scheme, host and port are allowed.
    pub fn allows(&self, url: &url::Url) -> bool {
        match self {
            StsEndpoints::AwsPartition => {
                url.scheme() == "https"
                    && url.port_or_known_default() == Some(443)
                    && url.host_str().is_some_and(aws_sts_host)
            }
            StsEndpoints::Listed(list) => list.iter().any(|allowed| {
                allowed.scheme() == url.scheme()
                    && allowed.host_str() == url.host_str()
                    && allowed.port_or_known_default() == url.port_or_known_default()
            }),
        }
    }

    /// The allow-list as the operator reads it, for messages.
    pub fn describe(&self) -> String {
        match self {
            StsEndpoints::AwsPartition => "https://sts.amazonaws.com, https://sts.<region>.amazonaws.com, https://sts-fips.<region>.amazonaws.com".into(),
            StsEndpoints::Listed(list) => list
                .iter()
                .map(|u| u.origin().ascii_serialization())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Whether `host` is an STS endpoint of the AWS partition.
fn aws_sts_host(host: &str) -> bool {
    if host == "sts.amazonaws.com" {
        return true;
    }
    let Some(rest) = host.strip_suffix(".amazonaws.com") else {
        return false;
    };
    let region = match rest.split_once('.') {
        Some(("sts" | "sts-fips", region)) => region,
        _ => return false,
    };
    valid_region(region)
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`: lowercase words joined by `-`, ending in
/// a number.
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// An `aws-iam` issuer entry as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsIamPolicy {
    /// The registered issuer id.
    pub id: String,
    /// Accepted AWS account ids (12 digits each, non-empty).
    pub accounts: Vec<String>,
    /// Where signed requests may be sent.
    pub sts_endpoints: StsEndpoints,
    /// The value the signed `x-claimex-server-id` header must have; `None`: the server's
    /// `public_url`.
    pub server_id: Option<String>,
}

/// The `aws-iam` fields of an issuer entry, as the operator writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsIamSpec {
    /// Accepted AWS account ids (12 digits). Organization ids are not supported.
    pub accounts: Vec<String>,
    /// STS endpoints (origins: `https://host[:port]`) that may be called. Default: the AWS
    /// partition's global, regional and FIPS endpoints.
    #[serde(default)]
    pub sts_endpoints: Option<Vec<String>>,
    /// The server id the request must carry in `x-claimex-server-id`. Default: `public_url`.
    #[serde(default)]
    pub server_id: Option<String>,
}

/// The names of [`AwsIamSpec`]'s fields.
pub const SPEC_FIELDS: [&str; 3] = ["accounts", "sts_endpoints", "server_id"];

impl AwsIamSpec {
    /// Checks the fields and yields the policy of issuer `id`.
    pub fn into_policy(
        self,
        id: &str,
        allow_http_loopback: bool,
    ) -> Result<AwsIamPolicy, PolicyError> {
        if self.accounts.is_empty() {
            return Err(PolicyError::new("accounts", "accounts must not be empty"));
        }
        if let Some(bad) = self
            .accounts
            .iter()
            .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(PolicyError::new(
                "accounts",
                format!(
                    "accounts: {bad:?} is not a 12-digit AWS account id (organization ids are not supported)"
                ),
            ));
        }
        let sts_endpoints = match self.sts_endpoints {
            None => StsEndpoints::AwsPartition,
            Some(list) if list.is_empty() => {
                return Err(PolicyError::new(
                    "sts_endpoints",
                    "sts_endpoints must not be empty (leave it out for AWS's endpoints)",
                ));
            }
            Some(list) => StsEndpoints::Listed(
                list.iter()
                    .map(|raw| endpoint(raw, allow_http_loopback))
                    .collect::<Result<_, _>>()
                    .map_err(|reason| PolicyError::new("sts_endpoints", reason))?,
            ),
        };
        if let Some(server_id) = &self.server_id
            && (server_id.is_empty()
                || server_id.len() > 255
                || !server_id.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(PolicyError::new(
                "server_id",
                "server_id must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(AwsIamPolicy {
            id: id.to_owned(),
            accounts: self.accounts,
            sts_endpoints,
            server_id: self.server_id,
        })
    }
}

fn endpoint(raw: &str, allow_http_loopback: bool) -> Result<url::Url, String> {
    let url =
        url::Url::parse(raw).map_err(|e| format!("sts_endpoints: {raw:?} is not a URL: {e}"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "sts_endpoints: {raw:?} must be an origin (scheme, host, port), without path or query"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "sts_endpoints: {raw:?} must not contain credentials"
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(format!("sts_endpoints: {raw:?} has no host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http_loopback && loopback => Ok(url),
        _ => Err(format!(
            "sts_endpoints: {raw:?} must use https (http only for loopback hosts with allow_http_loopback)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<AwsIamPolicy, PolicyError> {
        serde_json::from_value::<AwsIamSpec>(json)
            .unwrap()
            .into_policy("aws", true)
    }

    #[test]
    fn the_default_allow_list_is_aws_sts() {
        let aws = StsEndpoints::AwsPartition;
        for ok in [
            "https://sts.amazonaws.com/",
            "https://sts.eu-west-1.amazonaws.com/",
            "https://sts-fips.us-east-2.amazonaws.com:443/",
            "https://sts.us-gov-west-1.amazonaws.com/",
        ] {
            assert!(aws.allows(&url::Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in [
            "http://sts.amazonaws.com/",
            "https://sts.amazonaws.com:8443/",
            "https://sts.amazonaws.com.evil.com/",
            "https://evil.com/",
            "https://sts.eu-west-1.evil.amazonaws.com/",
            "https://s3.eu-west-1.amazonaws.com/",
            "https://sts.EU-west-1.amazonaws.com.x/",
            "https://sts..amazonaws.com/",
            "https://127.0.0.1/",
        ] {
            assert!(!aws.allows(&url::Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn entries_are_checked() {
        let ok = spec(serde_json::json!({"accounts": ["123456789012"], "sts_endpoints": ["http://127.0.0.1:4566"]})).unwrap();
        assert!(
            ok.sts_endpoints
                .allows(&url::Url::parse("http://127.0.0.1:4566/").unwrap())
        );
        assert!(
            !ok.sts_endpoints
                .allows(&url::Url::parse("http://127.0.0.1:4567/").unwrap())
        );
        assert!(
            !ok.sts_endpoints
                .allows(&url::Url::parse("https://127.0.0.1:4566/").unwrap())
        );
        for (json, needle) in [
            (serde_json::json!({"accounts": []}), "must not be empty"),
            (
                serde_json::json!({"accounts": ["o-abc123"]}),
                "organization ids",
            ),
            (serde_json::json!({"accounts": ["12345678901"]}), "12-digit"),
            (
                serde_json::json!({"accounts": ["123456789012"], "sts_endpoints": ["http://sts.amazonaws.com"]}),
                "https",
            ),
            (
                serde_json::json!({"accounts": ["123456789012"], "sts_endpoints": ["https://sts.amazonaws.com/x"]}),
                "origin",
            ),
            (
                serde_json::json!({"accounts": ["123456789012"], "server_id": ""}),
                "server_id",
            ),
        ] {
            let err = spec(json.clone()).unwrap_err();
            assert!(err.reason.contains(needle), "{json}: {}", err.reason);
        }
    }
}
