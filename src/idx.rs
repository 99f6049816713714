//! IDX files: a pure parser over `&[u8]`, zero-copy typed views, and the storage that
//! backs them (a memory map for raw files, an owned buffer for `.gz`).
//!
//! ## Format
//!
//! ```text
//! offset  size       field
//! 0       2          magic 0x00 0x00
//! 2       1          element type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//! 3       1          rank r (number of dimensions), 1..=255
//! 4       4·r        dimensions, big-endian u32 each
//! 4+4·r   n·size     elements, big-endian, row-major; n = product of the dimensions
//! ```
//!
//! [`parse`] validates every field with checked arithmetic before it looks at the
//! payload and demands the exact length `4 + 4·r + n·size`: a short file is
//! [`IdxFormatError::Truncated`], a long one [`IdxFormatError::TrailingBytes`]. It never
//! allocates and never panics. Rank 0 (a scalar) is rejected: no data set uses it, and
//! a header `00 00 08 00` is far more likely to be corruption than intent.
//!
//! ## Views
//!
//! [`IdxView`] borrows the bytes. `u8` and `i8` payloads are handed out as plain slices
//! (bytemuck casts, zero copy). Wider types are stored big-endian, so they cannot be
//! cast to native integers or floats on a little-endian machine; [`IdxView::as_be`]
//! gives a zero-copy [`BeSlice`] over the raw `[u8; N]` elements that decodes one
//! element at a time on access.
//!
//! ## Storage
//!
//! [`IdxFile`] owns the bytes: a read-only memory map for raw files (`map_file`, the
//! crate's one memory-map site; its hazard is described on [`IdxFile::open`]) or a
//! `Vec<u8>` for gzip files, which are decompressed once (multi-member streams
//! included, feature `gz`). Whether a file is gzip is decided by its content (magic
//! `1f 8b`) and checked against its name: a `.gz` name must hold gzip data and any
//! other name must not, and a mismatch is an error that says how to fix it.
//! Decompression is bounded by the size the IDX header claims (see
//! `IdxFile::from_gz_reader`, feature `gz`).
//!
//! [`DataError`] is the one error type of the data layer (this module and
//! [`crate::data`]). It lives here, at the bottom of the layer, so that `data` can
//! use it without `idx` depending on `data`; `data` re-exports it.

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Length of the fixed part of the header: magic (2), element type (1), rank (1).
const FIXED_HEADER: usize = 4;

/// The gzip magic number (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The element type of an IDX payload, from the third header byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElemType {
    /// `0x08`: unsigned byte (MNIST images and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian `i16`.
    I16,
    /// `0x0C`: big-endian `i32`.
    I32,
    /// `0x0D`: big-endian IEEE-754 `f32`.
    F32,
    /// `0x0E`: big-endian IEEE-754 `f64`.
    F64,
}

impl ElemType {
    /// The type for a header code, or `None` for a code IDX does not define.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => Self::U8,
            0x09 => Self::I8,
            0x0B => Self::I16,
            0x0C => Self::I32,
            0x0D => Self::F32,
            0x0E => Self::F64,
            _ => return None,
        })
    }

    /// The header code of this type.
    pub const fn code(self) -> u8 {
        match self {
            Self::U8 => 0x08,
            Self::I8 => 0x09,
            Self::I16 => 0x0B,
            Self::I32 => 0x0C,
            Self::F32 => 0x0D,
            Self::F64 => 0x0E,
        }
    }

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// The Rust name of the type (`"u8"`, `"f32"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a byte buffer is not a valid IDX file. Produced by [`parse`] and
/// [`parse_header`]; carries no path (the parser sees only bytes), [`DataError::Format`]
/// adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdxFormatError {
    /// There are no bytes at all.
    Empty,
    /// The data starts with the gzip magic `1f 8b`: a compressed file read as raw.
    LooksLikeGzip,
    /// The data starts with `<` (after optional whitespace or a UTF-8 BOM): an HTML or
    /// XML page, typically an error or redirect page saved in place of the download.
    LooksLikeHtml,
    /// The data is a Git LFS pointer (`version https://git-lfs...`), not the file.
    LooksLikeLfsPointer,
    /// The first two bytes are not `00 00`. A missing second byte reads as 0.
    BadMagic {
        /// The first two bytes found.
        found: [u8; 2],
    },
    /// The header (4 bytes, then 4 per dimension) is cut short.
    TruncatedHeader {
        /// Bytes the header needs (4 until the rank byte is known).
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The element type byte is not one IDX defines.
    UnknownType {
        /// The type byte found.
        code: u8,
    },
    /// The rank byte is 0; this parser requires at least one dimension.
    ZeroRank,
    /// The product of the dimensions, times the element size, plus the header length,
    /// does not fit in `usize`: the header is corrupt.
    SizeOverflow {
        /// The rank of the header.
        rank: u8,
    },
    /// Fewer bytes than the header's dimensions require.
    Truncated {
        /// Total bytes the header says the file has.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// More bytes than the header's dimensions account for.
    TrailingBytes {
        /// Total bytes the header says the file has.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
}

impl fmt::Display for IdxFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => {
                write!(f, "the file is empty; the download probably failed, fetch it again")
            }
            Self::LooksLikeGzip => write!(
                f,
                "the data is gzip-compressed but was read as raw IDX; give the file a .gz \
                 name so it is decompressed, or decompress it (gunzip)"
            ),
            Self::LooksLikeHtml => write!(
                f,
                "the data is an HTML/XML page, not IDX (a web page saved in place of the \
                 file?); download the file itself again"
            ),
            Self::LooksLikeLfsPointer => write!(
                f,
                "the data is a Git LFS pointer, not the file; run `git lfs pull` to fetch it"
            ),
            Self::BadMagic { found: [a, b] } => write!(
                f,
                "bad magic: starts with 0x{a:02x} 0x{b:02x}, IDX files start with 0x00 0x00; \
                 this is not an IDX file"
            ),
            Self::TruncatedHeader { expected, actual } => write!(
                f,
                "truncated header: the header needs {expected} bytes but there are only {actual}"
            ),
            Self::UnknownType { code } => write!(
                f,
                "unknown element type 0x{code:02x}; IDX defines 0x08 u8, 0x09 i8, 0x0b i16, \
                 0x0c i32, 0x0d f32, 0x0e f64"
            ),
            Self::ZeroRank => write!(f, "rank 0: an IDX file needs at least one dimension"),
            Self::SizeOverflow { rank } => write!(
                f,
                "the {rank} dimensions in the header multiply to more bytes than can be \
                 addressed; the header is corrupt"
            ),
            Self::Truncated { expected, actual } => write!(
                f,
                "truncated: the header describes {expected} bytes but there are only {actual}; \
                 the file was cut short, fetch it again"
            ),
            Self::TrailingBytes { expected, actual } => write!(
                f,
                "{} trailing bytes: the header describes {expected} bytes but there are \
                 {actual}; the file is corrupt or not what its header says",
                actual.saturating_sub(expected)
            ),
        }
    }
}

impl Error for IdxFormatError {}

/// The validated header of an IDX file: everything needed to know the file's exact
/// length, computed from the header bytes alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdxHeader {
    /// Element type.
    pub elem: ElemType,
    /// Number of dimensions, `1..=255`.
    pub rank: u8,
    /// Header length in bytes: `4 + 4·rank`.
    pub header_len: usize,
    /// Number of elements: the product of the dimensions.
    pub len: usize,
    /// Exact length of the whole file: `header_len + len · elem.size()`.
    pub total_len: usize,
}

/// Validates the header at the start of `bytes` (which may hold only the header).
///
/// Checks, in order: not empty; not gzip, HTML or an LFS pointer (each has its own
/// error, because each has its own fix); magic `00 00`; a known element type; rank ≥ 1;
/// the dimensions present; and that `header_len + product(dims) · size` fits in
/// `usize`. The payload is not looked at, so this is what a streaming reader calls
/// to learn how many bytes to expect. O(rank), no allocation.
pub fn parse_header(bytes: &[u8]) -> Result<IdxHeader, IdxFormatError> {
    if bytes.is_empty() {
        return Err(IdxFormatError::Empty);
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(IdxFormatError::LooksLikeGzip);
    }
    // A valid file starts with 0x00, so this text sniffing can only reject files that
    // would fail the magic check anyway; it exists to pick a more useful message.
    if bytes[0] != 0 {
        return Err(sniff_text(bytes).unwrap_or(IdxFormatError::BadMagic {
            found: [bytes[0], bytes.get(1).copied().unwrap_or(0)],
        }));
    }
    if let Some(&b) = bytes.get(1).filter(|&&b| b != 0) {
        return Err(IdxFormatError::BadMagic { found: [0, b] });
    }
    let Some(&[_, _, code, rank]) = bytes.first_chunk::<FIXED_HEADER>() else {
        return Err(IdxFormatError::TruncatedHeader {
            expected: FIXED_HEADER,
            actual: bytes.len(),
        });
    };
    let elem = ElemType::from_code(code).ok_or(IdxFormatError::UnknownType { code })?;
    if rank == 0 {
        return Err(IdxFormatError::ZeroRank);
    }
    // At most 4 + 4·255 = 1024: no overflow possible.
    let header_len = FIXED_HEADER + 4 * usize::from(rank);
    let dims = bytes
        .get(FIXED_HEADER..header_len)
        .ok_or(IdxFormatError::TruncatedHeader { expected: header_len, actual: bytes.len() })?;
    let overflow = IdxFormatError::SizeOverflow { rank };
    let len = element_count(dims).ok_or(overflow)?;
    let total_len =
        len.checked_mul(elem.size()).and_then(|n| n.checked_add(header_len)).ok_or(overflow)?;
    Ok(IdxHeader { elem, rank, header_len, len, total_len })
}

/// The product of big-endian u32 dimensions, `None` on overflow. A zero dimension
/// makes the product 0 even if the other dimensions would overflow together, since
/// that is the true element count.
fn element_count(dims: &[u8]) -> Option<usize> {
    let mut dims = dims.chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    if dims.clone().any(|d| d == 0) {
        return Some(0);
    }
    dims.try_fold(1usize, |n, d| n.checked_mul(usize::try_from(d).ok()?))
}

/// Recognises the common non-IDX text files people end up with, by their first bytes.
fn sniff_text(bytes: &[u8]) -> Option<IdxFormatError> {
    const BOM: &[u8] = b"\xef\xbb\xbf";
    let text = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let text = &text[text.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    if text.starts_with(b"<") {
        Some(IdxFormatError::LooksLikeHtml)
    } else if text.starts_with(b"version https://git-lfs") {
        Some(IdxFormatError::LooksLikeLfsPointer)
    } else {
        None
    }
}

/// Parses a complete IDX file held in `bytes` and borrows a view of it.
///
/// Everything [`parse_header`] checks, plus the exact length: fewer bytes than the
/// header describes is [`IdxFormatError::Truncated`], more is
/// [`IdxFormatError::TrailingBytes`]. O(rank), no allocation, no panic.
pub fn parse(bytes: &[u8]) -> Result<IdxView<'_>, IdxFormatError> {
    let header = parse_header(bytes)?;
    let (expected, actual) = (header.total_len, bytes.len());
    if actual < expected {
        return Err(IdxFormatError::Truncated { expected, actual });
    }
    if actual > expected {
        return Err(IdxFormatError::TrailingBytes { expected, actual });
    }
    Ok(IdxView::new(bytes, header))
}

/// A borrowed, validated IDX file: header fields plus the payload bytes.
///
/// `Copy` and cheap: it holds two slices and a few integers.
#[derive(Clone, Copy, Debug)]
pub struct IdxView<'a> {
    header: IdxHeader,
    dims: &'a [[u8; 4]],
    data: &'a [u8],
}

impl<'a> IdxView<'a> {
    /// Slices `bytes` by a header that was validated against them. Only [`parse`] and
    /// [`IdxFile`] call this, both with `bytes.len() == header.total_len`; the empty
    /// fallbacks below are unreachable then and exist so that nothing here can panic.
    fn new(bytes: &'a [u8], header: IdxHeader) -> Self {
        let dims = bytes.get(FIXED_HEADER..header.header_len).unwrap_or_default();
        Self {
            header,
            dims: bytemuck::try_cast_slice(dims).unwrap_or_default(),
            data: bytes.get(header.header_len..).unwrap_or_default(),
        }
    }

    /// The validated header.
    pub fn header(&self) -> IdxHeader {
        self.header
    }

    /// Element type.
    pub fn elem_type(&self) -> ElemType {
        self.header.elem
    }

    /// Number of dimensions (≥ 1).
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Size of dimension `axis`, or `None` if `axis >= rank`.
    pub fn dim(&self, axis: usize) -> Option<usize> {
        // u32 → usize: IDX dims are u32, and `parse_header` has already proven that
        // their product fits in usize, so each one does.
        self.dims.get(axis).map(|&d| u32::from_be_bytes(d) as usize)
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> impl ExactSizeIterator<Item = usize> + Clone + 'a {
        self.dims.iter().map(|&d| u32::from_be_bytes(d) as usize)
    }

    /// Number of elements (the product of the dimensions).
    pub fn len(&self) -> usize {
        self.header.len
    }

    /// `true` if some dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.header.len == 0
    }

    /// The payload: `len() · elem_type().size()` bytes, elements big-endian.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The payload as `u8`, or `None` if the element type is not [`ElemType::U8`].
    pub fn as_u8(&self) -> Option<&'a [u8]> {
        (self.header.elem == ElemType::U8).then_some(self.data)
    }

    /// The payload as `i8`, or `None` if the element type is not [`ElemType::I8`].
    pub fn as_i8(&self) -> Option<&'a [i8]> {
        (self.header.elem == ElemType::I8).then(|| bytemuck::cast_slice(self.data))
    }

    /// A zero-copy view of a multi-byte payload (`i16`, `i32`, `f32`, `f64`), or `None`
    /// if the element type is not `T`'s. Elements are decoded from big-endian on access.
    pub fn as_be<T: BeElement>(&self) -> Option<BeSlice<'a, T>> {
        if self.header.elem != T::ELEM {
            return None;
        }
        // Cannot fail: `[u8; N]` has alignment 1 and the payload length is a multiple
        // of N by construction. `ok()` rather than a panic all the same.
        bytemuck::try_cast_slice(self.data).ok().map(|raw| BeSlice { raw })
    }

    /// Element `i` converted to `f64` whatever the element type (exact for every IDX
    /// type), or `None` if `i >= len()`. For bulk access prefer the typed views.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        let size = self.header.elem.size();
        let at = i.checked_mul(size)?;
        let b = self.data.get(at..at.checked_add(size)?)?;
        Some(match self.header.elem {
            ElemType::U8 => f64::from(b[0]),
            ElemType::I8 => f64::from(b[0] as i8),
            ElemType::I16 => f64::from(i16::from_be_bytes(b.try_into().ok()?)),
            ElemType::I32 => f64::from(i32::from_be_bytes(b.try_into().ok()?)),
            ElemType::F32 => f64::from(f32::from_be_bytes(b.try_into().ok()?)),
            ElemType::F64 => f64::from_be_bytes(b.try_into().ok()?),
        })
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A multi-byte IDX element type, stored big-endian. Implemented for `i16`, `i32`,
/// `f32` and `f64`; sealed.
pub trait BeElement: Copy + sealed::Sealed {
    /// The element's raw bytes, `[u8; size_of::<Self>()]`.
    type Raw: bytemuck::Pod;
    /// The IDX element type this Rust type stands for.
    const ELEM: ElemType;
    /// Decodes one element from its big-endian bytes.
    fn from_be(raw: Self::Raw) -> Self;
}

macro_rules! be_element {
    ($($t:ty => $elem:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl BeElement for $t {
            type Raw = [u8; size_of::<$t>()];
            const ELEM: ElemType = ElemType::$elem;
            fn from_be(raw: Self::Raw) -> Self {
                <$t>::from_be_bytes(raw)
            }
        }
    )*};
}
be_element!(i16 => I16, i32 => I32, f32 => F32, f64 => F64);

/// A zero-copy view of big-endian elements of type `T`, decoded on access.
#[derive(Clone, Copy, Debug)]
pub struct BeSlice<'a, T: BeElement> {
    raw: &'a [T::Raw],
}

impl<'a, T: BeElement> BeSlice<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Element `i`, decoded, or `None` if out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        self.raw.get(i).map(|&r| T::from_be(r))
    }

    /// All elements in order, decoded.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = T> + 'a {
        self.raw.iter().map(|&r| T::from_be(r))
    }

    /// The undecoded big-endian elements.
    pub fn raw(&self) -> &'a [T::Raw] {
        self.raw
    }
}

/// How a file was stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// Uncompressed IDX (memory-mapped when opened from a file).
    Raw,
    /// gzip-compressed IDX, decompressed into memory.
    Gzip,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Raw => "raw",
            Self::Gzip => "gz",
        })
    }
}

/// The bytes behind an [`IdxFile`].
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl fmt::Debug for Storage {
    // Lengths only: the derived impl would print every byte of a decompressed file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mapped(map) => write!(f, "Mapped({} bytes)", map.len()),
            Self::Owned(vec) => write!(f, "Owned({} bytes)", vec.len()),
        }
    }
}

/// A validated IDX file that owns its bytes: memory-mapped when raw, decompressed into
/// memory when gzip. Hand out views with [`IdxFile::view`].
#[derive(Debug)]
pub struct IdxFile {
    storage: Storage,
    header: IdxHeader,
    path: PathBuf,
    encoding: Encoding,
}

impl IdxFile {
    /// Opens and validates the IDX file at `path`.
    ///
    /// A name ending in `.gz` (any case) must hold gzip data, which is decompressed
    /// (feature `gz`, else [`DataError::GzipUnsupported`]); any other name must hold raw
    /// IDX, which is memory-mapped. The content decides, the name is checked against it:
    /// gzip data under a raw name is [`IdxFormatError::LooksLikeGzip`], raw data under a
    /// `.gz` name is [`DataError::NotGzip`].
    ///
    /// # Mapping hazard
    ///
    /// A raw file is mapped read-only and its bytes are borrowed as `&[u8]` for as long
    /// as the `IdxFile` lives. If another process truncates the file meanwhile, touching
    /// the lost pages raises SIGBUS and kills the process; if it rewrites the file in
    /// place, the bytes change under us (undefined behaviour in Rust's model, garbage
    /// values in practice: labels validated at load could then exceed the class count
    /// and trip a bounds check downstream). Every mmap-based reader accepts this; we do
    /// too, because the files are inputs nobody edits while training, and the map is
    /// what makes loading free. Copy the data first if that assumption does not hold.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let io_err = |source| DataError::Io { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if size == 0 {
            // Checked before anything else: an empty `.gz` is "empty", not "not gzip",
            // and mapping a zero-length file is an error on some platforms.
            return Err(DataError::Format {
                path: path.to_path_buf(),
                source: IdxFormatError::Empty,
            });
        }
        if !has_gz_extension(path) {
            return Self::map(file, path);
        }
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(io_err)?;
        if magic[..n] != GZIP_MAGIC {
            return Err(DataError::NotGzip { path: path.to_path_buf() });
        }
        #[cfg(feature = "gz")]
        {
            Self::from_gz_reader(path, io::BufReader::new((&magic[..n]).chain(file)))
        }
        #[cfg(not(feature = "gz"))]
        {
            Err(DataError::GzipUnsupported { path: path.to_path_buf() })
        }
    }

    /// Memory-maps a raw file and validates it.
    fn map(file: File, path: &Path) -> Result<Self, DataError> {
        let map =
            map_file(&file).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
        Self::validated(Storage::Mapped(map), path.to_path_buf(), Encoding::Raw)
    }

    /// Wraps raw IDX bytes already in memory. `origin` names them in error messages
    /// (a path, or any label such as `"embedded/train-images"`).
    pub fn from_raw_bytes(origin: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self, DataError> {
        Self::validated(Storage::Owned(bytes), origin.as_ref().to_path_buf(), Encoding::Raw)
    }

    /// Decompresses a gzip stream (one or more members) holding one IDX file.
    /// `origin` names it in error messages.
    ///
    /// The size is bounded by the IDX header, not trusted from it: the header is
    /// inflated first, the exact total length `T` it claims is computed, and then at most
    /// `T + 1` bytes are inflated. One byte past `T` means the stream holds more than the
    /// header admits ([`DataError::GzipOverrun`]); fewer than `T` is
    /// [`IdxFormatError::Truncated`]. The buffer grows as bytes arrive (doubling, capped
    /// at `T + 1`), so memory tracks what the stream actually produces: a 100-byte
    /// stream whose header claims 4 GB allocates kilobytes, then fails as truncated.
    /// A gzip bomb therefore costs at most its header's claim, and only if the stream
    /// really inflates that far.
    #[cfg(feature = "gz")]
    pub fn from_gz_reader(
        origin: impl AsRef<Path>,
        reader: impl io::BufRead,
    ) -> Result<Self, DataError> {
        Self::from_gz_reader_capped(origin.as_ref(), reader, usize::MAX)
    }

    /// [`IdxFile::from_gz_reader`] that also refuses to inflate more than `cap` bytes
    /// (for the fuzzer, whose inputs may legitimately claim gigabytes).
    #[cfg(feature = "gz")]
    fn from_gz_reader_capped(
        path: &Path,
        reader: impl io::BufRead,
        cap: usize,
    ) -> Result<Self, DataError> {
        let mut inflate = flate2::bufread::MultiGzDecoder::new(reader);
        let gz_err = |source| DataError::Decompress { path: path.to_path_buf(), source };
        let format_err = |source| DataError::Format { path: path.to_path_buf(), source };

        // The header in two steps: the fixed part tells the rank, the rank tells how
        // many dimension bytes follow.
        let mut buf = Vec::new();
        read_bounded(&mut inflate, &mut buf, FIXED_HEADER).map_err(gz_err)?;
        if let Some(&[0, 0, _, rank]) = buf.first_chunk::<FIXED_HEADER>() {
            read_bounded(&mut inflate, &mut buf, FIXED_HEADER + 4 * usize::from(rank))
                .map_err(gz_err)?;
        }
        // A short header fails here with the same error a short raw file gets.
        let header = parse_header(&buf).map_err(format_err)?;
        let claimed = header.total_len;
        let limit = claimed
            .checked_add(1)
            .ok_or(IdxFormatError::SizeOverflow { rank: header.rank })
            .map_err(format_err)?;
        // Only the fuzzer sets a cap; for it, "more than I will inflate" is an overrun.
        if limit > cap {
            return Err(DataError::GzipOverrun { path: path.to_path_buf(), claimed });
        }
        read_bounded(&mut inflate, &mut buf, limit).map_err(gz_err)?;
        if buf.len() > claimed {
            return Err(DataError::GzipOverrun { path: path.to_path_buf(), claimed });
        }
        Self::validated(Storage::Owned(buf), path.to_path_buf(), Encoding::Gzip)
    }

    fn validated(storage: Storage, path: PathBuf, encoding: Encoding) -> Result<Self, DataError> {
        let bytes: &[u8] = match &storage {
            Storage::Mapped(map) => map,
            Storage::Owned(vec) => vec,
        };
        match parse(bytes) {
            Ok(view) => Ok(Self { header: view.header(), storage, path, encoding }),
            Err(source) => Err(DataError::Format { path, source }),
        }
    }

    /// The whole file (header and payload, decompressed).
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(map) => map,
            Storage::Owned(vec) => vec,
        }
    }

    /// A view of the file. O(1): the header was validated when the file was opened.
    pub fn view(&self) -> IdxView<'_> {
        IdxView::new(self.bytes(), self.header)
    }

    /// The validated header.
    pub fn header(&self) -> IdxHeader {
        self.header
    }

    /// The path the file was opened from (or the `origin` it was given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw (memory-mapped) or gzip (decompressed).
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
}

/// Maps `file` read-only: the crate's one memory-map site (IDX files here, checkpoints
/// in `checkpoint.rs`), so that its `unsafe` and its hazard live in one place.
///
/// The caller must treat the file as immutable while the map lives: a file truncated
/// under the map raises SIGBUS on access, one rewritten in place changes bytes that
/// Rust code holds as `&[u8]`. See "Mapping hazard" on [`IdxFile::open`].
#[allow(unsafe_code)]
pub(crate) fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and the returned `Mmap` owns it: slices borrowed
    // through `Deref` cannot outlive it. The remaining precondition, that no one
    // modifies or truncates the file while it is mapped, cannot be enforced from here;
    // we accept it, as every mmap-based reader does (documented on `IdxFile::open`).
    unsafe { memmap2::Mmap::map(file) }
}

/// `true` if the file name ends in `.gz`, in any case.
fn has_gz_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Fills as much of `buf` as the reader provides; returns the count (short only at EOF).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Appends to `buf` from `r` until EOF or until `buf.len() == limit`.
///
/// The buffer grows only as data arrives: each step at most doubles it (at least
/// `GROW_MIN` bytes) and never past `limit`, so `limit` is an upper bound, not an
/// up-front allocation. New space is zeroed once, when it is added.
#[cfg(feature = "gz")]
fn read_bounded(r: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    /// Smallest growth step: large enough to keep the inflater's calls few.
    const GROW_MIN: usize = 64 * 1024;
    let mut filled = buf.len();
    let result = loop {
        if filled >= limit {
            break Ok(());
        }
        if filled == buf.len() {
            let grow = filled.max(GROW_MIN).min(limit - filled);
            buf.reserve_exact(grow);
            buf.resize(filled + grow, 0);
        }
        match r.read(&mut buf[filled..]) {
            Ok(0) => break Ok(()),
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    buf.truncate(filled);
    result
}

/// The error type of the data layer: opening, decompressing and validating IDX files
/// ([`IdxFile`]), and pairing them into data sets ([`crate::data`]).
///
/// Each variant names the file (or directory) concerned. `Display` says what is wrong
/// and, for the usual mistakes, what to do; a wrapped cause (an I/O error, an
/// [`IdxFormatError`]) is not repeated in `Display` but returned by
/// [`Error::source`], so print the chain (as the `idmlp` binary does).
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The file or directory could not be opened, read or mapped.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The bytes are not a valid IDX file.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with the bytes.
        source: IdxFormatError,
    },
    /// The name ends in `.gz` but the content is not gzip (browsers often decompress
    /// downloads and keep the name).
    NotGzip {
        /// The file.
        path: PathBuf,
    },
    /// A gzip file, and this build has no gzip support (feature `gz` is off).
    GzipUnsupported {
        /// The file.
        path: PathBuf,
    },
    /// The gzip stream is corrupt.
    Decompress {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: io::Error,
    },
    /// The gzip stream inflates to more bytes than its IDX header claims.
    GzipOverrun {
        /// The file.
        path: PathBuf,
        /// Total bytes the header claims (header included).
        claimed: usize,
    },
    /// A valid IDX file of the wrong element type for its role (images and labels are
    /// `u8`).
    WrongElemType {
        /// The file.
        path: PathBuf,
        /// The type required.
        expected: ElemType,
        /// The type found.
        found: ElemType,
    },
    /// A valid IDX file of the wrong rank for its role (images are rank 3:
    /// count × rows × cols; labels are rank 1: count).
    WrongRank {
        /// The file.
        path: PathBuf,
        /// The rank required.
        expected: usize,
        /// The rank found.
        found: usize,
    },
    /// Images and labels hold different numbers of items.
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Number of images.
        images_count: usize,
        /// The labels file.
        labels: PathBuf,
        /// Number of labels.
        labels_count: usize,
    },
    /// A label is not below the number of classes.
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Index of the first offending label.
        index: usize,
        /// Its value.
        label: u8,
        /// The number of classes it was checked against.
        classes: usize,
    },
    /// The requested number of classes is not in `1..=256` (labels are `u8`).
    InvalidClasses {
        /// The number requested.
        classes: usize,
    },
    /// None of the standard names for a file is present in a directory.
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The names tried, in order of preference.
        tried: &'static [&'static str],
    },
    /// A saved batch-stream position does not fit the data set it is resumed on.
    StreamState {
        /// The saved position within the epoch.
        cursor: u64,
        /// Items in the data set.
        count: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, .. } => write!(f, "{}: cannot read", path.display()),
            Self::Format { path, .. } => write!(f, "{}: not a valid IDX file", path.display()),
            Self::NotGzip { path } => write!(
                f,
                "{}: the name ends in .gz but the content is not gzip (already decompressed, \
                 e.g. by a browser?); remove the .gz from the name",
                path.display()
            ),
            Self::GzipUnsupported { path } => write!(
                f,
                "{}: this build of idmlp has no gzip support (feature `gz` is off); \
                 decompress it (gunzip) or rebuild with `--features gz`",
                path.display()
            ),
            Self::Decompress { path, .. } => {
                write!(f, "{}: corrupt gzip stream; fetch the file again", path.display())
            }
            Self::GzipOverrun { path, claimed } => write!(
                f,
                "{}: the gzip stream inflates past the {claimed} bytes its IDX header claims; \
                 the file is corrupt (or a decompression bomb)",
                path.display()
            ),
            Self::WrongElemType { path, expected, found } => {
                write!(f, "{}: elements are {found}, expected {expected}", path.display())
            }
            Self::WrongRank { path, expected, found } => {
                write!(
                    f,
                    "{}: rank {found} where {} is expected",
                    path.display(),
                    role_of_rank(*expected)
                )?;
                if *found == 1 || *found == 3 {
                    write!(
                        f,
                        "; this looks like {}: are the images and labels files swapped?",
                        role_of_rank(*found)
                    )?;
                }
                Ok(())
            }
            Self::CountMismatch { images, images_count, labels, labels_count } => write!(
                f,
                "{} holds {images_count} images but {} holds {labels_count} labels; \
                 the two files must come from the same data set (fetch both again)",
                images.display(),
                labels.display()
            ),
            Self::LabelOutOfRange { path, index, label, classes } => write!(
                f,
                "{}: label {label} at index {index} is not below the number of classes \
                 ({classes}); pass the right number of classes",
                path.display()
            ),
            Self::InvalidClasses { classes } => {
                write!(
                    f,
                    "{classes} classes: the number of classes must be in 1..=256 (labels are u8)"
                )
            }
            Self::MissingFile { dir, tried } => write!(
                f,
                "{}: no {} file (tried {})",
                dir.display(),
                tried.first().map_or("", |n| strip_idx_suffix(n)),
                tried.join(", ")
            ),
            Self::StreamState { cursor, count } => write!(
                f,
                "saved batch-stream position {cursor} is past the end of a data set of \
                 {count} items; the checkpoint belongs to different data"
            ),
        }
    }
}

/// What a file of this rank is in an MNIST-format directory, for messages.
fn role_of_rank(rank: usize) -> &'static str {
    match rank {
        1 => "a labels file (rank 1: count)",
        3 => "an images file (rank 3: count × rows × cols)",
        _ => "a file of another kind",
    }
}

/// `train-images-idx3-ubyte` → `train-images`, for messages.
fn strip_idx_suffix(name: &str) -> &str {
    let end = name.find("-idx").or_else(|| name.find(".idx")).unwrap_or(name.len());
    name.get(..end).unwrap_or(name)
}

impl Error for DataError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::Decompress { source, .. } => Some(source),
            Self::Format { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The body of the `idx_parse` fuzz target, here so that `tests/idx.rs` can replay
/// the committed corpus through exactly the same code on stable Rust.
///
/// Parses `data` (capped at [`FUZZ_MAX_LEN`] bytes) and checks the view's invariants;
/// if it starts with the gzip magic, also decompresses it (capped at 1 MiB inflated)
/// and checks the result. Panics only if an invariant is broken, which is a bug.
#[doc(hidden)]
pub fn fuzz_idx_parse(data: &[u8]) {
    let data = &data[..data.len().min(FUZZ_MAX_LEN)];
    let header = parse_header(data);
    match parse(data) {
        Ok(view) => {
            assert_eq!(header, Ok(view.header()));
            check_view(&view, data.len());
        }
        Err(e) => {
            // `parse` fails exactly where `parse_header` does, or on length alone.
            match header {
                Err(h) => assert_eq!(h, e),
                Ok(h) => assert!(
                    matches!(e, IdxFormatError::Truncated { expected, .. }
                        | IdxFormatError::TrailingBytes { expected, .. } if expected == h.total_len),
                    "{e:?} vs {h:?}"
                ),
            }
            let _ = e.to_string();
        }
    }
    #[cfg(feature = "gz")]
    if data.starts_with(&GZIP_MAGIC) {
        match IdxFile::from_gz_reader_capped(Path::new("fuzz.gz"), data, 1 << 20) {
            Ok(file) => {
                assert_eq!(file.bytes().len(), file.header().total_len);
                check_view(&file.view(), file.bytes().len());
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// Input cap of the fuzz target: larger inputs only slow it down.
#[doc(hidden)]
pub const FUZZ_MAX_LEN: usize = 64 * 1024;

/// Invariants of a view over a file of `total` bytes.
fn check_view(view: &IdxView<'_>, total: usize) {
    let h = view.header();
    assert_eq!(h.header_len + view.data().len(), total);
    assert_eq!(view.data().len(), view.len() * h.elem.size());
    assert_eq!(view.rank(), usize::from(h.rank));
    // A zero dimension empties the file whatever the others are (they may overflow
    // together: fuzzer finding, fuzz/regressions/idx_parse/zero-dim-after-huge-dims).
    let product = match view.dims().any(|d| d == 0) {
        true => Some(0),
        false => view.dims().try_fold(1usize, usize::checked_mul),
    };
    assert_eq!(product, Some(view.len()));
    assert_eq!(view.dim(view.rank()), None);
    assert_eq!(view.get_f64(view.len()), None);
    let typed = match h.elem {
        ElemType::U8 => view.as_u8().map(<[u8]>::len),
        ElemType::I8 => view.as_i8().map(<[i8]>::len),
        ElemType::I16 => view.as_be::<i16>().map(|s| s.iter().count()),
        ElemType::I32 => view.as_be::<i32>().map(|s| s.iter().count()),
        ElemType::F32 => view.as_be::<f32>().map(|s| s.iter().count()),
        ElemType::F64 => view.as_be::<f64>().map(|s| s.iter().count()),
    };
    assert_eq!(typed, Some(view.len()));
    if let Some(last) = view.len().checked_sub(1) {
        assert!(view.get_f64(last).is_some());
    }
}
