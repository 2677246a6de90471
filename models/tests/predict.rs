//! Per-image predictions against a naive computation, the CSV layout, and the places-lt
//! preset's protocol (pretrained start, frozen backbone).
use arbor_models::predict::{predictions_csv, Prediction};
use arbor_models::presets;
use arbor_models::resnet::Arch;

#[test]
fn prediction_matches_a_naive_softmax_and_breaks_ties_low() {
    let logits = [0.5f32, 3.0, -1.0, 3.0, 2.0, 0.0, 1.0];
    let p = Prediction::from_logits(12, 3, &logits);
    // Naive: exp(l_max) / sum exp(l), l_max = 3.0 (first at class 1).
    let sum: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
    let naive = 3.0f64.exp() / sum;
    assert!(
        (p.confidence - naive).abs() < 1e-12,
        "{} vs {naive}",
        p.confidence
    );
    assert_eq!(p.predicted, 1);
    assert_eq!(p.top5, vec![1, 3, 4, 6, 0]);
    let csv = predictions_csv(&[p]);
    assert_eq!(
        csv,
        format!("index,label,predicted,confidence,top5\n12,3,1,{naive:.6},1 3 4 6 0\n")
    );
    // Large logits do not overflow: the exponentials are taken relative to the maximum.
    let big = Prediction::from_logits(0, 0, &[1000.0, 999.0]);
    let naive = 1.0 / (1.0 + (-1.0f64).exp());
    assert!((big.confidence - naive).abs() < 1e-12);
    assert_eq!(Prediction::from_logits(0, 0, &[1.0, 2.0]).top5, vec![1, 0]);
}

#[test]
fn places_preset_fine_tunes_a_pretrained_resnet50_with_one_new_block() {
    let p = presets::find("places-lt-arb").unwrap();
    assert_eq!(p.config.arch, Arch::ResNet50Places);
    assert!(p.config.freeze_backbone);
    let mut cfg = p.config.clone();
    cfg.data = Some("/nonexistent".into());
    let e = cfg.validate().unwrap_err();
    assert!(e.contains("--freeze-backbone needs --init-from"), "{e}");
    cfg.init_from = Some("in1k.safetensors".into());
    assert!(cfg.validate().is_ok());
}
