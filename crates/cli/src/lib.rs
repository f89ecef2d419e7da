//! # gemstones-cli
//!
//! What the example programs share and a library should not impose: exit
//! codes, logging to stderr, Ctrl-C, SIGPIPE, parsing a preset on the
//! command line. A dev-dependency of the `gemstones` facade (its examples
//! are its command-line tools), never published: the library crates take a
//! [`StopFlag`] and draw progress bars only when asked; this crate is where
//! a program decides.
#![deny(missing_docs)]

use std::path::Path;

use gemstones::model::StopFlag;
use gemstones::presets::Preset;

/// The clap parser of a `--preset` argument: its possible values listed in
/// `--help` and in the error for a typo.
pub fn preset_parser() -> impl clap::builder::TypedValueParser<Value = Preset> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Preset::ALL.map(Preset::name))
        .try_map(|name| name.parse::<Preset>())
}

/// Exit codes the examples share (docs/reliability.md, "Exit codes"): 0 success, 1 an
/// error (the message names the file or URL), 2 a usage error (clap), and
/// these two.
pub mod exit {
    use std::process::ExitCode;

    /// The run finished but found problems: `verify` found undecodable files
    /// or a photo in two folders, `predict` could not read some inputs, a
    /// scrape found no class at all.
    pub const PROBLEMS: u8 = 3;
    /// Stopped by Ctrl-C (128 + SIGINT, as shells expect); the work done is
    /// saved and a re-run resumes it.
    pub const INTERRUPTED: u8 = 130;

    /// `PROBLEMS` when `found` is true, else success.
    pub fn problems_if(found: bool) -> ExitCode {
        if found { ExitCode::from(PROBLEMS) } else { ExitCode::SUCCESS }
    }

    /// `INTERRUPTED` when `stopped` is true, else success.
    pub fn interrupted_if(stopped: bool) -> ExitCode {
        if stopped { ExitCode::from(INTERRUPTED) } else { ExitCode::SUCCESS }
    }
}

/// End quietly when stdout is closed early (`count ... | head -1`), as Unix
/// tools do: restores the default action of SIGPIPE, which the Rust runtime
/// ignores (its `println!` would then panic on the broken pipe). Every file
/// this project writes is written atomically, so dying there loses nothing.
pub fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Log to stderr through `tracing`, filtered by `RUST_LOG` (default
/// `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A stop flag raised by Ctrl-C (the first press; a second one kills).
pub fn stop_on_ctrl_c() -> StopFlag {
    let flag = StopFlag::new();
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.is_stopped() {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to kill)...");
        f.stop();
    });
    flag
}

/// How a scrape example exits: 130 when Ctrl-C stopped it, 3 (with a
/// warning) when it found no class at all, else 0.
pub fn scrape_exit_code(summary: &gemstones::scrape::ScrapeSummary) -> std::process::ExitCode {
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
pub fn scrape_until_ctrl_c(
    scraper: gemstones::scrape::Scraper,
    out: &Path,
) -> gemstones::scrape::Result<gemstones::scrape::ScrapeSummary> {
    scraper.stop_flag(stop_on_ctrl_c()).run_blocking(out)
}
