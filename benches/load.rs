//! `claimex serve` as a separate process: throughput under load, cold start, memory.
//!
//! Issue 6, items 3, 4 and 6; method and figures in BENCHMARKS.md. Run with
//! `cargo bench --bench load`, or `bench/load.sh`, which runs the in-process criterion benches
//! (`--bench exchange`) first so that the server's rate is set against their single-thread
//! rate of the same run. All on loopback:
//!
//! - builds the stock GitHub mapper, starts a [`TestIssuer`] in this process, pre-generates
//!   an ES256 and an RS256 signing key (key generation is never timed);
//! - pins this process (the issuer, the pollers) and the load generator to CPU 1, and every
//!   `claimex serve` it starts to CPU 0 (`taskset -c 0`, `workers = 1`);
//! - **load**: ES256, RS256 and ES256 without audit lines, `REPEATS` rounds of fresh servers
//!   (cases interleaved), each driven by `wrk` at `CONNECTIONS` keep-alive connections for
//!   `SECS` seconds: exchanges/s, p50/p99/p99.9, errors (a non-2xx answer or socket error
//!   fails the bench, and every audit line must say `allow`), claimex's CPU time per exchange
//!   and the CPU shares of everything else (noise), RSS idle and peak (`VmHWM`), and the rate
//!   as a fraction of the criterion single-thread rate (`exchange/ES256`, `exchange/RS256`)
//!   times the one core claimex had;
//! - **KMS**: the same load with `signer.backend = "kms"` against the AWS emulator (moto,
//!   through `tests/aws_support/moto_launcher.py`, on the generator's CPU): emulator time,
//!   reported as such; skipped when moto is not installed (`make emulator`);
//! - **cold start**: spawn to the first `200` from `POST /exchange`, `COLD_RUNS` times each
//!   with no compiled-mapper cache, an empty cache (miss) and a populated one (hit), with a
//!   breakdown from claimex's own log timestamps, and the bare process start for comparison;
//! - **allocations**: heap allocations and bytes per exchange, in-process (this binary counts
//!   them with its global allocator) through the pipeline `app::build` assembles, minus HTTP.
//!
//! Settings (environment): `BENCH_LOAD_SECS` (10), `BENCH_LOAD_CONNECTIONS` (16),
//! `BENCH_LOAD_REPEATS` (3), `BENCH_COLD_RUNS` (10), `BENCH_SKIP` (comma list of `load`,
//! `kms`, `cold`, `alloc`), `BENCH_KEEP` (keep the configs and claimex logs), `BENCH_COLD_LOG`
//! (`CLAIMEX_LOG` for the cold starts, e.g. `debug` to see where start-up time goes),
//! `BENCH_CLAIMEX_BIN` (another claimex binary, e.g. one built with other flags),
//! `BENCH_SERVER_CPUS` (the CPUs of the servers, default `0`; `0,1` for a two-CPU cold start). The report
//! is also written to `target/criterion/claimex-load-summary.txt`. Without `--bench` (as under
//! `cargo test --all-targets`) it does nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use claimex::signer::SigningAlg;
use claimex::signer::local::LocalKey;
use claimex_testkit::TestIssuer;

/// Counts heap allocations (for the bytes-per-exchange figure).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Environment variables for a claimex child.
type Env = &'static [(&'static str, &'static str)];
/// One part of the report.
type Section = fn(&mut Bench, &mut Report);

const AUD: &str = "https://claimex.bench";
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
const EXCHANGE_PATH: &str = "/exchange?issuerId=github";

/// The claimex binary: this build's, or `BENCH_CLAIMEX_BIN` (e.g. one built with other flags).
fn claimex_bin() -> String {
    std::env::var("BENCH_CLAIMEX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_claimex").to_owned())
}

/// The CPUs `claimex serve` may use: [`SERVER_CPU`], or `BENCH_SERVER_CPUS` (e.g. `0,1` to
/// see a cold start with two CPUs; the load figures assume one).
fn server_cpus() -> String {
    std::env::var("BENCH_SERVER_CPUS").unwrap_or_else(|_| SERVER_CPU.to_owned())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn build_mapper() -> PathBuf {
    let built = claimex_testkit::build_mapper_components(root(), &["claimex-mapper-github"])
        .unwrap_or_else(|e| panic!("{e}"));
    built[0].parent().unwrap().to_path_buf()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Everything the runs share.
struct Bench {
    issuer: TestIssuer,
    dir: tempfile::TempDir,
    mapper_dir: PathBuf,
    pin: bool,
    runs: u64,
}

/// Where claimex's signing key lives.
enum Signer {
    /// A pre-generated local key file.
    Local(SigningAlg),
    /// A KMS key in the emulator at `endpoint`.
    Kms { arn: String, endpoint: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// No `mapper.cache_dir`: compile at every start (the default).
    None,
    /// An empty cache directory.
    Miss,
    /// A cache directory a previous start populated.
    Hit,
}

impl Bench {
    fn key_path(&self, alg: SigningAlg) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.pem", alg.as_str().to_ascii_lowercase()))
    }

    /// A GitHub token from the test issuer with claims padded to about 1.5 KB (like the
    /// criterion bench's), valid for 300 s.
    fn token(&self) -> String {
        let mut claims = self.issuer.github_claims(AUD, now());
        let size = claims.to_string().len();
        if size + 20 < 1500 {
            claims["x_filler"] = json!("f".repeat(1500 - size - 20));
        }
        self.issuer.mint(&claims)
    }

    /// A fresh run directory with a config for the local `alg` key, on a free port.
    fn config(&mut self, alg: SigningAlg, cache_dir: Option<&Path>) -> (PathBuf, u16) {
        self.config_for(&Signer::Local(alg), cache_dir)
    }

    /// A fresh run directory with a config for `signer`, on a free port.
    fn config_for(&mut self, signer: &Signer, cache_dir: Option<&Path>) -> (PathBuf, u16) {
        self.runs += 1;
        let run = self.dir.path().join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&run).unwrap();
        let port = free_port();
        let signer = match signer {
            Signer::Local(alg) => format!(
                "[signer]\nbackend = \"local\"\npath = {:?}\nalg = {:?}\n",
                self.key_path(*alg).display().to_string(),
                alg.as_str(),
            ),
            Signer::Kms { arn, endpoint } => format!(
                "[signer]\nbackend = \"kms\"\nkms_key_id = {arn:?}\n\
                 [aws]\nregion = {MOTO_REGION:?}\nendpoint_url = {endpoint:?}\n"
            ),
        };
        let mut text = format!(
            "public_url = \"http://127.0.0.1:{port}\"\nlisten = \"127.0.0.1:{port}\"\n\
             allow_http_loopback = true\nworkers = 1\n\
             [registry]\npath = {:?}\n{signer}\
             [mapper]\ndir = {:?}\n",
            self.dir.path().join("issuers.toml").display().to_string(),
            self.mapper_dir.display().to_string(),
        );
        if let Some(cache) = cache_dir {
            text.push_str(&format!("cache_dir = {:?}\n", cache.display().to_string()));
        }
        let path = run.join("claimex.toml");
        std::fs::write(&path, text).unwrap();
        (path, port)
    }

    fn spawn(&self, config: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let log = config.with_file_name("claimex.log");
        let mut command = if self.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", &server_cpus(), &claimex_bin()]);
            c
        } else {
            Command::new(claimex_bin())
        };
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, _) in std::env::vars() {
            if name.starts_with("CLAIMEX_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let started_wall = SystemTime::now();
        let started = Instant::now();
        let child = command.spawn().expect("cannot start claimex");
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            started,
            started_wall,
        }
    }
}

/// A `claimex serve` child, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    started: Instant,
    started_wall: SystemTime,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("claimex exited ({status}); its log:\n{}", self.log_tail());
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("cannot read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_alive();
            if let Ok((200, _)) = http(self.addr, "GET", "/healthz", b"") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "claimex was not healthy within 60 s; its log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`): status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/jwt\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:.80}")))?;
    let body = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => answer[at + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

fn exchange_once(server: &Server, token: &str) -> Result<(), String> {
    match http(server.addr, "POST", EXCHANGE_PATH, token.as_bytes()) {
        Ok((200, body)) if body.split(|b| *b == b'.').count() == 3 => Ok(()),
        Ok((status, body)) => Err(format!("{status}: {}", String::from_utf8_lossy(&body))),
        Err(e) => Err(e.to_string()),
    }
}

/// Unix time in microseconds of an RFC 3339 UTC timestamp (`2026-01-02T03:04:05.678901Z`).
fn parse_timestamp(ts: &str) -> Option<f64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss) * 1e6)
}

/// The log's JSON lines.
fn log_lines(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
}

/// Audit decisions in a log: (allowed, other), and the first non-allow line.
fn audit_decisions(log: &str) -> (u64, u64, Option<String>) {
    let (mut allow, mut other, mut first) = (0, 0, None);
    for line in log_lines(log) {
        if line["target"] != "claimex::audit" {
            continue;
        }
        if line["decision"] == "allow" {
            allow += 1;
        } else {
            other += 1;
            first.get_or_insert_with(|| line.to_string());
        }
    }
    (allow, other, first)
}

/// Warnings and errors in a log (not audit lines).
fn problems(log: &str) -> Vec<String> {
    log_lines(log)
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .map(|l| l.to_string())
        .collect()
}

/// The report: printed as it is written (runs are long), and kept for the summary file.
#[derive(Default)]
struct Report {
    text: String,
}

impl std::fmt::Write for Report {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        print!("{s}");
        let _ = std::io::stdout().flush();
        self.text.push_str(s);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Load

struct LoadSample {
    rate: f64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    idle_rss_kib: u64,
    idle_hwm_kib: u64,
    load_rss_kib: u64,
    load_hwm_kib: u64,
    /// claimex's CPU time per exchange during the load, µs.
    cpu_us_per_exchange: f64,
    /// Fractions of the load's wall time: claimex's CPU time, other work on claimex's CPU,
    /// wrk's CPU time, and other work on the generator's CPU.
    claimex_cpu: f64,
    other_on_server_cpu: f64,
    wrk_cpu: f64,
    other_on_client_cpu: f64,
    /// The KMS emulator's CPU time (a share of wall time), when it runs.
    peer_cpu: f64,
}

/// Kernel clock ticks per second (`USER_HZ`), for /proc CPU times.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of process `pid` (all its threads), in ticks.
fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// Busy ticks of CPU `n` (all but idle and iowait), from /proc/stat.
fn cpu_busy_ticks(n: &str) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let prefix = format!("cpu{n} ");
    stat.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            v.iter().take(8).sum::<u64>() - v.get(3).unwrap_or(&0) - v.get(4).unwrap_or(&0)
        })
        .unwrap_or(0)
}

const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.path = "__PATH__"
wrk.headers["Content-Type"] = "application/jwt"
wrk.body = "__TOKEN__"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

fn wrk(
    bench: &Bench,
    server: &Server,
    token: &str,
    secs: u64,
    connections: u64,
) -> BTreeMap<String, f64> {
    let script = bench.dir.path().join(format!("wrk-{}.lua", bench.runs));
    std::fs::write(
        &script,
        WRK_SCRIPT
            .replace("__PATH__", EXCHANGE_PATH)
            .replace("__TOKEN__", token),
    )
    .unwrap();
    let mut command = if bench.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", CLIENT_CPU, "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let mut child = command
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        .args(["--timeout", "5s", "-s"])
        .arg(&script)
        .arg(format!("http://{}", server.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run wrk");
    // wrk stops itself after `secs`; never wait much longer than that.
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let mut wrk_ticks = 0;
    loop {
        // Its CPU time, read until it exits (the last 50 ms are missed).
        wrk_ticks = process_ticks(child.id()).max(wrk_ticks);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wrk did not stop within {} s", secs + 30);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK_RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let mut result: BTreeMap<String, f64> = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
        .collect();
    result.insert("cpu_ticks".into(), wrk_ticks as f64);
    result
}

/// One fresh server with `signer` under load; `peer` is a process whose CPU time is
/// reported too (the KMS emulator).
fn load_sample(
    bench: &mut Bench,
    signer: &Signer,
    env: &[(&str, &str)],
    secs: u64,
    connections: u64,
    peer: Option<u32>,
) -> LoadSample {
    let cache = bench.dir.path().join("cache-load");
    let (config, port) = bench.config_for(signer, Some(&cache));
    let mut server = bench.spawn(&config, port, env);
    server.wait_healthy();
    let token = bench.token();
    exchange_once(&server, &token)
        .unwrap_or_else(|e| panic!("the first exchange failed: {e}\n{}", server.log_tail()));
    let (idle_rss_kib, idle_hwm_kib) = server.memory();
    for _ in 0..200 {
        exchange_once(&server, &token).expect("a warm-up exchange failed");
    }
    let peer_ticks = || peer.map(process_ticks).unwrap_or(0);
    let (ticks0, peer0, cpu0, cpu1, t0) = (
        process_ticks(server.pid()),
        peer_ticks(),
        cpu_busy_ticks(SERVER_CPU),
        cpu_busy_ticks(CLIENT_CPU),
        Instant::now(),
    );
    let result = wrk(bench, &server, &token, secs, connections);
    let wall = t0.elapsed().as_secs_f64() * TICKS_PER_SEC;
    let claimex_ticks = (process_ticks(server.pid()) - ticks0) as f64;
    let peer_ticks = (peer_ticks() - peer0) as f64;
    let cpu0 = (cpu_busy_ticks(SERVER_CPU) - cpu0) as f64;
    let cpu1 = (cpu_busy_ticks(CLIENT_CPU) - cpu1) as f64;
    server.check_alive();
    let (load_rss_kib, load_hwm_kib) = server.memory();
    let log = server.stop();
    let get = |k: &str| result.get(k).copied().unwrap_or(f64::NAN);
    let errors = ["connect", "read", "write", "status", "timeout"]
        .iter()
        .map(|k| get(k) as u64)
        .sum::<u64>();
    let requests = get("requests") as u64;
    assert!(
        errors == 0,
        "under load: {errors} errors (non-2xx or socket): {result:?}\nclaimex log:\n{}",
        log.lines()
            .filter(|l| !l.contains("\"decision\":\"allow\""))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(requests > 0, "wrk completed no request");
    if !env.iter().any(|(k, _)| *k == "CLAIMEX_LOG") {
        // 201 exchanges before the load; claimex may finish a few after wrk stopped counting.
        let (allow, other, first) = audit_decisions(&log);
        assert!(
            other == 0,
            "{other} exchanges were not allowed under load; first: {}",
            first.unwrap_or_default()
        );
        assert!(
            allow >= requests + 201,
            "claimex audited {allow} allowed exchanges but wrk counted {requests} (+201 before)"
        );
    }
    let problems = problems(&log);
    assert!(
        problems.is_empty(),
        "claimex logged {} warnings/errors under load; first: {}",
        problems.len(),
        problems[0]
    );
    LoadSample {
        rate: requests as f64 / (get("duration_us") / 1e6),
        requests,
        p50_ms: get("p50_us") / 1000.0,
        p99_ms: get("p99_us") / 1000.0,
        p999_ms: get("p999_us") / 1000.0,
        errors,
        idle_rss_kib,
        idle_hwm_kib,
        load_rss_kib,
        load_hwm_kib,
        cpu_us_per_exchange: claimex_ticks / TICKS_PER_SEC * 1e6 / requests as f64,
        claimex_cpu: claimex_ticks / wall,
        other_on_server_cpu: if bench.pin {
            ((cpu0 - claimex_ticks) / wall).max(0.0)
        } else {
            f64::NAN
        },
        wrk_cpu: get("cpu_ticks") / wall,
        peer_cpu: peer_ticks / wall,
        other_on_client_cpu: if bench.pin {
            ((cpu1 - get("cpu_ticks") - peer_ticks) / wall).max(0.0)
        } else {
            f64::NAN
        },
    }
}

/// The criterion median of `exchange/<alg>` in µs and the age of the figure.
fn criterion_median_us(alg: SigningAlg) -> Option<(f64, Duration)> {
    let path = root()
        .join("target/criterion/exchange")
        .join(alg.as_str())
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    Some((json["median"]["point_estimate"].as_f64()? / 1000.0, age))
}

fn load(bench: &mut Bench, out: &mut Report) {
    let secs = setting("BENCH_LOAD_SECS", 10);
    let connections = setting("BENCH_LOAD_CONNECTIONS", 16);
    let repeats = setting("BENCH_LOAD_REPEATS", 3).max(1);
    let _ = writeln!(
        out,
        "\nserver under load: claimex on CPU {SERVER_CPU} (workers = 1), wrk on CPU {CLIENT_CPU} \
         (-t1 -c{connections} -d{secs}s, keep-alive); median of {repeats} fresh servers (min-max), cases interleaved"
    );
    let cases: [(&str, SigningAlg, Env); 3] = [
        ("ES256", SigningAlg::Es256, &[]),
        ("RS256", SigningAlg::Rs256, &[]),
        (
            "ES256, no audit lines",
            SigningAlg::Es256,
            &[("CLAIMEX_LOG", "warn")],
        ),
    ];
    // Compile the mapper into the cache first, so every measured server starts alike.
    let (config, port) = bench.config(
        SigningAlg::Es256,
        Some(&bench.dir.path().join("cache-load")),
    );
    let mut server = bench.spawn(&config, port, &[]);
    server.wait_healthy();
    server.stop();
    // Rounds of one run per case, so that a noisy spell does not land on one case alone.
    let mut results: Vec<(&str, SigningAlg, Vec<LoadSample>)> = cases
        .iter()
        .map(|(label, alg, _)| (*label, *alg, Vec::new()))
        .collect();
    for _ in 0..repeats {
        for (i, (_, alg, env)) in cases.iter().enumerate() {
            let sample = load_sample(bench, &Signer::Local(*alg), env, secs, connections, None);
            results[i].2.push(sample);
        }
    }
    let col = |samples: &[LoadSample], f: fn(&LoadSample) -> f64| {
        samples.iter().map(f).collect::<Vec<f64>>()
    };
    let _ = writeln!(
        out,
        "  {:<22} {:>8} {:>12} {:>7} {:>7} {:>8} {:>6} {:>12} {:>13} {:>12}",
        "run",
        "exch/s",
        "(min-max)",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "vs 1-thread",
        "CPU µs/exch",
        "per CPU-s"
    );
    let mut missing_criterion = false;
    for (label, alg, samples) in &results {
        let rates = col(samples, |s| s.rate);
        let rate = median(&rates);
        let (lo, hi) = spread(&rates);
        let cpu_us = median(&col(samples, |s| s.cpu_us_per_exchange));
        let (ratio, cpu_ratio) = match criterion_median_us(*alg) {
            Some((us, _)) => (
                format!("{:.0}%", 100.0 * rate / (1e6 / us)),
                format!("{:.0}%", 100.0 * us / cpu_us),
            ),
            None => {
                missing_criterion = true;
                ("n/a".into(), "n/a".into())
            }
        };
        let _ = writeln!(
            out,
            "  {:<22} {:>8.0} {:>12} {:>7.2} {:>7.2} {:>8.2} {:>6} {:>12} {:>13.1} {:>12}",
            label,
            rate,
            format!("{lo:.0}-{hi:.0}"),
            median(&col(samples, |s| s.p50_ms)),
            median(&col(samples, |s| s.p99_ms)),
            median(&col(samples, |s| s.p999_ms)),
            samples.iter().map(|s| s.errors).sum::<u64>(),
            ratio,
            cpu_us,
            cpu_ratio,
        );
    }
    let _ = writeln!(
        out,
        "  {:<22} {:>12} {:>14} {:>8} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "",
        "claimex CPU",
        "other on CPU0",
        "wrk CPU",
        "other on CPU1",
        "RSS idle",
        "HWM idle",
        "HWM load",
        "RSS after"
    );
    let mib = |kib: f64| kib / 1024.0;
    let pct = |x: f64| format!("{:.0}%", 100.0 * x);
    for (label, _, samples) in &results {
        let _ = writeln!(
            out,
            "  {:<22} {:>12} {:>14} {:>8} {:>14} {:>9.1}M {:>9.1}M {:>9.1}M {:>9.1}M",
            label,
            pct(median(&col(samples, |s| s.claimex_cpu))),
            pct(median(&col(samples, |s| s.other_on_server_cpu))),
            pct(median(&col(samples, |s| s.wrk_cpu))),
            pct(median(&col(samples, |s| s.other_on_client_cpu))),
            mib(median(&col(samples, |s| s.idle_rss_kib as f64))),
            mib(median(&col(samples, |s| s.idle_hwm_kib as f64))),
            mib(col(samples, |s| s.load_hwm_kib as f64)
                .into_iter()
                .fold(0.0, f64::max)),
            mib(median(&col(samples, |s| s.load_rss_kib as f64))),
        );
    }
    let _ = writeln!(
        out,
        "  requests per run: {}",
        results
            .iter()
            .map(|(label, _, samples)| format!(
                "{label} {:?}",
                samples.iter().map(|s| s.requests).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        if let Some((us, age)) = criterion_median_us(alg) {
            let _ = writeln!(
                out,
                "  1-thread rate {:.0}/s = 1e6 / criterion median exchange/{} ({us:.1} µs, written {} min ago) x 1 core",
                1e6 / us,
                alg.as_str(),
                age.as_secs() / 60
            );
        }
    }
    if missing_criterion {
        let _ = writeln!(
            out,
            "  (no criterion figures: run `cargo bench --bench exchange` first, or bench/load.sh)"
        );
    }
    let _ = writeln!(
        out,
        "  errors: wrk's socket errors + non-2xx answers (must be 0; every audit line must be allow)\n  \
         CPU µs/exch: claimex's CPU time (/proc/PID/stat) per exchange, HTTP and loopback TCP included; \
         per CPU-s: exchanges per CPU-second claimex got vs the 1-thread rate (criterion median / CPU µs/exch), \
         i.e. the ratio with the noise of other processes on CPU 0 taken out\n  \
         claimex CPU, other on CPU0, wrk CPU, other on CPU1: shares of the load's wall time (other = other processes, \
         i.e. noise, plus interrupts)\n  \
         RSS idle/HWM idle: after start-up and one exchange; HWM load: peak over the runs; RSS after: after the load"
    );
}

// ---------------------------------------------------------------------------------------
// KMS signer against the emulator

const MOTO_REGION: &str = "us-east-1";

/// `moto_server` through the test harness's launcher (tests/aws_support), killed on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(bench: &Bench) -> Result<Moto, String> {
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = Command::new(&python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        return Err(format!(
            "{python} cannot import moto.server; `make emulator` installs it"
        ));
    }
    let port = free_port();
    let log = std::fs::File::create(bench.dir.path().join("moto.log")).unwrap();
    let mut command = if bench.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", CLIENT_CPU, &python]);
        c
    } else {
        Command::new(&python)
    };
    let child = command
        .arg(root().join("tests/aws_support/moto_launcher.py"))
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let mut moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!("moto_launcher.py exited ({status})"));
        }
        if Instant::now() > deadline {
            return Err("moto_server did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(moto)
}

async fn create_kms_key(url: &str, spec: aws_sdk_kms::types::KeySpec) -> String {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(MOTO_REGION))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .endpoint_url(url)
        .build();
    let out = aws_sdk_kms::Client::from_conf(config)
        .create_key()
        .key_spec(spec)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("KMS CreateKey on the emulator");
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

fn kms(bench: &mut Bench, out: &mut Report) {
    let secs = setting("BENCH_LOAD_SECS", 10);
    let connections = setting("BENCH_LOAD_CONNECTIONS", 16);
    let _ = writeln!(
        out,
        "\nKMS signer against the AWS emulator (moto_server via tests/aws_support/moto_launcher.py, on CPU {CLIENT_CPU} \
         beside wrk): one {secs} s run each; EMULATOR TIME, not KMS's speed"
    );
    let moto = match start_moto(bench) {
        Ok(moto) => moto,
        Err(e) => {
            let _ = writeln!(out, "  skipped: {e}");
            return;
        }
    };
    let moto_pid = moto.child.id();
    for file in ["aws-config", "aws-credentials"] {
        std::fs::write(bench.dir.path().join(file), "").unwrap();
    }
    let config_file = bench.dir.path().join("aws-config").display().to_string();
    let credentials_file = bench
        .dir
        .path()
        .join("aws-credentials")
        .display()
        .to_string();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", MOTO_REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", config_file.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials_file.as_str()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = writeln!(
        out,
        "  {:<24} {:>8} {:>7} {:>7} {:>8} {:>6} {:>13} {:>12} {:>9} {:>8}",
        "run",
        "exch/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "CPU µs/exch",
        "claimex CPU",
        "moto CPU",
        "wrk CPU"
    );
    for (label, spec) in [
        (
            "ES256 (KMS ECC_NIST_P256)",
            aws_sdk_kms::types::KeySpec::EccNistP256,
        ),
        ("RS256 (KMS RSA_2048)", aws_sdk_kms::types::KeySpec::Rsa2048),
    ] {
        let arn = rt.block_on(create_kms_key(&moto.url, spec));
        let signer = Signer::Kms {
            arn,
            endpoint: moto.url.clone(),
        };
        let s = load_sample(bench, &signer, &env, secs, connections, Some(moto_pid));
        let _ = writeln!(
            out,
            "  {:<24} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>6} {:>13.1} {:>11.0}% {:>8.0}% {:>7.0}%",
            label,
            s.rate,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.errors,
            s.cpu_us_per_exchange,
            100.0 * s.claimex_cpu,
            100.0 * s.peer_cpu,
            100.0 * s.wrk_cpu,
        );
    }
    let _ = writeln!(
        out,
        "  claimex still verifies, maps and builds the token; each Sign is one SigV4-signed plain-HTTP call to the \
         emulator (no TLS), whose signature claimex verifies before issuing; CPU µs/exch is claimex's own CPU"
    );
}

// ---------------------------------------------------------------------------------------
// Cold start

struct ColdSample {
    total_ms: f64,
    /// From spawn to these log events, ms.
    registry_ms: f64,
    serving_ms: f64,
    keys_ms: f64,
    audit_ms: f64,
    /// RSS after the first exchange, KiB.
    rss_kib: f64,
}

fn cold_sample(bench: &mut Bench, alg: SigningAlg, cache: Option<&Path>) -> ColdSample {
    let (config, port) = bench.config(alg, cache);
    let token = bench.token();
    let log_filter = std::env::var("BENCH_COLD_LOG").ok();
    let env: Vec<(&str, &str)> = match &log_filter {
        Some(filter) => vec![("CLAIMEX_LOG", filter.as_str())],
        None => vec![],
    };
    let mut server = bench.spawn(&config, port, &env);
    let deadline = server.started + Duration::from_secs(120);
    let total = loop {
        if let Ok((200, _)) = http(server.addr, "POST", EXCHANGE_PATH, token.as_bytes()) {
            break server.started.elapsed();
        }
        server.check_alive();
        assert!(
            Instant::now() < deadline,
            "no successful exchange within 120 s of start; log:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let started_us = server
        .started_wall
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e6;
    let (rss_kib, _) = server.memory();
    let log = server.stop();
    let at = |message: &str| {
        log_lines(&log)
            .find(|l| l["message"] == message)
            .and_then(|l| parse_timestamp(l["timestamp"].as_str()?))
            .map(|t| (t - started_us) / 1000.0)
            .unwrap_or(f64::NAN)
    };
    let problems = problems(&log);
    assert!(
        problems.is_empty(),
        "claimex logged warnings/errors at start-up: {}",
        problems.join("\n")
    );
    ColdSample {
        total_ms: total.as_secs_f64() * 1000.0,
        registry_ms: at("issuer registry loaded"),
        serving_ms: at("claimex is serving"),
        keys_ms: at("fetched issuer keys"),
        audit_ms: at("exchange"),
        rss_kib: rss_kib as f64,
    }
}

fn cold(bench: &mut Bench, out: &mut Report) {
    let runs = setting("BENCH_COLD_RUNS", 10).max(1);
    let _ = writeln!(
        out,
        "\ncold start: spawn of `taskset -c {} claimex serve` to the first 200 from POST /exchange \
         (discovery + JWKS on loopback included), pre-generated key, warm disk, median of {runs}",
        server_cpus()
    );
    let _ = writeln!(
        out,
        "  {:<34} {:>10} {:>15} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "case (ms after spawn)",
        "first 200",
        "(min-max)",
        "registry",
        "serving",
        "keys",
        "audit",
        "RSS MiB"
    );
    // The bare process: exec of taskset and claimex, dynamic linking, clap, exit.
    let mut bare = Vec::new();
    for _ in 0..runs {
        let mut command = if bench.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", SERVER_CPU, &claimex_bin()]);
            c
        } else {
            Command::new(claimex_bin())
        };
        let t = Instant::now();
        let status = command
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(status.success());
    }
    let (lo, hi) = spread(&bare);
    let _ = writeln!(
        out,
        "  {:<34} {:>9.1}  {:>15}",
        "bare process (claimex --version)",
        median(&bare),
        format!("{lo:.1}-{hi:.1}")
    );
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        for (mode, name) in [
            (Cache::None, "no cache_dir (default)"),
            (Cache::Miss, "cache miss (empty cache_dir)"),
            (Cache::Hit, "cache hit"),
        ] {
            let hit_dir = bench.dir.path().join(format!("cache-hit-{}", alg.as_str()));
            if mode == Cache::Hit {
                // Populate it with one untimed start.
                cold_sample(bench, alg, Some(&hit_dir));
            }
            let samples: Vec<ColdSample> = (0..runs)
                .map(|i| {
                    let miss = bench
                        .dir
                        .path()
                        .join(format!("cache-miss-{}-{i}", alg.as_str()));
                    let cache = match mode {
                        Cache::None => None,
                        Cache::Miss => Some(miss.as_path()),
                        Cache::Hit => Some(hit_dir.as_path()),
                    };
                    cold_sample(bench, alg, cache)
                })
                .collect();
            let totals: Vec<f64> = samples.iter().map(|s| s.total_ms).collect();
            let (lo, hi) = spread(&totals);
            let at = |f: fn(&ColdSample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
            let _ = writeln!(
                out,
                "  {:<34} {:>9.1}  {:>15} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                format!("{} {name}", alg.as_str()),
                median(&totals),
                format!("{lo:.1}-{hi:.1}"),
                at(|s| s.registry_ms),
                at(|s| s.serving_ms),
                at(|s| s.keys_ms),
                at(|s| s.audit_ms),
                at(|s| s.rss_kib) / 1024.0,
            );
        }
    }
    let _ = writeln!(
        out,
        "  registry, serving, keys, audit: claimex's log timestamps (medians) of \"issuer registry loaded\" (engine, mapper \
         loaded), \"claimex is serving\" (signing key, HTTP client, listener), \"fetched issuer keys\" (discovery + JWKS \
         on the first request), and the first audit line (verify, map, mint done); \
         RSS MiB: after the first exchange"
    );
}

// ---------------------------------------------------------------------------------------
// Allocations

fn allocations(bench: &mut Bench, out: &mut Report) {
    let _ = writeln!(
        out,
        "\nheap allocations per exchange: in-process, app::build's pipeline (real JWKS client, cached keys), \
         no HTTP layer, no audit subscriber; mean of 2000"
    );
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let cache = bench.dir.path().join("cache-load");
        let (path, _) = bench.config(alg, Some(&cache));
        let config = claimex::config::Config::load_with_env(Some(&path), &[]).unwrap();
        let token = bench.token();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let request = claimex::exchange::ExchangeRequest {
            kind: claimex::subject::SubjectKind::Oidc,
            credential: &token,
            issuer_id: Some("github"),
        };
        let (count, bytes) = rt.block_on(async {
            let app = claimex::app::build(&config).await.unwrap();
            for _ in 0..200 {
                let (result, _) = app.exchanger.exchange(&request).await;
                result.unwrap();
            }
            let n = 2000;
            let (a0, b0) = (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed));
            for _ in 0..n {
                let (result, _) = app.exchanger.exchange(&request).await;
                result.unwrap();
            }
            let (a1, b1) = (ALLOCATIONS.load(Relaxed), ALLOCATED_BYTES.load(Relaxed));
            ((a1 - a0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
        });
        let _ = writeln!(
            out,
            "  {}: {count:.0} allocations, {:.1} KiB allocated per exchange",
            alg.as_str(),
            bytes / 1024.0
        );
    }
}

// ---------------------------------------------------------------------------------------

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} CPUs ({cpu}), {mem} RAM")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: a benchmark; run it with `cargo bench --bench load`");
        return;
    }
    let machine = machine();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pin = cores >= 2 && have("taskset");
    if pin {
        // This process (the test issuer, the pollers) runs beside the load generator.
        let status = Command::new("taskset")
            .args([
                "-a",
                "-p",
                "-c",
                CLIENT_CPU,
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("cannot run taskset");
        assert!(status.success(), "taskset failed");
    } else {
        eprintln!(
            "load: fewer than 2 CPUs or no taskset: nothing is pinned, figures are not comparable"
        );
    }
    let skip = std::env::var("BENCH_SKIP").unwrap_or_default();
    let skip: Vec<&str> = skip.split(',').map(str::trim).collect();
    if !skip.contains(&"load") {
        assert!(
            have("wrk"),
            "the load generator wrk is missing: `apt-get install -y wrk` (Debian), or set BENCH_SKIP=load"
        );
    }
    let mapper_dir = build_mapper();
    let issuer = TestIssuer::start().expect("cannot start the test issuer");
    let dir = tempfile::Builder::new()
        .prefix("claimex-load-")
        .tempdir()
        .unwrap();
    let mut bench = Bench {
        issuer,
        dir,
        mapper_dir,
        pin,
        runs: 0,
    };
    for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
        let (_, der) = LocalKey::generate(alg).unwrap();
        std::fs::write(
            bench.key_path(alg),
            pem::encode(&pem::Pem::new("PRIVATE KEY", der)),
        )
        .unwrap();
    }
    std::fs::write(
        bench.dir.path().join("issuers.toml"),
        format!(
            "[issuers.github]\nissuer = {:?}\naudiences = [{AUD:?}]\nmapper = \"claimex_mapper_github.wasm\"\n\
             mapper_config = {{ allowed_owner_ids = [\"65\"] }}\n",
            bench.issuer.url()
        ),
    )
    .unwrap();
    let mut out = Report::default();
    let _ = writeln!(
        out,
        "claimex load bench: {machine}; wrk {}; binary {}",
        Command::new("wrk")
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr);
                text.split_whitespace().nth(1).map(str::to_owned)
            })
            .unwrap_or_else(|| "?".into()),
        claimex_bin()
    );
    let sections: [(&str, Section); 4] = [
        ("load", load),
        ("kms", kms),
        ("cold", cold),
        ("alloc", allocations),
    ];
    for (name, run) in sections {
        if !skip.contains(&name) {
            run(&mut bench, &mut out);
        }
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        let kept = bench.dir.keep();
        println!("(configs and claimex logs kept in {})", kept.display());
    }
    let path = root().join("target/criterion/claimex-load-summary.txt");
    let _ = std::fs::create_dir_all(path.parent().unwrap());
    let _ = std::fs::write(&path, &out.text);
    println!("\n(written to {})", path.display());
}
