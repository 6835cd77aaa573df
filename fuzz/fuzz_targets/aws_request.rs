//! The AWS signed-request decoder (`subject::aws_iam::request::check`, the
//! `urn:ietf:params:aws:token-type:aws4_request` subject token) and `POST /token`'s form
//! parser. Invariants: no panic; a refusal is typed (`Malformed` or `Unverified` for the
//! decoder, never `Internal` for either) and short; an accepted request names an allowed
//! endpoint and carries a signature.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimex::error::Refusal;
use claimex::http::parse_token_request;
use claimex::subject::aws_iam::policy::{AwsIamPolicy, StsEndpoints};
use claimex::subject::aws_iam::request::check;
use libfuzzer_sys::fuzz_target;

/// 2025-12-02T00:00:00Z, the date of the seed corpus's requests.
const NOW: u64 = 1_764_633_600;
const SERVER_ID: &str = "https://claimex.example.com";

fuzz_target!(|data: &[u8]| {
    let policy = AwsIamPolicy {
        id: "aws".into(),
        accounts: vec!["123456789012".into()],
        sts_endpoints: StsEndpoints::AwsPartition,
        server_id: None,
    };
    // As given (the decoder's base64 layer), and as the JSON inside it (the checks).
    let text = String::from_utf8_lossy(data);
    for credential in [text.to_string(), URL_SAFE_NO_PAD.encode(data)] {
        match check(&credential, &policy, SERVER_ID, NOW) {
            Ok(signed) => {
                assert!(policy.sts_endpoints.allows(&signed.url));
                assert!(!signed.signature.is_empty());
            }
            Err(e) => {
                assert!(
                    matches!(e.refusal, Refusal::Malformed | Refusal::Unverified),
                    "{:?}: {}",
                    e.refusal,
                    e.description
                );
                assert!(e.description.len() < 600, "{}", e.description);
            }
        }
    }
    // `POST /token`: the first line is the query, the rest the form body.
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Err(e) = parse_token_request(&String::from_utf8_lossy(query), body) {
        assert_ne!(e.refusal, Refusal::Internal);
        assert!(e.description.len() < 600, "{}", e.description);
    }
});
