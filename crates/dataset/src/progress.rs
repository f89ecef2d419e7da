//! The workspace's one progress bar: the library crates draw it only when
//! their caller asks (`Trainer::progress`, `ScrapeConfig::progress`), the
//! examples for their own stages.

/// A bar of `len` steps counting `unit` ("batches", "images") on stderr,
/// or a hidden one when `shown` is false. indicatif draws nothing when
/// stderr is not a terminal.
pub fn progress_bar(len: u64, unit: &str, shown: bool) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} {{msg}} [{{elapsed_precise}}]");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_drawn_only_when_asked() {
        assert!(progress_bar(3, "images", false).is_hidden());
        let bar = progress_bar(3, "images", true);
        assert_eq!(bar.length(), Some(3));
    }
}
