//! A loopback HTTP/1.1 server for the fetch tests: 127.0.0.1 only, one thread, GET with
//! `Range: bytes=N-`, and two faults on demand (a connection that breaks part-way, an
//! error status). It stops when dropped, and by itself after a minute in any case.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server does with requests.
#[derive(Default)]
pub struct Behaviour {
    /// Path (e.g. `/cifar-10-binary.tar.gz`) to body; other paths get 404.
    pub files: HashMap<String, Vec<u8>>,
    /// Break the next this-many full-body responses after half the body.
    pub break_next: usize,
    /// Answer every request with this status and no body.
    pub status: Option<u16>,
    /// Ignore Range headers (answer 200 with the whole body).
    pub ignore_range: bool,
}

pub struct Server {
    pub port: u16,
    pub behaviour: Arc<Mutex<Behaviour>>,
    /// `Range` headers received, in order (`None`: no Range).
    pub ranges: Arc<Mutex<Vec<Option<u64>>>>,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r, s, n) = (
            behaviour.clone(),
            ranges.clone(),
            stop.clone(),
            requests.clone(),
        );
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        let _ = serve(stream, &b, &r);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            behaviour,
            ranges,
            stop,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    behaviour: &Mutex<Behaviour>,
    ranges: &Mutex<Vec<Option<u64>>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    ranges.lock().unwrap().push(range);
    let mut out = stream;
    let mut b = behaviour.lock().unwrap();
    if let Some(status) = b.status {
        return write!(
            out,
            "HTTP/1.1 {status} Fault\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let Some(body) = b.files.get(&path).cloned() else {
        return write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    let start = if b.ignore_range { None } else { range };
    let (status, slice) = match start {
        Some(s) if s as usize >= body.len() => {
            return write!(out, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        Some(s) => ("206 Partial Content", &body[s as usize..]),
        None => ("200 OK", &body[..]),
    };
    let mut header = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        slice.len()
    );
    if let Some(s) = start {
        header += &format!(
            "Content-Range: bytes {s}-{}/{}\r\n",
            body.len() - 1,
            body.len()
        );
    }
    out.write_all(header.as_bytes())?;
    out.write_all(b"\r\n")?;
    if b.break_next > 0 {
        b.break_next -= 1;
        out.write_all(&slice[..slice.len() / 2])?;
        out.flush()?;
        return out.shutdown(std::net::Shutdown::Both);
    }
    out.write_all(slice)
}
