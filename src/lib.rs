//! claimex: a small security token service. A CI job's OIDC id-token comes in, is verified
//! against the issuer registered for it, is mapped by that issuer's WebAssembly mapper, and
//! goes out as a JWT claimex signs (with AWS session tags IAM can test).
//!
//! The path of one exchange, `POST /exchange`:
//!
//! 1. [`http`] reads the request (`http/exchange.rs`) into an [`exchange::ExchangeRequest`];
//! 2. [`exchange`] asks the [`subject`] verifier of the credential's kind to verify it
//!    (`subject/jwt`: compact parsing, key by `kid` from the issuer's JWKS, claim checks), with
//!    the issuer entry it chooses from the [`registry`];
//! 3. it hands the verified claims to the entry's [`mapper`] (a sandboxed WebAssembly
//!    component, `mapper/wasm.rs`);
//! 4. [`mint`] checks the mapper's output and builds the JWS, which a [`signer`] signs
//!    (`signer/local.rs`, `signer/kms.rs` or `signer/envelope.rs`);
//! 5. [`http`] answers, and [`audit`] writes one line for the decision.
//!
//! `POST /credentials` (`http/credentials.rs`) runs the same exchange, then [`credentials`]
//! checks the role against the issuer entry and its STS adapter (`credentials/sts.rs`) calls
//! `AssumeRoleWithWebIdentity`, unsigned, with the token just minted.
//!
//! The modules, by layer (imports run down only):
//!
//! | layer | modules |
//! |---|---|
//! | entry | [`cli`] (serve, demo, keys, mapper, issuers, credentials, token; `cli/log_buffer.rs` the log writer, `cli/log_format.rs` the JSON log line in one pass), [`app`] (wiring), [`config`] (composes each part's settings) |
//! | faces | [`http`] (one file per endpoint; `http/close.rs` guards each connection, so no request pipelined behind a closing response runs) |
//! | core, no I/O | [`exchange`] (the orchestrator), [`metrics`] (the recorder port), [`subject`] (kinds of credential: `oidc`, `aws-iam`), [`mapper`] (port + contract), [`mint`], [`credentials`] (the AWS credentials output: roles, durations, formats, the STS port), [`signer`] (port, JWKs, rotation), [`registry`] (entries, snapshot), [`error`], [`audit`], [`settings`] |
//! | adapters | `subject/jwt/issuer_keys.rs` (JWKS over HTTP), `subject/aws_iam/sts.rs` (signed GetCallerIdentity replayed to STS), `subject/aws_iam/{memory,dynamodb}.rs` (the one-use store of signed requests: per instance, or a shared DynamoDB table), `mapper/wasm.rs` (wasmtime), `registry/{file,ssm}.rs`, `signer/{local,kms,envelope}.rs`, [`system`] (clock, random ids), [`aws`] (SDK clients), `credentials/sts.rs` (unsigned `AssumeRoleWithWebIdentity`), [`refresh`] (background reloads), `metrics/{prometheus,timed}.rs` (the Prometheus exporter, timing decorators), `mapper/shadow_runner.rs` (shadow comparisons off the response path) |
//!
//! `POST /token` (`http/token.rs`) is the same path spoken as RFC 8693 token exchange: it
//! builds the same [`exchange::ExchangeRequest`] (with the requested `audience`). Asked for
//! `urn:claimex:params:oauth:token-type:aws-credentials`, it then takes the step of
//! `/credentials` (`http/credentials.rs`, `assume_role`: role check, STS call, log).
//!
//! Adding a subject kind is a folder under `subject/`; an output kind a module beside `mint/`
//! with its adapter; an endpoint is a file under `http/`.

pub mod app;
pub mod audit;
pub mod aws;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod error;
pub mod exchange;
pub mod http;
pub mod mapper;
pub mod metrics;
pub mod mint;
pub mod refresh;
pub mod registry;
pub mod settings;
pub mod signer;
pub mod subject;
pub mod system;
