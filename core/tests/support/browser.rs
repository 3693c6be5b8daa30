//! Headless Chromium (Debian package `chromium`, installed by `.ci/run`) for the pages the
//! admin listener serves: its DOM after rendering, or a screenshot.
#![allow(dead_code, clippy::unwrap_used)]

/// The Chromium binary, if installed.
pub fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Runs headless Chromium on `url` with `args`; its stdout.
pub fn headless(bin: &str, profile: &std::path::Path, args: &[String], url: &str) -> String {
    let out = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves a screenshot of `url` as `target/test-artifacts/NAME` (a window of `size`, as
/// `1280,800`) and checks it is a PNG of some substance; its path.
pub fn screenshot(
    bin: &str,
    profile: &std::path::Path,
    url: &str,
    name: &str,
    size: &str,
) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(name);
    let _ = std::fs::remove_file(&shot);
    let args = [
        format!("--screenshot={}", shot.display()),
        format!("--window-size={size}"),
    ];
    headless(bin, profile, &args, url);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    shot
}
