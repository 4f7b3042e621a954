//! A small HTTP/1.1 server over a store folder that misbehaves on request:
//! drops connections, answers 503, ignores or lies about ranges, changes
//! ETags, drips bytes, sends endless or tampered bodies. Plain threads and
//! `std::net`, so it behaves exactly as written.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do wrong, for requests whose path contains a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the headers, then close after this many body bytes.
    DropAfter(u64),
    /// Answer 503.
    Unavailable,
    /// Answer 200 with the whole file even to a Range request.
    IgnoreRange,
    /// Answer 206 with a Content-Range one byte off.
    WrongContentRange,
    /// A different ETag on every answer.
    ChangingEtag,
    /// Send this many bytes per second.
    Throttle(u64),
    /// A body that never ends (no Content-Length).
    Endless,
    /// Announce a Content-Length larger than the file.
    LyingLength,
    /// Flip one byte in the middle of the body.
    Tamper,
    /// 404.
    Missing,
    /// Answer with this JSON (for `POST /api/version/check`).
    Json(String),
}

#[derive(Debug, Default)]
struct Rules {
    /// (pattern, fault, remaining uses; None = forever)
    rules: Vec<(String, Fault, Option<u32>)>,
}

/// A running misbehaving server.
#[derive(Debug)]
pub struct FaultyServer {
    addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    stop: Arc<AtomicBool>,
    /// Body bytes sent, by path.
    sent: Arc<Mutex<HashMap<String, u64>>>,
    requests: Arc<AtomicU64>,
}

impl FaultyServer {
    /// Serves `root` on an ephemeral loopback port.
    pub fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let rules = Arc::new(Mutex::new(Rules::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let (root, thread_rules, thread_stop, thread_sent, thread_requests) = (
            root.to_path_buf(),
            Arc::clone(&rules),
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&requests),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, rules, sent, requests) = (
                    root.clone(),
                    Arc::clone(&thread_rules),
                    Arc::clone(&thread_sent),
                    Arc::clone(&thread_requests),
                );
                std::thread::spawn(move || {
                    let _ = handle(stream, &root, &rules, &sent, &requests);
                });
            }
        });
        Self {
            addr,
            rules,
            stop,
            sent,
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to requests whose path contains `pattern`, `times`
    /// times (or forever with `None`). Earlier rules win.
    pub fn add(&self, pattern: &str, fault: Fault, times: Option<u32>) {
        self.rules
            .lock()
            .expect("rules")
            .rules
            .push((pattern.to_owned(), fault, times));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().expect("rules").rules.clear();
    }

    /// Body bytes sent for paths containing `pattern`.
    pub fn sent(&self, pattern: &str) -> u64 {
        self.sent
            .lock()
            .expect("sent")
            .iter()
            .filter(|(path, _)| path.contains(pattern))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests served.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn take_fault(rules: &Mutex<Rules>, path: &str) -> Option<Fault> {
    let mut rules = rules.lock().expect("rules");
    let index = rules.rules.iter().position(|(pattern, _, left)| {
        path.contains(pattern.as_str()) && left.is_none_or(|n| n > 0)
    })?;
    let (_, fault, left) = &mut rules.rules[index];
    if let Some(n) = left {
        *n -= 1;
    }
    Some(fault.clone())
}

fn handle(
    stream: TcpStream,
    root: &Path,
    rules: &Mutex<Rules>,
    sent: &Mutex<HashMap<String, u64>>,
    requests: &AtomicU64,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("/").to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        if let Some(length) = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let fault = take_fault(rules, &path);
        if !respond(
            &mut out,
            root,
            &method,
            &path,
            &headers,
            fault.as_ref(),
            sent,
        )? {
            return Ok(());
        }
    }
}

fn write_head(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

/// Returns false when the connection must close.
fn respond(
    out: &mut TcpStream,
    root: &Path,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    fault: Option<&Fault>,
    sent: &Mutex<HashMap<String, u64>>,
) -> std::io::Result<bool> {
    let json = |out: &mut TcpStream, status: &str, body: &str| -> std::io::Result<bool> {
        write_head(
            out,
            status,
            &[
                ("content-type", "application/json".into()),
                ("content-length", body.len().to_string()),
            ],
        )?;
        out.write_all(body.as_bytes())?;
        Ok(true)
    };
    match fault {
        Some(Fault::Unavailable) => {
            return json(out, "503 Service Unavailable", "{\"error\": \"try later\"}");
        }
        Some(Fault::Missing) => return json(out, "404 Not Found", "{\"error\": \"no\"}"),
        Some(Fault::Json(body)) => return json(out, "200 OK", body),
        _ => {}
    }
    if method != "GET" && method != "HEAD" {
        return json(out, "404 Not Found", "{\"error\": \"no API here\"}");
    }
    let relative = percent_decode(path.trim_start_matches('/'));
    if relative.split('/').any(|c| c == ".." || c.starts_with('.')) {
        return json(out, "404 Not Found", "{\"error\": \"no\"}");
    }
    let file: PathBuf = root.join(&relative);
    let Ok(mut bytes) = std::fs::read(&file) else {
        return json(out, "404 Not Found", "{\"error\": \"no such file\"}");
    };
    let len = bytes.len() as u64;
    let etag = match fault {
        Some(Fault::ChangingEtag) => {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            format!("\"v{}\"", COUNTER.fetch_add(1, Ordering::Relaxed))
        }
        _ => format!("\"{len:x}\""),
    };
    if fault == Some(&Fault::Tamper) && !bytes.is_empty() {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
    }
    let mut range = headers.get("range").and_then(|r| parse_range(r, len));
    if let Some(validator) = headers.get("if-range")
        && *validator != etag
    {
        range = None;
    }
    if fault == Some(&Fault::IgnoreRange) {
        range = None;
    }
    let (status, start, end) = match range {
        Some((first, last)) => ("206 Partial Content", first, last + 1),
        None => ("200 OK", 0, len),
    };
    let mut head: Vec<(&str, String)> = vec![
        ("etag", etag),
        ("accept-ranges", "bytes".into()),
        ("content-type", "application/octet-stream".into()),
    ];
    if range.is_some() {
        let (first, last) = if fault == Some(&Fault::WrongContentRange) {
            (start + 1, end)
        } else {
            (start, end - 1)
        };
        head.push(("content-range", format!("bytes {first}-{last}/{len}")));
    }
    match fault {
        Some(Fault::Endless) => head.push(("connection", "close".into())),
        Some(Fault::LyingLength) => head.push(("content-length", (end - start + 1000).to_string())),
        _ => head.push(("content-length", (end - start).to_string())),
    }
    write_head(out, status, &head)?;
    if method == "HEAD" {
        return Ok(true);
    }
    let body = &bytes[usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0)];
    let record = |n: u64| {
        *sent
            .lock()
            .expect("sent")
            .entry(path.to_owned())
            .or_default() += n;
    };
    match fault {
        Some(Fault::DropAfter(n)) => {
            let cut = usize::try_from(*n).unwrap_or(usize::MAX).min(body.len());
            out.write_all(&body[..cut])?;
            record(cut as u64);
            out.flush()?;
            let _ = out.shutdown(std::net::Shutdown::Both);
            Ok(false)
        }
        Some(Fault::Throttle(rate)) => {
            let chunk = usize::try_from((rate / 10).max(1)).unwrap_or(1);
            for piece in body.chunks(chunk) {
                out.write_all(piece)?;
                record(piece.len() as u64);
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(true)
        }
        Some(Fault::Endless) => {
            out.write_all(body)?;
            record(body.len() as u64);
            let filler = vec![0u8; 64 * 1024];
            loop {
                out.write_all(&filler)?;
                record(filler.len() as u64);
            }
        }
        Some(Fault::LyingLength) => {
            out.write_all(body)?;
            record(body.len() as u64);
            let _ = out.shutdown(std::net::Shutdown::Both);
            Ok(false)
        }
        _ => {
            out.write_all(body)?;
            record(body.len() as u64);
            Ok(true)
        }
    }
}

fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first: u64 = first.parse().ok()?;
    let last: u64 = if last.is_empty() {
        len.checked_sub(1)?
    } else {
        last.parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (first <= last).then_some((first, last))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
