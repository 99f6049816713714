//! IDX parsing and storage: one hand-built byte fixture per error with its exact
//! variant, typed views of every element type, `.gz` against raw on the MNIST sample,
//! the decompression bound, property tests, and a replay of the committed fuzz corpus.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;
use std::path::Path;

mod common;

use common::{TempDir, idx_bytes};
use idmlp::idx::{self, DataError, ElemType, Encoding, IdxFile, IdxFormatError};
use quickcheck::{QuickCheck, TestResult};

// ---------------------------------------------------------------------------------
// Helpers

#[cfg(feature = "gz")]
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[cfg(feature = "gz")]
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[cfg(feature = "gz")]
const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

// ---------------------------------------------------------------------------------
// Peak allocation on this thread, to prove that a header's claim is not allocated
// up front. Thread-local so that tests running in parallel do not disturb it.

struct PeakAlloc;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add_signed(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY (test only): forwards to the system allocator unchanged, only counting.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Peak bytes live on this thread while `f` runs, above what was live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

// ---------------------------------------------------------------------------------
// Valid files

#[test]
fn parses_u8_rank3_like_mnist() {
    let payload: Vec<u8> = (0..2 * 3 * 4).collect();
    let bytes = idx_bytes(0x08, &[2, 3, 4], &payload);
    let view = idx::parse(&bytes).unwrap();
    assert_eq!(view.elem_type(), ElemType::U8);
    assert_eq!(view.rank(), 3);
    assert_eq!(view.dims().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!((view.dim(0), view.dim(2), view.dim(3)), (Some(2), Some(4), None));
    assert_eq!(view.len(), 24);
    assert_eq!(view.header().header_len, 16);
    assert_eq!(view.header().total_len, bytes.len());
    assert_eq!(view.as_u8(), Some(&payload[..]));
    assert!(view.as_i8().is_none() && view.as_be::<f32>().is_none());
}

#[test]
fn decodes_every_element_type_big_endian() {
    let i8s: [i8; 3] = [-128, -1, 127];
    let v = idx_bytes(0x09, &[3], &i8s.map(|x| x as u8));
    assert_eq!(idx::parse(&v).unwrap().as_i8(), Some(&i8s[..]));

    let i16s: [i16; 3] = [i16::MIN, -2, 0x1234];
    let v = idx_bytes(0x0B, &[3], &i16s.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>());
    let view = idx::parse(&v).unwrap();
    assert_eq!(view.as_be::<i16>().unwrap().iter().collect::<Vec<_>>(), i16s);
    assert_eq!(view.as_be::<i16>().unwrap().get(2), Some(0x1234));

    let i32s: [i32; 2] = [i32::MIN, 0x0102_0304];
    let v =
        idx_bytes(0x0C, &[1, 2], &i32s.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>());
    assert_eq!(idx::parse(&v).unwrap().as_be::<i32>().unwrap().iter().collect::<Vec<_>>(), i32s);

    let f32s: [f32; 3] = [-1.5, 0.1, f32::MAX];
    let v =
        idx_bytes(0x0D, &[3, 1], &f32s.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>());
    let view = idx::parse(&v).unwrap();
    assert_eq!(view.as_be::<f32>().unwrap().iter().collect::<Vec<_>>(), f32s);
    assert_eq!(view.get_f64(1), Some(f64::from(0.1f32)));

    let f64s: [f64; 2] = [std::f64::consts::PI, -0.0];
    let v = idx_bytes(0x0E, &[2], &f64s.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>());
    let view = idx::parse(&v).unwrap();
    let got: Vec<f64> = view.as_be::<f64>().unwrap().iter().collect();
    assert_eq!(got[0], f64s[0]);
    assert!(got[1] == 0.0 && got[1].is_sign_negative());
    assert_eq!(view.get_f64(2), None);
}

#[test]
fn any_rank_and_zero_dims() {
    let v = idx_bytes(0x08, &[1, 1, 1, 1, 2], &[7, 9]);
    assert_eq!(idx::parse(&v).unwrap().rank(), 5);
    let max_rank = idx_bytes(0x08, &[1; 255], &[42]);
    assert_eq!(idx::parse(&max_rank).unwrap().as_u8(), Some(&[42][..]));

    // A zero dimension means no elements, even beside dimensions whose product alone
    // would overflow: that is the true count.
    let v = idx_bytes(0x0E, &[u32::MAX, u32::MAX, u32::MAX, 0], &[]);
    let view = idx::parse(&v).unwrap();
    assert!(view.is_empty());
    assert_eq!(view.as_be::<f64>().unwrap().len(), 0);
}

// ---------------------------------------------------------------------------------
// One fixture per parse error, each with its exact variant

#[test]
fn empty_file() {
    assert!(matches!(idx::parse(&[]), Err(IdxFormatError::Empty)));
}

#[test]
fn wrong_magic() {
    let mut v = idx_bytes(0x08, &[1], &[0]);
    v[1] = 0x01;
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::BadMagic { found: [0x00, 0x01] })));
    // The magic of a big-endian 0x00000803 read as little-endian by another tool.
    let v = [0x03, 0x08, 0x00, 0x00, 0, 0, 0, 1, 0];
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::BadMagic { found: [0x03, 0x08] })));
}

#[test]
fn unknown_element_type() {
    let v = idx_bytes(0x0A, &[1], &[0]);
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::UnknownType { code: 0x0A })));
}

#[test]
fn zero_rank_is_rejected() {
    assert!(matches!(idx::parse(&[0, 0, 8, 0, 5]), Err(IdxFormatError::ZeroRank)));
}

#[test]
fn truncated_header() {
    assert!(matches!(
        idx::parse(&[0, 0, 8]),
        Err(IdxFormatError::TruncatedHeader { expected: 4, actual: 3 })
    ));
    // Rank 3 needs 16 header bytes; the third dimension is cut after two bytes.
    let v = &idx_bytes(0x08, &[1, 28, 28], &[])[..14];
    assert!(matches!(
        idx::parse(v),
        Err(IdxFormatError::TruncatedHeader { expected: 16, actual: 14 })
    ));
}

#[test]
fn truncated_data() {
    let v = idx_bytes(0x08, &[2, 2, 2], &[0; 7]);
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::Truncated { expected: 24, actual: 23 })));
    // Multi-byte elements count in bytes: 3 f32 need 12.
    let v = idx_bytes(0x0D, &[3], &[0; 11]);
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::Truncated { expected: 20, actual: 19 })));
}

#[test]
fn trailing_bytes() {
    let v = idx_bytes(0x08, &[3], &[1, 2, 3, 4]);
    assert!(matches!(
        idx::parse(&v),
        Err(IdxFormatError::TrailingBytes { expected: 11, actual: 12 })
    ));
}

#[test]
fn dims_whose_product_overflows() {
    // 2^32-1 cubed overflows u64 (and usize on every platform).
    let v = idx_bytes(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
    assert!(matches!(idx::parse(&v), Err(IdxFormatError::SizeOverflow { rank: 3 })));
    // On 64 bits the element count fits but count × 8 bytes does not.
    let v = idx_bytes(0x0E, &[u32::MAX, u32::MAX], &[]);
    assert_eq!(idx::parse(&v).unwrap_err(), IdxFormatError::SizeOverflow { rank: 2 });
}

#[test]
fn huge_claim_is_truncated_not_allocated() {
    // Valid header claiming 2^32-1 × 2^32-1 bytes: an error naming the size, instantly.
    let v = idx_bytes(0x08, &[u32::MAX, u32::MAX], &[0; 10]);
    let (result, peak) = peak_during(|| idx::parse(&v).map(|v| v.len()));
    assert!(
        matches!(result, Err(IdxFormatError::Truncated { expected, actual: 22 }) if expected > 1 << 63)
    );
    assert_eq!(peak, 0, "the parser allocates nothing");
}

#[test]
fn recognises_gzip_html_and_lfs_pointers() {
    assert!(matches!(idx::parse(&[0x1f, 0x8b, 8, 0]), Err(IdxFormatError::LooksLikeGzip)));
    for page in [&b"<!DOCTYPE html><html>"[..], b"\xef\xbb\xbf\n  <html>", b"<?xml version"] {
        assert!(matches!(idx::parse(page), Err(IdxFormatError::LooksLikeHtml)), "{page:?}");
    }
    let lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:...";
    assert!(matches!(idx::parse(lfs), Err(IdxFormatError::LooksLikeLfsPointer)));
    // Other text is just bad magic.
    assert!(matches!(idx::parse(b"hello"), Err(IdxFormatError::BadMagic { found: [b'h', b'e'] })));
}

#[test]
fn messages_say_what_to_do() {
    let msg = |e: IdxFormatError| e.to_string();
    assert!(msg(IdxFormatError::LooksLikeGzip).contains(".gz"));
    assert!(msg(IdxFormatError::LooksLikeGzip).contains("gunzip"));
    assert!(msg(IdxFormatError::LooksLikeHtml).contains("HTML"));
    assert!(msg(IdxFormatError::Truncated { expected: 10, actual: 5 }).contains("10"));
    assert!(msg(IdxFormatError::TrailingBytes { expected: 10, actual: 15 }).contains("5 trailing"));
}

// ---------------------------------------------------------------------------------
// Properties

/// Random well-formed files parse back to their dims and payload; cutting or extending
/// them by any amount gives exactly `Truncated` / `TrailingBytes`.
#[test]
fn prop_round_trip_and_exact_length() {
    fn prop(code_pick: u8, dims: Vec<u8>, seed: u8, cut: u8, extra: u8) -> TestResult {
        let codes = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E];
        let elem = ElemType::from_code(codes[usize::from(code_pick) % codes.len()]).unwrap();
        let dims: Vec<u32> = dims.iter().take(4).map(|&d| u32::from(d % 6)).collect();
        if dims.is_empty() {
            return TestResult::discard();
        }
        let n: usize = dims.iter().map(|&d| d as usize).product::<usize>() * elem.size();
        let payload: Vec<u8> =
            (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let bytes = idx_bytes(elem.code(), &dims, &payload);
        let view = idx::parse(&bytes).unwrap();
        let ok = view.dims().eq(dims.iter().map(|&d| d as usize))
            && view.data() == &payload[..]
            && view.elem_type() == elem;

        let cut = usize::from(cut) % (bytes.len() + 1);
        let shorter = idx::parse(&bytes[..bytes.len() - cut]);
        let header_len = 4 + 4 * dims.len();
        let cut_ok = match cut {
            0 => shorter.is_ok(),
            _ if bytes.len() - cut < header_len => shorter.is_err(),
            _ => matches!(shorter, Err(IdxFormatError::Truncated { expected, actual })
                    if expected == bytes.len() && actual == bytes.len() - cut),
        };
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0, usize::from(extra) + 1));
        let long_ok = matches!(idx::parse(&longer), Err(IdxFormatError::TrailingBytes { expected, .. })
                if expected == bytes.len());
        TestResult::from_bool(ok && cut_ok && long_ok)
    }
    QuickCheck::new().tests(500).quickcheck(prop as fn(u8, Vec<u8>, u8, u8, u8) -> TestResult);
}

/// Arbitrary bytes (biased to start like IDX) never panic the parser or the fuzz body.
#[test]
fn prop_arbitrary_bytes_never_panic() {
    fn prop(prefix: u8, body: Vec<u8>) -> bool {
        let mut bytes = match prefix % 4 {
            0 => vec![],
            1 => vec![0, 0],
            2 => vec![0, 0, 0x08],
            _ => vec![0, 0, 0x0D, 1],
        };
        bytes.extend(body);
        idx::fuzz_idx_parse(&bytes);
        true
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(u8, Vec<u8>) -> bool);
}

// ---------------------------------------------------------------------------------
// Files: raw (mapped), gzip, and the name/content checks

#[test]
fn raw_file_is_mapped() {
    let dir = TempDir::new("raw");
    let bytes = idx_bytes(0x08, &[2, 2], &[1, 2, 3, 4]);
    let path = dir.write("x-idx2-ubyte", &bytes);
    let file = IdxFile::open(&path).unwrap();
    assert_eq!(file.encoding(), Encoding::Raw);
    assert_eq!(file.bytes(), &bytes[..]);
    assert_eq!(file.view().as_u8(), Some(&[1, 2, 3, 4][..]));
    assert_eq!(file.path(), path);
}

#[test]
fn errors_name_the_file() {
    let dir = TempDir::new("errors-name");
    let path = dir.write("broken.idx", &idx_bytes(0x08, &[3], &[1]));
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(
        &err,
        DataError::Format { path: p, source: IdxFormatError::Truncated { expected: 11, actual: 9 } }
            if *p == path
    ));
    assert!(err.to_string().contains("broken.idx"), "{err}");
    let source = std::error::Error::source(&err).expect("the format error is the source");
    assert!(source.to_string().contains("truncated"), "{source}");

    let missing = dir.0.join("nope");
    assert!(matches!(IdxFile::open(&missing), Err(DataError::Io { path, .. }) if path == missing));
}

#[test]
fn empty_file_on_disk() {
    let dir = TempDir::new("empty");
    for name in ["empty-idx1-ubyte", "empty-idx1-ubyte.gz"] {
        let path = dir.write(name, &[]);
        assert!(
            matches!(
                IdxFile::open(&path),
                Err(DataError::Format { source: IdxFormatError::Empty, .. })
            ),
            "{name}"
        );
    }
}

#[test]
fn html_page_saved_as_data() {
    let dir = TempDir::new("html");
    let path =
        dir.write("train-images-idx3-ubyte", b"<!DOCTYPE html>\n<title>404 Not Found</title>");
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(err, DataError::Format { source: IdxFormatError::LooksLikeHtml, .. }));
}

#[test]
fn raw_data_under_a_gz_name() {
    let dir = TempDir::new("not-gzip");
    let path = dir.write("t10k-labels-idx1-ubyte.gz", &idx_bytes(0x08, &[1], &[3]));
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(&err, DataError::NotGzip { path: p } if *p == path));
    assert!(err.to_string().contains("remove the .gz"), "{err}");
}

#[cfg(feature = "gz")]
#[test]
fn gzip_file_with_an_idx_name() {
    let dir = TempDir::new("gzip-idx-name");
    let path = dir.write("train-images.idx", &gzip(&idx_bytes(0x08, &[1], &[3])));
    let err = IdxFile::open(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::Format { path: p, source: IdxFormatError::LooksLikeGzip } if *p == path)
    );
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("train-images.idx") && chain.contains(".gz name"), "{chain}");
}

#[cfg(not(feature = "gz"))]
#[test]
fn gzip_file_with_an_idx_name() {
    // Without the gz feature the parser still recognises the magic.
    let dir = TempDir::new("gzip-idx-name");
    let path = dir.write("train-images.idx", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(&err, DataError::Format { source: IdxFormatError::LooksLikeGzip, .. }));
}

#[cfg(not(feature = "gz"))]
#[test]
fn gz_without_the_feature_says_so() {
    let dir = TempDir::new("no-gz");
    let path = dir.write("x.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(&err, DataError::GzipUnsupported { path: p } if *p == path));
    assert!(err.to_string().contains("--features gz"), "{err}");
}

#[cfg(feature = "gz")]
#[test]
fn gzip_is_decompressed_including_multi_member() {
    let dir = TempDir::new("gz");
    let raw = idx_bytes(0x0C, &[2], &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    // Two gzip members, split inside the header: concatenated members are one stream.
    let mut multi = gzip(&raw[..6]);
    multi.extend(gzip(&raw[6..]));
    for (name, bytes) in [("one.gz", gzip(&raw)), ("multi.GZ", multi)] {
        let file = IdxFile::open(dir.write(name, &bytes)).unwrap();
        assert_eq!(file.encoding(), Encoding::Gzip);
        assert_eq!(file.bytes(), &raw[..], "{name}");
        assert_eq!(file.view().as_be::<i32>().unwrap().iter().collect::<Vec<_>>(), [1, -1]);
    }
}

#[cfg(feature = "gz")]
#[test]
fn gzip_stream_that_inflates_past_its_header_claim() {
    let dir = TempDir::new("gz-overrun");
    // The header claims 3 bytes of payload (total 11); the stream holds 4.
    let path = dir.write("x-idx1-ubyte.gz", &gzip(&idx_bytes(0x08, &[3], &[1, 2, 3, 4])));
    let err = IdxFile::open(&path).unwrap_err();
    assert!(matches!(&err, DataError::GzipOverrun { path: p, claimed: 11 } if *p == path));
    // A second member carrying the excess is caught the same way.
    let mut two = gzip(&idx_bytes(0x08, &[3], &[1, 2, 3]));
    two.extend(gzip(b"more"));
    let err = IdxFile::from_gz_reader("two.gz", &two[..]).unwrap_err();
    assert!(matches!(err, DataError::GzipOverrun { claimed: 11, .. }));
}

#[cfg(feature = "gz")]
#[test]
fn gzip_stream_shorter_than_its_header_claim() {
    let gz = gzip(&idx_bytes(0x08, &[5], &[1, 2]));
    let err = IdxFile::from_gz_reader("short.gz", &gz[..]).unwrap_err();
    assert!(matches!(
        err,
        DataError::Format { source: IdxFormatError::Truncated { expected: 13, actual: 10 }, .. }
    ));
    // Cut inside the header.
    let gz = gzip(&idx_bytes(0x08, &[5, 5], &[])[..9]);
    let err = IdxFile::from_gz_reader("short.gz", &gz[..]).unwrap_err();
    assert!(matches!(
        err,
        DataError::Format {
            source: IdxFormatError::TruncatedHeader { expected: 12, actual: 9 },
            ..
        }
    ));
}

#[cfg(feature = "gz")]
#[test]
fn corrupt_gzip_stream() {
    let mut gz = gzip(&idx_bytes(0x08, &[100], &[7; 100]));
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz.truncate(gz.len() - 4); // and lose the trailer's size field
    let err = IdxFile::from_gz_reader("bad.gz", &gz[..]).unwrap_err();
    assert!(matches!(err, DataError::Decompress { .. } | DataError::Format { .. }), "{err:?}");
}

/// A small stream whose header claims 4 GiB must not allocate anywhere near it:
/// memory follows the bytes that actually arrive.
#[cfg(feature = "gz")]
#[test]
fn gzip_claim_is_an_upper_bound_not_an_allocation() {
    let claim = 1u32 << 31; // 2 GiB × 2 rows of u8
    let gz = gzip(&idx_bytes(0x08, &[2, claim], &[9; 1000]));
    assert!(gz.len() < 200);
    let (result, peak) = peak_during(|| IdxFile::from_gz_reader("bomb.gz", &gz[..]).map(|_| ()));
    assert!(matches!(
        result,
        Err(DataError::Format { source: IdxFormatError::Truncated { expected, actual: 1012 }, .. })
            if expected == (1 << 32) + 12
    ));
    assert!(peak < 1 << 20, "peak allocation {peak} bytes for a {}-byte stream", gz.len());
}

/// Our bounded decoder agrees byte for byte with plain flate2 on the real sample, and
/// the gunzipped copy, read raw through the map, is identical too.
#[cfg(feature = "gz")]
#[test]
fn mnist_sample_gz_and_raw_are_identical() {
    let dir = TempDir::new("mnist-raw");
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let gz_path = Path::new(MNIST_SAMPLE).join(format!("{name}.gz"));
        let plain = gunzip(&fs::read(&gz_path).unwrap());
        let gz = IdxFile::open(&gz_path).unwrap();
        let raw = IdxFile::open(dir.write(name, &plain)).unwrap();
        assert_eq!((gz.encoding(), raw.encoding()), (Encoding::Gzip, Encoding::Raw));
        assert_eq!(gz.bytes(), &plain[..], "{name}");
        assert_eq!(raw.bytes(), &plain[..], "{name}");
        assert_eq!(gz.header(), raw.header());
        let expected_rank = if name.contains("images") { 3 } else { 1 };
        assert_eq!(raw.view().rank(), expected_rank);
    }
}

// ---------------------------------------------------------------------------------
// Fuzz corpus replay: every committed input goes through the fuzz target's body.

#[test]
fn replay_fuzz_corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for dir in ["corpus/idx_parse", "regressions/idx_parse"] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| idx::fuzz_idx_parse(&bytes));
            assert!(outcome.is_ok(), "fuzz input {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} fuzz inputs found under {}", root.display());
}
