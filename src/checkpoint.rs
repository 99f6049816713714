//! Saving and loading a model's parameters (DESIGN.md §5).
//!
//! ```text
//! offset  size  field (all little-endian)
//!  0       8    magic  b"IDMLPCK\0"
//!  8       4    format version (2; version 1 files are still read)
//! 12       4    header length (64)
//! 16       4    d       inputs
//! 20       4    C       classes
//! 24       4    L       hidden layers
//! 28       1    class activation (0 linear, 1 relu)
//! 29       1    relu′(0) (0 or 1)
//! 30       1    init (0 identity, 1 He, 2 Xavier)
//! 31       1    reserved, 0
//! 32       4    init scale (f32; identity init's s, +0.0 for the others)
//! 36       4    reserved, 0
//! 40       8    parameter count = L·(D² + D), D = d + C
//! 48       8    checksum: FNV-1a over the payload's 64-bit words
//! 56       8    training-state length s in bytes (0: weights only; reserved, 0 in v1)
//! 64       4·n  parameters W_1, b_1, …, W_L, b_L as f32
//! 64+4n    s    training state (optimizer moments, batch order, epoch totals,
//!               history; layout in `checkpoint/state.rs`), v2 only
//! ```
//!
//! The payload starts at byte 64, so a mapped file (page-aligned) casts to `&[f32]`
//! with no copy. Writes go to a temporary file in the same directory, are synced, and
//! are renamed over the target: a crash leaves the old checkpoint or the new one,
//! never a torn file. Loading validates every field against the file length with
//! checked arithmetic before it reads the payload, then verifies the checksum.
//!
//! A checkpoint written by `idmlp train` also carries the [`TrainingState`], so that
//! a run can continue exactly where it stopped; the weights-only readers
//! ([`load`], [`MappedCheckpoint`]) ignore it.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::mlp::{Architecture, ClassActivation, Init, Mlp};
use crate::tape::ReluGradAtZero;

mod state;

pub use state::{CompletedEpoch, TrainingState};

/// The first 8 bytes of every checkpoint.
pub const MAGIC: [u8; 8] = *b"IDMLPCK\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 2;
/// The oldest format version this build reads (weights only, no training state).
pub const OLDEST_VERSION: u32 = 1;
/// Header length in bytes; the payload starts here.
pub const HEADER_LEN: usize = 64;

/// What a checkpoint describes besides its numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CheckpointMeta {
    /// The architecture.
    pub arch: Architecture,
    /// How the weights were initialised (kept so reports can say whether the
    /// layer-wise reading applies).
    pub init: Init,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file could not be opened, read, written or renamed.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a valid checkpoint; `problem` says what is wrong.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// What is wrong with an invalid checkpoint file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// Shorter than the 64-byte header.
    TooShort {
        /// Bytes in the file.
        len: u64,
    },
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// Written by another format version.
    UnsupportedVersion {
        /// The file's version.
        found: u32,
    },
    /// A header field holds a value no checkpoint can have.
    BadField {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The parameter count disagrees with `L·(D² + D)`.
    ParamCountMismatch {
        /// What the header says.
        header: u64,
        /// What d, C and L imply.
        expected: u64,
    },
    /// The file length is not header + 4·parameter count.
    LengthMismatch {
        /// Bytes in the file.
        actual: u64,
        /// Bytes the header implies.
        expected: u64,
    },
    /// The training-state section is malformed.
    BadState {
        /// What is wrong with it.
        what: &'static str,
    },
    /// The payload does not match its checksum: the file is corrupted.
    ChecksumMismatch {
        /// The header's checksum.
        stored: u64,
        /// The payload's checksum.
        computed: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooShort { len } => {
                write!(
                    f,
                    "{len} bytes is shorter than the {HEADER_LEN}-byte header: truncated, or not a checkpoint"
                )
            }
            Problem::BadMagic => write!(f, "not an idmlp checkpoint (wrong magic bytes)"),
            Problem::UnsupportedVersion { found } => {
                write!(
                    f,
                    "format version {found}; this build reads versions {OLDEST_VERSION} to {VERSION}"
                )
            }
            Problem::BadField { field, value } => {
                write!(f, "header field `{field}` has impossible value {value}")
            }
            Problem::ParamCountMismatch { header, expected } => {
                write!(f, "header says {header} parameters, but d, C and L imply {expected}")
            }
            Problem::LengthMismatch { actual, expected } => {
                let how = if actual < expected { "truncated" } else { "has trailing bytes" };
                write!(f, "file is {actual} bytes but its header implies {expected}: {how}")
            }
            Problem::BadState { what } => write!(f, "bad training state: {what}"),
            Problem::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the parameters are corrupted"
                )
            }
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => {
                write!(f, "checkpoint {}: {source}", path.display())
            }
            CheckpointError::Invalid { path, problem } => {
                write!(f, "checkpoint {}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Invalid { .. } => None,
        }
    }
}

impl CheckpointError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::Io { path, .. } | CheckpointError::Invalid { path, .. } => path,
        }
    }
}

/// FNV-1a over the payload read as little-endian 64-bit words (tail bytes zero-padded):
/// one multiply per 8 bytes, so 50 MB checks in a few milliseconds.
pub fn checksum(payload: &[u8]) -> u64 {
    checksum_parts(&[payload])
}

/// [`checksum`] continued part after part: the header's checksum of a file with a
/// training state is `checksum_parts(&[params, state])`. One part gives exactly
/// `checksum(part)`, so weights-only files of both versions agree.
pub fn checksum_parts(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().expect("8-byte chunk"));
            hash = (hash ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        hash = (hash ^ u64::from_le_bytes(tail) ^ part.len() as u64)
            .wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Encodes the 64-byte header of a `version` file for `meta`, a training state of
/// `state_len` bytes and a payload with checksum `sum`.
fn encode_header(
    meta: &CheckpointMeta,
    version: u32,
    state_len: u64,
    sum: u64,
) -> [u8; HEADER_LEN] {
    let arch = &meta.arch;
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    let u32_field = |v: usize| u32::try_from(v).expect("model dimension fits u32").to_le_bytes();
    h[16..20].copy_from_slice(&u32_field(arch.inputs));
    h[20..24].copy_from_slice(&u32_field(arch.classes));
    h[24..28].copy_from_slice(&u32_field(arch.layers));
    h[28] = match arch.class_activation {
        ClassActivation::Linear => 0,
        ClassActivation::Relu => 1,
    };
    h[29] = match arch.relu_grad_at_zero {
        ReluGradAtZero::Zero => 0,
        ReluGradAtZero::One => 1,
    };
    let (init, scale) = match meta.init {
        Init::Identity { scale } => (0, scale),
        Init::He => (1, 0.0),
        Init::Xavier => (2, 0.0),
    };
    h[30] = init;
    h[32..36].copy_from_slice(&scale.to_le_bytes());
    h[40..48].copy_from_slice(&(arch.param_count() as u64).to_le_bytes());
    h[48..56].copy_from_slice(&sum.to_le_bytes());
    h[56..64].copy_from_slice(&state_len.to_le_bytes());
    h
}

/// Where a validated file's parts are.
struct Layout {
    meta: CheckpointMeta,
    version: u32,
    /// The parameters' byte range.
    params: std::ops::Range<usize>,
    /// The training state's byte range (empty when there is none).
    state: std::ops::Range<usize>,
}

/// Validates a whole checkpoint image (header and payload) and returns its metadata.
/// Pure: `bytes` is the file's content; `path` only names it in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<CheckpointMeta, CheckpointError> {
    validate(path, bytes).map(|layout| layout.meta)
}

/// [`parse`], keeping where the parameters and the training state are.
fn validate(path: &Path, bytes: &[u8]) -> Result<Layout, CheckpointError> {
    let invalid = |problem| CheckpointError::Invalid { path: path.to_path_buf(), problem };
    let len = bytes.len() as u64;
    if bytes.len() < HEADER_LEN {
        return Err(invalid(Problem::TooShort { len }));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if bytes[0..8] != MAGIC {
        return Err(invalid(Problem::BadMagic));
    }
    let version = u32_at(8);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(invalid(Problem::UnsupportedVersion { found: version }));
    }
    let bad = |field, value: u64| invalid(Problem::BadField { field, value });
    if u32_at(12) as usize != HEADER_LEN {
        return Err(bad("header length", u64::from(u32_at(12))));
    }
    let (d, c, l) = (u32_at(16), u32_at(20), u32_at(24));
    for (field, value) in [("d", d), ("C", c), ("L", l)] {
        if value == 0 {
            return Err(bad(field, 0));
        }
    }
    let class_activation = match bytes[28] {
        0 => ClassActivation::Linear,
        1 => ClassActivation::Relu,
        v => return Err(bad("class activation", u64::from(v))),
    };
    let relu_grad_at_zero = match bytes[29] {
        0 => ReluGradAtZero::Zero,
        1 => ReluGradAtZero::One,
        v => return Err(bad("relu'(0)", u64::from(v))),
    };
    let scale = f32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes"));
    // Only identity init has a scale; the others store +0.0, so that every accepted
    // header is the one `save` writes (fuzzer finding,
    // fuzz/regressions/checkpoint_parse/xavier-nonzero-init-scale).
    let init = match (bytes[30], scale.to_bits()) {
        (0, _) if scale.is_finite() => Init::Identity { scale },
        (1, 0) => Init::He,
        (2, 0) => Init::Xavier,
        (0..=2, bits) => return Err(bad("init scale", u64::from(bits))),
        (v, _) => return Err(bad("init", u64::from(v))),
    };
    // Reserved bytes must be zero, so a later version can give them a meaning.
    for (field, value) in [
        ("reserved 31", u64::from(bytes[31])),
        ("reserved 36..40", u64::from(u32_at(36))),
        ("reserved 56..64", if version == 1 { u64_at(56) } else { 0 }),
    ] {
        if value != 0 {
            return Err(bad(field, value));
        }
    }
    // L·(D² + D) with D = d + C, all checked: the header is untrusted.
    let width = u64::from(d) + u64::from(c);
    let expected = width
        .checked_mul(width)
        .and_then(|sq| sq.checked_add(width))
        .and_then(|per_layer| per_layer.checked_mul(u64::from(l)))
        .ok_or_else(|| bad("L", u64::from(l)))?;
    let count = u64_at(40);
    if count != expected {
        return Err(invalid(Problem::ParamCountMismatch { header: count, expected }));
    }
    let state_len = u64_at(56);
    let params_end = count
        .checked_mul(4)
        .and_then(|p| p.checked_add(HEADER_LEN as u64))
        .ok_or_else(|| bad("parameter count", count))?;
    let file_len =
        params_end.checked_add(state_len).ok_or_else(|| bad("training-state length", state_len))?;
    if file_len != len {
        return Err(invalid(Problem::LengthMismatch { actual: len, expected: file_len }));
    }
    // Both ends are at most `len`, which is a `usize`.
    let params_end = params_end as usize;
    let stored = u64_at(48);
    let parts = [&bytes[HEADER_LEN..params_end], &bytes[params_end..]];
    let computed = checksum_parts(&parts[..if state_len == 0 { 1 } else { 2 }]);
    if stored != computed {
        return Err(invalid(Problem::ChecksumMismatch { stored, computed }));
    }
    let arch = Architecture {
        inputs: d as usize,
        classes: c as usize,
        layers: l as usize,
        class_activation,
        relu_grad_at_zero,
    };
    let layout = Layout {
        meta: CheckpointMeta { arch, init },
        version,
        params: HEADER_LEN..params_end,
        state: params_end..bytes.len(),
    };
    if !layout.state.is_empty() {
        // Validated whole here, so that every accepted file loads.
        state::check(&bytes[layout.state.clone()], arch.param_count())
            .map_err(|what| invalid(Problem::BadState { what }))?;
    }
    Ok(layout)
}

/// Writes `mlp` to `path` atomically: a temporary file in the same directory is
/// written, synced and renamed over `path`.
pub fn save(path: impl AsRef<Path>, mlp: &Mlp, init: Init) -> Result<(), CheckpointError> {
    write(path.as_ref(), mlp, init, None)
}

/// Writes `mlp` with the [`TrainingState`] a run needs to continue, atomically as
/// [`save`] does. The state's optimizer must cover `mlp`'s parameters.
pub fn save_with_state(
    path: impl AsRef<Path>,
    mlp: &Mlp,
    init: Init,
    state: &TrainingState,
) -> Result<(), CheckpointError> {
    write(path.as_ref(), mlp, init, Some(state))
}

fn write(
    path: &Path,
    mlp: &Mlp,
    init: Init,
    state: Option<&TrainingState>,
) -> Result<(), CheckpointError> {
    let io_err = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let meta = CheckpointMeta { arch: mlp.arch, init };
    assert_eq!(
        mlp.params.len(),
        mlp.arch.param_count(),
        "save: parameter buffer does not match the architecture"
    );
    let payload = params_as_le_bytes(&mlp.params);
    let state = state.map(|s| state::encode(s, mlp.params.len())).unwrap_or_default();
    let parts: [&[u8]; 2] = [&payload, &state];
    let sum = checksum_parts(&parts[..if state.is_empty() { 1 } else { 2 }]);
    let header = encode_header(&meta, VERSION, state.len() as u64, sum);
    crate::atomic::write_parts(path, &[&header, &payload, &state]).map_err(io_err)
}

/// The parameters as little-endian bytes: a borrow on little-endian hosts, a copy elsewhere.
fn params_as_le_bytes(params: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(params))
    } else {
        std::borrow::Cow::Owned(params.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// A checkpoint read into memory: metadata and an owned model (any training state is
/// validated and then ignored).
pub fn load(path: impl AsRef<Path>) -> Result<(Mlp, CheckpointMeta), CheckpointError> {
    let (mlp, meta, _) = load_with_state(path)?;
    Ok((mlp, meta))
}

/// [`load`], plus the [`TrainingState`] when the file has one (written by
/// [`save_with_state`], e.g. by `idmlp train`).
pub fn load_with_state(
    path: impl AsRef<Path>,
) -> Result<(Mlp, CheckpointMeta, Option<TrainingState>), CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path)
        .map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
    let layout = validate(path, &bytes)?;
    let params = f32s_from_le(&bytes[layout.params]);
    let state = if layout.state.is_empty() {
        None
    } else {
        let state = state::decode(&bytes[layout.state], params.len())
            .expect("the training state was validated by `validate`");
        Some(state)
    };
    Ok((Mlp { arch: layout.meta.arch, params }, layout.meta, state))
}

/// Little-endian f32s, copied out of `bytes` (a multiple of 4 long).
fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

/// A checkpoint mapped read-only: the parameters are borrowed from the map, never
/// copied. For embedding a trained model in a small binary.
#[derive(Debug)]
pub struct MappedCheckpoint {
    meta: CheckpointMeta,
    map: memmap2::Mmap,
    /// The parameters' byte range in `map`.
    params: std::ops::Range<usize>,
    path: PathBuf,
}

impl MappedCheckpoint {
    /// Maps `path` and validates it whole (header, length, checksum).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let io_err = |source| CheckpointError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let map = crate::idx::map_file(&file).map_err(io_err)?;
        let layout = validate(path, &map)?;
        if cfg!(target_endian = "big")
            || bytemuck::try_cast_slice::<u8, f32>(&map[layout.params.clone()]).is_err()
        {
            return Err(io_err(io::Error::new(
                io::ErrorKind::Unsupported,
                "zero-copy load needs a little-endian host; use checkpoint::load",
            )));
        }
        Ok(MappedCheckpoint {
            meta: layout.meta,
            map,
            params: layout.params,
            path: path.to_path_buf(),
        })
    }

    /// The architecture and init.
    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    /// The flat parameters, borrowed from the map.
    pub fn params(&self) -> &[f32] {
        bytemuck::cast_slice(&self.map[self.params.clone()])
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Input cap of the fuzz target: a tiny model's checkpoint is a few hundred bytes, and
/// larger inputs only slow the fuzzer down.
#[doc(hidden)]
pub const FUZZ_MAX_LEN: usize = 1 << 20;

/// Body of the `checkpoint_parse` fuzz target (fuzz/), public so that
/// `tests/checkpoint_fuzz.rs` replays the committed corpus through it on stable Rust.
///
/// Parses `data` (capped at [`FUZZ_MAX_LEN`] bytes); when it is accepted, checks that
/// the parameter count is `L·(D² + D)`, that the length is `64 + 4·count + state`, and
/// that re-encoding the metadata and the training state reproduces the file byte for
/// byte (so every field the loader accepts means exactly one thing). Panics only if an
/// invariant is broken, which is a bug.
///
/// A fuzzer almost never guesses a valid checksum, so each input is also checked a
/// second time with its checksum recomputed (for the parameter / state split its header
/// claims): that lets mutations reach the fields behind the checksum, the training
/// state above all.
#[doc(hidden)]
pub fn fuzz_checkpoint_parse(data: &[u8]) {
    let data = &data[..data.len().min(FUZZ_MAX_LEN)];
    fuzz_check(data);
    if data.len() < HEADER_LEN {
        return;
    }
    let count = u64::from_le_bytes(data[40..48].try_into().expect("8 bytes"));
    let params_end = count.checked_mul(4).and_then(|p| p.checked_add(HEADER_LEN as u64));
    if let Some(end) = params_end.filter(|&end| end <= data.len() as u64) {
        let end = end as usize;
        let parts = [&data[HEADER_LEN..end], &data[end..]];
        let sum = checksum_parts(&parts[..if end == data.len() { 1 } else { 2 }]);
        let mut signed = data.to_vec();
        signed[48..56].copy_from_slice(&sum.to_le_bytes());
        fuzz_check(&signed);
    }
}

/// The invariants [`fuzz_checkpoint_parse`] checks on one input.
fn fuzz_check(data: &[u8]) {
    match validate(Path::new("fuzz"), data) {
        Ok(Layout { meta, version, params, state }) => {
            let arch = &meta.arch;
            let width = arch.inputs as u64 + arch.classes as u64;
            let count = (width * width + width) * arch.layers as u64;
            assert_eq!(arch.param_count() as u64, count);
            assert_eq!(params, HEADER_LEN..HEADER_LEN + 4 * count as usize);
            assert_eq!(state.end, data.len());
            let sum = u64::from_le_bytes(data[48..56].try_into().expect("8 bytes"));
            let header = encode_header(&meta, version, state.len() as u64, sum);
            assert_eq!(header, data[..HEADER_LEN]);
            if !state.is_empty() {
                let decoded = state::decode(&data[state.clone()], count as usize)
                    .expect("accepted state decodes");
                assert_eq!(state::encode(&decoded, count as usize), data[state]);
            }
        }
        Err(e) => {
            assert!(matches!(&e, CheckpointError::Invalid { .. }), "{e:?}");
            let _ = e.to_string();
        }
    }
}
