//! The request parts of the endpoints: `POST /exchange`'s query (`issuerId`) and body (raw
//! token or `{"token": ...}`), `POST /credentials`'s query and body (the same plus the role
//! parameters), and the media types of `Content-Type` and `Accept`. The GET
//! endpoints take no input. Refusals are `Malformed`, and never quote the body.
#![no_main]

use claimex::error::Refusal;
use claimex::http::{
    accepts_json, credentials_body, credentials_query, issuer_id_from_query, names_json,
    token_from_body,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let _ = names_json(&head);
    let _ = accepts_json(&head);
    match issuer_id_from_query(&head) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.refusal, Refusal::Malformed),
    }
    let query = match credentials_query(&head) {
        Ok(q) => q.request,
        Err(e) => {
            assert_eq!(e.refusal, Refusal::Malformed);
            Default::default()
        }
    };
    for json in [true, false] {
        match credentials_body(json, body.to_vec(), query.clone()) {
            Ok((token, _)) => assert!(token.len() <= body.len()),
            Err(e) => {
                assert_eq!(e.refusal, Refusal::Malformed);
                assert!(e.description.len() < 200);
            }
        }
        match token_from_body(json, body.to_vec()) {
            Ok(token) => assert!(token.len() <= body.len()),
            Err(e) => {
                assert_eq!(e.refusal, Refusal::Malformed);
                assert!(e.description.len() < 100);
            }
        }
    }
});
