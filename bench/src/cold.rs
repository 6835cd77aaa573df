//! Cold start: spawn to the first successful exchange, with and without the compiled-mapper
//! cache, broken down by claimex's own log timestamps.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use claimex::signer::SigningAlg;

use crate::http1::request;
use crate::load::check_alive;
use crate::logs::{log_lines, parse_timestamp, problems};
use crate::procfs::memory;
use crate::report::{Report, median, setting, spread};
use crate::{Bench, EXCHANGE_PATH, SERVER_CPU, Signer, server_cpus};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// No `mapper.cache_dir`: compile at every start (the default).
    None,
    /// An empty cache directory.
    Miss,
    /// A cache directory a previous start populated.
    Hit,
    /// A cache directory holding only the artifact of `claimex mapper compile --portable`
    /// (what the Lambda package ships).
    Precompiled,
}

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
    let token = bench.token();
    let log_filter = std::env::var("BENCH_COLD_LOG").ok();
    let env: Vec<(&str, &str)> = match &log_filter {
        Some(filter) => vec![("CLAIMEX_LOG", filter.as_str())],
        None => vec![],
    };
    let mut server = bench.claimex(&Signer::Local(alg), cache, &env).launch();
    let deadline = server.started() + Duration::from_secs(120);
    let total = loop {
        if let Ok((200, _)) = request(server.addr, "POST", EXCHANGE_PATH, token.as_bytes()) {
            break server.started().elapsed();
        }
        check_alive(&mut server);
        assert!(
            Instant::now() < deadline,
            "no successful exchange within 120 s of start; log:\n{}",
            server.log_tail(15)
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    let started_us = server
        .started_wall()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e6;
    let (rss_kib, _) = memory(server.pid().expect("claimex is not running"));
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

/// The cold-start section of the report.
pub fn run(bench: &mut Bench, out: &mut Report) {
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
            c.args(["-c", SERVER_CPU]).arg(&bench.program);
            c
        } else {
            Command::new(&bench.program)
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
            (Cache::None, "no cache (mapper.cache = false)"),
            (Cache::Miss, "cache miss (empty cache_dir)"),
            (Cache::Hit, "cache hit"),
            (Cache::Precompiled, "precompiled (mapper compile)"),
        ] {
            let hit_dir = bench.dir.path().join(format!(
                "cache-{}-{}",
                if mode == Cache::Hit {
                    "hit"
                } else {
                    "precompiled"
                },
                alg.as_str()
            ));
            if mode == Cache::Hit {
                // Populate it with one untimed start.
                cold_sample(bench, alg, Some(&hit_dir));
            }
            if mode == Cache::Precompiled {
                let status = Command::new(&bench.program)
                    .args(["mapper", "compile", "--portable"])
                    .arg(claimex_testkit::mappers::dir().join("claimex_mapper_github.wasm"))
                    .arg("-o")
                    .arg(format!("{}/", hit_dir.display()))
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success(), "claimex mapper compile failed");
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
                        Cache::Hit | Cache::Precompiled => Some(hit_dir.as_path()),
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
