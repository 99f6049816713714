//! Data sets: IDX image and label files paired and validated, found in a directory by
//! their standard MNIST names, and streamed as mini-batches of `f32` pixels.
//!
//! ```text
//! images  IDX u8, rank 3: count × rows × cols    → x: (B, d) f32 in [0, 1], d = rows·cols
//! labels  IDX u8, rank 1: count, each < C        → y: (B,)   u32
//! ```
//!
//! A directory holds one or both splits ([`Split::Train`] `train-*`, [`Split::Test`]
//! `t10k-*`), each file raw or `.gz`, under either spelling mirrors use
//! (`train-images-idx3-ubyte` or `train-images.idx3-ubyte`). Any count and any image
//! size are accepted.
//!
//! [`BatchStream`] visits a data set in a seeded random order per epoch and
//! [`SequentialBatches`] in file order (for evaluation). Both write into caller-owned
//! buffers and allocate nothing per batch.

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub use crate::idx::DataError;
use crate::idx::{ElemType, IdxFile, IdxFormatError, IdxView};

/// One half of a standard MNIST-format directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
    Test,
}

impl Split {
    /// Both splits, training first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// The file-name prefix: `"train"` or `"t10k"`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }

    /// The file names tried for this split's images or labels, in order of preference:
    /// raw before `.gz` (a map is free, decompression is not), the official
    /// `-idx3-ubyte` spelling before the `.idx3-ubyte` some mirrors use.
    pub const fn file_names(self, kind: FileKind) -> &'static [&'static str] {
        match (self, kind) {
            (Self::Train, FileKind::Images) => &[
                "train-images-idx3-ubyte",
                "train-images.idx3-ubyte",
                "train-images-idx3-ubyte.gz",
                "train-images.idx3-ubyte.gz",
            ],
            (Self::Train, FileKind::Labels) => &[
                "train-labels-idx1-ubyte",
                "train-labels.idx1-ubyte",
                "train-labels-idx1-ubyte.gz",
                "train-labels.idx1-ubyte.gz",
            ],
            (Self::Test, FileKind::Images) => &[
                "t10k-images-idx3-ubyte",
                "t10k-images.idx3-ubyte",
                "t10k-images-idx3-ubyte.gz",
                "t10k-images.idx3-ubyte.gz",
            ],
            (Self::Test, FileKind::Labels) => &[
                "t10k-labels-idx1-ubyte",
                "t10k-labels.idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-labels.idx1-ubyte.gz",
            ],
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix())
    }
}

/// The two files of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Images: IDX u8, rank 3.
    Images,
    /// Labels: IDX u8, rank 1.
    Labels,
}

/// The paths of one split's images and labels files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitFiles {
    /// The images file.
    pub images: PathBuf,
    /// The labels file.
    pub labels: PathBuf,
}

impl SplitFiles {
    /// Looks for `split`'s files in `dir` by their standard names ([`Split::file_names`]).
    ///
    /// `Ok(None)` if neither file is there (the directory holds only the other split),
    /// [`DataError::MissingFile`] if only one is, [`DataError::Io`] if `dir` cannot be
    /// read or is not a directory.
    pub fn find(dir: impl AsRef<Path>, split: Split) -> Result<Option<Self>, DataError> {
        let dir = dir.as_ref();
        let meta =
            fs::metadata(dir).map_err(|source| DataError::Io { path: dir.into(), source })?;
        if !meta.is_dir() {
            let source = io::Error::new(io::ErrorKind::NotADirectory, "not a directory");
            return Err(DataError::Io { path: dir.into(), source });
        }
        let find = |kind| {
            split.file_names(kind).iter().map(|name| dir.join(name)).find(|path| path.is_file())
        };
        let missing =
            |kind| DataError::MissingFile { dir: dir.into(), tried: split.file_names(kind) };
        match (find(FileKind::Images), find(FileKind::Labels)) {
            (None, None) => Ok(None),
            (Some(images), Some(labels)) => Ok(Some(Self { images, labels })),
            (Some(_), None) => Err(missing(FileKind::Labels)),
            (None, Some(_)) => Err(missing(FileKind::Images)),
        }
    }
}

/// Images and labels, paired and validated: equal counts, every label `< classes`.
///
/// The bytes stay where [`IdxFile`] keeps them (a memory map or a decompressed
/// buffer); accessors borrow them.
#[derive(Debug)]
pub struct Dataset {
    images: IdxFile, // u8 (count, rows, cols)
    labels: IdxFile, // u8 (count)
    count: usize,
    rows: usize,
    cols: usize,
    pixels: usize, // d = rows · cols
    classes: usize,
}

impl Dataset {
    /// The number of classes assumed unless told otherwise (MNIST, Fashion-MNIST).
    pub const DEFAULT_CLASSES: usize = 10;

    /// Loads `split` from `dir` with [`Dataset::DEFAULT_CLASSES`] classes.
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<Self, DataError> {
        Self::load_with_classes(dir, split, Self::DEFAULT_CLASSES)
    }

    /// Loads `split` from `dir`; every label must be `< classes`.
    ///
    /// A directory without any file of `split` is [`DataError::MissingFile`] naming the
    /// images files tried.
    pub fn load_with_classes(
        dir: impl AsRef<Path>,
        split: Split,
        classes: usize,
    ) -> Result<Self, DataError> {
        let dir = dir.as_ref();
        let files = SplitFiles::find(dir, split)?.ok_or(DataError::MissingFile {
            dir: dir.into(),
            tried: split.file_names(FileKind::Images),
        })?;
        Self::from_paths(&files, classes)
    }

    /// Opens and pairs the two files of `files`.
    pub fn from_paths(files: &SplitFiles, classes: usize) -> Result<Self, DataError> {
        check_classes(classes)?;
        Self::from_files(IdxFile::open(&files.images)?, IdxFile::open(&files.labels)?, classes)
    }

    /// Pairs two opened files: images must be u8 of rank 3, labels u8 of rank 1, with
    /// the same count, and every label `< classes` (`classes` in `1..=256`).
    pub fn from_files(images: IdxFile, labels: IdxFile, classes: usize) -> Result<Self, DataError> {
        check_classes(classes)?;
        let (count, rows, cols) = {
            let view = checked_u8(&images, 3)?;
            // The rank is checked, so the fallback is never taken.
            let dim = |axis| view.dim(axis).unwrap_or_default();
            (dim(0), dim(1), dim(2))
        };
        let labels_count = checked_u8(&labels, 1)?.len();
        if labels_count != count {
            return Err(DataError::CountMismatch {
                images: images.path().into(),
                images_count: count,
                labels: labels.path().into(),
                labels_count,
            });
        }
        let label_bytes = labels.view().data();
        if let Some(index) = label_bytes.iter().position(|&l| usize::from(l) >= classes) {
            return Err(DataError::LabelOutOfRange {
                path: labels.path().into(),
                index,
                label: label_bytes[index],
                classes,
            });
        }
        // Cannot overflow when count > 0 (count·rows·cols bytes exist); with count = 0
        // two u32 dims still fit a 64-bit usize, and a 32-bit one gets an error.
        let pixels = rows.checked_mul(cols).ok_or(DataError::Format {
            path: images.path().into(),
            source: IdxFormatError::SizeOverflow { rank: 3 },
        })?;
        Ok(Self { images, labels, count, rows, cols, pixels, classes })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.count
    }

    /// `true` if there are no items.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Image height.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image, `d = rows · cols`.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// Number of classes `C`; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All images, row-major: `(count, rows, cols)` as `count · d` bytes.
    pub fn images(&self) -> &[u8] {
        self.images.view().data()
    }

    /// All labels: `count` bytes, each `< classes()`.
    pub fn labels(&self) -> &[u8] {
        self.labels.view().data()
    }

    /// Image `i` (`d` bytes, row-major), or `None` if `i >= len()`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        // In bounds and overflow-free: the file holds count · d bytes.
        self.images().get(i * self.pixels..(i + 1) * self.pixels)
    }

    /// Label `i`, or `None` if `i >= len()`.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels().get(i).copied()
    }

    /// The images file (path, encoding).
    pub fn images_file(&self) -> &IdxFile {
        &self.images
    }

    /// The labels file (path, encoding).
    pub fn labels_file(&self) -> &IdxFile {
        &self.labels
    }

    /// How many items each class has: `classes()` counts, summing to `len()`.
    pub fn class_histogram(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in self.labels() {
            // Every label is < classes (checked at load), so this is in bounds.
            counts[usize::from(l)] += 1;
        }
        counts
    }
}

fn check_classes(classes: usize) -> Result<(), DataError> {
    if (1..=256).contains(&classes) { Ok(()) } else { Err(DataError::InvalidClasses { classes }) }
}

/// The view of `file` if it is u8 of rank `rank`, else the error saying which
/// requirement failed. Rank is checked before type because a swapped images/labels
/// pair is the common mistake, and its message says so.
fn checked_u8(file: &IdxFile, rank: usize) -> Result<IdxView<'_>, DataError> {
    let view = file.view();
    if view.rank() != rank {
        return Err(DataError::WrongRank {
            path: file.path().into(),
            expected: rank,
            found: view.rank(),
        });
    }
    if view.elem_type() != ElemType::U8 {
        return Err(DataError::WrongElemType {
            path: file.path().into(),
            expected: ElemType::U8,
            found: view.elem_type(),
        });
    }
    Ok(view)
}

/// What to do with the last batch of an epoch when fewer than `B` items remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LastBatch {
    /// Return it, shorter than `B`: every item is seen every epoch.
    Keep,
    /// Skip it: every batch has exactly `B` items (the skipped items differ per epoch).
    Drop,
}

/// Where a [`BatchStream`] is: enough to resume it exactly (e.g. from a checkpoint).
///
/// Epoch `e`'s order is a pure function of `(seed, e)` (see [`epoch_order`]), so no
/// generator state or permutation needs saving: three integers do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamState {
    /// The stream's seed.
    pub seed: u64,
    /// The current epoch, from 0.
    pub epoch: u64,
    /// Items of the current epoch already handed out.
    pub cursor: u64,
}

impl StreamState {
    /// `[seed, epoch, cursor]`, for serialising.
    pub const fn to_words(self) -> [u64; 3] {
        [self.seed, self.epoch, self.cursor]
    }

    /// The inverse of [`StreamState::to_words`].
    pub const fn from_words([seed, epoch, cursor]: [u64; 3]) -> Self {
        Self { seed, epoch, cursor }
    }
}

/// Writes into `order` the permutation of `0..order.len()` that epoch `epoch` of a
/// stream seeded with `seed` visits.
///
/// The generator is Xoshiro256++ seeded with `seed` (via SplitMix64, as
/// `SeedableRng::seed_from_u64` does) and jumped ahead `epoch · 2^128` steps, so
/// every epoch draws from its own non-overlapping stream. The shuffle is Durstenfeld's
/// Fisher–Yates with Lemire's unbiased bounded integers over `next_u64`, written here
/// rather than taken from `rand::seq::SliceRandom` because rand does not promise that
/// its shuffle stays value-stable across versions, and a seed must keep meaning the
/// same order for as long as checkpoints exist.
///
/// # Panics
///
/// If `order.len() > 2^32`: indices are `u32`, and IDX counts are `u32` too.
pub fn epoch_order(seed: u64, epoch: u64, order: &mut [u32]) {
    shuffle_identity(order, epoch_rng(seed, epoch));
}

/// The generator epoch `epoch` of a stream seeded with `seed` starts from.
fn epoch_rng(seed: u64, epoch: u64) -> Xoshiro256PlusPlus {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    if epoch > 0 {
        // Polynomial arithmetic, about a millisecond; a stream that moves from one
        // epoch to the next uses the cheap fixed `jump()` instead.
        rng.jump_ce(epoch, 128);
    }
    rng
}

/// Fills `order` with `0..len` and shuffles it (Durstenfeld's Fisher–Yates).
fn shuffle_identity(order: &mut [u32], mut rng: Xoshiro256PlusPlus) {
    assert!(order.len() as u64 <= 1 << 32, "an epoch order holds at most 2^32 indices");
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    for i in (1..order.len()).rev() {
        let j = uniform_below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
}

/// A uniform integer in `0..n` (`n > 0`) without bias: Lemire, "Fast Random Integer
/// Generation in an Interval" (2019). Takes the high word of `x · n` and rejects the
/// few `x` whose low word falls below `2^64 mod n`.
fn uniform_below(rng: &mut impl Rng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Mini-batches in a seeded random order, reshuffled every epoch.
///
/// ```text
/// x: (B, d) f32, pixel / 255, row-major   y: (B,) u32 labels
/// ```
///
/// The permutation is allocated once at construction and recomputed in place each
/// epoch; batches are written into caller buffers. Nothing is allocated per batch.
///
/// ```no_run
/// # use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
/// # use std::num::NonZeroUsize;
/// let data = Dataset::load("data", Split::Train)?;
/// let b = NonZeroUsize::new(100).unwrap();
/// let mut stream = BatchStream::new(&data, b, LastBatch::Keep, 42);
/// let (mut x, mut y) = (vec![0.0; b.get() * data.pixels()], vec![0; b.get()]);
/// for _epoch in 0..3 {
///     while let Some(n) = stream.next_batch(&mut x, &mut y) {
///         // train on x[..n * d], y[..n]
///     }
/// }
/// # Ok::<(), idmlp::data::DataError>(())
/// ```
pub struct BatchStream<'a> {
    images: &'a [u8], // (count, d)
    labels: &'a [u8], // (count)
    pixels: usize,    // d
    order: Vec<u32>,  // (count) this epoch's permutation
    batch_size: usize,
    last: LastBatch,
    seed: u64,
    epoch: u64,
    epoch_rng: Xoshiro256PlusPlus, // = epoch_rng(seed, epoch)
    cursor: usize,                 // items of this epoch handed out
}

impl std::fmt::Debug for BatchStream<'_> {
    // Not derived: that would print the whole permutation and every pixel.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("len", &self.order.len())
            .field("batch_size", &self.batch_size)
            .field("last", &self.last)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl<'a> BatchStream<'a> {
    /// A stream over `data` starting at epoch 0.
    pub fn new(data: &'a Dataset, batch_size: NonZeroUsize, last: LastBatch, seed: u64) -> Self {
        Self::at(data, batch_size, last, seed, 0, 0)
    }

    /// A stream over `data` positioned at `state` (from [`BatchStream::state`]): it
    /// continues with exactly the batches the saved stream would have produced, given
    /// the same data, batch size and [`LastBatch`].
    pub fn resume(
        data: &'a Dataset,
        batch_size: NonZeroUsize,
        last: LastBatch,
        state: StreamState,
    ) -> Result<Self, DataError> {
        let cursor = usize::try_from(state.cursor)
            .ok()
            .filter(|&c| c <= data.len())
            .ok_or(DataError::StreamState { cursor: state.cursor, count: data.len() })?;
        Ok(Self::at(data, batch_size, last, state.seed, state.epoch, cursor))
    }

    fn at(
        data: &'a Dataset,
        batch_size: NonZeroUsize,
        last: LastBatch,
        seed: u64,
        epoch: u64,
        cursor: usize,
    ) -> Self {
        let epoch_rng = epoch_rng(seed, epoch);
        let mut order = vec![0; data.len()];
        shuffle_identity(&mut order, epoch_rng.clone());
        Self {
            images: data.images(),
            labels: data.labels(),
            pixels: data.pixels(),
            order,
            batch_size: batch_size.get(),
            last,
            seed,
            epoch,
            epoch_rng,
            cursor,
        }
    }

    /// Writes the next batch into `x` (`B·d` floats, pixel / 255) and `y` (`B`
    /// labels) and returns its size `n`: `B`, or fewer for the last batch of an epoch
    /// under [`LastBatch::Keep`]. Only the first `n` rows of `x` and `y` are written.
    ///
    /// At the end of an epoch it returns `None` once and moves to the next epoch, so
    /// `while let Some(n) = stream.next_batch(..)` runs exactly one epoch.
    ///
    /// # Panics
    ///
    /// If `x.len() != B·d` or `y.len() != B`.
    pub fn next_batch(&mut self, x: &mut [f32], y: &mut [u32]) -> Option<usize> {
        check_buffers(x, y, self.batch_size, self.pixels);
        let n = self.batch_size.min(self.order.len() - self.cursor);
        if n == 0 || (n < self.batch_size && self.last == LastBatch::Drop) {
            // `jump()` is `jump_ce(1, 128)`: the next epoch's generator, in microseconds.
            self.epoch = self.epoch.wrapping_add(1);
            self.epoch_rng.jump();
            self.cursor = 0;
            shuffle_identity(&mut self.order, self.epoch_rng.clone());
            return None;
        }
        let indices = &self.order[self.cursor..self.cursor + n];
        gather(self.images, self.labels, self.pixels, indices, x, y);
        self.cursor += n;
        Some(n)
    }

    /// The position to save for [`BatchStream::resume`].
    pub fn state(&self) -> StreamState {
        StreamState { seed: self.seed, epoch: self.epoch, cursor: self.cursor as u64 }
    }

    /// The current epoch, from 0.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The batch size `B`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per epoch: `⌈count / B⌉` under [`LastBatch::Keep`], `⌊count / B⌋` under
    /// [`LastBatch::Drop`].
    pub fn batches_per_epoch(&self) -> usize {
        match self.last {
            LastBatch::Keep => self.order.len().div_ceil(self.batch_size),
            LastBatch::Drop => self.order.len() / self.batch_size,
        }
    }

    /// This epoch's order: item indices in the order they are handed out.
    pub fn order(&self) -> &[u32] {
        &self.order
    }
}

/// Mini-batches in file order, each item once, the last batch possibly short: for
/// evaluation. Same buffer contract as [`BatchStream::next_batch`].
#[derive(Clone)]
pub struct SequentialBatches<'a> {
    images: &'a [u8], // (count, d)
    labels: &'a [u8], // (count)
    pixels: usize,    // d
    batch_size: usize,
    cursor: usize,
}

impl std::fmt::Debug for SequentialBatches<'_> {
    // Not derived: that would print every pixel.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialBatches")
            .field("len", &self.labels.len())
            .field("batch_size", &self.batch_size)
            .field("position", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a> SequentialBatches<'a> {
    /// Batches of `batch_size` over `data`, from item 0.
    pub fn new(data: &'a Dataset, batch_size: NonZeroUsize) -> Self {
        Self {
            images: data.images(),
            labels: data.labels(),
            pixels: data.pixels(),
            batch_size: batch_size.get(),
            cursor: 0,
        }
    }

    /// Writes the next batch (items `i .. i + n`) into `x` and `y` and returns `n`, or
    /// `None` once every item has been handed out (then [`SequentialBatches::reset`]).
    ///
    /// # Panics
    ///
    /// If `x.len() != B·d` or `y.len() != B`.
    pub fn next_batch(&mut self, x: &mut [f32], y: &mut [u32]) -> Option<usize> {
        check_buffers(x, y, self.batch_size, self.pixels);
        let n = self.batch_size.min(self.labels.len() - self.cursor);
        if n == 0 {
            return None;
        }
        let (start, d) = (self.cursor, self.pixels);
        to_unit_f32(&mut x[..n * d], &self.images[start * d..(start + n) * d]);
        for (y, &l) in y.iter_mut().zip(&self.labels[start..start + n]) {
            *y = u32::from(l);
        }
        self.cursor += n;
        Some(n)
    }

    /// The index of the first item of the next batch.
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// Starts over from item 0.
    pub fn reset(&mut self) {
        self.cursor = 0;
    }
}

fn check_buffers(x: &[f32], y: &[u32], batch_size: usize, pixels: usize) {
    assert_eq!(
        Some(x.len()),
        batch_size.checked_mul(pixels),
        "x must hold batch_size × pixels = {batch_size} × {pixels} floats"
    );
    assert_eq!(y.len(), batch_size, "y must hold batch_size = {batch_size} labels");
}

/// Copies items `indices` into the first rows of `x` (scaled) and `y`.
fn gather(images: &[u8], labels: &[u8], d: usize, indices: &[u32], x: &mut [f32], y: &mut [u32]) {
    for (k, (&i, y)) in indices.iter().zip(y.iter_mut()).enumerate() {
        let i = i as usize;
        to_unit_f32(&mut x[k * d..(k + 1) * d], &images[i * d..(i + 1) * d]);
        *y = u32::from(labels[i]);
    }
}

/// `dst[j] = src[j] / 255` for equal-length slices. Division rather than a multiply
/// by `1/255` so the result is the correctly rounded quotient the docs promise; the
/// loop vectorises either way.
fn to_unit_f32(dst: &mut [f32], src: &[u8]) {
    for (o, &b) in dst.iter_mut().zip(src) {
        *o = f32::from(b) / 255.0;
    }
}
