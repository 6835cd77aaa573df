"""Starts moto_server for claimex's AWS tests, with two fixes to its KMS emulation.

Usage: python3 moto_launcher.py PORT   (listens on 127.0.0.1:PORT, until killed)

Why a launcher and not `moto_server` itself: moto (5.2.x) ignores `MessageType=DIGEST` in
KMS `Sign`. It hashes the 32-byte digest again and signs SHA-256(digest), so the signature
does not verify against `GetPublicKey` (moto's own `Verify` agrees with itself, which hides
it). Real KMS signs the digest as given, and claimex must send DIGEST (RAW messages are
capped at 4 KiB). The fix lives here, in the test harness, never in claimex's signer: while
a `Sign` request with `MessageType=DIGEST` is handled, the key signs with
`Prehashed(<hash of the signing algorithm>)`, which is what KMS does; the digest length is
checked like KMS does. Everything else (key state checks, RAW signing, Verify) is moto's own.
claimex checks each KMS signature against the public key before issuing a token, so a
regression of this fix shows up as failing exchanges, not as silently bad tokens.

Second, moto's `GetPublicKey` answers `KeyId` with the bare key id and leaves out `KeySpec`;
the KMS API answers the key ARN and `KeySpec` (beside the deprecated `CustomerMasterKeySpec`,
which moto does send). The launcher adds both as AWS does, so claimex's signer is tested
against the API as documented rather than taught moto's shape.

Third, moto (5.2.x) does not implement `GenerateDataKeyPair` nor
`GenerateDataKeyPairWithoutPlaintext` (claimex's envelope signer). The launcher adds both as
the KMS API documents them: a fresh key pair of `KeyPairSpec` (ECC_NIST_P256..P521,
RSA_2048..4096), the private key as PKCS#8 DER encrypted with moto's own `Encrypt` under the
symmetric key `KeyId` with the request's `EncryptionContext` (so moto's `Decrypt` recovers it
and checks the context and key), the public key as SubjectPublicKeyInfo DER.
"""

import base64
import json
import sys
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from moto.kms import responses as kms_responses
from moto.kms import utils as kms_utils
from moto.kms.exceptions import ValidationException

_digest_mode = threading.local()

_original_response_sign = kms_responses.KmsResponse.sign


def _response_sign(self):
    _digest_mode.active = self._get_param("MessageType") == "DIGEST"
    try:
        return _original_response_sign(self)
    finally:
        _digest_mode.active = False


def _check_digest(message, hash_algorithm):
    if len(message) != hash_algorithm.digest_size:
        raise ValidationException(
            f"Digest is invalid length for algorithm {hash_algorithm.name.upper()}."
        )


def _rsa_sign(self, message, signing_algorithm):
    if not getattr(_digest_mode, "active", False):
        return _original_rsa_sign(self, message, signing_algorithm)
    kms_utils.validate_signing_algorithm(
        signing_algorithm, kms_utils.SigningAlgorithm.rsa_signing_algorithms()
    )
    pad, hash_algorithm = self._RSAPrivateKey__padding_and_hash_algorithm(
        signing_algorithm
    )
    _check_digest(message, hash_algorithm)
    return self.private_key.sign(message, pad, utils.Prehashed(hash_algorithm))


def _ecdsa_sign(self, message, signing_algorithm):
    if not getattr(_digest_mode, "active", False):
        return _original_ecdsa_sign(self, message, signing_algorithm)
    kms_utils.validate_signing_algorithm(
        signing_algorithm, self.valid_signing_algorithms
    )
    hash_algorithm = self._ECDSAPrivateKey__hash_algorithm(signing_algorithm)
    _check_digest(message, hash_algorithm)
    return self.private_key.sign(message, ec.ECDSA(utils.Prehashed(hash_algorithm)))


_original_get_public_key = kms_responses.KmsResponse.get_public_key


def _get_public_key(self):
    answer = json.loads(_original_get_public_key(self))
    key = self.kms_backend.describe_key(self._get_param("KeyId"))
    answer["KeyId"] = key.arn
    answer.setdefault("KeySpec", answer.get("CustomerMasterKeySpec"))
    return json.dumps(answer)


_CURVES = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
}
_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def _data_key_pair(self, with_plaintext):
    key_id = self._get_param("KeyId")
    spec = self._get_param("KeyPairSpec")
    context = self._get_param("EncryptionContext", {})
    self._validate_key_id(key_id)
    if spec in _CURVES:
        private = ec.generate_private_key(_CURVES[spec]())
    elif spec in _RSA_BITS:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[spec])
    else:
        raise ValidationException(f"KeyPairSpec {spec} is not supported.")
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ciphertext, arn = self.kms_backend.encrypt(
        key_id=key_id, plaintext=der, encryption_context=context
    )
    answer = {
        "KeyId": arn,
        "KeyPairSpec": spec,
        "PrivateKeyCiphertextBlob": base64.b64encode(ciphertext).decode(),
        "PublicKey": base64.b64encode(public).decode(),
    }
    if with_plaintext:
        answer["PrivateKeyPlaintext"] = base64.b64encode(der).decode()
    return json.dumps(answer)


kms_responses.KmsResponse.generate_data_key_pair = lambda self: _data_key_pair(self, True)
kms_responses.KmsResponse.generate_data_key_pair_without_plaintext = (
    lambda self: _data_key_pair(self, False)
)

_original_rsa_sign = kms_utils.RSAPrivateKey.sign
_original_ecdsa_sign = kms_utils.ECDSAPrivateKey.sign
kms_responses.KmsResponse.sign = _response_sign
kms_responses.KmsResponse.get_public_key = _get_public_key
kms_utils.RSAPrivateKey.sign = _rsa_sign
kms_utils.ECDSAPrivateKey.sign = _ecdsa_sign


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: moto_launcher.py PORT")
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", sys.argv[1]])


if __name__ == "__main__":
    main()
