//! A server-sent events reader (the WHATWG `text/event-stream` format) that takes a stream
//! in pieces cut anywhere and gives each event once its blank line came: its `event` name and
//! its `data` lines joined by `\n`. Comments, `id` and `retry` lines are skipped; a line or an
//! event longer than the limit is an error (a provider must not make the gateway hold more).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Its `event:` name (empty: the default, `message`).
    pub name: String,
    /// Its data.
    pub data: String,
}

/// The stream broke the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// The reader's state between pieces.
#[derive(Debug)]
pub struct Reader {
    /// The line not yet ended.
    line: Vec<u8>,
    /// The event being read.
    event: Event,
    /// Whether it has a data line.
    has_data: bool,
    /// Most bytes of one event.
    limit: usize,
}

impl Reader {
    /// A reader holding at most `limit` bytes of one event.
    pub fn new(limit: usize) -> Reader {
        Reader {
            line: Vec::new(),
            event: Event::default(),
            has_data: false,
            limit,
        }
    }

    /// Reads the next piece; each event it completes goes to `out`.
    pub fn feed(&mut self, mut piece: &[u8], out: &mut Vec<Event>) -> Result<(), TooLong> {
        while !piece.is_empty() {
            let (part, rest, ended) = match memchr::memchr(b'\n', piece) {
                Some(i) => (piece.get(..i), piece.get(i + 1..), true),
                None => (Some(piece), None, false),
            };
            let part = part.unwrap_or_default();
            piece = rest.unwrap_or_default();
            if self.line.len() + part.len() + self.event.data.len() > self.limit {
                return Err(TooLong);
            }
            if ended && self.line.is_empty() {
                // the whole line is in this piece: read it where it is
                self.take_line(part.strip_suffix(b"\r").unwrap_or(part), out);
                continue;
            }
            self.line.extend_from_slice(part);
            if ended {
                let line = std::mem::take(&mut self.line);
                self.take_line(line.strip_suffix(b"\r").unwrap_or(&line), out);
                self.line = line;
                self.line.clear();
            }
        }
        Ok(())
    }

    fn take_line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.event));
            }
            self.event = Event::default();
            self.has_data = false;
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => (
                line.get(..i).unwrap_or_default(),
                line.get(i + 1..).unwrap_or_default(),
            ),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        // valid UTF-8 is checked fast; only broken text takes the lossy path
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"event" => self.event.name = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(&value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(pieces: &[&[u8]]) -> Result<Vec<Event>, TooLong> {
        let mut r = Reader::new(64);
        let mut out = Vec::new();
        for p in pieces {
            r.feed(p, &mut out)?;
        }
        Ok(out)
    }

    fn ev(name: &str, data: &str) -> Event {
        Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn reads_events_cut_anywhere() -> Result<(), TooLong> {
        let whole: &[u8] =
            b": ping\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\nid: 7\ndata: x\n\ndata: tail";
        let want = vec![ev("a", "1\n2"), ev("", "x")];
        assert_eq!(events(&[whole])?, want);
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(events(&[a, b])?, want, "cut at {cut}");
        }
        // a blank line with no data gives nothing
        assert_eq!(events(&[b"event: x\n\n\n"])?, vec![]);
        Ok(())
    }

    #[test]
    fn refuses_an_event_past_the_limit() {
        let long = [b'a'; 80];
        assert_eq!(events(&[b"data: ", &long]), Err(TooLong));
        assert_eq!(
            events(&[b"data: ", &long[..40], b"\ndata: ", &long[..40]]),
            Err(TooLong)
        );
    }
}
