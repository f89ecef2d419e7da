//! # gemstones-cli
//!
//! What the example programs share and a library should not impose: exit
//! codes, logging to stderr, Ctrl-C, SIGPIPE, the parsers of numeric flags.
//! A dev-dependency of the `gemstones` facade and of `gemstones-predict`
//! (their examples are the command-line tools), never published. It links
//! no libtorch and no inference engine, so the libtorch-free predictor's
//! programs follow the same rules; what only the facade's programs share
//! (the `--preset` and `--optimizer` parsers, the scrapers' exit) is in
//! `examples/shared/`. The library crates take a [`StopFlag`] and draw
//! progress bars only when asked; this crate is where a program decides.
#![deny(missing_docs)]

use gemstones_dataset::StopFlag;

/// The clap parser of a decimal flag within `min..=max`: `inf`, `NaN`,
/// and anything outside the range are usage errors (exit 2) whose message
/// names the flag and the range. Integer flags use clap's own
/// `value_parser!(T).range(..)`, which says the same.
pub fn float_in(min: f64, max: f64) -> impl clap::builder::TypedValueParser<Value = f64> {
    use clap::builder::TypedValueParser;
    clap::builder::StringValueParser::new().try_map(move |s| {
        let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        if (min..=max).contains(&v) { Ok(v) } else { Err(format!("{s} is not in {min}..={max}")) }
    })
}

/// The clap parser of a count flag (`usize`) within `min..=max`; a value
/// outside is a usage error naming the flag and the range.
pub fn count_in(min: u64, max: u64) -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser;
    clap::value_parser!(u64).range(min..=max).try_map(usize::try_from)
}

/// The clap parser of a side flag where 0 turns the feature off
/// (`--progressive 0`): 0, or a side within `min..=max`.
pub fn side_or_off(min: u32, max: u32) -> impl clap::builder::TypedValueParser<Value = u32> {
    use clap::builder::TypedValueParser;
    clap::value_parser!(u32).range(0..=i64::from(max)).try_map(move |side| {
        if side == 0 || side >= min {
            Ok(side)
        } else {
            Err(format!("{side} is not 0 (off) nor in {min}..={max}"))
        }
    })
}

/// The `--input-size` flag of the examples that predict (`evaluate`,
/// `predict`, `export`): the side of `gemstones_model::Scoring::input_size`.
// No about text of its own: flattened into a program, this doc comment
// would replace the program's.
#[derive(clap::Args, Debug, Clone, Copy)]
#[command(about = None, long_about = None)]
pub struct InputSizeArg {
    /// Predict at this input side rather than the one the network trained
    /// at (a larger side can make up for the random crops' zoom,
    /// docs/guide.md#predicting-at-a-larger-side-than-training; not for the
    /// tutorial CNN, whose dense layer fixes its side).
    #[arg(value_parser = clap::value_parser!(u32).range(32..=1024), long)]
    pub input_size: Option<u32>,
}

/// Exit codes the examples share (docs/reliability.md, "Exit codes"): 0 success, 1 an
/// error (the message names the file or URL), 2 a usage error (clap), and
/// these two.
pub mod exit {
    use std::process::ExitCode;

    /// The run finished but found problems: `verify` found undecodable files
    /// or a photo in two folders, `predict` or `evaluate` could not read
    /// (and skipped) some inputs, a
    /// scrape found no class at all.
    pub const PROBLEMS: u8 = 3;
    /// Stopped by Ctrl-C (128 + SIGINT, as shells expect); the work done is
    /// saved and a re-run resumes it.
    pub const INTERRUPTED: u8 = 130;
    /// A usage error: clap's for a bad flag, and ours for an output path
    /// that the output rule refuses (nothing was done).
    pub const USAGE: u8 = 2;

    /// Print a usage error (an output path refused before any work) and
    /// return `USAGE`.
    pub fn usage(error: impl std::fmt::Display) -> ExitCode {
        eprintln!("error: {error}");
        ExitCode::from(USAGE)
    }

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
        // Colour codes only for a person at a terminal, never in a pipe or file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// For work that is safe to kill at any instant (the journaled split, a
/// dry run): the first Ctrl-C prints `message` and exits with 130 at once.
pub fn exit_on_ctrl_c(message: &'static str) {
    let _ = ctrlc::set_handler(move || {
        eprintln!("\n{message}");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
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

#[cfg(test)]
mod tests {
    use clap::builder::TypedValueParser;
    use proptest::prelude::*;

    /// `--flag=TEXT` through a command whose flag has `parser`.
    fn parse<P>(parser: P, text: &str) -> Result<P::Value, clap::Error>
    where
        P: TypedValueParser + Send + Sync + 'static,
        P::Value: Clone + Send + Sync + 'static,
    {
        let cmd = clap::Command::new("t").arg(clap::Arg::new("flag").long("flag").value_parser(parser));
        let mut m = cmd.try_get_matches_from(["t".to_string(), format!("--flag={text}")])?;
        Ok(m.remove_one::<P::Value>("flag").expect("the flag was given"))
    }

    proptest! {
        #[test]
        fn a_float_flag_takes_exactly_its_range(v in prop_oneof![
            any::<f64>(),
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0), Just(-0.0),
            Just(1e-300), Just(1e300), Just(f64::MIN_POSITIVE), Just(0.001), Just(1000.0),
        ]) {
            let parsed = parse(super::float_in(0.001, 1000.0), &v.to_string());
            prop_assert_eq!(parsed.is_ok(), (0.001..=1000.0).contains(&v));
            if let Err(e) = parsed {
                prop_assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
                prop_assert!(e.to_string().contains("0.001..=1000"), "{}", e);
            }
        }

        #[test]
        fn a_count_flag_takes_exactly_its_range(text in prop_oneof![
            any::<u64>().prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            "[0-9]{20,40}",
            ".*",
        ]) {
            let parsed = parse(super::count_in(1, 1000), &text);
            let expected = text.parse::<u64>().is_ok_and(|v| (1..=1000).contains(&v));
            prop_assert_eq!(parsed.is_ok(), expected, "{:?}", text);
        }
    }

    #[test]
    fn a_side_flag_takes_zero_for_off_or_its_range() {
        assert_eq!(parse(super::side_or_off(16, 1024), "0").unwrap(), 0);
        assert_eq!(parse(super::side_or_off(16, 1024), "16").unwrap(), 16);
        for refused in ["8", "1025", "-1"] {
            assert!(parse(super::side_or_off(16, 1024), refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn text_that_is_not_a_number_is_refused_by_name() {
        let e = parse(super::float_in(0.0, 1.0), "fast").unwrap_err();
        assert!(e.to_string().contains("\"fast\" is not a number"), "{e}");
    }
}
