//! Test support for claimex, dev-only: never a dependency of the product (nothing under the
//! repository's `src/` imports it). The one harness of `tests/`, `benches/` and the load
//! program (`bench/`), one module per concern:
//!
//! | module | what |
//! |---|---|
//! | [`issuer`] | [`TestIssuer`], a real OIDC issuer on loopback (discovery + JWKS over HTTP), minting GitHub- and GitLab-shaped RS256 tokens; it rotates keys and goes down on demand |
//! | [`hostile`] | tokens claimex must refuse: `alg: none`, HS256 keyed with the issuer's public key, a foreign key naming the issuer's `kid`, a `crit` header, a mislabelled `alg` |
//! | [`mappers`] | the workspace's mapper crates built as WebAssembly components (Rust, and the JavaScript GitHub mapper) |
//! | [`entries`] | issuer entries for the file registry (TOML) and the SSM registry (JSON) |
//! | [`server`] | claimex itself: one builder, [`server::Claimex`], started in this process or as the real `claimex serve` binary in a child process |
//! | [`client`] | the HTTP client side: `POST /exchange` and the answer, RFC 6749 errors |
//! | [`iam`] | an IAM acceptance checker written from AWS's documentation: discovery and JWKS as IAM reads them, a token as `AssumeRoleWithWebIdentity` checks it, a small trust-policy condition set; answers STS's error code |
//! | [`jwks`] | a relying party: discovery, then the JWKS, then the token's signature and claims |
//! | [`moto`] | the AWS API emulator (`moto_server` through its Python shim), a loopback proxy that can cut or blackhole it, SDK clients pointed at it |
//! | [`sigv4`] | SigV4-signed AWS Query requests (`aws-sigv4`): IAM set-up calls, and the signed GetCallerIdentity a workload hands claimex as its `aws4_request` subject token |
//! | [`cli`] | the `claimex` command run with a clean environment and a deadline |
//! | [`clock`], [`net`] | `now()`, `wait_for`; `free_port()`, `port_open` |
//! | [`criterion`] | criterion's medians as the benches left them, with when they were written |
//!
//! Everything listens on 127.0.0.1, every wait has a deadline, every process and thread
//! stops when its handle drops. Helpers panic with a message saying what failed: they serve
//! tests, and a panic is a test failure.

pub mod cli;
pub mod client;
pub mod clock;
pub mod criterion;
pub mod entries;
pub mod hostile;
pub mod iam;
pub mod issuer;
pub mod jwks;
pub mod mappers;
pub mod moto;
pub mod net;
pub mod server;
pub mod sigv4;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use clock::{now, wait_for};
pub use issuer::{GITHUB_CLAIMS, GITLAB_CLAIMS, TestIssuer};
pub use net::free_port;

/// The workspace root (the `claimex` package's directory).
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        dir.canonicalize().unwrap_or(dir)
    })
}

/// The directory cargo builds into: `CARGO_TARGET_DIR`, or `target/` of the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// A new, unique scratch directory under `target/tmp/testkit/` (its owner removes it unless
/// the test failed, so a failure leaves its logs for the post-mortem).
pub fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = target_dir()
        .join("tmp/testkit")
        .join(format!("{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The last `lines` lines of the text file at `path` (empty when it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
