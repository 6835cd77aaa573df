//! Harness for `tests/aws.rs`: a real AWS emulator (`moto_server`, through
//! `moto_launcher.py` beside this file), a cuttable loopback TCP proxy in front of it, the
//! real `aws-sdk-ssm`/`aws-sdk-kms` clients pointed at it, and the real `claimex serve`
//! binary as a child process. Everything listens on 127.0.0.1, every wait has a deadline,
//! and every process is killed when its handle drops.
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_ssm::types::ParameterType;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Static credentials the emulator accepts.
pub const ACCESS_KEY: &str = "testing";
/// Static credentials the emulator accepts.
pub const SECRET_KEY: &str = "testing";
/// The region everything lives in.
pub const REGION: &str = "us-east-1";
/// The issuer prefix the tests use (the default).
pub const PREFIX: &str = "/claimex/issuers/";
/// The stock GitHub mapper's file name.
pub const GITHUB_MAPPER: &str = "claimex_mapper_github.wasm";

const INSTALL_HINT: &str = "the AWS emulator is needed: pip install \"moto[server]\"";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A unique scratch directory under `target/tmp/aws-tests` (removed by its owner unless
/// the test failed).
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/tmp/aws-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free loopback port (bound and released; the caller binds it right away).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `probe` every 100 ms until it yields a value; panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stock GitHub mapper, built once per test binary (a no-op when up to date); returns
/// the directory holding it.
pub fn mapper_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let built = claimex_testkit::build_mapper_components(root(), &["claimex-mapper-github"])
            .unwrap_or_else(|e| panic!("{e}"));
        built[0].parent().unwrap().to_path_buf()
    })
}

/// A `moto_server` process on 127.0.0.1, started through `moto_launcher.py` (which fixes
/// moto's KMS `MessageType=DIGEST` signing; see the comment there). Killed on drop.
pub struct Moto {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Moto {
    /// Starts an emulator on a free port. Panics, saying how to install moto, when it cannot
    /// start.
    pub fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            match Moto::start_on(free_port()) {
                Ok(moto) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("{INSTALL_HINT}; moto_server did not start: {last}");
    }

    /// Starts an emulator on `port` (e.g. the port of one that was stopped).
    pub fn start_on(port: u16) -> Result<Moto, String> {
        let python = std::env::var("CLAIMEX_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let log = scratch(&format!("moto-{port}")).join("moto.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&python)
            .arg(root().join("tests/aws_support/moto_launcher.py"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}; {INSTALL_HINT}"))?;
        let mut moto = Moto {
            port,
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = moto
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "moto_launcher.py exited ({status}); {INSTALL_HINT}. Its output:\n{}",
                    tail(&moto.log, 20)
                ));
            }
            if StdStream::connect_timeout(&moto.addr(), Duration::from_millis(200)).is_ok() {
                return Ok(moto);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "moto_server did not listen on {} within 30 s. Its output:\n{}",
                    moto.addr(),
                    tail(&moto.log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the emulator (its state is gone) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while StdStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "moto on {} did not stop",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Logs stay for a failed test's post-mortem.
        if !std::thread::panicking()
            && let Some(dir) = self.log.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forwards.
    Up,
    /// Closes live connections and closes new ones at once (connection reset / EOF).
    Cut,
    /// Holds connections open and forwards nothing (a network partition: only timeouts
    /// notice it).
    Blackhole,
}

/// A loopback TCP proxy that can be cut and restored, to make an AWS endpoint go away and
/// come back with its state intact (moto keeps state in memory, so a restarted emulator
/// would have lost it). Runs on the test's tokio runtime; stops on drop.
pub struct Proxy {
    addr: SocketAddr,
    link: Arc<watch::Sender<Link>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target`, up.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let link = Arc::new(watch::channel(Link::Up).0);
        let state = link.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut changes = state.subscribe();
                let now = *changes.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Link::Cut => return,
                        Link::Blackhole => {
                            // Held open, silent, until the link changes; then closed.
                            let _ = changes.changed().await;
                            return;
                        }
                        Link::Up => {}
                    }
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let stopped = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => None,
                        link = changes.wait_for(|link| *link != Link::Up) => link.ok().map(|l| *l),
                    };
                    if stopped == Some(Link::Blackhole) {
                        let _ = changes.changed().await;
                    }
                });
            }
        });
        Proxy { addr, link, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets what the proxy does from now on (live connections included).
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.link.send_replace(Link::Cut);
        self.task.abort();
    }
}

fn credentials() -> aws_sdk_ssm::config::Credentials {
    aws_sdk_ssm::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "claimex-tests")
}

/// An SSM client for the emulator at `url` (real SDK, endpoint override, static credentials).
pub fn ssm(url: &str) -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(url)
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

/// A KMS client for the emulator at `url`.
pub fn kms(url: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(url)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Creates an asymmetric signing key and returns its ARN.
pub async fn create_key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    let out = kms
        .create_key()
        .key_spec(spec.clone())
        .key_usage(KeyUsageType::SignVerify)
        .description(format!("claimex test key {}", spec.as_str()))
        .send()
        .await
        .expect("KMS CreateKey");
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

/// The issuer entry JSON for `issuer_url`, accepting `audience`, with the GitHub mapper.
pub fn issuer_entry(issuer_url: &str, audience: &str) -> Value {
    serde_json::json!({
        "issuer": issuer_url,
        "audiences": [audience],
        "mapper": GITHUB_MAPPER,
        "mapper_config": {"allowed_owners": ["octo-org"], "transitive_tag_keys": ["repository"]},
    })
}

/// Writes (or overwrites) the parameter `name` with `value`.
pub async fn put_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    kind: ParameterType,
) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSM PutParameter {name}: {e:?}"));
}

/// Registers issuer `id` as the parameter `<PREFIX><id>`.
pub async fn put_issuer(ssm: &aws_sdk_ssm::Client, id: &str, entry: &Value, kind: ParameterType) {
    put_parameter(ssm, &format!("{PREFIX}{id}"), &entry.to_string(), kind).await;
}

/// Deletes the parameter `name`.
pub async fn delete_parameter(ssm: &aws_sdk_ssm::Client, name: &str) {
    ssm.delete_parameter()
        .name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSM DeleteParameter {name}: {e:?}"));
}

/// The Unix time now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Environment shared by the server and the CLI: static credentials, a region, empty shared
/// config files, no instance metadata.
fn aws_env(dir: &Path) -> Vec<(String, String)> {
    for file in ["aws-config", "aws-credentials"] {
        std::fs::write(dir.join(file), "").unwrap();
    }
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        (
            "AWS_CONFIG_FILE",
            dir.join("aws-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("aws-credentials").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A command for the claimex binary with a clean AWS/CLAIMEX environment plus `env`.
fn claimex_command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimex"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") || name.starts_with("CLAIMEX_") {
            command.env_remove(name);
        }
    }
    command.envs(aws_env(dir)).envs(env.iter().cloned());
    command.current_dir(dir).stdin(Stdio::null());
    command
}

/// What a claimex child process is configured with, as `CLAIMEX_*` (and `AWS_*`) variables.
#[derive(Clone, Default)]
pub struct ServerEnv {
    vars: Vec<(String, String)>,
}

impl ServerEnv {
    /// SSM registry and KMS signer with `key`, both at `endpoint` (`[aws] endpoint_url`),
    /// refreshing every second.
    pub fn ssm_kms(endpoint: &str, key: &str) -> ServerEnv {
        ServerEnv::default()
            .set("CLAIMEX_AWS__ENDPOINT_URL", endpoint)
            .set("CLAIMEX_REGISTRY__BACKEND", "ssm")
            .set("CLAIMEX_REGISTRY__REFRESH_SECS", "1")
            .set("CLAIMEX_SIGNER__BACKEND", "kms")
            .set("CLAIMEX_SIGNER__KMS_KEY_ID", key)
    }

    /// Adds or replaces a variable.
    pub fn set(mut self, name: &str, value: &str) -> ServerEnv {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes a variable.
    pub fn unset(mut self, name: &str) -> ServerEnv {
        self.vars.retain(|(n, _)| n != name);
        self
    }

    /// The variables.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }
}

/// The real `claimex serve` binary as a child process on a loopback port. Killed on drop.
pub struct Server {
    /// `http://127.0.0.1:PORT` (also its `public_url`).
    pub url: String,
    child: Option<Child>,
    log: PathBuf,
    dir: PathBuf,
    http: reqwest::Client,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// `Retry-After`, when present.
    pub retry_after: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

impl Server {
    /// Starts claimex and waits until `/healthz` answers 200; panics with its log otherwise.
    pub async fn start(env: &ServerEnv) -> Server {
        match Server::try_start(env).await {
            Ok(server) => server,
            Err(log) => panic!("claimex did not start:\n{log}"),
        }
    }

    /// Starts claimex; `Err` holds its log when it exits or is not healthy within 60 s.
    pub async fn try_start(env: &ServerEnv) -> Result<Server, String> {
        let dir = scratch("claimex");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let log = dir.join("claimex.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut vars = vec![
            ("CLAIMEX_PUBLIC_URL".to_owned(), url.clone()),
            ("CLAIMEX_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("CLAIMEX_ALLOW_HTTP_LOOPBACK".to_owned(), "true".to_owned()),
            ("CLAIMEX_WORKERS".to_owned(), "2".to_owned()),
            (
                "CLAIMEX_MAPPER__DIR".to_owned(),
                mapper_dir().display().to_string(),
            ),
            (
                "CLAIMEX_MAPPER__CACHE_DIR".to_owned(),
                root().join("target/mapper-cache").display().to_string(),
            ),
            ("CLAIMEX_JWKS__MIN_TTL_SECS".to_owned(), "1".to_owned()),
            ("CLAIMEX_JWKS__DEFAULT_TTL_SECS".to_owned(), "1".to_owned()),
            ("CLAIMEX_LOG".to_owned(), "info".to_owned()),
        ];
        for (name, value) in env.vars() {
            vars.retain(|(n, _)| n != name);
            vars.push((name.clone(), value.clone()));
        }
        let child = claimex_command(&dir, &vars)
            .arg("serve")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot run the claimex binary");
        let mut server = Server {
            url,
            child: Some(child),
            log,
            dir,
            http: http_client(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                server.child = None;
                return Err(format!(
                    "claimex exited ({status}):\n{}",
                    server.log_tail(40)
                ));
            }
            if let Ok(answer) = server.get("/healthz").await
                && answer.status == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "claimex was not healthy within 60 s:\n{}",
                    server.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    async fn get(&self, path: &str) -> Result<Answer, reqwest::Error> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        answer(response).await
    }

    /// `GET path`, panicking on transport errors.
    pub async fn fetch(&self, path: &str) -> Answer {
        self.get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_tail(30)))
    }

    /// `GET /healthz` as JSON.
    pub async fn healthz(&self) -> Value {
        self.fetch("/healthz").await.json()
    }

    /// `GET /.well-known/jwks.json` as JSON.
    pub async fn jwks(&self) -> Value {
        self.fetch("/.well-known/jwks.json").await.json()
    }

    /// The `kid`s of the published JWKS, sorted.
    pub async fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// `POST /exchange[?issuerId=ID]` with the token as the body.
    pub async fn exchange(&self, token: &str, issuer_id: Option<&str>) -> Answer {
        let mut url = format!("{}/exchange", self.url);
        if let Some(id) = issuer_id {
            url.push_str(&format!("?issuerId={id}"));
        }
        let response = self
            .http
            .post(url)
            .header("content-type", "application/jwt")
            .body(token.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /exchange: {e}\n{}", self.log_tail(30)));
        answer(response).await.unwrap()
    }

    /// Exchanges and expects a token; panics with the answer and the log otherwise.
    pub async fn exchange_ok(&self, token: &str, issuer_id: Option<&str>) -> String {
        let answer = self.exchange(token, issuer_id).await;
        assert_eq!(
            answer.status,
            200,
            "exchange refused: {answer:?}\n{}",
            self.log_tail(30)
        );
        answer.body
    }

    /// Runs `claimex <args>` (e.g. `keys stage KEY`) with the server's configuration and
    /// returns (success, stdout, stderr).
    pub fn cli(&self, env: &ServerEnv, args: &[&str]) -> (bool, String, String) {
        let mut vars = vec![
            ("CLAIMEX_PUBLIC_URL".to_owned(), self.url.clone()),
            ("CLAIMEX_ALLOW_HTTP_LOOPBACK".to_owned(), "true".to_owned()),
        ];
        vars.extend(env.vars().iter().cloned());
        cli(&self.dir, &vars, args)
    }
}

/// Runs the claimex binary with `args` and a clean environment plus `vars`; 60 s at most.
pub fn cli(dir: &Path, vars: &[(String, String)], args: &[&str]) -> (bool, String, String) {
    let child = claimex_command(dir, vars)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the claimex binary");
    let (tx, rx) = std::sync::mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("claimex CLI"),
        Err(_) => {
            // The waiting thread owns the child; end it by its pid.
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("claimex {args:?} did not finish within 60 s");
        }
    };
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn answer(response: reqwest::Response) -> Result<Answer, reqwest::Error> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Logs stay for a failed test's post-mortem.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The header of a compact JWS.
pub fn header(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Verifies `token` against `jwks` (the key named by its `kid`) with jsonwebtoken, checking
/// `iss` and `aud`; returns the claims.
pub fn verify(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("the token has no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("the JWKS has no keys")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}
