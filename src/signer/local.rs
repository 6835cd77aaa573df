//! The local key file signer: a PKCS#8 PEM private key on disk, the embedded default.
//!
//! The key is parsed once at start and kept in memory as an aws-lc-rs key pair; signing
//! never re-parses it. A missing file is generated (RSA 2048 or P-256) with mode 0600.
//! Meant for development, demos and single-host deployments: production keys belong in KMS.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};

use super::{KeyStore, PublicJwk, SignError, SigningAlg, SigningKey};

/// Why a local key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 RSA or P-256 private key.
    #[error(
        "key file {path} is not a PKCS#8 PEM private key (RSA or P-256): {reason}. \
         Remove it to have claimex generate a new one, or convert it with \
         `openssl pkcs8 -topk8 -nocrypt`"
    )]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key in the file is not of the configured algorithm.
    #[error("key file {path} holds an {found} key, but the configuration asks for {wanted}")]
    WrongAlgorithm {
        /// The key file.
        path: PathBuf,
        /// What the file holds.
        found: SigningAlg,
        /// What the configuration asks for.
        wanted: SigningAlg,
    },
    /// Key generation failed in the crypto library.
    #[error("could not generate a {0} key")]
    Generate(SigningAlg),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key held in memory, parsed once.
pub struct LocalKey {
    pair: Pair,
    jwk: PublicJwk,
    rng: SystemRandom,
}

impl LocalKey {
    /// Parses a PKCS#8 DER private key (RSA or P-256).
    pub fn from_pkcs8(der: &[u8]) -> Result<LocalKey, String> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            let public = pair.public_key();
            let jwk = PublicJwk::rsa(
                public.modulus().big_endian_without_leading_zero(),
                public.exponent().big_endian_without_leading_zero(),
            );
            return Ok(LocalKey::new(Pair::Rsa(pair), jwk));
        }
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            Ok(pair) => {
                let jwk = PublicJwk::p256(pair.public_key().as_ref())
                    .ok_or_else(|| "unexpected P-256 public key encoding".to_owned())?;
                Ok(LocalKey::new(Pair::Ec(pair), jwk))
            }
            Err(e) => Err(format!("neither an RSA nor a P-256 key ({e})")),
        }
    }

    fn new(pair: Pair, jwk: PublicJwk) -> LocalKey {
        LocalKey {
            pair,
            jwk,
            rng: SystemRandom::new(),
        }
    }

    /// Generates a new key and returns it with its PKCS#8 DER encoding.
    pub fn generate(alg: SigningAlg) -> Result<(LocalKey, Vec<u8>), LocalKeyError> {
        let der = match alg {
            SigningAlg::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .ok()
                .and_then(|k| k.as_der().ok())
                .map(|d| d.as_ref().to_vec()),
            SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .ok()
                .and_then(|k| k.to_pkcs8v1().ok())
                .map(|d| d.as_ref().to_vec()),
        }
        .ok_or(LocalKeyError::Generate(alg))?;
        let key = LocalKey::from_pkcs8(&der).map_err(|_| LocalKeyError::Generate(alg))?;
        Ok((key, der))
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs synchronously.
    pub fn sign_now(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let failed = |what: &str| SignError::Failed(format!("{what} signing failed"));
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| failed("RS256"))?;
                Ok(signature)
            }
            Pair::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed("ES256")),
        }
    }
}

#[async_trait]
impl SigningKey for LocalKey {
    fn alg(&self) -> SigningAlg {
        self.jwk.alg()
    }

    fn kid(&self) -> &str {
        self.jwk.kid()
    }

    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_now(signing_input)
    }
}

/// Reads the key at `path`, or generates one of `alg` there when the file does not exist.
pub fn load_or_generate(path: &Path, alg: SigningAlg) -> Result<LocalKey, LocalKeyError> {
    let io = |source| LocalKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let key = match fs::read(path) {
        Ok(bytes) => parse_pem(path, &bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, der) = LocalKey::generate(alg)?;
            write_new_key(path, &der).map_err(io)?;
            tracing::info!(path = %path.display(), alg = %alg, kid = key.kid(), "generated a new local signing key");
            key
        }
        Err(e) => return Err(io(e)),
    };
    if key.alg() != alg {
        return Err(LocalKeyError::WrongAlgorithm {
            path: path.to_owned(),
            found: key.alg(),
            wanted: alg,
        });
    }
    Ok(key)
}

/// Reads the key at `path`, which must exist.
pub fn load_existing(path: &Path) -> Result<LocalKey, LocalKeyError> {
    let bytes = fs::read(path).map_err(|source| LocalKeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_pem(path, &bytes)
}

/// Reads a key published besides the signing key (`signer.published_paths`): a public key,
/// PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes it), RSA or
/// P-256, so a retired private key need not stay on disk; or a PEM `PRIVATE KEY`, whose
/// public half is published.
pub fn load_published(path: &Path) -> Result<PublicJwk, LocalKeyError> {
    let bytes = fs::read(path).map_err(|source| LocalKeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |reason: String| LocalKeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let block = pem::parse(&bytes).map_err(|e| invalid(e.to_string()))?;
    match block.tag() {
        "PUBLIC KEY" => crate::signer::jwk::jwk_from_spki(block.contents(), SigningAlg::Rs256)
            .or_else(|rsa| {
                crate::signer::jwk::jwk_from_spki(block.contents(), SigningAlg::Es256)
                    .map_err(|ec| format!("{rsa}; {ec}"))
            })
            .map_err(invalid),
        "PRIVATE KEY" => Ok(parse_pem(path, &bytes)?.public_jwk().clone()),
        other => Err(invalid(format!(
            "the PEM block is {other:?}, not \"PUBLIC KEY\" or \"PRIVATE KEY\""
        ))),
    }
}

fn parse_pem(path: &Path, bytes: &[u8]) -> Result<LocalKey, LocalKeyError> {
    let invalid = |reason: String| LocalKeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let block = pem::parse(bytes).map_err(|e| invalid(e.to_string()))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(invalid(format!(
            "the PEM block is {:?}, not \"PRIVATE KEY\"",
            block.tag()
        )));
    }
    LocalKey::from_pkcs8(block.contents()).map_err(invalid)
}

fn write_new_key(path: &Path, der: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(pem::encode(&pem::Pem::new("PRIVATE KEY", der)).as_bytes())?;
    file.sync_all()
}

/// A key store of local keys: one that signs, and more that are only published (the previous
/// or the next key during a manual rotation).
pub struct LocalKeyStore {
    signing: Arc<LocalKey>,
    published: Vec<PublicJwk>,
}

impl LocalKeyStore {
    /// A store that signs with `signing` and also publishes `extra`.
    pub fn new(signing: LocalKey, extra: Vec<PublicJwk>) -> LocalKeyStore {
        let mut published = vec![signing.public_jwk().clone()];
        for jwk in extra {
            if !published.iter().any(|p| p.kid() == jwk.kid()) {
                published.push(jwk);
            }
        }
        LocalKeyStore {
            signing: Arc::new(signing),
            published,
        }
    }
}

impl KeyStore for LocalKeyStore {
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError> {
        Ok(self.signing.clone())
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.published.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("claimex-key-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("key.pem")
    }

    #[test]
    fn generates_then_reloads_the_same_key() {
        for alg in [SigningAlg::Rs256, SigningAlg::Es256] {
            let path = temp_path(alg.as_str());
            let first = load_or_generate(&path, alg).unwrap();
            let again = load_or_generate(&path, alg).unwrap();
            assert_eq!(first.kid(), again.kid());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            let other = match alg {
                SigningAlg::Rs256 => SigningAlg::Es256,
                SigningAlg::Es256 => SigningAlg::Rs256,
            };
            assert!(matches!(
                load_or_generate(&path, other),
                Err(LocalKeyError::WrongAlgorithm { .. })
            ));
            fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn signatures_verify() {
        let (rsa, der) = LocalKey::generate(SigningAlg::Rs256).unwrap();
        let sig = rsa.sign_now(b"message").unwrap();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
            .verify(b"message", &sig)
            .unwrap();

        let (ec, der) = LocalKey::generate(SigningAlg::Es256).unwrap();
        let sig = ec.sign_now(b"message").unwrap();
        assert_eq!(sig.len(), 64);
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
            .verify(b"message", &sig)
            .unwrap();
    }

    #[test]
    fn refuses_garbage_files() {
        let path = temp_path("garbage");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "not a key").unwrap();
        let err = load_or_generate(&path, SigningAlg::Rs256).err().unwrap();
        assert!(err.to_string().contains("not a PKCS#8"), "{err}");
        fs::write(
            &path,
            pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2])),
        )
        .unwrap();
        let err = load_or_generate(&path, SigningAlg::Rs256).err().unwrap();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn store_publishes_extra_keys_once() {
        let (a, _) = LocalKey::generate(SigningAlg::Es256).unwrap();
        let (b, _) = LocalKey::generate(SigningAlg::Es256).unwrap();
        let a_jwk = a.public_jwk().clone();
        let b_jwk = b.public_jwk().clone();
        let store = LocalKeyStore::new(a, vec![b_jwk.clone(), a_jwk.clone()]);
        let kids: Vec<_> = store
            .published()
            .iter()
            .map(|j| j.kid().to_owned())
            .collect();
        assert_eq!(kids, vec![a_jwk.kid().to_owned(), b_jwk.kid().to_owned()]);
        assert_eq!(store.signing_key().unwrap().kid(), a_jwk.kid());
    }
}
