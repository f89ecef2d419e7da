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
    json_differences(saved, new)
        .into_iter()
        .filter(|(key, _)| !SETTINGS_FREE_ON_RESUME.contains(&key.split('.').next().unwrap_or_default()))
        .collect()
}

/// Every setting (a field, or a field of a field, as `outer.inner`) whose
/// value differs between two settings of one type, in name order: each as
/// its name and `name old -> new`, values as JSON writes them.
pub(crate) fn json_differences<T: serde::Serialize>(saved: &T, new: &T) -> Vec<(String, String)> {
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(fields) if !fields.is_empty() => {
                for (key, inner) in fields {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    leaves(&name, inner, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let flat = |c: &T| {
        let mut out = std::collections::BTreeMap::new();
        leaves("", &serde_json::to_value(c).unwrap_or_default(), &mut out);
        out
    };
    let (old, new) = (flat(saved), flat(new));
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (was, is) =
                (old.get(name).map_or("null", String::as_str), new.get(name).map_or("null", String::as_str));
            (was != is).then(|| (name.clone(), format!("{name} {was} -> {is}")))
        })
        .collect()
}
