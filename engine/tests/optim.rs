//! The SGD step and the learning-rate schedules against hand computations.
use arbor_engine::optim::{LrSchedule, ParamGroup, Sgd};
use arbor_engine::Tensor;

#[test]
fn sgd_momentum_weight_decay_matches_hand_computation() {
    let p = Tensor::from_slice(&[1.0f64, -2.0], [2])
        .unwrap()
        .into_parameter();
    let mut opt = Sgd::new(vec![p.clone()], 0.1, 0.9, 0.01).unwrap();
    // loss = 3 * sum(p)  =>  g = [3, 3]
    for _ in 0..2 {
        opt.zero_grad();
        p.scale(3.0).unwrap().sum_all().unwrap().backward().unwrap();
        opt.step().unwrap();
    }
    // Step 1: v = g + wd p = [3.01, 2.98]; p = [0.699, -2.298]
    // Step 2: v = 0.9 v + (3 + 0.01 p) = [5.71599, 5.65902]; p -= 0.1 v
    let want = [
        0.699 - 0.1 * (0.9 * 3.01 + 3.0 + 0.01 * 0.699),
        -2.298 - 0.1 * (0.9 * 2.98 + 3.0 - 0.01 * 2.298),
    ];
    let got = p.to_vec::<f64>().unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn parameter_groups_have_their_own_decay_and_scale() {
    let a = Tensor::from_slice(&[1.0f32], [1]).unwrap().into_parameter();
    let b = Tensor::from_slice(&[1.0f32], [1]).unwrap().into_parameter();
    let groups = vec![
        ParamGroup::new(vec![a.clone()], 0.0),
        ParamGroup {
            params: vec![b.clone()],
            weight_decay: 1.0,
            lr_scale: 0.5,
        },
    ];
    let mut opt = Sgd::with_groups(groups, 1.0, 0.0).unwrap();
    a.sum_all()
        .unwrap()
        .add(&b.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    opt.step().unwrap();
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![0.0]); // 1 - 1*1
    assert_eq!(b.to_vec::<f32>().unwrap(), vec![0.0]); // 1 - 0.5*(1 + 1)
}

#[test]
fn sgd_state_round_trips() {
    let p = Tensor::from_slice(&[1.0f32, 2.0], [2])
        .unwrap()
        .into_parameter();
    let mut opt = Sgd::new(vec![p.clone()], 0.1, 0.9, 0.0).unwrap();
    p.sum_all().unwrap().backward().unwrap();
    opt.step().unwrap();
    let state = opt.state().unwrap();
    let mut fresh = Sgd::new(vec![p.clone()], 0.1, 0.9, 0.0).unwrap();
    fresh.load_state(&state).unwrap();
    assert_eq!(fresh.state().unwrap(), state);
    assert!(Sgd::new(vec![p], -1.0, 0.9, 0.0).is_err());
}

#[test]
fn schedules_follow_the_protocol() {
    let arb = LrSchedule::arb(0.1);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(arb.lr_at(1), 0.02));
    assert!(close(arb.lr_at(5), 0.1));
    assert!(close(arb.lr_at(160), 0.1));
    assert!(close(arb.lr_at(161), 0.01));
    assert!(close(arb.lr_at(200), 0.01)); // the reference's 240 never fires
    let m = LrSchedule::mislas(0.1);
    assert!(close(m.lr_at(180), 0.01));
    assert!(close(m.lr_at(181), 0.001));
    let c = LrSchedule::cosine(0.1, 10);
    assert!(close(c.lr_at(1), 0.1));
    assert!(close(c.lr_at(6), 0.05));
    assert!(c.lr_at(10) < 0.003);
    assert!(LrSchedule::by_name("step", 0.1, 10).is_err());
}
