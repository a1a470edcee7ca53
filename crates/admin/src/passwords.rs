//! Passwords of dashboard users and portal developers: argon2id (RFC 9106) with the
//! crate's default cost (19 MiB, 2 passes), stored as PHC strings. Hashing runs on the
//! blocking pool so a sign-in never stalls the listener's threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (hashing cost grows with length).
pub const MAX_PASSWORD: usize = 200;

/// Why a new password is refused, or None if it is acceptable.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Some(format!("use at least {MIN_PASSWORD} characters"))
    } else if password.len() > MAX_PASSWORD {
        Some(format!("use at most {MAX_PASSWORD} bytes"))
    } else {
        None
    }
}

/// The argon2id PHC string of a password.
pub async fn hash_password(password: &str) -> String {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .unwrap_or_default()
}

pub fn hash_password_blocking(password: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Whether `password` matches the stored PHC string (compared in constant time by the
/// argon2 crate). An unreadable stored hash matches nothing.
pub async fn verify_password(password: &str, stored: &str) -> bool {
    let password = password.to_string();
    let stored = stored.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash that matches no password, verified against when an account does not exist so
/// that a sign-in takes as long for an unknown e-mail as for a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password_blocking("decoy password that no one has"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").await;
        let b = hash_password("correct horse battery").await;
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a).await);
        assert!(!verify_password("correct horse batter", &a).await);
        assert!(!verify_password("anything", "not a hash").await);
        assert!(!verify_password("anything", decoy_hash()).await);
    }

    #[test]
    fn short_and_long_passwords_are_refused() {
        assert!(password_problem("short").is_some());
        assert!(password_problem(&"x".repeat(201)).is_some());
        assert!(password_problem("long enough pass").is_none());
    }
}
