//! What the facade's example programs share beyond `gemstones-cli`: the
//! parsers of the flags that name the facade's own types (`--preset`,
//! `--optimizer`) and how a scrape ends. Included by each example that
//! uses it (`#[path = "../shared/mod.rs"] mod shared;`); kept out of
//! `gemstones-cli` so that crate links no libtorch and the predictor's
//! programs can use it.
#![allow(dead_code)] // each example uses a part

use std::path::Path;

use gemstones::model::OptimizerKind;
use gemstones::presets::Preset;
use gemstones::scrape::{ScrapeSummary, Scraper};
use gemstones_cli::{exit, stop_on_ctrl_c};

/// The clap parser of a `--preset` argument: its possible values listed in
/// `--help` and in the error for a typo.
pub fn preset_parser() -> impl clap::builder::TypedValueParser<Value = Preset> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Preset::ALL.map(Preset::name))
        .try_map(|name| name.parse::<Preset>())
}

/// The clap parser of an `--optimizer` argument: `adam`, `adamw` or `sgd`.
pub fn optimizer_parser() -> impl clap::builder::TypedValueParser<Value = OptimizerKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["adam", "adamw", "sgd"]).map(|name| match name.as_str() {
        "adam" => OptimizerKind::Adam,
        "adamw" => OptimizerKind::AdamW,
        _ => OptimizerKind::Sgd,
    })
}

/// How a scrape example exits: 130 when Ctrl-C stopped it, 3 (with a
/// warning) when it found no class at all, else 0.
pub fn scrape_exit_code(summary: &ScrapeSummary) -> std::process::ExitCode {
    if summary.stopped {
        return std::process::ExitCode::from(exit::INTERRUPTED);
    }
    if summary.classes == 0 {
        eprintln!(
            "warning: no class found from the start page ({} pages read): check the start URL and the \
             profile's class selectors",
            summary.pages
        );
    }
    exit::problems_if(summary.classes == 0)
}

/// Run a scrape that the first Ctrl-C stops cleanly (downloads in flight
/// finish, the manifest is complete for them).
pub fn scrape_until_ctrl_c(scraper: Scraper, out: &Path) -> gemstones::scrape::Result<ScrapeSummary> {
    scraper.stop_flag(stop_on_ctrl_c()).run_blocking(out)
}
