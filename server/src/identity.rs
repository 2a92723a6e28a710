//! Anonymous authorship: a random author id in a signed, HttpOnly, SameSite=Lax cookie, set by
//! a browser's first post, the short public tag derived from it, and the key that signs it.
use std::{
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
};

use axum_extra::extract::{
    cookie::{Cookie, Key, SameSite},
    SignedCookieJar,
};
use sha2::{Digest, Sha256};

use crate::{
    config::ServerConfig,
    db::{database_file, private_file, Db, Engine},
};

const COOKIE: &str = "aiwall_author";

/// The author behind a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Author {
    pub id: String,
}

impl Author {
    /// A public tag that links posts of one author without revealing the cookie's value.
    pub fn tag(&self) -> String {
        tag_of(&self.id)
    }
}

pub fn tag_of(author_id: &str) -> String {
    let digest = Sha256::digest(format!("aiwall-author-tag:{author_id}"));
    hex::encode(&digest[..8])
}

/// The author of this request, if their browser has one.
pub fn author(jar: &SignedCookieJar) -> Option<Author> {
    jar.get(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|id| Author { id })
}

/// The author of this request, creating one (and the cookie) on a browser's first post. The
/// cookie is `Secure` when the site is served over HTTPS (`server.public_url`).
pub fn author_or_new(jar: SignedCookieJar, secure: bool) -> (SignedCookieJar, Author) {
    if let Some(author) = author(&jar) {
        return (jar, author);
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    let cookie = Cookie::build((COOKIE, id.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::days(400))
        .build();
    (jar.add(cookie), Author { id })
}

/// The name the cookie-signing key had in the `settings` table before issue 10.
const OLD_KEY_SETTING: &str = "cookie_key";

/// Why the server has no cookie-signing key to start with.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the cookie key given in server.cookie_key (AIWALL_SERVER__COOKIE_KEY) is not a key: it \
         must be at least 128 hex digits (64 bytes), e.g. from `openssl rand -hex 64`"
    )]
    BadConfigured,
    #[error(
        "the cookie key file {} does not hold a key (at least 128 hex digits): fix it, or \
         write a new key into it (`openssl rand -hex 64 > {}`; authors then lose the right to \
         stop or delete their earlier posts)",
        .0.display(),
        .0.display()
    )]
    BadFile(PathBuf),
    #[error("cannot read the cookie key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create the cookie key file {}: {source} (set server.cookie_key_file to a \
         writable place, or give the key in AIWALL_SERVER__COOKIE_KEY)",
        path.display()
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "on PostgreSQL every instance must sign author cookies with the same key, so none is \
         made up: set AIWALL_SERVER__COOKIE_KEY (from `openssl rand -hex 64`), or \
         server.cookie_key_file to a file holding it, the same on every instance"
    )]
    SharedKeyRequired,
    #[error(
        "the cookie key file {} does not exist: on PostgreSQL every instance must use the same \
         key, so none is made up; write one (`openssl rand -hex 64 > {}`, readable by this \
         server only) and copy it to every instance",
        .0.display(),
        .0.display()
    )]
    SharedKeyMissing(PathBuf),
    #[error("{0}")]
    Database(#[from] crate::db::DbError),
}

/// The cookie-signing key, from the configuration: `server.cookie_key`, else the key file
/// (created with a fresh key on first start). It never lives in the database: a key an older
/// release stored there becomes the key file's (so authors keep their posts) and is erased.
pub async fn cookie_key(
    server: &ServerConfig,
    database_url: &str,
    db: &Db,
) -> Result<Key, KeyError> {
    let old = db.setting(OLD_KEY_SETTING).await?;
    let old_key = old.as_deref().and_then(parse_key);
    let file = key_file(server, database_url)?;
    let shared = db.engine() == Engine::Postgres;
    let key = if !server.cookie_key.is_empty() {
        let key = parse_key(server.cookie_key.expose()).ok_or(KeyError::BadConfigured)?;
        warn_if_replaced(old_key.as_ref(), &key, "server.cookie_key");
        key
    } else {
        match &file {
            Some(path) if shared => {
                read_key_file(path)?.ok_or_else(|| KeyError::SharedKeyMissing(path.to_owned()))?
            }
            Some(path) => key_from_file(path, old_key.clone())?,
            None if shared => return Err(KeyError::SharedKeyRequired),
            None => {
                tracing::info!(
                    "in-memory database and no server.cookie_key_file: author cookies last \
                     until the server stops"
                );
                Key::generate()
            }
        }
    };
    if let Some(old_key) = &old_key {
        if old_key.master() != key.master() && !keep_replaced(old_key, file.as_deref()) {
            // Not erased: it is the only copy, and a mistaken setting must not log everyone out
            // for good.
            return Ok(key);
        }
    }
    if old.is_some() {
        db.erase_setting(OLD_KEY_SETTING).await?;
        tracing::info!("erased the cookie key that an older release kept in the database");
    }
    Ok(key)
}

/// Saves an older release's key that the configured one replaces to `<key file>.old` (0600),
/// so that going back to it stays possible; false when it could not be saved.
fn keep_replaced(old: &Key, key_file: Option<&Path>) -> bool {
    let Some(key_file) = key_file else {
        return false;
    };
    let mut name = key_file.as_os_str().to_owned();
    name.push(".old");
    let path = PathBuf::from(name);
    match write_new_key_file(&path, old) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "saved the replaced cookie key of an older release; to go back to it, make it \
                 the key file"
            );
            true
        }
        // Saved by an earlier start: erase only if that file holds this very key.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            matches!(read_key_file(&path), Ok(Some(saved)) if saved.master() == old.master())
        }
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot save the replaced cookie key; it stays in the database"
            );
            false
        }
    }
}

/// `server.cookie_key_file`, or by default the database's name with `.key` (`aiwall.key`
/// beside `aiwall.db`); `None` when neither names a file.
pub fn key_file(server: &ServerConfig, database_url: &str) -> Result<Option<PathBuf>, KeyError> {
    if !server.cookie_key_file.trim().is_empty() {
        return Ok(Some(PathBuf::from(server.cookie_key_file.trim())));
    }
    Ok(database_file(database_url)?.map(|db| db.with_extension("key")))
}

/// The key in `path`; when there is none, `old` (the database's) or a fresh one, written there
/// first, readable by its owner only.
fn key_from_file(path: &Path, old: Option<Key>) -> Result<Key, KeyError> {
    if let Some(key) = read_key_file(path)? {
        warn_if_replaced(old.as_ref(), &key, &path.display().to_string());
        return Ok(key);
    }
    let moved = old.is_some();
    let key = old.unwrap_or_else(Key::generate);
    match write_new_key_file(path, &key) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                moved_from_database = moved,
                "created the cookie key file"
            );
            Ok(key)
        }
        // Another instance made it meanwhile: everyone uses the first.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read_key_file(path)?.ok_or_else(|| KeyError::BadFile(path.to_owned()))
        }
        Err(source) => Err(KeyError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `key` to a new file at `path`, readable by its owner only; fails if it exists.
fn write_new_key_file(path: &Path, key: &Key) -> std::io::Result<()> {
    let mut file = private_file().write(true).create_new(true).open(path)?;
    writeln!(file, "{}", hex::encode(key.master()))?;
    file.sync_all()
}

/// The key in `path`, `None` when there is no such file.
fn read_key_file(path: &Path) -> Result<Option<Key>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the cookie key file can be read by other users; `chmod 600` it"
            );
        }
    }
    parse_key(&text)
        .map(Some)
        .ok_or_else(|| KeyError::BadFile(path.to_owned()))
}

/// A key written as hex, at least 64 bytes (the signing and encryption halves).
fn parse_key(hex_key: &str) -> Option<Key> {
    let bytes = hex::decode(hex_key.trim()).ok()?;
    Key::try_from(bytes.as_slice()).ok()
}

fn warn_if_replaced(old: Option<&Key>, key: &Key, source: &str) {
    if old.is_some_and(|old| old.master() != key.master()) {
        tracing::warn!(
            "the cookie key an older release kept in the database differs from the one in \
             {source}; cookies signed with the old key are no longer recognised"
        );
    }
}
