//! The one ranking of a row of scores, and top-k accuracy from it.

/// The one ranking behind every top-1/top-k figure (validation during
/// training, `evaluate`, `Classifier::top_k`, and the libtorch-free
/// predictor), so they cannot disagree on ties.
pub(crate) use gemstones_dataset::ranking;

/// Top-1 and top-5 accuracy of rows of scores against labels.
pub(crate) fn topk_accuracy(rows: &[Vec<f32>], labels: &[i64]) -> (f64, f64) {
    let (mut top1, mut top5) = (0usize, 0usize);
    for (row, &label) in rows.iter().zip(labels) {
        let order = ranking(row);
        top1 += usize::from(order.first().is_some_and(|&c| c as i64 == label));
        top5 += usize::from(order.iter().take(5).any(|&c| c as i64 == label));
    }
    let n = labels.len().max(1) as f64;
    (top1 as f64 / n, top5 as f64 / n)
}
