//! The SQLite file on disk: which file a URL names, created readable by its owner only, and
//! held by one process at a time through an OS lock on `<database>.lock`.
//!
//! Two servers on one SQLite file would each take the other's running jobs for a crash's
//! leftovers. The lock is the kernel's (`flock`), so it goes away with the process however it
//! ends, and a stale lock file never blocks a start. It is SQLite's alone: instances sharing a
//! PostgreSQL database will coordinate through the database instead.
use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

use fs4::{FileExt, TryLockError};
use sqlx::sqlite::SqliteConnectOptions;

use super::{DbError, DbResult};

/// The database file a `sqlite:` URL names; `None` for an in-memory database and for a
/// database that is not a file (PostgreSQL).
pub fn database_file(url: &str) -> DbResult<Option<PathBuf>> {
    if super::Engine::of(url)? != super::Engine::Sqlite {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| DbError::Unavailable(format!("bad database URL {url:?}: {e}")))?;
    let file = options.get_filename();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    Ok((!in_memory && !file.as_os_str().is_empty()).then(|| file.to_owned()))
}

/// Opens `path` for a new file that only its owner may read (0600 on Unix).
pub fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates the database file, empty and private, unless it exists: SQLite gives its `-wal` and
/// `-shm` files the database file's permissions, so they are private too. An existing file
/// keeps the permissions its owner gave it.
pub fn create_private(database: &Path) -> DbResult<()> {
    match private_file().write(true).create_new(true).open(database) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DbError::Unavailable(format!(
            "cannot create the database file {}: {e}",
            database.display()
        ))),
    }
}

/// The exclusive hold on a database file (nothing for an in-memory database), kept for as long
/// as the server runs.
#[derive(Debug)]
pub struct FileLock {
    _held: Option<File>,
}

impl FileLock {
    /// Takes the lock of the database `url` names, or says which process holds it.
    pub fn take(url: &str) -> DbResult<Self> {
        let Some(database) = database_file(url)? else {
            return Ok(Self { _held: None });
        };
        let path = lock_path(&database);
        let cannot = |e: std::io::Error| {
            DbError::Unavailable(format!("cannot use the lock file {}: {e}", path.display()))
        };
        // No truncation on open: the file says which process holds the lock.
        let mut file = private_file()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        // The trait's method, not std's `File::try_lock` (newer than the workspace's Rust).
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(DbError::InUse {
                    database,
                    holder: match holder.trim().parse::<u32>() {
                        Ok(pid) => format!("process {pid}"),
                        Err(_) => "another process".into(),
                    },
                    lock: path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        file.set_len(0).map_err(cannot)?;
        writeln!(file, "{}", std::process::id()).map_err(cannot)?;
        Ok(Self { _held: Some(file) })
    }
}

/// `aiwall.db` -> `aiwall.db.lock`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_url_names_its_file_and_memory_names_none() {
        assert_eq!(
            database_file("sqlite://aiwall.db").unwrap(),
            Some(PathBuf::from("aiwall.db"))
        );
        assert_eq!(
            database_file("sqlite:///var/lib/aiwall/wall.db?mode=rwc").unwrap(),
            Some(PathBuf::from("/var/lib/aiwall/wall.db"))
        );
        assert_eq!(database_file("sqlite::memory:").unwrap(), None);
        assert_eq!(database_file("sqlite://wall.db?mode=memory").unwrap(), None);
    }

    #[test]
    fn a_second_hold_on_the_same_file_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("wall.db").display());
        let first = FileLock::take(&url).unwrap();
        let refused = FileLock::take(&url).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("process {}", std::process::id())),
            "{refused}"
        );
        assert!(refused.contains("wall.db.lock"), "{refused}");
        drop(first);
        FileLock::take(&url).expect("free again once the holder is gone");
    }
}
