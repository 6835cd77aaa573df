//! `claimex serve` under load: `wrk` on the client CPU against fresh servers on the server
//! CPU, with the CPU time of everyone involved.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use claimex::signer::SigningAlg;
use claimex_testkit::server::Process;

use crate::http1::exchange_once;
use crate::logs::{audit_decisions, problems};
use crate::procfs::{TICKS_PER_SEC, cpu_busy_ticks, memory, process_ticks};
use crate::report::{Report, median, setting, spread};
use crate::{Bench, CLIENT_CPU, EXCHANGE_PATH, SERVER_CPU, Signer};

/// Environment variables for a claimex child.
type Env = &'static [(&'static str, &'static str)];

pub struct LoadSample {
    pub rate: f64,
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    idle_rss_kib: u64,
    idle_hwm_kib: u64,
    load_rss_kib: u64,
    load_hwm_kib: u64,
    /// claimex's CPU time per exchange during the load, µs.
    pub cpu_us_per_exchange: f64,
    /// Fractions of the load's wall time: claimex's CPU time, other work on claimex's CPU,
    /// wrk's CPU time, and other work on the generator's CPU.
    pub claimex_cpu: f64,
    other_on_server_cpu: f64,
    pub wrk_cpu: f64,
    other_on_client_cpu: f64,
    /// The KMS emulator's CPU time (a share of wall time), when it runs.
    pub peer_cpu: f64,
}

/// What wrk sends: `POST /exchange` with a token, or (the HTTP floor) a `GET` of claimex's
/// discovery document, which runs the same HTTP path with no exchange behind it.
const WRK_POST: &str = r#"
wrk.method = "POST"
wrk.path = "__PATH__"
wrk.headers["Content-Type"] = "application/jwt"
wrk.body = "__TOKEN__"
"#;
const WRK_GET: &str = r#"
wrk.method = "GET"
wrk.path = "__PATH__"
"#;
/// The path of the HTTP-floor case.
const FLOOR_PATH: &str = "/.well-known/openid-configuration";
const WRK_DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

/// Runs wrk against `server`: `POST /exchange` with `token`, or with `None` a `GET` of
/// [`FLOOR_PATH`].
fn wrk(
    bench: &Bench,
    server: &Process,
    token: Option<&str>,
    secs: u64,
    connections: u64,
) -> BTreeMap<String, f64> {
    let script = bench.dir.path().join(format!("wrk-{}.lua", bench.runs));
    let request = match token {
        Some(token) => WRK_POST
            .replace("__PATH__", EXCHANGE_PATH)
            .replace("__TOKEN__", token),
        None => WRK_GET.replace("__PATH__", FLOOR_PATH),
    };
    std::fs::write(&script, request + WRK_DONE).unwrap();
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
/// reported too (the KMS emulator). With `floor`, the same server answers `GET`
/// [`FLOOR_PATH`] under the same load instead of exchanges: the HTTP path (actix, the handler,
/// loopback TCP) with no exchange behind it.
pub fn load_sample(
    bench: &mut Bench,
    signer: &Signer,
    env: &[(&str, &str)],
    secs: u64,
    connections: u64,
    peer: Option<u32>,
    floor: bool,
) -> LoadSample {
    let cache = bench.dir.path().join("cache-load");
    let mut server = bench.claimex(signer, Some(&cache), env).launch();
    ready(bench, &mut server);
    let pid = server.pid().expect("claimex is not running");
    let token = bench.token();
    exchange_once(server.addr, &token)
        .unwrap_or_else(|e| panic!("the first exchange failed: {e}\n{}", server.log_tail(15)));
    let (idle_rss_kib, idle_hwm_kib) = memory(pid);
    for _ in 0..200 {
        exchange_once(server.addr, &token).expect("a warm-up exchange failed");
    }
    let peer_ticks = || peer.map(process_ticks).unwrap_or(0);
    let (ticks0, peer0, cpu0, cpu1, t0) = (
        process_ticks(pid),
        peer_ticks(),
        cpu_busy_ticks(SERVER_CPU),
        cpu_busy_ticks(CLIENT_CPU),
        Instant::now(),
    );
    let result = wrk(
        bench,
        &server,
        (!floor).then_some(&*token),
        secs,
        connections,
    );
    let wall = t0.elapsed().as_secs_f64() * TICKS_PER_SEC;
    let claimex_ticks = (process_ticks(pid) - ticks0) as f64;
    let peer_ticks = (peer_ticks() - peer0) as f64;
    let cpu0 = (cpu_busy_ticks(SERVER_CPU) - cpu0) as f64;
    let cpu1 = (cpu_busy_ticks(CLIENT_CPU) - cpu1) as f64;
    check_alive(&mut server);
    let (load_rss_kib, load_hwm_kib) = memory(pid);
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
    if !floor && !env.iter().any(|(k, _)| *k == "CLAIMEX_LOG") {
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
    let median = claimex_testkit::criterion::median("exchange", alg.as_str())?;
    let age = median.written.and_then(|written| written.elapsed().ok());
    Some((median.us, age.unwrap_or_default()))
}

/// Waits until `server` is ready; panics with its log otherwise.
pub fn ready(bench: &Bench, server: &mut Process) {
    if let Err(log) = bench
        .rt
        .block_on(server.wait_ready(Duration::from_secs(60)))
    {
        panic!("claimex did not start: {log}");
    }
}

/// Panics with the end of its log when `server` has exited.
pub fn check_alive(server: &mut Process) {
    if let Some(status) = server.exited() {
        panic!(
            "claimex exited ({status}); its log:\n{}",
            server.log_tail(15)
        );
    }
}

/// The load section of the report.
pub fn run(bench: &mut Bench, out: &mut Report) {
    let secs = setting("BENCH_LOAD_SECS", 10);
    let connections = setting("BENCH_LOAD_CONNECTIONS", 16);
    let repeats = setting("BENCH_LOAD_REPEATS", 3).max(1);
    let _ = writeln!(
        out,
        "\nserver under load: claimex on CPU {SERVER_CPU} (workers = 1), wrk on CPU {CLIENT_CPU} \
         (-t1 -c{connections} -d{secs}s, keep-alive); median of {repeats} fresh servers (min-max), cases interleaved"
    );
    // The last case is the HTTP floor: a `GET` of the discovery document under the same load,
    // no exchange behind it; its CPU time per request bounds what any exchange server built on
    // this HTTP stack can keep of the 1-thread rate.
    let cases: [(&str, SigningAlg, Env, bool); 4] = [
        ("ES256", SigningAlg::Es256, &[], false),
        ("RS256", SigningAlg::Rs256, &[], false),
        (
            "ES256, no audit lines",
            SigningAlg::Es256,
            &[("CLAIMEX_LOG", "warn")],
            false,
        ),
        ("HTTP floor (GET disc.)", SigningAlg::Es256, &[], true),
    ];
    // Compile the mapper into the cache first, so every measured server starts alike.
    let cache = bench.dir.path().join("cache-load");
    let mut server = bench
        .claimex(&Signer::Local(SigningAlg::Es256), Some(&cache), &[])
        .launch();
    ready(bench, &mut server);
    server.stop();
    // Rounds of one run per case, so that a noisy spell does not land on one case alone.
    let mut results: Vec<(&str, SigningAlg, bool, Vec<LoadSample>)> = cases
        .iter()
        .map(|(label, alg, _, floor)| (*label, *alg, *floor, Vec::new()))
        .collect();
    for _ in 0..repeats {
        for (i, (_, alg, env, floor)) in cases.iter().enumerate() {
            let signer = Signer::Local(*alg);
            let sample = load_sample(bench, &signer, env, secs, connections, None, *floor);
            results[i].3.push(sample);
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
    for (label, alg, floor, samples) in &results {
        let rates = col(samples, |s| s.rate);
        let rate = median(&rates);
        let (lo, hi) = spread(&rates);
        let cpu_us = median(&col(samples, |s| s.cpu_us_per_exchange));
        let (ratio, cpu_ratio) = match criterion_median_us(*alg) {
            _ if *floor => ("-".into(), "-".into()),
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
    for (label, _, _, samples) in &results {
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
            .map(|(label, _, _, samples)| format!(
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
    // The ceiling the floor sets: with `f` µs of CPU per request outside the exchange, a server
    // keeps at most t / (t + f) of the 1-thread rate of an exchange taking t µs.
    let floor_us = results
        .iter()
        .find(|(_, _, floor, _)| *floor)
        .map(|(_, _, _, samples)| median(&col(samples, |s| s.cpu_us_per_exchange)));
    if let Some(floor_us) = floor_us {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256] {
            if let Some((us, _)) = criterion_median_us(alg) {
                let _ = writeln!(
                    out,
                    "  HTTP floor {floor_us:.1} CPU µs/request: a server of exchange/{} ({us:.1} µs) keeps at most {:.0}% of the 1-thread rate (t / (t + floor))",
                    alg.as_str(),
                    100.0 * us / (us + floor_us)
                );
            }
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
