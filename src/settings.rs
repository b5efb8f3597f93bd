//! Agent-level settings (not the pipeline): log level and format, the
//! default drain timeout. Layered, lowest first: built-in defaults, a TOML
//! file (`--settings FILE`, else `$SLUICE_SETTINGS`, else `./sluice.toml` if
//! present), `SLUICE_*` environment variables (`SLUICE_LOG_LEVEL=debug`),
//! then command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Agent settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// A `tracing` filter: `info`, `debug`, `sluice_core=debug,info`.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// How long a stop may take to drain channels before tasks are aborted.
    pub drain_timeout: String,
    /// Where a pipeline that does not set `data_dir` keeps its state:
    /// `<data_dir>/<pipeline file stem>`.
    pub data_dir: PathBuf,
}

/// Every setting's name, for checking a settings file.
const KEYS: &[&str] = &["log_level", "log_format", "drain_timeout", "data_dir"];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            log_level: "info".into(),
            log_format: LogFormat::Text,
            drain_timeout: "30s".into(),
            data_dir: PathBuf::from(".sluice"),
        }
    }
}

impl Settings {
    /// Loads the layered settings. `file` is `--settings`, if given.
    ///
    /// # Errors
    ///
    /// An unreadable or invalid settings file, or an invalid variable.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let file: Option<PathBuf> = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SLUICE_SETTINGS").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("sluice.toml")).filter(|p| p.exists()));
        let defaults = Settings::default();
        let mut builder = config::Config::builder()
            .set_default("log_level", defaults.log_level)
            .and_then(|b| b.set_default("log_format", "text"))
            .and_then(|b| b.set_default("drain_timeout", defaults.drain_timeout))
            .and_then(|b| {
                b.set_default("data_dir", defaults.data_dir.to_string_lossy().into_owned())
            })
            .context("settings defaults")?;
        if let Some(f) = &file {
            check_file_keys(f)?;
            builder = builder.add_source(
                config::File::from(f.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(config::Environment::with_prefix("SLUICE").try_parsing(false));
        let cfg = builder.build().map_err(|e| match &file {
            Some(f) => anyhow!("settings file {}: {e}", f.display()),
            None => anyhow!("settings: {e}"),
        })?;
        // Only our keys: other SLUICE_* variables (tests' own) are ignored.
        let get = |k: &str| cfg.get_string(k).with_context(|| format!("settings: {k}"));
        let log_format = match get("log_format")?.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                bail!("settings: log_format: unknown value `{other}` (use `text` or `json`)")
            }
        };
        let s = Settings {
            log_level: get("log_level")?,
            log_format,
            drain_timeout: get("drain_timeout")?,
            data_dir: PathBuf::from(get("data_dir")?),
        };
        s.drain_timeout()?;
        Ok(s)
    }

    /// The drain timeout as a duration.
    ///
    /// # Errors
    ///
    /// When it is not a duration such as `30s`.
    pub fn drain_timeout(&self) -> anyhow::Result<Duration> {
        sluice_core::config::Duration::parse(&self.drain_timeout)
            .map(|d| d.get())
            .map_err(|e| anyhow!("settings: drain_timeout: {e}"))
    }
}

/// The levels a log filter may name.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks a log filter: a level (`info`), or comma-separated directives
/// `TARGET=LEVEL` (`sluice_core=debug,info`). A bare word that is not a
/// level (`verbose`) would be read by the filter as a target name and
/// quietly log next to nothing: it is refused.
///
/// # Errors
///
/// Names the first directive that is not a level or `TARGET=LEVEL`.
pub fn check_log_level(filter: &str) -> anyhow::Result<()> {
    let levels = LEVELS.join(", ");
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            // A span filter (`target[span]`) is left to the filter itself.
            None if directive.contains('[') => continue,
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            bail!(
                "log level `{filter}` (from --log-level, SLUICE_LOG_LEVEL or the settings file): `{level}` is not a level; use one of {levels}, or TARGET=LEVEL such as `sluice_core=debug`"
            );
        }
    }
    Ok(())
}

/// A misspelt key in a settings file is an error, not silently ignored.
fn check_file_keys(file: &Path) -> anyhow::Result<()> {
    let only_file = config::Config::builder()
        .add_source(
            config::File::from(file)
                .format(config::FileFormat::Toml)
                .required(true),
        )
        .build()
        .map_err(|e| anyhow!("settings file {}: {e}", file.display()))?;
    let table: std::collections::HashMap<String, config::Value> = only_file
        .try_deserialize()
        .map_err(|e| anyhow!("settings file {}: {e}", file.display()))?;
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(k) = unknown.first() {
        let hint = sluice_core::config::suggest::nearest(k, KEYS.iter().copied())
            .map(|s| format!(": did you mean `{s}`?"))
            .unwrap_or_else(|| format!(" (settings: {})", KEYS.join(", ")));
        bail!(
            "settings file {}: unknown setting `{k}`{hint}",
            file.display()
        );
    }
    Ok(())
}
