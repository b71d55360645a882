//! Shared by the tests that talk to the Linux kernel over TUN: a network namespace of the
//! test's own (deleted with everything started in it), the root check that skips (or,
//! under `CI=true`, fails), and small file and counter helpers. Included with `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// True when we may create namespaces; otherwise says why the test is skipped (or fails in CI).
pub fn privileged(test: &str) -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.is_ok_and(|u| u == "0") {
        return true;
    }
    let why = format!("{test}: needs root to create a network namespace and a TUN device");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; CI=true, so this is a failure, not a skip");
    }
    eprintln!("skipped: {why} (run the tests as root to include it)");
    false
}

/// In the child test `Netns::run_child_test` runs: whether `env` says this process is
/// inside the test's namespace (if not, it says so, and the test does nothing).
pub fn in_child(env: &str) -> bool {
    if std::env::var(env).is_err() {
        eprintln!("not in the test's namespace: nothing done");
        return false;
    }
    true
}

/// The TUN interface the child tests open: tun0, synack 198.18.0.2/15, the kernel
/// 198.18.0.1.
pub fn tun0_config() -> synack::tun::InterfaceConfig {
    synack::tun::InterfaceConfig::new(
        "tun0",
        "198.18.0.2/15".parse().unwrap(),
        "198.18.0.1".parse().unwrap(),
    )
}

/// A network namespace of our own, deleted (with every process we started in it) on drop.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
    pub dir: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    pub fn new() -> Netns {
        let name = format!(
            "synack-t{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns {
            dir: std::env::temp_dir().join(&name),
            name,
            children: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        std::fs::create_dir_all(&ns.dir).unwrap();
        ns
    }

    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Run this test binary's ignored test `test` inside the namespace, with `env` set
    /// (and `files` open descriptors allowed, when given), and check that it passed: the
    /// work of a test that must run in the namespace, in this process's language.
    pub fn run_child_test(&self, test: &str, env: &str, files: Option<u32>) {
        let exe = std::env::current_exe().unwrap();
        let limit = files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let script = format!(
            "{limit}exec '{}' --ignored --exact {test} --nocapture --test-threads=1",
            exe.display()
        );
        let out = self
            .cmd(&["sh", "-c", &script])
            .env(env, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the child failed:\n{text}");
        assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
    }

    /// Run to completion; panics with its output if it fails.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = self.cmd(argv).output().expect("ip netns exec runs");
        assert!(
            out.status.success(),
            "{argv:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start in the background; killed when the namespace goes.
    pub fn spawn(&mut self, argv: &[&str], stdin: Stdio) -> &mut Child {
        let child = self
            .cmd(argv)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// Wait until the kernel side of `tun` has `addr` (the synack process set it up).
    pub fn wait_for_addr(&self, tun: &str, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self
                .cmd(&["ip", "-o", "addr", "show", "dev", tun])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains(addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{tun} never got {addr}");
    }

    /// Wait until a kernel-side server listens on TCP `port` in the namespace.
    pub fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let suffix = format!(":{port}");
        while Instant::now() < deadline {
            let out = self.exec(&["ss", "-tlnH"]);
            let listening = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().nth(3))
                .any(|local| local.ends_with(&suffix));
            if listening {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nothing listens on port {port} in the namespace");
    }

    /// `ss -tan` lines inside the namespace.
    pub fn ss(&self) -> String {
        String::from_utf8_lossy(&self.exec(&["ss", "-tan"]).stdout).to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A file of `len` pseudo-random bytes.
pub fn random_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).unwrap();
}

/// One kernel counter from `nstat -az` inside the namespace.
pub fn nstat(ns: &Netns, counter: &str) -> u64 {
    let out = ns.exec(&["nstat", "-az", counter]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(counter)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("nstat has no {counter}"))
}

/// The command line of `synack serve` (the binary at `bin`) on tun0 (synack
/// 198.18.0.2/15, the kernel 198.18.0.1), port 8080, serving `app`, then `extra` flags.
pub fn serve_argv<'a>(bin: &'a str, app: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        bin,
        "serve",
        "--tun",
        "tun0",
        "--addr",
        "198.18.0.2/15",
        "--kernel-addr",
        "198.18.0.1",
        "--port",
        "8080",
        "--app",
        app,
    ];
    argv.extend_from_slice(extra);
    argv
}

/// Start that `synack serve` in `ns`; returns once the kernel side of the interface is up.
pub fn spawn_serve(ns: &mut Netns, bin: &str, app: &str, extra: &[&str]) {
    ns.spawn(&serve_argv(bin, app, extra), Stdio::null());
    ns.wait_for_addr("tun0", "198.18.0.1");
}
