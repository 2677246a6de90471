//! CIFAR binary loaders on full-size files written by the test.

mod common;

use arbor_models::data::{load_cifar, longtail_subset, CifarKind, Split};
use common::{expected_label, expected_pixel, poke, write_cifar10, write_cifar100, TempDir};

/// Checks labels and a few pixels of every 997th record against the writer's formulas.
fn check_contents(dataset: &arbor_models::data::Dataset, classes: usize) {
    assert_eq!(dataset.shape(), [3, 32, 32]);
    assert_eq!(dataset.num_classes(), classes);
    for index in (0..dataset.len()).step_by(997) {
        assert_eq!(
            dataset.labels()[index],
            expected_label(index, classes),
            "label {index}"
        );
        let image = dataset.image(index);
        for byte in [0, 1, 1023, 1024, 2048, 3071] {
            assert_eq!(
                image[byte],
                expected_pixel(index, byte),
                "image {index} byte {byte}"
            );
        }
    }
}

#[test]
fn cifar10_train_and_test_load_in_file_order() {
    let dir = TempDir::new("c10");
    write_cifar10(dir.path(), true);
    let train = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 50_000);
    check_contents(&train, 10);
    assert_eq!(train.class_counts(), vec![5000; 10]);
    let test = load_cifar(CifarKind::Cifar10, dir.path(), Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    check_contents(&test, 10);

    // The long-tailed subset of the loaded training set has the documented total.
    let subset = longtail_subset(train.labels(), 10, 100.0, 0).unwrap();
    assert_eq!(subset.indices.len(), 12_406);
    let lt = train.subset(&subset.indices).unwrap();
    assert_eq!(lt.class_counts(), subset.counts);
}

#[test]
fn cifar_dir_may_be_the_parent_or_the_folder_itself() {
    let dir = TempDir::new("c10dir");
    let folder = write_cifar10(dir.path(), false);
    let from_parent = load_cifar(CifarKind::Cifar10, dir.path(), Split::Test).unwrap();
    let from_folder = load_cifar(CifarKind::Cifar10, &folder, Split::Test).unwrap();
    assert_eq!(from_parent, from_folder);
}

#[test]
fn cifar100_takes_the_fine_label() {
    let dir = TempDir::new("c100");
    write_cifar100(dir.path(), true);
    let train = load_cifar(CifarKind::Cifar100, dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 50_000);
    check_contents(&train, 100);
    assert_eq!(train.class_counts(), vec![500; 100]);
    let test = load_cifar(CifarKind::Cifar100, dir.path(), Split::Test).unwrap();
    check_contents(&test, 100);
}

#[test]
fn truncated_file_is_reported_with_its_name() {
    let dir = TempDir::new("trunc");
    let folder = write_cifar10(dir.path(), true);
    let path = folder.join("test_batch.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let error = load_cifar(CifarKind::Cifar10, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(error.contains("test_batch.bin"), "{error}");
    assert!(error.contains("record 9999 is truncated"), "{error}");

    // A whole number of records, but fewer than in the split's first file.
    let path = folder.join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..3073 * 5000]).unwrap();
    let error = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(error.contains("data_batch_3.bin"), "{error}");
    assert!(error.contains("5000 records, expected 10000"), "{error}");
    std::fs::write(&path, b"").unwrap();
    let error = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("data_batch_3.bin: holds no record"),
        "{error}"
    );
}

#[test]
fn label_out_of_range_names_file_and_record() {
    let dir = TempDir::new("label");
    let folder = write_cifar10(dir.path(), true);
    poke(&folder.join("data_batch_2.bin"), 1234 * 3073, 10);
    let error = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(error.contains("data_batch_2.bin"), "{error}");
    assert!(error.contains("record 1234: label 10"), "{error}");

    let folder = write_cifar100(dir.path(), false);
    poke(&folder.join("test.bin"), 77 * 3074 + 1, 100);
    let error = load_cifar(CifarKind::Cifar100, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("test.bin") && error.contains("record 77: label 100"),
        "{error}"
    );

    poke(&folder.join("test.bin"), 77 * 3074 + 1, 5);
    poke(&folder.join("test.bin"), 78 * 3074, 20);
    let error = load_cifar(CifarKind::Cifar100, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(error.contains("record 78: coarse label 20"), "{error}");
}

#[test]
fn missing_file_names_its_path() {
    let dir = TempDir::new("missing");
    write_cifar10(dir.path(), false);
    let error = load_cifar(CifarKind::Cifar10, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(error.contains("data_batch_1.bin"), "{error}");
    let error = load_cifar(CifarKind::Cifar100, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(error.contains("test.bin"), "{error}");
}
