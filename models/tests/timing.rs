//! Rough speed checks of the data path, ignored by default (they time, so they are only
//! meaningful on an otherwise idle machine and an optimised build):
//! `cargo test -p arbor-models --release --test timing -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_models::data::loader::build_batch;
use arbor_models::data::{
    generate_synthetic, CifarSamples, CifarTransform, Dataset, Loader, LoaderConfig,
    SyntheticConfig,
};

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

#[test]
#[ignore = "timing; run explicitly on an idle machine"]
fn synthetic_generation_time() {
    for (n_max, imbalance) in [(500, 100.0), (1000, 10.0)] {
        let config = SyntheticConfig {
            n_max,
            imbalance,
            ..SyntheticConfig::default()
        };
        let images = {
            let data = generate_synthetic(&config).unwrap();
            data.train.len() + data.test.len()
        };
        let time = median(5, || {
            generate_synthetic(&config).unwrap();
        });
        println!("synthetic-lt n_max {n_max} IF {imbalance}: {images} images in {time:?}");
        assert!(time < Duration::from_secs(5));
    }
}

#[test]
#[ignore = "timing; run explicitly on an idle machine"]
fn augmented_batch_assembly_time() {
    let data = generate_synthetic(&SyntheticConfig {
        imbalance: 1.0,
        ..SyntheticConfig::default()
    })
    .unwrap()
    .train;
    let dataset: Arc<Dataset> = Arc::new(data);
    let source = CifarSamples::new(Arc::clone(&dataset), CifarTransform::Train).unwrap();
    let indices: Vec<usize> = (0..128).map(|i| i * 37 % dataset.len()).collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut epoch = 0;
        let time = median(101, || {
            epoch += 1;
            pool.install(|| build_batch(&source, &indices, 0, epoch).unwrap());
        });
        println!("one 128-image augmented batch, {threads} thread(s): {time:?}");
        assert!(time < Duration::from_millis(100));
    }

    // Through the loader: a whole epoch of prefetched batches, consumed as fast as possible.
    let source = Arc::new(source);
    let mut loader = Loader::new(source, LoaderConfig::train(128, 0)).unwrap();
    let start = Instant::now();
    let batches = loader.epoch().count();
    println!("loader: {batches} batches of 128 in {:?}", start.elapsed());
}
