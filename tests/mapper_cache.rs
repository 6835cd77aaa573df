//! The compiled-mapper cache: its default directory, what happens when it is not writable,
//! artifacts precompiled by `claimex mapper compile` (used without compiling), and artifacts
//! wasmtime refuses (another engine configuration, another wasmtime version, damaged bytes):
//! the server warns and compiles instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use claimex::config::Config;
use claimex::mapper::MapperLoader as _;
use claimex::mapper::wasm::{
    CacheDir, Limits, MapperRuntime, default_cache_dir, precompiled_name, sha256_hex,
};
use claimex_testkit::mappers;

fn github() -> PathBuf {
    mappers::github().to_path_buf()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![(
        "CLAIMEX_PUBLIC_URL".to_owned(),
        "https://claimex.example.com".to_owned(),
    )];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

/// The files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `f` with claimex's log (at `warn`) captured, and returns what was logged.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn the_default_cache_is_the_users_cache_directory() {
    let base = Path::new("/etc/claimex");
    assert_eq!(
        default_cache_dir(
            &[
                ("HOME".into(), "/home/ci".into()),
                ("XDG_CACHE_HOME".into(), "/var/xdg".into())
            ],
            base
        ),
        PathBuf::from("/var/xdg/claimex/mappers")
    );
    assert_eq!(
        default_cache_dir(&[("HOME".into(), "/home/ci".into())], base),
        PathBuf::from("/home/ci/.cache/claimex/mappers")
    );
    // Relative or empty values are not directories to trust.
    assert_eq!(
        default_cache_dir(
            &[
                ("HOME".into(), "".into()),
                ("XDG_CACHE_HOME".into(), "rel".into())
            ],
            base
        ),
        PathBuf::from("/etc/claimex/.claimex-cache/mappers")
    );

    // What the configuration makes of it.
    let config = Config::load_with_env(None, &env(&[("HOME", "/home/ci")])).unwrap();
    assert_eq!(
        config.mapper.cache(),
        CacheDir::Default(PathBuf::from("/home/ci/.cache/claimex/mappers"))
    );
    let config = Config::load_with_env(
        None,
        &env(&[("HOME", "/home/ci"), ("CLAIMEX_MAPPER__CACHE", "false")]),
    )
    .unwrap();
    assert_eq!(config.mapper.cache(), CacheDir::Off);
    let config = Config::load_with_env(
        None,
        &env(&[
            ("HOME", "/home/ci"),
            ("CLAIMEX_MAPPER__CACHE_DIR", "/srv/c"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.mapper.cache(),
        CacheDir::Configured(PathBuf::from("/srv/c"))
    );
}

#[test]
fn an_unwritable_default_cache_is_skipped_with_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut runtime = None;
    let log = logged(|| {
        runtime = Some(MapperRuntime::with_cache(
            Limits::default(),
            CacheDir::Default(file.join("c")),
        ));
    });
    let runtime = runtime
        .unwrap()
        .expect("the runtime must start without a cache");
    assert_eq!(runtime.cache_dir(), None);
    assert_eq!(
        log.matches("the default mapper cache directory is not writable")
            .count(),
        1,
        "{log}"
    );
    // The mapper still loads, compiled.
    runtime.load(&github(), None).unwrap();

    // A configured directory that cannot be created stops start-up, saying what to do.
    let error = MapperRuntime::with_cache(Limits::default(), CacheDir::Configured(file.join("c")))
        .err()
        .expect("a configured cache that cannot be created must be refused")
        .to_string();
    assert!(error.contains("mapper.cache_dir"), "{error}");

    // A writable default is used and filled.
    let dir = tmp.path().join("cache");
    let runtime =
        MapperRuntime::with_cache(Limits::default(), CacheDir::Default(dir.clone())).unwrap();
    assert_eq!(runtime.cache_dir(), Some((dir.as_path(), true)));
    runtime.load(&github(), None).unwrap();
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));
}

fn compile_cli(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_claimex"))
        .args(["mapper", "compile"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_precompiled_mapper_is_loaded_without_compiling() {
    let sha256 = sha256_hex(&std::fs::read(github()).unwrap());
    for portable in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let mut args = vec![github().to_str().unwrap().to_owned(), "-o".into()];
        args.push(format!("{}/", dir.display()));
        if portable {
            args.push("--portable".into());
        }
        let out = compile_cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.contains(&sha256), "{out}");
        assert_eq!(files(&dir), vec![precompiled_name(&sha256)]);

        let runtime =
            MapperRuntime::with_cache(Limits::default(), CacheDir::Configured(dir.clone()))
                .unwrap();
        let log = logged(|| {
            let mapper = runtime.load(&github(), None).unwrap();
            assert_eq!(mapper.sha256(), sha256);
        });
        assert_eq!(log, "", "portable {portable}");
        // Had the artifact been refused, the compiled mapper would have been written beside it.
        assert_eq!(
            files(&dir),
            vec![precompiled_name(&sha256)],
            "portable {portable}"
        );
    }
}

/// Loads the GitHub mapper from a cache holding `artifact` as its precompiled file: it must
/// load (compiled), with a warning naming the file, and the compiled mapper is cached.
fn refused(artifact: &[u8]) -> String {
    let sha256 = sha256_hex(&std::fs::read(github()).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let path = dir.join(precompiled_name(&sha256));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(artifact)
        .unwrap();
    let runtime =
        MapperRuntime::with_cache(Limits::default(), CacheDir::Configured(dir.clone())).unwrap();
    let log = logged(|| {
        let mapper = runtime.load(&github(), None).unwrap();
        assert_eq!(mapper.sha256(), sha256);
    });
    assert!(
        log.contains("cannot use the precompiled mapper") && log.contains(&sha256),
        "{log}"
    );
    assert!(log.contains("claimex mapper compile"), "{log}");
    assert_eq!(files(&dir).len(), 2, "{:?}", files(&dir));
    log
}

#[test]
fn a_foreign_or_damaged_artifact_is_refused_with_a_warning_and_compiled_around() {
    let bytes = std::fs::read(github()).unwrap();
    // Another engine configuration (no epoch interruption, no pooling): wasmtime refuses it.
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let other = wasmtime::Engine::new(&config).unwrap();
    let foreign = other.precompile_component(&bytes).unwrap();
    let log = refused(&foreign);
    assert!(log.contains("compiled with"), "{log}");

    // Another wasmtime version: the version string in the artifact's header differs.
    let ours = MapperRuntime::precompile(&Limits::default(), &bytes, false)
        .unwrap()
        .1;
    // The engine section: a format byte, the length of the version, the version (wasmtime's
    // major version).
    let major = wasmtime_version().split('.').next().unwrap().to_owned();
    let mut marker = vec![major.len() as u8];
    marker.extend_from_slice(major.as_bytes());
    let at = ours
        .windows(marker.len())
        .position(|w| w == marker.as_slice())
        .expect("the artifact names its wasmtime version")
        + 1;
    let mut older = ours.clone();
    older[at] = if older[at] == b'1' { b'2' } else { b'1' };
    let log = refused(&older);
    assert!(log.contains("version"), "{log}");

    // Damaged bytes.
    let mut damaged = ours;
    damaged.truncate(damaged.len() / 2);
    refused(&damaged);
    refused(b"not an artifact at all");
}

/// The wasmtime version this claimex is built with.
fn wasmtime_version() -> String {
    let lock = include_str!("../Cargo.lock");
    let at = lock
        .find("name = \"wasmtime\"\nversion = \"")
        .expect("wasmtime in Cargo.lock");
    let rest = &lock[at + "name = \"wasmtime\"\nversion = \"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
