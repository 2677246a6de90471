//! The batch loader: per-epoch shuffling, parallel batch assembly, background prefetch,
//! and an exactly resumable position.
//!
//! Determinism: epoch `e`'s order is a shuffle seeded with `seed + e`, and sample `i` of
//! epoch `e` is augmented with its own generator seeded from `(seed, e, i)`. A batch is
//! therefore a pure function of `(seed, epoch, position)`, whatever the thread count,
//! and a loader restarted from a saved [`LoaderState`] yields the very same batches.
//!
//! Overlap: a background thread builds batches ahead of the consumer (`prefetch` of them,
//! through a bounded channel) and runs on across epoch boundaries, so the first batch of
//! the next epoch is ready when the current one ends.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::seed::{derived_rng, DataRng};
use super::DataError;

/// A dataset the loader can batch: it knows its size and writes one (possibly augmented)
/// sample as f32 CHW into a slice.
pub trait SampleSource: Send + Sync + 'static {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[channels, height, width]` of every sample as written by `write_sample`.
    fn sample_shape(&self) -> [usize; 3];

    /// Class of sample `index`.
    fn label(&self, index: usize) -> u32;

    /// Writes sample `index` into `out` (exactly `sample_shape` values), drawing any
    /// randomness from `rng` only.
    fn write_sample(
        &self,
        index: usize,
        rng: &mut DataRng,
        out: &mut [f32],
    ) -> Result<(), DataError>;
}

/// One batch: images `[B, C, H, W]` and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `shape = [B, C, H, W]`, row-major.
    pub images: Vec<f32>,
    /// One class per image.
    pub labels: Vec<u32>,
    /// Which dataset samples these are, for logging and tests.
    pub indices: Vec<usize>,
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for a batch with no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, `C * H * W`.
    pub fn sample_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
}

/// How the loader batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch; the last batch of an epoch may be smaller (it is kept).
    pub batch_size: usize,
    /// Shuffle each epoch (training) or keep dataset order (evaluation).
    pub shuffle: bool,
    /// Base seed of the shuffles and the augmentation.
    pub seed: u64,
    /// Batches built ahead of the consumer, at least 1.
    pub prefetch: usize,
    /// `Some(n)`: assemble batches on a dedicated pool of `n` threads; `None`: on rayon's
    /// global pool.
    pub threads: Option<usize>,
}

impl LoaderConfig {
    /// Shuffled batches of `batch_size` seeded by `seed`, two batches prefetched.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            seed,
            prefetch: 2,
            threads: None,
        }
    }

    /// Batches in dataset order, two prefetched.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            shuffle: false,
            ..Self::train(batch_size, 0)
        }
    }
}

/// Where a loader stands: the next batch starts at `position` of epoch `epoch`'s order.
///
/// `position == len` means the epoch's batches are all delivered; the next call to
/// [`Loader::next_batch`] then reports the epoch's end and moves to `(epoch + 1, 0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// 0-based epoch.
    pub epoch: u64,
    /// Samples of this epoch already delivered.
    pub position: usize,
}

/// Yields batches of a [`SampleSource`], epoch after epoch (see the module docs).
pub struct Loader<S: SampleSource> {
    source: Arc<S>,
    config: LoaderConfig,
    pool: Option<Arc<rayon::ThreadPool>>,
    state: LoaderState,
    producer: Option<Producer>,
}

/// The background thread and the receiving end of its bounded channel.
struct Producer {
    receiver: Receiver<Result<Produced, DataError>>,
    handle: JoinHandle<()>,
}

struct Produced {
    start: LoaderState,
    batch: Batch,
}

impl<S: SampleSource> Loader<S> {
    /// A loader at the start of epoch 0.
    pub fn new(source: Arc<S>, config: LoaderConfig) -> Result<Self, DataError> {
        Self::resume(source, config, LoaderState::default())
    }

    /// A loader continuing from `state` (as returned by [`Loader::state`]).
    pub fn resume(
        source: Arc<S>,
        config: LoaderConfig,
        state: LoaderState,
    ) -> Result<Self, DataError> {
        if source.is_empty() || config.batch_size == 0 || config.prefetch == 0 {
            return Err(DataError::invalid(format!(
                "loader needs a non-empty dataset, batch_size > 0 and prefetch > 0 \
                 (got {} samples, batch_size {}, prefetch {})",
                source.len(),
                config.batch_size,
                config.prefetch
            )));
        }
        if state.position > source.len() {
            return Err(DataError::invalid(format!(
                "loader state position {} is past the {} samples of an epoch",
                state.position,
                source.len()
            )));
        }
        let pool = match config.threads {
            None => None,
            Some(threads) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("arbor-data-{i}"))
                    .build()
                    .map_err(|e| DataError::invalid(format!("data thread pool: {e}")))?,
            )),
        };
        let mut loader = Loader {
            source,
            config,
            pool,
            state,
            producer: None,
        };
        loader.producer = Some(loader.spawn_producer()?);
        Ok(loader)
    }

    /// Where the loader stands; save it to resume exactly with [`Loader::resume`].
    pub fn state(&self) -> LoaderState {
        self.state
    }

    /// The dataset being batched.
    pub fn source(&self) -> &Arc<S> {
        &self.source
    }

    /// Batches per epoch, the last one possibly partial.
    pub fn batches_per_epoch(&self) -> usize {
        self.source.len().div_ceil(self.config.batch_size)
    }

    /// The next batch of the current epoch, or `None` once the epoch is exhausted (the
    /// loader then stands at the start of the next epoch).
    ///
    /// After an error the state is unchanged; calling again retries the same batch.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, DataError> {
        if self.state.position >= self.source.len() {
            self.state = LoaderState {
                epoch: self.state.epoch + 1,
                position: 0,
            };
            return Ok(None);
        }
        let producer = match self.producer.take() {
            Some(producer) => producer,
            None => self.spawn_producer()?,
        };
        let received = producer.receiver.recv();
        self.producer = Some(producer);
        match received {
            Ok(Ok(produced)) => {
                debug_assert_eq!(produced.start, self.state, "producer out of step");
                self.state.position += produced.batch.len();
                Ok(Some(produced.batch))
            }
            Ok(Err(error)) => {
                // The producer stopped after sending its error; a retry starts a new one.
                self.stop_producer();
                Err(error)
            }
            Err(_) => {
                self.stop_producer();
                Err(DataError::invalid(
                    "data loader thread stopped without a batch (a sample source panicked)",
                ))
            }
        }
    }

    /// An iterator over the rest of the current epoch's batches; it ends after the
    /// epoch's last batch or after the first error.
    pub fn epoch(&mut self) -> EpochBatches<'_, S> {
        EpochBatches {
            loader: self,
            done: false,
        }
    }

    fn spawn_producer(&self) -> Result<Producer, DataError> {
        let (sender, receiver) = sync_channel(self.config.prefetch);
        let source = Arc::clone(&self.source);
        let config = self.config.clone();
        let pool = self.pool.clone();
        let start = self.state;
        let handle = std::thread::Builder::new()
            .name("arbor-data-prefetch".into())
            .spawn(move || produce(&*source, &config, pool.as_deref(), start, &sender))
            .map_err(|e| DataError::invalid(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Producer { receiver, handle })
    }

    fn stop_producer(&mut self) {
        if let Some(Producer { receiver, handle }) = self.producer.take() {
            // Dropping the receiver makes the producer's next (or pending) send fail,
            // which ends its loop; it finishes at most the batch it is building.
            drop(receiver);
            let _ = handle.join();
        }
    }
}

impl<S: SampleSource> Drop for Loader<S> {
    fn drop(&mut self) {
        self.stop_producer();
    }
}

/// See [`Loader::epoch`].
pub struct EpochBatches<'a, S: SampleSource> {
    loader: &'a mut Loader<S>,
    done: bool,
}

impl<S: SampleSource> Iterator for EpochBatches<'_, S> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.loader.next_batch().transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

/// The sample order of `epoch`: a shuffle seeded with `seed + epoch`, or dataset order.
pub fn epoch_order(len: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        order.shuffle(&mut DataRng::seed_from_u64(seed.wrapping_add(epoch)));
    }
    order
}

/// The producer thread's body: batches from `start` on, epoch after epoch, until the
/// receiver hangs up or a batch fails.
fn produce<S: SampleSource>(
    source: &S,
    config: &LoaderConfig,
    pool: Option<&rayon::ThreadPool>,
    start: LoaderState,
    sender: &SyncSender<Result<Produced, DataError>>,
) {
    let mut state = start;
    loop {
        let order = epoch_order(source.len(), config.shuffle, config.seed, state.epoch);
        while state.position < order.len() {
            let end = (state.position + config.batch_size).min(order.len());
            let indices = &order[state.position..end];
            let build = || build_batch(source, indices, config.seed, state.epoch);
            let result = match pool {
                Some(pool) => pool.install(build),
                None => build(),
            };
            let failed = result.is_err();
            let message = result.map(|batch| Produced {
                start: state,
                batch,
            });
            if sender.send(message).is_err() || failed {
                return;
            }
            state.position = end;
        }
        state = LoaderState {
            epoch: state.epoch + 1,
            position: 0,
        };
    }
}

/// Assembles the samples `indices` of `epoch` into one batch, in parallel over samples.
///
/// Each sample draws from its own generator seeded with `(seed, epoch, index)`; on
/// failure the error of the first failing sample in batch order is returned, so errors
/// are as deterministic as batches.
pub fn build_batch<S: SampleSource + ?Sized>(
    source: &S,
    indices: &[usize],
    seed: u64,
    epoch: u64,
) -> Result<Batch, DataError> {
    let [channels, height, width] = source.sample_shape();
    let sample_len = channels * height * width;
    let mut images = vec![0.0f32; indices.len() * sample_len];
    let outcomes: Vec<Result<(), DataError>> = images
        .par_chunks_mut(sample_len)
        .zip(indices.par_iter())
        .map(|(out, &index)| {
            if index >= source.len() {
                return Err(DataError::invalid(format!(
                    "sample index {index} is out of range for {} samples",
                    source.len()
                )));
            }
            let mut rng = derived_rng(&[seed, epoch, index as u64]);
            source.write_sample(index, &mut rng, out)
        })
        .collect();
    outcomes.into_iter().collect::<Result<(), _>>()?;
    Ok(Batch {
        images,
        labels: indices.iter().map(|&i| source.label(i)).collect(),
        indices: indices.to_vec(),
        shape: [indices.len(), channels, height, width],
    })
}
