//! The malformed-model corpus (tests/malformed): `petasos inspect` must reject each file with a
//! one-line error naming the problem and exit status 1 — no panic, no hang, bounded memory.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/malformed")
}

/// Peak resident memory of all waited-for children, in bytes.
fn children_max_rss() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    if rc != 0 {
        return 0;
    }
    ru.ru_maxrss as u64 * 1024
}

#[test]
fn malformed_corpus_gets_one_line_errors() {
    let dir = corpus();
    let manifest =
        std::fs::read_to_string(dir.join("expected.tsv")).expect("tests/malformed/expected.tsv");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (file, phrase) = line.split_once('\t').expect("file<TAB>phrase");
        let path = dir.join(file);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_petasos"))
            .arg("inspect")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn petasos");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let rss = children_max_rss();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let problem = match status {
            None => Some("hung (killed after 20 s)".to_string()),
            Some(s) if s.code() != Some(1) => {
                Some(format!("exit status {:?}, stderr: {stderr}", s.code()))
            }
            _ if lines.len() != 1 => Some(format!("expected one line of error, got: {stderr:?}")),
            _ if !lines[0].starts_with("petasos: error:") => {
                Some(format!("not an error line: {}", lines[0]))
            }
            _ if !lines[0].contains(phrase) => {
                Some(format!("error does not mention '{phrase}': {}", lines[0]))
            }
            _ if rss > 64 * 1024 * 1024 + 2 * size => {
                Some(format!("peak memory {rss} bytes for a {size}-byte file"))
            }
            _ => None,
        };
        println!("{file:<28} {}", lines.first().copied().unwrap_or(""));
        if let Some(p) = problem {
            failures.push(format!("{file}: {p}"));
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "the corpus should hold at least 20 files, has {checked}"
    );
    assert!(
        failures.is_empty(),
        "malformed files not handled:\n{}",
        failures.join("\n")
    );
}
