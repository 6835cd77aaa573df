//! The AWS KMS signer: signing keys that never leave KMS, and the published key set, which
//! follows the rotation state in an SSM parameter.
//!
//! - A [`KmsKey`] is one asymmetric `SIGN_VERIFY` KMS key. Its key spec decides the JWS
//!   algorithm: `RSA_2048`/`RSA_3072`/`RSA_4096` sign RS256 (`RSASSA_PKCS1_V1_5_SHA_256`),
//!   `ECC_NIST_P256` signs ES256 (`ECDSA_SHA_256`; KMS's DER signature is converted to the
//!   JOSE `r || s` form). claimex always sends the SHA-256 digest of the signing input with
//!   `MessageType=DIGEST` (raw messages are capped at 4 KiB by KMS), and checks every
//!   signature against the key's public key before it leaves: a signature that does not
//!   verify is an error, never a token.
//! - Public keys come from `GetPublicKey` (SubjectPublicKeyInfo DER → JWK, `kid` = RFC 7638
//!   thumbprint, the same as the local signer's), fetched once per key reference and cached.
//! - A [`KmsKeyStore`] signs with the *current* key and publishes it with the *published*
//!   ones (the previous key after a rotation, the pending one before it). The set is named
//!   by [`KeyRefs`]: the SSM parameter `signer.kms_keys_parameter` when it is set and exists
//!   (re-read every `registry.refresh_secs`, so a rotation step needs no redeploy), else
//!   `signer.kms_key_id` and `signer.kms_published_key_ids`. The operator's steps on that
//!   parameter are `claimex keys` (the CLI), over [`super::rotation`].
//!
//! Any failure to reach KMS (network, throttling, a disabled key...) while signing is
//! [`SignError::Unavailable`], which the core answers with 503 `temporarily_unavailable`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};

use super::jwk::{ecdsa_p256_der_to_jose, jwk_from_spki};
use super::rotation::{KeyRefs, MAX_KEYS};
use super::{KeyStore, PublicJwk, SignError, SignerHealth, SignerSettings, SigningAlg, SigningKey};
use crate::aws::describe_error;

/// Why a KMS key cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// KMS could not be asked (network, throttling, permissions, missing key...).
    #[error("KMS GetPublicKey {key}: {reason}")]
    Unavailable {
        /// The key reference.
        key: String,
        /// What the SDK said.
        reason: String,
    },
    /// KMS answered, but the key cannot sign JWTs for claimex.
    #[error("KMS key {key} is not usable: {reason}")]
    Unusable {
        /// The key reference.
        key: String,
        /// Why.
        reason: String,
    },
}

/// The JWS algorithm and KMS signing algorithm for a KMS key spec.
pub fn algorithm_for(spec: &KeySpec) -> Option<(SigningAlg, SigningAlgorithmSpec)> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => Some((
            SigningAlg::Rs256,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        )),
        KeySpec::EccNistP256 => Some((SigningAlg::Es256, SigningAlgorithmSpec::EcdsaSha256)),
        _ => None,
    }
}

/// One KMS signing key with its public half.
pub struct KmsKey {
    client: aws_sdk_kms::Client,
    arn: String,
    alg: SigningAlg,
    kms_alg: SigningAlgorithmSpec,
    jwk: PublicJwk,
    verifier: ParsedPublicKey,
    health: Mutex<SignerHealth>,
}

impl std::fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKey")
            .field("arn", &self.arn)
            .field("alg", &self.alg)
            .field("kid", &self.jwk.kid())
            .finish()
    }
}

impl KmsKey {
    /// Asks KMS for the public key of `reference` (key id, key ARN, alias name or alias
    /// ARN) and checks that it can sign claimex's tokens.
    pub async fn fetch(client: &aws_sdk_kms::Client, reference: &str) -> Result<KmsKey, KeyError> {
        let unusable = |reason: String| KeyError::Unusable {
            key: reference.to_owned(),
            reason,
        };
        let out = client
            .get_public_key()
            .key_id(reference)
            .send()
            .await
            .map_err(|e| KeyError::Unavailable {
                key: reference.to_owned(),
                reason: describe_error(&e),
            })?;
        if out.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(unusable(format!(
                "its key usage is {}, not SIGN_VERIFY",
                out.key_usage().map(|u| u.as_str()).unwrap_or("unknown")
            )));
        }
        let spec = out
            .key_spec()
            .ok_or_else(|| unusable("KMS did not say its key spec".into()))?;
        let (alg, kms_alg) = algorithm_for(spec).ok_or_else(|| {
            unusable(format!(
                "key spec {} is not supported: use RSA_2048, RSA_3072, RSA_4096 (RS256) or \
                 ECC_NIST_P256 (ES256)",
                spec.as_str()
            ))
        })?;
        if !out.signing_algorithms().is_empty() && !out.signing_algorithms().contains(&kms_alg) {
            return Err(unusable(format!(
                "it does not offer the signing algorithm {}",
                kms_alg.as_str()
            )));
        }
        let der = out
            .public_key()
            .ok_or_else(|| unusable("KMS returned no public key".into()))?
            .as_ref();
        let jwk = jwk_from_spki(der, alg).map_err(unusable)?;
        let verification: &'static dyn VerificationAlgorithm = match alg {
            SigningAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            SigningAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
        };
        let verifier = ParsedPublicKey::new(verification, der)
            .map_err(|e| unusable(format!("the public key is rejected: {e}")))?;
        let arn = out
            .key_id()
            .filter(|arn| !arn.is_empty())
            .unwrap_or(reference)
            .to_owned();
        Ok(KmsKey {
            client: client.clone(),
            arn,
            alg,
            kms_alg,
            jwk,
            verifier,
            health: Mutex::new(SignerHealth::default()),
        })
    }

    /// What this key's last signatures tell of it.
    pub fn health(&self) -> SignerHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, result: &Result<Vec<u8>, SignError>) {
        let now = crate::system::unix_now();
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                health.failing = false;
                health.last_success_unix = Some(now);
            }
            Err(e) => {
                health.failing = true;
                health.last_error = Some(e.to_string());
                health.last_error_unix = Some(now);
            }
        }
    }

    /// The key's ARN, as KMS reported it (what claimex signs with).
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }
}

#[async_trait]
impl SigningKey for KmsKey {
    fn alg(&self) -> SigningAlg {
        self.alg
    }

    fn kid(&self) -> &str {
        self.jwk.kid()
    }

    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let result = self.sign_once(signing_input).await;
        self.record(&result);
        result
    }
}

impl KmsKey {
    async fn sign_once(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = digest::digest(&digest::SHA256, signing_input);
        let out = self
            .client
            .sign()
            .key_id(&self.arn)
            .message(Blob::new(digest.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(self.kms_alg.clone())
            .send()
            .await
            .map_err(|e| {
                let reason = describe_error(&e);
                tracing::warn!(key = %self.arn, error = %reason, "KMS Sign failed");
                SignError::Unavailable(format!("KMS Sign with {}: {reason}", self.arn))
            })?;
        let signature = out
            .signature()
            .ok_or_else(|| SignError::Failed(format!("KMS Sign with {}: no signature", self.arn)))?
            .as_ref();
        let jws = match self.alg {
            SigningAlg::Rs256 => signature.to_vec(),
            SigningAlg::Es256 => ecdsa_p256_der_to_jose(signature)
                .map_err(|e| SignError::Failed(format!("KMS Sign with {}: {e}", self.arn)))?
                .to_vec(),
        };
        self.verifier
            .verify_sig(signing_input, &jws)
            .map_err(|_| {
                tracing::error!(key = %self.arn, kid = self.kid(), "KMS returned a signature that does not verify against the key's public key");
                SignError::Failed(format!(
                    "KMS Sign with {}: the signature does not verify against the key's public key",
                    self.arn
                ))
            })?;
        Ok(jws)
    }
}

/// Reads the rotation parameter: `Ok(None)` when it does not exist.
pub async fn read_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Option<(KeyRefs, i64)>, String> {
    match ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
    {
        Ok(out) => {
            let parameter = out
                .parameter()
                .ok_or_else(|| format!("ssm GetParameter {name}: no parameter in the answer"))?;
            let refs = KeyRefs::parse(parameter.value().unwrap_or_default())
                .map_err(|e| format!("ssm parameter {name}: {e}"))?;
            Ok(Some((refs, parameter.version())))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(None)
        }
        Err(e) => Err(format!("ssm GetParameter {name}: {}", describe_error(&e))),
    }
}

/// The keys in force: the one that signs and the JWKS.
struct KeySet {
    refs: KeyRefs,
    origin: String,
    from_parameter: bool,
    current: Arc<KmsKey>,
    published: Vec<PublicJwk>,
}

/// A key store backed by KMS, optionally following a rotation parameter in SSM.
pub struct KmsKeyStore {
    kms: aws_sdk_kms::Client,
    ssm: aws_sdk_ssm::Client,
    parameter: Option<String>,
    fallback: Option<KeyRefs>,
    keys: moka::future::Cache<String, Arc<KmsKey>>,
    state: RwLock<Arc<KeySet>>,
}

impl KmsKeyStore {
    /// Loads the key set named by `signer` (see the module docs) and fetches every public
    /// key. Fails when the parameter cannot be read, names no current key, or a key is
    /// unusable or unreachable.
    pub async fn load(
        kms: aws_sdk_kms::Client,
        ssm: aws_sdk_ssm::Client,
        signer: &SignerSettings,
    ) -> anyhow::Result<KmsKeyStore> {
        let parameter = signer
            .kms_keys_parameter
            .clone()
            .filter(|p| !p.trim().is_empty());
        let fallback = KeyRefs::from_settings(signer);
        let keys = moka::future::Cache::builder()
            .max_capacity(2 * MAX_KEYS as u64)
            .build();
        let (refs, origin, from_parameter) =
            resolve_refs(&ssm, parameter.as_deref(), fallback.as_ref()).await?;
        let set = build_set(&kms, &keys, refs, origin, from_parameter).await?;
        tracing::info!(origin = %set.origin, current = %set.current.arn(), kid = set.current.kid(), alg = %set.current.alg(), published = set.published.len(), "KMS signing keys loaded");
        Ok(KmsKeyStore {
            kms,
            ssm,
            parameter,
            fallback,
            keys,
            state: RwLock::new(Arc::new(set)),
        })
    }

    /// Whether the store follows a rotation parameter (and so needs [`Self::refresh_forever`]).
    pub fn watches_parameter(&self) -> bool {
        self.parameter.is_some()
    }

    /// The key set in force, as named.
    pub fn refs(&self) -> KeyRefs {
        self.current_set().refs.clone()
    }

    fn current_set(&self) -> Arc<KeySet> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the rotation parameter again and swaps in the key set it names, when it
    /// changed. On any failure the key set in force stays.
    ///
    /// Once the keys came from the parameter, a parameter that disappears is an error (the
    /// keys in force stay), not a silent switch back to the configuration's keys, which
    /// verifiers may no longer trust.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let in_force = self.current_set();
        let (refs, origin, from_parameter) =
            resolve_refs(&self.ssm, self.parameter.as_deref(), self.fallback.as_ref()).await?;
        if in_force.from_parameter && !from_parameter {
            anyhow::bail!(
                "the signing-keys parameter {} has disappeared; keeping the keys in force \
                 (put it back to change them)",
                self.parameter.as_deref().unwrap_or_default()
            );
        }
        if refs == in_force.refs {
            return Ok(false);
        }
        let set = build_set(&self.kms, &self.keys, refs, origin, from_parameter).await?;
        tracing::info!(origin = %set.origin, current = %set.current.arn(), kid = set.current.kid(), alg = %set.current.alg(), published = set.published.len(), "KMS signing keys changed");
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(true)
    }

    /// Refreshes every `interval` while anyone else holds the store, backing off after
    /// failures ([`crate::refresh::every`], as the issuer registry does).
    pub async fn refresh_forever(self: Arc<Self>, interval: Duration) {
        crate::refresh::every(
            self,
            interval,
            "cannot refresh the KMS signing keys; keeping the keys in force",
            |store| async move {
                store
                    .refresh()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{e:#}"))
            },
        )
        .await
    }
}

/// Which key set is in force: the parameter when set and present, else the config. Also
/// says where it came from, and whether that is the parameter.
async fn resolve_refs(
    ssm: &aws_sdk_ssm::Client,
    parameter: Option<&str>,
    fallback: Option<&KeyRefs>,
) -> anyhow::Result<(KeyRefs, String, bool)> {
    if let Some(name) = parameter
        && let Some((refs, version)) = read_parameter(ssm, name)
            .await
            .map_err(anyhow::Error::msg)?
    {
        return Ok((
            refs,
            format!("ssm parameter {name} (version {version})"),
            true,
        ));
    }
    match (fallback, parameter) {
        (Some(refs), _) => Ok((
            refs.clone(),
            "configuration signer.kms_key_id".into(),
            false,
        )),
        (None, Some(name)) => anyhow::bail!(
            "the signing-keys parameter {name} does not exist and signer.kms_key_id is not set: \
             name the signing key in one of them"
        ),
        (None, None) => anyhow::bail!("signer.kms_key_id is not set"),
    }
}

async fn fetch_cached(
    kms: &aws_sdk_kms::Client,
    cache: &moka::future::Cache<String, Arc<KmsKey>>,
    reference: &str,
) -> Result<Arc<KmsKey>, KeyError> {
    cache
        .try_get_with(reference.to_owned(), async {
            KmsKey::fetch(kms, reference).await.map(Arc::new)
        })
        .await
        .map_err(|e| (*e).clone())
}

async fn build_set(
    kms: &aws_sdk_kms::Client,
    cache: &moka::future::Cache<String, Arc<KmsKey>>,
    refs: KeyRefs,
    origin: String,
    from_parameter: bool,
) -> anyhow::Result<KeySet> {
    let current = fetch_cached(kms, cache, &refs.current).await?;
    let mut published = vec![current.public_jwk().clone()];
    for reference in &refs.published {
        let key = fetch_cached(kms, cache, reference).await?;
        if !published.iter().any(|j| j.kid() == key.kid()) {
            published.push(key.public_jwk().clone());
        }
    }
    Ok(KeySet {
        refs,
        origin,
        from_parameter,
        current,
        published,
    })
}

impl KeyStore for KmsKeyStore {
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError> {
        Ok(self.current_set().current.clone())
    }

    fn published(&self) -> Vec<PublicJwk> {
        self.current_set().published.clone()
    }

    fn health(&self) -> SignerHealth {
        self.current_set().current.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

    #[test]
    fn key_specs_decide_the_algorithm() {
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
            assert_eq!(
                algorithm_for(&spec),
                Some((
                    SigningAlg::Rs256,
                    SigningAlgorithmSpec::RsassaPkcs1V15Sha256
                ))
            );
        }
        assert_eq!(
            algorithm_for(&KeySpec::EccNistP256),
            Some((SigningAlg::Es256, SigningAlgorithmSpec::EcdsaSha256))
        );
        for spec in [
            KeySpec::EccNistP384,
            KeySpec::EccSecgP256K1,
            KeySpec::SymmetricDefault,
            KeySpec::Hmac256,
        ] {
            assert_eq!(algorithm_for(&spec), None, "{spec:?}");
        }
    }

    #[test]
    fn rsa_verifier_takes_spki() {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let verifier = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.as_ref()).unwrap();
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            b"input",
            &mut signature,
        )
        .unwrap();
        verifier.verify_sig(b"input", &signature).unwrap();
        assert!(verifier.verify_sig(b"other", &signature).is_err());
    }
}
