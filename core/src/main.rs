//! The `shardgate` binary: parse the command line, load the configuration (or the embedded
//! default), start the shards, and wait for SIGTERM/SIGINT to drain and exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use shardgate::gateway::Gateway;
use shardgate::log;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

/// mimalloc, not glibc's malloc: its per-thread heaps keep objects of one size together, so
/// the buffers an idle connection gives back return to the system instead of staying pinned
/// between the connection's long-lived state (glibc kept ~4 KiB per idle connection, see
/// loadtest/RESULTS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core HTTP/1.1 API gateway.
#[derive(Parser)]
#[command(name = "shardgate", version, about)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default is used.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check FILE: validate it, print the compiled routes, and exit (2 on error).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check: Option<PathBuf>,
}

fn load(path: Option<&PathBuf>) -> Result<conf::Config, conf::ConfErrors> {
    let config = match path {
        Some(p) => conf::load(p)?,
        None => conf::load_str(conf::DEFAULT_NAME, conf::DEFAULT)?,
    };
    let secret = shardgate::tls::tickets::TicketSecret::generate()
        .map_err(|e| conf::ConfErrors::one(conf::ConfError::whole_file(&config.source, e)))?;
    let shards = shardgate::runtime::placement(&config).len();
    Gateway::build(&config, shards, 0, None, &secret)?;
    Ok(config)
}

/// Writes `text` to stdout; a closed stdout (`shardgate --check f | head`) ends the output
/// quietly instead of panicking, as coreutils and ripgrep do.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Writes `text` to stderr, quietly dropped when stderr is closed.
fn complain(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn main() -> ExitCode {
    log::init_from_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                complain(&text);
                ExitCode::from(2)
            } else {
                // --help, --version
                say(&text);
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(path) = &cli.check {
        return match load(Some(path)) {
            Ok(c) => {
                let listen: Vec<String> = c.listen.iter().map(|a| a.to_string()).collect();
                let admin = c.admin.as_ref().map_or("none".to_string(), |(a, t)| {
                    format!("http://{a}{}", if t.is_empty() { "" } else { " (token)" })
                });
                let log = c.access_log.as_ref().map_or("none".to_string(), |l| {
                    format!("{} ({})", l.path.get_ref(), l.format.get_ref())
                });
                let on = |b: bool| if b { "on" } else { "off" };
                say(&format!(
                    "{}: ok\nlisten: {}\nadmin: {admin}\naccess log: {log}\nrequest ids: {}, tracing: {}\nroutes:\n{}",
                    path.display(),
                    listen.join(", "),
                    on(c.request_id.enabled),
                    on(c.tracing.enabled),
                    Gateway::describe(&c)
                ));
                ExitCode::SUCCESS
            }
            Err(e) => {
                complain(&format!(
                    "{e}\n{}: {} error(s)\n",
                    path.display(),
                    e.0.len()
                ));
                ExitCode::from(2)
            }
        };
    }
    let config = match load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            complain(&format!("{e}\n"));
            return ExitCode::from(2);
        }
    };
    serve(config, cli.config)
}

/// Reloads the config file (asked by `why`: SIGHUP or the admin API), keeping `running`
/// when the new one is refused; what was reloaded, or why not.
fn reload(
    why: &str,
    path: Option<&std::path::Path>,
    running: &mut Arc<conf::Config>,
    control: &shardgate::control::Control,
) -> Result<String, String> {
    let Some(path) = path else {
        log!(
            Info,
            "{why}: running the embedded default config, nothing to reload"
        );
        return Err("running the embedded default config: there is no file to reload".into());
    };
    let resolve = shardgate::upstream::discovery::system_resolver();
    match shardgate::reload::reload(path, running, control, &resolve) {
        Ok(new) => {
            log!(Info, "{why}: reloaded {}", path.display());
            *running = new;
            Ok(path.display().to_string())
        }
        Err(e) => {
            log!(
                Warn,
                "{why}: reload of {} refused, the previous config keeps running:\n{e}",
                path.display()
            );
            Err(e)
        }
    }
}

/// Answers what the admin listener asked.
fn answer_asks(
    started_asks: &std::sync::mpsc::Receiver<shardgate::admin::Ask>,
    path: Option<&std::path::Path>,
    running: &mut Arc<conf::Config>,
    control: &shardgate::control::Control,
    draining: bool,
) {
    use shardgate::admin::Ask;
    while let Ok(ask) = started_asks.try_recv() {
        match ask {
            Ask::Config(reply) => {
                let _ = reply.send(running.clone());
            }
            Ask::Reload(reply) if draining => {
                let _ = reply.send(Err("draining: no reloads".into()));
            }
            Ask::Reload(reply) => {
                let _ = reply.send(reload("POST /reload", path, running, control));
            }
        }
    }
}

fn serve(config: conf::Config, path: Option<PathBuf>) -> ExitCode {
    let embedded = path.is_none();
    // Register before the shards start, so no signal is missed (SIGHUP included: its default
    // action would end the process).
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
    {
        Ok(s) => s,
        Err(e) => {
            complain(&format!("shardgate: cannot install signal handlers: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let config = Arc::new(config);
    let drain_timeout = config.server.drain_timeout;
    let shardgate::runtime::Started {
        bound,
        driver,
        handles,
        cpus,
        control,
        admin,
        asks,
        draining: draining_flag,
    } = match shardgate::runtime::start_all(config.clone()) {
        Ok(x) => x,
        Err(e) => {
            complain(&format!("shardgate: {e}\n"));
            return ExitCode::from(1);
        }
    };
    let pinned: Vec<String> = cpus.iter().flatten().map(|c| c.to_string()).collect();
    let addrs: Vec<String> = bound
        .iter()
        .zip(&config.listeners)
        .map(|(a, l)| {
            let scheme = if l.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{a}")
        })
        .collect();
    log!(
        Info,
        "shardgate {} listening on {} ({} shards, driver {driver}, {})",
        env!("CARGO_PKG_VERSION"),
        addrs.join(" "),
        handles.len(),
        if pinned.is_empty() {
            "not pinned".to_string()
        } else {
            format!("pinned to CPUs {}", pinned.join(","))
        }
    );
    if let Some(a) = admin {
        log!(
            Info,
            "admin on http://{a} (status page /, /healthz, /readyz, /metrics, /stats, /config, POST /reload, POST /cache/purge{})",
            if config.management.is_some() {
                ", /tenants, /audit"
            } else {
                ""
            }
        );
    }
    if embedded {
        log!(
            Info,
            "using the embedded default config: /__shardgate/health answers here, everything else goes to 127.0.0.1:9000, the status page is on the admin listener; pass --config FILE for your own (see conf/examples/shardgate.toml)"
        );
    } else {
        log!(Info, "config: {}", config.source);
    }
    let mut draining = false;
    let mut failed = false;
    let mut running = config.clone();
    loop {
        for sig in signals.pending() {
            if sig == SIGHUP {
                if !draining {
                    let _ = reload("SIGHUP", path.as_deref(), &mut running, &control);
                }
                continue;
            }
            if sig == SIGUSR1 {
                log!(Info, "SIGUSR1: reopening the access log");
                control.reopen_logs();
                continue;
            }
            if draining {
                log!(
                    Warn,
                    "second signal: exiting without waiting for in-flight requests"
                );
                return ExitCode::from(1);
            }
            let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log!(
                Info,
                "{name}: draining (stop accepting, finish in-flight requests within {drain_timeout})"
            );
            draining_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            control.request_drain();
            draining = true;
        }
        answer_asks(&asks, path.as_deref(), &mut running, &control, draining);
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if !draining && handles.iter().any(|h| h.is_finished()) {
            log!(
                Error,
                "a shard stopped unexpectedly; draining the others and exiting"
            );
            control.request_drain();
            draining = true;
            failed = true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    for h in handles {
        if h.join().is_err() {
            failed = true;
        }
    }
    log!(Info, "stopped");
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
