//! AWS event-stream messages (`application/vnd.amazon.eventstream`), as `StartLiveTail` answers
//! them: a 12-byte prelude (total length, headers length, the CRC32 of those eight bytes),
//! headers, the payload, and the CRC32 of everything before it. [`frame`] writes one (the
//! server's side), [`Decoder`] reads them (`lamina logs --follow`).
//!
//! [`Decoder`] takes bytes as they arrive and yields whole messages. It reads a message's length
//! from its prelude before buffering the rest, so a message longer than its limit is refused
//! having cost twelve bytes; both checksums are verified.

use bytes::{Buf, Bytes, BytesMut};

/// The prelude (12 bytes) and the message's CRC (4).
const OVERHEAD: usize = 16;
/// The largest message the format allows, and AWS's SDKs accept.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One message with string headers (type 7): the prelude, the headers, the payload and the
/// CRC32 of everything before it.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = OVERHEAD + h.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// A header's value, one of the ten types the encoding has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `true` or `false` (types 0 and 1).
    Bool(bool),
    /// A signed byte.
    Byte(i8),
    /// A 16-bit integer.
    Short(i16),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// Bytes.
    Bytes(Bytes),
    /// UTF-8 text.
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    /// A UUID.
    Uuid([u8; 16]),
}

/// One message: its headers in order, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers, in the order they came.
    pub headers: Vec<(String, Value)>,
    /// The payload.
    pub payload: Bytes,
}

impl Message {
    /// The value of a string header (`:message-type`, `:event-type`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            Value::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why a stream is not a valid event stream. The stream cannot be read past one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than the decoder's limit.
    #[error("an event-stream message of {0} bytes is larger than the {1} bytes allowed")]
    TooLarge(usize, usize),
    /// Shorter than a message can be.
    #[error("an event-stream message claims {0} bytes, fewer than its prelude and checksum")]
    TooShort(usize),
    /// The prelude's CRC does not match.
    #[error("an event-stream message's prelude fails its checksum")]
    PreludeChecksum,
    /// The message's CRC does not match.
    #[error("an event-stream message fails its checksum")]
    MessageChecksum,
    /// Headers that run past their length or have an unknown type.
    #[error("an event-stream message's headers are malformed")]
    Headers,
}

/// Splits a byte stream into messages.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max: usize,
}

impl Decoder {
    /// A decoder refusing messages longer than `max` bytes (all of it: prelude to checksum).
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Adds bytes as they arrived; call [`Decoder::next_message`] until it gives `None` after each push.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True when no part of a message is waiting for more bytes.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole message, or `None` until more bytes arrive.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buf.len() < 12 {
            return Ok(None);
        }
        let word = |i: usize| {
            u32::from_be_bytes([
                self.buf[i],
                self.buf[i + 1],
                self.buf[i + 2],
                self.buf[i + 3],
            ])
        };
        let (total, headers_len, prelude_crc) = (word(0) as usize, word(4) as usize, word(8));
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(FrameError::PreludeChecksum);
        }
        if total > self.max {
            return Err(FrameError::TooLarge(total, self.max));
        }
        if total < OVERHEAD {
            return Err(FrameError::TooShort(total));
        }
        if headers_len > total - OVERHEAD {
            return Err(FrameError::Headers);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let message = self.buf.split_to(total).freeze();
        let crc = u32::from_be_bytes(
            message[total - 4..]
                .try_into()
                .map_err(|_| FrameError::MessageChecksum)?,
        );
        if crc32fast::hash(&message[..total - 4]) != crc {
            return Err(FrameError::MessageChecksum);
        }
        let headers = headers(message.slice(12..12 + headers_len))?;
        Ok(Some(Message {
            headers,
            payload: message.slice(12 + headers_len..total - 4),
        }))
    }
}

/// Fails unless `b` holds at least `n` more bytes.
fn need(b: &Bytes, n: usize) -> Result<(), FrameError> {
    if b.remaining() < n {
        return Err(FrameError::Headers);
    }
    Ok(())
}

/// Headers: a name (1-byte length), a type byte and the value of that type, back to back.
fn headers(mut b: Bytes) -> Result<Vec<(String, Value)>, FrameError> {
    let mut out = Vec::new();
    while b.has_remaining() {
        let n = b.get_u8() as usize;
        if n == 0 {
            return Err(FrameError::Headers);
        }
        need(&b, n + 1)?;
        let name = String::from_utf8(b.split_to(n).to_vec()).map_err(|_| FrameError::Headers)?;
        let value = match b.get_u8() {
            0 => Value::Bool(true),
            1 => Value::Bool(false),
            2 => {
                need(&b, 1)?;
                Value::Byte(b.get_i8())
            }
            3 => {
                need(&b, 2)?;
                Value::Short(b.get_i16())
            }
            4 => {
                need(&b, 4)?;
                Value::Int(b.get_i32())
            }
            5 => {
                need(&b, 8)?;
                Value::Long(b.get_i64())
            }
            kind @ (6 | 7) => {
                need(&b, 2)?;
                let len = b.get_u16() as usize;
                need(&b, len)?;
                let raw = b.split_to(len);
                if kind == 6 {
                    Value::Bytes(raw)
                } else {
                    Value::String(String::from_utf8(raw.to_vec()).map_err(|_| FrameError::Headers)?)
                }
            }
            8 => {
                need(&b, 8)?;
                Value::Timestamp(b.get_i64())
            }
            9 => {
                need(&b, 16)?;
                let mut id = [0u8; 16];
                b.copy_to_slice(&mut id);
                Value::Uuid(id)
            }
            _ => return Err(FrameError::Headers),
        };
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a message the way AWS (and the server) does.
    fn frame(headers: &[(&str, Value)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            match value {
                Value::Bool(true) => h.push(0),
                Value::Bool(false) => h.push(1),
                Value::Byte(v) => h.extend([2, *v as u8]),
                Value::Short(v) => {
                    h.push(3);
                    h.extend(v.to_be_bytes());
                }
                Value::Int(v) => {
                    h.push(4);
                    h.extend(v.to_be_bytes());
                }
                Value::Long(v) => {
                    h.push(5);
                    h.extend(v.to_be_bytes());
                }
                Value::Bytes(v) => {
                    h.push(6);
                    h.extend((v.len() as u16).to_be_bytes());
                    h.extend_from_slice(v);
                }
                Value::String(v) => {
                    h.push(7);
                    h.extend((v.len() as u16).to_be_bytes());
                    h.extend_from_slice(v.as_bytes());
                }
                Value::Timestamp(v) => {
                    h.push(8);
                    h.extend(v.to_be_bytes());
                }
                Value::Uuid(v) => {
                    h.push(9);
                    h.extend_from_slice(v);
                }
            }
        }
        let total = OVERHEAD + h.len() + payload.len();
        let mut out = Vec::with_capacity(total);
        out.extend((total as u32).to_be_bytes());
        out.extend((h.len() as u32).to_be_bytes());
        out.extend(crc32fast::hash(&out).to_be_bytes());
        out.extend(h);
        out.extend_from_slice(payload);
        out.extend(crc32fast::hash(&out).to_be_bytes());
        out
    }

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        frame(
            &[
                (":message-type", Value::String("event".into())),
                (":event-type", Value::String(kind.into())),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn messages_split_anywhere_and_joined_come_out_whole() {
        let mut bytes = event("initial-response", "{}");
        bytes.extend(event("sessionUpdate", r#"{"sessionResults":[]}"#));
        bytes.extend(frame(&[], b""));
        // One byte at a time.
        let mut d = Decoder::new(1 << 20);
        let mut got = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert!(d.is_empty());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].header(":event-type"), Some("initial-response"));
        assert_eq!(got[0].header(":message-type"), Some("event"));
        assert_eq!(&got[0].payload[..], b"{}");
        assert_eq!(&got[1].payload[..], br#"{"sessionResults":[]}"#);
        assert!(got[2].headers.is_empty() && got[2].payload.is_empty());
        // All at once.
        let mut d = Decoder::new(1 << 20);
        d.push(&bytes);
        let mut again = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            again.push(m);
        }
        assert_eq!(again, got);
    }

    #[test]
    fn every_header_type_decodes() {
        let headers = vec![
            ("t", Value::Bool(true)),
            ("f", Value::Bool(false)),
            ("b", Value::Byte(-3)),
            ("s", Value::Short(-300)),
            ("i", Value::Int(70_000)),
            ("l", Value::Long(-5_000_000_000)),
            ("y", Value::Bytes(Bytes::from_static(&[0, 255]))),
            ("str", Value::String("é".into())),
            ("ts", Value::Timestamp(1_700_000_000_000)),
            ("u", Value::Uuid([7; 16])),
        ];
        let mut d = Decoder::new(1 << 20);
        d.push(&frame(&headers, b"x"));
        let m = d.next_message().unwrap().unwrap();
        let want: Vec<(String, Value)> = headers
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        assert_eq!(m.headers, want);
        assert_eq!(m.header("str"), Some("é"));
        assert_eq!(m.header("i"), None, "not a string");
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_prelude() {
        let big = event("sessionUpdate", &"x".repeat(2000));
        let mut d = Decoder::new(1024);
        d.push(&big[..12]);
        assert_eq!(d.next_message(), Err(FrameError::TooLarge(big.len(), 1024)));
    }

    #[test]
    fn corruption_is_refused() {
        let good = event("sessionUpdate", "{}");
        let decode = |bytes: &[u8]| {
            let mut d = Decoder::new(1 << 20);
            d.push(bytes);
            d.next_message()
        };
        // A flipped bit in the prelude, the headers, the payload, the checksum.
        let mut b = good.clone();
        b[2] ^= 1;
        assert_eq!(decode(&b), Err(FrameError::PreludeChecksum));
        for at in [14, good.len() - 6, good.len() - 1] {
            let mut b = good.clone();
            b[at] ^= 1;
            assert_eq!(decode(&b), Err(FrameError::MessageChecksum), "at {at}");
        }
        // Lengths that do not add up, with valid checksums.
        let with_prelude = |total: u32, headers: u32, rest: &[u8]| {
            let mut b = Vec::new();
            b.extend(total.to_be_bytes());
            b.extend(headers.to_be_bytes());
            b.extend(crc32fast::hash(&b).to_be_bytes());
            b.extend_from_slice(rest);
            let crc = crc32fast::hash(&b);
            b.extend(crc.to_be_bytes());
            b
        };
        assert_eq!(
            decode(&with_prelude(8, 0, &[])),
            Err(FrameError::TooShort(8))
        );
        assert_eq!(decode(&with_prelude(16, 1, &[])), Err(FrameError::Headers));
        // A header whose value runs past the headers: a string claiming 9 bytes, holding 1.
        let h = [1, b'a', 7, 0, 9, b'z'];
        assert_eq!(
            decode(&with_prelude(16 + h.len() as u32, h.len() as u32, &h)),
            Err(FrameError::Headers)
        );
        // An empty name, an unknown type.
        for h in [&[0u8, 0][..], &[1, b'a', 10][..]] {
            assert_eq!(
                decode(&with_prelude(16 + h.len() as u32, h.len() as u32, h)),
                Err(FrameError::Headers)
            );
        }
    }

    #[test]
    fn an_unfinished_message_waits_for_more() {
        let m = event("sessionUpdate", "{}");
        let mut d = Decoder::new(1 << 20);
        d.push(&m[..m.len() - 1]);
        assert_eq!(d.next_message(), Ok(None));
        assert!(!d.is_empty());
        d.push(&m[m.len() - 1..]);
        assert!(d.next_message().unwrap().is_some());
    }
}
