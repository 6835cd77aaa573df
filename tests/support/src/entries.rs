//! Issuer entries as an operator registers them: a table of the file registry (TOML) or the
//! value of an SSM parameter (JSON).

use serde_json::{Value, json};

use crate::mappers;

/// A table of the issuers file: issuer `id` at `url`, accepting `audience`, mapped by the
/// component of crate `mapper_crate` with `config`, a TOML inline table (`{ a = ["b"] }`).
pub fn file(id: &str, url: &str, audience: &str, mapper_crate: &str, config: &str) -> String {
    format!(
        "[issuers.{id}]\nissuer = {url:?}\naudiences = [{audience:?}]\nmapper = {:?}\nmapper_config = {config}\n",
        mappers::file_name(mapper_crate)
    )
}

/// The SSM entry (JSON) of the issuer at `url`, accepting `audience`, with the stock GitHub
/// mapper allowing the owner `octo-org` of the sample claims.
pub fn ssm(url: &str, audience: &str) -> Value {
    json!({
        "issuer": url,
        "audiences": [audience],
        "mapper": mappers::file_name(mappers::GITHUB),
        "mapper_config": {"allowed_owners": ["octo-org"], "transitive_tag_keys": ["repository"]},
    })
}
