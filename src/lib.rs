//! claimex exchanges a CI job's OIDC id-token for a JWT of its own.
//!
//! The pipeline is verify → map → mint:
//! - [`verify`] checks an inbound token against a registered issuer ([`registry`]) with keys
//!   from OIDC discovery ([`discovery`]), by the rules of RFC 8725;
//! - [`mapping`] hands the verified claims to the issuer's mapper, a WebAssembly component
//!   run in a sandbox by [`wasm`];
//! - [`mint`] checks the mapper's output (host-owned claims, audiences, AWS session tags)
//!   and builds the token that a [`signer`] signs.
//!
//! [`exchange`] strings the steps together without knowing HTTP or AWS; [`http`] (actix-web),
//! [`aws`] (SSM, KMS) and the local file backends are thin adapters around it, wired by
//! [`app`] from a [`config`]. [`testing`] is a loopback OIDC issuer for tests and the demo.

pub mod app;
pub mod audit;
pub mod aws;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod exchange;
pub mod http;
pub mod mapper_test;
pub mod mapping;
pub mod mint;
pub mod refresh;
pub mod registry;
pub mod signer;
pub mod testing;
pub mod verify;
pub mod wasm;
