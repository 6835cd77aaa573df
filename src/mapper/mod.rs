//! Mappers: the port the core calls ([`ClaimsMapper`], [`MapperLoader`]), the contract a
//! component must meet ([`contract`]), and the wasmtime runtime that runs components in a
//! sandbox ([`wasm`]).
//!
//! The core does not know that mappers are WebAssembly: it hands a [`MapRequest`] to a
//! [`ClaimsMapper`] and gets a decision (allow, or a deny with a code and a reason) or a
//! [`MapperError`] (the mapper failed: 500, never a 403). When an issuer entry is loaded, the
//! registry asks the mapper to [`ClaimsMapper::validate_config`] the entry's configuration.
//! Tests implement the trait with plain Rust.

pub mod contract;
pub mod shadow;
pub mod shadow_runner;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::subject::SubjectKind;

/// What a mapper is asked to decide on.
#[derive(Debug, Clone, Copy)]
pub struct MapRequest<'a> {
    /// The kind of credential the claims come from.
    pub subject_kind: SubjectKind,
    /// The registered issuer id.
    pub issuer_id: &'a str,
    /// The registered issuer URL (equal to the verified `iss`).
    pub issuer_url: &'a str,
    /// The verified claims, as a JSON object.
    pub claims_json: &'a str,
    /// The issuer's mapper configuration, as JSON.
    pub config_json: &'a str,
    /// Whether to ask the mapper for its checks (`claimex mapper test --explain`). The
    /// exchange never does: the checks cost the mapper time.
    pub explain: bool,
}

/// A mapper's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapDecision {
    /// Refuse (a policy decision: 403).
    Deny {
        /// Stable and machine-readable: 1 to 64 of `[a-z0-9_]` ([`contract::valid_deny_code`]).
        code: String,
        /// For the caller: what to fix.
        reason: String,
    },
    /// Accept, with the outbound claims as the mapper wrote them (unchecked JSON).
    Allow(String),
}

/// One check the mapper reports when asked to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name, e.g. `allowed_refs`.
    pub name: String,
    /// Whether the credential passed it.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
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
    /// The mapper ran and reported that it failed (its `err`: a bug, an input it does not
    /// support).
    #[error("the mapper reported an error: {0}")]
    Failed(String),
    /// The mapper denied with a code outside the contract's shape.
    #[error("the mapper denied with the code {0:?}, which is not 1 to 64 characters of [a-z0-9_]")]
    InvalidDenyCode(String),
}

/// Why a mapper did not accept an issuer entry's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The mapper refused it, saying why.
    #[error("the mapper refused mapper_config: {0}")]
    Rejected(String),
    /// The check itself failed (a trap, the deadline, ...): the configuration is not known
    /// to be usable.
    #[error("the mapper could not check mapper_config: {0}")]
    Failed(MapperError),
}

/// The result of one mapper call: the decision, the checks when they were asked for, and
/// what the guest wrote to stderr (bounded), which goes to the operator's log and never to
/// the caller.
#[derive(Debug, Clone)]
pub struct MapOutcome {
    /// The decision, or why there is none.
    pub result: Result<MapDecision, MapperError>,
    /// The mapper's checks; empty unless the request asked to explain.
    pub checks: Vec<Check>,
    /// The guest's stderr output, possibly truncated; empty for most calls.
    pub stderr: String,
}

impl From<Result<MapDecision, MapperError>> for MapOutcome {
    fn from(result: Result<MapDecision, MapperError>) -> MapOutcome {
        MapOutcome {
            result,
            checks: Vec::new(),
            stderr: String::new(),
        }
    }
}

/// A loaded mapper, ready to be called many times and concurrently.
#[async_trait::async_trait]
pub trait ClaimsMapper: Send + Sync {
    /// The SHA-256 (lowercase hex) of the module this mapper runs, for audit lines.
    fn sha256(&self) -> &str;
    /// Checks an issuer entry's configuration (JSON, `null` when unset) when the entry is
    /// loaded. Deterministic for a given module and configuration.
    async fn validate_config(&self, config_json: &str) -> Result<(), ConfigError>;
    /// Decides on one exchange. Every call starts from a fresh state.
    async fn map(&self, request: &MapRequest<'_>) -> MapOutcome;
}

/// Why a mapper module cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("{path}: {reason}")]
    Io {
        /// The module's path.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The file is larger than the host accepts.
    #[error("the module is {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The module is not the one the issuer entry pins.
    #[error(
        "the module's SHA-256 is {actual}, but the issuer entry pins {pinned}: refusing to run it"
    )]
    PinMismatch {
        /// The module's SHA-256.
        actual: String,
        /// The pinned SHA-256.
        pinned: String,
    },
    /// A core WebAssembly module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build the mapper for \
         wasm32-wasip2 (or wrap it with wit-component)"
    )]
    CoreModule,
    /// Not WebAssembly at all.
    #[error("this is not a WebAssembly component")]
    NotComponent,
    /// The component does not compile.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// It exports another version of the contract.
    #[error(
        "the module was built for contract {0}, but this claimex speaks {CONTRACT}: rebuild it \
         against mappers/wit of this release (mappers/README.md, \"Moving a mapper from 0.1 to \
         0.2\")",
        CONTRACT = contract::CONTRACT
    )]
    OtherContract(String),
    /// It does not export the contract at all.
    #[error(
        "the module does not export {CONTRACT} (it exports: {list}); build it from the \
         claims-mapper world in mappers/wit",
        CONTRACT = contract::CONTRACT,
        list = if .0.is_empty() { "nothing".to_owned() } else { .0.join(", ") }
    )]
    NoContract(Vec<String>),
    /// It imports interfaces the sandbox does not grant.
    #[error(
        "the module imports {}, which claimex does not grant: mappers get no filesystem, \
         network, clock or randomness",
        .0.join(", ")
    )]
    ForbiddenImports(Vec<String>),
    /// It cannot be linked against the sandbox.
    #[error("the module cannot be linked: {0}")]
    Link(String),
}

/// Which mapper of an issuer entry a mapper is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapperRole {
    /// The mapper that decides (`mapper`).
    Live,
    /// The shadow mapper (`shadow_mapper`), run off the response path and compared.
    Shadow,
}

impl MapperRole {
    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MapperRole::Live => "live",
            MapperRole::Shadow => "shadow",
        }
    }
}

/// Loads mappers named by issuer entries.
pub trait MapperLoader: Send + Sync {
    /// Loads the module at `path`, refusing it when `sha256` is given and differs.
    fn load(&self, path: &Path, sha256: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError>;

    /// Loads the module at `path` for `role`. The same as [`MapperLoader::load`] unless a
    /// loader tells the roles apart (the metrics decorator labels calls by role).
    fn load_as(
        &self,
        path: &Path,
        sha256: Option<&str>,
        role: MapperRole,
    ) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        let _ = role;
        self.load(path, sha256)
    }
}
