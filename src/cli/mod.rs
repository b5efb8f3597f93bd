//! The command-line interface.

mod anomaly;
mod api;
mod channel;
mod progress;
mod search;
mod tap;
mod templates;
mod test;
mod top;
mod watch;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use sluice_core::registry::Registry;
use sluice_runtime::pipeline::load_pipeline;

use crate::settings::{LogFormat, Settings};

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run failed (a component failed, or the drain timed out).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the pipeline file (or the settings) is invalid.
pub const EXIT_CONFIG: i32 = 2;

/// The heading of the options every subcommand takes, listed apart from
/// each subcommand's own in `--help`.
const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Runs pipelines of sources, bounded channels, processors and sinks declared in YAML",
    after_help = "Documentation: docs/README.md; unit-testing a pipeline (`sluice test`): docs/testing.md"
)]
struct Cli {
    /// Agent settings file (TOML); default `$SLUICE_SETTINGS`, else `./sluice.toml` if present.
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    settings: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `sluice_core=debug`); overrides the settings.
    #[arg(long, global = true, value_name = "FILTER", help_heading = GLOBAL)]
    log_level: Option<String>,
    /// Log format; overrides the settings.
    #[arg(long, global = true, value_enum, help_heading = GLOBAL)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a pipeline until its sources finish or it is stopped (SIGINT/SIGTERM).
    Run {
        /// The pipeline file.
        file: PathBuf,
        /// How long a stop may take to drain channels before tasks are aborted (e.g. `30s`).
        #[arg(long, value_name = "DURATION")]
        drain_timeout: Option<String>,
        /// Reload the pipeline when the file changes (SIGHUP always reloads).
        #[arg(long)]
        watch: bool,
        /// No progress bar on a bounded run.
        #[arg(long)]
        quiet: bool,
        /// Serve health, metrics and the dashboard on IP:PORT (overrides the file's `api:`).
        #[arg(long, value_name = "ADDRESS")]
        api: Option<std::net::SocketAddr>,
        /// Forget the sources' saved positions (checkpoints) and read every input from its
        /// start again; what disk channels hold is kept.
        #[arg(long)]
        from_start: bool,
    },
    /// Checks pipeline files without running them; prints every problem as FILE:LINE:COL: message.
    Validate {
        /// The pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prints a pipeline as a Graphviz DOT graph.
    Graph {
        /// The pipeline file.
        file: PathBuf,
    },
    /// Runs the unit tests of pipelines: events fed into a component, conditions checked on
    /// what comes out of another; tests sit under `tests:` (docs/testing.md).
    Test(test::TestArgs),
    /// Lists the registered component types.
    Components,
    /// Inspects or repairs a disk channel's directory (while no agent uses it).
    Channel {
        #[command(subcommand)]
        command: channel::ChannelCommand,
    },
    /// Trains an anomaly model from a file of feature events (JSON lines) and writes the model file.
    Train(anomaly::TrainArgs),
    /// Prints precision, recall and F1 of anomaly flags against labels in a JSON-lines file.
    Evaluate(anomaly::EvaluateArgs),
    /// Lists the templates a `template` processor mined (ids, line counts, text) from a data_dir.
    Templates(templates::TemplatesArgs),
    /// Searches the index a `store` sink writes; prints matching events, newest first.
    Search(search::Args),
    /// Shows a running agent's components live: rates, channel fill, errors.
    Top(top::TopArgs),
    /// Streams a sample of the events leaving a component of a running agent, as JSON lines.
    Tap(tap::TapArgs),
}

/// Runs the CLI with `registry` and returns the process exit code.
pub fn main(registry: Registry) -> i32 {
    let cli = Cli::parse();
    let mut settings = match Settings::load(cli.settings.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_CONFIG;
        }
    };
    if let Some(l) = cli.log_level {
        settings.log_level = l;
    }
    if let Some(f) = cli.log_format {
        settings.log_format = f;
    }
    if let Err(e) = crate::settings::check_log_level(&settings.log_level) {
        eprintln!("error: {e:#}");
        return EXIT_CONFIG;
    }
    match cli.command {
        Command::Validate { files } => validate(&registry, &files),
        Command::Graph { file } => match load(&registry, &file) {
            Ok(p) => {
                print!("{}", crate::graph::to_dot(&p));
                EXIT_OK
            }
            Err(code) => code,
        },
        Command::Search(args) => search::run(&args),
        Command::Test(args) => test::run(&registry, &args),
        Command::Components => {
            for kind in ["source", "channel", "processor", "sink"] {
                println!("{kind}s: {}", registry.names(kind).join(", "));
            }
            EXIT_OK
        }
        Command::Channel { command } => channel::main(command),
        Command::Train(args) => anomaly::train(&args),
        Command::Evaluate(args) => anomaly::evaluate(&args),
        Command::Templates(args) => templates::run(&args),
        Command::Run {
            file,
            drain_timeout,
            watch,
            quiet,
            api,
            from_start,
        } => {
            if let Some(d) = drain_timeout {
                settings.drain_timeout = d;
            }
            let options = watch::RunOptions {
                watch,
                quiet,
                from_start,
            };
            run(&registry, &file, &settings, &options, api)
        }
        Command::Top(args) => top::main(args),
        Command::Tap(args) => tap::main(args),
    }
}

/// [`load_pipeline`], then the checks that span components of types the
/// loader does not know: disk channels sharing a directory, and the `api:`
/// section's own options (token, TLS, limits).
pub(super) fn load_checked(
    file: &Path,
    registry: &Registry,
) -> Result<sluice_runtime::pipeline::Pipeline, Vec<sluice_runtime::pipeline::Diagnostic>> {
    let pipeline = load_pipeline(file, registry)?;
    let channels = pipeline
        .channels
        .iter()
        .map(|c| (c.id.as_str(), &*c.config, c.pos));
    let mut problems: Vec<_> =
        sluice_channels::disk::shared_directories(&pipeline.data_dir, channels)
            .into_iter()
            .map(|(pos, message)| sluice_runtime::pipeline::Diagnostic {
                file: file.to_path_buf(),
                pos,
                message,
            })
            .collect();
    problems.extend(api::problems(&pipeline));
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(problems)
    }
}

fn load(registry: &Registry, file: &Path) -> Result<sluice_runtime::pipeline::Pipeline, i32> {
    load_checked(file, registry).map_err(|diags| {
        for d in &diags {
            eprintln!("{d}");
        }
        eprintln!(
            "{}: {} problem{}",
            file.display(),
            diags.len(),
            if diags.len() == 1 { "" } else { "s" }
        );
        EXIT_CONFIG
    })
}

fn validate(registry: &Registry, files: &[PathBuf]) -> i32 {
    let mut code = EXIT_OK;
    for f in files {
        match load(registry, f) {
            Ok(p) => println!("{}: ok ({})", f.display(), p.summary()),
            Err(c) => code = c,
        }
    }
    code
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| settings.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .with_context(|| format!("log level `{filter}`"))?;
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| progress::LogWriter);
    let result = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

fn run(
    registry: &Registry,
    file: &Path,
    settings: &Settings,
    options: &watch::RunOptions,
    api: Option<std::net::SocketAddr>,
) -> i32 {
    let setup = init_logging(settings).and_then(|()| settings.drain_timeout());
    let drain_timeout = match setup {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_CONFIG;
        }
    };
    let mut pipeline = match load(registry, file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Listeners at their caps must leave room for the agent's own files.
    sluice_net::conn::raise_fd_limit();
    watch::place_data_dir(&mut pipeline, file, settings);
    if options.from_start {
        if let Err(e) = forget_checkpoints(&pipeline) {
            eprintln!("error: {}: --from-start: {e}", file.display());
            return EXIT_FAILED;
        }
    }
    if let Some(address) = api {
        // The file's token, TLS and limits stay; only the address changes.
        match &mut pipeline.api {
            Some(spec) => spec.address = address,
            None => {
                pipeline.api = Some(sluice_runtime::pipeline::ApiSpec {
                    address,
                    pos: Default::default(),
                    node: None,
                })
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let code = runtime.block_on(async {
        tracing::info!(pipeline = %file.display(), data_dir = %pipeline.data_dir.display(), "starting: {}", pipeline.summary());
        let api = match api::bind(&pipeline) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("error: {}: {e}", file.display());
                return EXIT_FAILED;
            }
        };
        let report = match watch::run_pipeline(registry, file, settings, &pipeline, options, api.as_ref(), stop_signal(), drain_timeout).await {
            Ok(r) => r,
            Err(errors) => {
                for e in &errors {
                    tracing::error!("cannot build {e}");
                    eprintln!("error: {}: cannot build {e}", file.display());
                }
                return EXIT_FAILED;
            }
        };
        let order = |k: &str| ["source", "processor", "sink"].iter().position(|x| *x == k);
        let mut components: Vec<_> = report.components.iter().collect();
        components.sort_by_key(|(c, _)| order(c.kind));
        for (c, m) in components {
            tracing::info!(
                kind = c.kind, id = %c.id, events_in = m.events_in, events_out = m.events_out,
                errors = m.errors, discarded = m.discarded, "final counts"
            );
        }
        if report.is_ok() {
            tracing::info!("stopped cleanly");
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    });
    // A blocking read of a terminal (stdin) cannot be interrupted: do not
    // wait for it once everything else has stopped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// `--from-start`: removes every source's checkpoint
/// (`<data_dir>/sources/<id>/checkpoints.json`), so that each reads its
/// input from the start.
fn forget_checkpoints(pipeline: &sluice_runtime::pipeline::Pipeline) -> std::io::Result<()> {
    for s in &pipeline.sources {
        let path = pipeline
            .data_dir
            .join("sources")
            .join(&s.id)
            .join("checkpoints.json");
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(source = %s.id, checkpoint = %path.display(), "--from-start: saved positions forgotten")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn stop_signal() {
    first_signal().await;
    tokio::spawn(async {
        first_signal().await;
        eprintln!("second stop signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn first_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
