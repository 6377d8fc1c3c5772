//! HTTP/1.1 on a streamer connection (RFC 9112), as the proxy speaks it: request heads written,
//! response heads parsed by httparse (hyper's own parser), and how each response body is delimited.
//!
//! Everything a streamer sends is hostile. Heads and chunk lines are bounded, and a response whose
//! length is ambiguous (conflicting `Content-Length`s, a malformed chunk) is refused rather than guessed
//! at; a connection that carried anything the proxy could not account for is never used again.

use std::io::Write;
use std::mem::MaybeUninit;

use axum::body::Bytes;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use bytes::{Buf, BytesMut};

/// The largest response head read from a streamer.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line or trailer line.
const MAX_LINE: usize = 4 * 1024;
/// The most trailer bytes after the last chunk (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a streamer's answer could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid Content-Length")]
    Length,
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnaskedSwitch,
    #[error("malformed chunk")]
    Chunk,
}

/// How a request's body is delimited on the streamer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body, and no framing header either (a `GET`).
    None,
    Length(u64),
    Chunked,
}

impl RequestBody {
    /// The framing for a body of `exact` bytes if known: methods that carry content say so even when
    /// it is empty, as a streamer may otherwise wait for a body that will not come.
    pub fn of(method: &Method, exact: Option<u64>) -> RequestBody {
        match exact {
            Some(0) if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) => RequestBody::None,
            Some(length) => RequestBody::Length(length),
            None => RequestBody::Chunked,
        }
    }
}

/// Fields the proxy writes in place of a request's own of the same names: those are left out, and each
/// value given here written after the others (none: the name is only left out).
#[derive(Debug, Default)]
pub struct Replacements(Vec<(HeaderName, Option<HeaderValue>)>);

impl Replacements {
    pub fn with_capacity(capacity: usize) -> Replacements {
        Replacements(Vec::with_capacity(capacity))
    }

    pub fn set(&mut self, name: HeaderName, value: Option<HeaderValue>) {
        self.0.push((name, value));
    }

    fn replaces(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|(replaced, _)| replaced == name)
    }
}

/// A request head as the proxy writes it to a streamer.
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// In origin form.
    pub target: &'a str,
    /// The request's fields, less their own framing and hop-by-hop fields (the caller's to remove).
    pub fields: &'a HeaderMap,
    pub replacements: &'a Replacements,
    pub body: RequestBody,
}

/// Writes `head` into `out`: the request line, the request's fields as `replacements` leave them, the
/// replacements, then the framing the body needs.
pub fn write_request_head(out: &mut Vec<u8>, head: &RequestHead<'_>) {
    let field = |out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in head.fields.iter().filter(|(name, _)| !head.replacements.replaces(name)) {
        field(out, name, value);
    }
    for (name, value) in &head.replacements.0 {
        if let Some(value) = value {
            field(out, name, value);
        }
    }
    match head.body {
        RequestBody::None => {}
        RequestBody::Length(length) => {
            // Writing to a Vec cannot fail.
            let _ = write!(out, "content-length: {length}\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response's body is delimited (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a `HEAD`, a 204 or a 304.
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the streamer closes the connection.
    UntilClose,
    /// A 101 to an upgrade: the connection now carries the new protocol.
    Switched,
}

/// A response head read off a streamer connection.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// The fields as the streamer sent them, less those that frame the body on this connection.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim response (`100 Continue`, `103 Early Hints`): the proxy drops it and reads on.
    Interim,
    Complete(ResponseHead),
}

/// Reads a response head off the front of `buf`, consuming it once whole. `method` and `upgrade` are
/// the request's: they decide what a body-less answer and a 101 mean. `scanned` is how much of `buf`
/// earlier calls found to end no head. The first look parses at once (an answer's head nearly always
/// comes in one read); after that the head is parsed again only once the bytes read since could end
/// it, so a streamer that drips a long head a byte at a time costs two parses of it, not one per byte.
pub fn read_response_head(
    buf: &mut BytesMut,
    scanned: &mut usize,
    method: &Method,
    upgrade: bool,
) -> Result<Parsed, WireError> {
    // Nothing read yet: the look right after the request is written would find nothing.
    if buf.is_empty() {
        return Ok(Parsed::Partial);
    }
    if *scanned > 0 && !ends_a_head(&buf[scanned.saturating_sub(2)..]) {
        *scanned = buf.len();
        return if buf.len() >= MAX_HEAD { Err(WireError::HeadTooLarge) } else { Ok(Parsed::Partial) };
    }
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut fields);
    let length = match parsed.map_err(WireError::Head)? {
        httparse::Status::Partial if buf.len() >= MAX_HEAD => return Err(WireError::HeadTooLarge),
        httparse::Status::Partial => {
            *scanned = buf.len();
            return Ok(Parsed::Partial);
        }
        httparse::Status::Complete(length) => length,
    };
    *scanned = 0;
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        buf.advance(length);
        return Ok(Parsed::Interim);
    }
    let http11 = response.version == Some(1);
    // Framing fields describe this connection's body and are read here rather than passed on, but for
    // `Content-Length` where it states the size of the body a `HEAD` or a 304 stands for.
    let described = *method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
    let mut frame = FramingFields::default();
    // Where each field passed on lies in the head, so that their values can share the head's bytes.
    let start = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| WireError::Head(httparse::Error::HeaderName))?;
        if name == header::TRANSFER_ENCODING {
            frame.read_coding(field.value);
            continue;
        }
        if name == header::CONTENT_LENGTH {
            frame.read_length(field.value)?;
            if !described {
                continue;
            }
        }
        if name == header::CONNECTION {
            frame.read_connection(field.value);
        }
        spans.push((name, field.value.as_ptr() as usize - start, field.value.len()));
    }
    let head = buf.split_to(length).freeze();
    // Room for what the proxy adds to every answer (its CSP, HSTS) without growing the map.
    let mut headers = HeaderMap::with_capacity(spans.len() + 2);
    for (name, offset, len) in spans {
        let value = HeaderValue::from_maybe_shared(head.slice(offset..offset + len))
            .map_err(|_| WireError::Head(httparse::Error::HeaderValue))?;
        headers.append(name, value);
    }
    let framing = frame.framing(status, described, upgrade)?;
    let keep_alive = http11 && framing != Framing::UntilClose && !frame.close;
    Ok(Parsed::Complete(ResponseHead { status, headers, framing, keep_alive }))
}

/// Whether `bytes` hold the empty line that ends a head (httparse takes a bare LF for a CRLF).
fn ends_a_head(bytes: &[u8]) -> bool {
    let at = |i: usize| bytes.get(i).copied();
    (0..bytes.len()).any(|i| {
        at(i) == Some(b'\n') && (at(i + 1) == Some(b'\n') || (at(i + 1), at(i + 2)) == (Some(b'\r'), Some(b'\n')))
    })
}

/// What a response head's fields say of its body's framing and its connection.
#[derive(Default)]
struct FramingFields {
    coded: bool,
    /// Whether the last transfer coding named is `chunked`.
    chunked: bool,
    length: Option<u64>,
    close: bool,
}

impl FramingFields {
    fn read_coding(&mut self, value: &[u8]) {
        self.coded = true;
        let last = value.rsplit(|byte| *byte == b',').next().unwrap_or_default();
        self.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
    }

    /// One `Content-Length` field: a number, or a list of equal ones.
    fn read_length(&mut self, value: &[u8]) -> Result<(), WireError> {
        for part in value.split(|byte| *byte == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(WireError::Length);
            }
            let parsed = part.iter().fold(0u64, |number, digit| number * 10 + u64::from(digit - b'0'));
            if self.length.is_some_and(|seen| seen != parsed) {
                return Err(WireError::Length);
            }
            self.length = Some(parsed);
        }
        Ok(())
    }

    fn read_connection(&mut self, value: &[u8]) {
        let mut tokens = value.split(|byte| *byte == b',');
        self.close |= tokens.any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
    }

    /// The body's framing (RFC 9112 6.3); `described`: the answer to a `HEAD`, or a 304.
    fn framing(&self, status: StatusCode, described: bool, upgrade: bool) -> Result<Framing, WireError> {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return if upgrade { Ok(Framing::Switched) } else { Err(WireError::UnaskedSwitch) };
        }
        if described || status == StatusCode::NO_CONTENT {
            return Ok(Framing::Empty);
        }
        Ok(match (self.coded, self.chunked, self.length) {
            (true, true, _) => Framing::Chunked,
            (false, _, Some(length)) => Framing::Length(length),
            (true, false, _) | (false, _, None) => Framing::UntilClose,
        })
    }
}

/// Where a chunked body's decoding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines, `read` bytes of them so far, then an empty line.
    Trailers {
        read: usize,
    },
    Done,
}

/// What [`Chunked::decode`] found in the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// More bytes are needed.
    More,
    End,
}

impl Chunked {
    /// Decodes what `buf` holds up to the next data or the end, consuming it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::More) };
                    let size = chunk_size(&line)?;
                    *self = if size == 0 { Chunked::Trailers { read: 0 } } else { Chunked::Data(size) };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let take = left.min(buf.len() as u64);
                    *self = if take == left { Chunked::DataEnd } else { Chunked::Data(left - take) };
                    return Ok(Decoded::Data(buf.split_to(take as usize).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk);
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers { read } => {
                    let Some(line) = take_line(buf)? else { return Ok(Decoded::More) };
                    if line.is_empty() {
                        *self = Chunked::Done;
                        return Ok(Decoded::End);
                    }
                    let read = read + line.len() + 2;
                    if read > MAX_TRAILERS {
                        return Err(WireError::Chunk);
                    }
                    *self = Chunked::Trailers { read };
                }
                Chunked::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// The next CRLF-ended line of `buf` (without its CRLF), consumed; `None` until one is whole.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
    let Some(end) = buf.iter().take(MAX_LINE + 2).position(|byte| *byte == b'\n') else {
        return if buf.len() > MAX_LINE { Err(WireError::Chunk) } else { Ok(None) };
    };
    // A bare CR or LF inside a line is how requests and responses get smuggled: refused.
    if end == 0 || buf[end - 1] != b'\r' || buf[..end - 1].contains(&b'\r') {
        return Err(WireError::Chunk);
    }
    let line = buf.split_to(end - 1);
    buf.advance(2);
    Ok(Some(line))
}

/// A chunk-size line: hexadecimal digits, then optionally extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.iter().take_while(|byte| byte.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let extension = rest.is_empty() || matches!(rest.trim_ascii_start().first(), Some(b';'));
    if digits == 0 || digits > 15 || !extension {
        return Err(WireError::Chunk);
    }
    let digits = std::str::from_utf8(&line[..digits]).map_err(|_| WireError::Chunk)?;
    u64::from_str_radix(digits, 16).map_err(|_| WireError::Chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], method: Method, upgrade: bool) -> (Result<Parsed, WireError>, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        (read_response_head(&mut buf, &mut 0, &method, upgrade), buf)
    }

    #[test]
    fn a_dripped_head_is_parsed_once_its_end_has_come() {
        let whole: &[u8] = b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n";
        let (mut buf, mut scanned) = (BytesMut::new(), 0);
        for (at, byte) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let parsed = read_response_head(&mut buf, &mut scanned, &Method::GET, false).unwrap();
            if at + 1 < whole.len() {
                assert!(matches!(parsed, Parsed::Partial), "at {at}");
                assert_eq!(scanned, buf.len(), "what was looked at is not looked at again");
            } else {
                assert!(matches!(parsed, Parsed::Complete(_)));
            }
        }
        let bare_lf: &[u8] = b"HTTP/1.1 204 No Content\nx-a: 1\n\n";
        assert!(matches!(read(bare_lf, Method::GET, false).0, Ok(Parsed::Complete(_))));
        let mut endless = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        let mut scanned = 0;
        while endless.len() + 8 < MAX_HEAD {
            endless.extend_from_slice(b"x-a: 1\r\n");
            if let Err(error) = read_response_head(&mut endless, &mut scanned, &Method::GET, false) {
                panic!("{error} at {}", endless.len());
            }
        }
        endless.resize(MAX_HEAD, b'x');
        let refused = read_response_head(&mut endless, &mut scanned, &Method::GET, false).unwrap_err();
        assert_eq!(refused, WireError::HeadTooLarge, "a head that never ends is refused at its bound");
    }

    fn head(bytes: &[u8]) -> ResponseHead {
        match read(bytes, Method::GET, false).0 {
            Ok(Parsed::Complete(head)) => head,
            other => panic!("not a whole head: {other:?}"),
        }
    }

    fn written(
        method: &Method,
        target: &str,
        fields: &HeaderMap,
        replacements: &Replacements,
        body: RequestBody,
    ) -> String {
        let mut out = Vec::new();
        write_request_head(&mut out, &RequestHead { method, target, fields, replacements, body });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_request_head_states_its_framing_once() {
        let mut fields = HeaderMap::new();
        fields.insert(header::HOST, HeaderValue::from_static("s"));
        let none = Replacements::default();
        assert_eq!(
            written(&Method::GET, "/a?b", &fields, &none, RequestBody::None),
            "GET /a?b HTTP/1.1\r\nhost: s\r\n\r\n"
        );
        let empty_post = RequestBody::of(&Method::POST, Some(0));
        assert_eq!(
            written(&Method::POST, "/u", &fields, &none, empty_post),
            "POST /u HTTP/1.1\r\nhost: s\r\ncontent-length: 0\r\n\r\n"
        );
        let streamed = RequestBody::of(&Method::PUT, None);
        assert_eq!(
            written(&Method::PUT, "/u", &HeaderMap::new(), &none, streamed),
            "PUT /u HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(RequestBody::of(&Method::GET, Some(0)), RequestBody::None);
        assert_eq!(RequestBody::of(&Method::GET, Some(3)), RequestBody::Length(3));
    }

    #[test]
    fn replaced_fields_are_left_out_and_their_replacements_written_once() {
        let mut fields = HeaderMap::new();
        fields.append(header::COOKIE, HeaderValue::from_static("a=1"));
        fields.append(header::COOKIE, HeaderValue::from_static("b=2"));
        fields.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer theirs"));
        fields.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut replacements = Replacements::default();
        replacements.set(header::AUTHORIZATION, None);
        replacements.set(header::COOKIE, Some(HeaderValue::from_static("b=2")));
        assert_eq!(
            written(&Method::GET, "/", &fields, &replacements, RequestBody::None),
            "GET / HTTP/1.1\r\naccept: */*\r\ncookie: b=2\r\n\r\n"
        );
    }

    #[test]
    fn a_head_is_read_once_whole_and_leaves_the_body() {
        let (parsed, buf) = read(b"HTTP/1.1 200 OK\r\ncontent-le", Method::GET, false);
        assert!(matches!(parsed, Ok(Parsed::Partial)));
        assert_eq!(buf.len(), 27, "nothing consumed");
        let (parsed, buf) =
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\nokNEXT", Method::GET, false);
        let Ok(Parsed::Complete(head)) = parsed else { panic!("{parsed:?}") };
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert!(head.headers.get(header::CONTENT_LENGTH).is_none(), "framing is the proxy's own business");
        let values: Vec<_> = head.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"okNEXT");
    }

    #[test]
    fn interim_responses_are_skipped() {
        let (parsed, buf) = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", Method::POST, false);
        assert!(matches!(parsed, Ok(Parsed::Interim)));
        assert_eq!(&buf[..], b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases: [(&[u8], Method, Framing, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 9\r\n\r\n",
                Method::GET,
                Framing::Chunked,
                true,
            ),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", Method::GET, Framing::UntilClose, false),
            (b"HTTP/1.1 200 OK\r\n\r\n", Method::GET, Framing::UntilClose, false),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD, Framing::Empty, true),
            (b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n", Method::GET, Framing::Empty, true),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\ncontent-length: 3\r\n\r\n",
                Method::GET,
                Framing::Length(3),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\n",
                Method::GET,
                Framing::Length(3),
                false,
            ),
            (b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n", Method::GET, Framing::Length(3), false),
        ];
        for (bytes, method, framing, keep_alive) in cases {
            let Ok(Parsed::Complete(head)) = read(bytes, method.clone(), false).0 else { panic!("{bytes:?}") };
            assert_eq!((head.framing, head.keep_alive), (framing, keep_alive), "{}", String::from_utf8_lossy(bytes));
            assert!(head.headers.get(header::TRANSFER_ENCODING).is_none());
            let described = method == Method::HEAD || head.status == StatusCode::NOT_MODIFIED;
            assert_eq!(head.headers.contains_key(header::CONTENT_LENGTH), described, "only as metadata");
        }
    }

    #[test]
    fn ambiguous_or_oversized_answers_are_refused() {
        let refused: [(&[u8], WireError); 5] = [
            (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", WireError::Length),
            (b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\n", WireError::Length),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n", WireError::Length),
            (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", WireError::UnaskedSwitch),
            (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", WireError::Head(httparse::Error::HeaderName)),
        ];
        for (bytes, error) in refused {
            assert_eq!(read(bytes, Method::GET, false).0.unwrap_err(), error, "{}", String::from_utf8_lossy(bytes));
        }
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.resize(MAX_HEAD, b'a');
        assert_eq!(read(&endless, Method::GET, false).0.unwrap_err(), WireError::HeadTooLarge);
        let Ok(Parsed::Complete(switched)) = read(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", Method::GET, true).0
        else {
            panic!("an asked-for switch is a head")
        };
        assert_eq!(switched.framing, Framing::Switched);
        assert_eq!(head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").framing, Framing::Length(0));
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<u8>, WireError> {
        let (mut state, mut buf, mut body) = (Chunked::Size, BytesMut::new(), Vec::new());
        for piece in chunks {
            buf.extend_from_slice(piece);
            loop {
                match state.decode(&mut buf)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::More => break,
                    Decoded::End => {
                        assert!(buf.is_empty(), "nothing after the end");
                        return Ok(body);
                    }
                }
            }
        }
        panic!("no end: {state:?}")
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let whole: &[u8] = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\ntrailer: x\r\n\r\n";
        assert_eq!(decode_all(&[whole]).unwrap(), b"hello0123456789");
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap(), b"hello0123456789");
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let bad: [&[u8]; 6] = [
            b"5\r\nhelloXX0\r\n\r\n",
            b"g\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"1234567890123456\r\n",
            b"5\n\r\nhello\r\n0\r\n\r\n",
            b"-1\r\n",
        ];
        for bytes in bad {
            assert_eq!(
                decode_all(&[bytes, b"\r\n"]).unwrap_err(),
                WireError::Chunk,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = vec![b'0'; MAX_LINE + 8];
        assert_eq!(decode_all(&[&long]).unwrap_err(), WireError::Chunk);
    }
}
