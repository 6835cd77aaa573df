//! Issuer entries: a registry file (TOML, then the same bytes as JSON) and an SSM parameter
//! value become raw entries or a typed source error, and each entry is validated into an
//! issuer up to its mapper, which a stub loader refuses (no WebAssembly runs here).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_ssm::types::{Parameter, ParameterType};
use claimex::mapper::{ClaimsMapper, LoadError, MapperLoader};
use claimex::registry::file::FileSource;
use claimex::registry::ssm::SsmSource;
use claimex::registry::{EntryError, IssuerRules, RawEntry};
use libfuzzer_sys::fuzz_target;

struct NoMappers;

impl MapperLoader for NoMappers {
    fn load(&self, _: &Path, _: Option<&str>) -> Result<Arc<dyn ClaimsMapper>, LoadError> {
        Err(LoadError::NotComponent)
    }
}

fn validate(entries: Vec<RawEntry>) {
    let rules = IssuerRules {
        mapper_dir: PathBuf::from("/nonexistent"),
        allow_http_loopback: true,
    };
    for entry in entries {
        let Ok(spec) = entry.spec else { continue };
        let _ = spec.mapper_config();
        match spec.into_issuer(&entry.id, &rules, &NoMappers) {
            // Every field held: only the stub loader could refuse it.
            Err(EntryError::Mapper { .. }) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
            Ok(_) => panic!("the stub loader loads nothing"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["issuers.toml", "issuers.json"] {
        if let Ok(entries) = FileSource::new(PathBuf::from(name)).parse(text) {
            validate(entries);
        }
    }
    let parameter = Parameter::builder()
        .name("/claimex/issuers/fuzz")
        .r#type(ParameterType::String)
        .value(text)
        .build();
    let source = SsmSource::new(ssm_client(), "/claimex/issuers/");
    validate(vec![source.entry(&parameter)]);
});

/// A client that is never called: `SsmSource::entry` only reads the parameter.
fn ssm_client() -> aws_sdk_ssm::Client {
    static CLIENT: std::sync::OnceLock<aws_sdk_ssm::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let config = aws_sdk_ssm::Config::builder()
                .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
                .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
                .build();
            aws_sdk_ssm::Client::from_conf(config)
        })
        .clone()
}
