//! Scrape a JavaScript-rendered catalogue (rasavgems.com by default)
//! through a real browser: start `chromedriver --port=9515` (or
//! geckodriver) and pass its URL.
#[path = "../shared/mod.rs"]
mod shared;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gemstones::scrape::{ScrapeConfig, Scraper, SiteProfile};

#[derive(Parser, Debug)]
#[command(about = "Scrape gem photographs from a JavaScript-rendered site through WebDriver")]
struct Args {
    /// Built-in profile (`rasavgems`) or a profile file (.toml or .json).
    #[arg(long, default_value = "rasavgems")]
    profile: String,
    /// Start URL (overrides the profile's).
    #[arg(long)]
    start_url: Option<url::Url>,
    /// The WebDriver URL.
    #[arg(long, default_value = "http://localhost:9515")]
    webdriver: String,
    /// Output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Requests per second per host (image downloads).
    #[arg(value_parser = gemstones_cli::float_in(0.001, 10000.0), long, default_value_t = 1.0)]
    rps: f64,
    /// Seconds to wait for the product list to appear.
    #[arg(value_parser = gemstones_cli::float_in(0.001, 86400.0), long, default_value_t = 20.0)]
    page_timeout: f64,
    /// At most this many classes.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000000), long)]
    max_classes: Option<usize>,
    /// At most this many images per class.
    #[arg(value_parser = gemstones_cli::count_in(1, 1000000), long)]
    max_per_class: Option<usize>,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    gemstones_cli::init_logging();
    let a = Args::parse();
    let mut profile =
        SiteProfile::builtin(&a.profile).map_or_else(|| SiteProfile::load(a.profile.as_ref()), Ok)?;
    if let Some(u) = a.start_url {
        profile.start_url = u;
    }
    let mut cfg = ScrapeConfig {
        webdriver: Some(a.webdriver),
        page_timeout: a.page_timeout,
        max_classes: a.max_classes,
        max_images_per_class: a.max_per_class,
        ..ScrapeConfig::default()
    };
    cfg.fetch.per_host_rps = a.rps;
    let scraper = Scraper::new(profile, cfg)?;
    let s = shared::scrape_until_ctrl_c(scraper, &a.out)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(shared::scrape_exit_code(&s))
}
