//! `sluice top`: a live view of a running agent, from its API: each
//! component's rates, counters and state, each channel's fill.

use std::time::Instant;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use serde_json::Value;

use super::{EXIT_FAILED, EXIT_OK};

#[derive(clap::Args)]
pub(super) struct TopArgs {
    /// The agent's API (its pipeline's `api.address`).
    #[arg(long, value_name = "URL", default_value = sluice_api::client::DEFAULT_URL)]
    api: String,
    /// Time between refreshes (e.g. `1s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    interval: String,
    /// Print one frame as plain text and exit (two samples one interval
    /// apart, for the rates); for scripts and terminals without a UI.
    #[arg(long)]
    once: bool,
}

/// Two samples of `/api/components`, for rates.
struct View {
    api: String,
    now: Value,
    /// The previous sample and when it was taken.
    before: Option<(Value, Instant)>,
    taken: Instant,
    /// Why the latest refresh failed, shown until one succeeds.
    error: Option<String>,
}

impl View {
    /// Events per second of `field` of component `i` between the samples.
    fn rate(&self, i: usize, field: &str) -> Option<f64> {
        let (before, at) = self.before.as_ref()?;
        let id = &self.now["components"][i]["id"];
        let old = before["components"]
            .as_array()?
            .iter()
            .find(|c| &c["id"] == id)?;
        let dt = self.taken.duration_since(*at).as_secs_f64();
        let delta = self.now["components"][i]["metrics"][field]
            .as_u64()?
            .saturating_sub(old["metrics"][field].as_u64()?);
        (dt > 0.0).then(|| delta as f64 / dt)
    }
}

fn rate_text(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.1}"),
    }
}

/// A fill bar of `width` cells for a fill ratio (0 to 1, as the API
/// reports it); `-` for a channel without bounds.
fn bar(fill: Option<f64>, width: usize) -> String {
    let Some(frac) = fill else {
        return "-".into();
    };
    let frac = frac.clamp(0.0, 1.0);
    let full = (frac * width as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(full),
        "░".repeat(width - full),
        frac * 100.0
    )
}

fn draw(f: &mut Frame, v: &View) {
    let components = v.now["components"].as_array().cloned().unwrap_or_default();
    let channels = v.now["channels"].as_array().cloned().unwrap_or_default();
    let [head, comps, chans, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(components.len() as u16 + 3),
        Constraint::Length(channels.len() as u16 + 3),
        Constraint::Min(1),
    ])
    .areas(f.area());
    let uptime = v.now["uptime_seconds"].as_f64().unwrap_or_default();
    let title = match &v.error {
        Some(e) => Paragraph::new(format!("sluice top — {e}"))
            .style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        None => Paragraph::new(format!("sluice top — {} — up {uptime:.0}s", v.api))
            .style(Style::new().add_modifier(Modifier::BOLD)),
    };
    f.render_widget(title, head);

    let bold = Style::new().add_modifier(Modifier::BOLD);
    let header = Row::new([
        "KIND",
        "ID",
        "TYPE",
        "STATE",
        "IN/s",
        "OUT/s",
        "IN",
        "OUT",
        "ERRORS",
        "DISCARDED",
    ])
    .style(bold);
    let rows = components.iter().enumerate().map(|(i, c)| {
        let m = &c["metrics"];
        let n = |k: &str| m[k].as_u64().unwrap_or_default().to_string();
        let healthy = c["health"]["healthy"].as_bool().unwrap_or(true);
        let state = c["health"]["state"].as_str().unwrap_or("?");
        let errors = m["errors"].as_u64().unwrap_or_default();
        let style = if !healthy {
            Style::new().fg(Color::Red)
        } else if errors > 0 {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        };
        Row::new(vec![
            c["kind"].as_str().unwrap_or_default().to_string(),
            c["id"].as_str().unwrap_or_default().to_string(),
            c["type"].as_str().unwrap_or_default().to_string(),
            if healthy {
                state.to_string()
            } else {
                format!("{state}!")
            },
            rate_text(v.rate(i, "events_in")),
            rate_text(v.rate(i, "events_out")),
            n("events_in"),
            n("events_out"),
            n("errors"),
            n("discarded"),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Min(10),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(9),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title("components")),
        comps,
    );

    let header = Row::new([
        "ID",
        "TYPE",
        "FILL",
        "EVENTS",
        "CAPACITY",
        "BYTES",
        "MAX BYTES",
    ])
    .style(bold);
    let rows = channels.iter().map(|c| {
        // A bound the channel does not have is `null`: shown as `-`.
        let n = |k: &str| c[k].as_u64().map_or("-".into(), |v| v.to_string());
        Row::new(vec![
            c["id"].as_str().unwrap_or_default().to_string(),
            c["type"].as_str().unwrap_or_default().to_string(),
            bar(c["fill"].as_f64(), 20),
            n("events"),
            n("capacity"),
            n("bytes"),
            n("max_bytes"),
        ])
    });
    let widths = [
        Constraint::Min(10),
        Constraint::Length(8),
        Constraint::Length(26),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(12),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title("channels")),
        chans,
    );
    f.render_widget(Line::from("q: quit"), foot);
}

async fn fetch(api: &str) -> anyhow::Result<Value> {
    let token = std::env::var(sluice_api::client::TOKEN_ENV).ok();
    let r = sluice_api::client::get(api, "/api/components", token.as_deref()).await?;
    anyhow::ensure!(r.status == 200, "{api} answered {}", r.status);
    Ok(serde_json::from_slice(&r.body)?)
}

pub(super) fn main(args: TopArgs) -> i32 {
    let api = args.api.clone();
    match run(args) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            match e.downcast_ref::<sluice_api::client::ClientError>() {
                Some(e) => eprintln!("{}", super::api::unreachable(&api, e)),
                None => eprintln!("error: {e:#}"),
            }
            EXIT_FAILED
        }
    }
}

fn run(args: TopArgs) -> anyhow::Result<()> {
    let interval = sluice_core::config::Duration::parse(&args.interval)
        .map_err(|e| anyhow::anyhow!("--interval: {e}"))?
        .get();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut view = View {
        now: rt.block_on(fetch(&args.api))?,
        api: args.api,
        before: None,
        taken: Instant::now(),
        error: None,
    };
    if args.once {
        std::thread::sleep(interval);
        refresh(&rt, &mut view)?;
        return print_once(&view);
    }
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        loop {
            terminal.draw(|f| draw(f, &view))?;
            let deadline = Instant::now() + interval;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
                if event::poll(left)? {
                    if let Event::Key(k) = event::read()? {
                        let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                            && k.code == KeyCode::Char('c');
                        if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                            return Ok(());
                        }
                    }
                }
            }
            // The agent may restart: keep the last frame and try again.
            view.error = refresh(&rt, &mut view).err().map(|e| format!("{e:#}"));
        }
    })();
    ratatui::restore();
    result
}

fn refresh(rt: &tokio::runtime::Runtime, view: &mut View) -> anyhow::Result<()> {
    let now = rt.block_on(fetch(&view.api))?;
    let taken = Instant::now();
    view.before = Some((std::mem::replace(&mut view.now, now), view.taken));
    view.taken = taken;
    Ok(())
}

/// Renders one frame off-screen and prints it as plain text.
fn print_once(view: &View) -> anyhow::Result<()> {
    let n = |k: &str| view.now[k].as_array().map_or(0, Vec::len) as u16;
    let height = n("components") + n("channels") + 8;
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(132, height))?;
    terminal.draw(|f| draw(f, view))?;
    let buffer = terminal.backend().buffer();
    let width = buffer.area.width as usize;
    let mut out = String::new();
    for row in buffer.content.chunks(width) {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
