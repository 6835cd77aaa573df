//! The AWS KMS signer: signing keys that never leave KMS, the published key set, and the
//! rotation state kept in an SSM parameter (with the operator's `claimex keys` steps).
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
//!   `signer.kms_key_id` and `signer.kms_published_key_ids`.
//! - [`Rotation`] performs the operator's steps on that parameter: stage, promote, retire.
//!
//! Any failure to reach KMS (network, throttling, a disabled key...) while signing is
//! [`SignError::Unavailable`], which the core answers with 503 `temporarily_unavailable`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_ssm::types::ParameterType;
use der::asn1::UintRef;
use der::{Decode as _, Reader as _, SliceReader};
use serde::{Deserialize, Serialize};
use spki::ObjectIdentifier;

use crate::config::SignerConfig;
use crate::signer::{KeyStore, PublicJwk, SignError, SigningAlg, SigningKey};

use super::describe_error;

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` / `prime256v1` (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// The most keys a key set may name (IAM reads at most 100 keys of each type).
pub const MAX_KEYS: usize = 100;

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

/// One KMS signing key with its public half.
pub struct KmsKey {
    client: aws_sdk_kms::Client,
    arn: String,
    alg: SigningAlg,
    kms_alg: SigningAlgorithmSpec,
    jwk: PublicJwk,
    verifier: ParsedPublicKey,
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
        })
    }

    /// The key's ARN, as KMS reported it (what claimex signs with).
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// What the key is, for the operator: `{"key", "alg", "kid"}`.
    pub fn summary(&self) -> KeySummary {
        KeySummary {
            key: self.arn.clone(),
            alg: Some(self.alg.as_str().to_owned()),
            kid: Some(self.jwk.kid().to_owned()),
            error: None,
        }
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

/// The key set as the operator names it: the key that signs and the keys that are only
/// published (previous and pending). The JSON value of the rotation parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRefs {
    /// The key that signs (key id, key ARN, alias name or alias ARN).
    pub current: String,
    /// Keys published besides the current one.
    #[serde(default)]
    pub published: Vec<String>,
}

impl KeyRefs {
    /// Parses and checks a parameter value: `current` non-empty, no empty entries, at most
    /// [`MAX_KEYS`] keys. Duplicates and a repeated current key are dropped.
    pub fn parse(text: &str) -> Result<KeyRefs, String> {
        let refs: KeyRefs = serde_json::from_str(text).map_err(|e| {
            format!(r#"expected {{"current": "<key>", "published": ["<key>", ...]}}: {e}"#)
        })?;
        refs.checked()
    }

    /// The same set with duplicates removed, checked.
    pub fn checked(mut self) -> Result<KeyRefs, String> {
        self.current = self.current.trim().to_owned();
        if self.current.is_empty() {
            return Err("current must name a KMS key".into());
        }
        let mut published: Vec<String> = Vec::new();
        for key in self.published.drain(..) {
            let key = key.trim().to_owned();
            if key.is_empty() {
                return Err("published must not contain an empty key".into());
            }
            if key != self.current && !published.contains(&key) {
                published.push(key);
            }
        }
        self.published = published;
        if self.published.len() + 1 > MAX_KEYS {
            return Err(format!("at most {MAX_KEYS} keys may be published"));
        }
        Ok(self)
    }

    /// The current key, then the published ones.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(self.published.iter().map(String::as_str))
    }

    /// Publishes `key` without signing with it (the pending key of a rotation).
    pub fn stage(&mut self, key: &str) -> Result<(), String> {
        if self.current == key {
            return Err(format!("{key} is already the current key"));
        }
        if !self.published.iter().any(|k| k == key) {
            self.published.push(key.to_owned());
        }
        Ok(())
    }

    /// Makes `key` the current key; the old current key stays published. Unless `force`,
    /// `key` must be published already, so verifiers trust it before it signs.
    pub fn promote(&mut self, key: &str, force: bool) -> Result<(), String> {
        if self.current == key {
            return Ok(());
        }
        let Some(at) = self.published.iter().position(|k| k == key) else {
            if !force {
                return Err(format!(
                    "{key} is not published yet: stage it first (`claimex keys stage {key}`) and \
                     wait until verifiers have fetched the JWKS with it, then promote it \
                     (--force skips this check)"
                ));
            }
            let old = std::mem::replace(&mut self.current, key.to_owned());
            self.published.insert(0, old);
            return Ok(());
        };
        self.published.remove(at);
        let old = std::mem::replace(&mut self.current, key.to_owned());
        self.published.insert(0, old);
        Ok(())
    }

    /// Stops publishing `key`. The current key cannot be retired.
    pub fn retire(&mut self, key: &str) -> Result<(), String> {
        if self.current == key {
            return Err(format!(
                "{key} is the current key and cannot be retired: promote another key first"
            ));
        }
        let before = self.published.len();
        self.published.retain(|k| k != key);
        if self.published.len() == before {
            return Err(format!("{key} is not published"));
        }
        Ok(())
    }

    /// The key set a [`SignerConfig`] names statically, when it names a current key.
    pub fn from_config(signer: &SignerConfig) -> Option<KeyRefs> {
        let current = signer.kms_key_id.clone().filter(|k| !k.trim().is_empty())?;
        KeyRefs {
            current,
            published: signer.kms_published_key_ids.clone(),
        }
        .checked()
        .ok()
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
        signer: &SignerConfig,
    ) -> anyhow::Result<KmsKeyStore> {
        let parameter = signer
            .kms_keys_parameter
            .clone()
            .filter(|p| !p.trim().is_empty());
        let fallback = KeyRefs::from_config(signer);
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
}

/// One key of a rotation report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// The key as stored (an ARN when claimex wrote it).
    pub key: String,
    /// Its JWS algorithm, when KMS could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Its `kid` in the JWKS, when KMS could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Why KMS could not describe it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rotation state after a `claimex keys` step.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// The SSM parameter.
    pub parameter: String,
    /// Its version after the step (none when it does not exist).
    pub version: Option<i64>,
    /// What the step did.
    pub action: String,
    /// The key that signs.
    pub current: KeySummary,
    /// The keys published besides it.
    pub published: Vec<KeySummary>,
}

/// The operator's rotation steps on the signing-keys parameter. Keys are stored as the
/// ARNs KMS reports, so every instance resolves them identically.
pub struct Rotation {
    kms: aws_sdk_kms::Client,
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    fallback: Option<KeyRefs>,
}

impl Rotation {
    /// Rotation on `signer.kms_keys_parameter`; starts from `signer.kms_key_id` and
    /// `signer.kms_published_key_ids` while the parameter does not exist.
    pub fn new(
        kms: aws_sdk_kms::Client,
        ssm: aws_sdk_ssm::Client,
        signer: &SignerConfig,
    ) -> anyhow::Result<Rotation> {
        let parameter = signer
            .kms_keys_parameter
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "signer.kms_keys_parameter is not set: the rotation steps edit that SSM \
                     parameter (e.g. /claimex/signing-keys)"
                )
            })?;
        Ok(Rotation {
            kms,
            ssm,
            parameter,
            fallback: KeyRefs::from_config(signer),
        })
    }

    /// The state in force, with the keys resolved to ARNs where KMS knows them.
    async fn state(&self) -> anyhow::Result<(Option<KeyRefs>, Option<i64>)> {
        let (refs, version) = match read_parameter(&self.ssm, &self.parameter)
            .await
            .map_err(anyhow::Error::msg)?
        {
            Some((refs, version)) => (Some(refs), Some(version)),
            None => (self.fallback.clone(), None),
        };
        let Some(refs) = refs else {
            return Ok((None, version));
        };
        let current = self.arn_or_literal(&refs.current).await;
        let mut published = Vec::new();
        for key in &refs.published {
            published.push(self.arn_or_literal(key).await);
        }
        let refs = KeyRefs { current, published }
            .checked()
            .map_err(anyhow::Error::msg)?;
        Ok((Some(refs), version))
    }

    async fn arn_or_literal(&self, key: &str) -> String {
        match KmsKey::fetch(&self.kms, key).await {
            Ok(k) => k.arn().to_owned(),
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot resolve a key of the rotation state; keeping it as written");
                key.to_owned()
            }
        }
    }

    /// The key `key` names, which must be able to sign.
    async fn usable(&self, key: &str) -> anyhow::Result<KmsKey> {
        Ok(KmsKey::fetch(&self.kms, key).await?)
    }

    async fn write(&self, refs: &KeyRefs, exists: bool) -> anyhow::Result<i64> {
        let value = serde_json::to_string(refs)?;
        let out = self
            .ssm
            .put_parameter()
            .name(&self.parameter)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(exists)
            .description("claimex signing keys: current signs, published are in the JWKS")
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "ssm PutParameter {}: {}",
                    self.parameter,
                    describe_error(&e)
                )
            })?;
        Ok(out.version())
    }

    async fn report(&self, refs: &KeyRefs, version: Option<i64>, action: String) -> RotationReport {
        let mut summaries = Vec::new();
        for key in refs.all() {
            summaries.push(match KmsKey::fetch(&self.kms, key).await {
                Ok(k) => k.summary(),
                Err(e) => KeySummary {
                    key: key.to_owned(),
                    alg: None,
                    kid: None,
                    error: Some(e.to_string()),
                },
            });
        }
        let current = summaries.remove(0);
        RotationReport {
            parameter: self.parameter.clone(),
            version,
            action,
            current,
            published: summaries,
        }
    }

    /// The rotation state without changing it.
    pub async fn show(&self) -> anyhow::Result<RotationReport> {
        let (refs, version) = self.state().await?;
        let refs = refs.ok_or_else(|| {
            anyhow::anyhow!(
                "no signing keys yet: {} does not exist and signer.kms_key_id is not set",
                self.parameter
            )
        })?;
        let action = match version {
            Some(_) => "show".to_owned(),
            None => format!(
                "show (from the configuration: {} does not exist yet)",
                self.parameter
            ),
        };
        Ok(self.report(&refs, version, action).await)
    }

    /// Publishes `key` as the pending key.
    pub async fn stage(&self, key: &str) -> anyhow::Result<RotationReport> {
        let new = self.usable(key).await?;
        let (refs, version) = self.state().await?;
        let mut refs = refs.ok_or_else(|| {
            anyhow::anyhow!(
                "no current key: set signer.kms_key_id, or make {key} the first current key \
                 with `claimex keys promote --force {key}`"
            )
        })?;
        refs.stage(new.arn()).map_err(anyhow::Error::msg)?;
        let refs = refs.checked().map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!(
            "staged {} (kid {}): published, not signing",
            new.arn(),
            new.kid()
        );
        Ok(self.report(&refs, Some(version), action).await)
    }

    /// Makes `key` the current key; the previous current key stays published.
    pub async fn promote(&self, key: &str, force: bool) -> anyhow::Result<RotationReport> {
        let new = self.usable(key).await?;
        let (refs, version) = self.state().await?;
        let refs = match refs {
            Some(mut refs) => {
                refs.promote(new.arn(), force).map_err(anyhow::Error::msg)?;
                refs
            }
            None if force => KeyRefs {
                current: new.arn().to_owned(),
                published: Vec::new(),
            },
            None => anyhow::bail!(
                "there is no current key yet; use `claimex keys promote --force {key}` to make \
                 it the first one"
            ),
        };
        let refs = refs.checked().map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!(
            "promoted {} (kid {}): it signs now; the previous key stays published",
            new.arn(),
            new.kid()
        );
        Ok(self.report(&refs, Some(version), action).await)
    }

    /// Stops publishing `key`; refuses the current key.
    pub async fn retire(&self, key: &str) -> anyhow::Result<RotationReport> {
        let (refs, version) = self.state().await?;
        let mut refs = refs.ok_or_else(|| anyhow::anyhow!("there are no keys to retire"))?;
        let literal = refs.all().any(|k| k == key);
        let target = if literal {
            key.to_owned()
        } else {
            self.usable(key).await?.arn().to_owned()
        };
        refs.retire(&target).map_err(anyhow::Error::msg)?;
        let version = self.write(&refs, version.is_some()).await?;
        let action = format!("retired {target}: no longer published");
        Ok(self.report(&refs, Some(version), action).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    };

    use crate::signer::local::LocalKey;

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
    fn spki_gives_the_same_jwk_as_the_local_signer() {
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

    #[test]
    fn der_signatures_become_jose_and_verify() {
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

    fn refs(current: &str, published: &[&str]) -> KeyRefs {
        KeyRefs {
            current: current.into(),
            published: published.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn parameter_values_parse_and_normalize() {
        let parsed =
            KeyRefs::parse(r#"{"current": "a", "published": ["b", "a", "b", "c"]}"#).unwrap();
        assert_eq!(parsed, refs("a", &["b", "c"]));
        assert_eq!(
            KeyRefs::parse(r#"{"current": "a"}"#).unwrap(),
            refs("a", &[])
        );
        for bad in [
            r#"{"current": ""}"#,
            r#"{"published": ["a"]}"#,
            r#"{"current": "a", "published": [""]}"#,
            r#"{"current": "a", "pending": "b"}"#,
            "not json",
        ] {
            assert!(KeyRefs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_steps() {
        let mut state = refs("a", &[]);
        state.stage("b").unwrap();
        assert_eq!(state, refs("a", &["b"]));
        state.stage("b").unwrap();
        assert_eq!(state, refs("a", &["b"]));
        assert!(state.stage("a").is_err());
        assert!(state.promote("c", false).is_err());
        state.promote("b", false).unwrap();
        assert_eq!(state, refs("b", &["a"]));
        assert!(state.retire("b").unwrap_err().contains("current key"));
        assert!(state.retire("z").unwrap_err().contains("not published"));
        state.retire("a").unwrap();
        assert_eq!(state, refs("b", &[]));
        state.promote("c", true).unwrap();
        assert_eq!(state, refs("c", &["b"]));
        assert_eq!(state.all().collect::<Vec<_>>(), vec!["c", "b"]);
    }
}
