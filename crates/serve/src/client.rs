//! A minimal blocking HTTP/1.1 client for the load benchmark and the tests: one TCP connection
//! per request ([`request`]), or one kept alive across requests ([`Connection`]), as a client
//! library's session does. Written by hand on purpose: the tests must send what real clients' libraries
//! refuse to (invalid UTF-8, a body that stalls, a connection dropped mid-request), and the
//! benchmark's 64 clients should cost the 2 cores they share with the server as little as possible.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: not JSON ({e}): {}", self.status, self.text()))
    }
}

/// Connects and writes the request head (`Connection: close`) and `body`.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<TcpStream> {
    let mut stream = connect(addr)?;
    stream.write_all(&request_bytes(addr, method, path, content_type, body, "Connection: close\r\n"))?;
    Ok(stream)
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

/// A request's bytes: head (with `extra_headers`, each ending in CRLF) and body.
fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    extra_headers: &str,
) -> Vec<u8> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// Reads a whole response (the server closes the connection after it).
pub fn receive(mut stream: TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response"))
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    receive(send(addr, method, path, content_type, body)?)
}

pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> std::io::Result<Response> {
    request(addr, "POST", path, "application/json", body.to_string().as_bytes())
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, "text/plain", b"")
}

/// One keep-alive connection: requests go one after another over the same socket.
pub struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self { stream: connect(addr)?, addr, buf: Vec::new() })
    }

    /// POSTs `body` as JSON and reads the response, which must carry a Content-Length.
    pub fn post_json(&mut self, path: &str, body: &serde_json::Value) -> std::io::Result<Response> {
        let body = body.to_string();
        let request = request_bytes(self.addr, "POST", path, "application/json", body.as_bytes(), "");
        self.stream.write_all(&request)?;
        self.read_response()
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(&mut chunk)?;
        };
        let head = parse(&self.buf[..head_end]).ok_or_else(|| bad("malformed HTTP response head"))?;
        let length: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("keep-alive response without Content-Length"))?;
        while self.buf.len() < head_end + length {
            self.fill(&mut chunk)?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok(Response { body, ..head })
    }

    fn fill(&mut self, chunk: &mut [u8]) -> std::io::Result<()> {
        let n = self.stream.read(chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Some(Response { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
