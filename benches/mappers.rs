//! The GitHub mapper in Rust and in JavaScript (QuickJS), under the real host: module size,
//! compile time (the first load, no cache) and the time of one `map` call, each on a fresh
//! instance as the server runs it (median of 200 after 20 warm-up calls).
//!
//! Run: `cargo bench --bench mappers` (builds both mappers first when needed). Further
//! components can be measured alongside: `cargo bench --bench mappers -- other.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use claimex::mapper::wasm::{Limits, MapperRuntime};
use claimex::mapper::{ClaimsMapper, MapDecision, MapRequest};
use claimex_testkit::GITHUB_CLAIMS;

const CALLS: usize = 200;
const WARMUP: usize = 20;
const CONFIG: &str = r#"{"allowed_owners":["octo-org"],"transitive_tag_keys":["repository"]}"#;
const JS_SOURCES: &[&str] = &[
    "mappers/js/github/mapper.js",
    "mappers/js/claimex.js",
    "mappers/js/build.sh",
    "mappers/js/package-lock.json",
    "mappers/js/deterministic.c",
    "mappers/wit/mapper.wit",
];

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn rust_mapper(root: &Path) -> PathBuf {
    claimex_testkit::build_mapper_components(root, &["claimex-mapper-github"])
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

fn js_mapper(root: &Path) -> PathBuf {
    let wasm = root.join("target/mappers/js/claimex_mapper_github_js.wasm");
    let built = modified(&wasm);
    if built.is_none() || JS_SOURCES.iter().any(|s| modified(&root.join(s)) > built) {
        let status = Command::new("sh")
            .arg(root.join("mappers/js/build.sh"))
            .arg(root.join("mappers/js/github/mapper.js"))
            .arg(&wasm)
            .status()
            .expect("cannot run mappers/js/build.sh (Node.js 18+ and npm needed)");
        assert!(status.success(), "mappers/js/build.sh failed");
    }
    wasm
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut mappers = vec![
        ("rust".to_owned(), rust_mapper(root)),
        ("js".to_owned(), js_mapper(root)),
    ];
    for arg in std::env::args().skip(1).filter(|a| a.ends_with(".wasm")) {
        let name = Path::new(&arg)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        mappers.push((name, PathBuf::from(arg)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = MapRequest {
        subject_kind: claimex::subject::SubjectKind::Oidc,
        issuer_id: "github",
        issuer_url: "https://token.actions.githubusercontent.com",
        claims_json: GITHUB_CLAIMS,
        config_json: CONFIG,
        explain: false,
    };

    println!("GitHub mapper, fresh instance per call, {CALLS} calls after {WARMUP} warm-up");
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "mapper", "bytes", "compile ms", "median ms", "p90 ms", "min ms"
    );
    let mut medians = Vec::new();
    for (name, path) in &mappers {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A runtime of its own, without a disk cache: the load compiles.
        let host = MapperRuntime::new(Limits::default(), None).unwrap();
        let start = Instant::now();
        let mapper = host
            .load_bytes(&bytes, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let compile = start.elapsed();
        let mut times = runtime.block_on(async {
            for _ in 0..WARMUP {
                mapper.map(&request).await;
            }
            let mut times = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let start = Instant::now();
                let outcome = mapper.map(&request).await;
                times.push(start.elapsed());
                assert!(
                    matches!(outcome.result, Ok(MapDecision::Allow(_))),
                    "{name}: {:?}",
                    outcome.result
                );
            }
            times
        });
        times.sort();
        let median = times[CALLS / 2];
        medians.push(median);
        println!(
            "{:<24} {:>12} {:>12.1} {:>12.3} {:>10.3} {:>10.3}",
            name,
            bytes.len(),
            ms(compile),
            ms(median),
            ms(times[CALLS * 9 / 10]),
            ms(times[0])
        );
    }
    println!(
        "js / rust: {:.1}x per call",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
}
