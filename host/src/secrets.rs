//! Secrets at rest: AES-256-GCM with a key id stored beside each ciphertext.
//!
//! The key comes from `PLUGBOARD_ENCRYPTION_KEY` (base64 of 32 bytes) or, when that is unset,
//! from a key file created in the data directory on first start (mode 0600). Older keys
//! listed in `PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS` (comma-separated) still decrypt, so a key is
//! rotated by moving it there and setting a new one; secrets are re-encrypted with the new
//! key when next written. A key's id is a fingerprint (the first 8 bytes of its SHA-256),
//! which names the key without revealing it.
//!
//! Each ciphertext is bound to its connection id as associated data, so a ciphertext copied
//! onto another connection's row fails to decrypt instead of lending it the password.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Why keys could not be loaded or a secret not opened. No variant carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A configured key is not base64 of 32 bytes.
    #[error("{source_name} is not a base64-encoded 32-byte key")]
    BadKey {
        /// Where the key came from (an environment variable or a file), never the key.
        source_name: String,
    },
    /// The key file could not be read or created.
    #[error("key file {path}: {error}")]
    KeyFile {
        /// The key file's path.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The secret was encrypted with a key this process does not have.
    #[error(
        "the secret was encrypted with key {0}, which is not configured (set it in PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS)"
    )]
    UnknownKey(String),
    /// The ciphertext failed authentication: it was altered, or belongs to another row.
    #[error("the stored secret failed authentication (altered or moved)")]
    Tampered,
}

/// An encrypted secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Fingerprint of the key that sealed it.
    pub key_id: String,
    /// The 96-bit GCM nonce, random per seal.
    pub nonce: Vec<u8>,
    /// Ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// Where the current key came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `PLUGBOARD_ENCRYPTION_KEY`.
    Environment,
    /// An existing key file.
    File(PathBuf),
    /// A key file created just now.
    NewFile(PathBuf),
}

/// Seals and opens secrets. Holds the current key and any previous ones.
pub struct SecretBox {
    current: String,
    ciphers: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("current_key_id", &self.current)
            .field("key_ids", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The name of the key file in the data directory.
pub const KEY_FILE_NAME: &str = "encryption.key";

fn key_id(key: &[u8; 32]) -> String {
    Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_key(text: &str, source_name: &str) -> Result<[u8; 32], SecretError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| SecretError::BadKey {
            source_name: source_name.to_owned(),
        })
}

impl SecretBox {
    /// A box whose current key is `key`, which also opens secrets sealed with `previous`.
    pub fn new(key: [u8; 32], previous: &[[u8; 32]]) -> SecretBox {
        let mut ciphers = HashMap::new();
        for k in previous.iter().chain(std::iter::once(&key)) {
            ciphers.insert(key_id(k), Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k)));
        }
        SecretBox {
            current: key_id(&key),
            ciphers,
        }
    }

    /// Loads the keys: the current one from `env_key` if given, else from the key file in
    /// `data_dir`, creating it (mode 0600) if it does not exist.
    pub fn load(
        env_key: Option<&str>,
        previous_keys: Option<&str>,
        data_dir: &Path,
    ) -> Result<(SecretBox, KeySource), SecretError> {
        let previous: Vec<[u8; 32]> = previous_keys
            .unwrap_or("")
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode_key(k, "PLUGBOARD_PREVIOUS_ENCRYPTION_KEYS"))
            .collect::<Result<_, _>>()?;
        if let Some(text) = env_key.filter(|k| !k.trim().is_empty()) {
            let key = decode_key(text, "PLUGBOARD_ENCRYPTION_KEY")?;
            return Ok((SecretBox::new(key, &previous), KeySource::Environment));
        }
        let path = data_dir.join(KEY_FILE_NAME);
        let file_error = |error| SecretError::KeyFile {
            path: path.clone(),
            error,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_key(&text, &path.display().to_string())?;
                Ok((SecretBox::new(key, &previous), KeySource::File(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(file_error)?;
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                file.write_all(format!("{text}\n").as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(file_error)?;
                Ok((SecretBox::new(key, &previous), KeySource::NewFile(path)))
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// The current key's id.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `plaintext` for the row identified by `bound_to`.
    pub fn seal(&self, plaintext: &str, bound_to: &str) -> SealedSecret {
        let cipher = &self.ciphers[&self.current];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            // Only fails for plaintexts over 64 GiB.
            .expect("AES-GCM encryption of a short secret");
        SealedSecret {
            key_id: self.current.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts a secret sealed for the row identified by `bound_to`.
    pub fn open(&self, sealed: &SealedSecret, bound_to: &str) -> Result<String, SecretError> {
        let cipher = self
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.nonce.len() != 12 {
            return Err(SecretError::Tampered);
        }
        let plaintext = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_its_row() {
        let secrets = SecretBox::new([7; 32], &[]);
        let sealed = secrets.seal("s3cret-pw", "row-1");
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"s3cret-pw"));
        assert_eq!(secrets.open(&sealed, "row-1").unwrap(), "s3cret-pw");
        assert!(matches!(
            secrets.open(&sealed, "row-2"),
            Err(SecretError::Tampered)
        ));
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert!(matches!(
            secrets.open(&altered, "row-1"),
            Err(SecretError::Tampered)
        ));
        // Two seals of the same secret differ (random nonces).
        assert_ne!(
            secrets.seal("s3cret-pw", "row-1").ciphertext,
            sealed.ciphertext
        );
    }

    #[test]
    fn rotated_keys_still_open_old_secrets() {
        let old = SecretBox::new([1; 32], &[]);
        let sealed = old.seal("pw", "row");
        let rotated = SecretBox::new([2; 32], &[[1; 32]]);
        assert_eq!(rotated.open(&sealed, "row").unwrap(), "pw");
        assert_ne!(rotated.seal("pw", "row").key_id, sealed.key_id);
        let forgotten = SecretBox::new([2; 32], &[]);
        assert!(
            matches!(forgotten.open(&sealed, "row"), Err(SecretError::UnknownKey(id)) if id == sealed.key_id)
        );
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = SecretBox::load(None, None, dir.path()).unwrap();
        assert!(matches!(source, KeySource::NewFile(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = SecretBox::load(None, None, dir.path()).unwrap();
        assert!(matches!(source, KeySource::File(_)));
        assert_eq!(first.current_key_id(), second.current_key_id());
        let sealed = first.seal("pw", "r");
        assert_eq!(second.open(&sealed, "r").unwrap(), "pw");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let err =
            SecretBox::load(Some("bm90LWEta2V5"), None, Path::new("/nonexistent")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("PLUGBOARD_ENCRYPTION_KEY"));
        assert!(!message.contains("bm90LWEta2V5"));
    }
}
