//! `synack serve`: a TCP server on synack's side of a TUN interface, reachable from the
//! kernel (curl, nc, python) on the other side. Applications: echo, discard,
//! chargen[=BYTES] (sends, then closes first) and http=DIR (static files, HTTP/1.1).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use clap::Args;
use synack::net::{TcpListener, TcpStream};

use crate::tun_args::TunArgs;

/// Options of `synack serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub tun: TunArgs,
    /// Port to listen on (on every --addr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// What to serve: echo, discard, chargen[=BYTES] or http=DIR.
    #[arg(long, default_value = "echo", value_parser = App::from_str)]
    pub app: App,
    /// Never close accepted connections (reproduces the CLOSE_WAIT leak against a real kernel).
    #[arg(long)]
    pub no_close: bool,
}

/// A server application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// Send back what arrives.
    Echo,
    /// Read and drop everything.
    Discard,
    /// Send this many bytes of the RFC 864 pattern, then close first.
    Chargen(u64),
    /// Serve files from this directory over HTTP/1.1.
    Http(PathBuf),
}

impl FromStr for App {
    type Err = String;
    fn from_str(s: &str) -> Result<App, String> {
        let (name, arg) = s.split_once('=').unwrap_or((s, ""));
        match (name, arg) {
            ("echo", "") => Ok(App::Echo),
            ("discard", "") => Ok(App::Discard),
            ("chargen", "") => Ok(App::Chargen(1 << 20)),
            ("chargen", n) => n
                .parse()
                .map(App::Chargen)
                .map_err(|_| format!("chargen={n}: give a number of bytes")),
            ("http", dir) if !dir.is_empty() => Ok(App::Http(PathBuf::from(dir))),
            ("http", _) => Err("http needs a directory: --app http=DIR".into()),
            _ => Err(format!(
                "unknown app '{s}': use echo, discard, chargen[=BYTES] or http=DIR"
            )),
        }
    }
}

/// Run `synack serve` until killed; returns the exit status on failure to start.
pub fn run(args: &ServeArgs) -> i32 {
    if let App::Http(dir) = &args.app {
        if !dir.is_dir() {
            eprintln!(
                "synack serve: {} is not a directory; give --app http=DIR an existing directory",
                dir.display()
            );
            return 2;
        }
    }
    let iface = match args.tun.open("serve") {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut listeners = Vec::new();
    for cidr in &args.tun.addr {
        let addr = SocketAddr::new(cidr.addr, args.port);
        match TcpListener::bind(&iface, addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("synack serve: cannot listen on {addr}: {e}");
                return 1;
            }
        }
    }
    eprintln!(
        "synack serve: {:?} on {} port {} (kernel side: {})",
        args.app,
        args.tun.tun,
        args.port,
        args.tun
            .kernel_addr
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Connections kept open on purpose with --no-close.
    let leaked: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let mut threads = Vec::new();
    for l in listeners {
        let (app, no_close, leaked) = (args.app.clone(), args.no_close, Arc::clone(&leaked));
        threads.push(std::thread::spawn(move || loop {
            let (stream, _) = match l.accept() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("synack serve: accept failed: {e}");
                    continue;
                }
            };
            let (app, leaked) = (app.clone(), Arc::clone(&leaked));
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = serve_one(&app, &mut stream);
                if no_close {
                    leaked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(stream);
                }
            });
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    0
}

fn serve_one(app: &App, s: &mut TcpStream) -> io::Result<()> {
    match app {
        App::Echo => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                s.write_all(&buf[..n])?;
            }
        }
        App::Discard => {
            let mut buf = vec![0u8; 64 * 1024];
            while s.read(&mut buf)? > 0 {}
            Ok(())
        }
        App::Chargen(total) => {
            // RFC 864: lines of 72 printable characters, each starting one later.
            let mut sent = 0u64;
            let mut line = 0usize;
            while sent < *total {
                let mut chunk = Vec::with_capacity(74 * 64);
                for _ in 0..64 {
                    chunk.extend((0..72).map(|i| b' ' + ((line + i) % 95) as u8));
                    chunk.extend_from_slice(b"\r\n");
                    line += 1;
                }
                let take = chunk.len().min((*total - sent) as usize);
                s.write_all(&chunk[..take])?;
                sent += take as u64;
            }
            s.shutdown(Shutdown::Write)
        }
        App::Http(dir) => serve_http(dir, s),
    }
}

/// HTTP/1.1 static files with keep-alive: enough for curl, browsers and benchmarks.
fn serve_http(dir: &Path, s: &mut TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(s.try_clone()?);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut keep_alive = request.trim_end().ends_with("HTTP/1.1");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let h = header.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if h == "connection: close" {
                keep_alive = false;
            } else if h == "connection: keep-alive" {
                keep_alive = true;
            }
        }
        let mut parts = request.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let (status, body) = match (method, resolve(dir, target)) {
            ("GET" | "HEAD", Some(path)) => match std::fs::read(&path) {
                Ok(bytes) => ("200 OK", bytes),
                Err(_) => ("404 Not Found", b"not found\n".to_vec()),
            },
            ("GET" | "HEAD", None) => ("404 Not Found", b"not found\n".to_vec()),
            _ => ("405 Method Not Allowed", b"only GET and HEAD\n".to_vec()),
        };
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: {connection}\r\nserver: synack\r\n\r\n", body.len());
        // One write for the whole response: written as two, Nagle's algorithm would hold
        // the body's first segment until the client ACKed the headers, which a kernel
        // client delays by up to 40 ms (RFC 1122 4.2.3.2), on every request.
        let mut response = head.into_bytes();
        if method != "HEAD" {
            response.extend_from_slice(&body);
        }
        s.write_all(&response)?;
        if !keep_alive {
            return s.shutdown(Shutdown::Write);
        }
    }
}

/// Map a request target to a file under `dir`, refusing anything that climbs out of it.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split('?').next().unwrap_or("/");
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = if rel.as_os_str().is_empty() {
        dir.join("index.html")
    } else {
        dir.join(rel)
    };
    full.is_file().then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_parse_from_their_flag_values() {
        assert_eq!("echo".parse(), Ok(App::Echo));
        assert_eq!("chargen=100".parse(), Ok(App::Chargen(100)));
        assert_eq!("http=/srv".parse(), Ok(App::Http("/srv".into())));
        assert!("http".parse::<App>().is_err());
        assert!("gopher".parse::<App>().unwrap_err().contains("unknown app"));
    }

    #[test]
    fn http_paths_cannot_leave_the_directory() {
        let dir = std::env::temp_dir();
        assert_eq!(resolve(&dir, "/../etc/passwd"), None);
        assert_eq!(resolve(&dir, "/a/../../x"), None);
    }
}
