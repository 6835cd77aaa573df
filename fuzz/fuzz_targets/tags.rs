//! The session-tag rules: any claim is accepted or refused with a `TagError` whose message
//! is not empty, and `sanitize_value` turns any text into a value the rules accept.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let clean = claimex_tags::sanitize_value(&text);
    assert_eq!(claimex_tags::check_value("k", &clean), Ok(()), "{clean:?}");
    if let Ok(claim) = serde_json::from_slice::<serde_json::Value>(data) {
        match claimex_tags::check_claim(&claim) {
            Ok(summary) => {
                assert!(summary.keys.len() <= claimex_tags::MAX_TAGS);
                assert!(summary.transitive.iter().all(|t| summary.keys.contains(t)));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
