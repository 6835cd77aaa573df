//! Public signing keys as JWKs, their RFC 7638 thumbprints (the `kid` claimex uses), and the
//! conversions from what KMS hands out: SubjectPublicKeyInfo DER to a JWK, and a DER ECDSA
//! signature to the JOSE `r || s` form.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use der::asn1::UintRef;
use der::{Decode as _, Reader as _, SliceReader};
use serde::Serialize;
use spki::ObjectIdentifier;

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

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / `prime256v1` (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The JWK of a SubjectPublicKeyInfo (DER) holding a key for `alg`: an RSA key for RS256,
/// a P-256 key for ES256.
pub fn jwk_from_spki(der: &[u8], alg: SigningAlg) -> Result<PublicJwk, String> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("the public key is not SubjectPublicKeyInfo DER: {e}"))?;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key bit string has unused bits")?;
    match alg {
        SigningAlg::Rs256 => {
            if spki.algorithm.oid != RSA_ENCRYPTION {
                return Err(format!(
                    "expected an RSA public key, found algorithm {}",
                    spki.algorithm.oid
                ));
            }
            let key = pkcs1::RsaPublicKey::from_der(bits)
                .map_err(|e| format!("the RSA public key does not parse: {e}"))?;
            Ok(PublicJwk::rsa(
                key.modulus.as_bytes(),
                key.public_exponent.as_bytes(),
            ))
        }
        SigningAlg::Es256 => {
            let curve = spki.algorithm.parameters_oid().ok();
            if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(P256) {
                return Err(format!(
                    "expected a P-256 public key, found algorithm {} with curve {curve:?}",
                    spki.algorithm.oid
                ));
            }
            PublicJwk::p256(bits).ok_or_else(|| "the P-256 point is not uncompressed".into())
        }
    }
}

/// Converts an ECDSA P-256 signature from DER (`SEQUENCE { r INTEGER, s INTEGER }`, as KMS
/// returns it) to the 64-byte `r || s` form of JWS (RFC 7518 §3.4).
pub fn ecdsa_p256_der_to_jose(der: &[u8]) -> Result<[u8; 64], String> {
    let bad = |e: der::Error| format!("the ECDSA signature is not DER: {e}");
    let mut reader = SliceReader::new(der).map_err(bad)?;
    let (r, s) = reader
        .sequence(|seq| Ok((UintRef::decode(seq)?, UintRef::decode(seq)?)))
        .map_err(bad)?;
    reader.finish(()).map_err(bad)?;
    let mut out = [0u8; 64];
    for (half, value) in [(0usize, r), (32, s)] {
        let bytes = value.as_bytes();
        if bytes.len() > 32 || bytes.iter().all(|b| *b == 0) {
            return Err("the ECDSA signature has an out-of-range r or s".into());
        }
        out[half + 32 - bytes.len()..half + 32].copy_from_slice(bytes);
    }
    Ok(out)
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

    #[test]
    fn spki_gives_the_same_jwk_as_the_local_signer() {
        use crate::signer::local::LocalKey;
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED, EcdsaKeyPair, KeyPair as _,
            ParsedPublicKey,
        };

        let (local, pkcs8) = LocalKey::generate(SigningAlg::Rs256).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        assert_eq!(
            &jwk_from_spki(spki.as_ref(), SigningAlg::Rs256).unwrap(),
            local.public_jwk()
        );
        assert!(jwk_from_spki(spki.as_ref(), SigningAlg::Es256).is_err());

        let (local, pkcs8) = LocalKey::generate(SigningAlg::Es256).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        assert_eq!(
            &jwk_from_spki(spki.as_ref(), SigningAlg::Es256).unwrap(),
            local.public_jwk()
        );
        assert!(jwk_from_spki(spki.as_ref(), SigningAlg::Rs256).is_err());
        assert!(jwk_from_spki(b"garbage", SigningAlg::Rs256).is_err());
        // The verifier claimex builds accepts the same SPKI bytes.
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki.as_ref()).unwrap();
    }

    #[test]
    fn der_signatures_become_jose_and_verify() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED, EcdsaKeyPair, KeyPair as _,
            ParsedPublicKey,
        };

        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let verifier = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, spki.as_ref()).unwrap();
        // Enough signatures that short r or s (leading zero bytes) occur too.
        for i in 0..300u32 {
            let message = i.to_be_bytes();
            let der = pair.sign(&rng, &message).unwrap();
            let jose = ecdsa_p256_der_to_jose(der.as_ref()).unwrap();
            verifier.verify_sig(&message, &jose).unwrap();
        }
    }

    #[test]
    fn der_conversion_pads_and_refuses_garbage() {
        // r = 1, s = 0x80 (needs a sign byte in DER).
        let der = [0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80];
        let jose = ecdsa_p256_der_to_jose(&der).unwrap();
        assert_eq!(jose[31], 1);
        assert!(jose[..31].iter().all(|b| *b == 0));
        assert_eq!(jose[63], 0x80);
        assert!(jose[32..63].iter().all(|b| *b == 0));
        let too_long = {
            let mut d = vec![0x30, 0x26, 0x02, 0x21];
            d.extend([0x7f; 33]);
            d.extend([0x02, 0x01, 0x01]);
            d
        };
        for bad in [
            &[][..],
            &[0x30, 0x00][..],
            &[0x30, 0x03, 0x02, 0x01, 0x01][..],
            &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01][..],
            &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0xff][..],
            &too_long[..],
        ] {
            assert!(ecdsa_p256_der_to_jose(bad).is_err(), "{bad:02x?}");
        }
    }
}
