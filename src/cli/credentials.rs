//! `claimex credentials`: the client of `POST /credentials` for a CI job, made to be an AWS
//! `credential_process`. It gets the job's id-token (a file, a variable, GitHub Actions'
//! id-token request, GitLab CI's `id_tokens` variable), asks claimex for the role's
//! credentials, and prints the `credential_process` JSON (or `export` lines) on stdout.
//! Nothing but the answer goes to stdout; errors go to stderr with claimex's `reason_code`,
//! and the token and the credentials are never written anywhere else.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The variable GitLab CI puts the id-token in with `--gitlab-ci` (declare it under
/// `id_tokens:` in `.gitlab-ci.yml`).
pub const GITLAB_TOKEN_VAR: &str = "CLAIMEX_ID_TOKEN";

/// How long any one HTTP call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the id-token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file holding it.
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
    /// GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` with `audience`, authorised by
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    GithubActions {
        /// The audience to request (the one the issuer entry accepts).
        audience: String,
    },
    /// GitLab CI: the `CLAIMEX_ID_TOKEN` variable of `id_tokens:`.
    GitlabCi,
}

/// What to ask for.
#[derive(Debug, Clone)]
pub struct CredentialsInput {
    /// claimex's base URL.
    pub url: String,
    /// The issuer entry.
    pub issuer_id: String,
    /// The role (else the entry's default).
    pub role_arn: Option<String>,
    /// The session length.
    pub duration_seconds: Option<u64>,
    /// The session name.
    pub role_session_name: Option<String>,
    /// Where the id-token comes from.
    pub source: TokenSource,
    /// `export` lines instead of the `credential_process` JSON.
    pub env_format: bool,
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

/// The id-token, trimmed.
async fn id_token(source: &TokenSource, http: &reqwest::Client) -> anyhow::Result<String> {
    let token = match source {
        TokenSource::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the id-token file {}", path.display()))?,
        TokenSource::Env(name) => env(name)?,
        TokenSource::GitlabCi => env(GITLAB_TOKEN_VAR).context(
            "--gitlab-ci reads the id-token from CLAIMEX_ID_TOKEN: declare it under id_tokens: in .gitlab-ci.yml",
        )?,
        TokenSource::GithubActions { audience } => {
            let request_url = env("ACTIONS_ID_TOKEN_REQUEST_URL")
                .context("--github-actions needs the job's `permissions: id-token: write`")?;
            let bearer = env("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?;
            let mut url = url::Url::parse(&request_url)
                .context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
            url.query_pairs_mut().append_pair("audience", audience);
            let response = http
                .get(url)
                .bearer_auth(bearer)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .context("cannot request the GitHub Actions id-token")?;
            let status = response.status();
            if !status.is_success() {
                bail!("the GitHub Actions id-token request answered {status}");
            }
            let body: Value = response
                .json()
                .await
                .context("the GitHub Actions id-token answer is not JSON")?;
            body["value"]
                .as_str()
                .context("the GitHub Actions id-token answer has no `value`")?
                .to_owned()
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the id-token is empty");
    }
    Ok(token)
}

/// Gets the id-token, calls `POST <url>/credentials`, and returns what to print.
pub async fn run(input: &CredentialsInput) -> anyhow::Result<String> {
    let http = client()?;
    let token = id_token(&input.source, &http).await?;
    let mut url = url::Url::parse(input.url.trim_end_matches('/'))
        .with_context(|| format!("--url {:?} is not a URL", input.url))?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url {:?} cannot have a path", input.url))?
        .push("credentials");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("issuerId", &input.issuer_id);
        if let Some(role) = &input.role_arn {
            query.append_pair("role_arn", role);
        }
        if let Some(seconds) = input.duration_seconds {
            query.append_pair("duration_seconds", &seconds.to_string());
        }
        if let Some(name) = &input.role_session_name {
            query.append_pair("role_session_name", name);
        }
        if input.env_format {
            query.append_pair("format", "env");
        }
    }
    let response = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .body(token)
        .send()
        .await
        .with_context(|| format!("cannot reach claimex at {}", input.url))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .context("cannot read claimex's answer")?;
    if !status.is_success() {
        let refusal: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        bail!(
            "claimex refused ({status}, {}): {}",
            refusal["reason_code"].as_str().unwrap_or("no reason_code"),
            refusal["error_description"]
                .as_str()
                .unwrap_or("no description")
        );
    }
    if !input.env_format {
        let json: Value =
            serde_json::from_str(&body).context("claimex's answer is not the expected JSON")?;
        if json["Version"] != 1 || !json["AccessKeyId"].is_string() {
            bail!("claimex's answer is not credential_process JSON");
        }
    }
    Ok(body)
}
