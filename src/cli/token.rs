//! `claimex token aws`: the client side of AWS identities. Signs `sts:GetCallerIdentity` with
//! the standard AWS credential chain (aws-config) and the `aws-sigv4` crate, bound to the
//! claimex at `--url` by a signed `x-claimex-server-id` header and made unique by a signed
//! `x-claimex-nonce`; sends it to that claimex's `POST /token` as an `aws4_request` subject
//! token; prints or writes the JWT. The AWS credentials never leave this process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::exchange::IdSource;
use crate::http::{JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT};
use crate::subject::aws_iam::{AWS4_REQUEST_TOKEN_TYPE, SERVER_ID_HEADER};
use crate::system::RandomIds;

/// The body of `sts:GetCallerIdentity`.
const GET_CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// What `claimex token aws` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// The claimex to ask (its public_url).
    #[arg(long)]
    pub url: String,
    /// The audience of the token (one of the entry's output_audiences).
    #[arg(long)]
    pub audience: Option<String>,
    /// The issuer entry of kind aws-iam (default: the only one claimex has).
    #[arg(long)]
    pub issuer_id: Option<String>,
    /// The server id the entry expects (default: --url).
    #[arg(long)]
    pub server_id: Option<String>,
    /// The STS endpoint to sign for (default: AWS_ENDPOINT_URL_STS, else the region's).
    #[arg(long, env = "AWS_ENDPOINT_URL_STS")]
    pub sts_endpoint: Option<String>,
    /// Write the token to this file (mode 0600) instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// Runs `claimex token aws`.
pub async fn aws(args: AwsArgs) -> anyhow::Result<ExitCode> {
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let credentials = config
        .credentials_provider()
        .ok_or_else(|| anyhow!("no AWS credentials provider is configured"))?
        .provide_credentials()
        .await
        .context("no AWS credentials (environment, profile, SSO, container or instance role)")?;
    let base = args.url.trim_end_matches('/');
    let sts = match &args.sts_endpoint {
        Some(url) => format!("{}/", url.trim_end_matches('/')),
        None => format!("https://sts.{region}.amazonaws.com/"),
    };
    let parsed = url::Url::parse(&sts).with_context(|| format!("{sts} is not a URL"))?;
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    let server_id = args.server_id.as_deref().unwrap_or(base);
    let nonce = RandomIds.token_id();
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ),
        (SERVER_ID_HEADER.into(), server_id.to_owned()),
        ("x-claimex-nonce".into(), nonce),
    ];
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .context("cannot build the SigV4 parameters")?
        .into();
    let signable = SignableRequest::new(
        "POST",
        sts.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(GET_CALLER_IDENTITY.as_bytes()),
    )
    .context("cannot sign the request")?;
    let (instructions, _) = sign(signable, &params)
        .context("cannot sign the request")?
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
    }
    let signed = serde_json::json!({
        "url": sts,
        "method": "POST",
        "headers": headers.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "body": GET_CALLER_IDENTITY,
    });
    let subject_token = URL_SAFE_NO_PAD.encode(signed.to_string());
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token_type", AWS4_REQUEST_TOKEN_TYPE),
        ("subject_token", subject_token.as_str()),
        ("requested_token_type", JWT_TOKEN_TYPE),
    ];
    if let Some(id) = &args.issuer_id {
        form.push(("issuer_id", id));
    }
    if let Some(audience) = &args.audience {
        form.push(("audience", audience));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .with_context(|| format!("{base}/token cannot be reached"))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{base}/token answered {status} without JSON"))?;
    let Some(token) = answer["access_token"]
        .as_str()
        .filter(|_| status.is_success())
    else {
        eprintln!(
            "claimex: refused ({status}): {} [{}] {}",
            answer["error"].as_str().unwrap_or("?"),
            answer["reason_code"].as_str().unwrap_or("?"),
            answer["error_description"].as_str().unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    };
    match &args.output {
        Some(path) => write_private(path, token)?,
        None => println!("{token}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &PathBuf, token: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}
