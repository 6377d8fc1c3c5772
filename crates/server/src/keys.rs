//! Secrets the control plane generates once and keeps in its data directory.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
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

/// The key the control plane links the audit chain with: the setting, else `audit.key` in the
/// data directory (created on first use).
pub fn audit_key(config: &Config) -> anyhow::Result<AuditKey> {
    match &config.audit_key {
        Some(key) => Ok(key.clone()),
        None => Ok(AuditKey::new(load_or_create(&config.data_dir, AUDIT_KEY_FILE)?)),
    }
}

/// The key to verify the audit chain with. Never created: a new key could only report every link
/// as broken.
pub fn existing_audit_key(config: &Config) -> anyhow::Result<AuditKey> {
    if let Some(key) = &config.audit_key {
        return Ok(key.clone());
    }
    let path = config.data_dir.join(AUDIT_KEY_FILE);
    read(&path)?.map(AuditKey::new).ok_or_else(|| {
        anyhow::anyhow!(
            "no audit key: {} does not exist; point --data-dir at the control plane's data directory or set \
             STREAMSPACE_AUDIT_KEY",
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
        audit_key(&config).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(AUDIT_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        existing_audit_key(&config).unwrap();
        config.audit_key = Some(AuditKey::from_setting(&"s".repeat(32)).unwrap());
        std::fs::remove_file(dir.path().join(AUDIT_KEY_FILE)).unwrap();
        audit_key(&config).unwrap();
        assert!(!dir.path().join(AUDIT_KEY_FILE).exists(), "a configured key is not written to disk");
    }
}
