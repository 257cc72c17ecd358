//! One lock per run (`<results>/<suite>/<run id>.lock`), so two `harness run` on one results
//! folder never compute the same run twice: the second skips what the first holds and reuses
//! it when done. The lock holds its holder's pid and host and is refreshed every 30 s; a lock
//! whose process is gone (same host) or that has not been refreshed for 5 minutes (another
//! host on a shared folder) is stale and taken over with a message.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const HEARTBEAT: Duration = Duration::from_secs(30);
const STALE: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since_utc: String,
}

impl Holder {
    fn describe(&self) -> String {
        format!("pid {} on {} since {}", self.pid, self.host, self.since_utc)
    }
}

/// A held lock; dropping it releases it.
pub struct RunLock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

pub enum Acquire {
    Held(RunLock),
    /// Another live process holds it (who).
    Busy(String),
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn alive(pid: u32) -> bool {
    // Linux: a live process has a /proc entry. Elsewhere, assume alive and rely on the heartbeat.
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Why the lock at `path` (held by `holder`, last refreshed at `mtime`) is stale, if it is.
fn stale(holder: Option<&Holder>, mtime: Option<SystemTime>) -> Option<String> {
    let age = mtime.and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default();
    match holder {
        Some(h) if h.host == host() && !alive(h.pid) => Some(format!("its process ({}) is gone", h.describe())),
        _ if age > STALE => Some(format!("it was not refreshed for {} s", age.as_secs())),
        _ => None,
    }
}

/// Who holds the lock at `path`, when a live process does.
pub fn holder(path: &Path) -> Option<String> {
    let holder: Option<Holder> = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    stale(holder.as_ref(), Some(mtime)).is_none().then(|| holder.map_or("a process starting up".into(), |h| h.describe()))
}

pub fn try_acquire(path: &Path) -> std::io::Result<Acquire> {
    for _ in 0..3 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                use std::io::Write;
                let me = Holder { pid: std::process::id(), host: host(), since_utc: crate::artifacts::utc_now() };
                f.write_all(serde_json::to_string(&me).expect("serializes").as_bytes())?;
                f.sync_all()?;
                let stop = Arc::new(AtomicBool::new(false));
                let (flag, p) = (stop.clone(), path.to_path_buf());
                std::thread::spawn(move || {
                    let mut waited = Duration::ZERO;
                    while !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(200));
                        waited += Duration::from_millis(200);
                        if waited >= HEARTBEAT {
                            waited = Duration::ZERO;
                            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p) {
                                let _ = f.set_modified(SystemTime::now());
                            }
                        }
                    }
                });
                return Ok(Acquire::Held(RunLock { path: path.to_path_buf(), stop }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder: Option<Holder> = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok());
                let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                match stale(holder.as_ref(), mtime) {
                    Some(why) => {
                        eprintln!("  taking over the stale lock {}: {why}", path.display());
                        let _ = std::fs::remove_file(path);
                    }
                    None => return Ok(Acquire::Busy(holder.map_or("a process starting up".into(), |h| h.describe()))),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Acquire::Busy("another process (the lock changed hands while taking it over)".into()))
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Only our own lock: a takeover may have replaced it.
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
            .is_some_and(|h| h.pid == std::process::id() && h.host == host());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_a_dead_ones_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.lock");
        let Acquire::Held(lock) = try_acquire(&p).unwrap() else { panic!("free lock not taken") };
        assert!(matches!(try_acquire(&p).unwrap(), Acquire::Busy(who) if who.contains(&format!("pid {}", std::process::id()))));
        drop(lock);
        assert!(!p.exists(), "released on drop");
        // A lock of a process that is gone (pid beyond pid_max) on this host is stale.
        std::fs::write(&p, serde_json::to_string(&Holder { pid: 99_999_999, host: host(), since_utc: "then".into() }).unwrap()).unwrap();
        assert!(matches!(try_acquire(&p).unwrap(), Acquire::Held(_)));
        // Another host's lock, refreshed just now, is respected.
        std::fs::write(&p, serde_json::to_string(&Holder { pid: 1, host: "elsewhere".into(), since_utc: "now".into() }).unwrap()).unwrap();
        assert!(matches!(try_acquire(&p).unwrap(), Acquire::Busy(_)));
    }
}
