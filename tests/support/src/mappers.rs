//! The mapper components the tests and benches load, built from the workspace's crates.
//!
//! Rust mappers are built by cargo for `wasm32-wasip2` with the `mapper` profile into
//! `target/mappers` (what `make fixtures` builds; a no-op when they are up to date). The
//! JavaScript GitHub mapper is built by `mappers/js/build.sh` (Node.js 18+ and npm)
//! when it is missing or older than its sources.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::root;

/// The stock GitHub mapper's crate.
pub const GITHUB: &str = "claimex-mapper-github";

/// Every mapper and fixture crate the tests load.
pub const ALL: &[&str] = &[
    "claimex-mapper-github",
    "claimex-mapper-gitlab",
    "claimex-mapper-rules",
    "claimex-fixture-trap",
    "claimex-fixture-spin",
    "claimex-fixture-membomb",
    "claimex-fixture-bigoutput",
    "claimex-fixture-notobject",
    "claimex-fixture-reserved",
    "claimex-fixture-badtags",
    "claimex-fixture-echo",
    "claimex-fixture-wrongexport",
    "claimex-fixture-wrongversion",
    "claimex-fixture-error",
];

/// What the JavaScript GitHub mapper is built from.
const JS_SOURCES: &[&str] = &[
    "mappers/js/github/mapper.js",
    "mappers/js/claimex.js",
    "mappers/js/build.sh",
    "mappers/js/package-lock.json",
    "mappers/js/deterministic.c",
    "mappers/wit/mapper.wit",
];

/// The file name of crate `name`'s component (`claimex-mapper-github` →
/// `claimex_mapper_github.wasm`).
pub fn file_name(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// Where the Rust components are (built or not).
pub fn dir() -> PathBuf {
    root().join("target/mappers/wasm32-wasip2/mapper")
}

/// Builds the mapper crates `packages` and returns the path of each one's component, in the
/// order given. Panics, saying what to install, when the build fails.
pub fn build(packages: &[&str]) -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["build", "--quiet", "--target", "wasm32-wasip2"])
        .args(["--profile", "mapper", "--target-dir"])
        .arg(root().join("target/mappers"));
    for package in packages {
        command.args(["-p", package]);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the mappers: {e}"));
    assert!(
        status.success(),
        "building {} failed; is the target installed? `rustup target add wasm32-wasip2`",
        packages.join(", ")
    );
    packages.iter().map(|p| dir().join(file_name(p))).collect()
}

/// Builds every crate of [`ALL`], once per process, and returns the directory of the
/// components.
pub fn all() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build(ALL);
        dir()
    })
}

/// The component of crate `name` (one of [`ALL`]; all are built once per process).
pub fn path(name: &str) -> PathBuf {
    all().join(file_name(name))
}

/// The stock GitHub mapper, built (alone) once per process.
pub fn github() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build(&[GITHUB]).remove(0))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The JavaScript GitHub mapper (`mappers/js/github`, QuickJS), built once per process when it
/// is missing or older than its sources. Panics, saying what is missing, when it cannot be
/// built.
pub fn js_github() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let wasm = root().join("target/mappers/js/claimex_mapper_github_js.wasm");
        let built = modified(&wasm);
        let stale = built.is_none()
            || JS_SOURCES
                .iter()
                .any(|source| modified(&root().join(source)) > built);
        if stale {
            for tool in ["node", "npm"] {
                let found = Command::new(tool)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success());
                assert!(
                    found,
                    "`{tool}` was not found: the JavaScript mapper is built from \
                     mappers/js/github with Node.js 18+ and npm; install them, or build \
                     {} elsewhere and copy it here",
                    wasm.display()
                );
            }
            let output = Command::new("sh")
                .arg(root().join("mappers/js/build.sh"))
                .arg(root().join("mappers/js/github/mapper.js"))
                .arg(&wasm)
                .current_dir(root())
                .output()
                .unwrap_or_else(|e| panic!("cannot run sh mappers/js/build.sh: {e}"));
            assert!(
                output.status.success(),
                "mappers/js/build.sh failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        wasm
    })
}
