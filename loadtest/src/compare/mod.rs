//! `loadtest compare`: starts the origin and each proxy on the CPUs asked for, runs the
//! scenario against them in interleaved rounds (A B C A B C …, so machine drift hits all
//! alike), and reports per proxy requests/s, latency percentiles, proxy CPU microseconds per
//! request (user+sys of all its threads and processes over the measured window ÷ responses),
//! peak RSS and errors, with ratios to nginx (or to shardgate without the scenario's policy)
//! taken round by round. Output: a table, JSON, SVG.

mod event;
pub mod procs;
mod scrape;
mod svg;
pub mod systems;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::generator::{self, Plan};
use crate::report::{Report, Summary};
use crate::scenario::Scenario;
use event::Origins;
use procs::Child;
use systems::{Running, Setup, System};

/// `loadtest compare` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Built-in scenario name (tiny, 16k, upload-1m, c1000, churn, policy, cache,
    /// cache-shared, compress, compress-cost, aggregate, rate-global, quota, tls, tls-handshake, tls-resume, kill-target, stop-target, balance,
    /// access-log, scrape, ids-off, ai-stream, analytics, h2, smoke) or a scenario TOML file; repeat for several.
    #[arg(long, short, default_value = "tiny")]
    pub scenario: Vec<String>,
    /// Proxies to run, in round order.
    #[arg(long, value_delimiter = ',', default_value = "shardgate,nginx,haproxy")]
    pub systems: Vec<System>,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Measured seconds per round (overrides the scenario).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured window (overrides the scenario).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Connections (overrides the scenario).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open loop at this many requests per second (overrides the scenario).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop at this fraction of nginx's closed-loop throughput, measured first (e.g. 0.8).
    #[arg(long)]
    pub at_fraction_of_nginx: Option<f64>,
    /// Shards, nginx worker processes, HAProxy threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// CPUs for the proxy under test.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub proxy_cpus: Vec<usize>,
    /// CPUs for the generator and the origin.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub load_cpus: Vec<usize>,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also measure another shardgate build in the same rounds, as `NAME=PATH` (A/B of a
    /// change); repeatable.
    #[arg(long)]
    pub variant: Vec<String>,
    /// The shardgate binary (default: beside this one, built with cargo if missing).
    #[arg(long)]
    pub shardgate: Option<PathBuf>,
    /// The loadtest binary that serves as origin (default: this one).
    #[arg(long)]
    pub origin_bin: Option<PathBuf>,
    /// Directory for report.json, report.svg, configs and logs (default:
    /// target/loadtest/<scenario>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One system's figures in one round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The generator's figures.
    #[serde(flatten)]
    pub summary: Summary,
    /// Proxy CPU (user+sys, all threads and processes) per response, in microseconds.
    pub proxy_cpu_us_per_req: f64,
    /// The origin's CPU per response.
    pub origin_cpu_us_per_req: f64,
    /// The generator's CPU per response.
    pub generator_cpu_us_per_req: f64,
    /// Peak resident memory of the proxy's processes, KiB.
    pub proxy_peak_rss_kib: u64,
}

/// Median and spread of one figure over the rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
            n => {
                (v.get(n / 2 - 1).copied().unwrap_or(f64::NAN)
                    + v.get(n / 2).copied().unwrap_or(f64::NAN))
                    / 2.0
            }
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}..{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// One system over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct SystemResult {
    /// Which.
    pub system: System,
    /// Its name in tables (a variant's name for another shardgate build).
    pub name: String,
    /// Every round, in order.
    pub rounds: Vec<Round>,
    /// Requests per second.
    pub rps: Spread,
    /// p99 latency, ms.
    pub p99_ms: Spread,
    /// Proxy CPU µs per response.
    pub cpu_us_per_req: Spread,
    /// Peak RSS, MiB.
    pub peak_rss_mib: Spread,
    /// Errors over all rounds.
    pub errors: u64,
    /// Round-by-round ratio of CPU per request to the baseline's (nginx, or shardgate-bare).
    pub cpu_vs_baseline: Option<Spread>,
    /// Round-by-round ratio of p99 to the baseline's.
    pub p99_vs_baseline: Option<Spread>,
    /// Round-by-round ratio of requests/s to the baseline's.
    pub rps_vs_baseline: Option<Spread>,
    /// Latency percentiles of all rounds merged, ms: (percentile, value).
    pub latency_curve: Vec<(f64, f64)>,
}

/// The outcome of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Why it was not run, if it was not.
    pub skipped: Option<String>,
    /// Systems asked for but not found.
    pub missing_systems: Vec<String>,
    /// Open-loop rate used, if any.
    pub rate: Option<f64>,
    /// Connections.
    pub connections: usize,
    /// Measured seconds per round.
    pub duration_s: f64,
    /// Rounds.
    pub rounds: usize,
    /// CPUs of the proxy / of generator and origin.
    pub proxy_cpus: Vec<usize>,
    /// CPUs of generator and origin.
    pub load_cpus: Vec<usize>,
    /// Workers per proxy.
    pub workers: usize,
    /// The machine.
    pub machine: Machine,
    /// Per system.
    pub systems: Vec<SystemResult>,
    /// The system ratios are taken against.
    pub baseline: Option<String>,
    /// Origin CPU per response, median over all runs, µs.
    pub origin_cpu_us_per_req: f64,
    /// Generator CPU per response, median over all runs, µs.
    pub generator_cpu_us_per_req: f64,
}

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpu: cpuinfo
                .lines()
                .find_map(|l| {
                    l.strip_prefix("model name")?
                        .split_once(':')
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// Runs every scenario of `args`, printing as it goes; returns their results.
pub fn run(args: &Args) -> anyhow::Result<Vec<ScenarioResult>> {
    let shardgate = shardgate_binary(args)?;
    let origin_bin = match &args.origin_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("find the loadtest binary")?,
    };
    let mut all = Vec::new();
    for name in &args.scenario {
        let scenario = Scenario::load(name)?;
        let result = run_scenario(args, &scenario, &shardgate, &origin_bin)?;
        all.push(result);
        if crate::STOP.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    Ok(all)
}

fn shardgate_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.shardgate {
        anyhow::ensure!(p.is_file(), "no shardgate binary at {}", p.display());
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("find the loadtest binary")?;
    let dir = exe
        .parent()
        .context("the loadtest binary has no directory")?;
    let candidate = dir.join("shardgate");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let release = dir.ends_with("release");
    crate::outln!(
        "no shardgate binary beside {}: building it (cargo build{} -p shardgate)",
        exe.display(),
        if release { " --release" } else { "" }
    );
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "-p", "shardgate"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("run cargo to build shardgate (or pass --shardgate PATH)")?;
    anyhow::ensure!(
        status.success() && candidate.is_file(),
        "could not build shardgate; pass --shardgate PATH"
    );
    Ok(candidate)
}

fn run_scenario(
    args: &Args,
    scenario: &Scenario,
    shardgate: &std::path::Path,
    origin_bin: &std::path::Path,
) -> anyhow::Result<ScenarioResult> {
    let duration = args.duration.unwrap_or(scenario.load.duration_s);
    let warmup = args.warmup.unwrap_or(scenario.load.warmup_s);
    let connections = args.connections.unwrap_or(scenario.load.connections);
    let mut result = ScenarioResult {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        skipped: None,
        missing_systems: Vec::new(),
        rate: args.rate.or(scenario.load.rate),
        connections,
        duration_s: duration,
        rounds: args.rounds,
        proxy_cpus: args.proxy_cpus.clone(),
        load_cpus: args.load_cpus.clone(),
        workers: args.workers,
        machine: Machine::read(),
        systems: Vec::new(),
        baseline: None,
        origin_cpu_us_per_req: f64::NAN,
        generator_cpu_us_per_req: f64::NAN,
    };
    crate::outln!("\n== scenario {}: {}", scenario.name, scenario.description);
    let missing = scenario.missing();
    if !missing.is_empty() {
        let why = format!(
            "needs {} (not built into shardgate yet)",
            missing.join(", ")
        );
        crate::outln!("skipped: {why}");
        result.skipped = Some(why);
        return Ok(result);
    }
    anyhow::ensure!(
        duration > 0.0 && warmup >= 0.0,
        "durations must be positive"
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/loadtest"))
        .join(&scenario.name);
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    // nginx resolves relative paths against its prefix, not our directory
    let out = out
        .canonicalize()
        .with_context(|| format!("resolve {}", out.display()))?;

    // the origins, on the load CPUs
    let mut origins = Origins::start(
        origin_bin,
        &scenario.origin,
        &systems::cpu_list(&args.load_cpus),
        &out,
    )?;
    let origin_addrs = origins.addrs.clone();

    // a Redis for the scenarios whose gateways lease from one
    let (_redis, redis_addr) = match scenario.gateway.redis {
        false => (None, String::new()),
        true => {
            let Some(program) = procs::which("redis-server") else {
                let why = "needs redis-server (Debian package redis-server)".to_string();
                crate::outln!("skipped: {why}");
                result.skipped = Some(why);
                return Ok(result);
            };
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let port_arg = port.to_string();
            let argv: Vec<String> = [
                "--port",
                &port_arg,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            let cpus = systems::cpu_list(&args.load_cpus);
            let log = out.join("redis.log");
            let mut child = procs::spawn("redis", &program, &argv, &cpus, &log)?;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            child.wait_listening(addr)?;
            (Some(child), addr.to_string())
        }
    };
    let extra = crate::scenario::gateway_extra(&scenario.gateway).replace("{redis}", &redis_addr);
    let baseline = scenario.gateway.baseline.replace("{redis}", &redis_addr);
    let cert = match scenario.load.tls {
        true => Some(crate::tls::BenchCert::create(&out)?),
        false => None,
    };
    let setup = Setup {
        origins: &origin_addrs,
        upstream_extra: &scenario.gateway.upstream,
        workers: args.workers.max(1),
        cpus: &args.proxy_cpus,
        dir: &out,
        shardgate,
        extra: &extra,
        tls: cert.as_ref(),
        nginx_cache: scenario.gateway.nginx_cache,
        nginx_gzip: scenario.gateway.nginx_gzip,
        h2: scenario.load.h2,
    };
    let mut running: Vec<Running> = Vec::new();
    let against_bare = scenario.gateway.against_bare;
    for &system in &args.systems {
        if against_bare && system != System::Shardgate {
            crate::outln!(
                "skipped {}: this scenario compares shardgate with itself without the policy",
                system.name()
            );
            continue;
        }
        if scenario.gateway.nginx_cache && system == System::Haproxy {
            crate::outln!("skipped haproxy: this scenario compares response caches");
            continue;
        }
        if scenario.load.h2 && system == System::Haproxy {
            crate::outln!("skipped haproxy: this scenario compares HTTP/2 against nginx's");
            continue;
        }
        if scenario.gateway.nginx_gzip.is_some() && system == System::Haproxy {
            crate::outln!("skipped haproxy: this scenario compares gzip against nginx's");
            continue;
        }
        match systems::start(system, &setup)? {
            Some(r) => running.push(r),
            None => result.missing_systems.push(system.name().to_string()),
        }
    }
    for v in &args.variant {
        let (label, path) = v
            .split_once('=')
            .with_context(|| format!("--variant {v:?} is not NAME=PATH"))?;
        running.push(systems::start_variant(
            label,
            std::path::Path::new(path),
            &setup,
        )?);
    }
    if against_bare {
        let bare = Setup {
            extra: &baseline,
            upstream_extra: "",
            ..setup
        };
        running.push(systems::start_variant(BARE, shardgate, &bare)?);
    }
    anyhow::ensure!(!running.is_empty(), "no system to measure");
    let scraper = match &scenario.gateway.scrape {
        Some(a) => {
            let addr: SocketAddr = a
                .parse()
                .with_context(|| format!("[gateway] scrape {a:?} is not ip:port"))?;
            let every = Duration::from_secs_f64(scenario.gateway.scrape_every.max(0.01));
            Some(scrape::Scraper::start(addr, every))
        }
        None => None,
    };

    // one client TLS config per system, so one system's tickets are never offered to another
    let mut tls_plans = Vec::new();
    if scenario.load.tls {
        for r in &running {
            let plan = crate::tls::TlsPlan::new("localhost", None, scenario.load.resume)?;
            tls_plans.push((r.addr, plan));
        }
    }
    let tls_for = |addr: SocketAddr| {
        tls_plans
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, p)| p.clone())
    };
    let plan_for = |addr: SocketAddr, rate: Option<f64>, warm: f64, dur: f64| Plan {
        addr,
        host: addr.to_string(),
        requests: scenario.request_specs(),
        connections,
        threads: args.threads.max(1),
        rate,
        warmup: Duration::from_secs_f64(warm),
        duration: Duration::from_secs_f64(dur),
        keepalive: scenario.load.keepalive,
        timeout: Duration::from_secs_f64(scenario.load.timeout_s),
        pin: args.load_cpus.clone(),
        tls: tls_for(addr),
    };

    if let Some(fraction) = args.at_fraction_of_nginx {
        let nginx = running
            .iter()
            .find(|r| r.system == System::Nginx)
            .context("--at-fraction-of-nginx needs nginx among the systems")?;
        let probe = load(&plan_for(nginx.addr, None, warmup, duration), scenario)?;
        let rate = probe.rps() * fraction;
        crate::outln!(
            "nginx saturates at {:.0} req/s closed-loop; open loop at {:.0}% of it: {rate:.0} req/s",
            probe.rps(),
            fraction * 100.0
        );
        result.rate = Some(rate);
    }

    // one unmeasured warm-up per system (fills pools, faults in memory)
    for r in &running {
        load(
            &plan_for(r.addr, result.rate, 0.0, warmup.max(1.0)),
            scenario,
        )?;
    }

    let mut rounds: Vec<Vec<(Round, Report)>> = running.iter().map(|_| Vec::new()).collect();
    'rounds: for round in 0..args.rounds {
        for (i, r) in running.iter().enumerate() {
            if crate::STOP.load(std::sync::atomic::Ordering::Relaxed) {
                break 'rounds;
            }
            let plan = plan_for(r.addr, result.rate, warmup, duration);
            let (measured, report) = measure(&plan, &r.child, &mut origins, scenario)?;
            let s = &measured.summary;
            crate::outln!(
                "round {}/{} {:10} {:>9.0} req/s  p99 {:>8.3} ms  proxy {:>6.2} us/req  rss {:>6.1} MiB  errors {}",
                round + 1,
                args.rounds,
                r.label,
                s.rps,
                s.latency_ms.p99,
                measured.proxy_cpu_us_per_req,
                measured.proxy_peak_rss_kib as f64 / 1024.0,
                s.error_total
            );
            if let Some(v) = rounds.get_mut(i) {
                v.push((measured, report));
            }
        }
    }
    if let Some(s) = scraper {
        crate::outln!("scraped /metrics {} times", s.scrapes());
    }
    for r in &mut running {
        r.child.stop();
    }
    origins.stop();

    result.baseline = baseline_of(&running)
        .and_then(|i| running.get(i))
        .map(|r| r.label.clone());
    result.systems = summarize(&running, rounds);
    let all_rounds = || result.systems.iter().flat_map(|s| s.rounds.iter());
    result.origin_cpu_us_per_req = Spread::of(all_rounds().map(|r| r.origin_cpu_us_per_req)).median;
    result.generator_cpu_us_per_req =
        Spread::of(all_rounds().map(|r| r.generator_cpu_us_per_req)).median;
    crate::out!("{}", table(&result));
    let json = out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("write {}", json.display()))?;
    let chart = out.join("report.svg");
    std::fs::write(&chart, svg::render(&result))
        .with_context(|| format!("write {}", chart.display()))?;
    crate::outln!("wrote {} and {}", json.display(), chart.display());
    Ok(result)
}

/// Runs one measured window against a system, reading CPU at the window's edges, with the
/// scenario's event (if any) staged inside the window.
fn measure(
    plan: &Plan,
    proxy: &Child,
    origins: &mut Origins,
    scenario: &Scenario,
) -> anyhow::Result<(Round, Report)> {
    let start = Instant::now() + Duration::from_millis(50);
    let window_start = start + plan.warmup;
    let window_end = window_start + plan.duration;
    let proxy_pgid = proxy.pgid();
    let origin_pgids = origins.pgids();
    let sampler = std::thread::spawn(move || {
        let sample = || {
            (
                procs::group_ticks(proxy_pgid),
                origin_pgids
                    .iter()
                    .map(|&g| procs::group_ticks(g))
                    .sum::<u64>(),
                procs::own_ticks(),
            )
        };
        std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
        let a = sample();
        std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
        let b = sample();
        (
            b.0.saturating_sub(a.0),
            b.1.saturating_sub(a.1),
            b.2.saturating_sub(a.2),
        )
    });
    let mut report = None;
    match &scenario.event {
        Some(e) => origins.stage(e, window_start, || {
            report = Some(load_at(plan, scenario, start))
        })?,
        None => report = Some(load_at(plan, scenario, start)),
    }
    let report = report.ok_or_else(|| anyhow::anyhow!("no report"))??;
    let (proxy_ticks, origin_ticks, own_ticks) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("CPU sampler panicked"))?;
    let n = report.responses().max(1) as f64;
    let us = |ticks: u64| ticks as f64 / procs::TICKS_PER_SEC * 1e6 / n;
    Ok((
        Round {
            summary: report.summary(),
            proxy_cpu_us_per_req: us(proxy_ticks),
            origin_cpu_us_per_req: us(origin_ticks),
            generator_cpu_us_per_req: us(own_ticks),
            proxy_peak_rss_kib: proxy.peak_rss_kib(),
        },
        report,
    ))
}

/// Runs `plan` from `start` with the scenario's client: the generator, or h2load for HTTP/2.
fn load_at(plan: &Plan, scenario: &Scenario, start: Instant) -> anyhow::Result<Report> {
    match scenario.load.h2 {
        true => crate::h2load::run_at(plan, scenario.load.streams, start),
        false => generator::run_at(plan, start),
    }
}

/// `load_at` starting now.
fn load(plan: &Plan, scenario: &Scenario) -> anyhow::Result<Report> {
    load_at(plan, scenario, Instant::now() + Duration::from_millis(50))
}

/// The label of shardgate without the scenario's policy.
const BARE: &str = "shardgate-bare";

const CURVE: &[f64] = &[
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// Ratios are taken against nginx, or against the bare shardgate when the scenario has one.
fn baseline_of(running: &[Running]) -> Option<usize> {
    running
        .iter()
        .position(|r| r.system == System::Nginx)
        .or_else(|| running.iter().position(|r| r.label == BARE))
}

fn summarize(running: &[Running], rounds: Vec<Vec<(Round, Report)>>) -> Vec<SystemResult> {
    let nginx: Option<Vec<Round>> = baseline_of(running)
        .and_then(|i| rounds.get(i))
        .map(|v| v.iter().map(|(r, _)| r.clone()).collect());
    running
        .iter()
        .zip(rounds)
        .map(|(r, v)| {
            let mut merged = Report::new(Duration::ZERO);
            for (_, rep) in &v {
                merged.merge(rep);
            }
            let rs: Vec<Round> = v.into_iter().map(|(r, _)| r).collect();
            let ratio = |f: fn(&Round) -> f64| {
                nginx
                    .as_ref()
                    .map(|n| Spread::of(rs.iter().zip(n).map(|(a, b)| f(a) / f(b))))
            };
            SystemResult {
                system: r.system,
                name: r.label.clone(),
                rps: Spread::of(rs.iter().map(|x| x.summary.rps)),
                p99_ms: Spread::of(rs.iter().map(|x| x.summary.latency_ms.p99)),
                cpu_us_per_req: Spread::of(rs.iter().map(|x| x.proxy_cpu_us_per_req)),
                peak_rss_mib: Spread::of(rs.iter().map(|x| x.proxy_peak_rss_kib as f64 / 1024.0)),
                errors: rs.iter().map(|x| x.summary.error_total).sum(),
                cpu_vs_baseline: ratio(|x| x.proxy_cpu_us_per_req),
                p99_vs_baseline: ratio(|x| x.summary.latency_ms.p99),
                rps_vs_baseline: ratio(|x| x.summary.rps),
                latency_curve: CURVE
                    .iter()
                    .map(|&p| (p, merged.ms_at(p / 100.0)))
                    .collect(),
                rounds: rs,
            }
        })
        .collect()
}

/// The terminal table of a scenario.
pub fn table(r: &ScenarioResult) -> String {
    let mut s = format!(
        "\n{} — medians of {} interleaved rounds of {:.0} s ({} connections{}; proxy on CPU {}, generator + origin on CPU {}; {} worker(s))\n",
        r.scenario,
        r.rounds,
        r.duration_s,
        r.connections,
        r.rate
            .map(|x| format!(", open loop at {x:.0} req/s"))
            .unwrap_or_default(),
        systems::cpu_list(&r.proxy_cpus),
        systems::cpu_list(&r.load_cpus),
        r.workers,
    );
    s += &format!(
        "{:10} {:>24} {:>26} {:>24} {:>9} {:>7} {:>22}\n",
        "system",
        "req/s (min..max)",
        "p99 ms (min..max)",
        "CPU us/req (min..max)",
        "RSS MiB",
        "errors",
        format!("CPU vs {}", r.baseline.as_deref().unwrap_or("-"))
    );
    for sys in &r.systems {
        s += &format!(
            "{:10} {:>24} {:>26} {:>24} {:>9.1} {:>7} {:>22}\n",
            sys.name,
            sys.rps.show(0),
            sys.p99_ms.show(3),
            sys.cpu_us_per_req.show(2),
            sys.peak_rss_mib.median,
            sys.errors,
            sys.cpu_vs_baseline
                .map(|x| format!("{:.2}x ({:.2}..{:.2})", x.median, x.min, x.max))
                .unwrap_or_else(|| "-".into()),
        );
    }
    s += &format!(
        "origin {:.2} us/req, generator {:.2} us/req (medians, on the load CPU)\n",
        r.origin_cpu_us_per_req, r.generator_cpu_us_per_req
    );
    for m in &r.missing_systems {
        s += &format!("not measured: {m} (not installed)\n");
    }
    s
}
