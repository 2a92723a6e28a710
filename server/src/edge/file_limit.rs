//! The process's open-file limit: raised from the soft to the hard limit at start, and the
//! connection cap that fits under it.
use rlimit::Resource;

/// Files kept free for everything that is not a client connection: the database and its WAL,
/// connections to the model server, the site's files, logs, and the over-the-cap answers.
const RESERVED_FILES: u64 = 128;
/// Never fewer connections than this, however low the limit.
const MIN_CONNECTIONS: usize = 16;

/// The soft limit before and after raising it, and the hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimit {
    pub was: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one (a server holds a socket per viewer; the
/// usual soft limit of 1,024 is a shell's default, not a server's) and logs both.
pub fn raise_file_limit() -> Option<FileLimit> {
    let (was, hard) = match Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return None;
        }
    };
    // An unlimited hard limit still has the kernel's ceiling (fs.nr_open, 1,048,576 by default).
    let now = match rlimit::increase_nofile_limit(hard.min(1 << 20)) {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(error = %e, soft = was, hard, "cannot raise the open-file limit");
            was
        }
    };
    tracing::info!(
        soft = now,
        hard,
        "open-file limit: soft {was} raised to {now} (hard limit {hard})"
    );
    Some(FileLimit { was, now, hard })
}

/// The connection cap: the configured one, lowered (with a warning) when the open-file limit
/// cannot hold that many sockets and the files the server needs besides.
pub fn connection_cap(configured: usize) -> usize {
    let soft = Resource::NOFILE.get().map(|(soft, _)| soft).ok();
    let cap = cap_for(configured, soft);
    if cap < configured {
        tracing::warn!(
            configured,
            cap,
            "server.max_connections is {configured}, but the open-file limit ({}) holds only \
             {cap} connections: using {cap}. Raise the hard limit (ulimit -Hn, LimitNOFILE=) \
             to hold more.",
            soft.unwrap_or_default()
        );
    }
    cap
}

fn cap_for(configured: usize, soft_limit: Option<u64>) -> usize {
    let Some(soft) = soft_limit else {
        return configured;
    };
    let fits = usize::try_from(soft.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    configured.min(fits.max(MIN_CONNECTIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_under_the_file_limit_with_room_to_spare() {
        assert_eq!(cap_for(19_000, Some(20_000)), 19_000);
        assert_eq!(cap_for(19_000, Some(1_024)), 896);
        assert_eq!(cap_for(100, Some(1_024)), 100);
        assert_eq!(cap_for(19_000, Some(64)), MIN_CONNECTIONS);
        assert_eq!(cap_for(19_000, None), 19_000);
    }
}
