//! The web app in real headless Chromium, driven over WebDriver
//! (chromedriver), against two real `meshwork` daemons: a post typed in one
//! browser appears in the other without a reload; a post that is an XSS
//! attempt shows as text and runs nothing; a file uploaded in one browser is
//! listed in the other and downloads byte-identical; without a session the
//! app shows the way in and the API answers 401. Screenshots of each page
//! go to `target/tmp/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`: `.ci/run` installs them
//! and runs this suite with `cargo test --test browser -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::bin::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        until("chromedriver listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A fresh headless browser with its own profile.
    async fn browser(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` in the browser (every 100 ms, up to 20 s).
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The texts of every element `css` matches.
async fn texts(b: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for el in b.find_all(Locator::Css(css)).await.unwrap_or_default() {
        if let Ok(t) = el.text().await {
            out.push(t);
        }
    }
    out
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Ada (admin) and Bob in "Research", each with a daemon (Bob's does not
/// volunteer to pin: what he has, he asked for); returns their homes and
/// the daemons.
fn office(dir: &Path) -> (PathBuf, PathBuf, Daemon, Daemon) {
    let (ada, bob) = (dir.join("ada"), dir.join("bob"));
    ok(&ada, &["init", "--name", "Ada"]);
    ok(&bob, &["init", "--name", "Bob"]);
    let a = daemon(&ada);
    let b = LOCAL.daemon(&bob, &[LOOPBACK_ARGS, &["--no-volunteer"]].concat());
    ok(&ada, &["workspace", "create", "Acme"]);
    ok(&ada, &["dept", "create", "Research"]);
    ok(&ada, &["dept", "add", "Ada", "Research"]);
    let token = ok(&ada, &["invite", "--dept", "Research"]);
    ok(&bob, &["join", token.trim()]);
    (ada, bob, a, b)
}

/// Logs `b` into the daemon of `home` through a one-time link; returns the
/// app's base URL.
async fn log_in(b: &Client, home: &Path) -> String {
    let link = ok(home, &["open", "--no-browser"]);
    b.goto(link.trim()).await.unwrap();
    let base = b.current_url().await.unwrap();
    assert_eq!(base.path(), "/", "the login link leads to the app");
    eventually("the app shows the workspace", || async {
        texts(b, "#ws").await.iter().any(|t| t == "Acme")
    })
    .await;
    base.as_str().trim_end_matches('/').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: .ci/run installs them and runs it"]
async fn two_browsers_share_a_feed_and_a_file_live() {
    let dir = tempfile::tempdir().unwrap();
    let (ada, bob, mut ada_daemon, _b) = office(dir.path());
    let driver = Driver::start();
    let ab = driver.browser(&dir.path().join("profile-ada")).await;
    let bb = driver.browser(&dir.path().join("profile-bob")).await;
    let ada_url = log_in(&ab, &ada).await;
    // The admin's invite, as text and as a QR code.
    ab.find(Locator::Css("#invite"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the invite shows as text and QR code", || async {
        let text = texts(&ab, "#invite-text").await;
        text.iter().any(|t| t.starts_with("mw1-"))
            && !ab
                .find_all(Locator::Css("#invite-qr"))
                .await
                .unwrap()
                .is_empty()
    })
    .await;
    screenshot(&ab, "workspace").await;
    let bob_url = log_in(&bb, &bob).await;
    eventually("Bob's app lists him in Research", || async {
        texts(&bb, "nav a").await.iter().any(|t| t == "Research")
    })
    .await;

    // Ada posts; Bob's open feed shows it without a reload.
    ab.goto(&format!("{ada_url}/#/feed/Research"))
        .await
        .unwrap();
    bb.goto(&format!("{bob_url}/#/feed/Research"))
        .await
        .unwrap();
    eventually("Bob's feed page is up", || async {
        texts(&bb, "#threads + div")
            .await
            .iter()
            .any(|t| !t.is_empty())
    })
    .await;
    // The mention button puts "@Bob " in; Ada types the rest.
    ab.find(Locator::Css("button.mention"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let compose = ab.find(Locator::Css("#compose")).await.unwrap();
    compose.send_keys("hello from Ada's browser").await.unwrap();
    ab.find(Locator::Css("#send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("Bob sees Ada's post, live", || async {
        texts(&bb, "#threads .body")
            .await
            .iter()
            .any(|t| t == "@Bob hello from Ada's browser")
    })
    .await;
    let mentions = json(&bob, &["feed", "--mentions", "--json"]);
    assert!(
        mentions.to_string().contains("hello from Ada's browser"),
        "the @mention reached Bob: {mentions}"
    );

    // Markup in a post is text: it shows as typed and runs nothing.
    let xss = "<img src=x onerror=alert(1)>";
    let compose = ab.find(Locator::Css("#compose")).await.unwrap();
    compose.send_keys(xss).await.unwrap();
    ab.find(Locator::Css("#send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("Bob sees the markup as text", || async {
        texts(&bb, "#threads .body").await.iter().any(|t| t == xss)
    })
    .await;
    for b in [&ab, &bb] {
        assert!(
            b.find_all(Locator::Css("#threads img"))
                .await
                .unwrap()
                .is_empty(),
            "no element was made from the post"
        );
        assert!(b.get_alert_text().await.is_err(), "no script ran");
    }
    screenshot(&bb, "feed").await;
    bb.set_window_size(390, 844).await.unwrap();
    screenshot(&bb, "feed-phone").await;
    bb.set_window_size(1280, 900).await.unwrap();

    // Ada uploads a file; Bob's list shows it live and it downloads
    // byte-identical through his browser session.
    let bytes: Vec<u8> = (0..(700 * 1024 + 3u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let file = dir.path().join("roadmap.pdf");
    std::fs::write(&file, &bytes).unwrap();
    ab.goto(&format!("{ada_url}/#/files/Research"))
        .await
        .unwrap();
    bb.goto(&format!("{bob_url}/#/files/Research"))
        .await
        .unwrap();
    eventually("Bob's files page is up", || async {
        !bb.find_all(Locator::Css("#files thead"))
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    ab.find(Locator::Css("#upload"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    eventually("Bob's list shows the file, live", || async {
        texts(&bb, "#files td a")
            .await
            .iter()
            .any(|t| t == "roadmap.pdf")
    })
    .await;
    screenshot(&bb, "files").await;
    let href = bb
        .find(Locator::Css("#files td a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a download link");
    let fetched = bb
        .execute_async(
            r#"const [href, done] = arguments;
               fetch(href).then(async (r) => {
                 const b = new Uint8Array(await r.arrayBuffer());
                 let s = "";
                 for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
                 done({ status: r.status, type: r.headers.get("content-disposition"), body: btoa(s) });
               });"#,
            vec![Value::String(href)],
        )
        .await
        .unwrap();
    assert_eq!(fetched["status"], 200);
    assert!(
        fetched["type"]
            .as_str()
            .unwrap_or("")
            .contains("roadmap.pdf"),
        "{fetched}"
    );
    let body = base64::engine::general_purpose::STANDARD
        .decode(fetched["body"].as_str().unwrap())
        .unwrap();
    assert!(body == bytes, "the download differs from the upload");

    // A second file, then Ada's daemon is gone: Bob's click says why he
    // cannot have it.
    let later = dir.path().join("later.txt");
    std::fs::write(&later, b"only Ada has this").unwrap();
    ab.find(Locator::Css("#upload"))
        .await
        .unwrap()
        .send_keys(later.to_str().unwrap())
        .await
        .unwrap();
    eventually("Bob's list shows the second file", || async {
        texts(&bb, "#files td a")
            .await
            .iter()
            .any(|t| t == "later.txt")
    })
    .await;
    ada_daemon.kill9();
    for link in bb.find_all(Locator::Css("#files td a")).await.unwrap() {
        if link.text().await.unwrap() == "later.txt" {
            link.click().await.unwrap();
        }
    }
    eventually("Bob's app says no reachable peer has it", || async {
        texts(&bb, "#banner")
            .await
            .iter()
            .any(|t| t.contains("no reachable peer has"))
    })
    .await;
    screenshot(&bb, "files-unreachable").await;

    // The other pages render.
    for (page, name) in [("#/dms", "dms"), ("#/pins", "pins")] {
        bb.goto(&format!("{bob_url}/{page}")).await.unwrap();
        eventually(&format!("the {name} page"), || async {
            !texts(&bb, "h1").await.is_empty()
        })
        .await;
        screenshot(&bb, name).await;
    }
    ab.close().await.unwrap();
    bb.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: .ci/run installs them and runs it"]
async fn without_a_session_the_app_shows_the_way_in_and_the_api_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ada");
    ok(&home, &["init", "--name", "Ada"]);
    let _d = daemon(&home);
    let api: Value =
        serde_json::from_slice(&std::fs::read(home.join("api.json")).unwrap()).unwrap();
    let base = format!("http://{}", api["addr"].as_str().unwrap());
    let driver = Driver::start();
    let b = driver.browser(&dir.path().join("profile")).await;
    b.goto(&base).await.unwrap();
    eventually("the app says how to log in", || async {
        texts(&b, "h1").await.iter().any(|t| t == "Not logged in")
    })
    .await;
    let status = b
        .execute_async(
            "const [done] = arguments; fetch('/v1/status').then((r) => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    b.close().await.unwrap();
}
