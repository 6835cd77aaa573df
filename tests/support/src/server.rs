//! claimex itself, for tests and benches: one builder, [`Claimex`], which writes a
//! configuration (and an issuers file) into a directory of its own and starts claimex
//! either in this process ([`Claimex::start`] → [`InProcess`]: `app::build` and `app::server`
//! on a thread of their own) or as the real `claimex serve` binary in a child process
//! ([`Claimex::spawn`] → [`Process`]), on a loopback port. Both stop when dropped.
//!
//! The configuration: `public_url` and `listen` on the chosen port, `allow_http_loopback`,
//! `workers = 2`, the mapper directory ([`crate::mappers::all`] unless set) and the shared
//! compiled-mapper cache `target/mapper-cache` (unless set), then the TOML given to
//! [`Claimex::settings`], merged section by section. `CLAIMEX_*` variables given to
//! [`Claimex::env`] override it as the environment would (in process through
//! `Config::load_with_env`, in the child as its environment).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use claimex::config::Config;

use crate::client::{Answer, http};
use crate::{cli, jwks, mappers, moto, net, root, scratch, tail};

/// Settings that make tests fast: short key-cache bounds and refetch interval, a registry
/// refreshed every second.
pub const FAST: &str = "[jwks]\nmin_ttl_secs = 1\ndefault_ttl_secs = 1\nrefetch_interval_secs = 1\n[registry]\nrefresh_secs = 1\n";

/// How long a server may take to be ready.
const READY: Duration = Duration::from_secs(60);

/// A claimex to start: its issuers, settings and environment. See the module documentation.
#[derive(Debug, Clone)]
pub struct Claimex {
    issuers: Option<String>,
    settings: toml::Table,
    env: Vec<(String, String)>,
    mapper_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    workers: usize,
    dir: Option<PathBuf>,
    program: Option<PathBuf>,
    cpus: Option<String>,
    metrics: bool,
}

impl Default for Claimex {
    fn default() -> Claimex {
        Claimex::new()
    }
}

impl Claimex {
    /// The defaults of the module documentation, no issuers file, no settings.
    pub fn new() -> Claimex {
        Claimex {
            issuers: None,
            settings: toml::Table::new(),
            env: Vec::new(),
            mapper_dir: None,
            cache_dir: Some(root().join("target/mapper-cache")),
            workers: 2,
            dir: None,
            program: None,
            cpus: None,
            metrics: false,
        }
    }

    /// The issuers file (TOML, the file registry's `issuers.toml` beside the config).
    pub fn issuers(mut self, toml: &str) -> Claimex {
        self.issuers = Some(toml.to_owned());
        self
    }

    /// More configuration (TOML), merged into what is there section by section.
    pub fn settings(mut self, toml: &str) -> Claimex {
        let extra: toml::Table = toml::from_str(toml)
            .unwrap_or_else(|e| panic!("the settings are not TOML ({e}):\n{toml}"));
        merge(&mut self.settings, extra);
        self
    }

    /// Sets an environment variable of claimex (`CLAIMEX_*` overrides, `AWS_*`, ...).
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Claimex {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value));
        self
    }

    /// Removes a variable set with [`Claimex::env`].
    pub fn env_remove(mut self, name: &str) -> Claimex {
        self.env.retain(|(n, _)| n != name);
        self
    }

    /// The directory the issuers' mapper paths are relative to.
    pub fn mapper_dir(mut self, dir: impl Into<PathBuf>) -> Claimex {
        self.mapper_dir = Some(dir.into());
        self
    }

    /// The compiled-mapper cache, or none (`mapper.cache = false`: compile at every start).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Claimex {
        self.cache_dir = dir;
        self
    }

    /// HTTP worker threads.
    pub fn workers(mut self, workers: usize) -> Claimex {
        self.workers = workers;
        self
    }

    /// Writes the configuration, the signing key and the log into `dir` (created if needed,
    /// kept afterwards) instead of a scratch directory removed with the server.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Claimex {
        self.dir = Some(dir.into());
        self
    }

    /// Runs this claimex binary instead of the one cargo built beside the running test.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Claimex {
        self.program = Some(program.into());
        self
    }

    /// Serves `GET /metrics` on a loopback listener of its own (`metrics_listen`); its URL is
    /// [`InProcess::metrics_url`] / [`Process::metrics_url`].
    pub fn metrics(mut self) -> Claimex {
        self.metrics = true;
        self
    }

    /// Pins the child process to these CPUs (`taskset -c CPUS`, e.g. `0` or `0,1`).
    pub fn cpus(mut self, cpus: &str) -> Claimex {
        self.cpus = Some(cpus.to_owned());
        self
    }

    /// Creates the directory and writes `claimex.toml` (and `issuers.toml`) for a server
    /// at `addr`; returns (directory, whether it is a scratch one, config path).
    fn prepare(&self, addr: SocketAddr) -> std::io::Result<(PathBuf, bool, PathBuf)> {
        let (dir, scratch_dir) = match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), false)
            }
            None => (scratch("claimex"), true),
        };
        let mapper_dir = match &self.mapper_dir {
            Some(dir) => dir.clone(),
            None => mappers::all().to_path_buf(),
        };
        let mut table = toml::Table::new();
        let text = |s: String| toml::Value::String(s);
        table.insert("public_url".into(), text(format!("http://{addr}")));
        table.insert("listen".into(), text(addr.to_string()));
        table.insert("allow_http_loopback".into(), toml::Value::Boolean(true));
        table.insert("workers".into(), toml::Value::Integer(self.workers as i64));
        let mut mapper = toml::Table::new();
        mapper.insert("dir".into(), text(mapper_dir.display().to_string()));
        match &self.cache_dir {
            Some(cache) => {
                mapper.insert("cache_dir".into(), text(cache.display().to_string()));
            }
            None => {
                mapper.insert("cache".into(), toml::Value::Boolean(false));
            }
        }
        table.insert("mapper".into(), toml::Value::Table(mapper));
        merge(&mut table, self.settings.clone());
        if let Some(issuers) = &self.issuers {
            std::fs::write(dir.join("issuers.toml"), issuers)?;
        }
        let config = dir.join("claimex.toml");
        // `{url}` in the settings stands for claimex's own `http://127.0.0.1:PORT`.
        let text = toml::to_string(&table)
            .map_err(std::io::Error::other)?
            .replace("{url}", &format!("http://{addr}"));
        std::fs::write(&config, text)?;
        Ok((dir, scratch_dir, config))
    }

    /// Writes the configuration as [`Claimex::start`] would and loads it, starting nothing:
    /// for code that assembles claimex's parts itself (`claimex::app::build`).
    pub fn load(self) -> anyhow::Result<Loaded> {
        let (dir, scratch_dir, path) = self.prepare(net::loopback(net::free_port()))?;
        let dir = DirGuard {
            dir,
            remove: scratch_dir,
        };
        let config = Config::load_with_env(Some(&path), &self.env)?;
        Ok(Loaded { config, _dir: dir })
    }

    /// Starts claimex in this process; panics when it does not start.
    pub fn start(self) -> InProcess {
        self.try_start()
            .unwrap_or_else(|e| panic!("claimex did not start: {e:#}"))
    }

    /// Starts claimex in this process (its own thread and runtime); the start-up error.
    pub fn try_start(self) -> anyhow::Result<InProcess> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let metrics_listener = match self.metrics {
            true => Some(std::net::TcpListener::bind("127.0.0.1:0")?),
            false => None,
        };
        let mut this = self;
        if let Some(l) = &metrics_listener {
            this = this.settings(&format!("metrics_listen = \"{}\"", l.local_addr()?));
        }
        let metrics_url = match &metrics_listener {
            Some(l) => Some(format!("http://{}", l.local_addr()?)),
            None => None,
        };
        let (dir, scratch_dir, path) = this.prepare(addr)?;
        let guard = DirGuard {
            dir: dir.clone(),
            remove: scratch_dir,
        };
        let config = Config::load_with_env(Some(&path), &this.env)?;
        let workers = this.workers;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("claimex-in-process".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let servers = match claimex::app::build(&config).await {
                        Ok(app) => claimex::app::server(&app, listener, workers).and_then(|s| {
                            let metrics = match metrics_listener {
                                Some(l) => claimex::app::metrics_server(&app, l)?,
                                None => None,
                            };
                            Ok((s, metrics))
                        }),
                        Err(e) => Err(e),
                    };
                    match servers {
                        Ok((server, metrics)) => {
                            let handles = (server.handle(), metrics.as_ref().map(|m| m.handle()));
                            let _ = tx.send(Ok(handles));
                            match metrics {
                                Some(metrics) => {
                                    let _ = futures_util::future::join(server, metrics).await;
                                }
                                None => {
                                    let _ = server.await;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (handle, metrics_handle) = rx
            .recv_timeout(READY)
            .map_err(|_| anyhow::anyhow!("claimex did not start within {READY:?}"))??;
        Ok(InProcess {
            url: format!("http://{addr}"),
            metrics_url,
            dir: guard,
            handle,
            metrics_handle,
            thread: Some(thread),
        })
    }

    /// Starts `claimex serve` as a child process and returns at once (not waiting until it
    /// is ready: see [`Process::wait_ready`]). The child's environment has no `CLAIMEX_*` or
    /// `AWS_*` variable of this process; it has `CLAIMEX_CONFIG`, `CLAIMEX_LOG=info`,
    /// [`moto::aws_env`] (static credentials, no shared config files, no instance metadata),
    /// then the variables of [`Claimex::env`]. Its stdout and stderr go to `claimex.log`.
    pub fn launch(mut self) -> Process {
        let port = net::free_port();
        let addr = net::loopback(port);
        let metrics_url = match self.metrics {
            true => {
                let metrics = net::loopback(net::free_port());
                self = self.settings(&format!("metrics_listen = \"{metrics}\""));
                Some(format!("http://{metrics}"))
            }
            false => None,
        };
        let (dir, scratch_dir, config) = self
            .prepare(addr)
            .unwrap_or_else(|e| panic!("cannot write claimex's configuration: {e}"));
        let mut env = moto::aws_env(&dir);
        env.push(("CLAIMEX_CONFIG".into(), config.display().to_string()));
        env.push(("CLAIMEX_LOG".into(), "info".into()));
        for (name, value) in &self.env {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        let program = self.program.clone().unwrap_or_else(cli::bin);
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let log = dir.join("claimex.log");
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", log.display()));
        cli::clean_env(&mut command);
        command
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let started_wall = SystemTime::now();
        let started = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Process {
            url: format!("http://{addr}"),
            metrics_url,
            addr,
            child: Some(child),
            dir: DirGuard {
                dir,
                remove: scratch_dir,
            },
            config,
            log,
            env,
            started,
            started_wall,
        }
    }

    /// Starts `claimex serve` and waits until `/healthz` answers 200; panics with its log
    /// when it exits or is not ready within 60 s.
    pub async fn spawn(self) -> Process {
        match self.try_spawn().await {
            Ok(process) => process,
            Err(log) => panic!("claimex did not start:\n{log}"),
        }
    }

    /// [`Claimex::spawn`], with `Err` holding what went wrong and the end of the log.
    pub async fn try_spawn(self) -> Result<Process, String> {
        let mut process = self.launch();
        process.wait_ready(READY).await?;
        Ok(process)
    }
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(into)), toml::Value::Table(from)) => into.extend(from),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A directory removed on drop when it is a scratch one, unless the thread is panicking (a
/// failed test keeps its configuration and log).
#[derive(Debug)]
struct DirGuard {
    dir: PathBuf,
    remove: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.remove && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A configuration written and loaded by [`Claimex::load`]; its directory lives as long as
/// this value.
pub struct Loaded {
    /// The configuration, as `claimex serve` would load it.
    pub config: Config,
    _dir: DirGuard,
}

/// claimex running in this process. Stops when dropped.
pub struct InProcess {
    /// `http://127.0.0.1:PORT` (also its `public_url`).
    pub url: String,
    /// `http://127.0.0.1:PORT` of `GET /metrics`, when started with [`Claimex::metrics`].
    pub metrics_url: Option<String>,
    dir: DirGuard,
    handle: actix_web::dev::ServerHandle,
    metrics_handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Its directory (configuration, key, issuers file).
    pub fn dir(&self) -> &Path {
        &self.dir.dir
    }

    /// Rewrites the issuers file (picked up at the next registry refresh).
    pub fn write_issuers(&self, issuers: &str) {
        let path = self.dir.dir.join("issuers.toml");
        std::fs::write(&path, issuers)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let metrics = self.metrics_handle.clone();
        // Stopping needs a runtime; a thread of its own drives the future.
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                if let Some(metrics) = metrics {
                    metrics.stop(false).await;
                }
                handle.stop(false).await;
            });
        })
        .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `claimex serve` as a child process on a loopback port. Killed when dropped.
pub struct Process {
    /// `http://127.0.0.1:PORT` (also its `public_url`).
    pub url: String,
    /// `http://127.0.0.1:PORT` of `GET /metrics`, when started with [`Claimex::metrics`].
    pub metrics_url: Option<String>,
    /// The address it listens on.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: DirGuard,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    started: Instant,
    started_wall: SystemTime,
}

impl Process {
    /// The process id (of `taskset`'s exec, i.e. claimex, when pinned).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// When it was spawned (taken just before the spawn).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When it was spawned, by the wall clock (to compare with its log's timestamps).
    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    /// Its directory (configuration, key, log).
    pub fn dir(&self) -> &Path {
        &self.dir.dir
    }

    /// Its configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The whole log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// How it exited, if it did.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until `/healthz` answers 200; `Err` when it exits or `timeout` passes, with
    /// the end of its log.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let client = http();
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                return Err(format!("claimex exited ({status}):\n{}", self.log_tail(40)));
            }
            if let Ok(response) = client.get(format!("{}/healthz", self.url)).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "claimex was not ready within {timeout:?}:\n{}",
                    self.log_tail(40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET path`; panics (with the end of the log) on transport errors.
    pub async fn fetch(&self, path: &str) -> Answer {
        crate::client::get(&self.url, path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_tail(30)))
    }

    /// `GET /healthz` as JSON.
    pub async fn healthz(&self) -> Value {
        self.fetch("/healthz").await.json()
    }

    /// The published JWKS, found through discovery.
    pub async fn jwks(&self) -> Value {
        jwks::fetch(&self.url).await
    }

    /// The `kid`s of the published JWKS, sorted.
    pub async fn kids(&self) -> Vec<String> {
        jwks::kids(&self.jwks().await)
    }

    /// `POST /exchange[?issuerId=ID]` with the token as an `application/jwt` body.
    pub async fn exchange(&self, token: &str, issuer_id: Option<&str>) -> Answer {
        let mut url = format!("{}/exchange", self.url);
        if let Some(id) = issuer_id {
            url.push_str(&format!("?issuerId={id}"));
        }
        let sent = http()
            .post(url)
            .header("content-type", "application/jwt")
            .body(token.to_owned())
            .send()
            .await;
        let answer = match sent {
            Ok(response) => Answer::read(response).await,
            Err(e) => Err(e),
        };
        answer.unwrap_or_else(|e| panic!("POST /exchange: {e}\n{}", self.log_tail(30)))
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

    /// Runs `claimex <args>` (e.g. `keys stage KEY`) with this server's configuration and
    /// environment; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let output = cli::run(args, self.env.iter().map(|(k, v)| (k, v)));
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The log once `ready` holds for it, or as it is after `timeout`. The server writes its
    /// log in batches when `CLAIMEX_LOG_FLUSH_MS` is set, and a line just caused may be in flight.
    pub async fn log_until(&self, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if ready(&log) || Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process as an operator does (SIGTERM: a clean shutdown, which writes every
    /// buffered log line) and returns its whole log. Killed if it has not exited within 20 s.
    pub fn stop(self) -> String {
        self.terminate().1
    }

    /// Like [`Process::stop`], with how it exited (`None`: it had to be killed).
    pub fn terminate(mut self) -> (Option<ExitStatus>, String) {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(20);
            while sent && Instant::now() < deadline {
                if let Ok(Some(exited)) = child.try_wait() {
                    status = Some(exited);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        (status, self.log())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_section_by_section() {
        let claimex = Claimex::new()
            .settings("workers = 1\n[mapper]\ndeadline_ms = 50\n")
            .settings("[mapper]\nmemory_mib = 8\n[jwks]\nmin_ttl_secs = 1\n");
        let mut base: toml::Table = toml::from_str("[mapper]\ndir = \"/m\"\n").unwrap();
        merge(&mut base, claimex.settings);
        assert_eq!(base["workers"].as_integer(), Some(1));
        assert_eq!(base["mapper"]["dir"].as_str(), Some("/m"));
        assert_eq!(base["mapper"]["deadline_ms"].as_integer(), Some(50));
        assert_eq!(base["mapper"]["memory_mib"].as_integer(), Some(8));
        assert_eq!(base["jwks"]["min_ttl_secs"].as_integer(), Some(1));
    }
}
