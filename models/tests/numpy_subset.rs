//! The long-tailed subset is numpy's, bit for bit: the literals below were printed by
//! numpy 2.4.6 (legacy `RandomState`, MT19937) with this script:
//!
//! ```python
//! import numpy as np
//! def labels(n_classes, per_class, seed):   # xorshift32 Fisher-Yates, see `labels` below
//!     out = [i % n_classes for i in range(n_classes * per_class)]
//!     x = seed
//!     for i in range(len(out) - 1, 0, -1):
//!         x ^= (x << 13) & 0xFFFFFFFF; x ^= x >> 17; x ^= (x << 5) & 0xFFFFFFFF
//!         j = x % (i + 1)
//!         out[i], out[j] = out[j], out[i]
//!     return out
//! def subset(targets, n_classes, imb, seed):  # the reference's gen_imbalanced_data
//!     np.random.seed(seed)
//!     t = np.array(targets, dtype=np.int64)
//!     img_max = len(t) / n_classes
//!     counts = [int(img_max * ((1.0 / imb) ** (i / (n_classes - 1.0))))
//!               for i in range(n_classes)]
//!     sel = []
//!     for c, k in zip(np.unique(t), counts):
//!         idx = np.where(t == c)[0]
//!         np.random.shuffle(idx)
//!         sel.extend(idx[:k].tolist())
//!     return counts, sel
//! rs = np.random.RandomState(0)
//! print(rs._bit_generator.random_raw(5).tolist(), rs._bit_generator.random_raw(1000)[-1])
//! np.random.seed(0)
//! for n in [1, 2, 7, 50]:
//!     a = np.arange(n); np.random.shuffle(a); print(n, a.tolist())
//! a = np.arange(1000); np.random.shuffle(a)
//! print(sum(i * int(v) for i, v in enumerate(a)), a[:8].tolist())
//! l10 = labels(10, 50, 2463534242)
//! print(l10[:12], *subset(l10, 10, 10, 0)); print(subset(l10, 10, 10, 1)[1][:12])
//! l100 = labels(100, 20, 88172645); c, s = subset(l100, 100, 10, 0)
//! print(l100[:12], c, sum(i * v for i, v in enumerate(s)), s[:25], s[-6:])
//! ```

use arbor_models::data::mt19937::Mt19937;
use arbor_models::data::{longtail_counts, longtail_subset};

/// The same label sequence as the script's `labels`.
fn labels(classes: usize, per_class: usize, seed: u32) -> Vec<u32> {
    let mut out: Vec<u32> = (0..classes * per_class)
        .map(|i| (i % classes) as u32)
        .collect();
    let mut x = seed;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.swap(i, x as usize % (i + 1));
    }
    out
}

#[test]
fn seed_0_raw_outputs_are_numpys() {
    let mut mt = Mt19937::new(0);
    let first: Vec<u32> = (0..5).map(|_| mt.next_u32()).collect();
    assert_eq!(
        first,
        [2357136044, 2546248239, 3071714933, 3626093760, 2588848963]
    );
    // Output 1005 lies in the second block: the twist is exercised.
    let last = (0..1000).map(|_| mt.next_u32()).last().unwrap();
    assert_eq!(last, 2254730904);
}

#[test]
fn successive_shuffles_are_numpys() {
    let mut mt = Mt19937::new(0);
    let mut shuffled = |n: usize| {
        let mut a: Vec<usize> = (0..n).collect();
        mt.shuffle(&mut a);
        a
    };
    assert_eq!(shuffled(1), [0]);
    assert_eq!(shuffled(2), [1, 0]);
    assert_eq!(shuffled(7), [6, 2, 1, 4, 3, 0, 5]);
    assert_eq!(
        shuffled(50),
        [
            26, 35, 43, 28, 11, 2, 34, 46, 40, 22, 4, 10, 30, 41, 33, 42, 48, 7, 14, 32, 49, 29,
            37, 3, 18, 0, 27, 15, 5, 31, 16, 19, 20, 9, 8, 13, 25, 17, 44, 47, 39, 38, 1, 12, 45,
            24, 6, 23, 36, 21
        ]
    );
    let a = shuffled(1000);
    assert_eq!(a[..8], [743, 656, 704, 738, 496, 27, 31, 553]);
    let weighted: usize = a.iter().enumerate().map(|(i, &v)| i * v).sum();
    assert_eq!(weighted, 246787934);
}

#[test]
fn cifar10_shaped_subset_is_the_references() {
    let l10 = labels(10, 50, 2463534242);
    assert_eq!(l10[..12], [8, 2, 6, 6, 9, 1, 0, 4, 3, 0, 0, 3]);
    let subset = longtail_subset(&l10, 10, 10.0, 0).unwrap();
    assert_eq!(subset.counts, [50, 38, 29, 23, 17, 13, 10, 8, 6, 5]);
    #[rustfmt::skip]
    let expected = [
        320, 122, 87, 418, 10, 318, 389, 334, 260, 20, 343, 369, 307, 356, 218, 50, 190, 456,
        485, 323, 198, 324, 337, 202, 428, 237, 430, 62, 160, 295, 40, 211, 398, 493, 9, 127,
        386, 290, 43, 262, 372, 240, 219, 81, 395, 458, 16, 6, 476, 455, 21, 316, 231, 162,
        134, 304, 114, 457, 360, 406, 470, 97, 375, 187, 447, 354, 107, 226, 313, 451, 293,
        446, 253, 82, 439, 472, 207, 116, 276, 129, 222, 63, 138, 489, 294, 182, 119, 388,
        105, 272, 283, 438, 131, 80, 413, 243, 203, 280, 397, 432, 277, 166, 103, 371, 169,
        338, 289, 106, 117, 355, 56, 22, 405, 329, 310, 178, 220, 351, 115, 488, 215, 154,
        366, 195, 102, 273, 159, 61, 30, 51, 79, 132, 270, 350, 8, 391, 11, 477, 495, 471, 42,
        373, 487, 7, 481, 49, 267, 261, 100, 412, 259, 469, 431, 152, 264, 139, 67, 133, 453,
        153, 69, 465, 252, 258, 403, 181, 490, 288, 462, 221, 15, 3, 165, 99, 424, 75, 479,
        311, 286, 38, 191, 478, 158, 359, 83, 417, 196, 136, 475, 249, 378, 52, 419, 232, 172,
        14, 150, 450, 142,
    ];
    assert_eq!(subset.indices, expected);
    // Another subset seed, another (numpy's) subset.
    let seed_1 = longtail_subset(&l10, 10, 10.0, 1).unwrap();
    assert_eq!(
        seed_1.indices[..12],
        [318, 369, 398, 389, 10, 16, 485, 323, 458, 334, 337, 395]
    );
}

#[test]
fn cifar100_shaped_subset_is_the_references() {
    let l100 = labels(100, 20, 88172645);
    assert_eq!(l100[..12], [14, 72, 75, 96, 7, 91, 37, 1, 11, 40, 40, 1]);
    let subset = longtail_subset(&l100, 100, 10.0, 0).unwrap();
    assert_eq!(subset.counts, longtail_counts(20, 100, 10.0).unwrap());
    assert_eq!(subset.counts[..6], [20, 19, 19, 18, 18, 17]);
    assert_eq!(subset.counts[99], 2);
    assert_eq!(
        subset.indices[..25],
        [
            1966, 494, 1985, 1175, 1460, 1893, 893, 1608, 711, 554, 791, 1634, 1225, 1126, 1876,
            1474, 563, 126, 1748, 1525, 1122, 11, 1774, 1648, 118
        ]
    );
    let n = subset.indices.len();
    assert_eq!(subset.indices[n - 6..], [1855, 1930, 1755, 1000, 1594, 936]);
    let weighted: usize = subset.indices.iter().enumerate().map(|(i, &v)| i * v).sum();
    assert_eq!(weighted, 273920124);
}
