//! Architecture rules, checked on the source (after TigerBeetle's `tidy`).
//!
//! The engine must stay replayable and the shell thin, so each layer may only depend on the layers
//! below it, the pure layers may not touch clocks, sockets, files, the environment or threads,
//! and shell modules may not call each other (they talk through the runtime, sharing only the
//! leaf modules `hub`, `clock` and `metrics`). The compiler checks part of this (the pure layers
//! build without the `runtime` feature); this test checks the rest.

use std::fs;
use std::path::{Path, PathBuf};

/// The top-level module a source file belongs to (`engine`, `wire`, `link`, ...).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix("src").unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test modules (tests may use the clock and such).
fn non_test_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// Modules every shell module may use.
const LEAVES: &[&str] = &["engine", "wire", "config", "hub", "clock", "metrics", "tls"];

/// What each top-level module may import from this crate.
fn allowed(module: &str) -> Option<&'static [&'static str]> {
    Some(match module {
        "engine" => &["engine"],
        "wire" | "config" => &["engine", "wire", "config"],
        "clock" => &["engine"],
        "hub" | "metrics" => &["engine", "clock", "hub", "metrics"],
        // Certificates and handshakes, for every module that opens or accepts connections.
        "tls" => &["engine", "config", "hub", "tls"],
        "runtime" | "main" | "lib" => return None,
        // Shell modules: the leaves and themselves.
        _ => LEAVES,
    })
}

#[test]
fn layers_only_depend_downwards() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let module = module_of(path);
        let Some(allowed) = allowed(&module) else { continue };
        let text = fs::read_to_string(path).unwrap();
        for (n, line) in non_test_code(&text).lines().enumerate() {
            for used in line.split("crate::").skip(1) {
                let target: String =
                    used.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !target.is_empty() && target != module && !allowed.contains(&target.as_str()) {
                    violations.push(format!(
                        "{}:{}: {module} uses crate::{target}",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "dependencies against the layering:\n{}", violations.join("\n"));
}

#[test]
fn pure_layers_touch_no_clock_socket_file_env_or_thread() {
    let banned = [
        "tokio",
        "std::fs",
        // IP address types are plain values; sockets and name resolution are I/O.
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "to_socket_addrs",
        "std::env",
        "std::thread",
        "std::process",
        "Instant::now",
        "SystemTime",
        "thread_rng",
        "println!",
        "eprintln!",
    ];
    let mut files = Vec::new();
    for dir in ["src/engine", "src/wire", "src/config"] {
        sources(Path::new(dir), &mut files);
    }
    let mut violations = Vec::new();
    for path in &files {
        let is_test = path.components().any(|c| c.as_os_str() == "tests")
            || path
                .file_name()
                .is_some_and(|f| f == "tests.rs" || f.to_string_lossy().ends_with("_test.rs"));
        if is_test {
            continue;
        }
        let text = fs::read_to_string(path).unwrap();
        for (n, line) in non_test_code(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in banned.iter().filter(|w| code.contains(*w)) {
                violations.push(format!("{}:{}: {word}", path.display(), n + 1));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "I/O or nondeterminism in the pure layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_leftovers_in_shipped_code() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let mut violations = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in ["dbg!(", "todo!(", "unimplemented!(", "FIXME", "XXX"] {
                if line.contains(word) {
                    violations.push(format!("{}:{}: {word}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
