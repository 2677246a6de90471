//! Long-tailed subsets: exponentially decaying per-class counts.
//!
//! Class `i` of `C` keeps `n_i = floor(n_max * (1/IF)^(i / (C-1)))` images, class 0 the
//! most. The float expression is evaluated exactly as the reference does in Python
//! (`int(img_max * imb_factor ** (i / (C - 1.0)))`, all in f64 with `imb_factor = 1/IF`),
//! so the counts match bit for bit; CIFAR-10 IF100 gives 5000, 2997, 1796, 1077, 645,
//! 387, 232, 139, 83, 50.
//!
//! Which images are kept is drawn as the reference draws them: numpy's legacy generator
//! seeded once with the *subset* seed (the reference's `np.random.seed(0)`), then one
//! `np.random.shuffle` per class in label order ([`super::mt19937`]). The subset seed is
//! separate from the training seed, so changing `--seed` never changes the data.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mt19937::Mt19937;
use super::DataError;

/// The reference's subset seed (`np.random.seed(0)` in its CIFAR-LT dataset class).
pub const REFERENCE_SUBSET_SEED: u32 = 0;

/// Per-class image counts of the long-tailed profile, class 0 first.
///
/// `imbalance` is the imbalance factor IF = n_0 / n_{C-1} (100, 50, 10, ...), at least 1.
pub fn longtail_counts(
    n_max: usize,
    num_classes: usize,
    imbalance: f64,
) -> Result<Vec<usize>, DataError> {
    if num_classes == 0 || !(imbalance.is_finite() && imbalance >= 1.0) {
        return Err(DataError::invalid(format!(
            "long-tail profile needs num_classes > 0 and a finite imbalance factor >= 1, \
             got {num_classes} classes and IF {imbalance}"
        )));
    }
    if num_classes == 1 {
        return Ok(vec![n_max]);
    }
    let ratio = 1.0 / imbalance;
    let last = (num_classes - 1) as f64;
    let counts: Vec<usize> = (0..num_classes)
        .map(|i| (n_max as f64 * ratio.powf(i as f64 / last)) as usize)
        .collect();
    if let Some(empty) = counts.iter().position(|&n| n == 0) {
        return Err(DataError::invalid(format!(
            "--imb {imbalance} leaves class {empty} of {num_classes} with no training images \
             (the largest class has {n_max}); use an imbalance factor of at most {n_max}"
        )));
    }
    Ok(counts)
}

/// The chosen training images of a long-tailed subset, serialisable so that a run's
/// exact subset can be inspected and reused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongTailSubset {
    /// Imbalance factor the counts were computed with.
    pub imbalance: f64,
    /// numpy seed of the per-class shuffles (`--subset-seed`); files written before the
    /// numpy generator called it `seed`.
    #[serde(alias = "seed")]
    pub subset_seed: u32,
    /// The run's training seed (`--seed`), recorded to show it played no part here;
    /// `None` when the subset was written without a run (`repro data subset`).
    #[serde(default)]
    pub train_seed: Option<u64>,
    /// Images kept per class.
    pub counts: Vec<usize>,
    /// Indices into the full training set, class 0's first, each class in shuffled order.
    pub indices: Vec<usize>,
}

/// Picks a long-tailed subset of a balanced training set with `labels`.
///
/// `n_max = labels.len() / num_classes`; numpy's MT19937 seeded with `subset_seed`
/// shuffles each class's indices (in file order) in turn, class 0 first, and the first
/// `n_i` are kept: with seed 0 exactly the reference's subset. A class with fewer than
/// `n_i` images is an error.
pub fn longtail_subset(
    labels: &[u32],
    num_classes: usize,
    imbalance: f64,
    subset_seed: u32,
) -> Result<LongTailSubset, DataError> {
    if num_classes == 0 {
        return Err(DataError::invalid("long-tail subset needs num_classes > 0"));
    }
    let counts = longtail_counts(labels.len() / num_classes, num_classes, imbalance)?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (index, &label) in labels.iter().enumerate() {
        let class = by_class.get_mut(label as usize).ok_or_else(|| {
            DataError::invalid(format!(
                "label {label} of image {index} is not below num_classes {num_classes}"
            ))
        })?;
        class.push(index);
    }
    let mut rng = Mt19937::new(subset_seed);
    let mut indices = Vec::with_capacity(counts.iter().sum());
    for (class, (members, &keep)) in by_class.iter_mut().zip(&counts).enumerate() {
        if members.len() < keep {
            return Err(DataError::invalid(format!(
                "class {class} has {} images, the long-tail profile (IF {imbalance}) needs {keep}",
                members.len()
            )));
        }
        rng.shuffle(members);
        indices.extend_from_slice(&members[..keep]);
    }
    Ok(LongTailSubset {
        imbalance,
        subset_seed,
        train_seed: None,
        counts,
        indices,
    })
}

impl LongTailSubset {
    /// Writes the subset as pretty-printed JSON, through a temporary file and a rename so
    /// that a reader never sees half a file.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| DataError::invalid(format!("cannot serialise subset: {e}")))?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, json).map_err(|e| DataError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    }

    /// Reads a subset written by [`LongTailSubset::save`], checking that the indices
    /// agree with the counts.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let subset: LongTailSubset =
            serde_json::from_str(&text).map_err(|e| DataError::format(path, e.to_string()))?;
        let total: usize = subset.counts.iter().sum();
        if total != subset.indices.len() {
            return Err(DataError::format(
                path,
                format!(
                    "counts add up to {total} but {} indices are listed",
                    subset.indices.len()
                ),
            ));
        }
        Ok(subset)
    }
}
