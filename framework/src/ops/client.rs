//! A minimal blocking HTTP/1.1 client: forwards state queries between instances and lets the
//! CLI and tests call an ops server without another dependency.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An HTTP response: status code and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body, decoded as UTF-8 (lossy).
    pub body: String,
}

/// Sends `method path` to `address` (`host:port`) with `headers` and an empty body, and reads
/// the whole response (the connection is closed after it).
///
/// # Errors
/// The server cannot be reached within `timeout`, or its answer is not HTTP.
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let target = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("`{address}` resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    // Another instance's answer is not trusted to be small: read one byte past the bound to
    // tell a full answer from a truncated one.
    (&mut stream)
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut raw)?;
    if raw.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(invalid(format!(
            "the answer of {address} exceeds {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    parse(&raw)
}

/// The largest answer read from a server (forwarded state queries, instance lists).
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn parse(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers in the response".to_owned()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP status line: {head:?}")))?;
    let chunked = lines.any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size".to_owned()))?;
        let size_text = String::from_utf8_lossy(&body[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        body = &body[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body
            .get(..size)
            .ok_or_else(|| invalid("truncated chunk".to_owned()))?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

/// Percent-encodes `text` for use as one path segment.
pub fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies_are_read() {
        let plain = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nnop").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (404, "nop"));
        let chunked = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (200, "Wikipedia"));
        assert!(parse(b"garbage").is_err());
    }

    /// A peer that answers with an endless body: the client stops reading at the bound and
    /// says why, so a hostile or broken instance cannot make it buffer without limit.
    #[test]
    fn an_answer_over_the_bound_is_refused_and_read_no_further() {
        use std::net::TcpListener;
        // What the peer would send if nobody stopped reading: well past the bound plus
        // whatever the two sockets buffer.
        const OFFERED: u64 = 8 * MAX_RESPONSE_BYTES;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = std::thread::spawn(move || -> u64 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551615\r\n\r\n")
                .unwrap();
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = 0u64;
            // Until the client hangs up (the write fails) or everything is sent.
            while sent < OFFERED && stream.write_all(&chunk).is_ok() {
                sent += chunk.len() as u64;
            }
            sent
        });
        let err = http_request(&address, "GET", "/big", &[], Duration::from_secs(30)).unwrap_err();
        let sent = peer.join().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(
            err.to_string()
                .contains(&format!("exceeds {MAX_RESPONSE_BYTES} bytes")),
            "{err}"
        );
        assert!(
            sent < OFFERED,
            "the client read all {sent} bytes offered instead of stopping at the bound"
        );
    }

    #[test]
    fn path_segments_keep_only_unreserved_bytes() {
        assert_eq!(encode_path_segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
