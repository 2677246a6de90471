//! Tape semantics: accumulation on reuse, no_grad, backward twice, upstream gradients.
use arbor_engine::{no_grad, tape, DType, Error, Tensor};

fn p(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape.to_vec())
        .unwrap()
        .into_parameter()
}

#[test]
fn reuse_accumulates_gradients() {
    // y = x * x + x  =>  dy/dx = 2x + 1
    let x = p(&[3.0, -2.0], &[2]);
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![7.0, -3.0]);
}

#[test]
fn gradients_accumulate_across_backward_calls_until_zeroed() {
    let x = p(&[1.5], &[1]);
    for _ in 0..2 {
        x.scale(4.0).unwrap().sum_all().unwrap().backward().unwrap();
    }
    assert_eq!(x.grad().unwrap().item().unwrap(), 8.0);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn no_grad_records_nothing() {
    tape::clear();
    let x = p(&[1.0, 2.0], &[2]);
    let y = no_grad(|| x.exp().unwrap().sum_all().unwrap());
    assert_eq!(tape::len(), 0);
    assert!(!y.requires_grad());
    assert!(matches!(y.backward(), Err(Error::Tape(_))));
    // Recording resumes after the scope.
    let z = x.exp().unwrap();
    assert!(z.requires_grad());
    assert_eq!(tape::len(), 1);
    tape::clear();
}

#[test]
fn constants_are_not_recorded() {
    tape::clear();
    let a = Tensor::ones([3], DType::F32);
    let _ = a.add(&a).unwrap();
    assert_eq!(tape::len(), 0);
}

#[test]
fn backward_twice_is_a_clear_error() {
    let x = p(&[1.0], &[1]);
    let y = x.exp().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    let err = y.backward().unwrap_err();
    assert!(err.to_string().contains("already consumed"), "{err}");
}

#[test]
fn non_scalar_backward_needs_a_gradient() {
    let x = p(&[1.0, 2.0], &[2]);
    let y = x.scale(3.0).unwrap();
    let err = y.backward().unwrap_err();
    assert!(err.to_string().contains("needs a scalar"), "{err}");
    let wrong = Tensor::ones([3], DType::F64);
    assert!(y.backward_with(&wrong).is_err());
    let g = Tensor::from_slice(&[1.0, -1.0], [2]).unwrap();
    y.backward_with(&g).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f64>().unwrap(), vec![3.0, -3.0]);
}

#[test]
fn graph_is_printable() {
    tape::clear();
    let x = p(&[1.0, 2.0], &[2]);
    let _ = x.relu().unwrap().sum_all().unwrap();
    let text = tape::describe();
    assert!(
        text.contains("UnaryBackward") && text.contains("Relu") && text.contains("SumBackward"),
        "{text}"
    );
    tape::clear();
}

#[test]
fn detach_cuts_the_graph_and_reshape_shares_storage() {
    let x = p(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let d = x.detach();
    assert!(!d.requires_grad());
    let r = x.reshape([4]).unwrap();
    x.assign(&Tensor::from_slice(&[9.0, 9.0, 9.0, 9.0], [2, 2]).unwrap())
        .unwrap();
    assert_eq!(r.to_vec::<f64>().unwrap(), vec![9.0; 4]);
    tape::clear();
}
