//! The AWS API emulator: `moto_server` on 127.0.0.1, started through `moto_launcher.py` (beside
//! this crate's `Cargo.toml`: it fixes moto's KMS `MessageType=DIGEST` signing and
//! `GetPublicKey` answer, see its docstring), the real `aws-sdk-ssm`/`aws-sdk-kms`/
//! `aws-sdk-dynamodb` clients pointed at it (and the one-use table of AWS identities), a loopback TCP [`Proxy`] that can cut or blackhole it, and claimex's
//! configuration for the SSM registry and the KMS signer on it.
//!
//! Needs `moto[server]` (`make emulator`, or `pip install "moto[server]"`); the Python
//! interpreter is `CLAIMEX_TEST_PYTHON`, else `python3`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_ssm::types::ParameterType;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::Claimex;
use crate::{net, root, scratch, tail};

/// Static credentials the emulator accepts.
pub const ACCESS_KEY: &str = "testing";
/// Static credentials the emulator accepts.
pub const SECRET_KEY: &str = "testing";
/// The region everything lives in.
pub const REGION: &str = "us-east-1";
/// The issuer prefix of the SSM registry (claimex's default).
pub const PREFIX: &str = "/claimex/issuers/";

const INSTALL_HINT: &str =
    "the AWS emulator is needed: `make emulator` (pip install \"moto[server]\")";

/// The Python interpreter: `CLAIMEX_TEST_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("CLAIMEX_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `python` can import `moto.server`; `Err` says how to install it.
pub fn available(python: &str) -> Result<(), String> {
    let importable = Command::new(python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if importable {
        Ok(())
    } else {
        Err(format!(
            "{python} cannot import moto.server; {INSTALL_HINT}"
        ))
    }
}

/// A `moto_server` process on 127.0.0.1. Killed on drop.
pub struct Moto {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Moto {
    /// Starts an emulator on a free port; panics, saying how to install moto, when it cannot.
    pub fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            match Moto::start_on(net::free_port()) {
                Ok(moto) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// Starts an emulator on `port` (e.g. the port of one that was stopped).
    pub fn start_on(port: u16) -> Result<Moto, String> {
        Moto::start_with(&python(), port, None)
    }

    /// Starts an emulator with `python` on `port`, pinned to `cpus` (`taskset -c`) if given;
    /// waits until it listens (30 s at most).
    pub fn start_with(python: &str, port: u16, cpus: Option<&str>) -> Result<Moto, String> {
        Moto::start_with_env(python, port, cpus, &[])
    }

    /// Starts an emulator whose IAM authentication is on: every request after the first
    /// `free_actions` must be SigV4-signed with a key the emulator issued (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT`), so a tampered signature is refused as AWS would.
    pub fn start_authenticated(free_actions: u32) -> Moto {
        let count = free_actions.to_string();
        let mut last = String::new();
        for _ in 0..3 {
            match Moto::start_with_env(
                &python(),
                net::free_port(),
                None,
                &[("INITIAL_NO_AUTH_ACTION_COUNT", &count)],
            ) {
                Ok(moto) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    /// [`Moto::start_with`] with more environment variables for the emulator.
    pub fn start_with_env(
        python: &str,
        port: u16,
        cpus: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Moto, String> {
        available(python)?;
        let log = scratch(&format!("moto-{port}")).join("moto.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, python]);
                c
            }
            None => Command::new(python),
        };
        command.envs(env.iter().copied());
        let child = command
            .arg(root().join("tests/support/moto_launcher.py"))
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
            if net::port_open(moto.addr()) {
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
        net::loopback(self.port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The emulator's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the emulator (its state is gone) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while net::port_open(self.addr()) {
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
/// would have lost it). Runs on the caller's tokio runtime; stops on drop.
pub struct Proxy {
    addr: SocketAddr,
    link: Arc<watch::Sender<Link>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target`, up.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy has no address: {e}"));
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
    aws_sdk_ssm::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "claimex-testkit")
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

/// A DynamoDB client for the emulator at `url`.
pub fn dynamodb(url: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(url)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates the one-use table of AWS identities as the deploy templates do: partition key
/// `signature_sha256` (a string), on demand, TTL on `expires_at`.
pub async fn create_replay_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    fn built<T>(e: aws_sdk_dynamodb::error::BuildError) -> T {
        panic!("DynamoDB request: {e}")
    }
    dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("signature_sha256")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap_or_else(built),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("signature_sha256")
                .key_type(KeyType::Hash)
                .build()
                .unwrap_or_else(built),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DynamoDB CreateTable {name}: {e:?}"));
    dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .unwrap_or_else(built),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DynamoDB UpdateTimeToLive {name}: {e:?}"));
}

/// Creates an asymmetric signing key of `spec` and returns its ARN.
pub async fn create_key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    let out = kms
        .create_key()
        .key_spec(spec.clone())
        .key_usage(KeyUsageType::SignVerify)
        .description(format!("claimex test key {}", spec.as_str()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("KMS CreateKey: {e:?}"));
    out.key_metadata()
        .and_then(|m| m.arn())
        .unwrap_or_else(|| panic!("KMS CreateKey answered no ARN"))
        .to_owned()
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

/// The AWS environment of a claimex child (written into `dir`): the emulator's static
/// credentials and region, empty shared config and credentials files, no instance metadata.
pub fn aws_env(dir: &Path) -> Vec<(String, String)> {
    for file in ["aws-config", "aws-credentials"] {
        let path = dir.join(file);
        std::fs::write(&path, "")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
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

/// claimex with the SSM registry and the KMS signer with `key`, both at `endpoint`
/// (`[aws] endpoint_url`), refreshing every second, with short issuer-key cache bounds.
pub fn ssm_kms(endpoint: &str, key: &str) -> Claimex {
    Claimex::new()
        .env("CLAIMEX_AWS__ENDPOINT_URL", endpoint)
        .env("CLAIMEX_REGISTRY__BACKEND", "ssm")
        .env("CLAIMEX_REGISTRY__REFRESH_SECS", "1")
        .env("CLAIMEX_SIGNER__BACKEND", "kms")
        .env("CLAIMEX_SIGNER__KMS_KEY_ID", key)
        .env("CLAIMEX_JWKS__MIN_TTL_SECS", "1")
        .env("CLAIMEX_JWKS__DEFAULT_TTL_SECS", "1")
}

/// Creates the IAM user `user` with a policy allowing everything and an access key, through
/// the emulator's IAM Query API (three actions: to be among the first, unauthenticated ones
/// of [`Moto::start_authenticated`]); returns the key id and secret.
pub async fn create_user_with_key(url: &str, user: &str) -> (String, String) {
    let endpoint = format!("{url}/");
    let call = |body: String| {
        let endpoint = endpoint.clone();
        async move {
            let signed = crate::sigv4::sign_post(
                &endpoint,
                "iam",
                REGION,
                ACCESS_KEY,
                SECRET_KEY,
                &body,
                &[],
                std::time::SystemTime::now(),
            );
            let (status, text) = crate::sigv4::send(&signed).await;
            assert_eq!(status, 200, "IAM refused {body}: {text}");
            text
        }
    };
    call(format!(
        "Action=CreateUser&UserName={user}&Version=2010-05-08"
    ))
    .await;
    let policy = url::form_urlencoded::byte_serialize(
        br#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .collect::<String>();
    call(format!(
        "Action=PutUserPolicy&UserName={user}&PolicyName=all&PolicyDocument={policy}&Version=2010-05-08"
    ))
    .await;
    let text = call(format!(
        "Action=CreateAccessKey&UserName={user}&Version=2010-05-08"
    ))
    .await;
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = text
            .find(&open)
            .unwrap_or_else(|| panic!("no {name} in CreateAccessKey's answer: {text}"))
            + open.len();
        let end = start + text[start..].find('<').unwrap_or(0);
        text[start..end].trim().to_owned()
    };
    (field("AccessKeyId"), field("SecretAccessKey"))
}
