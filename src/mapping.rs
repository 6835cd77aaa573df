//! The mapping step as the core sees it: a request in, a decision out, behind a trait.
//!
//! The core does not know that mappers are WebAssembly; [`crate::wasm`] implements
//! [`ClaimsMapper`] with wasmtime, and tests may implement it with plain Rust.

use std::path::Path;
use std::sync::Arc;

/// What a mapper is asked to decide on.
#[derive(Debug, Clone, Copy)]
pub struct MapRequest<'a> {
    /// The registered issuer id.
    pub issuer_id: &'a str,
    /// The registered issuer URL (equal to the verified `iss`).
    pub issuer_url: &'a str,
    /// The verified claims, as a JSON object.
    pub claims_json: &'a str,
    /// The issuer's mapper configuration, as JSON.
    pub config_json: &'a str,
}

/// A mapper's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapDecision {
    /// Refuse, with the mapper's reason.
    Deny(String),
    /// Accept, with the outbound claims as the mapper wrote them (unchecked JSON).
    Allow(String),
}

/// Why a mapper produced no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapperError {
    /// The call ran past its deadline and was interrupted.
    #[error("the mapper ran past its {0} ms deadline and was stopped")]
    Deadline(u64),
    /// The guest tried to grow its memory past the cap.
    #[error("the mapper tried to use more than its {0} MiB of memory and was stopped")]
    Memory(u64),
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, ...).
    #[error("the mapper trapped: {0}")]
    Trap(String),
    /// The decision is larger than the configured maximum output.
    #[error("the mapper's output is {0} bytes, more than the {1} bytes allowed")]
    OutputTooLarge(usize, usize),
    /// The runtime could not run the mapper at all (instantiation failed, no capacity).
    #[error("the mapper could not be run: {0}")]
    Runtime(String),
}

/// The result of one mapper call, with what the guest wrote to stderr (bounded), which goes
/// to the operator's log and never to the caller.
#[derive(Debug, Clone)]
pub struct MapOutcome {
    /// The decision, or why there is none.
    pub result: Result<MapDecision, MapperError>,
    /// The guest's stderr output, possibly truncated; empty for most calls.
    pub stderr: String,
}

impl From<Result<MapDecision, MapperError>> for MapOutcome {
    fn from(result: Result<MapDecision, MapperError>) -> MapOutcome {
        MapOutcome {
            result,
            stderr: String::new(),
        }
    }
}

/// A loaded mapper, ready to be called many times and concurrently.
#[async_trait::async_trait]
pub trait ClaimsMapper: Send + Sync {
    /// The SHA-256 (lowercase hex) of the module this mapper runs, for audit lines.
    fn sha256(&self) -> &str;
    /// Decides on one exchange. Every call starts from a fresh state.
    async fn map(&self, request: &MapRequest<'_>) -> MapOutcome;
}

/// Loads mappers named by issuer entries.
pub trait MapperLoader: Send + Sync {
    /// Loads the module at `path`, refusing it when `sha256` is given and differs.
    fn load(&self, path: &Path, sha256: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, String>;
}
