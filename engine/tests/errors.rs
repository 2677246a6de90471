//! Bad input gives an `Err` whose message names what is wrong; nothing panics.
use arbor_engine::{DType, Error, Tensor};

fn t(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape.to_vec(), DType::F32)
}

#[test]
fn shape_mismatches_name_both_shapes() {
    let e = t(&[2, 3]).add(&t(&[4])).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }));
    assert!(
        e.to_string().contains("[2, 3]") && e.to_string().contains("[4]"),
        "{e}"
    );
    let e = t(&[2, 3]).matmul(&t(&[2, 3])).unwrap_err();
    assert!(e.to_string().contains("matmul"), "{e}");
    assert!(t(&[2, 3]).reshape([5]).is_err());
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 3]).is_err());
    assert!(t(&[2, 3]).linear(&t(&[4, 2]), None).is_err());
    assert!(Tensor::concat(&[t(&[2, 3]), t(&[3, 2])], 0).is_err());
}

#[test]
fn dtype_mismatch_is_reported() {
    let e = t(&[2]).add(&Tensor::zeros([2], DType::F64)).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    assert!(
        e.to_string().contains("f32") && e.to_string().contains("f64"),
        "{e}"
    );
    assert!(t(&[2]).to_vec::<f64>().is_err());
}

#[test]
fn axes_out_of_range() {
    let e = t(&[2, 3]).sum(&[2], false).unwrap_err();
    assert_eq!(
        e,
        Error::Axis {
            op: "sum",
            axis: 2,
            rank: 2
        }
    );
    assert!(t(&[2, 3]).max(-3, false).is_err());
    assert!(t(&[2, 3]).transpose(0, 5).is_err());
    assert!(t(&[2, 3]).permute(&[0, 0]).is_err());
    assert!(t(&[2, 3]).sum(&[1, -1], false).is_err());
}

#[test]
fn bad_indices_and_arguments() {
    assert!(t(&[2, 3]).index_select(1, &[3]).is_err());
    assert!(t(&[2, 3]).gather(1, &[0, 5], [2, 1]).is_err());
    assert!(t(&[2, 3]).gather(1, &[0], [2, 1]).is_err());
    assert!(t(&[2, 3]).slice(&[(0, 2, 0), (0, 3, 1)]).is_err());
    assert!(t(&[2, 3]).clamp(1.0, -1.0).is_err());
    assert!(t(&[]).softmax().is_err());
    assert!(t(&[2, 3]).item().is_err());
}

#[test]
fn cuda_without_the_feature_is_a_device_error() {
    let e = t(&[2])
        .to_device(arbor_engine::Device::Cuda(0))
        .unwrap_err();
    assert!(matches!(e, Error::Device { .. }));
    assert!(e.to_string().contains("cuda"), "{e}");
}

/// The error's message, which must name `shape` (as `{:?}` prints it).
fn err_naming(r: arbor_engine::Result<Tensor>, shape: &str) {
    match r {
        Ok(t) => panic!("expected an error naming {shape}, got {t:?}"),
        Err(e) => assert!(e.to_string().contains(shape), "'{e}' does not name {shape}"),
    }
}

#[test]
fn conv2d_validation_errors_name_the_shapes() {
    let x = Tensor::zeros([2, 3, 5, 5], DType::F32);
    let w = Tensor::zeros([4, 3, 3, 3], DType::F32);
    err_naming(
        x.reshape([6, 5, 5])
            .unwrap()
            .conv2d(&w, None, (1, 1), (0, 0)),
        "[6, 5, 5]",
    );
    err_naming(
        x.conv2d(
            &Tensor::zeros([4, 2, 3, 3], DType::F32),
            None,
            (1, 1),
            (0, 0),
        ),
        "[4, 2, 3, 3]",
    );
    err_naming(
        x.conv2d(
            &Tensor::zeros([4, 3, 8, 3], DType::F32),
            None,
            (1, 1),
            (1, 1),
        ),
        "[2, 3, 5, 5]",
    );
    err_naming(
        x.conv2d(&w, Some(&Tensor::zeros([3], DType::F32)), (1, 1), (0, 0)),
        "[3]",
    );
    err_naming(
        x.conv2d(&w.to_dtype(DType::F64).unwrap(), None, (1, 1), (0, 0)),
        "[4, 3, 3, 3]",
    );
    err_naming(x.conv2d(&w, None, (0, 1), (0, 0)), "[2, 3, 5, 5]");
}

#[test]
fn pooling_and_batch_norm_validation_errors_name_the_shapes() {
    let x = Tensor::zeros([2, 3, 4, 4], DType::F32);
    err_naming(
        x.reshape([6, 4, 4])
            .unwrap()
            .max_pool2d((2, 2), (2, 2), (0, 0)),
        "[6, 4, 4]",
    );
    err_naming(x.avg_pool2d((7, 2), (1, 1), (1, 0)), "[2, 3, 4, 4]");
    err_naming(x.max_pool2d((2, 2), (1, 1), (2, 0)), "[2, 3, 4, 4]");
    err_naming(x.avg_pool2d((0, 2), (1, 1), (0, 0)), "[2, 3, 4, 4]");
    err_naming(x.max_pool2d((2, 2), (0, 1), (0, 0)), "[2, 3, 4, 4]");

    let c3 = || Tensor::ones([3], DType::F32);
    let c2 = Tensor::ones([2], DType::F32);
    err_naming(
        x.batch_norm2d(&c2, &c3(), &c3(), &c3(), true, 0.1, 1e-5),
        "[2]",
    );
    err_naming(
        x.reshape([2, 3, 16])
            .unwrap()
            .batch_norm2d(&c3(), &c3(), &c3(), &c3(), true, 0.1, 1e-5),
        "[2, 3, 16]",
    );
    let single = Tensor::zeros([1, 3, 1, 1], DType::F32);
    err_naming(
        single.batch_norm2d(&c3(), &c3(), &c3(), &c3(), true, 0.1, 1e-5),
        "[1, 3, 1, 1]",
    );
    err_naming(
        x.batch_norm2d(&c3(), &c3(), &c3(), &c3(), true, 1.5, 1e-5),
        "[2, 3, 4, 4]",
    );
    err_naming(
        x.batch_norm2d(&c3(), &c3(), &c3(), &c3(), true, 0.1, 0.0),
        "[2, 3, 4, 4]",
    );
}
