//! The compact-token inspector and the claim reader: any text is refused with a typed
//! refusal of the kinds they may give (never a panic, never `Internal`).
#![no_main]

use claimex::error::Refusal;
use claimex::subject::jwt::policy::OidcPolicy;
use claimex::subject::jwt::{VerifyPolicy, claims, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = VerifyPolicy::default();
    match inspect(text, &limits) {
        Ok(seen) => {
            let _ = seen.iss();
        }
        Err(e) => {
            assert!(
                matches!(
                    e.refusal,
                    Refusal::TooLarge | Refusal::Malformed | Refusal::Unverified
                ),
                "{e:?}"
            );
            assert!(!e.description.is_empty());
        }
    }
    // The same text as a verified payload: the claim reader.
    let policy = OidcPolicy {
        id: "ci".into(),
        url: "https://ci.example".into(),
        audiences: vec!["claimex".into()],
        algorithms: vec![jsonwebtoken::Algorithm::RS256],
    };
    if let Err(e) = claims::check(claims::read(text), &policy, &limits, 1_800_000_000) {
        assert_eq!(e.refusal, Refusal::Unverified, "{e:?}");
        // serde's messages may quote the payload: none reaches the caller, whose
        // descriptions are short, fixed sentences.
        assert!(e.description.len() < 120, "{e:?}");
    }
});
