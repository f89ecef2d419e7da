//! Scrape a static catalogue site (minerals.net by default, or a profile
//! file) into `out/<Class>/`, with a provenance manifest; resumable.
#[path = "../shared/mod.rs"]
mod shared;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::scrape::{ScrapeConfig, Scraper, SiteProfile, SourceKind};

#[derive(Parser, Debug)]
#[command(about = "Scrape gem photographs from a static catalogue site")]
struct Args {
    /// Built-in profile (`minerals-net`) or a profile file (.toml or .json).
    #[arg(long, default_value = "minerals-net")]
    profile: String,
    /// Start URL (overrides the profile's, e.g. a mirror).
    #[arg(long)]
    start_url: Option<url::Url>,
    /// Output folder: `<out>/<Class>/<file>` and `<out>/manifest.jsonl`.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Requests per second per host.
    #[arg(value_parser = gemstones_cli::float_in(0.001, 10000.0), long, default_value_t = 1.0)]
    rps: f64,
    /// Downloads in flight.
    #[arg(value_parser = gemstones_cli::count_in(1, 1024), long, default_value_t = 4)]
    concurrency: usize,
    /// At most this many classes.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000000), long)]
    max_classes: Option<usize>,
    /// At most this many images per class.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000000), long)]
    max_per_class: Option<usize>,
    /// User-Agent (also matched against robots.txt).
    #[arg(long)]
    user_agent: Option<String>,
    /// Ignore robots.txt (only for sites you own).
    #[arg(long)]
    ignore_robots: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    let mut profile =
        SiteProfile::builtin(&a.profile).map_or_else(|| SiteProfile::load(a.profile.as_ref()), Ok)?;
    anyhow::ensure!(
        profile.source == SourceKind::Static,
        "{} renders with JavaScript: use the fetch_dynamic example",
        profile.name
    );
    if let Some(u) = a.start_url {
        profile.start_url = u;
    }
    let mut cfg = ScrapeConfig {
        max_classes: a.max_classes,
        max_images_per_class: a.max_per_class,
        ..ScrapeConfig::default()
    };
    cfg.fetch.per_host_rps = a.rps;
    cfg.fetch.concurrency = a.concurrency;
    cfg.fetch.obey_robots = !a.ignore_robots;
    if let Some(ua) = a.user_agent {
        cfg.fetch.user_agent = ua;
    }
    let scraper = Scraper::new(profile, cfg)?;
    let s = shared::scrape_until_ctrl_c(scraper, &a.out)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(shared::scrape_exit_code(&s))
}
