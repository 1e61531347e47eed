//! Password hashing: argon2id with OWASP's parameters, off the async
//! workers and with bounded concurrency.
//!
//! One hash takes tens of milliseconds of CPU and 19 MiB of memory, by
//! design. Run on a tokio worker, a few concurrent sign-ins would stall
//! message delivery on every connection that worker serves; so hashes run
//! on threads of their own, at most `concurrency` at once (one per core by
//! default), and those threads run at the lowest CPU priority (nice 19):
//! when a core is wanted both for delivering messages and for hashing, the
//! messages win. Callers beyond `concurrency` wait, up to `QUEUE_PATIENCE`,
//! then get "busy" instead of piling up: a sign-in flood costs sign-ins
//! latency, not chat.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// How long a sign-in waits for a hashing slot before it is refused.
const QUEUE_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many sign-ins at once; try again shortly")]
    Busy,
    #[error("hashing failed: {0}")]
    Failed(String),
}

type Job = Box<dyn FnOnce() + Send>;

pub struct Passwords {
    slots: Arc<Semaphore>,
    /// To the hashing threads; they end when this is dropped.
    jobs: std::sync::mpsc::Sender<Job>,
    /// A hash of a password nobody knows: checked when the user does not
    /// exist, so a wrong username costs the same time as a wrong password.
    decoy: String,
    /// Argon2 verifications run so far (decoys included).
    verifications: std::sync::atomic::AtomicU64,
}

/// argon2id, m = 19 MiB, t = 2, p = 1: OWASP's first recommendation.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Failed(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    // A stored hash with other parameters (an older policy) still verifies:
    // the PHC string carries its own.
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl Passwords {
    /// `concurrency` 0 means one hash at a time per core.
    pub fn new(concurrency: usize) -> Passwords {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            concurrency
        };
        let decoy = hash_now(&crate::auth::new_secret("")).expect("hashing works");
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("hearth-hash".into())
                .spawn(move || {
                    if let Err(err) = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    ) {
                        tracing::debug!(?err, "could not lower the hashing thread's priority");
                    }
                    loop {
                        // The semaphore keeps at most one job per thread
                        // in flight, so this lock is never contended long.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a thread for password hashing");
        }
        Passwords {
            slots: Arc::new(Semaphore::new(concurrency)),
            jobs,
            decoy,
            verifications: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many verifications have run: one per password sign-in, whether
    /// or not the user exists.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`. Without a hash (no such user, or a
    /// guest), checks against the decoy and answers false, in the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_owned();
        let password = password.to_owned();
        let matches = self.run(move || verify_now(&password, &hash)).await?;
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(QUEUE_PATIENCE, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
                drop(permit);
            }))
            .map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        answer
            .await
            .map_err(|_| HashError::Failed("a hashing thread panicked".into()))
    }
}

/// Common passwords of 10 characters or more (shorter ones are refused by
/// length): the top of the public breach lists. Compared lowercased.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "1234567890a",
    "0123456789",
    "0987654321",
    "1111111111",
    "0000000000",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwertyuiop123",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "asdfghjkl1",
    "asdfghjkl123",
    "zxcvbnm123",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password!1",
    "passw0rd123",
    "p@ssw0rd123",
    "iloveyou12",
    "iloveyou123",
    "iloveyou1234",
    "letmein123",
    "welcome123",
    "welcome1234",
    "sunshine123",
    "princess123",
    "football123",
    "baseball123",
    "superman123",
    "starwars123",
    "dragon1234",
    "monkey1234",
    "abc1234567",
    "abcd123456",
    "abcdefghij",
    "abcdefg123",
    "a123456789",
    "aa12345678",
    "changeme123",
    "administrator",
    "admin12345",
    "admin123456",
    "trustno1234",
    "123qweasdzxc",
    "qazwsxedcrfv",
    "1q2w3e4r5t6y",
    "11223344556",
    "1122334455",
    "9876543210",
    "123123123123",
    "1234512345",
    "12341234",
    "loveyou123",
    "hearth1234",
    "hearthchat",
    "chatpassword",
];

/// Why a new password is refused, if it is.
pub fn weakness(password: &str, username: &str) -> Option<&'static str> {
    if let Err(why) = common::validate::password_length(password) {
        return Some(why);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Some("this password is too common; choose another");
    }
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if distinct.len() < 4 {
        return Some("this password repeats too few characters");
    }
    if !username.is_empty() && lower.contains(username) {
        return Some("the password must not contain the username");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        assert!(weakness("short", "bob").is_some());
        assert!(weakness("Password123", "bob").is_some());
        assert!(weakness("aaaaaaaaaaaa", "bob").is_some());
        assert!(weakness("bob-is-great-99", "bob").is_some());
        assert!(weakness("correct horse battery", "bob").is_none());
    }

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let passwords = Passwords::new(1);
        let a = passwords.hash("correct horse battery").await.unwrap();
        let b = passwords.hash("correct horse battery").await.unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse battery", Some(&a))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong horse", Some(&a)).await.unwrap());
        assert!(
            !passwords
                .verify("correct horse battery", None)
                .await
                .unwrap()
        );
    }
}
