//! Mappers: the port the core calls ([`ClaimsMapper`], [`MapperLoader`]), the contract a
//! component must meet ([`contract`]), and the wasmtime runtime that runs components in a
//! sandbox ([`wasm`]).
//!
//! The core does not know that mappers are WebAssembly: it hands a [`MapRequest`] to a
//! [`ClaimsMapper`] and gets a decision or a [`MapperError`]. Tests implement the trait with
//! plain Rust.

pub mod contract;
pub mod wasm;

use std::path::{Path, PathBuf};
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
         against mappers/wit of this release",
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

/// Loads mappers named by issuer entries.
pub trait MapperLoader: Send + Sync {
    /// Loads the module at `path`, refusing it when `sha256` is given and differs.
    fn load(&self, path: &Path, sha256: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError>;
}
