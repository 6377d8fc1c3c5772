//! argon2id password hashing.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::{Algorithm, Argon2, Params, Version};

pub const MIN_PASSWORD_LEN: usize = 8;
/// Longer passwords are refused before hashing: argon2's first pass reads all of it.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    let hash = argon2().hash_password(password.as_bytes()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// argon2 is deliberately slow and takes 19 MiB per hash: all of it runs on one dedicated thread,
/// off the async workers. One thread keeps the memory in one allocator arena, reused hash after hash
/// (spread over a thread pool, every thread's arena kept its own 19 MiB), and bounds how much CPU a
/// flood of logins can take.
fn worker() -> &'static std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>> {
    static WORKER: std::sync::OnceLock<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>> = std::sync::OnceLock::new();
    WORKER.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("argon2".to_owned())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .expect("the password hashing thread starts");
        jobs
    })
}

async fn on_worker<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    worker()
        .send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .ok()?;
    answer.await.ok()
}

/// Sign-in verifications, queued to the argon2 thread up to a bound: past it a flood is refused
/// at once instead of making every sign-in behind it wait.
pub struct VerifyQueue {
    limit: usize,
    counters: Arc<QueueCounters>,
}

#[derive(Default)]
struct QueueCounters {
    /// Verifications queued or running.
    queued: AtomicUsize,
    /// Verifications argon2 has actually run.
    performed: AtomicU64,
}

/// The queue holds as many verifications as it may.
#[derive(Debug)]
pub struct QueueFull;

/// Holds one place in the queue; the place is given back when the job has run, or when it is
/// dropped without running.
struct QueuePlace(Arc<QueueCounters>);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

impl VerifyQueue {
    pub fn new(limit: usize) -> VerifyQueue {
        VerifyQueue { limit, counters: Arc::default() }
    }

    pub async fn verify(&self, password: String, phc: String) -> Result<bool, QueueFull> {
        let place = self.enter().ok_or(QueueFull)?;
        let verified = on_worker(move || {
            place.0.performed.fetch_add(1, Ordering::SeqCst);
            metrics::counter!("streamspace_login_password_verifications_total").increment(1);
            verify(&password, &phc)
        });
        Ok(verified.await.unwrap_or(false))
    }

    fn enter(&self) -> Option<QueuePlace> {
        let queued = &self.counters.queued;
        queued.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.limit).then_some(n + 1)).ok()?;
        Some(QueuePlace(self.counters.clone()))
    }

    /// How many verifications argon2 has run for this queue.
    pub fn performed(&self) -> u64 {
        self.counters.performed.load(Ordering::SeqCst)
    }
}

pub async fn hash_off_thread(password: String) -> anyhow::Result<String> {
    on_worker(move || hash(&password)).await.ok_or_else(|| anyhow::anyhow!("the password hashing thread is gone"))?
}

pub fn validate_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("password must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("password must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse", &a));
        assert!(!verify("wrong horse", &a));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[tokio::test]
    async fn the_queue_refuses_past_its_bound_and_frees_its_places() {
        let phc = hash("correct horse").unwrap();
        let queue = VerifyQueue::new(2);
        let verifications: Vec<_> = (0..4).map(|_| queue.verify("wrong horse".to_owned(), phc.clone())).collect();
        let outcomes = futures::future::join_all(verifications).await;
        // The futures enter the queue when first polled, all before the first one finishes.
        assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 2, "{outcomes:?}");
        assert_eq!(queue.performed(), 2);
        assert!(queue.verify("correct horse".to_owned(), phc).await.unwrap());
        assert_eq!(queue.performed(), 3);
    }

    #[test]
    fn short_passwords_are_rejected() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("long enough").is_ok());
    }
}
