//! Just enough HTTP/1.1 for the hub's live view (`--monitor`): reading a
//! request head from bytes, and building a response as bytes. No sockets.
//!
//! HTTP is one more line protocol over TCP, like the hub's own: a request
//! is a request line (`GET /stats HTTP/1.1`), header lines (`Host: ...`),
//! and an empty line, each ending in CRLF. The monitor answers one request
//! per connection and closes it (`Connection: close`), so it never needs
//! to find where a body ends; it ignores any body.
//!
//! [`parse_head`] is called with everything received so far; it says
//! "need more", "here is the request", or which 4xx status to answer.

/// Longest request line accepted: past it, `414 URI Too Long`.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head (request line and headers): past it,
/// `431 Request Header Fields Too Large`.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted (past it, 431 too).
pub const MAX_HEADERS: usize = 100;

/// The statuses the monitor answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    UriTooLong,
    HeadersTooLarge,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::HeadersTooLarge => 431,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::UriTooLong => "URI Too Long",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// A request head that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without any `?query`.
    pub path: &'a str,
    /// Bytes of the head, the final empty line included.
    pub head_len: usize,
}

/// What [`parse_head`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head<'a> {
    /// No complete head yet, and nothing wrong so far: read more.
    Incomplete,
    Request(Request<'a>),
    /// Answer this status and close.
    Invalid(Status),
}

/// Splits off one line ending in `\n` (a `\r` before it is dropped).
fn next_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, end + 1))
}

/// RFC 9110 `token` characters (methods and header names).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads a request head from `buf` (everything received so far).
pub fn parse_head(buf: &[u8]) -> Head<'_> {
    let Some((line, mut at)) = next_line(buf) else {
        return if buf.len() > MAX_REQUEST_LINE {
            Head::Invalid(Status::UriTooLong)
        } else {
            Head::Incomplete
        };
    };
    if line.len() > MAX_REQUEST_LINE {
        return Head::Invalid(Status::UriTooLong);
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Head::Invalid(Status::BadRequest);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Invalid(Status::BadRequest);
    };
    if !is_token(method.as_bytes()) || !target.starts_with('/') {
        return Head::Invalid(Status::BadRequest);
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Head::Invalid(Status::BadRequest);
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => return Head::Invalid(Status::VersionNotSupported),
        _ => return Head::Invalid(Status::BadRequest),
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let mut headers = 0;
    loop {
        let Some((header, len)) = next_line(&buf[at..]) else {
            return if buf.len() > MAX_HEAD {
                Head::Invalid(Status::HeadersTooLarge)
            } else {
                Head::Incomplete
            };
        };
        at += len;
        if at > MAX_HEAD || headers > MAX_HEADERS {
            return Head::Invalid(Status::HeadersTooLarge);
        }
        if header.is_empty() {
            break;
        }
        headers += 1;
        // `name: value`; no space before the colon, no folded lines.
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            return Head::Invalid(Status::BadRequest);
        };
        if !is_token(&header[..colon]) || header[colon + 1..].contains(&0) {
            return Head::Invalid(Status::BadRequest);
        }
    }
    Head::Request(Request {
        method,
        path,
        head_len: at,
    })
}

/// What the monitor serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the HTML page.
    Page,
    /// `GET /stats`: the JSON.
    Stats,
    /// Anything else: this status.
    Error(Status),
}

/// Which resource a request asks for. `HEAD` is `GET` without the body.
pub fn route(request: &Request<'_>) -> Route {
    let resource = match request.path {
        "/" | "/index.html" => Route::Page,
        "/stats" => Route::Stats,
        _ => Route::Error(Status::NotFound),
    };
    match (request.method, resource) {
        ("GET" | "HEAD", r) => r,
        (_, Route::Error(status)) => Route::Error(status),
        _ => Route::Error(Status::MethodNotAllowed),
    }
}

/// A whole response: status line, headers, and `body` unless `head_only`.
/// Always `Connection: close` (one request per connection).
pub fn response(status: Status, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        body.len()
    );
    if status == Status::MethodNotAllowed {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error response (`404 Not Found\n`).
pub fn error_response(status: Status) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(status, "text/plain; charset=utf-8", body.as_bytes(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request<'_> {
        match parse_head(text.as_bytes()) {
            Head::Request(r) => r,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn invalid(bytes: &[u8]) -> Status {
        match parse_head(bytes) {
            Head::Invalid(s) => s,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    #[test]
    fn a_get_with_headers_parses() {
        let r = request("GET /stats?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nbody");
        assert_eq!((r.method, r.path), ("GET", "/stats"));
        assert_eq!(
            r.head_len,
            "GET /stats?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n".len()
        );
        // bare LF line ends too (nc, hand-typed requests)
        assert_eq!(request("GET / HTTP/1.0\n\n").path, "/");
    }

    #[test]
    fn a_head_in_pieces_is_incomplete_until_the_empty_line() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse_head(&full[..cut]), Head::Incomplete, "cut at {cut}");
        }
        assert!(matches!(parse_head(full), Head::Request(_)));
    }

    #[test]
    fn garbage_is_400() {
        for bad in [
            &b"hello\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET stats HTTP/1.1\r\n\r\n",
            b"GET /  HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        ] {
            assert_eq!(invalid(bad), Status::BadRequest);
        }
        assert_eq!(
            invalid(b"GET / HTTP/2.0\r\n\r\n"),
            Status::VersionNotSupported
        );
    }

    #[test]
    fn too_long_is_414_or_431() {
        let long_line = vec![b'a'; MAX_REQUEST_LINE + 1];
        assert_eq!(invalid(&long_line), Status::UriTooLong);
        let mut long_target = b"GET /".to_vec();
        long_target.extend(vec![b'a'; MAX_REQUEST_LINE]);
        long_target.extend(b" HTTP/1.1\r\n\r\n");
        assert_eq!(invalid(&long_target), Status::UriTooLong);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        while many.len() <= MAX_HEAD {
            many.extend(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(invalid(&many), Status::HeadersTooLarge);
    }

    #[test]
    fn routes_and_methods() {
        let route_of = |text: &str| route(&request(text));
        assert_eq!(route_of("GET / HTTP/1.1\r\n\r\n"), Route::Page);
        assert_eq!(route_of("HEAD /stats HTTP/1.1\r\n\r\n"), Route::Stats);
        assert_eq!(
            route_of("GET /nope HTTP/1.1\r\n\r\n"),
            Route::Error(Status::NotFound)
        );
        assert_eq!(
            route_of("POST /stats HTTP/1.1\r\n\r\n"),
            Route::Error(Status::MethodNotAllowed)
        );
        assert_eq!(
            route_of("DELETE /nope HTTP/1.1\r\n\r\n"),
            Route::Error(Status::NotFound)
        );
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let r = String::from_utf8(response(Status::Ok, "application/json", b"{}", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\r\nContent-Length: 2\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n{}"), "{r}");
        let head = String::from_utf8(response(Status::Ok, "text/html", b"abc", true)).unwrap();
        assert!(head.ends_with(
            "Content-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ));
        let e = String::from_utf8(error_response(Status::MethodNotAllowed)).unwrap();
        assert!(e.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && e.contains("Allow: GET"));
    }
}
