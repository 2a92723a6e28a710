//! Anonymous authorship: a random author id in a signed, HttpOnly, SameSite=Lax cookie, set by
//! a browser's first post, and the short public tag derived from it.
use axum_extra::extract::{
    cookie::{Cookie, SameSite},
    SignedCookieJar,
};
use sha2::{Digest, Sha256};

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

/// The author of this request, creating one (and the cookie) on a browser's first post.
pub fn author_or_new(jar: SignedCookieJar) -> (SignedCookieJar, Author) {
    if let Some(author) = author(&jar) {
        return (jar, author);
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    let cookie = Cookie::build((COOKIE, id.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::days(400))
        .build();
    (jar.add(cookie), Author { id })
}

/// The cookie-signing key: made once, kept in the database so restarts and every server
/// instance sign alike.
pub async fn cookie_key(
    db: &crate::db::Db,
) -> crate::db::DbResult<axum_extra::extract::cookie::Key> {
    let hex_key = db
        .setting_or_insert("cookie_key", || {
            hex::encode(rand::random::<[u8; 32]>()) + &hex::encode(rand::random::<[u8; 32]>())
        })
        .await?;
    let bytes = hex::decode(hex_key.trim()).unwrap_or_default();
    Ok(if bytes.len() >= 64 {
        axum_extra::extract::cookie::Key::from(&bytes)
    } else {
        tracing::warn!("stored cookie key is malformed; using a temporary one");
        axum_extra::extract::cookie::Key::generate()
    })
}
