//! The report in a real browser: `idmlp interpret` writes `report.html` from a real
//! checkpoint and the MNIST sample, headless Chromium loads it, and the check requires
//! that every `<img>` decoded (non-zero natural size) and that the page raised no error
//! (no uncaught exception, no failed resource load, no `console.error`, no console
//! message at all in Chromium's log — the report has no script of its own).
//!
//! How: the page is copied next to itself with a small probe `<script>` inserted at the
//! top of `<head>` (the report itself stays script-free). The probe records error
//! events (capture phase, so failed `<img>` loads count) and `console.error` calls, and
//! on `load` writes one line per image and per error into a `<pre>` that
//! `chromium --dump-dom` prints. Relative references resolve exactly as for the
//! original page because the copy sits in the same directory.
//!
//! Chromium is required: if it is missing these tests fail and say how to install it
//! (`.ci/run` installs Debian's `chromium`). `IDMLP_CHROMIUM` overrides the binary.
#![cfg(feature = "cli")]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use idmlp::checkpoint;
use idmlp::data::{BatchStream, Dataset, LastBatch, Split};
use idmlp::mlp::{Architecture, Init, Mlp};
use idmlp::optim::OptimizerKind;
use idmlp::train::Trainer;

mod common;

use common::TempDir;

const MNIST_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-sample");

/// Inserted at the top of `<head>` of a copy of the page (see the file docs).
const PROBE: &str = r#"<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.getAttribute) {
      errors.push('failed to load <' + t.tagName.toLowerCase() + '> ' +
        (t.getAttribute('src') || t.getAttribute('href')));
    } else {
      errors.push('uncaught ' + e.message);
    }
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    errors.push('unhandled rejection ' + e.reason);
  });
  var original = console.error;
  console.error = function () {
    errors.push('console.error ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var lines = [];
    Array.prototype.forEach.call(document.images, function (img) {
      var ok = img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
      lines.push('image ' + (ok ? 'ok' : 'broken') + ' ' + img.naturalWidth + 'x' +
        img.naturalHeight + ' ' + img.getAttribute('src'));
    });
    errors.forEach(function (e) { lines.push('error ' + e); });
    var pre = document.createElement('pre');
    pre.id = 'idmlp-browser-check';
    pre.textContent = lines.join('\n');
    document.body.appendChild(pre);
  });
})();
</script>"#;

/// What the browser saw.
#[derive(Debug)]
struct PageCheck {
    /// `(decoded, "WxH src")` per `<img>`, in document order.
    images: Vec<(bool, String)>,
    /// Errors the probe caught, then console messages from Chromium's log.
    errors: Vec<String>,
}

impl PageCheck {
    /// The check's verdict: every image decoded, at least `min_images`, no error.
    fn verify(&self, min_images: usize) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.images.len() < min_images {
            problems.push(format!("{} images, expected at least {min_images}", self.images.len()));
        }
        for (ok, image) in &self.images {
            if !ok {
                problems.push(format!("image did not decode: {image}"));
            }
        }
        problems.extend(self.errors.iter().map(|e| format!("page error: {e}")));
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
    }
}

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("IDMLP_CHROMIUM") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "the browser check needs Chromium, which is not installed.\n\
             Install it with `sudo apt-get install chromium` (Debian; .ci/run does this), \
             or point IDMLP_CHROMIUM at a Chromium or Chrome binary."
        )
    })
}

/// Common headless flags: no network, no first-run UI, a throwaway profile.
fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Runs `cmd` with stdout and stderr sent to files (pages can exceed a pipe buffer),
/// killing it after `limit`. Returns (stdout, stderr).
fn run_with_timeout(mut cmd: Command, scratch: &Path, limit: Duration) -> (String, String) {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let mut child = cmd
        .stdout(Stdio::from(fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(fs::File::create(&err_path).unwrap()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {:?}: {e}", cmd.get_program()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| {
        let mut s = String::new();
        fs::File::open(p).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let (stdout, stderr) = (read(&out_path), read(&err_path));
    assert!(status.success(), "chromium failed: {status}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// Loads `page` in headless Chromium and reports its images and errors.
fn check_in_browser(page: &Path) -> PageCheck {
    let html = fs::read_to_string(page).unwrap();
    let head = html.find("<head>").expect("the page has a <head>") + "<head>".len();
    let probed = page.with_file_name("report.browser-check.html");
    fs::write(&probed, format!("{}{PROBE}{}", &html[..head], &html[head..])).unwrap();

    let scratch = TempDir::new("chromium");
    let mut cmd = headless(&scratch.path().join("profile"));
    cmd.args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom"])
        .arg(format!("file://{}", probed.canonicalize().unwrap().display()));
    let (dom, log) = run_with_timeout(cmd, scratch.path(), Duration::from_secs(120));
    fs::remove_file(&probed).unwrap();

    let start = dom
        .find(r#"<pre id="idmlp-browser-check">"#)
        .unwrap_or_else(|| panic!("the probe did not report (no load event?); DOM:\n{dom}"));
    let body = &dom[start..];
    let body = &body[body.find('>').unwrap() + 1..body.find("</pre>").unwrap()];
    let mut check = PageCheck { images: Vec::new(), errors: Vec::new() };
    for line in body.lines().map(unescape) {
        if let Some(rest) = line.strip_prefix("image ") {
            let (state, what) = rest.split_once(' ').unwrap();
            check.images.push((state == "ok", what.to_string()));
        } else if let Some(rest) = line.strip_prefix("error ") {
            check.errors.push(rest.to_string());
        }
    }
    // Chromium logs every console message of the page as `…:CONSOLE(…)] "text", source: …`.
    check.errors.extend(log.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string));
    check
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// A report written by a real `idmlp interpret` run: a 3-layer model trained for a few
/// steps on the MNIST sample, interpreted on its test split. Made once per test run.
fn real_report_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-report");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let train = Dataset::load(MNIST_SAMPLE, Split::Train).unwrap();
        let arch = Architecture::new(train.pixels(), train.classes(), 3);
        let mut trainer = Trainer::new(
            Mlp::new(arch, Init::default(), 0),
            OptimizerKind::Momentum { lr: 0.01, mu: 0.9 },
        );
        let batch = std::num::NonZeroUsize::new(100).unwrap();
        let mut stream = BatchStream::new(&train, batch, LastBatch::Drop, 0);
        let (mut x, mut y) = (vec![0.0; 100 * arch.inputs], vec![0u32; 100]);
        for _ in 0..20 {
            stream.next_batch(&mut x, &mut y).unwrap();
            trainer.step(&x, &y);
        }
        let model = dir.join("model.idmlp");
        checkpoint::save(&model, trainer.mlp(), Init::default()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_idmlp"))
            .args(["interpret", "--model"])
            .arg(&model)
            .args(["--data", MNIST_SAMPLE, "--samples", "6", "--out"])
            .arg(dir.join("report"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "idmlp interpret failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join("report")
    })
}

/// A copy of the real report's directory, for tests that damage it.
fn copy_of_report(name: &str) -> TempDir {
    let tmp = TempDir::new(name);
    for entry in fs::read_dir(real_report_dir()).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

#[test]
fn the_report_renders_in_chromium_every_image_decodes_and_nothing_errors() {
    let check = check_in_browser(&real_report_dir().join("report.html"));
    eprintln!("{check:#?}"); // shown with --nocapture
    // contributions.png, likelihood.png and layer_accuracy.svg at least.
    check.verify(3).unwrap_or_else(|e| panic!("{e}\n{check:#?}"));
    for name in ["contributions.png", "likelihood.png", "layer_accuracy.svg"] {
        assert!(
            check.images.iter().any(|(ok, what)| *ok && what.ends_with(name)),
            "{name} not shown: {check:#?}"
        );
    }
}

#[test]
fn the_check_fails_when_an_image_reference_is_broken() {
    let tmp = copy_of_report("browser-broken-ref");
    let page = tmp.path().join("report.html");
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("src=\"likelihood.png\""), "the report no longer shows likelihood.png");
    fs::write(&page, html.replace("src=\"likelihood.png\"", "src=\"likelihood-missing.png\""))
        .unwrap();
    let check = check_in_browser(&page);
    let err = check.verify(3).expect_err("a missing image must fail the check");
    assert!(err.contains("image did not decode: 0x0 likelihood-missing.png"), "{err}");
    assert!(err.contains("page error: failed to load <img> likelihood-missing.png"), "{err}");
}

#[test]
fn the_check_fails_when_an_image_is_corrupt() {
    let tmp = copy_of_report("browser-corrupt");
    let png = tmp.path().join("contributions.png");
    let bytes = fs::read(&png).unwrap();
    fs::write(&png, &bytes[..bytes.len().min(40)]).unwrap(); // header only, no pixels
    let err = check_in_browser(&tmp.path().join("report.html"))
        .verify(3)
        .expect_err("an undecodable image must fail the check");
    assert!(err.contains("image did not decode: 0x0 contributions.png"), "{err}");
}

#[test]
fn the_check_fails_when_the_page_logs_a_console_error() {
    let tmp = copy_of_report("browser-console");
    let page = tmp.path().join("report.html");
    let html = fs::read_to_string(&page).unwrap();
    let html =
        html.replacen("</body>", "<script>console.error('broken on purpose')</script></body>", 1);
    fs::write(&page, html).unwrap();
    let err = check_in_browser(&page).verify(3).expect_err("a console error must fail the check");
    assert!(err.contains("page error: console.error broken on purpose"), "{err}");
}
