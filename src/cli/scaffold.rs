//! `claimex mapper new NAME`: writes a ready mapper project, in Rust (a crate depending on
//! the SDK, with the size profile and the small stack) or in JavaScript (the helper module,
//! the contract and a build script), with a claim set, a configuration and tests, so that
//! a mapper can be written, built and checked outside this repository.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The language of the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate using the claimex-mapper SDK.
    Rust,
    /// JavaScript, built with componentize-qjs (QuickJS).
    Js,
}

/// Where the Rust SDK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A path to the SDK crate (`mappers/sdk` of a claimex checkout).
    Path(PathBuf),
    /// A git repository of claimex, pinned to a tag, a commit or a branch.
    Git {
        /// The repository URL.
        url: String,
        /// `tag = "..."`, `rev = "..."` or `branch = "..."`, as written.
        pin: Option<(String, String)>,
    },
}

/// What to write.
pub struct NewInput<'a> {
    /// The project (and crate / package) name.
    pub name: &'a str,
    /// Where (default `./NAME`).
    pub dir: Option<&'a Path>,
    /// The language.
    pub lang: Lang,
    /// The SDK (Rust); `None`: the checkout this claimex was built from, when it is there.
    pub sdk: Option<Sdk>,
}

const CLAIMS: &str = include_str!("../../examples/claims/github.json");
const CONFIG: &str = r#"{
  "allowed_owners": ["octo-org"],
  "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
  "teams": {"octo-org": "platform", "octo-org/payments": "payments"}
}
"#;
const GITIGNORE_RUST: &str = "/target\n";
const GITIGNORE_JS: &str = "node_modules/\n*.wasm\n";

const RUST_CARGO: &str = include_str!("scaffold/rust/Cargo.toml.in");
const RUST_CONFIG: &str = include_str!("scaffold/rust/config.toml.in");
const RUST_LIB: &str = include_str!("scaffold/rust/lib.rs.in");
const RUST_README: &str = include_str!("scaffold/rust/README.md.in");

const JS_MAPPER: &str = include_str!("scaffold/js/mapper.js.in");
const JS_TEST: &str = include_str!("scaffold/js/mapper.test.mjs.in");
const JS_PACKAGE: &str = include_str!("scaffold/js/package.json.in");
const JS_README: &str = include_str!("scaffold/js/README.md.in");
const JS_HELPER: &str = include_str!("../../mappers/js/claimex.js");
const JS_BUILD: &str = include_str!("../../mappers/js/build.sh");
const JS_DETERMINISTIC: &str = include_str!("../../mappers/js/deterministic.c");
const JS_LOCK: &str = include_str!("../../mappers/js/package-lock.json");
const WIT: &str = include_str!("../../mappers/wit/mapper.wit");

/// The SDK of the checkout this binary was built from, when it still exists.
pub fn checkout_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappers/sdk");
    sdk.join("Cargo.toml").is_file().then_some(sdk)
}

/// Whether `name` can name a crate and an npm package: 1–64 of `[a-z0-9_-]`, starting
/// with a letter.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn toml_string(s: &str) -> String {
    // TOML basic strings escape like JSON strings.
    serde_json::Value::String(s.to_owned()).to_string()
}

fn sdk_dependency(sdk: &Sdk) -> anyhow::Result<String> {
    Ok(match sdk {
        Sdk::Path(path) => {
            let path = std::path::absolute(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            anyhow::ensure!(
                path.join("Cargo.toml").is_file(),
                "{} is not the SDK crate (mappers/sdk of a claimex checkout): it has no Cargo.toml",
                path.display()
            );
            let shown = path
                .to_str()
                .context("the SDK path is not valid UTF-8")?
                .to_owned();
            format!("{{ path = {} }}", toml_string(&shown))
        }
        Sdk::Git { url, pin } => match pin {
            Some((kind, value)) => format!(
                "{{ git = {}, {kind} = {} }}",
                toml_string(url),
                toml_string(value)
            ),
            None => format!("{{ git = {} }}", toml_string(url)),
        },
    })
}

/// `claimex mapper new`: writes the project and returns what to do next.
pub fn new(input: &NewInput<'_>) -> anyhow::Result<String> {
    anyhow::ensure!(
        valid_name(input.name),
        "{:?} cannot name a mapper: use 1 to 64 of a-z 0-9 - _, starting with a letter",
        input.name
    );
    let dir = input
        .dir
        .map_or_else(|| PathBuf::from(input.name), Path::to_path_buf);
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        anyhow::ensure!(empty, "{} exists and is not empty", dir.display());
    }
    let lib = input.name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("__NAME__", input.name)
            .replace("__LIB__", &lib)
    };
    let files: Vec<(&str, String)> = match input.lang {
        Lang::Rust => {
            let sdk = match &input.sdk {
                Some(sdk) => sdk.clone(),
                None => Sdk::Path(checkout_sdk().context(
                    "where is the SDK? pass --sdk-path PATH/TO/claimex/mappers/sdk, or \
                     --sdk-git URL with --sdk-tag/--sdk-rev",
                )?),
            };
            vec![
                (
                    "Cargo.toml",
                    fill(RUST_CARGO).replace("__SDK__", &sdk_dependency(&sdk)?),
                ),
                (".cargo/config.toml", RUST_CONFIG.to_owned()),
                ("src/lib.rs", fill(RUST_LIB)),
                ("claims.json", CLAIMS.to_owned()),
                ("config.json", CONFIG.to_owned()),
                ("README.md", fill(RUST_README)),
                (".gitignore", GITIGNORE_RUST.to_owned()),
            ]
        }
        Lang::Js => vec![
            ("mapper.js", fill(JS_MAPPER)),
            ("mapper.test.mjs", JS_TEST.to_owned()),
            ("claimex.js", JS_HELPER.to_owned()),
            ("build.sh", JS_BUILD.to_owned()),
            ("deterministic.c", JS_DETERMINISTIC.to_owned()),
            ("package.json", fill(JS_PACKAGE)),
            (
                "package-lock.json",
                JS_LOCK.replace("\"claimex-mappers-js\"", &format!("{:?}", input.name)),
            ),
            ("wit/mapper.wit", WIT.to_owned()),
            ("claims.json", CLAIMS.to_owned()),
            ("config.json", CONFIG.to_owned()),
            ("README.md", fill(JS_README)),
            (".gitignore", GITIGNORE_JS.to_owned()),
        ],
    };
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let shown = dir.display();
    Ok(match input.lang {
        Lang::Rust => format!(
            "wrote the Rust mapper {name} in {shown}\n\n\
             cd {shown}\n\
             rustup target add wasm32-wasip2     # once\n\
             cargo test\n\
             cargo build --target wasm32-wasip2 --release\n\
             claimex mapper check target/wasm32-wasip2/release/{lib}.wasm\n\
             claimex mapper test --mapper target/wasm32-wasip2/release/{lib}.wasm --claims claims.json --config config.json --explain\n",
            name = input.name
        ),
        Lang::Js => format!(
            "wrote the JavaScript mapper {name} in {shown}\n\n\
             cd {shown}\n\
             npm test                             # the logic, under Node\n\
             sh build.sh mapper.js mapper.wasm    # the component (npm ci, componentize-qjs)\n\
             claimex mapper check mapper.wasm\n\
             claimex mapper test --mapper mapper.wasm --claims claims.json --config config.json --explain\n",
            name = input.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sdk_dependencies() {
        assert!(valid_name("my-mapper") && valid_name("m_1"));
        for bad in ["", "My", "1x", "a b", "a/b", "a.b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let git = Sdk::Git {
            url: "https://example.com/claimex.git".into(),
            pin: Some(("tag".into(), "v0.2.0".into())),
        };
        assert_eq!(
            sdk_dependency(&git).unwrap(),
            r#"{ git = "https://example.com/claimex.git", tag = "v0.2.0" }"#
        );
        assert!(sdk_dependency(&Sdk::Path("/nonexistent/sdk".into())).is_err());
    }

    #[test]
    fn refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "x").unwrap();
        let e = new(&NewInput {
            name: "m",
            dir: Some(dir.path()),
            lang: Lang::Js,
            sdk: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("is not empty"), "{e}");
    }
}
