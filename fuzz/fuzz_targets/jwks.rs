//! JWKS parsing and key selection: any document is a key set or a typed `JwksError`, and
//! any `kid`/`alg` lookup answers without panicking.
#![no_main]

use claimex::subject::jwt::{KeyMatch, KeySet};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

const ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fuzz_target!(|data: &[u8]| {
    // The first line is a kid to look up, the rest the document.
    let (kid, document) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => (String::new(), data),
    };
    let Ok(set) = KeySet::from_jwks(document) else {
        return;
    };
    assert!(!set.is_empty());
    for alg in ALGS {
        for lookup in [Some(kid.as_str()), None] {
            if let KeyMatch::Found(key) = set.find(lookup, alg) {
                assert!(key.supports(alg));
                assert!(!key.verify(alg, b"message", b"not a signature"));
            }
        }
    }
});
