//! The proxies compared, configured alike: one listener on 127.0.0.1, every path to the one
//! origin over kept-alive upstream connections (up to 1,024 idle kept), `workers` threads or processes pinned to the
//! proxy CPUs, no access logs, no body size limit; in TLS scenarios, HTTPS on that listener with
//! the same certificate, TLS 1.2 and 1.3, session tickets and a session cache on every proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::procs::{self, Child};
use crate::tls::BenchCert;

/// A proxy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// This project.
    Shardgate,
    /// nginx (`worker_processes` = workers).
    Nginx,
    /// HAProxy (`nbthread` = workers).
    Haproxy,
}

impl System {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Shardgate => "shardgate",
            System::Nginx => "nginx",
            System::Haproxy => "haproxy",
        }
    }
}

/// What every system is started with.
pub struct Setup<'a> {
    /// The origins' addresses (every proxy balances across them).
    pub origins: &'a [SocketAddr],
    /// Threads or worker processes.
    pub workers: usize,
    /// CPUs to pin them to (cycled).
    pub cpus: &'a [usize],
    /// Where configs and logs go.
    pub dir: &'a Path,
    /// The shardgate binary.
    pub shardgate: &'a Path,
    /// Config text appended to shardgate's (routes, policy stages).
    pub extra: &'a str,
    /// Lines inside shardgate's `[[upstream]]` table.
    pub upstream_extra: &'a str,
    /// Terminate TLS with this certificate.
    pub tls: Option<&'a BenchCert>,
    /// nginx caches (`proxy_cache`).
    pub nginx_cache: bool,
    /// nginx compresses (`gzip on` at this level).
    pub nginx_gzip: Option<u32>,
    /// Clients speak HTTP/2 (h2c, or ALPN `h2` with TLS).
    pub h2: bool,
}

/// A started system.
pub struct Running {
    /// Which one.
    pub system: System,
    /// Its name in tables: the system's, or a variant's.
    pub label: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process group.
    pub child: Child,
}

/// Starts `system`; `Ok(None)` (with the reason printed) when it is not installed.
pub fn start(system: System, s: &Setup<'_>) -> anyhow::Result<Option<Running>> {
    start_as(system, system.name(), s.shardgate, s)
}

/// Starts another shardgate build, or the same with other `extra` config, under `label`
/// (an A/B in the same rounds).
pub fn start_variant(label: &str, binary: &Path, s: &Setup<'_>) -> anyhow::Result<Running> {
    start_as(System::Shardgate, label, binary, s)?
        .ok_or_else(|| anyhow::anyhow!("variant {label} did not start"))
}

fn start_as(
    system: System,
    label: &str,
    shardgate: &Path,
    s: &Setup<'_>,
) -> anyhow::Result<Option<Running>> {
    let port = procs::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cpus = cpu_list(s.cpus);
    let (program, args, taskset): (PathBuf, Vec<String>, String) = match system {
        System::Shardgate => {
            let conf = s.dir.join(format!("{label}.toml"));
            write(&conf, &shardgate_conf(s, port))?;
            (
                shardgate.to_path_buf(),
                vec!["--config".into(), path_arg(&conf)],
                String::new(),
            )
        }
        System::Nginx => {
            let Some(nginx) = procs::which("nginx") else {
                crate::outln!("skipped nginx: not installed (apt-get install nginx-light)");
                return Ok(None);
            };
            let conf = s.dir.join("nginx.conf");
            std::fs::create_dir_all(s.dir.join("nginx"))?;
            write(&conf, &nginx_conf(s, port))?;
            let args = vec![
                "-c".into(),
                path_arg(&conf),
                "-p".into(),
                path_arg(&s.dir.join("nginx")),
            ];
            (nginx, args, cpus)
        }
        System::Haproxy => {
            let Some(haproxy) = procs::which("haproxy") else {
                crate::outln!("skipped haproxy: not installed (apt-get install haproxy)");
                return Ok(None);
            };
            let conf = s.dir.join("haproxy.cfg");
            write(&conf, &haproxy_conf(s, port))?;
            (haproxy, vec!["-f".into(), path_arg(&conf)], cpus)
        }
    };
    let log = s.dir.join(format!("{label}.log"));
    let mut child = procs::spawn(label, &program, &args, &taskset, &log)?;
    child.wait_listening(addr)?;
    Ok(Some(Running {
        system,
        label: label.to_string(),
        addr,
        child,
    }))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `[0, 1]` → `"0,1"`.
pub fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn shardgate_conf(s: &Setup<'_>, port: u16) -> String {
    let pin = (0..s.workers)
        .filter_map(|i| s.cpus.get(i % s.cpus.len().max(1)))
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let pin = if pin.is_empty() {
        "false".to_string()
    } else {
        format!("[{pin}]")
    };
    let listen = match (s.tls, s.h2) {
        (None, false) => format!("listen = [\"127.0.0.1:{port}\"]\n"),
        _ => String::new(),
    };
    let alpn = if s.h2 {
        "alpn = [\"h2\", \"http/1.1\"]\n"
    } else {
        ""
    };
    let tls = match s.tls {
        None if s.h2 => format!("\n[[listener]]\naddress = \"127.0.0.1:{port}\"\nh2c = true\n"),
        None => String::new(),
        Some(c) => format!(
            "\n[[listener]]\naddress = \"127.0.0.1:{port}\"\n[listener.tls]\n\
             certificates = [{{ cert = \"{}\", key = \"{}\" }}]\n{alpn}",
            c.cert.display(),
            c.key.display()
        ),
    };
    format!(
        r#"# written by loadtest compare
[server]
{listen}shards = {workers}
pin = {pin}
max_connections = 9000
{tls}
[[upstream]]
name = "origin"
targets = [{targets}]
keepalive = 1024
{upstream_extra}

[[route]]
path = "/{{*rest}}"
upstream = "origin"
{extra}"#,
        workers = s.workers,
        targets = s
            .origins
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
        upstream_extra = s.upstream_extra,
        extra = s.extra,
    )
}

fn nginx_conf(s: &Setup<'_>, port: u16) -> String {
    // one affinity mask per worker, cycling over the proxy CPUs
    let masks = (0..s.workers)
        .filter_map(|i| s.cpus.get(i % s.cpus.len().max(1)))
        .map(|cpu| format!("{:b}", 1u64 << cpu))
        .collect::<Vec<_>>()
        .join(" ");
    let affinity = if masks.is_empty() {
        String::new()
    } else {
        format!("worker_cpu_affinity {masks};")
    };
    let dir = s.dir.join("nginx");
    let d = dir.display();
    let ssl = match s.tls {
        None => String::new(),
        Some(c) => format!(
            " ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    \
             ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_tickets on;\n    \
             ssl_session_cache shared:SSL:10m",
            c.cert.display(),
            c.key.display()
        ),
    };
    let (cache_path, cache) = if s.nginx_cache {
        (
            format!(
                "proxy_cache_path {d}/cache levels=1:2 keys_zone=sg:16m max_size=256m \
                 inactive=1h use_temp_path=off;"
            ),
            "proxy_cache sg; proxy_cache_valid 200 1h; proxy_cache_lock on;".to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    let gzip = match s.nginx_gzip {
        Some(level) => format!(
            "gzip on; gzip_comp_level {level}; gzip_types application/json; \
             gzip_min_length 1024; gzip_proxied any; gzip_vary on;"
        ),
        None => String::new(),
    };
    format!(
        r#"# written by loadtest compare
worker_processes {workers};
{affinity}
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 9000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  client_max_body_size 0;
  keepalive_requests 1000000;
  upstream origin {{ {servers}keepalive 1024; }}
  {cache_path}
  {gzip}
  server {{
    listen 127.0.0.1:{port} reuseport{http2}{ssl};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      {cache}
    }}
  }}
}}
"#,
        workers = s.workers,
        http2 = if s.h2 { " http2" } else { "" },
        servers = s
            .origins
            .iter()
            .map(|a| format!("server {a}; "))
            .collect::<String>(),
    )
}

/// HAProxy's server lines; with several origins, active checks and redispatching retries
/// (what an operator sets for a group that must survive a dead server).
fn haproxy_servers(origins: &[SocketAddr]) -> String {
    let many = origins.len() > 1;
    let mut out = String::new();
    if many {
        out += "  retries 3\n  option redispatch 1\n";
    }
    for (i, a) in origins.iter().enumerate() {
        let check = if many {
            " check inter 500ms fall 2 rise 2"
        } else {
            ""
        };
        out += &format!("  server o{} {a} maxconn 9000{check}\n", i + 1);
    }
    out
}

fn haproxy_conf(s: &Setup<'_>, port: u16) -> String {
    let cpu_map = if s.cpus.is_empty() {
        String::new()
    } else {
        format!("  cpu-map auto:1/1-{} {}\n", s.workers, cpu_list(s.cpus))
    };
    let ssl = match s.tls {
        None => String::new(),
        Some(c) => format!(
            " ssl crt {} alpn http/1.1 ssl-min-ver TLSv1.2",
            c.combined.display()
        ),
    };
    format!(
        r#"# written by loadtest compare
global
  nbthread {workers}
{cpu_map}  maxconn 9000

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always

frontend front
  bind 127.0.0.1:{port}{ssl}
  default_backend origin

backend origin
{servers}"#,
        workers = s.workers,
        servers = haproxy_servers(s.origins),
    )
}
