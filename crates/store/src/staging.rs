//! Temporary files that belong to one process.
//!
//! Every process keeps its temporary files (uploads being received, blobs
//! being staged, copies fetched from S3) in a directory of its own, named
//! `PID-STARTTIME-CONTEXT`: the process id, its start time (clock ticks
//! after boot, from `/proc`) and a digest of the boot id, the PID namespace
//! and the host name. Opening a store or running an admin command removes
//! nothing; only `tintype serve` sweeps at start ([`remove_stale`]), and it
//! removes only what no live process owns:
//!
//! - a directory of this machine and PID namespace (same context) whose
//!   process is gone, or runs with another start time (a reused PID);
//! - anything else (another host or container sharing the directory, a
//!   system without `/proc`, files left by older versions) once nothing in
//!   it has been written for [`FOREIGN_MAX_AGE`]: a live upload writes its
//!   file as bytes arrive, and no upload waits a day between two writes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How long a temporary file of an unknown owner must have been left
/// untouched before a sweep removes it.
pub const FOREIGN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

struct Me {
    tag: String,
    context: Option<String>,
}

fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        match (start_time(pid), context()) {
            (Some(start), Some(ctx)) => Me {
                tag: format!("{pid}-{start}-{ctx}"),
                context: Some(ctx),
            },
            // Without /proc nobody can tell whether we live: a unique
            // name, swept by age only.
            _ => Me {
                tag: format!("{pid}-0-u{}", uuid::Uuid::new_v4().simple()),
                context: None,
            },
        }
    })
}

/// The name of this process's own temporary directory.
pub fn process_tag() -> &'static str {
    &me().tag
}

/// This process's own directory under `parent` (not created).
pub fn owned_dir(parent: &Path) -> PathBuf {
    parent.join(process_tag())
}

/// When the process started, in clock ticks after boot (Linux).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // the start time is field 22, the 20th after the closing parenthesis.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What makes a PID meaningful: this boot, this PID namespace, this host.
fn context() -> Option<String> {
    use sha2::{Digest, Sha256};
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut h = Sha256::new();
    h.update(boot.trim().as_bytes());
    h.update([0]);
    h.update(ns.to_string_lossy().as_bytes());
    h.update([0]);
    h.update(host.trim().as_bytes());
    Some(hex::encode(h.finalize()).chars().take(16).collect())
}

/// Who owns an entry of a staging directory.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    Me,
    /// A process of this machine and namespace: alive or not.
    Local {
        alive: bool,
    },
    /// Unknown: judged by age.
    Foreign,
}

fn owner_of(name: &str) -> Owner {
    let me = me();
    if name == me.tag {
        return Owner::Me;
    }
    let mut parts = name.splitn(3, '-');
    let (Some(pid), Some(start), Some(ctx)) = (parts.next(), parts.next(), parts.next()) else {
        return Owner::Foreign;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Owner::Foreign;
    };
    if me.context.as_deref() != Some(ctx) {
        return Owner::Foreign;
    }
    Owner::Local {
        alive: start_time(pid) == Some(start),
    }
}

/// The newest modification time of a path and, for a directory, of
/// everything in it (a few levels deep).
fn newest_write(path: &Path, depth: u32) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() && depth > 0 {
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                if let Some(t) = newest_write(&e.path(), depth - 1) {
                    newest = newest.max(t);
                }
            }
        }
    }
    Some(newest)
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Entries removed (a dead process's directory counts once).
    pub removed: u64,
    /// Entries kept: this process's, live processes', recent unknown ones.
    pub kept: u64,
}

/// Removes from `parent` what no live process owns (see the module docs);
/// `foreign_max_age` is normally [`FOREIGN_MAX_AGE`]. A missing `parent`
/// is an empty one.
pub fn remove_stale(parent: &Path, foreign_max_age: Duration) -> std::io::Result<Swept> {
    let mut swept = Swept::default();
    let rd = match std::fs::read_dir(parent) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for e in rd {
        let e = e?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let stale = match owner_of(&name) {
            Owner::Me | Owner::Local { alive: true } => false,
            Owner::Local { alive: false } => true,
            Owner::Foreign => newest_write(&path, 3)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= foreign_max_age),
        };
        if !stale {
            swept.kept += 1;
            continue;
        }
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) => swept.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), "could not remove a stale temporary file: {e}")
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tag_is_ours_and_parses_as_alive_on_linux() {
        assert_eq!(owner_of(process_tag()), Owner::Me);
        if me().context.is_some() {
            let parent = std::os::unix::process::parent_id();
            if let (Some(start), Some(ctx)) = (start_time(parent), me().context.clone()) {
                assert_eq!(
                    owner_of(&format!("{parent}-{start}-{ctx}")),
                    Owner::Local { alive: true }
                );
                // The same PID with another start time: a reused PID.
                assert_eq!(
                    owner_of(&format!("{parent}-{}-{ctx}", start + 1)),
                    Owner::Local { alive: false }
                );
            }
        }
        assert_eq!(owner_of("upload-abc"), Owner::Foreign);
        assert_eq!(owner_of("12-34-0000000000000000"), Owner::Foreign);
    }

    #[test]
    fn sweeps_dead_owners_and_old_unknown_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        let mine = owned_dir(p);
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("upload-1"), b"x").unwrap();
        std::fs::write(p.join("unknown-recent"), b"x").unwrap();
        let mut expected_removed = 0;
        if let Some(ctx) = me().context.clone() {
            // A PID above the kernel's maximum is never alive.
            let dead = p.join(format!("4194399-123-{ctx}"));
            std::fs::create_dir_all(&dead).unwrap();
            std::fs::write(dead.join("upload-2"), b"x").unwrap();
            expected_removed = 1;
        }
        let s = remove_stale(p, FOREIGN_MAX_AGE).unwrap();
        assert_eq!(s.removed, expected_removed);
        assert!(mine.join("upload-1").exists());
        assert!(p.join("unknown-recent").exists());
        // With no patience, unknown files go too; ours never do.
        let s = remove_stale(p, Duration::ZERO).unwrap();
        assert_eq!(s.removed, 1);
        assert!(!p.join("unknown-recent").exists());
        assert!(mine.join("upload-1").exists());
    }
}
