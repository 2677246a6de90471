//! Evaluation metrics: top-1, top-5, per-class accuracy, many/medium/few accuracy and
//! expected calibration error, all in percent.
//!
//! [`Accumulator`] takes logits batch by batch and keeps only counts, so evaluating
//! iNaturalist's 8142 classes never holds the whole `[N, C]` logit matrix.

/// Equal-width confidence bins of the ECE.
pub const ECE_BINS: usize = 15;

/// The classes over which many-, medium- and few-shot accuracies are averaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassGroups {
    /// Head classes.
    pub many: Vec<usize>,
    /// Middle classes.
    pub medium: Vec<usize>,
    /// Tail classes.
    pub few: Vec<usize>,
}

impl ClassGroups {
    /// Groups by class index: many `[0, many_end)`, medium `[many_end, medium_end)`, few
    /// `[medium_end, num_classes)`.
    pub fn from_index_ranges(
        num_classes: usize,
        many_end: usize,
        medium_end: usize,
    ) -> Result<Self, String> {
        if many_end > medium_end || medium_end > num_classes {
            return Err(format!(
                "class ranges need many_end <= medium_end <= num_classes, \
                 got {many_end}, {medium_end}, {num_classes}"
            ));
        }
        Ok(ClassGroups {
            many: (0..many_end).collect(),
            medium: (many_end..medium_end).collect(),
            few: (medium_end..num_classes).collect(),
        })
    }

    /// The protocol's CIFAR-LT ranges: CIFAR-10 [0,3) [3,7) [7,10); CIFAR-100 [0,36)
    /// [36,71) [71,100). Class 0 has the most training images there.
    pub fn cifar(num_classes: usize) -> Result<Self, String> {
        match num_classes {
            10 => Self::from_index_ranges(10, 3, 7),
            100 => Self::from_index_ranges(100, 36, 71),
            _ => Err(format!(
                "CIFAR class ranges exist for 10 or 100 classes, not {num_classes}"
            )),
        }
    }

    /// The standard definition from training counts: classes sorted by count (most
    /// first, ties by index), many > 100 images, medium 20..=100, few < 20.
    pub fn from_train_counts(counts: &[usize]) -> Self {
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(counts[c]), c));
        let in_range = |range: std::ops::RangeInclusive<usize>| {
            order
                .iter()
                .copied()
                .filter(|&c| range.contains(&counts[c]))
                .collect()
        };
        ClassGroups {
            many: in_range(101..=usize::MAX),
            medium: in_range(20..=100),
            few: in_range(0..=19),
        }
    }
}

/// Metrics of one evaluation; accuracies and ECE in percent.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: usize,
    /// Top-1 accuracy over all samples.
    pub top1: f64,
    /// Top-5 accuracy (top-C when there are fewer than 5 classes).
    pub top5: f64,
    /// Top-1 accuracy of each class; `None` for a class without test samples.
    pub per_class: Vec<Option<f64>>,
    /// Mean per-class accuracy of the many-shot classes (`None`: no such class tested).
    pub many: Option<f64>,
    /// Mean per-class accuracy of the medium-shot classes.
    pub medium: Option<f64>,
    /// Mean per-class accuracy of the few-shot classes.
    pub few: Option<f64>,
    /// Expected calibration error, [`ECE_BINS`] equal-width bins of max-softmax
    /// confidence, times 100.
    pub ece: f64,
}

/// Streams batches of logits into the counts the metrics need.
#[derive(Clone, Debug)]
pub struct Accumulator {
    num_classes: usize,
    samples: usize,
    top1_correct: usize,
    top5_correct: usize,
    class_samples: Vec<usize>,
    class_correct: Vec<usize>,
    bin_samples: [usize; ECE_BINS],
    bin_confidence: [f64; ECE_BINS],
    bin_correct: [usize; ECE_BINS],
}

impl Accumulator {
    /// An empty accumulator for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Accumulator {
            num_classes,
            samples: 0,
            top1_correct: 0,
            top5_correct: 0,
            class_samples: vec![0; num_classes],
            class_correct: vec![0; num_classes],
            bin_samples: [0; ECE_BINS],
            bin_confidence: [0.0; ECE_BINS],
            bin_correct: [0; ECE_BINS],
        }
    }

    /// Adds a batch: `logits` is `[labels.len(), num_classes]`, row-major.
    ///
    /// Fails (adding nothing) on a shape mismatch, a label out of range or a non-finite
    /// logit.
    pub fn add(&mut self, logits: &[f32], labels: &[u32]) -> Result<(), String> {
        let c = self.num_classes;
        if c == 0 || logits.len() != labels.len() * c {
            return Err(format!(
                "metrics: {} logits do not form {} rows of {c} classes",
                logits.len(),
                labels.len()
            ));
        }
        for (row, (values, &label)) in logits.chunks(c).zip(labels).enumerate() {
            if label as usize >= c {
                return Err(format!("metrics: label {label} of row {row} is not < {c}"));
            }
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(format!("metrics: row {row} has the non-finite logit {v}"));
            }
        }
        for (values, &label) in logits.chunks(c).zip(labels) {
            self.add_row(values, label as usize);
        }
        Ok(())
    }

    fn add_row(&mut self, logits: &[f32], label: usize) {
        // Rank of the true class; ties go to the lower index, as an argmax would.
        let target = logits[label];
        let rank = logits
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > target || (v == target && j < label))
            .count();
        let correct = rank == 0;
        self.samples += 1;
        self.top1_correct += usize::from(correct);
        self.top5_correct += usize::from(rank < 5);
        self.class_samples[label] += 1;
        self.class_correct[label] += usize::from(correct);

        // Max softmax probability = 1 / sum_j exp(l_j - max), in f64 for accuracy.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let partition: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
        let confidence = 1.0 / partition;
        let bin = confidence_bin(confidence);
        self.bin_samples[bin] += 1;
        self.bin_confidence[bin] += confidence;
        self.bin_correct[bin] += usize::from(correct);
    }

    /// The metrics of everything added; `groups` must name classes below `num_classes`.
    pub fn finish(&self, groups: &ClassGroups) -> Result<Evaluation, String> {
        if self.samples == 0 {
            return Err("metrics: no sample was evaluated".into());
        }
        let groups_valid = [&groups.many, &groups.medium, &groups.few]
            .iter()
            .all(|g| g.iter().all(|&c| c < self.num_classes));
        if !groups_valid {
            return Err(format!(
                "metrics: class groups name a class outside 0..{}",
                self.num_classes
            ));
        }
        let n = self.samples as f64;
        let per_class: Vec<Option<f64>> = self
            .class_samples
            .iter()
            .zip(&self.class_correct)
            .map(|(&total, &correct)| percent(correct, total))
            .collect();
        let group_mean = |classes: &[usize]| {
            let tested: Vec<f64> = classes.iter().filter_map(|&c| per_class[c]).collect();
            (!tested.is_empty()).then(|| tested.iter().sum::<f64>() / tested.len() as f64)
        };
        let ece: f64 = (0..ECE_BINS)
            .map(|b| (self.bin_confidence[b] - self.bin_correct[b] as f64).abs())
            .sum::<f64>()
            / n;
        Ok(Evaluation {
            samples: self.samples,
            top1: 100.0 * self.top1_correct as f64 / n,
            top5: 100.0 * self.top5_correct as f64 / n,
            many: group_mean(&groups.many),
            medium: group_mean(&groups.medium),
            few: group_mean(&groups.few),
            per_class,
            ece: 100.0 * ece,
        })
    }
}

/// Evaluates one `[N, C]` block of logits at once (see [`Accumulator`]).
pub fn evaluate(
    logits: &[f32],
    labels: &[u32],
    num_classes: usize,
    groups: &ClassGroups,
) -> Result<Evaluation, String> {
    let mut accumulator = Accumulator::new(num_classes);
    accumulator.add(logits, labels)?;
    accumulator.finish(groups)
}

fn percent(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// Bin `b` holds confidences in `(b / 15, (b + 1) / 15]`, the usual ECE binning (a
/// confidence is never 0: it is at least 1/C).
fn confidence_bin(confidence: f64) -> usize {
    let edge = |b: usize| b as f64 / ECE_BINS as f64;
    let mut bin = ((confidence * ECE_BINS as f64).ceil() as usize)
        .saturating_sub(1)
        .min(ECE_BINS - 1);
    // The product above can land one bin off at an edge; settle by comparing to edges.
    while bin > 0 && confidence <= edge(bin) {
        bin -= 1;
    }
    while bin < ECE_BINS - 1 && confidence > edge(bin + 1) {
        bin += 1;
    }
    bin
}
