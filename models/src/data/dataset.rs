//! An in-memory image classification dataset of u8 images.

use super::DataError;

/// Images stored contiguously as u8 in CHW order, one label per image.
///
/// The constructor checks that the buffer and labels agree, so every accessor can index
/// without further checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u32>,
    num_classes: usize,
    shape: [usize; 3],
}

impl Dataset {
    /// Wraps `images` (`labels.len()` images of `shape` = `[channels, height, width]`).
    ///
    /// Fails if the buffer length does not match, a dimension is zero, or a label is not
    /// below `num_classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        num_classes: usize,
        shape: [usize; 3],
    ) -> Result<Self, DataError> {
        let image_len: usize = shape.iter().product();
        if image_len == 0 || num_classes == 0 {
            return Err(DataError::invalid(format!(
                "dataset shape {shape:?} and num_classes {num_classes} must be non-zero"
            )));
        }
        if images.len() != labels.len() * image_len {
            return Err(DataError::invalid(format!(
                "dataset has {} labels of shape {shape:?} but {} image bytes (expected {})",
                labels.len(),
                images.len(),
                labels.len() * image_len
            )));
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= num_classes)
        {
            return Err(DataError::invalid(format!(
                "dataset label {label} of image {i} is not below num_classes {num_classes}"
            )));
        }
        Ok(Dataset {
            images,
            labels,
            num_classes,
            shape,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[channels, height, width]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of classes; labels lie in `0..num_classes`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// All labels, in image order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// All image bytes, `[N, C, H, W]`.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// The CHW bytes of image `index`. Panics if `index >= len()` like slice indexing.
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[index * len..(index + 1) * len]
    }

    /// Number of bytes per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// A new dataset made of the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(format!(
                "subset index {bad} is out of range for a dataset of {} images",
                self.len()
            )));
        }
        let images = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().copied())
            .collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset::new(images, labels, self.num_classes, self.shape)
    }
}
