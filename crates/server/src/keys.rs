//! The control plane's keys: from settings, derived from a key file every replica is given, or
//! (for a single control plane) generated once into its data directory. See ADR 0030.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use streamspace_store::Store;
use streamspace_store::audit::AuditKey;

use crate::config::Config;

/// Reads the 32-byte key in `data_dir/name`, creating it (mode 0600) on first use.
pub fn load_or_create(data_dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(name);
    if let Some(key) = read(&path)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    write_private(&path, &key)?;
    Ok(key)
}

/// Creates `path` (mode 0600) holding `secret`; an existing file is never overwritten.
pub fn write_private(path: &Path, secret: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(secret)?;
    Ok(())
}

/// The 32-byte key in `path`, if there is one.
fn read(path: &Path) -> anyhow::Result<Option<[u8; 32]>> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key; remove it to regenerate", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::anyhow!("cannot read {}: {err}", path.display())),
    }
}

const AUDIT_KEY_FILE: &str = "audit.key";

/// A key file shorter than this is refused: it is the root of every other key.
const MIN_KEY_FILE_BYTES: usize = 32;

/// The keys every replica must share: a replica with another one would reject the others'
/// tokens and cookies, fail to open what they sealed and fork the audit chain.
pub struct Keys {
    pub jwt: Vec<u8>,
    pub seal: [u8; 32],
    pub session: [u8; 32],
    pub audit: AuditKey,
}

impl Keys {
    /// Each key from its own setting, else derived from the key file, else read from (or created
    /// in) the data directory.
    pub fn load(config: &Config) -> anyhow::Result<Keys> {
        let root = config.key_file.as_deref().map(read_key_file).transpose()?;
        let key = |name: &str, file: &str| match &root {
            Some(root) => Ok(derive(root, name)),
            None => load_or_create(&config.data_dir, file),
        };
        Ok(Keys {
            jwt: match &config.jwt_secret {
                Some(secret) => secret.as_bytes().to_vec(),
                None => key("jwt", "jwt.key")?.to_vec(),
            },
            seal: key("seal", "seal.key")?,
            session: key("session", "session.key")?,
            audit: match &config.audit_key {
                Some(audit) => audit.clone(),
                None => AuditKey::new(key("audit", AUDIT_KEY_FILE)?),
            },
        })
    }

    /// `(name, fingerprint)` of each key: an HMAC under the key, which reveals nothing of it.
    pub fn fingerprints(&self) -> Vec<(String, String)> {
        let of = |key: &[u8]| crate::auth::secrets::hmac_hex(key, FINGERPRINT_MESSAGE);
        vec![
            ("jwt".to_owned(), of(&self.jwt)),
            ("seal".to_owned(), of(&self.seal)),
            ("session".to_owned(), of(&self.session)),
            ("audit".to_owned(), self.audit.fingerprint()),
        ]
    }

    /// Refuses to go on with keys other than those the database was first used with (by this
    /// process before a restart, or by another replica).
    pub async fn check_shared(&self, store: &dyn Store, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
        let differing = store.check_key_fingerprints(&self.fingerprints(), now).await?;
        anyhow::ensure!(
            differing.is_empty(),
            "refusing to start: this control plane's {} key(s) differ from those the database was first used \
             with. Every replica must be given the same keys: the same --key-file (STREAMSPACE_KEY_FILE) \
             everywhere, or the same individual settings; keys generated into a replica's own data directory \
             cannot be shared",
            differing.join(", ")
        );
        Ok(())
    }
}

const FINGERPRINT_MESSAGE: &[u8] = b"streamspace key fingerprint";

/// The key named `name` under the key file's secret.
fn derive(root: &[u8], name: &str) -> [u8; 32] {
    crate::auth::secrets::hmac_sha256(root, format!("streamspace key: {name}").as_bytes())
}

/// The key file's secret, without the line end an editor adds.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).map_err(|err| anyhow::anyhow!("cannot read the key file {}: {err}", path.display()))?;
    let secret = bytes.trim_ascii_end().to_vec();
    anyhow::ensure!(
        secret.len() >= MIN_KEY_FILE_BYTES,
        "the key file {} holds {} bytes; it needs at least {MIN_KEY_FILE_BYTES} (e.g. `openssl rand -hex 32`)",
        path.display(),
        secret.len()
    );
    Ok(secret)
}

/// The key to verify the audit chain with. Never created: a new key could only report every link
/// as broken.
pub fn existing_audit_key(config: &Config) -> anyhow::Result<AuditKey> {
    if let Some(key) = &config.audit_key {
        return Ok(key.clone());
    }
    if let Some(file) = &config.key_file {
        return Ok(AuditKey::new(derive(&read_key_file(file)?, "audit")));
    }
    let path = config.data_dir.join(AUDIT_KEY_FILE);
    read(&path)?.map(AuditKey::new).ok_or_else(|| {
        anyhow::anyhow!(
            "no audit key: {} does not exist; point --data-dir at the control plane's data directory or set \
             STREAMSPACE_AUDIT_KEY or STREAMSPACE_KEY_FILE",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), "k").unwrap();
        assert_eq!(load_or_create(dir.path(), "k").unwrap(), first);
        assert_ne!(load_or_create(dir.path(), "other").unwrap(), first);
    }

    #[test]
    fn the_audit_key_comes_from_the_setting_or_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let missing = existing_audit_key(&config).unwrap_err().to_string();
        assert!(missing.contains("no audit key"), "{missing}");
        assert!(!dir.path().join(AUDIT_KEY_FILE).exists(), "verifying does not create a key");
        Keys::load(&config).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        existing_audit_key(&config).unwrap();
        config.audit_key = Some(AuditKey::from_setting(&"s".repeat(32)).unwrap());
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        Keys::load(&config).unwrap();
        assert!(!dir.path().join(AUDIT_KEY_FILE).exists(), "a configured key is not written to disk");
    }

    #[test]
    fn a_key_file_gives_every_replica_the_same_distinct_keys_and_nothing_on_disk() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), format!("{}\n", "k".repeat(40))).unwrap();
        let replica = |dir: &Path| Config {
            data_dir: dir.to_owned(),
            key_file: Some(secret.path().to_owned()),
            ..Config::default()
        };
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (Keys::load(&replica(one.path())).unwrap(), Keys::load(&replica(two.path())).unwrap());
        assert_eq!(a.fingerprints(), b.fingerprints());
        assert_eq!(std::fs::read_dir(one.path()).unwrap().count(), 0, "no key is generated into the data directory");
        let distinct: std::collections::HashSet<_> = a.fingerprints().into_iter().map(|(_, print)| print).collect();
        assert_eq!(distinct.len(), 4, "each key is its own");
        assert_eq!(
            existing_audit_key(&replica(one.path())).unwrap().fingerprint(),
            a.audit.fingerprint(),
            "verification derives the same audit key"
        );
        // Without the file, each data directory generates its own keys: they differ.
        let alone = |dir: &Path| Keys::load(&Config { data_dir: dir.to_owned(), ..Config::default() }).unwrap();
        assert_ne!(alone(one.path()).fingerprints(), alone(two.path()).fingerprints());
    }

    #[test]
    fn a_short_key_file_is_refused() {
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "short\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config =
            Config { data_dir: dir.path().to_owned(), key_file: Some(secret.path().to_owned()), ..Config::default() };
        let refused = Keys::load(&config).err().unwrap().to_string();
        assert!(refused.contains("at least 32"), "{refused}");
    }
}
