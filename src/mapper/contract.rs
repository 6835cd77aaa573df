//! The contract a mapper component must meet: before it is run, a component (not a core
//! module), the `claimex:mapper` export of this host's version, and no import beyond the
//! few WASI interfaces the sandbox links (no filesystem, network, clock or randomness); when
//! it answers, deny codes of the contract's shape ([`valid_deny_code`]).

use super::LoadError;

/// The contract version this host speaks (the WIT package version).
pub const CONTRACT: &str = "claimex:mapper/mapper@0.2.0";
const CONTRACT_PREFIX: &str = "claimex:mapper/mapper@";

/// The interfaces a mapper may import. Everything else is refused at load time.
pub const GRANTED: [&str; 13] = [
    "wasi:io/error@",
    "wasi:io/poll@",
    "wasi:io/streams@",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-input@",
    "wasi:cli/terminal-output@",
    "wasi:cli/terminal-stdin@",
    "wasi:cli/terminal-stdout@",
    "wasi:cli/terminal-stderr@",
];

/// Longest deny code, in characters.
pub const MAX_DENY_CODE: usize = 64;

/// Whether `code` is a deny code of the contract's shape: 1 to [`MAX_DENY_CODE`] of
/// `[a-z0-9_]`.
pub fn valid_deny_code(code: &str) -> bool {
    (1..=MAX_DENY_CODE).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Tells a component from a core module or anything else by its first eight bytes.
pub fn check_preamble(bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 0x01, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule),
        _ => Err(LoadError::NotComponent),
    }
}

/// Checks a component's export and import names against the contract.
pub fn check_interface<'a>(
    exports: impl IntoIterator<Item = &'a str>,
    imports: impl IntoIterator<Item = &'a str>,
) -> Result<(), LoadError> {
    let exports: Vec<&str> = exports.into_iter().collect();
    if !exports.contains(&CONTRACT) {
        return Err(
            match exports.iter().find(|e| e.starts_with(CONTRACT_PREFIX)) {
                Some(other) => LoadError::OtherContract((*other).to_owned()),
                None => LoadError::NoContract(exports.iter().map(|e| (*e).to_owned()).collect()),
            },
        );
    }
    let refused: Vec<String> = imports
        .into_iter()
        .filter(|n| !GRANTED.iter().any(|g| n.starts_with(g)))
        .map(str::to_owned)
        .collect();
    if !refused.is_empty() {
        return Err(LoadError::ForbiddenImports(refused));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_tells_modules_from_components() {
        assert!(check_preamble(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(
            check_preamble(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(
            check_preamble(b"garbage!"),
            Err(LoadError::NotComponent)
        ));
        assert!(check_preamble(b"").is_err());
    }

    #[test]
    fn interface_checks_name_what_is_wrong() {
        assert!(check_interface([CONTRACT], ["wasi:io/streams@0.2.0"]).is_ok());
        assert!(matches!(
            check_interface(["claimex:mapper/mapper@9.0.0"], []),
            Err(LoadError::OtherContract(v)) if v.ends_with("9.0.0")
        ));
        assert!(matches!(
            check_interface(["other"], []),
            Err(LoadError::NoContract(_))
        ));
        let err = check_interface([CONTRACT], ["wasi:filesystem/types@0.2.0"]).unwrap_err();
        assert!(err.to_string().contains("wasi:filesystem"), "{err}");
        let old = check_interface(["claimex:mapper/mapper@0.1.0"], []).unwrap_err();
        assert!(old.to_string().contains("rebuild it"), "{old}");
    }

    #[test]
    fn deny_codes_have_one_shape() {
        for good in ["a", "owner_not_allowed", "r2d2", &"x".repeat(64)] {
            assert!(valid_deny_code(good), "{good}");
        }
        for bad in ["", "Owner", "a-b", "a b", "é", "a\n", &"x".repeat(65)] {
            assert!(!valid_deny_code(bad), "{bad:?}");
        }
    }
}
