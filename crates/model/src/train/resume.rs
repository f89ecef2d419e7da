//! Whether a checkpoint may be resumed under the settings asked for.
use std::path::Path;

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::optim::Schedule;

/// Settings that only change speed, or are read only at the start of a
/// run (the pretrained weights' path): resuming with other values is fine.
pub(super) const SETTINGS_FREE_ON_RESUME: [&str; 3] = ["threads", "augment_threads", "pretrained"];

/// Refuse to resume a run saved with `saved` settings under `new` ones that
/// would make the result another experiment (a mix of two learning rates,
/// batch sizes, precisions...), listing what differs. A longer run
/// (`epochs` raised) is allowed when nothing depends on the total length:
/// a constant learning rate and no progressive resizing; it is logged.
pub(super) fn check_resumable_with(saved: &TrainConfig, new: &TrainConfig, state_file: &Path) -> Result<()> {
    let length_free = new.schedule == Schedule::Constant && new.progressive.is_none();
    let changed: Vec<String> = differences(saved, new)
        .into_iter()
        .filter(|(key, _)| {
            let longer = key == "epochs" && length_free && new.epochs > saved.epochs;
            if longer {
                tracing::info!(
                    "resuming to {} epochs instead of {}: with a constant learning rate this is the longer run",
                    new.epochs,
                    saved.epochs
                );
            }
            !longer
        })
        .map(|(_, change)| change)
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let hint = if length_free {
        ""
    } else {
        " (more epochs need a constant learning rate, no progressive resizing)"
    };
    Err(Error::BadModel {
        path: state_file.to_path_buf(),
        reason: format!(
            "the checkpoint was trained with other settings: {}; resume with the same settings or train into \
             another directory{hint}",
            changed.join(", ")
        ),
    })
}

/// The settings of `new` that differ from `saved`, leaving out those that
/// only change speed ([`SETTINGS_FREE_ON_RESUME`]): each as its name and
/// `name old -> new`.
pub(crate) fn differences(saved: &TrainConfig, new: &TrainConfig) -> Vec<(String, String)> {
    let as_map = |c: &TrainConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (old_json, new_json) = (as_map(saved), as_map(new));
    let keys: std::collections::BTreeSet<&String> = old_json.keys().chain(new_json.keys()).collect();
    keys.into_iter()
        .filter(|key| !SETTINGS_FREE_ON_RESUME.contains(&key.as_str()))
        .filter_map(|key| {
            let old_value = old_json.get(key).unwrap_or(&serde_json::Value::Null);
            let new_value = new_json.get(key).unwrap_or(&serde_json::Value::Null);
            (old_value != new_value).then(|| (key.clone(), format!("{key} {old_value} -> {new_value}")))
        })
        .collect()
}
