//! `loadtest compare` end to end: 2-second runs against a real shardgate (this workspace's
//! debug build) and the built-in origin, over plain HTTP and HTTPS (kept alive, and a full
//! handshake per request), read back from its JSON and SVG, a scenario needing an unbuilt
//! feature skipped with its reason, and every process it started gone afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

fn shardgate() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_loadtest")).with_file_name("shardgate");
    p.is_file().then_some(p)
}

/// The proxy and load CPUs for a run: different ones when the machine has two.
fn cpus() -> (&'static str, &'static str) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        ("0", "1")
    } else {
        ("0", "0")
    }
}

/// Runs `loadtest compare` with `args` (plus the CPUs, `shardgate` and `out`); asserts it
/// succeeded and returns its stdout.
fn compare(args: &[&str], shardgate: &std::path::Path, out: &std::path::Path) -> String {
    let (proxy, load) = cpus();
    let run = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("compare")
        .args(args)
        .args(["--proxy-cpus", proxy, "--load-cpus", load])
        .arg("--shardgate")
        .arg(shardgate)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn compare_runs_a_scenario_against_shardgate_and_cleans_up() {
    let Some(shardgate) = shardgate() else {
        println!("skipped: no shardgate binary beside loadtest (run `cargo test --workspace`)");
        return;
    };
    let out = std::env::temp_dir().join(format!("lt-compare-{}", std::process::id()));
    let stdout = compare(
        &[
            "--scenario",
            "tiny",
            "--scenario",
            "tls",
            "--scenario",
            "tls-handshake",
            "--scenario",
            "cache",
            "--systems",
            "shardgate",
            "--rounds",
            "1",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--connections",
            "8",
        ],
        &shardgate,
        &out,
    );
    assert!(stdout.contains("== scenario cache"), "{stdout}");
    let cache = out.join("cache");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache.join("report.json")).unwrap()).unwrap();
    let round = &report["systems"][0]["rounds"][0];
    assert!(round["responses"].as_u64().unwrap() > 10, "cache: {round}");
    assert_eq!(round["error_total"], 0, "cache: {round}");
    let conf = std::fs::read_to_string(cache.join("shardgate.toml")).unwrap();
    assert!(conf.contains("kind = \"cache\""), "{conf}");
    for scenario in ["tls", "tls-handshake"] {
        let path = out.join(scenario).join("report.json");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let round = &report["systems"][0]["rounds"][0];
        assert!(
            round["responses"].as_u64().unwrap() > 10,
            "{scenario}: {round}"
        );
        assert_eq!(round["error_total"], 0, "{scenario}: {round}");
        let conf = std::fs::read_to_string(out.join(scenario).join("shardgate.toml")).unwrap();
        assert!(conf.contains("[listener.tls]"), "{conf}");
    }

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tiny/report.json")).unwrap())
            .unwrap();
    let sys = &report["systems"][0];
    assert_eq!(sys["system"], "shardgate");
    let round = &sys["rounds"][0];
    assert!(round["responses"].as_u64().unwrap() > 100, "{round}");
    assert_eq!(round["error_total"], 0, "{round}");
    assert!(
        round["proxy_cpu_us_per_req"].as_f64().unwrap() > 0.0,
        "{round}"
    );
    assert!(round["proxy_peak_rss_kib"].as_u64().unwrap() > 0, "{round}");
    assert!(
        round["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{round}"
    );
    assert!(sys["cpu_vs_baseline"].is_null(), "no nginx in this run");
    let svg = std::fs::read_to_string(out.join("tiny/report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("shardgate") && svg.contains("<polyline"));

    // everything it started is gone: nothing listens on the ports it configured
    let conf = std::fs::read_to_string(out.join("tiny/shardgate.toml")).unwrap();
    let listen = conf
        .split("listen = [\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let origin = conf
        .split("targets = [\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for (what, addr) in [("shardgate", listen), ("origin", origin)] {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{what} at {addr} still accepts"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn kill_target_kills_and_restarts_an_origin_mid_window_and_reports_through_it() {
    let Some(shardgate) = shardgate() else {
        println!("skipped: no shardgate binary beside loadtest (run `cargo test --workspace`)");
        return;
    };
    let out = std::env::temp_dir().join(format!("lt-kill-{}", std::process::id()));
    let stdout = compare(
        &[
            "--scenario",
            "kill-target",
            "--systems",
            "shardgate",
            "--rounds",
            "1",
            "--duration",
            "5",
            "--warmup",
            "0.5",
            "--connections",
            "8",
        ],
        &shardgate,
        &out,
    );
    assert!(
        stdout.contains("event: origin 1 killed at 2.0 s"),
        "{stdout}"
    );
    let dir = out.join("kill-target");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let round = &report["systems"][0]["rounds"][0];
    assert!(round["responses"].as_u64().unwrap() > 100, "{round}");
    assert_eq!(
        round["error_total"], 0,
        "retries and ejection hide the kill: {round}"
    );
    assert!(
        round["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{round}"
    );
    // three origins configured; the killed one was started again (it answered after)
    let conf = std::fs::read_to_string(dir.join("shardgate.toml")).unwrap();
    let targets = conf
        .split("targets = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    assert_eq!(targets.matches("127.0.0.1:").count(), 3, "{conf}");
    let log = std::fs::read_to_string(dir.join("shardgate.log")).unwrap();
    assert!(
        log.contains("is down") && log.contains("is up"),
        "the prober saw it go and come back: {log}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
