//! A bounded Server-Sent Events parser: no event, line or comment run may
//! grow past the cap, whatever the peer sends.

use crate::error::{Error, Result};

/// One dispatched event: its `event:` name (empty = "message"), joined
/// `data:` lines and last `id:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    line: Vec<u8>,
    data: String,
    event: String,
    id: Option<String>,
    has_data: bool,
    last_cr: bool,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            id: None,
            has_data: false,
            last_cr: false,
        }
    }

    fn pending(&self) -> usize {
        self.line.len() + self.data.len() + self.event.len()
    }

    /// Feeds bytes; pushes complete events to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<()> {
        for &b in chunk {
            match b {
                b'\n' if self.last_cr => {
                    self.last_cr = false;
                }
                b'\n' | b'\r' => {
                    self.last_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.last_cr = false;
                    self.line.push(b);
                    if self.pending() > self.max_event {
                        return Err(Error::Transport(format!(
                            "an SSE event from the peer exceeds max_event_bytes = {}",
                            self.max_event
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<()> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    id: self.id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let text = String::from_utf8(line)
            .map_err(|_| Error::Transport("an SSE line from the peer is not UTF-8".into()))?;
        let (field, value) = match text.find(':') {
            Some(i) => {
                let v = &text[i + 1..];
                (&text[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (text.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {} // retry and unknown fields are ignored
        }
        if self.pending() > self.max_event {
            return Err(Error::Transport(format!(
                "an SSE event from the peer exceeds max_event_bytes = {}",
                self.max_event
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_events_and_line_endings() {
        let mut p = SseParser::new(1000);
        let mut out = Vec::new();
        p.feed(b": hi\r\ndata: {\"a\"", &mut out).unwrap();
        p.feed(b":1}\r\n\r\nevent: x\ndata: 1\ndata: 2\n\n", &mut out)
            .unwrap();
        p.feed(b"data:3\r\rdata", &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].data, "{\"a\":1}");
        assert_eq!(out[1].event, "x");
        assert_eq!(out[1].data, "1\n2");
        assert_eq!(out[2].data, "3");
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p
            .feed(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .is_err());
        let mut p = SseParser::new(16);
        assert!(p.feed(&[b'x'; 100], &mut out).is_err());
    }
}
