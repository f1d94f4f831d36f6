//! Just enough JOSE to check an ID token: the compact JWS serialization (RFC 7515 §7.1), the
//! public keys of a JWK Set (RFC 7517), and signature verification by `ring` for the asymmetric
//! algorithms identity providers sign with (RFC 7518 §3: RS*, PS*, ES256/ES384; RFC 8037:
//! EdDSA). No crypto is made here: ring verifies; this module only picks the key and the
//! algorithm, and refuses everything else (`none`, the HMAC algorithms, `crit` headers, a key
//! whose type or declared algorithm does not match the header).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

/// An ID token is a few KiB; anything far bigger is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("the JWS header is not valid: {0}")]
    BadHeader(String),
    #[error("signing algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no key of the provider's key set matches key id {0:?}")]
    NoKey(Option<String>),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the claims are not a JSON object: {0}")]
    BadClaims(String),
}

/// The asymmetric JWS algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    fn parse(name: &str) -> Result<Self, JoseError> {
        Ok(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            other => return Err(JoseError::Algorithm(other.chars().take(32).collect())),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Extensions the signer says must be understood: none are, so any is refused.
    crit: Option<serde_json::Value>,
}

/// A signed token split into its parts, its signature not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    algorithm: Algorithm,
    pub key_id: Option<String>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl<'a> Jws<'a> {
    pub fn parse(token: &'a str) -> Result<Self, JoseError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JoseError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed);
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| JoseError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|e| JoseError::BadHeader(e.to_string()))?;
        if header.crit.is_some() {
            return Err(JoseError::BadHeader("it has critical extensions (`crit`)".into()));
        }
        let algorithm = Algorithm::parse(&header.alg)?;
        let signing_input = &token.as_bytes()[..token.len() - signature.len() - 1];
        Ok(Self {
            algorithm,
            key_id: header.kid,
            signing_input,
            signature: decode(signature)?,
            payload: decode(payload)?,
        })
    }

    /// The payload as a JSON object, once the signature verified with a key of `keys`.
    pub fn verify(self, keys: &JwkSet) -> Result<serde_json::Map<String, serde_json::Value>, JoseError> {
        let key = keys.find(self.key_id.as_deref(), self.algorithm)?;
        key.verify(self.algorithm, self.signing_input, &self.signature)?;
        match serde_json::from_slice(&self.payload) {
            Ok(serde_json::Value::Object(claims)) => Ok(claims),
            Ok(_) => Err(JoseError::BadClaims("not an object".into())),
            Err(e) => Err(JoseError::BadClaims(e.to_string())),
        }
    }
}

/// One public key of the provider's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub key_id: Option<String>,
    /// The `alg` the key declares, if it does: the header must then name the same.
    algorithm: Option<String>,
    material: KeyMaterial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (0x04 || x || y) on the curve named.
    Ec {
        p384: bool,
        point: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The provider's published keys (`jwks_uri`), keeping those that can verify a signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWK Set document. Keys for encryption (`use: enc`), symmetric keys and keys of
    /// unknown types are skipped, as RFC 7517 §5 lets a reader do; a set with no usable key is
    /// an error.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(document).map_err(|e| format!("not a JWK set: {e}"))?;
        let keys: Vec<Jwk> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
            .filter_map(Jwk::from_raw)
            .collect();
        if keys.is_empty() {
            return Err("the JWK set holds no signature key ktbroker can use".into());
        }
        Ok(Self { keys })
    }

    pub fn has(&self, key_id: Option<&str>) -> bool {
        self.keys.iter().any(|k| k.key_id.as_deref() == key_id)
    }

    /// The key for `key_id` and `algorithm`. Without a key id, only a set with exactly one key
    /// that fits the algorithm answers (never "try them all").
    fn find(&self, key_id: Option<&str>, algorithm: Algorithm) -> Result<&Jwk, JoseError> {
        let fits = |k: &&Jwk| k.fits(algorithm);
        let mut candidates: Vec<&Jwk> = match key_id {
            Some(id) => self
                .keys
                .iter()
                .filter(|k| k.key_id.as_deref() == Some(id))
                .filter(fits)
                .collect(),
            None => self.keys.iter().filter(fits).collect(),
        };
        match candidates.len() {
            1 => Ok(candidates.remove(0)),
            _ => Err(JoseError::NoKey(key_id.map(|id| id.chars().take(80).collect()))),
        }
    }
}

impl Jwk {
    fn from_raw(raw: RawJwk) -> Option<Self> {
        if raw.usage.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let bytes = |field: &Option<String>| field.as_deref().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => KeyMaterial::Rsa {
                n: bytes(&raw.n)?,
                e: bytes(&raw.e)?,
            },
            ("EC", Some(curve @ ("P-256" | "P-384"))) => {
                let (x, y) = (bytes(&raw.x)?, bytes(&raw.y)?);
                let size = if curve == "P-256" { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return None;
                }
                let mut point = vec![0x04];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec {
                    p384: curve == "P-384",
                    point,
                }
            }
            ("OKP", Some("Ed25519")) => KeyMaterial::Ed25519 { x: bytes(&raw.x)? },
            _ => return None,
        };
        Some(Self {
            key_id: raw.kid,
            algorithm: raw.alg,
            material,
        })
    }

    fn fits(&self, algorithm: Algorithm) -> bool {
        if self
            .algorithm
            .as_deref()
            .is_some_and(|declared| declared != algorithm.name())
        {
            return false;
        }
        use Algorithm::*;
        match &self.material {
            KeyMaterial::Rsa { .. } => matches!(algorithm, Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512),
            KeyMaterial::Ec { p384: false, .. } => algorithm == Es256,
            KeyMaterial::Ec { p384: true, .. } => algorithm == Es384,
            KeyMaterial::Ed25519 { .. } => algorithm == EdDsa,
        }
    }

    fn verify(&self, algorithm: Algorithm, message: &[u8], sig: &[u8]) -> Result<(), JoseError> {
        use Algorithm::*;
        let verified = match &self.material {
            KeyMaterial::Rsa { n, e } => {
                let parameters: &signature::RsaParameters = match algorithm {
                    Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(JoseError::BadSignature),
                };
                signature::RsaPublicKeyComponents { n, e }.verify(parameters, message, sig)
            }
            KeyMaterial::Ec { p384, point } => {
                let parameters = if *p384 {
                    &signature::ECDSA_P384_SHA384_FIXED
                } else {
                    &signature::ECDSA_P256_SHA256_FIXED
                };
                UnparsedPublicKey::new(parameters, point).verify(message, sig)
            }
            KeyMaterial::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig),
        };
        verified.map_err(|_| JoseError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair};

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An ES256 key, its JWK set entry and a signer (ring makes ECDSA keys; RSA is covered
    /// end to end against the test provider's RS256 keys).
    struct Signer {
        key: EcdsaKeyPair,
        kid: &'static str,
    }

    impl Signer {
        fn new(kid: &'static str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            Self { key, kid }
        }

        fn jwk(&self) -> serde_json::Value {
            let point = self.key.public_key().as_ref();
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                "x": b64(&point[1..33]), "y": b64(&point[33..65])})
        }

        fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = self.key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            format!("{input}.{}", b64(sig.as_ref()))
        }

        fn token(&self, claims: serde_json::Value) -> String {
            self.sign(serde_json::json!({"alg": "ES256", "kid": self.kid}), claims)
        }
    }

    fn set(keys: &[serde_json::Value]) -> JwkSet {
        JwkSet::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_token_signed_by_a_key_of_the_set_verifies_and_yields_its_claims() {
        let signer = Signer::new("k1");
        let token = signer.token(serde_json::json!({"sub": "42", "iss": "https://idp"}));
        let claims = Jws::parse(&token).unwrap().verify(&set(&[signer.jwk()])).unwrap();
        assert_eq!(claims["sub"], "42");
    }

    #[test]
    fn a_token_signed_by_another_key_or_altered_does_not_verify() {
        let (signer, other) = (Signer::new("k1"), Signer::new("k1"));
        let token = other.token(serde_json::json!({"sub": "42"}));
        let keys = set(&[signer.jwk()]);
        assert_eq!(
            Jws::parse(&token).unwrap().verify(&keys).unwrap_err(),
            JoseError::BadSignature
        );
        // The right signature over other claims.
        let good = signer.token(serde_json::json!({"sub": "42"}));
        let forged_claims = b64(serde_json::json!({"sub": "1"}).to_string().as_bytes());
        let parts: Vec<&str> = good.split('.').collect();
        let altered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            Jws::parse(&altered).unwrap().verify(&keys).unwrap_err(),
            JoseError::BadSignature
        );
    }

    #[test]
    fn unsigned_and_symmetric_algorithms_are_refused_before_any_key_is_looked_at() {
        let signer = Signer::new("k1");
        for alg in ["none", "HS256", "hs256", "ES256K", ""] {
            let token = signer.sign(
                serde_json::json!({"alg": alg, "kid": "k1"}),
                serde_json::json!({"sub": "1"}),
            );
            assert!(matches!(Jws::parse(&token), Err(JoseError::Algorithm(_))), "{alg}");
        }
        let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(br#"{"sub":"1"}"#));
        assert!(matches!(Jws::parse(&unsigned), Err(JoseError::Algorithm(_))));
    }

    #[test]
    fn a_key_is_chosen_by_id_type_and_declared_algorithm_only() {
        let signer = Signer::new("k1");
        let token = signer.token(serde_json::json!({"sub": "1"}));
        // Unknown key id: no key (the caller may refetch the set once, for a rotation).
        let other_id = Signer::new("k2");
        assert_eq!(
            Jws::parse(&token).unwrap().verify(&set(&[other_id.jwk()])).unwrap_err(),
            JoseError::NoKey(Some("k1".into()))
        );
        // The key says it is for RS256: not used for ES256.
        let mut declared = signer.jwk();
        declared["alg"] = "RS256".into();
        assert!(matches!(
            Jws::parse(&token).unwrap().verify(&set(&[declared])),
            Err(JoseError::NoKey(_))
        ));
        // No kid in the header: only an unambiguous set answers.
        let no_kid = signer.sign(serde_json::json!({"alg": "ES256"}), serde_json::json!({"sub": "1"}));
        assert!(Jws::parse(&no_kid).unwrap().verify(&set(&[signer.jwk()])).is_ok());
        let two = set(&[signer.jwk(), Signer::new("k3").jwk()]);
        assert!(matches!(
            Jws::parse(&no_kid).unwrap().verify(&two),
            Err(JoseError::NoKey(None))
        ));
    }

    #[test]
    fn critical_extensions_and_malformed_tokens_are_refused() {
        let signer = Signer::new("k1");
        let crit = signer.sign(
            serde_json::json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
            serde_json::json!({}),
        );
        assert!(matches!(Jws::parse(&crit), Err(JoseError::BadHeader(_))));
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30"] {
            assert!(Jws::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Jws::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn key_sets_keep_only_signature_keys_they_can_use() {
        let signer = Signer::new("k1");
        let mut encryption = Signer::new("enc").jwk();
        encryption["use"] = "enc".into();
        let document = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
            {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
            encryption,
            signer.jwk(),
        ]});
        let keys = JwkSet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert!(keys.has(Some("k1")));
        assert!(JwkSet::parse(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).is_err());
        assert!(JwkSet::parse(b"[]").is_err());
    }
}
