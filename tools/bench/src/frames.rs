//! The wall stream's events out of the bytes a watcher reads, without copying them: the server
//! writes every event as `event: NAME\ndata: JSON\n\n` (comments, `retry:` and blank keep-alives
//! between them). A general SSE parser (eventsource-stream, for the per-job streams) costs this
//! client more than the server spends sending; thousands of watchers share two cores with it.
use memchr::memmem;

#[derive(Default)]
pub struct Frames {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`.
    start: usize,
}

/// One event, borrowed from the buffer.
pub struct Frame<'a> {
    pub name: &'a str,
    pub data: &'a str,
}

impl Frames {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole event, if one has arrived; frames without an event (comments, `retry:`)
    /// are skipped.
    pub fn next(&mut self) -> Result<Option<Frame<'_>>, String> {
        loop {
            let rest = &self.buf[self.start..];
            let Some(end) = memmem::find(rest, b"\n\n") else {
                return Ok(None);
            };
            let begin = self.start;
            self.start += end + 2;
            let text = std::str::from_utf8(&self.buf[begin..begin + end])
                .map_err(|e| format!("not UTF-8: {e}"))?;
            let (mut name, mut data) = (None, None);
            for line in text.split('\n') {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v);
                } else if let Some(v) = line.strip_prefix("data: ") {
                    if data.replace(v).is_some() {
                        return Err(format!("an event of several data lines: {text:?}"));
                    }
                }
            }
            match (name, data) {
                (Some(name), Some(data)) => return Ok(Some(Frame { name, data })),
                (None, None) => continue,
                _ => return Err(format!("an event without its name or data: {text:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Frames;

    #[test]
    fn events_come_whole_across_reads_and_comments_are_skipped() {
        let mut frames = Frames::default();
        let stream = b"retry: 1000\n: connected\n\nevent: post\ndata: {\"a\":1}\n\n:\n\nevent: delta\ndata: {}\n\n";
        let mut seen = Vec::new();
        for chunk in stream.chunks(7) {
            frames.push(chunk);
            while let Some(f) = frames.next().unwrap() {
                seen.push((f.name.to_owned(), f.data.to_owned()));
            }
        }
        assert_eq!(
            seen,
            [
                ("post".to_owned(), "{\"a\":1}".to_owned()),
                ("delta".to_owned(), "{}".to_owned())
            ]
        );
    }
}
