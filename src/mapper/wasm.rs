//! The WebAssembly mapper runtime: wasmtime, the Component Model, and the sandbox.
//!
//! One [`MapperRuntime`] owns the engine (pooling allocator, epoch interruption), the linker
//! (only `wasi:cli` stdio/exit/empty environment and `wasi:io` streams: no filesystem,
//! network, clock or randomness), a background epoch ticker, and a cache of compiled
//! mappers keyed by the module's SHA-256, backed by serialized components on disk (the
//! compiled-mapper cache, [`CacheDir`]) so that a restart does not pay Cranelift again. The
//! cache also holds artifacts precompiled ahead of time (`claimex mapper compile`, named
//! `<sha256>.cwasm`): a Lambda cold start deserializes instead of compiling, and an artifact
//! wasmtime refuses (another wasmtime, settings or CPU) is logged and compiled around.
//!
//! Every call (`map`, and `validate-config` when an entry loads) gets a fresh store and
//! instance from a pre-instantiated component, a wall-clock deadline, a memory cap and an
//! output cap; whatever the guest does, the call returns.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use serde::Deserialize;

use super::contract::{self, CONTRACT};
use super::{
    Check, ClaimsMapper, ConfigError, LoadError, MapDecision, MapOutcome, MapRequest, MapperError,
    MapperLoader,
};
use crate::settings::{SettingError, range};
use crate::subject::SubjectKind;

mod bindings {
    wasmtime::component::bindgen!({
        path: "mappers/wit",
        world: "claims-mapper",
        exports: { default: async },
    });
}

use bindings::exports::claimex::mapper::mapper as guest;

/// Largest mapper module accepted, in bytes.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;
const STDERR_CAPTURE: usize = 4096;
const EPOCH_TICK: Duration = Duration::from_millis(5);
const KEEP_RESIDENT: usize = 512 * 1024;

/// The `[mapper]` section: where mappers live, the sandbox limits, the compiled-code cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapperSettings {
    /// Where relative mapper paths of issuer entries start (default: the config's directory).
    pub dir: Option<PathBuf>,
    /// Wall-clock deadline of one call, milliseconds.
    pub deadline_ms: u64,
    /// Memory cap of one instance, MiB.
    pub memory_mib: u64,
    /// Largest mapper output, bytes.
    pub max_output_bytes: usize,
    /// Mapper instances that may run at once.
    pub max_concurrent: u32,
    /// Where compiled mappers are cached across restarts. Unset: the user's cache directory
    /// (`$XDG_CACHE_HOME/claimex/mappers`, else `$HOME/.cache/claimex/mappers`, else
    /// `.claimex-cache/mappers` beside the config file), skipped with one warning when it is
    /// not writable. A directory that exists but is read-only (a Lambda's `/var/task`) is read
    /// from and never written.
    pub cache_dir: Option<PathBuf>,
    /// `false`: no compiled-mapper cache at all (compile every mapper at every start).
    pub cache: bool,
    /// The default cache directory, when `cache_dir` is unset (set by the configuration's
    /// resolution from the environment).
    #[serde(skip)]
    pub default_cache_dir: Option<PathBuf>,
}

impl Default for MapperSettings {
    fn default() -> MapperSettings {
        let limits = Limits::default();
        MapperSettings {
            dir: None,
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_mib: (limits.memory_bytes >> 20) as u64,
            max_output_bytes: limits.max_output_bytes,
            max_concurrent: limits.max_concurrent,
            cache_dir: None,
            cache: true,
            default_cache_dir: None,
        }
    }
}

/// Where compiled mappers are cached, and how a failure to use it is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDir {
    /// No cache: compile every mapper when it loads.
    Off,
    /// `mapper.cache_dir`: a directory that cannot be created stops start-up; one that exists
    /// read-only is only read.
    Configured(PathBuf),
    /// The default directory: when unusable, claimex warns once and caches nothing.
    Default(PathBuf),
}

/// The default compiled-mapper cache for this environment (`env`: the process's variables):
/// `$XDG_CACHE_HOME/claimex/mappers`, else `$HOME/.cache/claimex/mappers`, else
/// `<config_dir>/.claimex-cache/mappers`.
pub fn default_cache_dir(env: &[(String, String)], config_dir: &Path) -> PathBuf {
    let var = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| PathBuf::from(v))
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return xdg.join("claimex").join("mappers");
    }
    if let Some(home) = var("HOME") {
        return home.join(".cache").join("claimex").join("mappers");
    }
    config_dir.join(".claimex-cache").join("mappers")
}

impl MapperSettings {
    /// Checks the ranges, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("deadline_ms", self.deadline_ms, 1, 10_000)?;
        range("memory_mib", self.memory_mib, 1, 4096)?;
        range(
            "max_output_bytes",
            self.max_output_bytes as u64,
            256,
            16 * 1024 * 1024,
        )?;
        range("max_concurrent", self.max_concurrent as u64, 1, 10_000)
    }

    /// The compiled-mapper cache these settings give.
    pub fn cache(&self) -> CacheDir {
        match (&self.cache_dir, &self.default_cache_dir) {
            _ if !self.cache => CacheDir::Off,
            (Some(dir), _) => CacheDir::Configured(dir.clone()),
            (None, Some(dir)) => CacheDir::Default(dir.clone()),
            (None, None) => CacheDir::Off,
        }
    }

    /// The sandbox limits these settings give.
    pub fn limits(&self) -> Limits {
        Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: (self.memory_mib as usize) << 20,
            max_output_bytes: self.max_output_bytes,
            max_concurrent: self.max_concurrent,
        }
    }
}

/// The sandbox limits of every mapper call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline of one call.
    pub deadline: Duration,
    /// Linear memory cap of one instance, in bytes.
    pub memory_bytes: usize,
    /// Largest answer accepted, in bytes: the allow JSON, or the deny code and reason, plus
    /// the checks' names and details; or the message of a rejected configuration.
    pub max_output_bytes: usize,
    /// Instances that may run at once (pool size).
    pub max_concurrent: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 * 1024 * 1024,
            max_output_bytes: 64 * 1024,
            max_concurrent: 64,
        }
    }
}

/// Per-call store state. The WASI context is built only when the guest first calls a WASI
/// function (a panic message to stderr, say): most calls never do, and building one costs
/// more than the rest of the instantiation.
struct State {
    wasi: Option<WasiCtx>,
    stderr: Option<MemoryOutputPipe>,
    table: ResourceTable,
    memory_cap: usize,
    memory_exceeded: bool,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stderr = &mut self.stderr;
        let wasi = self.wasi.get_or_insert_with(|| {
            let pipe = MemoryOutputPipe::new(STDERR_CAPTURE);
            *stderr = Some(pipe.clone());
            WasiCtxBuilder::new().stderr(pipe).build()
        });
        WasiCtxView {
            ctx: wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct HasTable;
impl wasmtime::component::HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::WasiCli;
    let l = linker;
    use wasmtime_wasi_io::bindings::wasi::io;
    io::error::add_to_linker::<State, HasTable>(l, |s| &mut s.table)?;
    io::poll::add_to_linker::<State, HasTable>(l, |s| &mut s.table)?;
    io::streams::add_to_linker::<State, HasTable>(l, |s| &mut s.table)?;
    use wasmtime_wasi::cli::WasiCliView as _;
    use wasmtime_wasi::p2::bindings::cli;
    cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    Ok(())
}

type FileStamped = ((u64, std::time::SystemTime), Arc<WasmMapper>);

/// The engine, linker and compiled-mapper cache shared by every issuer.
pub struct MapperRuntime {
    engine: Engine,
    linker: Linker<State>,
    limits: Limits,
    cache: Option<Cache>,
    loaded: Mutex<HashMap<String, Arc<WasmMapper>>>,
    /// Modules already read from disk: path → ((size, modified), mapper).
    by_path: Mutex<HashMap<PathBuf, FileStamped>>,
}

/// A usable compiled-mapper cache directory.
struct Cache {
    dir: PathBuf,
    /// Whether compiled mappers are written back (false: a read-only, pre-filled directory).
    writable: bool,
}

/// The engine configuration every mapper is compiled for, by the server and by
/// `claimex mapper compile` alike: an artifact precompiled under another configuration is
/// refused by wasmtime when it is loaded. `portable`: compile for the baseline CPU of this
/// architecture rather than this machine's features (an artifact built on one host and run on
/// another, as a Lambda package is).
fn engine_config(limits: &Limits, portable: bool) -> anyhow::Result<Config> {
    let mut pool = PoolingAllocationConfig::default();
    let slots = limits.max_concurrent.max(1);
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_memory_size(limits.memory_bytes)
        // Reset a reused slot with memset rather than madvise: a mapper touches little
        // memory, and the syscall and the page faults after it cost more than the copy.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // Where Linux has PAGEMAP_SCAN (6.7+), reset only the pages the call dirtied, not
        // the first KEEP_RESIDENT bytes whole: rewriting 512 KiB per call also evicted the
        // P-256 signing tables from the cache (BENCHMARKS.md, issue 15).
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if portable {
        // An explicit target turns off the detection of this machine's CPU features.
        let triple = match std::env::consts::OS {
            "linux" => format!("{}-unknown-linux-gnu", std::env::consts::ARCH),
            "macos" => format!("{}-apple-darwin", std::env::consts::ARCH),
            other => {
                anyhow::bail!("portable mapper artifacts are built on Linux or macOS, not {other}")
            }
        };
        config
            .target(&triple)
            .map_err(|e| anyhow::anyhow!("cannot target {triple}: {e}"))?;
    }
    Ok(config)
}

impl MapperRuntime {
    /// A runtime with these limits; compiled components are cached in `cache_dir` when set
    /// (as [`CacheDir::Configured`]).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<MapperRuntime>> {
        let cache = match cache_dir {
            Some(dir) => CacheDir::Configured(dir),
            None => CacheDir::Off,
        };
        MapperRuntime::with_cache(limits, cache)
    }

    /// A runtime with these limits and this compiled-mapper cache.
    pub fn with_cache(limits: Limits, cache: CacheDir) -> anyhow::Result<Arc<MapperRuntime>> {
        let engine = Engine::new(&engine_config(&limits, false)?)
            .map_err(|e| anyhow::anyhow!("cannot start the WebAssembly engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        link(&mut linker).map_err(|e| anyhow::anyhow!("cannot link WASI: {e}"))?;
        start_ticker(&engine);
        let cache = open_cache(cache)?;
        Ok(Arc::new(MapperRuntime {
            engine,
            linker,
            limits,
            cache,
            loaded: Mutex::new(HashMap::new()),
            by_path: Mutex::new(HashMap::new()),
        }))
    }

    /// The compiled-mapper cache directory in use, and whether it is written to.
    pub fn cache_dir(&self) -> Option<(&Path, bool)> {
        self.cache.as_ref().map(|c| (c.dir.as_path(), c.writable))
    }

    /// Compiles `bytes` ahead of time with the engine configuration the server uses (for the
    /// baseline CPU when `portable`): the artifact, named `<sha256>.cwasm`
    /// ([`precompiled_name`]) in a server's `mapper.cache_dir`, spares it the compilation.
    pub fn precompile(
        limits: &Limits,
        bytes: &[u8],
        portable: bool,
    ) -> Result<(String, Vec<u8>), LoadError> {
        let sha256 = sha256_hex(bytes);
        contract::check_preamble(bytes)?;
        let config =
            engine_config(limits, portable).map_err(|e| LoadError::Invalid(e.to_string()))?;
        let engine = Engine::new(&config)
            .map_err(|e| LoadError::Invalid(format!("cannot start the WebAssembly engine: {e}")))?;
        let artifact = engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Invalid(e.to_string()))?;
        Ok((sha256, artifact))
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Loads the mapper module `bytes`, refusing it when `pin` is given and differs.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        pin: Option<&str>,
    ) -> Result<Arc<WasmMapper>, LoadError> {
        let sha256 = sha256_hex(bytes);
        check_pin(&sha256, pin)?;
        if let Some(found) = self.lock().get(&sha256) {
            return Ok(found.clone());
        }
        contract::check_preamble(bytes)?;
        let component = self.compile(bytes, &sha256)?;
        let mapper = Arc::new(self.prepare(component, sha256.clone())?);
        self.lock().insert(sha256, mapper.clone());
        Ok(mapper)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<WasmMapper>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file this engine writes its own compiled mappers to.
    fn own_artifact(&self, dir: &Path, sha256: &str) -> PathBuf {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let engine = std::hash::Hasher::finish(&hasher);
        dir.join(format!("{sha256}-{engine:016x}.cwasm"))
    }

    /// A compiled mapper from the cache: the engine's own artifact, else one precompiled by
    /// `claimex mapper compile`. An artifact wasmtime refuses is logged and skipped.
    fn cached(&self, sha256: &str) -> Option<Component> {
        let cache = self.cache.as_ref()?;
        let own = self.own_artifact(&cache.dir, sha256);
        let precompiled = cache.dir.join(precompiled_name(sha256));
        for path in [own, precompiled] {
            if !path.is_file() {
                continue;
            }
            // SAFETY: the cache directory is claimex's own (0700, or the read-only directory
            // of a deployment package): its files were written by `Component::serialize` or
            // `claimex mapper compile`, and the file name binds them to the module's SHA-256.
            // wasmtime checks the header and refuses an artifact of another wasmtime version,
            // engine configuration or CPU feature set.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "compiled mapper loaded from the cache");
                    return Some(component);
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %format!("{e:#}"),
                    "this claimex cannot use the precompiled mapper (built by another claimex or \
                     wasmtime version, with other mapper settings or for another CPU, or damaged): \
                     compiling the mapper instead; rebuild the file with `claimex mapper compile` \
                     from this binary and configuration"
                ),
            }
        }
        None
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        if let Some(component) = self.cached(sha256) {
            return Ok(component);
        }
        let component =
            Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid(e.to_string()))?;
        if let Some(cache) = self.cache.as_ref().filter(|c| c.writable) {
            let path = self.own_artifact(&cache.dir, sha256);
            match component.serialize() {
                Ok(serialized) => {
                    static WRITES: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
                    if let Err(e) =
                        std::fs::write(&tmp, serialized).and_then(|_| std::fs::rename(&tmp, &path))
                    {
                        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled mapper");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not serialize the compiled mapper"),
            }
        }
        Ok(component)
    }

    fn prepare(&self, component: Component, sha256: String) -> Result<WasmMapper, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        contract::check_interface(
            exports.iter().map(String::as_str),
            imports.iter().map(String::as_str),
        )?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(e.to_string()))?;
        let pre = bindings::ClaimsMapperPre::new(pre)
            .map_err(|e| LoadError::Link(format!("the module does not match {CONTRACT}: {e}")))?;
        Ok(WasmMapper {
            pre,
            sha256,
            engine: self.engine.clone(),
            limits: self.limits.clone(),
        })
    }
}

impl MapperLoader for MapperRuntime {
    /// Loads the module at `path`. A file whose size and modification time are unchanged since
    /// it was last loaded is not read and hashed again: a registry of many issuers sharing one
    /// mapper costs one hash per refresh, not one per issuer.
    fn load(&self, path: &Path, sha256: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        let stamp = std::fs::metadata(path)
            .and_then(|m| Ok((m.len(), m.modified()?)))
            .map_err(|e| io_error(path, e))?;
        let known = self
            .by_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .filter(|(seen, _)| *seen == stamp)
            .map(|(_, mapper)| mapper.clone());
        if let Some(mapper) = known {
            check_pin(&mapper.sha256, sha256)?;
            return Ok(mapper);
        }
        let bytes = read_module(path)?;
        let mapper = self.load_bytes(&bytes, sha256)?;
        self.by_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), (stamp, mapper.clone()));
        Ok(mapper)
    }
}

fn io_error(path: &Path, e: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn check_pin(sha256: &str, pin: Option<&str>) -> Result<(), LoadError> {
    match pin {
        Some(pin) if !pin.eq_ignore_ascii_case(sha256) => Err(LoadError::PinMismatch {
            actual: sha256.to_owned(),
            pinned: pin.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Reads a mapper module from disk, refusing oversized files.
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let size = std::fs::metadata(path)
        .map_err(|e| io_error(path, e))?
        .len();
    if size > MAX_MODULE_BYTES as u64 {
        return Err(LoadError::TooLarge {
            size,
            max: MAX_MODULE_BYTES,
        });
    }
    std::fs::read(path).map_err(|e| io_error(path, e))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The file name under which the server finds a mapper precompiled by
/// `claimex mapper compile` in its cache directory.
pub fn precompiled_name(sha256: &str) -> String {
    format!("{sha256}.cwasm")
}

/// Opens the cache directory: created (0700) and written when possible; read only when it
/// exists but cannot be written; otherwise an error for a configured directory, and no cache
/// (with one warning) for the default one.
fn open_cache(cache: CacheDir) -> anyhow::Result<Option<Cache>> {
    let (dir, configured) = match cache {
        CacheDir::Off => return Ok(None),
        CacheDir::Configured(dir) => (dir, true),
        CacheDir::Default(dir) => (dir, false),
    };
    match create_private_dir(&dir).and_then(|()| probe_writable(&dir)) {
        Ok(()) => Ok(Some(Cache {
            dir,
            writable: true,
        })),
        Err(_) if configured && dir.is_dir() => {
            tracing::info!(dir = %dir.display(), "the mapper cache directory is read-only: precompiled mappers are read from it, none is written");
            Ok(Some(Cache {
                dir,
                writable: false,
            }))
        }
        Err(e) if configured => Err(anyhow::anyhow!(
            "mapper.cache_dir {}: {e} (create it, writable by claimex, or unset mapper.cache_dir)",
            dir.display()
        )),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "the default mapper cache directory is not writable: every mapper is compiled at every start (set mapper.cache_dir to a writable directory, or mapper.cache = false to silence this)");
            Ok(None)
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Fails unless a file can be created in `dir`.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("claimex-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the mapper deadline ticker");
    }
}

/// A compiled, linked mapper.
pub struct WasmMapper {
    pre: bindings::ClaimsMapperPre<State>,
    sha256: String,
    engine: Engine,
    limits: Limits,
}

/// Which export to call.
enum Call<'a> {
    Map(&'a guest::Request),
    ValidateConfig(&'a str),
}

/// What the export returned.
enum Answer {
    Map(Result<guest::Verdict, String>),
    ValidateConfig(Result<(), String>),
}

impl WasmMapper {
    /// Makes one call on a fresh instance: what the guest returned or how the call failed,
    /// and what the guest wrote to stderr.
    async fn call(&self, call: Call<'_>) -> (Result<Answer, Failure>, String) {
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: None,
                stderr: None,
                table: ResourceTable::new(),
                memory_cap: self.limits.memory_bytes,
                memory_exceeded: false,
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        // Yield to the server's other requests at every tick; interrupt at the deadline.
        let deadline = Instant::now() + self.limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let result = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => {
                let exports = instance.claimex_mapper_mapper();
                match call {
                    Call::Map(request) => {
                        exports.call_map(&mut store, request).await.map(Answer::Map)
                    }
                    Call::ValidateConfig(config) => exports
                        .call_validate_config(&mut store, config)
                        .await
                        .map(Answer::ValidateConfig),
                }
                .map_err(Failure::Call)
            }
            Err(e) => Err(Failure::Instantiate(e)),
        };
        let state = store.data();
        let stderr = state
            .stderr
            .as_ref()
            .map(|pipe| String::from_utf8_lossy(&pipe.contents()).trim().to_owned())
            .unwrap_or_default();
        let result = match result {
            Err(_) if state.memory_exceeded => Err(Failure::Memory),
            other => other,
        };
        (result, stderr)
    }
}

/// How a call failed, told apart by where it failed rather than by what wasmtime said.
enum Failure {
    /// The guest tried to grow its memory past the cap (at instantiation or during the call).
    Memory,
    /// No instance could be made (pool exhausted, start function failed).
    Instantiate(wasmtime::Error),
    /// The call itself failed: a trap, the deadline, or a host error.
    Call(wasmtime::Error),
}

#[async_trait::async_trait]
impl ClaimsMapper for WasmMapper {
    fn sha256(&self) -> &str {
        &self.sha256
    }

    async fn validate_config(&self, config_json: &str) -> Result<(), ConfigError> {
        let (result, stderr) = self.call(Call::ValidateConfig(config_json)).await;
        let answer = match self.failed(result) {
            Ok(Answer::ValidateConfig(answer)) => answer,
            Ok(Answer::Map(_)) => unreachable!("validate-config answers as validate-config"),
            Err(error) => {
                tracing::warn!(mapper_sha256 = %self.sha256, %error, stderr = %stderr, "the mapper's validate-config failed");
                return Err(ConfigError::Failed(error));
            }
        };
        match answer {
            Ok(()) => Ok(()),
            Err(message) if message.len() > self.limits.max_output_bytes => {
                Err(ConfigError::Failed(MapperError::OutputTooLarge(
                    message.len(),
                    self.limits.max_output_bytes,
                )))
            }
            Err(message) => Err(ConfigError::Rejected(message)),
        }
    }

    async fn map(&self, request: &MapRequest<'_>) -> MapOutcome {
        let wire = guest::Request {
            subject_kind: match request.subject_kind {
                SubjectKind::Oidc => guest::SubjectKind::Oidc,
                SubjectKind::AwsIam => guest::SubjectKind::AwsIam,
            },
            issuer_id: request.issuer_id.to_owned(),
            issuer_url: request.issuer_url.to_owned(),
            claims: request.claims_json.to_owned(),
            config: request.config_json.to_owned(),
            explain: request.explain,
        };
        let (result, stderr) = self.call(Call::Map(&wire)).await;
        let (result, checks) = match self.failed(result) {
            Ok(Answer::Map(Ok(verdict))) => match self.bounded(verdict) {
                Ok((decision, checks)) => (Ok(decision), checks),
                Err(error) => (Err(error), Vec::new()),
            },
            Ok(Answer::Map(Err(message))) => (Err(self.guest_error(message)), Vec::new()),
            Ok(Answer::ValidateConfig(_)) => unreachable!("map answers as map"),
            Err(error) => (Err(error), Vec::new()),
        };
        if let Err(error) = &result {
            tracing::debug!(mapper_sha256 = %self.sha256, %error, "mapper call failed");
        }
        MapOutcome {
            result,
            checks,
            stderr,
        }
    }
}

impl WasmMapper {
    /// The answer, or the [`MapperError`] of a call that failed.
    fn failed(&self, result: Result<Answer, Failure>) -> Result<Answer, MapperError> {
        match result {
            Ok(answer) => Ok(answer),
            Err(Failure::Memory) => Err(MapperError::Memory(
                (self.limits.memory_bytes / (1024 * 1024)) as u64,
            )),
            Err(Failure::Instantiate(error)) => Err(MapperError::Runtime(error.to_string())),
            Err(Failure::Call(error)) => Err(match error.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => {
                    MapperError::Deadline(self.limits.deadline.as_millis() as u64)
                }
                Some(trap) => MapperError::Trap(trap.to_string()),
                None => MapperError::Trap(error.to_string()),
            }),
        }
    }

    /// The guest's own `err`, bounded like any output.
    fn guest_error(&self, message: String) -> MapperError {
        if message.len() > self.limits.max_output_bytes {
            MapperError::OutputTooLarge(message.len(), self.limits.max_output_bytes)
        } else {
            MapperError::Failed(message)
        }
    }

    /// The verdict, when its size is within the output cap and its deny code has the
    /// contract's shape.
    fn bounded(&self, verdict: guest::Verdict) -> Result<(MapDecision, Vec<Check>), MapperError> {
        let checks_len: usize = verdict
            .checks
            .iter()
            .map(|c| c.name.len() + c.detail.len())
            .sum();
        let (len, decision) = match verdict.decision {
            guest::Decision::Allow(json) => (json.len(), MapDecision::Allow(json)),
            guest::Decision::Deny(guest::Denial { code, reason }) => (
                code.len() + reason.len(),
                MapDecision::Deny { code, reason },
            ),
        };
        let len = len.saturating_add(checks_len);
        if len > self.limits.max_output_bytes {
            return Err(MapperError::OutputTooLarge(
                len,
                self.limits.max_output_bytes,
            ));
        }
        if let MapDecision::Deny { code, .. } = &decision
            && !contract::valid_deny_code(code)
        {
            return Err(MapperError::InvalidDenyCode(
                code.chars().take(contract::MAX_DENY_CODE + 1).collect(),
            ));
        }
        let checks = verdict
            .checks
            .into_iter()
            .map(|c| Check {
                name: c.name,
                passed: c.passed,
                detail: c.detail,
            })
            .collect();
        Ok((decision, checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pinned_hash_must_match() {
        let runtime = MapperRuntime::new(Limits::default(), None).unwrap();
        let err = runtime
            .load_bytes(b"\0asm\x0d\0\x01\0", Some(&"0".repeat(64)))
            .err()
            .unwrap();
        assert!(matches!(err, LoadError::PinMismatch { .. }), "{err}");
    }
}
