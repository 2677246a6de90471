//! Safetensors weights: export -> load gives identical logits for every architecture, the
//! bytes follow the format (checked by parsing the header by hand), bad files are errors
//! naming the tensor and leave the model as it was, and `--init-from`'s lenient policy.
use arbor_engine::{no_grad, DType, Tensor};
use arbor_models::config::{DatasetKind, RunConfig};
use arbor_models::resnet::{Arch, ResNet};
use arbor_models::weights::{
    self, decode, encode, load_into, model_tensors, HostTensor, LoadPolicy, WeightsMeta,
};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;

const ALL: [Arch; 5] = [
    Arch::ResNet8,
    Arch::ResNet20,
    Arch::ResNet32,
    Arch::ResNet50,
    Arch::ResNet50Places,
];

fn images(n: usize, seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    Tensor::from_vec(v, vec![n, 3, 32, 32]).unwrap()
}

fn eval_logits(m: &mut ResNet, x: &Tensor) -> Vec<f32> {
    m.set_training(false);
    let out = no_grad(|| m.forward(x)).unwrap().to_vec::<f32>().unwrap();
    m.set_training(true);
    out
}

fn meta(arch: Arch, classes: usize) -> HashMap<String, String> {
    let cfg = RunConfig {
        arch,
        dataset: DatasetKind::SyntheticLt,
        ..RunConfig::default()
    };
    WeightsMeta::for_run(&cfg, classes).to_map()
}

/// A model whose batch-norm statistics and counters are no longer their initial values.
fn trained_like(arch: Arch, classes: usize, seed: u64) -> ResNet {
    let m = ResNet::new(arch, classes, DType::F32, seed).unwrap();
    no_grad(|| m.forward(&images(4, seed + 100))).unwrap();
    m
}

#[test]
fn export_then_load_gives_identical_logits_for_every_arch() {
    for arch in ALL {
        let classes = 7;
        let mut a = trained_like(arch, classes, 1);
        let bytes = encode(&model_tensors(&a).unwrap(), &meta(arch, classes)).unwrap();
        let file = decode(&bytes).unwrap();
        assert_eq!(file.metadata["arch"], arch.to_string());
        let mut b = ResNet::new(arch, classes, DType::F32, 2).unwrap();
        let x = images(2, 3);
        assert_ne!(eval_logits(&mut a, &x), eval_logits(&mut b, &x), "{arch}");
        let report = load_into(&b, &file, Path::new("t"), LoadPolicy::Exact).unwrap();
        assert!(report.notes.is_empty(), "{arch}: {:?}", report.notes);
        assert_eq!(eval_logits(&mut a, &x), eval_logits(&mut b, &x), "{arch}");
        assert_eq!(model_tensors(&a).unwrap(), model_tensors(&b).unwrap());
    }
}

/// The layout written, read back without the safetensors crate: 8-byte little-endian
/// header length, a JSON header, then raw little-endian data at the given offsets.
#[test]
fn bytes_follow_the_safetensors_layout_with_i64_counters() {
    let m = trained_like(Arch::ResNet8, 3, 5);
    let tensors = model_tensors(&m).unwrap();
    let bytes = encode(&tensors, &meta(Arch::ResNet8, 3)).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let entry = |name: &str| {
        let e = &header[name];
        let off: Vec<usize> = serde_json::from_value(e["data_offsets"].clone()).unwrap();
        (
            e["dtype"].as_str().unwrap().to_string(),
            e["shape"].clone(),
            &data[off[0]..off[1]],
        )
    };
    let (dtype, shape, raw) = entry("layer1.0.bn1.num_batches_tracked");
    assert_eq!((dtype.as_str(), shape), ("I64", serde_json::json!([])));
    assert_eq!(i64::from_le_bytes(raw.try_into().unwrap()), 1);
    let fc = tensors.iter().find(|t| t.name == "fc.weight").unwrap();
    let (dtype, shape, raw) = entry("fc.weight");
    assert_eq!((dtype.as_str(), shape), ("F32", serde_json::json!([3, 64])));
    let read: Vec<f32> = raw
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(read, fc.values);
    assert_eq!(header["__metadata__"]["format"], "pt");
    assert_eq!(header["__metadata__"]["num_classes"], "3");
    // Every tensor of the model is in the header, and nothing else.
    assert_eq!(header.as_object().unwrap().len(), tensors.len() + 1);
}

#[test]
fn resnet50_names_are_torchvisions() {
    let m = ResNet::new(Arch::ResNet50, 1000, DType::F32, 0).unwrap();
    let names: Vec<String> = model_tensors(&m)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    // torchvision's resnet50().state_dict() has 320 entries: 53 batch norms x 5, 53 convs,
    // fc weight and bias.
    assert_eq!(names.len(), 53 * 5 + 53 + 2);
    for n in [
        "conv1.weight",
        "bn1.num_batches_tracked",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_var",
        "layer3.5.conv3.weight",
        "layer4.2.bn3.bias",
        "fc.weight",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing");
    }
    assert!(!names.iter().any(|x| x.starts_with("layer4.3")));
}

fn error_of(m: &ResNet, file_bytes: &[u8], policy: LoadPolicy) -> String {
    let file = decode(file_bytes).map_err(|e| e.to_string());
    match file {
        Err(e) => e,
        Ok(f) => load_into(m, &f, Path::new("bad.safetensors"), policy)
            .expect_err("must not load")
            .to_string(),
    }
}

fn with(tensors: &[HostTensor], edit: impl FnOnce(&mut Vec<HostTensor>)) -> Vec<u8> {
    let mut t = tensors.to_vec();
    edit(&mut t);
    encode(&t, &HashMap::new()).unwrap()
}

#[test]
fn bad_files_are_errors_naming_the_tensor_and_change_nothing() {
    let m = ResNet::new(Arch::ResNet8, 4, DType::F32, 9).unwrap();
    let before = model_tensors(&m).unwrap();
    let good = model_tensors(&ResNet::new(Arch::ResNet8, 4, DType::F32, 10).unwrap()).unwrap();
    let bytes = encode(&good, &HashMap::new()).unwrap();

    let truncated = error_of(&m, &bytes[..bytes.len() - 10], LoadPolicy::Exact);
    assert!(truncated.contains("truncated"), "{truncated}");
    assert!(error_of(&m, &bytes[..5], LoadPolicy::Exact).contains("not a readable"));

    let missing = error_of(
        &m,
        &with(&good, |t| t.retain(|t| t.name != "layer2.0.conv1.weight")),
        LoadPolicy::Exact,
    );
    assert!(
        missing.contains("layer2.0.conv1.weight: expected [32, 16, 3, 3], missing"),
        "{missing}"
    );

    let extra = error_of(
        &m,
        &with(&good, |t| {
            t.push(HostTensor {
                name: "layer9.0.conv1.weight".into(),
                dims: vec![2],
                values: vec![0.0; 2],
            })
        }),
        LoadPolicy::Init,
    );
    assert!(
        extra.contains("layer9.0.conv1.weight: found [2], not a tensor of resnet8"),
        "{extra}"
    );

    let shape = error_of(
        &m,
        &with(&good, |t| {
            let w = t
                .iter_mut()
                .find(|t| t.name == "layer1.0.bn2.weight")
                .unwrap();
            w.dims = vec![8, 2];
        }),
        LoadPolicy::Init,
    );
    assert!(
        shape.contains("layer1.0.bn2.weight: expected [16], found [8, 2]"),
        "{shape}"
    );
    assert!(
        shape.starts_with("bad.safetensors: does not fit resnet8 with 4 classes: 1 mismatch"),
        "{shape}"
    );

    // A float tensor stored as F64 (a dtype PyTorch can save): named, with the fix.
    let f64_bytes: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![2], &f64_bytes).unwrap();
    let wrong = safetensors::serialize([("fc.bias", view)], None).unwrap();
    let dtype = error_of(&m, &wrong, LoadPolicy::Exact);
    assert!(
        dtype.contains("tensor fc.bias is F64, expected F32"),
        "{dtype}"
    );

    assert_eq!(
        model_tensors(&m).unwrap(),
        before,
        "a failed load changed the model"
    );
}

#[test]
fn many_mismatches_are_listed_first_ten_with_the_total() {
    let m = ResNet::new(Arch::ResNet8, 4, DType::F32, 9).unwrap();
    let other = model_tensors(&ResNet::new(Arch::ResNet32, 4, DType::F32, 1).unwrap()).unwrap();
    let e = error_of(
        &m,
        &encode(&other, &HashMap::new()).unwrap(),
        LoadPolicy::Exact,
    );
    // ResNet-32 has 5 blocks a stage where ResNet-8 has 1: 4 x 3 x 12 extra tensors.
    assert!(e.contains(&format!("{} mismatches", 4 * 3 * 12)), "{e}");
    assert_eq!(
        e.matches(": found").count() + e.matches(": expected").count(),
        10,
        "{e}"
    );
}

#[test]
fn init_policy_reinitialises_a_differing_classifier_and_keeps_new_blocks() {
    let src = trained_like(Arch::ResNet50, 1000, 3);
    let mut file =
        decode(&encode(&model_tensors(&src).unwrap(), &HashMap::new()).unwrap()).unwrap();
    // torchvision's original ImageNet file predates num_batches_tracked.
    file.tensors
        .retain(|t| !t.name.ends_with("num_batches_tracked"));
    let dst = ResNet::new(Arch::ResNet50Places, 365, DType::F32, 4).unwrap();
    let fresh = model_tensors(&dst).unwrap();
    let exact = load_into(&dst, &file, Path::new("in1k"), LoadPolicy::Exact)
        .unwrap_err()
        .to_string();
    assert!(
        exact.contains("layer4.3.conv1.weight: expected [512, 2048, 1, 1], missing"),
        "{exact}"
    );
    let report = load_into(&dst, &file, Path::new("in1k"), LoadPolicy::Init).unwrap();
    assert_eq!(report.loaded, 320 - 53 - 2);
    let notes = report.notes.join("\n");
    assert!(notes.contains("classifier re-initialised"), "{notes}");
    assert!(notes.contains("layer4.3."), "{notes}");
    assert!(notes.contains("53 num_batches_tracked"), "{notes}");
    let after = model_tensors(&dst).unwrap();
    let srcs = model_tensors(&src).unwrap();
    for t in &after {
        let was = fresh.iter().find(|f| f.name == t.name).unwrap();
        if t.name.starts_with("fc.") || t.name.starts_with("layer4.3.") {
            assert_eq!(t, was, "{} should keep its initialisation", t.name);
        } else if t.name.ends_with("num_batches_tracked") {
            assert_eq!(t.values, vec![0.0]);
        } else {
            let s = srcs.iter().find(|s| s.name == t.name).unwrap();
            assert_eq!(t.values, s.values, "{} not loaded", t.name);
        }
    }
}

#[test]
fn save_writes_a_readable_file_atomically() {
    let dir = std::env::temp_dir().join(format!("arbor-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let m = ResNet::new(Arch::ResNet8, 4, DType::F32, 1).unwrap();
    let cfg = RunConfig {
        dataset: DatasetKind::SyntheticLt,
        arch: Arch::ResNet8,
        num_classes_synthetic: 4,
        ..RunConfig::default()
    };
    weights::save_model(&path, &m, &WeightsMeta::for_run(&cfg, 4)).unwrap();
    let file = weights::read(&path).unwrap();
    let names: Vec<String> = serde_json::from_str(&file.metadata["class_names"]).unwrap();
    assert_eq!(names.len(), 4);
    assert_eq!(file.metadata["mean"], "[0.4914,0.4822,0.4465]");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
