//! The command line: parsing and the commands behind it.
//!
//! Exit codes: 0 ok, 1 a check failed, 2 usage or fatal start-up error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

mod silence;
pub use self::silence::{SilenceCommand, Target};

use crate::agent;
use crate::clock::wall_millis;
use crate::collect::{self, CollectError, Job};
use crate::config::units::parse_duration;
use crate::rules::engine::{ActiveAlert, Engine};
use crate::rules::model::Rule;
use crate::rules::score::Score;
use crate::settings::{self, Config};
use crate::store::Store;

/// A per-host observability and monitoring agent.
#[derive(Debug, Parser)]
#[command(name = "lookout", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LOOKOUT_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (without -c: /etc/lookout/lookout.yaml if present, else built-in defaults).
    Run {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate the configuration; print every problem as file:line:col: path: message.
    Check {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Configuration helpers.
    Config {
        /// Which helper.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run rule unit tests (promtool style); exit 1 on any failure, with a diff.
    Test {
        /// What to test.
        #[command(subcommand)]
        command: TestCommand,
    },
    /// Notification helpers.
    Notify {
        /// Which helper.
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Silences of a running agent: add, list, expire (through its API).
    Silence {
        /// Which action.
        #[command(subcommand)]
        command: SilenceCommand,
        /// The agent.
        #[command(flatten)]
        target: Target,
    },
    /// Rule helpers.
    Rules {
        /// Which helper.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Collect (twice, a window apart, so rates exist), evaluate the rules once, and print
    /// the values, the alert states and the score.
    ///
    /// One evaluation is all a snapshot sees: a rule with `for:` shows as pending (the
    /// truth of a single evaluation), never firing, and a rule over a range sees only the
    /// values collected here. Exit 1 when a collector failed.
    Snapshot {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Time between the two collections that rates and ratios are computed over.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_window)]
        window: Duration,
    },
}

/// `lookout test ...`
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Run rule test files: input series, expected alerts, notifications and score.
    Rules {
        /// Test files (YAML).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// `lookout notify ...`
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Fire drill: send a test alert through the real receivers and report each result.
    Test {
        /// Configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only this receiver.
        #[arg(long, value_name = "NAME")]
        receiver: Option<String>,
    },
}

/// `lookout rules ...`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print the loaded rules in another system's format.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Prometheus)]
        format: ExportFormat,
        /// Configuration file (its rules.files; without one, the built-in rules).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Formats of `lookout rules export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Prometheus alerting rules (`promtool check rules` accepts them).
    Prometheus,
}

/// `lookout config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the full default configuration, every key commented.
    Default,
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(60) {
        return Err("at most 1m".into());
    }
    Ok(d)
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Config {
            command: ConfigCommand::Default,
        } => print_stdout(&settings::default_yaml()),
        Command::Silence { command, target } => silence::execute(command, &target),
        Command::Snapshot {
            config,
            json,
            window,
        } => snapshot(config, json, window),
        Command::Test {
            command: TestCommand::Rules { files },
        } => test_rules(&files),
        Command::Notify {
            command: NotifyCommand::Test { config, receiver },
        } => notify_test(config, receiver.as_deref()),
        Command::Rules {
            command:
                RulesCommand::Export {
                    format: ExportFormat::Prometheus,
                    config,
                },
        } => match config_or_exit(config, 2) {
            Ok((_, rules)) => print_stdout(&crate::rules::export::to_prometheus(&rules)),
            Err(code) => code,
        },
    }
}

fn print_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`lookout snapshot | head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fatal(&format!("cannot write to standard output: {e}")),
    }
}

fn fatal(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "lookout: {message}");
    ExitCode::from(2)
}

/// Loads the configuration and its rules or prints every problem; `Err` carries the exit code.
fn config_or_exit(path: Option<PathBuf>, failure: u8) -> Result<(Config, Vec<Rule>), ExitCode> {
    agent::load_all(path.as_deref()).map_err(|problems| {
        let mut err = std::io::stderr().lock();
        for p in &problems.0 {
            let _ = writeln!(err, "{p}");
        }
        let _ = writeln!(
            err,
            "lookout: {} problem(s) in the configuration",
            problems.0.len()
        );
        ExitCode::from(failure)
    })
}

fn check(path: Option<PathBuf>) -> ExitCode {
    match config_or_exit(path, 1) {
        Ok((config, rules)) => {
            let source = config.source.as_deref().map_or_else(
                || "built-in defaults".to_string(),
                |p| p.display().to_string(),
            );
            print_stdout(&format!("{source}: ok, {} rules\n", rules.len()))
        }
        Err(code) => code,
    }
}

fn test_rules(files: &[PathBuf]) -> ExitCode {
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    let mut text = String::new();
    for file in files {
        match crate::rules::testing::run_file(file) {
            Ok(report) => {
                passed += report.passed;
                failed += report.failed;
                text.push_str(&format!("{}:\n{}", file.display(), report.text));
                if !report.text.ends_with('\n') {
                    text.push('\n');
                }
            }
            Err(e) => {
                broken += 1;
                text.push_str(&format!("{}: cannot run: {e}\n", file.display()));
            }
        }
    }
    text.push_str(&format!("{passed} passed, {failed} failed\n"));
    if broken > 0 {
        text.push_str(&format!("{broken} file(s) could not be run\n"));
    }
    let code = print_stdout(&text);
    if failed > 0 || broken > 0 {
        ExitCode::from(1)
    } else {
        code
    }
}

fn notify_test(path: Option<PathBuf>, receiver: Option<&str>) -> ExitCode {
    let (config, _) = match config_or_exit(path, 2) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fatal(&format!("cannot start the runtime: {e}")),
    };
    let results = match rt.block_on(crate::notify::dispatch::fire_drill(
        &config.notify,
        &config.agent.hostname,
        receiver,
    )) {
        Ok(r) => r,
        Err(e) => return fatal(&e),
    };
    let mut text = String::new();
    for r in &results {
        match &r.error {
            None => text.push_str(&format!(
                "ok      {} ({}) in {:.2}s\n",
                r.receiver, r.kind, r.seconds
            )),
            Some(e) => text.push_str(&format!(
                "FAILED  {} ({}) in {:.2}s: {e}\n",
                r.receiver, r.kind, r.seconds
            )),
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    text.push_str(&format!(
        "{} passed, {failed} failed\n",
        results.len() - failed
    ));
    let code = print_stdout(&text);
    if failed > 0 { ExitCode::from(1) } else { code }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Two workers are plenty for an agent whose work is a few file reads per interval and a
    // scrape now and then; blocking reads go to the blocking pool.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_keep_alive(Duration::from_secs(60))
        .enable_all()
        .build()
}

/// The environment variable that caps glibc's malloc arenas, and the cap the agent runs with.
pub const ARENAS_VAR: &str = "MALLOC_ARENA_MAX";

/// The glibc malloc settings `run` starts with, each unless the environment sets it already.
///
/// - `MALLOC_ARENA_MAX=1`: glibc gives each thread that allocates an arena of its own (up to
///   eight per core) and memory freed in one arena never serves another, so the agent's
///   dozen threads spread its memory over a dozen arenas: under the soak's load it reached
///   57.0 MiB in 12 minutes with glibc's default, 40.9 MiB with two arenas and 35.3 MiB with
///   one, at the same CPU (small allocations still go through each thread's own cache
///   without the arena's lock).
/// - `MALLOC_MMAP_THRESHOLD_=131072` and `MALLOC_TRIM_THRESHOLD_=262144`: by default glibc
///   raises its mmap threshold to the size of every large block freed, so after the first
///   scrape of a big `/metrics` (about 650 KiB at 7,000 series) every such buffer comes from
///   the heap and stays there; fixed thresholds give large buffers back to the system when
///   they are freed and trim the heap's top beyond 256 KiB. 1 MiB less under the soak's load.
///
/// Measured with `bench/soak.py` (docs/performance.md).
const MALLOC_SETTINGS: &[(&str, &str)] = &[
    (ARENAS_VAR, "1"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MALLOC_TRIM_THRESHOLD_", "262144"),
];

/// glibc reads its malloc settings once, when the process starts, so `run` executes itself
/// again with [`MALLOC_SETTINGS`] unless the environment sets each of them already (one set
/// by the user is left as given). If that fails, the agent runs on with glibc's defaults,
/// and says so.
fn apply_malloc_settings() {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = MALLOC_SETTINGS
        .iter()
        .filter(|(var, _)| std::env::var_os(var).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .envs(missing.iter().map(|(var, value)| (var, value)))
        .exec();
    tracing::warn!(%error, "cannot execute again with the malloc settings (MALLOC_ARENA_MAX=1 and fixed thresholds); running with glibc's defaults");
}

fn run(path: Option<PathBuf>) -> ExitCode {
    apply_malloc_settings();
    let (config, rules) = match config_or_exit(path.clone(), 2) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fatal(&format!("cannot start the runtime: {e}")),
    };
    match rt.block_on(agent::run(config, rules, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            fatal(&format!("{e:#}"))
        }
    }
}

fn snapshot(path: Option<PathBuf>, json: bool, window: Duration) -> ExitCode {
    let (config, rules) = match config_or_exit(path, 2) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let context = collect::Context::new(&config.agent.proc_root, config.agent.rootfs.clone());
    let (mut collectors, mut network) = (Vec::new(), Vec::new());
    for job in config.collect.build(&context) {
        match job {
            Job::Blocking(c) => collectors.push(c),
            Job::Async(c) => network.push(c),
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(&format!("cannot start the runtime: {e}")),
    };
    // One pass over every collector; network ones under their own timeout.
    let mut pass =
        |now: Instant| -> Vec<(String, Result<Vec<crate::collect::Sample>, CollectError>)> {
            let mut out: Vec<_> = collectors
                .iter_mut()
                .map(|c| (c.name().to_string(), c.collect(now)))
                .collect();
            for c in &mut network {
                let result = rt.block_on(collect::scheduler::collect_async(c.as_mut(), now));
                out.push((c.name().to_string(), result));
            }
            out
        };
    // The first pass primes counters; its errors show again in the second pass.
    let _ = pass(Instant::now());
    std::thread::sleep(window);
    let mut store = Store::default();
    let mut errors = Vec::new();
    for (name, result) in pass(Instant::now()) {
        match result {
            Ok(samples) => store.apply(&name, samples, wall_millis()),
            // The target's `up 0` is data the rules judge; why it is down is shown too.
            Err(CollectError::Target { samples, message }) => {
                store.apply(&name, samples, wall_millis());
                errors.push((name, message));
            }
            Err(e) => errors.push((name, e.to_string())),
        }
    }
    let (alerts, score) = evaluate_once(&config, rules, &mut store);
    let text = if json {
        let values: Vec<_> = store
            .present()
            .map(|(k, s)| {
                serde_json::json!({
                    "collector": &*s.owner,
                    "metric": k.name,
                    "labels": k.labels.iter().map(|(n, v)| (n.to_string(), serde_json::Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
                    "value": s.latest.1,
                })
            })
            .collect();
        let errors: serde_json::Map<_, _> = errors
            .iter()
            .map(|(c, e)| (c.clone(), serde_json::Value::from(e.as_str())))
            .collect();
        let doc = serde_json::json!({
            "host": config.agent.hostname,
            "values": values,
            "alerts": alerts,
            "score": score,
            "errors": errors,
        });
        format!("{doc:#}\n")
    } else {
        let mut text = crate::api::exposition::render(&store, &config.agent.hostname);
        text.push_str(&rules_text(&alerts, &score));
        for (c, e) in &errors {
            text.push_str(&format!("# collector {c} failed: {e}\n"));
        }
        text
    };
    let code = print_stdout(&text);
    if errors.is_empty() {
        code
    } else {
        ExitCode::from(1)
    }
}

/// Evaluates `rules` once on `store` and adds the engine's samples to it, as the agent's
/// rules task does: the pending and firing alert instances, and the score.
fn evaluate_once(
    config: &Config,
    rules: Vec<Rule>,
    store: &mut Store,
) -> (Vec<ActiveAlert>, Score) {
    let started = Instant::now();
    let now = wall_millis();
    let mut engine = Engine::new(rules, Vec::new());
    engine.evaluate(store, &config.agent.hostname, now);
    let score = crate::rules::metrics::score(&config.scalability, store, engine.health(), now);
    let samples = crate::rules::metrics::samples(&engine, &score, started.elapsed().as_secs_f64());
    store.apply(crate::rules::metrics::OWNER, samples, now);
    (engine.active(), score)
}

/// The alert instances and the score as exposition comments (the values stay parseable):
/// `# alert NAME SEVERITY STATE {LABELS} VALUE`, `# score SCORE GRADE`, and a line per
/// score component.
fn rules_text(alerts: &[ActiveAlert], score: &Score) -> String {
    let mut text = format!(
        "# alerts after one evaluation (a rule with `for:` shows as pending): {}\n",
        alerts.len()
    );
    for a in alerts {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        text.push_str(&format!(
            "# alert {} {} {} {{{}}} {}\n",
            a.alert,
            a.severity.map_or("-", |s| s.as_str()),
            a.state.as_str(),
            labels.join(","),
            a.value.map_or_else(|| "-".to_string(), |v| v.to_string()),
        ));
    }
    text.push_str(&format!(
        "# score {} {}\n",
        score.score,
        score.grade.as_str()
    ));
    for c in &score.components {
        text.push_str(&format!(
            "# score component {}: penalty {} of {}; {}\n",
            c.name, c.penalty, c.max_penalty, c.explanation
        ));
    }
    text
}

/// Log targets held at `info` whatever `LOOKOUT_LOG` says, because their debug lines carry
/// secrets: lettre's SMTP client logs every line it writes, `AUTH` and its credentials
/// included.
pub const SECRET_LOG_TARGETS: &[&str] = &["lettre::transport::smtp::client"];

/// Installs the log subscriber: `LOOKOUT_LOG` (env-filter syntax, default `info`) on stderr,
/// [`SECRET_LOG_TARGETS`] held at `info`.
pub fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("LOOKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for target in SECRET_LOG_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // Colours only on a terminal: journald, files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn secret_log_targets_are_valid_directives() {
        for target in SECRET_LOG_TARGETS {
            let parsed = format!("{target}=info").parse::<tracing_subscriber::filter::Directive>();
            assert!(parsed.is_ok(), "{target}: {parsed:?}");
        }
    }

    #[test]
    fn snapshot_window_is_bounded() {
        assert!(parse_window("2s").is_ok());
        assert!(parse_window("5m").is_err());
        assert!(parse_window("soon").is_err());
    }
}
