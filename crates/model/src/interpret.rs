//! Reading an [`Evaluation`] as fastai's `ClassificationInterpretation`
//! does: the most-confused pairs, the photos with the highest loss, the
//! classes sorted by F1, and the families of look-alike classes the model
//! mixes up among themselves.
use serde::{Deserialize, Serialize};

use crate::eval::{ClassMetrics, Evaluation};

/// Pairs confused at least this often are listed (fastai's
/// `most_confused(min_val=2)`), and join classes into families.
pub const DEFAULT_MIN_CONFUSED: u32 = 2;

/// A true class the model took for another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusedPair {
    /// The true class.
    pub true_class: String,
    /// What the model predicted.
    pub predicted: String,
    /// How many images of `true_class` were predicted as `predicted`.
    pub count: u32,
    /// `count` as a share of the images of `true_class`.
    pub share: f64,
}

/// Classes the model mostly confuses among themselves (e.g. the red
/// garnets): the connected classes of the pairs confused at least
/// `min_count` times (either way round).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusableFamily {
    /// The classes, by name.
    pub classes: Vec<String>,
    /// Images of these classes.
    pub images: usize,
    /// Of the images of these classes predicted as one of them, the share
    /// predicted as the right one: how well the model tells the family's
    /// members apart.
    pub within_accuracy: f64,
    /// Of the errors on these classes, the share that stayed inside the
    /// family.
    pub errors_inside: f64,
}

/// What [`Evaluation::interpret`] finds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interpretation {
    /// The pairs confused at least `min_count` times, most first.
    pub most_confused: Vec<ConfusedPair>,
    /// The families of confusable classes, largest first.
    pub families: Vec<ConfusableFamily>,
    /// The classes present in the evaluation, worst F1 first.
    pub classes_by_f1: Vec<ClassMetrics>,
    /// The minimum count the lists were made with.
    pub min_count: u32,
}

impl Evaluation {
    /// The most-confused pairs, the confusable families and the classes by
    /// F1; pairs and families need at least `min_count` confusions.
    pub fn interpret(&self, min_count: u32) -> Interpretation {
        let min_count = min_count.max(1);
        Interpretation {
            most_confused: self.most_confused(min_count),
            families: self.confusable_families(min_count),
            classes_by_f1: self.classes_by_f1(),
            min_count,
        }
    }

    /// Off-diagonal cells of the confusion matrix with at least
    /// `min_count` images, most first (ties by class names).
    pub fn most_confused(&self, min_count: u32) -> Vec<ConfusedPair> {
        let mut pairs = Vec::new();
        for (t, row) in self.confusion.iter().enumerate() {
            let support: u32 = row.iter().sum();
            for (p, &count) in row.iter().enumerate() {
                if t != p && count >= min_count.max(1) {
                    pairs.push(ConfusedPair {
                        true_class: self.classes[t].clone(),
                        predicted: self.classes[p].clone(),
                        count,
                        share: f64::from(count) / f64::from(support.max(1)),
                    });
                }
            }
        }
        pairs.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.true_class, &a.predicted).cmp(&(&b.true_class, &b.predicted)))
        });
        pairs
    }

    /// The classes with images, worst F1 first (ties by name).
    pub fn classes_by_f1(&self) -> Vec<ClassMetrics> {
        let mut v: Vec<ClassMetrics> = self.per_class.iter().filter(|m| m.support > 0).cloned().collect();
        v.sort_by(|a, b| a.f1.total_cmp(&b.f1).then_with(|| a.class.cmp(&b.class)));
        v
    }

    /// Classes joined by pairs confused at least `min_count` times (in
    /// both directions together), as families of two or more, largest
    /// confusion first.
    pub fn confusable_families(&self, min_count: u32) -> Vec<ConfusableFamily> {
        let n = self.confusion.len();
        let mut family: Vec<usize> = (0..n).collect();
        for a in 0..n {
            for b in a + 1..n {
                if self.confusion[a][b] + self.confusion[b][a] >= min_count.max(1) {
                    join(&mut family, a, b);
                }
            }
        }
        let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for c in 0..n {
            let root = find(&mut family, c);
            members.entry(root).or_default().push(c);
        }
        let mut families: Vec<(u32, ConfusableFamily)> =
            members.into_values().filter(|m| m.len() > 1).map(|m| self.family_of(&m)).collect();
        families.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.classes.cmp(&b.1.classes)));
        families.into_iter().map(|(_, f)| f).collect()
    }

    /// A family's figures, with the number of confusions inside it.
    fn family_of(&self, members: &[usize]) -> (u32, ConfusableFamily) {
        let (mut images, mut inside, mut right, mut errors) = (0u32, 0u32, 0u32, 0u32);
        for &t in members {
            let row = &self.confusion[t];
            images += row.iter().sum::<u32>();
            right += row[t];
            errors += row.iter().sum::<u32>() - row[t];
            inside += members.iter().map(|&p| row[p]).sum::<u32>();
        }
        let confused_inside = inside - right;
        let family = ConfusableFamily {
            classes: members.iter().map(|&c| self.classes[c].clone()).collect(),
            images: images as usize,
            within_accuracy: f64::from(right) / f64::from(inside.max(1)),
            errors_inside: f64::from(confused_inside) / f64::from(errors.max(1)),
        };
        (confused_inside, family)
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn join(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    // The smaller id becomes the root: the result does not depend on the
    // order pairs are joined in.
    parent[ra.max(rb)] = ra.min(rb);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(classes: &[&str], confusion: Vec<Vec<u32>>) -> Evaluation {
        let per_class = classes
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let tp = f64::from(confusion[j][j]);
                let support: u32 = confusion[j].iter().sum();
                let predicted: u32 = confusion.iter().map(|r| r[j]).sum();
                let (p, r) = (tp / f64::from(predicted.max(1)), tp / f64::from(support.max(1)));
                ClassMetrics {
                    class: (*c).into(),
                    precision: p,
                    recall: r,
                    f1: if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 },
                    support: support as usize,
                }
            })
            .collect();
        Evaluation {
            images: confusion.iter().flatten().sum::<u32>() as usize,
            loss: 0.0,
            top1: 0.0,
            top5: 0.0,
            macro_f1: 0.0,
            classes: classes.iter().map(|c| (*c).into()).collect(),
            per_class,
            confusion,
            misclassified: Vec::new(),
            top_losses: Vec::new(),
        }
    }

    /// Three red garnets confused among themselves, an emerald confused
    /// once with a garnet, a clean sapphire.
    fn garnets() -> Evaluation {
        evaluation(
            &["Almandine", "Emerald", "Pyrope", "Rhodolite", "Sapphire"],
            vec![
                vec![5, 0, 3, 1, 0],
                vec![1, 9, 0, 0, 0],
                vec![2, 0, 6, 0, 0],
                vec![0, 0, 2, 4, 0],
                vec![0, 0, 0, 0, 7],
            ],
        )
    }

    #[test]
    fn ties_rank_by_class_id_everywhere() {
        assert_eq!(crate::metrics::ranking(&[0.2, 0.4, 0.4, 0.0]), [1, 2, 0, 3]);
        // A tie for first: class 1 is the prediction, so label 2 is a top-5
        // hit but not a top-1 hit.
        let rows = vec![vec![0.2, 0.4, 0.4, 0.0]];
        assert_eq!(crate::metrics::topk_accuracy(&rows, &[1]), (1.0, 1.0));
        assert_eq!(crate::metrics::topk_accuracy(&rows, &[2]), (0.0, 1.0));
    }

    #[test]
    fn most_confused_lists_pairs_at_or_above_the_minimum_most_first() {
        let pairs = garnets().most_confused(2);
        let names: Vec<(&str, &str, u32)> =
            pairs.iter().map(|p| (p.true_class.as_str(), p.predicted.as_str(), p.count)).collect();
        assert_eq!(
            names,
            [("Almandine", "Pyrope", 3), ("Pyrope", "Almandine", 2), ("Rhodolite", "Pyrope", 2)]
        );
        assert!((pairs[0].share - 3.0 / 9.0).abs() < 1e-12);
        assert_eq!(garnets().most_confused(1).len(), 5);
    }

    #[test]
    fn families_join_the_classes_confused_among_themselves() {
        let families = garnets().confusable_families(2);
        assert_eq!(families.len(), 1);
        let f = &families[0];
        assert_eq!(f.classes, ["Almandine", "Pyrope", "Rhodolite"]);
        assert_eq!(f.images, 23);
        // 15 right out of the 23 - 0 predicted inside (every garnet error
        // stayed a garnet).
        assert!((f.within_accuracy - 15.0 / 23.0).abs() < 1e-12);
        assert!((f.errors_inside - 1.0).abs() < 1e-12);
        // With a minimum of 1 the emerald joins through its one error.
        assert_eq!(garnets().confusable_families(1)[0].classes.len(), 4);
    }

    #[test]
    fn classes_by_f1_puts_the_worst_first_and_leaves_out_absent_classes() {
        let mut e = garnets();
        e.confusion[4] = vec![0; 5];
        e.per_class[4].support = 0;
        let order: Vec<String> = e.classes_by_f1().into_iter().map(|m| m.class).collect();
        assert_eq!(order.len(), 4);
        assert_eq!(order.last().map(String::as_str), Some("Emerald"));
        assert!(e.classes_by_f1().windows(2).all(|w| w[0].f1 <= w[1].f1));
    }
}
