//! The batch loader: coverage, partial batches, determinism across thread counts, resume,
//! and error reporting.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_models::data::{
    generate_synthetic, Batch, CifarSamples, CifarTransform, DataError, DataRng, Loader,
    LoaderConfig, LoaderState, SampleSource, SyntheticConfig,
};
use rand::Rng;

/// Sample `i` is `[i, r]` with `r` its generator's first draw, so tests can see both which
/// sample came and which random stream it got. Sample `fail_at` (if any) fails.
struct Probe {
    len: usize,
    fail_at: Option<usize>,
    written: AtomicUsize,
}

impl SampleSource for Probe {
    fn len(&self) -> usize {
        self.len
    }
    fn sample_shape(&self) -> [usize; 3] {
        [1, 1, 2]
    }
    fn label(&self, index: usize) -> u32 {
        (index % 3) as u32
    }
    fn write_sample(
        &self,
        index: usize,
        rng: &mut DataRng,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        if Some(index) == self.fail_at {
            return Err(DataError::invalid(format!(
                "probe sample {index} is broken"
            )));
        }
        out[0] = index as f32;
        out[1] = rng.gen();
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn probe(len: usize) -> Arc<Probe> {
    Arc::new(Probe {
        len,
        fail_at: None,
        written: AtomicUsize::new(0),
    })
}

/// All batches of the loader's current epoch.
fn epoch<S: SampleSource>(loader: &mut Loader<S>) -> Vec<Batch> {
    loader.epoch().collect::<Result<_, _>>().unwrap()
}

#[test]
fn every_index_once_per_epoch_with_the_last_partial_batch_kept() {
    let mut loader = Loader::new(probe(10), LoaderConfig::train(4, 5)).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let mut orders = Vec::new();
    for e in 0..3 {
        assert_eq!(
            loader.state(),
            LoaderState {
                epoch: e,
                position: 0
            }
        );
        let batches = epoch(&mut loader);
        let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        let distinct: HashSet<usize> = order.iter().copied().collect();
        assert_eq!(
            distinct,
            (0..10).collect(),
            "epoch {e} must cover each index once"
        );
        for batch in &batches {
            assert_eq!(batch.shape, [batch.len(), 1, 1, 2]);
            for (k, &i) in batch.indices.iter().enumerate() {
                assert_eq!(batch.images[2 * k], i as f32);
                assert_eq!(batch.labels[k], (i % 3) as u32);
            }
        }
        orders.push(order);
    }
    assert_ne!(orders[0], orders[1], "each epoch is shuffled anew");
    assert_ne!(orders[1], orders[2]);
}

#[test]
fn eval_loader_keeps_dataset_order() {
    let mut loader = Loader::new(probe(7), LoaderConfig::eval(3)).unwrap();
    for _ in 0..2 {
        let order: Vec<usize> = epoch(&mut loader)
            .iter()
            .flat_map(|b| b.indices.clone())
            .collect();
        assert_eq!(order, (0..7).collect::<Vec<_>>());
    }
}

#[test]
fn augmentation_streams_differ_between_samples_and_epochs() {
    let mut loader = Loader::new(probe(50), LoaderConfig::train(50, 1)).unwrap();
    let draws = |batch: &Batch| -> Vec<(usize, u32)> {
        let mut v: Vec<_> = batch
            .indices
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, batch.images[2 * k + 1].to_bits()))
            .collect();
        v.sort_unstable();
        v
    };
    let first = draws(&epoch(&mut loader)[0]);
    let second = draws(&epoch(&mut loader)[0]);
    let distinct: HashSet<u32> = first.iter().map(|&(_, r)| r).collect();
    assert_eq!(distinct.len(), 50, "every sample gets its own stream");
    assert!(
        first.iter().zip(&second).all(|(a, b)| a.1 != b.1),
        "epochs re-draw"
    );
}

/// A small real augmented dataset (synthetic-lt through the CIFAR train transform).
fn synthetic_train() -> Arc<CifarSamples> {
    let config = SyntheticConfig {
        n_max: 60,
        imbalance: 10.0,
        ..SyntheticConfig::default()
    };
    let data = generate_synthetic(&config).unwrap();
    Arc::new(CifarSamples::new(Arc::new(data.train), CifarTransform::Train).unwrap())
}

#[test]
fn batches_do_not_depend_on_thread_count() {
    let source = synthetic_train();
    let run = |threads| {
        let config = LoaderConfig {
            threads: Some(threads),
            ..LoaderConfig::train(32, 11)
        };
        let mut loader = Loader::new(Arc::clone(&source), config).unwrap();
        let mut batches = epoch(&mut loader);
        batches.extend(epoch(&mut loader));
        batches
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    // The global-pool variant agrees too.
    let mut global = Loader::new(source, LoaderConfig::train(32, 11)).unwrap();
    assert_eq!(one[..one.len() / 2], epoch(&mut global)[..]);
}

#[test]
fn resuming_from_a_saved_state_gives_the_same_batches() {
    let source = synthetic_train();
    let config = LoaderConfig::train(16, 3);
    let mut reference = Loader::new(Arc::clone(&source), config.clone()).unwrap();
    let mut all = Vec::new(); // (state before the batch, batch)
    for _ in 0..2 {
        loop {
            let state = reference.state();
            let Some(batch) = reference.next_batch().unwrap() else {
                break;
            };
            all.push((state, batch));
        }
    }
    // Resume mid-epoch 0, at the start of epoch 1, and mid-epoch 1.
    for k in [3, all.len() / 2, all.len() / 2 + 2] {
        let (state, _) = all[k];
        let mut resumed = Loader::resume(Arc::clone(&source), config.clone(), state).unwrap();
        let mut rest = Vec::new();
        while rest.len() < all.len() - k {
            match resumed.next_batch().unwrap() {
                Some(batch) => rest.push(batch),
                None => assert_eq!(resumed.state().position, 0, "epoch end only at the end"),
            }
        }
        let expected: Vec<Batch> = all[k..].iter().map(|(_, b)| b.clone()).collect();
        assert_eq!(rest, expected, "resumed at {state:?}");
    }
}

#[test]
fn a_finished_epoch_state_resumes_into_the_next_epoch() {
    let source = probe(6);
    let config = LoaderConfig::train(4, 2);
    let mut loader = Loader::new(Arc::clone(&source), config.clone()).unwrap();
    let _ = epoch(&mut loader);
    let next = epoch(&mut loader);
    let finished = LoaderState {
        epoch: 0,
        position: 6,
    };
    let mut resumed = Loader::resume(source, config, finished).unwrap();
    assert!(resumed.next_batch().unwrap().is_none());
    assert_eq!(
        resumed.state(),
        LoaderState {
            epoch: 1,
            position: 0
        }
    );
    assert_eq!(epoch(&mut resumed), next);
}

#[test]
fn sample_errors_reach_the_consumer_and_retrying_repeats_them() {
    let source = Arc::new(Probe {
        len: 10,
        fail_at: Some(7),
        written: AtomicUsize::new(0),
    });
    let mut loader = Loader::new(source, LoaderConfig::eval(4)).unwrap();
    assert_eq!(loader.next_batch().unwrap().unwrap().indices, [0, 1, 2, 3]);
    for _ in 0..2 {
        let error = loader.next_batch().unwrap_err().to_string();
        assert!(error.contains("probe sample 7"), "{error}");
        assert_eq!(
            loader.state(),
            LoaderState {
                epoch: 0,
                position: 4
            }
        );
    }
    // The epoch iterator stops at the error instead of spinning on it.
    let items: Vec<_> = loader.epoch().collect();
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

#[test]
fn bad_configurations_are_errors() {
    assert!(Loader::new(probe(0), LoaderConfig::eval(4)).is_err());
    assert!(Loader::new(probe(5), LoaderConfig::eval(0)).is_err());
    let no_prefetch = LoaderConfig {
        prefetch: 0,
        ..LoaderConfig::eval(2)
    };
    assert!(Loader::new(probe(5), no_prefetch).is_err());
    let past_end = LoaderState {
        epoch: 0,
        position: 6,
    };
    assert!(Loader::resume(probe(5), LoaderConfig::eval(2), past_end).is_err());
}

#[test]
fn dropping_a_loader_mid_epoch_stops_its_prefetch_thread() {
    // With a full channel the producer is blocked in `send`; drop must still return.
    let config = LoaderConfig {
        prefetch: 1,
        ..LoaderConfig::train(1, 0)
    };
    let mut loader = Loader::new(probe(1000), config).unwrap();
    loader.next_batch().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(loader);
}

#[test]
fn batches_are_built_ahead_of_the_consumer() {
    let source = probe(100);
    let config = LoaderConfig {
        prefetch: 3,
        ..LoaderConfig::eval(1)
    };
    let mut loader = Loader::new(Arc::clone(&source), config).unwrap();
    // Nothing was asked for yet, but the producer fills the channel (3) and builds one
    // more that waits to be sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.written.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        source.written.load(Ordering::SeqCst),
        4,
        "bounded look-ahead"
    );
    loader.next_batch().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.written.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        source.written.load(Ordering::SeqCst),
        5,
        "refills after a take"
    );
}
