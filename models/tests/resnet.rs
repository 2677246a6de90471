//! Model structure: parameter counts against torchvision/reference figures, shapes, and an
//! f64 gradient check through a whole (tiny) ResNet with its loss.
use arbor_engine::gradcheck::{check_subset, Tolerance};
use arbor_engine::ops::loss::{Reduction, Target};
use arbor_engine::{DType, Tensor};
use arbor_models::loss::{Criterion, LossKind};
use arbor_models::resnet::{Arch, ResNet};

#[test]
fn resnet32_has_464154_parameters_for_10_classes() {
    let m = ResNet::new(Arch::ResNet32, 10, DType::F32, 0).unwrap();
    assert_eq!(m.num_parameters(), 464_154);
    // 31 conv+bn pairs (1 stem + 30 in blocks), 2 tensors each for bn, 1 for conv, + fc.
    assert_eq!(m.parameters().len(), 31 * 3 + 2);
}

#[test]
fn resnet50_has_25557032_parameters_for_1000_classes() {
    let m = ResNet::new(Arch::ResNet50, 1000, DType::F32, 0).unwrap();
    assert_eq!(m.num_parameters(), 25_557_032);
}

#[test]
fn small_cifar_resnets_and_shapes() {
    // ResNet-20: 3 blocks per stage (269,722 parameters, the figure the widely used
    // akamaster/pytorch_resnet_cifar10 model prints); ResNet-8: 1.
    let r20 = ResNet::new(Arch::ResNet20, 10, DType::F32, 0).unwrap();
    assert_eq!(r20.num_parameters(), 269_722);
    let r8 = ResNet::new(Arch::ResNet8, 100, DType::F32, 0).unwrap();
    let x = Tensor::zeros([2, 3, 32, 32], DType::F32);
    assert_eq!(r8.features(&x).unwrap().dims(), &[2, 64]);
    assert_eq!(r8.forward(&x).unwrap().dims(), &[2, 100]);
    assert!(r8
        .forward(&Tensor::zeros([2, 1, 32, 32], DType::F32))
        .is_err());
    assert!(ResNet::new(Arch::ResNet8, 1, DType::F32, 0).is_err());
}

#[test]
fn same_seed_same_weights() {
    let a = ResNet::new(Arch::ResNet8, 10, DType::F32, 7).unwrap();
    let b = ResNet::new(Arch::ResNet8, 10, DType::F32, 7).unwrap();
    let c = ResNet::new(Arch::ResNet8, 10, DType::F32, 8).unwrap();
    let v = |m: &ResNet| m.parameters()[0].to_vec::<f32>().unwrap();
    assert_eq!(v(&a), v(&b));
    assert_ne!(v(&a), v(&c));
}

#[test]
fn eval_mode_uses_running_statistics() {
    let mut m = ResNet::new(Arch::ResNet8, 10, DType::F32, 0).unwrap();
    let x = Tensor::from_vec(
        (0..2 * 3 * 32 * 32)
            .map(|i| (i % 17) as f32 / 17.0)
            .collect::<Vec<_>>(),
        [2, 3, 32, 32],
    )
    .unwrap();
    m.set_training(false);
    let before = m.forward(&x).unwrap().to_vec::<f32>().unwrap();
    m.set_training(true);
    let _ = arbor_engine::no_grad(|| m.forward(&x)).unwrap(); // updates running stats
    m.set_training(false);
    let after = m.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(
        before, after,
        "a training pass must move the running statistics"
    );
}

#[test]
fn gradient_check_through_a_tiny_resnet_and_arb_loss() {
    let model = ResNet::new(Arch::ResNet8, 3, DType::F64, 3).unwrap();
    let x: Vec<f64> = (0..4 * 3 * 8 * 8)
        .map(|i| ((i * 7919) % 97) as f64 / 48.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, [4, 3, 8, 8]).unwrap();
    let labels = vec![0, 1, 1, 2];
    let crit = Criterion::new(
        "arb".parse::<LossKind>().unwrap(),
        Reduction::Mean,
        &[5.0, 3.0, 1.0],
    )
    .unwrap();
    let params = model.parameters();
    let tol = Tolerance {
        step: 1e-5,
        atol: 1e-6,
        rtol: 1e-4,
    };
    check_subset(
        &params,
        |_| crit.loss(&model.forward(&x)?, &Target::Hard(labels.clone()), 1),
        tol,
        6,
    )
    .unwrap();
}
