//! End to end, once: one quick failover trial per supervisor through the real binary, so the
//! whole chain (launchers, readiness, measurement, report files) cannot rot unnoticed. Ignored
//! by default: it starts real servers and takes a while, and `cargo test` must never depend on
//! how fast anything is (this only checks that a sample came out on each side). Run it with
//!
//!     cargo build -p picket && cargo test -p picket-bench -- --ignored

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "starts real redis-server, redis-sentinel and picket processes"]
fn a_quick_failover_run_produces_one_sample_per_side() {
    let exe = Path::new(env!("CARGO_BIN_EXE_picket-bench"));
    // Built into the same target directory by `cargo build -p picket`.
    let picket = exe.with_file_name("picket");
    assert!(picket.is_file(), "build picket first: cargo build -p picket ({})", picket.display());
    let out = std::env::temp_dir().join(format!("picket-bench-smoke-{}", std::process::id()));
    let run = Command::new(exe)
        .args(["--quick", "--only", "failover", "--out"])
        .arg(&out)
        .arg("--picket")
        .arg(&picket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "picket-bench failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("failover SIGKILL: SET ok on new master"), "{stdout}");

    let json = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a JSON report");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "3 clocks x 2 faults");
    for row in rows {
        for side in ["sentinel", "picket"] {
            assert_eq!(row[side].as_array().map(Vec::len), Some(1), "{side} in {row}");
        }
    }
    fs::remove_dir_all(&out).unwrap();
}
