//! The `file` lease: a small file on storage every agent of the group can lock (a local disk for two agents on
//! one host, or a shared file system), read and rewritten under an exclusive lock held for microseconds.
//!
//! The lock alone would not do: a paused leader keeps its lock forever, so a standby could never take over.
//! The file holds a term with an expiry instead, and the lock only makes each read-and-write atomic.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;

use super::{Holding, Lease, unix_millis};

/// How long to wait for another agent's read-and-write to finish before calling the file busy.
const LOCK_WAIT: Duration = Duration::from_secs(1);
const LOCK_POLL: Duration = Duration::from_millis(5);

/// A lease in one file.
pub struct FileLease {
    path: PathBuf,
}

/// What one locked read-and-write saw and did.
struct Update {
    read: Holding,
    written: Option<Holding>,
}

impl FileLease {
    pub fn new(path: impl Into<PathBuf>) -> FileLease {
        FileLease { path: path.into() }
    }

    /// Reads the holding under the lock and writes what `change` makes of it, if anything.
    async fn update<F>(&self, change: F) -> anyhow::Result<Update>
    where
        F: FnOnce(&Holding, u64) -> Option<Holding> + Send + 'static,
    {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || update_locked(&path, change))
            .await
            .context("the lease file task panicked")?
            .with_context(|| format!("lease file {}", self.path.display()))
    }
}

fn update_locked(path: &Path, change: impl FnOnce(&Holding, u64) -> Option<Holding>) -> anyhow::Result<Update> {
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    lock(&file)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let read = parse(&text)?;
    let written = change(&read, unix_millis());
    if let Some(next) = &written {
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(render(next).as_bytes())?;
        file.sync_data()?;
    }
    Ok(Update { read, written })
}

/// Takes the file's exclusive lock, waiting a little for another agent's update; the lock goes with the file.
fn lock(file: &File) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL)
            }
            Err(std::fs::TryLockError::WouldBlock) => bail!("another agent holds the lock longer than {LOCK_WAIT:?}"),
            Err(std::fs::TryLockError::Error(error)) => return Err(error.into()),
        }
    }
}

/// The file's format: one `key=value` line per field of the [`Holding`]; an empty file is a lease never taken.
fn parse(text: &str) -> anyhow::Result<Holding> {
    let mut holding = Holding::default();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (key, value) = line.split_once('=').with_context(|| format!("malformed lease line {line:?}"))?;
        match key {
            "epoch" => holding.epoch = value.parse().context("malformed epoch")?,
            "holder" => value.clone_into(&mut holding.holder),
            "expires_ms" => holding.expires_ms = value.parse().context("malformed expiry")?,
            _ => {}
        }
    }
    Ok(holding)
}

fn render(holding: &Holding) -> String {
    format!("epoch={}\nholder={}\nexpires_ms={}\n", holding.epoch, holding.holder, holding.expires_ms)
}

#[async_trait]
impl Lease for FileLease {
    async fn acquire(&self, holder: &str, ttl: Duration) -> anyhow::Result<Option<u64>> {
        let holder = holder.to_owned();
        let update = self.update(move |current, now| current.acquired(&holder, ttl, now)).await?;
        Ok(update.written.map(|taken| taken.epoch))
    }

    async fn renew(&self, holder: &str, epoch: u64, ttl: Duration) -> anyhow::Result<bool> {
        let holder = holder.to_owned();
        let update = self.update(move |current, now| current.renewed(&holder, epoch, ttl, now)).await?;
        Ok(update.written.is_some())
    }

    async fn release(&self, holder: &str, epoch: u64) -> anyhow::Result<()> {
        let holder = holder.to_owned();
        self.update(move |current, _| current.released(&holder, epoch)).await?;
        Ok(())
    }

    async fn latest_epoch(&self) -> anyhow::Result<u64> {
        Ok(self.update(|_, _| None).await?.read.epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_reads_back_what_was_written_and_a_damaged_one_is_an_error() {
        let holding = Holding { epoch: 7, holder: "host-a-12".into(), expires_ms: 1_800_000_000_000 };
        assert_eq!(parse(&render(&holding)).unwrap(), holding);
        assert_eq!(parse("").unwrap(), Holding::default(), "a new file: no term yet");
        assert!(parse("epoch=x\n").is_err());
        assert!(parse("garbage\n").is_err());
    }
}
