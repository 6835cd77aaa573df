//! Public signing keys as JWKs, and their RFC 7638 thumbprints (the `kid` claimex uses).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::SigningAlg;

/// The public half of a signing key, in the shape a JWKS publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kty")]
pub enum PublicJwk {
    /// An RSA key (RS256).
    #[serde(rename = "RSA")]
    Rsa {
        /// Key id (the RFC 7638 thumbprint).
        kid: String,
        /// Always `sig`.
        #[serde(rename = "use")]
        use_: &'static str,
        /// Always `RS256`.
        alg: &'static str,
        /// Modulus, base64url big-endian without leading zeros.
        n: String,
        /// Public exponent, base64url big-endian.
        e: String,
    },
    /// A P-256 key (ES256).
    #[serde(rename = "EC")]
    Ec {
        /// Key id (the RFC 7638 thumbprint).
        kid: String,
        /// Always `sig`.
        #[serde(rename = "use")]
        use_: &'static str,
        /// Always `ES256`.
        alg: &'static str,
        /// Always `P-256`.
        crv: &'static str,
        /// X coordinate, base64url, 32 bytes.
        x: String,
        /// Y coordinate, base64url, 32 bytes.
        y: String,
    },
}

impl PublicJwk {
    /// An RSA JWK from the big-endian modulus and exponent.
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> PublicJwk {
        let n = URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus));
        let e = URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent));
        PublicJwk::Rsa {
            kid: rsa_thumbprint(&n, &e),
            use_: "sig",
            alg: SigningAlg::Rs256.as_str(),
            n,
            e,
        }
    }

    /// A P-256 JWK from the uncompressed SEC1 point (`0x04 || x || y`, 65 bytes).
    pub fn p256(point: &[u8]) -> Option<PublicJwk> {
        if point.len() != 65 || point[0] != 0x04 {
            return None;
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        Some(PublicJwk::Ec {
            kid: ec_thumbprint("P-256", &x, &y),
            use_: "sig",
            alg: SigningAlg::Es256.as_str(),
            crv: "P-256",
            x,
            y,
        })
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        match self {
            PublicJwk::Rsa { kid, .. } | PublicJwk::Ec { kid, .. } => kid,
        }
    }

    /// The algorithm this key signs.
    pub fn alg(&self) -> SigningAlg {
        match self {
            PublicJwk::Rsa { .. } => SigningAlg::Rs256,
            PublicJwk::Ec { .. } => SigningAlg::Es256,
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// RFC 7638 thumbprint of an RSA key given its base64url `n` and `e`.
pub fn rsa_thumbprint(n: &str, e: &str) -> String {
    // Members in lexicographic order, no white space (RFC 7638 §3.2). base64url text needs
    // no JSON escaping.
    thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#))
}

/// RFC 7638 thumbprint of an EC key given its curve and base64url coordinates.
pub fn ec_thumbprint(crv: &str, x: &str, y: &str) -> String {
    thumbprint(&format!(
        r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSA key of RFC 7638 §3.1 and its published thumbprint.
    #[test]
    fn rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        assert_eq!(
            rsa_thumbprint(n, e),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rsa_jwk_strips_leading_zeros_and_uses_thumbprint_kid() {
        let jwk = PublicJwk::rsa(&[0, 0, 1, 2, 3], &[0, 1, 0, 1]);
        match &jwk {
            PublicJwk::Rsa { n, e, kid, .. } => {
                assert_eq!(n, "AQID");
                assert_eq!(e, "AQAB");
                assert_eq!(kid, &rsa_thumbprint("AQID", "AQAB"));
            }
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["kty"], "RSA");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "RS256");
    }

    #[test]
    fn p256_jwk_needs_an_uncompressed_point() {
        assert!(PublicJwk::p256(&[4; 64]).is_none());
        let mut point = [7u8; 65];
        point[0] = 4;
        let jwk = PublicJwk::p256(&point).unwrap();
        assert_eq!(jwk.alg(), SigningAlg::Es256);
        assert_eq!(serde_json::to_value(&jwk).unwrap()["crv"], "P-256");
    }
}
