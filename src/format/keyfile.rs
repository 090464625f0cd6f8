//! Key files: the master key wrapped under a password (format-spec/keys.md).

use serde::{Deserialize, Serialize};

use crate::crypto::{self, KdfParams, MasterKey, SecretKey};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{RepoId, label};

/// Key files larger than this are rejected unread.
pub const MAX_LEN: usize = 64 << 10;
const AD_PREFIX: &[u8] = b"coffre key v1\0";
const WRAPPED_LEN: usize = crypto::NONCE_LEN + 32 + crypto::TAG_LEN;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    /// 32 hex digits (16 bytes), also the file name.
    pub id: String,
    pub created: String,
    pub host: String,
    pub user: String,
    pub kdf: KdfParams,
    /// hex(nonce[24] || ciphertext[32] || tag[16])
    pub wrapped: String,
}

impl KeyFile {
    /// Wrap `master` under `password` in a new key file. `fixed` (nonce, id)
    /// is for test vectors only; production code passes None.
    pub fn create(
        repo_id: &RepoId,
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
        host: &str,
        user: &str,
        fixed: Option<([u8; 24], [u8; 16])>,
    ) -> Result<KeyFile> {
        let (nonce, id) = match fixed {
            Some((n, i)) => (Some(n), Some(i)),
            None => (None, None),
        };
        let id = hex::encode(id.unwrap_or_else(crypto::random_array::<16>));
        let kek = crypto::derive_kek(password, &kdf)?;
        let nonce = nonce.unwrap_or_else(crypto::random_array);
        let mut buf = *master.0.expose();
        let tag = crypto::seal_in_place(&kek, &nonce, &ad(repo_id, &id), &mut buf);
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&buf);
        wrapped.extend_from_slice(&tag);
        zeroize::Zeroize::zeroize(&mut buf);
        Ok(KeyFile {
            version: 1,
            id,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: label::clean(host, label::MAX_LABEL),
            user: label::clean(user, label::MAX_LABEL),
            kdf,
            wrapped: hex::encode(wrapped),
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<KeyFile> {
        if bytes.len() > MAX_LEN {
            return Err(Error::corrupt(format!(
                "key file is {} bytes, more than {MAX_LEN}",
                bytes.len()
            )));
        }
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| {
            let e = e.to_string();
            Error::corrupt(format!("key file is not valid: {}", label::shown(&e)))
        })?;
        kf.check()?;
        Ok(kf)
    }

    /// Structural checks, all done before the expensive KDF runs.
    pub fn check(&self) -> Result<()> {
        if self.version != 1 {
            return Err(Error::corrupt(format!(
                "key file version {} is not supported",
                self.version
            )));
        }
        if self.id.len() != 32 || hex::decode(&self.id).is_err() {
            return Err(Error::corrupt("key file id must be 32 hex digits"));
        }
        // shown by `key list`, and the storage may have written them
        label::check("key file host", &self.host, label::MAX_LABEL)?;
        label::check("key file user", &self.user, label::MAX_LABEL)?;
        label::check("key file creation time", &self.created, label::MAX_TIME)?;
        if self.wrapped.len() != WRAPPED_LEN * 2 || hex::decode(&self.wrapped).is_err() {
            return Err(Error::corrupt(format!(
                "key file wrapped key must be {} hex digits",
                WRAPPED_LEN * 2
            )));
        }
        self.kdf.check()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("key file serializes");
        v.push(b'\n');
        v
    }

    /// Unwrap the master key. A wrong password gives [`ErrorKind::WrongPassword`].
    pub fn unwrap(&self, repo_id: &RepoId, password: &[u8]) -> Result<MasterKey> {
        self.check()?;
        let wrapped = hex::decode(&self.wrapped).expect("checked");
        let kek = crypto::derive_kek(password, &self.kdf)?;
        let nonce: [u8; 24] = wrapped[..24].try_into().unwrap();
        let mut buf: [u8; 32] = wrapped[24..56].try_into().unwrap();
        let tag: [u8; 16] = wrapped[56..].try_into().unwrap();
        crypto::open_in_place(&kek, &nonce, &ad(repo_id, &self.id), &mut buf, &tag)
            .map_err(|_| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        Ok(MasterKey(SecretKey::from_bytes(buf)))
    }
}

fn ad(repo_id: &RepoId, key_id_hex: &str) -> Vec<u8> {
    let mut ad = AD_PREFIX.to_vec();
    ad.extend_from_slice(&repo_id.0);
    ad.extend_from_slice(&hex::decode(key_id_hex).unwrap_or_default());
    ad
}
