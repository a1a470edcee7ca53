//! Secrets at rest (DESIGN §4). The store never holds a secret in clear:
//!
//! - API keys are kept as `HMAC-SHA256(pepper, key)`; the pepper is derived from the node
//!   secret, which lives outside the database (a file in the data directory or the
//!   `TOLLGATE_SECRET_KEY` environment variable). A stolen database alone cannot be used to
//!   test guesses.
//! - Secrets the gateway must use in clear (HMAC keys of JWT issuers, OAuth2 client
//!   secrets, TLS private keys) are sealed with XChaCha20-Poly1305 under a key derived
//!   from the same node secret, and opened when a snapshot is compiled.
//! - Passwords (basic auth, users) are argon2id hashes.
//!
//! Every node of a cluster must share the node secret.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Marks a sealed value: `sealed:v1:<base64url(nonce ‖ ciphertext)>`.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Prefix of generated API keys: `tg_<id>_<secret>`.
pub const KEY_PREFIX: &str = "tg";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the node secret must be 32 bytes written as 64 hex digits")]
    BadNodeSecret,
    #[error("a sealed value is malformed")]
    Malformed,
    #[error(
        "a sealed value cannot be opened with this node's secret (was it sealed by a node \
         with another TOLLGATE_SECRET_KEY?)"
    )]
    WrongKey,
}

/// The node secret and the keys derived from it.
#[derive(Clone)]
pub struct Secrets {
    /// HMAC keyed with the pepper, ready to clone: the key schedule runs once.
    pepper_mac: HmacSha256,
    seal: [u8; 32],
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(..)")
    }
}

fn derive(master: &[u8; 32], purpose: &str) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes keys of any length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A fresh random node secret, as 64 hex digits.
pub fn generate_node_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn random_token(len: usize) -> String {
    // Letters and digits only, so a key survives URLs, headers and double-click selection.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            // 62 * 4 = 248: rejection keeps the choice uniform.
            loop {
                let b = (rng.next_u32() & 0xff) as usize;
                if b < 248 {
                    return ALPHABET[b % 62] as char;
                }
            }
        })
        .collect()
}

/// A newly generated API key: the whole key (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub id: String,
    pub hash: String,
}

impl Secrets {
    /// Reads a node secret written as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Secrets, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadNodeSecret)?;
        let master: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadNodeSecret)?;
        let pepper = derive(&master, "tollgate api key pepper v1");
        Ok(Secrets {
            pepper_mac: <HmacSha256 as Mac>::new_from_slice(&pepper).expect("any key length"),
            seal: derive(&master, "tollgate sealing key v1"),
        })
    }

    /// HMAC-SHA256 of a presented API key, hex: what the store keeps.
    pub fn key_hash(&self, key: &str) -> String {
        hex::encode(self.key_digest(key))
    }

    /// HMAC-SHA256 of a presented API key.
    pub fn key_digest(&self, key: &str) -> [u8; 32] {
        let mut mac = self.pepper_mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `key` hashes to `stored` (hex), in constant time.
    pub fn key_matches(&self, key: &str, stored: &str) -> bool {
        let Ok(stored) = hex::decode(stored) else {
            return false;
        };
        self.key_digest(key).ct_eq(&stored[..]).into()
    }

    /// The public id of a key: the middle part of `tg_<id>_<secret>`, or, for a key of
    /// any other form (a literal secret from a migration), the first hex digits of its
    /// peppered hash, so the lookup is still one map access. (The id reveals nothing the
    /// stored hash does not.)
    pub fn key_id(&self, key: &str) -> String {
        self.key_id_with(key, &self.key_digest(key))
    }

    /// [`Secrets::key_id`] when the key's digest is already known.
    pub fn key_id_with(&self, key: &str, digest: &[u8; 32]) -> String {
        match generated_key_id(key) {
            Some(id) => id.to_string(),
            None => format!("l{}", &hex::encode(&digest[..8])[..15]),
        }
    }

    /// Generates a new API key `tg_<id>_<secret>` (12-character id, 32-character secret).
    pub fn generate_key(&self) -> NewKey {
        let id = random_token(12);
        let key = format!("{KEY_PREFIX}_{id}_{}", random_token(32));
        NewKey {
            hash: self.key_hash(&key),
            id,
            key,
        }
    }

    /// Seals a secret for storage. Each call uses a fresh nonce.
    pub fn seal(&self, clear: &str) -> String {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), clear.as_bytes())
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Malformed)?;
        if bytes.len() < 24 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ct) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let clear = cipher
            .decrypt(&XNonce::from(nonce), ct)
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(clear).map_err(|_| SecretError::Malformed)
    }
}

/// Whether a stored value is sealed (as opposed to a clear value still to be sealed).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// The id part of a generated key `tg_<id>_<secret>`, if `key` has that form.
pub fn generated_key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(id) && ok(secret) && id.len() <= 32).then_some(id)
}

/// An argon2id hash of a password, in PHC string form.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Whether `password` matches a PHC argon2 hash. A malformed hash matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a string is an argon2 PHC hash (so it is stored as is, not hashed again).
pub fn is_password_hash(value: &str) -> bool {
    value.starts_with("$argon2")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn node_secret_must_be_32_bytes_of_hex() {
        assert_eq!(
            Secrets::from_hex("abcd").unwrap_err(),
            SecretError::BadNodeSecret
        );
        assert_eq!(
            Secrets::from_hex(&"zz".repeat(32)).unwrap_err(),
            SecretError::BadNodeSecret
        );
        assert!(Secrets::from_hex(&generate_node_secret()).is_ok());
    }

    #[test]
    fn generated_keys_verify_and_carry_their_id() {
        let s = secrets();
        let k = s.generate_key();
        assert!(k.key.starts_with("tg_"));
        assert_eq!(generated_key_id(&k.key), Some(k.id.as_str()));
        assert_eq!(s.key_id(&k.key), k.id);
        assert!(s.key_matches(&k.key, &k.hash));
        assert!(!s.key_matches(&format!("{}x", k.key), &k.hash));
        assert!(!s.key_matches(&k.key, "not hex"));
        // Another node secret gives another hash.
        let other = Secrets::from_hex(&"cd".repeat(32)).unwrap();
        assert!(!other.key_matches(&k.key, &k.hash));
    }

    #[test]
    fn literal_keys_get_a_stable_peppered_id() {
        let s = secrets();
        let id = s.key_id("acme-demo-key-1");
        assert_eq!(id, s.key_id("acme-demo-key-1"));
        assert_ne!(id, s.key_id("acme-demo-key-2"));
        assert!(id.starts_with('l') && id.len() == 16);
        assert_eq!(generated_key_id("tg__x"), None);
        assert_eq!(generated_key_id("tg_ab_c-d"), None);
    }

    #[test]
    fn sealing_round_trips_and_detects_tampering() {
        let s = secrets();
        let sealed = s.seal("hunter2");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, s.seal("hunter2"), "fresh nonce per seal");
        assert_eq!(s.open(&sealed).unwrap(), "hunter2");
        let other = Secrets::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.open(&sealed).unwrap_err(), SecretError::WrongKey);
        let mut bad = sealed.clone();
        bad.pop();
        bad.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open(&bad).is_err());
        assert_eq!(s.open("plain").unwrap_err(), SecretError::Malformed);
    }

    #[test]
    fn passwords_hash_with_argon2id() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(is_password_hash(&h));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "$argon2id$garbage"));
    }
}
