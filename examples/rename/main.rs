//! Rename every file of a folder of class folders to
//! `<class>_<n>.<ext>`, safely (dry run by default).
use std::path::PathBuf;

use clap::Parser;
use std::process::ExitCode;

use gemstones::dataset::{Error, RenameConfig, pending_rename, plan_rename, rename_until, scan};
use gemstones_cli::{exit, stop_on_ctrl_c};

#[derive(Parser, Debug)]
#[command(about = "Rename files to <class name lower-cased>_<n>.<ext lower-cased>, never overwriting")]
struct Args {
    /// Folder of class folders.
    root: PathBuf,
    /// Carry out the plan (without this, only print it).
    #[arg(long)]
    apply: bool,
    /// Renumber every file 0..n in name order (the tutorial's way) instead
    /// of keeping names that already follow the pattern.
    #[arg(long)]
    compact: bool,
    /// First number.
    #[arg(value_parser = gemstones_cli::count_in(0, 1000000000), long, default_value_t = 0)]
    start: usize,
}

fn main() -> anyhow::Result<ExitCode> {
    gemstones_cli::exit_quietly_on_closed_pipe();
    let a = Args::parse();
    let cfg = RenameConfig { compact: a.compact, start: a.start };
    // --apply stops at the next safe point (the rename is journaled); a dry
    // run changes nothing and may simply end.
    let stop = if a.apply {
        stop_on_ctrl_c()
    } else {
        gemstones_cli::exit_on_ctrl_c("stopped: nothing was changed (dry run)");
        gemstones::dataset::StopFlag::new()
    };
    // What a rename leaves alone is said the same way with --apply and without.
    let folder = scan(&a.root)?;
    for p in &folder.unusable_names {
        println!("skipped (name not UTF-8; rename it by hand): {}", p.display());
    }
    if let Some(note) = folder.hidden_note() {
        println!("{note}");
    }
    if a.apply {
        let s = match rename_until(&a.root, &cfg, &stop) {
            Err(Error::Cancelled) => {
                eprintln!("stopped: the rename is journaled; run again with --apply to finish it");
                return Ok(ExitCode::from(exit::INTERRUPTED));
            }
            other => other?,
        };
        if s.resumed {
            println!("finished an interrupted rename first");
        }
        println!("renamed {} files, {} already named", s.renamed, s.kept);
    } else if let Some(n) = pending_rename(&a.root)? {
        // A dry run never writes, not even to finish an earlier run.
        println!("an interrupted rename of {n} files is pending: add --apply to finish it (nothing changed)");
    } else {
        print!("{}", plan_rename(&folder, &cfg)?.describe());
        println!("(dry run: add --apply to rename)");
    }
    Ok(ExitCode::SUCCESS)
}
