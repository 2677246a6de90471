//! ResNet evaluation with batch norm folded into the convs (the default under `no_grad`)
//! against the composed conv, batch norm and ReLU ops. Its own test binary: the switch is
//! process-wide.
use arbor_engine::gradcheck::SplitMix;
use arbor_engine::{no_grad, DType, Tensor};
use arbor_models::layers::fold_batch_norm_in_evaluation;
use arbor_models::resnet::{Arch, ResNet};

#[test]
fn folded_evaluation_matches_composed_evaluation() {
    let mut r = SplitMix::new(21);
    for arch in [Arch::ResNet8, Arch::ResNet20] {
        let mut m = ResNet::new(arch, 10, DType::F32, 0).unwrap();
        let x = Tensor::from_vec(r.vec(4 * 3 * 32 * 32, -1.0, 1.0), [4, 3, 32, 32])
            .and_then(|t| t.to_dtype(DType::F32))
            .unwrap();
        // Batch norm away from the identity: a few training passes move the running
        // statistics, and gamma and beta get random values.
        m.set_training(true);
        for _ in 0..3 {
            no_grad(|| m.forward(&x)).unwrap();
        }
        for p in m.named().0.iter().filter(|p| p.name.contains("bn")) {
            let (lo, hi) = if p.name.ends_with("weight") {
                (0.5, 1.5)
            } else {
                (-0.5, 0.5)
            };
            let values =
                Tensor::from_vec(r.vec(p.tensor.numel(), lo, hi), p.tensor.dims().to_vec())
                    .and_then(|t| t.to_dtype(DType::F32))
                    .unwrap();
            p.tensor.assign(&values).unwrap();
        }
        m.set_training(false);
        fold_batch_norm_in_evaluation(false);
        let composed = no_grad(|| m.forward(&x)).unwrap().to_vec_f64().unwrap();
        fold_batch_norm_in_evaluation(true);
        let folded = no_grad(|| m.forward(&x)).unwrap().to_vec_f64().unwrap();
        // Folded weights round differently: equal bits would mean the fold never ran.
        assert_ne!(folded, composed, "{arch}: the folded path was not taken");
        let scale = composed.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in folded.iter().zip(&composed).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "{arch} logit {i}: folded {a}, composed {b}"
            );
        }
        // While the tape records, evaluation runs the composed ops (the folded op has
        // no backward) and gives the same logits.
        let recorded = m.forward(&x).unwrap().to_vec_f64().unwrap();
        for (a, b) in recorded.iter().zip(&composed) {
            assert!((a - b).abs() <= 1e-5 * scale);
        }
    }
}
