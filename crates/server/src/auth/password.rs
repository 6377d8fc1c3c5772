//! argon2id password hashing.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

pub const MIN_PASSWORD_LEN: usize = 8;

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

pub async fn verify_off_thread(password: String, phc: String) -> bool {
    on_worker(move || verify(&password, &phc)).await.unwrap_or(false)
}

pub async fn hash_off_thread(password: String) -> anyhow::Result<String> {
    on_worker(move || hash(&password)).await.ok_or_else(|| anyhow::anyhow!("the password hashing thread is gone"))?
}

pub fn validate_new(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("password must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".to_owned());
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

    #[test]
    fn short_passwords_are_rejected() {
        assert!(validate_new("short").is_err());
        assert!(validate_new("long enough").is_ok());
    }
}
