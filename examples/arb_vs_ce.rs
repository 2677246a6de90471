//! ARB-Loss against cross-entropy on a tiny long-tailed problem: five overlapping 2-D
//! Gaussian blobs whose training counts fall from 1000 to 10 (imbalance factor 100). The
//! same small network is trained with each loss from the same initialisation and tested on
//! a balanced set; per-class accuracy shows where they differ.
//!
//! Cross-entropy learns the training prior: where blobs overlap it answers with the head
//! class, and the tail classes lose. ARB-Loss adds `log n_j` to every logit inside the loss
//! (each class's repulsion on the others is weighed by its count), so the network itself
//! does not have to carry the prior and the plain argmax is fairer to the tail.
//!
//! Teaches: `arb_loss` with global class counts beside the fused cross-entropy, on one
//! model and one training loop; measuring per-class accuracy on balanced test data.
//! Read next: `engine/src/ops/loss/arb.rs` (the loss, its formula and gradient),
//! `engine/src/ops/loss/mod.rs` (`FusedLoss`, the op all these losses share),
//! `engine/src/cpu/loss/mod.rs` (the one-pass kernel).
//!
//! Run: `cargo run --release --example arb_vs_ce`
use arbor::engine::ops::loss::{arb_loss, ArbOptions, FusedLoss, Reduction, Target};
use arbor::engine::optim::Sgd;
use arbor::engine::{no_grad, Result, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const CLASSES: usize = 5;
const TRAIN_COUNTS: [usize; CLASSES] = [1000, 316, 100, 32, 10];
const TEST_PER_CLASS: usize = 500;
const HIDDEN: usize = 16;
const STEPS: usize = 400;

/// Class `k`'s blob: centred on a circle of radius 1.5, standard deviation 1 in each axis,
/// so neighbouring classes overlap and the prior matters.
fn blobs(rng: &mut StdRng, counts: &[usize]) -> (Tensor, Vec<usize>) {
    let unit = Normal::new(0.0f32, 1.0).expect("valid std");
    let (mut xy, mut labels) = (vec![], vec![]);
    for (k, &n) in counts.iter().enumerate() {
        let angle = std::f32::consts::TAU * k as f32 / CLASSES as f32;
        for _ in 0..n {
            xy.push(1.5 * angle.cos() + unit.sample(rng));
            xy.push(1.5 * angle.sin() + unit.sample(rng));
            labels.push(k);
        }
    }
    let n = labels.len();
    (
        Tensor::from_vec(xy, [n, 2]).expect("2 values a point"),
        labels,
    )
}

/// Values and shape of each parameter of a 2-16-5 ReLU network (`W1, b1, W2, b2`), drawn
/// once so that both losses start from the same point.
type Init = Vec<(Vec<f32>, Vec<usize>)>;

fn initial_weights(rng: &mut StdRng) -> Init {
    let mut init = vec![];
    for (out, inp) in [(HIDDEN, 2), (CLASSES, HIDDEN)] {
        let bound = (6.0 / inp as f32).sqrt();
        let w = (0..out * inp)
            .map(|_| rng.gen_range(-bound..bound))
            .collect();
        init.push((w, vec![out, inp]));
        init.push((vec![0.0; out], vec![out]));
    }
    init
}

fn forward(p: &[Tensor], x: &Tensor) -> Result<Tensor> {
    x.linear(&p[0], Some(&p[1]))?
        .relu()?
        .linear(&p[2], Some(&p[3]))
}

/// Trains a fresh copy of `init` with `loss_of(logits)` and returns its per-class test
/// accuracy (percent).
fn train(
    init: &Init,
    x: &Tensor,
    test: &(Tensor, Vec<usize>),
    loss_of: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Vec<f64>> {
    let params: Vec<Tensor> = init
        .iter()
        .map(|(v, shape)| Tensor::parameter(v.clone(), shape.clone()))
        .collect::<Result<_>>()?;
    let mut sgd = Sgd::new(params.clone(), 0.2, 0.9, 0.0)?;
    for _ in 0..STEPS {
        let loss = loss_of(&forward(&params, x)?)?;
        sgd.zero_grad();
        loss.backward()?;
        sgd.step()?;
    }
    let logits = no_grad(|| forward(&params, &test.0))?.to_vec::<f32>()?;
    let mut right = [0usize; CLASSES];
    for (row, &label) in logits.chunks(CLASSES).zip(&test.1) {
        let predicted = (0..CLASSES)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("classes exist");
        right[label] += usize::from(predicted == label);
    }
    Ok(right
        .iter()
        .map(|&r| 100.0 * r as f64 / TEST_PER_CLASS as f64)
        .collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(3);
    let (x, labels) = blobs(&mut rng, &TRAIN_COUNTS);
    let test = blobs(&mut rng, &[TEST_PER_CLASS; CLASSES]);
    let init = initial_weights(&mut rng);
    let target = Target::Hard(labels);

    let ce = FusedLoss::cross_entropy("cross_entropy", Reduction::Mean);
    let ce_acc = train(&init, &x, &test, |z| z.fused_loss(&ce, &target))?;
    // Global counts: the whole training set's, fixed for the run.
    let counts: Vec<f64> = TRAIN_COUNTS.iter().map(|&n| n as f64).collect();
    let arb_acc = train(&init, &x, &test, |z| {
        arb_loss(z, &target, &counts, &ArbOptions::default())
    })?;

    println!("per-class accuracy on a balanced test set ({TEST_PER_CLASS} points per class):");
    println!("class  train  cross-entropy  ARB-Loss");
    for k in 0..CLASSES {
        println!(
            "{k:5}  {:5}  {:12.1}%  {:7.1}%",
            TRAIN_COUNTS[k], ce_acc[k], arb_acc[k]
        );
    }
    let (head, tail) = (0..2, 3..CLASSES);
    println!(
        "head (classes 0-1)  {:12.1}%  {:7.1}%",
        mean(&ce_acc[head.clone()]),
        mean(&arb_acc[head])
    );
    println!(
        "tail (classes 3-4)  {:12.1}%  {:7.1}%",
        mean(&ce_acc[tail.clone()]),
        mean(&arb_acc[tail])
    );
    println!(
        "all classes         {:12.1}%  {:7.1}%",
        mean(&ce_acc),
        mean(&arb_acc)
    );
    Ok(())
}
