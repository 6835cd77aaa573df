//! `claimex serve` as a separate process: throughput under load, the KMS signer against the
//! emulator, cold start, memory, and the heap allocations of one exchange. Not a benchmark
//! harness: an orchestration program that starts servers, a load generator and the emulator,
//! and prints one report.
//!
//! Issue 6, items 3, 4 and 6; method and figures in BENCHMARKS.md. Run `bench/load.sh` (or
//! `make bench`), which runs the in-process criterion benches (`cargo bench --bench exchange`)
//! first so that the server's rate is set against their single-thread rate of the same run,
//! then this program (`cargo run --release -p claimex-bench`). All on loopback:
//!
//! - builds the claimex binary (release) and the stock GitHub mapper, starts a
//!   [`TestIssuer`] in this process, pre-generates an ES256 and an RS256 signing key (key
//!   generation is never timed);
//! - pins this process (the issuer, the pollers) and the load generator to CPU 1, and every
//!   `claimex serve` it starts to CPU 0 (`taskset -c 0`, `workers = 1`);
//! - **load** ([`load`]): ES256, RS256 and ES256 without audit lines, `REPEATS` rounds of
//!   fresh servers (cases interleaved), each driven by `wrk` at `CONNECTIONS` keep-alive
//!   connections for `SECS` seconds: exchanges/s, p50/p99/p99.9, errors (a non-2xx answer or
//!   socket error fails the bench, and every audit line must say `allow`), claimex's CPU time
//!   per exchange and the CPU shares of everything else (noise), RSS idle and peak
//!   (`VmHWM`), and the rate as a fraction of the criterion single-thread rate
//!   (`exchange/ES256`, `exchange/RS256`) times the one core claimex had;
//! - **KMS** ([`kms`]): the same load with `signer.backend = "kms"` against the AWS emulator
//!   (moto, through the test kit's `tests/support/moto_launcher.py`, on the generator's CPU):
//!   emulator time, reported as such; skipped when moto is not installed (`make emulator`);
//! - **cold start** ([`cold`]): spawn to the first `200` from `POST /exchange`, `COLD_RUNS`
//!   times each with no compiled-mapper cache, an empty cache (miss) and a populated one
//!   (hit), with a breakdown from claimex's own log timestamps, and the bare process start
//!   for comparison;
//! - **allocations** ([`alloc`]): heap allocations and bytes per exchange, in-process (this
//!   binary counts them with its global allocator) through the pipeline `app::build`
//!   assembles, minus HTTP.
//!
//! Settings (environment): `BENCH_LOAD_SECS` (10), `BENCH_LOAD_CONNECTIONS` (16),
//! `BENCH_LOAD_REPEATS` (3), `BENCH_COLD_RUNS` (10), `BENCH_SKIP` (comma list of `load`,
//! `kms`, `cold`, `alloc`), `BENCH_KEEP` (keep the configs and claimex logs), `BENCH_COLD_LOG`
//! (`CLAIMEX_LOG` for the cold starts, e.g. `debug` to see where start-up time goes),
//! `BENCH_CLAIMEX_BIN` (another claimex binary, e.g. one built with other flags; then none is
//! built), `BENCH_SERVER_CPUS` (the CPUs of the servers, default `0`; `0,1` for a two-CPU
//! cold start), `BENCH_PYTHON` (the interpreter with moto, default `python3`). The report is
//! also written to `target/criterion/claimex-load-summary.txt`.

mod alloc;
mod cold;
mod http1;
mod kms;
mod load;
mod logs;
mod procfs;
mod report;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use claimex::signer::SigningAlg;
use claimex::signer::local::LocalKey;
use claimex_testkit::issuer::pad_claims;
use claimex_testkit::server::Claimex;
use claimex_testkit::{TestIssuer, entries, mappers, now, root, target_dir};

use report::{Report, have, machine};

/// One part of the report.
type Section = fn(&mut Bench, &mut Report);

const AUD: &str = "https://claimex.bench";
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
const EXCHANGE_PATH: &str = "/exchange?issuerId=github";

/// The CPUs `claimex serve` may use: [`SERVER_CPU`], or `BENCH_SERVER_CPUS` (e.g. `0,1` to
/// see a cold start with two CPUs; the load figures assume one).
fn server_cpus() -> String {
    std::env::var("BENCH_SERVER_CPUS").unwrap_or_else(|_| SERVER_CPU.to_owned())
}

/// The claimex binary: `BENCH_CLAIMEX_BIN`, or the release build of this workspace, built
/// first (a no-op when it is up to date).
fn claimex_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BENCH_CLAIMEX_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "claimex",
            "--bin",
            "claimex",
        ])
        .status()
        .expect("cannot run cargo to build claimex");
    assert!(status.success(), "building claimex (release) failed");
    target_dir().join("release/claimex")
}

/// Everything the runs share.
pub struct Bench {
    issuer: TestIssuer,
    dir: tempfile::TempDir,
    program: PathBuf,
    pin: bool,
    runs: u64,
    /// For the async parts of the test kit (readiness, the KMS client).
    rt: tokio::runtime::Runtime,
}

/// Where claimex's signing key lives.
pub enum Signer {
    /// A pre-generated local key file.
    Local(SigningAlg),
    /// A KMS key in the emulator at `endpoint`.
    Kms { arn: String, endpoint: String },
    /// Envelope keys (`kms-envelope`) named by the rotation parameter `parameter` in the
    /// emulator at `endpoint`.
    Envelope { parameter: String, endpoint: String },
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
        pad_claims(&mut claims, 1500);
        self.issuer.mint(&claims)
    }

    /// A claimex in a fresh run directory: `signer`, the compiled-mapper cache `cache_dir`
    /// (none: `mapper.cache = false`, compile at start), one worker, pinned to the server CPUs, the environment `env`.
    fn claimex(
        &mut self,
        signer: &Signer,
        cache_dir: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Claimex {
        self.runs += 1;
        let signer = match signer {
            Signer::Local(alg) => format!(
                "[signer]\nbackend = \"local\"\npath = {:?}\nalg = {:?}\n",
                self.key_path(*alg).display().to_string(),
                alg.as_str(),
            ),
            Signer::Kms { arn, endpoint } => format!(
                "[signer]\nbackend = \"kms\"\nkms_key_id = {arn:?}\n\
                 [aws]\nregion = {:?}\nendpoint_url = {endpoint:?}\n",
                claimex_testkit::moto::REGION
            ),
            Signer::Envelope {
                parameter,
                endpoint,
            } => format!(
                "[signer]\nbackend = \"kms-envelope\"\nkms_keys_parameter = {parameter:?}\n\
                 [aws]\nregion = {:?}\nendpoint_url = {endpoint:?}\n",
                claimex_testkit::moto::REGION
            ),
        };
        let mut claimex = Claimex::new()
            .dir(self.dir.path().join(format!("run-{}", self.runs)))
            .program(&self.program)
            .workers(1)
            .mapper_dir(mappers::dir())
            .cache_dir(cache_dir.map(Path::to_path_buf))
            .settings(&format!(
                "[registry]\npath = {:?}\n{signer}",
                self.dir.path().join("issuers.toml").display().to_string(),
            ));
        if self.pin {
            claimex = claimex.cpus(&server_cpus());
        }
        for (name, value) in env {
            claimex = claimex.env(name, value);
        }
        claimex
    }
}

fn main() {
    if cfg!(debug_assertions) {
        eprintln!(
            "claimex-bench: built without optimisations; run it with `cargo run --release -p claimex-bench` (bench/load.sh does)"
        );
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
    let program = claimex_bin();
    mappers::github();
    let issuer = TestIssuer::start().expect("cannot start the test issuer");
    let dir = tempfile::Builder::new()
        .prefix("claimex-load-")
        .tempdir()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut bench = Bench {
        issuer,
        dir,
        program,
        pin,
        runs: 0,
        rt,
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
        entries::file(
            "github",
            bench.issuer.url(),
            AUD,
            mappers::GITHUB,
            r#"{ allowed_owner_ids = ["65"] }"#,
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
        bench.program.display()
    );
    let sections: [(&str, Section); 4] = [
        ("load", load::run),
        ("kms", kms::run),
        ("cold", cold::run),
        ("alloc", alloc::run),
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
