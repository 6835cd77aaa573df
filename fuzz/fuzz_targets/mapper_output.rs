//! The mapper-output checker and the JWS assembly: any mapper output is checked claims or an
//! `InvalidOutput` refusal; checked claims always make a token within AWS's 20,000
//! characters or an `InvalidOutput` refusal, and the payload signed is valid JSON.
#![no_main]

use std::time::Duration;

use claimex::error::Refusal;
use claimex::mint::{self, OutputPolicy, Stamp};
use claimex::signer::SigningAlg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = OutputPolicy {
        issuer_id: "ci".into(),
        audiences: vec![mint::DEFAULT_AUDIENCE.into(), "other".into()],
        token_lifetime: None,
    };
    let checked = match mint::check_output(text, &policy) {
        Ok(checked) => checked,
        Err(e) => {
            assert_eq!(e.refusal, Refusal::InvalidOutput, "{e:?}");
            return;
        }
    };
    let stamp = Stamp::new(
        "https://claimex.example.com",
        1_800_000_000,
        Duration::from_secs(900),
        "AAAAAAAAAAAAAAAAAAAAAA".into(),
    );
    let payload = checked.payload_json(&stamp);
    let value: serde_json::Value = serde_json::from_str(&payload).expect("the payload is JSON");
    assert_eq!(value["iss"], "https://claimex.example.com");
    assert_eq!(value["sub"], checked.sub.as_str());
    if let Some(tags) = value.get(claimex_tags::TAGS_CLAIM) {
        claimex_tags::check_claim(tags).expect("the signed tags are the checked tags");
    }
    match mint::signing_input(SigningAlg::Es256, "kid", &checked, &stamp) {
        Ok(input) => {
            let token = mint::assemble(input, &[7u8; 64]);
            if let Ok(token) = token {
                assert!(token.len() <= mint::MAX_TOKEN_CHARS);
            }
        }
        Err(e) => assert_eq!(e.refusal, Refusal::InvalidOutput, "{e:?}"),
    }
});
