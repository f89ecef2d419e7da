//! The one ranking of a row of scores, and top-k accuracy from it.

/// Class ids of one row of scores, best first; equal scores in class-id
/// order. The one ranking behind every top-1/top-k figure (validation
/// during training, `evaluate`, `Classifier::top_k`), so they cannot
/// disagree on ties.
pub(crate) fn ranking(row: &[f32]) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..row.len()).collect();
    // Stable: ties keep the lower id first.
    ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    ids
}

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
