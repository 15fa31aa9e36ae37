//! Connection passwords at rest: AES-256-GCM (`ring::aead`) with a fresh random nonce per
//! encryption, stored in front of the ciphertext (`nonce || ciphertext || tag`).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use shadowsync_common::secret::Secret;

/// Why a password could not be sealed or opened. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("encryption_key must be 32 bytes (AES-256)")]
    KeyLength,
    #[error("no random bytes available for a nonce")]
    Random,
    #[error("stored password cannot be decrypted (wrong key or corrupted)")]
    Open,
}

/// Seals and opens connection passwords with the configured key.
#[derive(Clone)]
pub struct PasswordCipher {
    key: std::sync::Arc<LessSafeKey>,
    /// Keys the tags of [`PasswordCipher::tag`]; derived from the encryption key so one secret
    /// serves both, without using the AES key itself for a second algorithm.
    tag_key: hmac::Key,
    random: SystemRandom,
}

impl std::fmt::Debug for PasswordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordCipher([redacted])")
    }
}

impl PasswordCipher {
    /// A cipher over a 32-byte key.
    ///
    /// Fails with [`CipherError::KeyLength`] for any other length.
    pub fn new(key: &Secret<Vec<u8>>) -> Result<Self, CipherError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| CipherError::KeyLength)?;
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
            b"shadowsync request fingerprints",
        );
        Ok(Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
            tag_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            random: SystemRandom::new(),
        })
    }

    /// A keyed tag of `secret` (hex HMAC-SHA256): lets a request fingerprint tell two passwords
    /// apart without storing anything from which the password could be guessed offline.
    pub fn tag(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.tag_key, secret.as_bytes()))
    }

    /// Encrypts `password`; two calls with the same input give different bytes.
    ///
    /// Fails only when the system has no randomness.
    pub fn seal(&self, password: &Secret<String>) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CipherError::Random)?;
        let mut sealed = password.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| CipherError::Random)?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(stored)
    }

    /// Decrypts what [`PasswordCipher::seal`] produced.
    ///
    /// Fails when the key is wrong or the bytes were altered.
    pub fn open(&self, stored: &[u8]) -> Result<Secret<String>, CipherError> {
        if stored.len() < NONCE_LEN {
            return Err(CipherError::Open);
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Open)?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| CipherError::Open)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| CipherError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> PasswordCipher {
        PasswordCipher::new(&Secret::new(vec![byte; 32])).unwrap()
    }

    #[test]
    fn seals_with_a_fresh_nonce_and_opens() {
        let cipher = cipher(7);
        let password = Secret::new("hunter2".to_string());
        let first = cipher.seal(&password).unwrap();
        let second = cipher.seal(&password).unwrap();
        assert_ne!(first, second);
        assert!(!first.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(cipher.open(&first).unwrap().expose(), "hunter2");
    }

    #[test]
    fn tags_are_keyed() {
        assert_eq!(cipher(1).tag("hunter2"), cipher(1).tag("hunter2"));
        assert_ne!(cipher(1).tag("hunter2"), cipher(2).tag("hunter2"));
        assert_ne!(cipher(1).tag("hunter2"), cipher(1).tag("hunter3"));
        assert!(!cipher(1).tag("hunter2").contains("hunter2"));
    }

    #[test]
    fn wrong_key_or_tampering_fails() {
        let sealed = cipher(1).seal(&Secret::new("pw".to_string())).unwrap();
        assert!(cipher(2).open(&sealed).is_err());
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(cipher(1).open(&altered).is_err());
        assert!(PasswordCipher::new(&Secret::new(vec![0; 16])).is_err());
    }
}
