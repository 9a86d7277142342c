//! The web app in real headless browsers — Chromium and Firefox — driven
//! over WebDriver (chromedriver, geckodriver), against two real `meshwork`
//! daemons: a post typed in one browser appears in the other without a
//! reload; a post that is an XSS attempt shows as text and runs nothing; a
//! file uploaded in one browser is listed in the other and its download
//! link saves it byte-identical; a file too large for the node's disk is
//! refused before it is sent; with nobody online holding a file, or the
//! daemon gone, the page says so; an upload posts itself with the file
//! linked; a shared image shows as the thumbnail the node made, opens whole
//! over the page, and one the node refuses shows as a 📎; an unread badge and the title's count appear and clear; a login
//! holds across a restart of the daemon and in a new tab; a search from the
//! header finds and marks; SIGTERM with tabs open stops the daemon; without
//! a session the app shows the way in and the API answers 401. Screenshots of each
//! page go to `target/tmp/screenshots/`.
//!
//! Needs Debian's `chromium`, `chromium-driver` and `firefox-esr`, and
//! `geckodriver` (crates.io): `.ci/run` installs them and runs this suite
//! with `cargo test --test browser -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    /// The browser and its WebDriver server, or why they are missing.
    fn binaries(self) -> (PathBuf, PathBuf) {
        let (browser, driver) = match self {
            Kind::Chromium => (PathBuf::from("/usr/bin/chromium"), on_path("chromedriver")),
            Kind::Firefox => (
                PathBuf::from("/usr/bin/firefox-esr"),
                on_path("geckodriver"),
            ),
        };
        assert!(
            browser.exists(),
            "{} is missing: install Debian's chromium, chromium-driver and firefox-esr (.ci/run does)",
            browser.display()
        );
        (browser, driver)
    }

    /// What the browser is asked to be: headless, quiet on a closed network,
    /// saving downloads in `downloads` without asking.
    fn capabilities(self, binary: &Path, profile: &Path, downloads: &Path) -> serde_json::Value {
        match self {
            Kind::Chromium => json!({ "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    // Notifications allowed, as a user who opted in.
                    "profile.default_content_setting_values.notifications": 1,
                },
            }}),
            Kind::Firefox => json!({ "moz:firefoxOptions": {
                "binary": binary,
                "args": ["-headless", "--width=1280", "--height=900"],
                "prefs": {
                    "browser.download.folderList": 2,
                    "browser.download.dir": downloads,
                    "browser.download.useDownloadDir": true,
                    "browser.download.always_ask_before_handling_new_types": false,
                    "browser.helperApps.neverAsk.saveToDisk": "application/pdf,text/plain,application/octet-stream",
                    "pdfjs.disabled": true,
                    "app.update.auto": false,
                    "datareporting.policy.dataSubmissionEnabled": false,
                    "toolkit.telemetry.enabled": false,
                    "browser.safebrowsing.downloads.enabled": false,
                    // Notifications allowed, as a user who opted in.
                    "permissions.default.desktop-notification": 1,
                },
            }}),
        }
    }
}

/// `name` in a directory of PATH, or in cargo's bin directory (where `cargo
/// install geckodriver` puts it).
fn on_path(name: &str) -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is missing (.ci/run installs it)"))
}

/// One headless browser and the WebDriver server driving it (one each:
/// geckodriver serves a single session); the server is killed when dropped.
struct Browser {
    client: Client,
    driver: Child,
    kind: Kind,
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A fresh browser for `who`, its profile and downloads under `dir`.
    async fn open(kind: Kind, dir: &Path, who: &str) -> Browser {
        let (binary, driver_bin) = kind.binaries();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the WebDriver server starts");
        until("the WebDriver server listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let profile = dir.join(format!("profile-{who}"));
        let caps = match kind.capabilities(&binary, &profile, &downloads(dir, who)) {
            serde_json::Value::Object(caps) => caps,
            _ => unreachable!("capabilities are an object"),
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        client.set_window_size(1280, 900).await.unwrap();
        Browser {
            client,
            driver,
            kind,
        }
    }

    /// Ends the session (the browser quits), then the server.
    async fn close(self) {
        self.client.clone().close().await.unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file = match self.kind {
            Kind::Chromium => format!("{name}.png"),
            Kind::Firefox => format!("firefox-{name}.png"),
        };
        std::fs::write(dir.join(file), png).unwrap();
    }
}

/// Where `who`'s browser saves downloads.
fn downloads(dir: &Path, who: &str) -> PathBuf {
    dir.join(format!("downloads-{who}"))
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

/// Clicks the element `css` matches.
async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the element `css` matches.
async fn type_into(b: &Client, css: &str, text: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until an element `css` matches shows exactly `text`.
async fn until_shows(b: &Client, css: &str, text: &str, what: &str) {
    eventually(what, || async {
        texts(b, css).await.iter().any(|t| t == text)
    })
    .await;
}

/// Picks the option labelled `label` of the select `css`.
async fn pick(b: &Client, css: &str, label: &str) {
    for option in b
        .find_all(Locator::Css(&format!("{css} option")))
        .await
        .unwrap()
    {
        if option.text().await.unwrap() == label {
            option.click().await.unwrap();
            return;
        }
    }
    panic!("{css} has no option {label}");
}

/// Shares `file` through the files page's file input.
async fn upload(b: &Client, file: &Path) {
    type_into(b, "#upload", file.to_str().unwrap()).await;
}

/// Waits until the open files page lists `name` (live, no reload).
async fn until_listed(b: &Client, name: &str) {
    eventually(&format!("the files page lists {name}"), || async {
        texts(b, "#files td a").await.iter().any(|t| t == name)
    })
    .await;
}

/// Presses and releases each key of `keys` (WebDriver key codes allowed).
async fn press(b: &Client, keys: &str) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys.chars() {
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
    }
    b.perform_actions(actions).await.unwrap();
}

/// Presses Tab until the element with id `id` has the focus.
async fn tab_to(b: &Client, id: &str) {
    for _ in 0..40 {
        let focused = b.active_element().await.unwrap();
        if focused.attr("id").await.unwrap().as_deref() == Some(id) {
            return;
        }
        press(b, "\u{E004}").await;
    }
    panic!("Tab never reached #{id}");
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
    // The session token went from the address bar into the tab's storage.
    let now = b.current_url().await.unwrap();
    assert_eq!(
        now.fragment(),
        None,
        "the token is not left in the address bar"
    );
    base.origin().ascii_serialization()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs headless browsers: .ci/run installs them and runs this suite"]
async fn chromium_two_browsers_share_a_feed_and_a_file_live() {
    two_browsers_share_a_feed_and_a_file_live(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs headless browsers: .ci/run installs them and runs this suite"]
async fn firefox_two_browsers_share_a_feed_and_a_file_live() {
    two_browsers_share_a_feed_and_a_file_live(Kind::Firefox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs headless browsers: .ci/run installs them and runs this suite"]
async fn chromium_without_a_session_the_app_shows_the_way_in_and_the_api_refuses() {
    without_a_session_the_app_shows_the_way_in_and_the_api_refuses(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs headless browsers: .ci/run installs them and runs this suite"]
async fn firefox_without_a_session_the_app_shows_the_way_in_and_the_api_refuses() {
    without_a_session_the_app_shows_the_way_in_and_the_api_refuses(Kind::Firefox).await;
}

async fn two_browsers_share_a_feed_and_a_file_live(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let (ada, bob, mut ada_daemon, _b) = office(dir.path());
    let ab = Browser::open(kind, dir.path(), "ada").await;
    let bb = Browser::open(kind, dir.path(), "bob").await;
    let ada_url = log_in(&ab, &ada).await;
    let bob_url = log_in(&bb, &bob).await;
    // The admin's invite, as text and as a QR code.
    click(&ab, "#invite").await;
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
    ab.screenshot("workspace").await;

    // The admin makes a department and moves Bob into it; Bob's app shows
    // it without a reload.
    type_into(&ab, "#new-dept", "Design").await;
    click(&ab, "#create-dept").await;
    until_shows(
        &ab,
        "#where option",
        "Design",
        "the department can be picked",
    )
    .await;
    pick(&ab, "#who", "Bob").await;
    pick(&ab, "#where", "Design").await;
    click(&ab, "#add-to-dept").await;
    until_shows(&bb, "nav a", "Design", "Bob's app lists Design, live").await;

    // A direct message from Bob appears in Ada's open conversation.
    let ada_id = json(&ada, &["status", "--json"])["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = json(&bob, &["status", "--json"])["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ab.goto(&format!("{ada_url}/#/dms/{bob_id}")).await.unwrap();
    bb.goto(&format!("{bob_url}/#/dms/{ada_id}")).await.unwrap();
    until_shows(&ab, "#dm-presence", "Bob is online.", "Ada sees Bob online").await;
    type_into(&bb, "#dm-text", "just between us").await;
    click(&bb, "#dm-send").await;
    until_shows(
        &ab,
        "#messages .body",
        "just between us",
        "Ada sees Bob's message, live",
    )
    .await;
    // Ada reacts to it in the conversation; Bob's node has the reaction.
    click(&ab, "#messages button[aria-label='React 👍']").await;
    eventually("Bob's node holds Ada's reaction", || async {
        json(&bob, &["dms", "Ada", "--json"])[0]["reactions"]["👍"]
            .as_array()
            .is_some_and(|who| who.len() == 1)
    })
    .await;
    ab.screenshot("dms").await;
    // Her list of conversations shows Bob's last message under his name.
    ab.goto(&format!("{ada_url}/#/dms")).await.unwrap();
    eventually("Ada's conversations show Bob's last message", || async {
        texts(&ab, "#conversations .last")
            .await
            .first()
            .is_some_and(|t| t.starts_with("just between us · "))
    })
    .await;
    until_shows(&bb, "nav a", "Research", "Bob's app lists him in Research").await;

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
    click(&ab, "button.mention").await;
    let compose = ab.find(Locator::Css("#compose")).await.unwrap();
    compose.send_keys("hello from Ada's browser").await.unwrap();
    click(&ab, "#send").await;
    until_shows(
        &bb,
        "#threads .body",
        "@Bob hello from Ada's browser",
        "Bob sees Ada's post, live",
    )
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
    click(&ab, "#send").await;
    until_shows(&bb, "#threads .body", xss, "Bob sees the markup as text").await;
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
    bb.screenshot("feed").await;

    // The keyboard alone: Tab to the compose box, type, Tab to Post, Enter.
    tab_to(&bb, "compose").await;
    press(&bb, "typed with the keyboard alone").await;
    tab_to(&bb, "send").await;
    press(&bb, "\u{E007}").await;
    until_shows(
        &ab,
        "#threads .body",
        "typed with the keyboard alone",
        "Ada sees the post Bob typed with the keyboard",
    )
    .await;
    // Phone-sized: the navigation folds behind the menu button.
    bb.set_window_size(390, 844).await.unwrap();
    let nav = bb.find(Locator::Css("nav")).await.unwrap();
    let menu = bb.find(Locator::Css("#menu")).await.unwrap();
    assert!(menu.is_displayed().await.unwrap() && !nav.is_displayed().await.unwrap());
    bb.screenshot("feed-phone").await;
    menu.click().await.unwrap();
    assert!(
        nav.is_displayed().await.unwrap(),
        "the menu opens the navigation"
    );
    menu.click().await.unwrap();
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
    upload(&ab, &file).await;
    until_listed(&bb, "roadmap.pdf").await;
    bb.screenshot("files").await;
    // Bob clicks it: the browser saves it in its download directory.
    click(&bb, "#files td a").await;
    let saved = downloads(dir.path(), "bob").join("roadmap.pdf");
    eventually("Bob's browser has saved the file", || async {
        std::fs::metadata(&saved).is_ok_and(|m| m.len() == bytes.len() as u64)
    })
    .await;
    assert!(
        std::fs::read(&saved).unwrap() == bytes,
        "the download differs from the upload"
    );
    // The upload said so in the feed, the file attached as a link.
    bb.goto(&format!("{bob_url}/#/feed/Research"))
        .await
        .unwrap();
    until_shows(
        &bb,
        "#threads .attachment a",
        "roadmap.pdf",
        "Bob's feed links the file Ada shared",
    )
    .await;

    // Bob attaches the roadmap to a post of his own from the composer.
    pick(&bb, "#attach", "📎 roadmap.pdf").await;
    let compose = bb.find(Locator::Css("#compose")).await.unwrap();
    compose
        .send_keys("notes on the roadmap, attached")
        .await
        .unwrap();
    click(&bb, "#send").await;
    eventually("Ada sees Bob's post with the file attached", || async {
        let thread = json(&ada, &["feed", "Research", "--json"])[0].clone();
        thread["body"] == "notes on the roadmap, attached"
            && thread["attachments"]
                .as_object()
                .is_some_and(|a| a.values().any(|f| f["name"] == "roadmap.pdf"))
    })
    .await;

    // Bob searches from the box in the header: the file by its name, the
    // posts by their words, each match marked; markup found is text.
    type_into(&bb, "#q", "roadmap\u{E007}").await;
    eventually("Bob's search lists the file and both posts", || async {
        let kinds = texts(&bb, "#hits .meta").await;
        kinds
            .iter()
            .any(|k| k.starts_with("File by Ada · in Research"))
            && kinds.iter().filter(|k| k.starts_with("Post by")).count() == 2
    })
    .await;
    assert!(
        texts(&bb, "#hits mark")
            .await
            .iter()
            .all(|m| m == "roadmap"),
        "only the matched word is marked"
    );
    bb.screenshot("search").await;
    bb.find(Locator::Css("#q"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(&bb, "#q", "onerror\u{E007}").await;
    until_shows(&bb, "#hits .body", xss, "the markup post is found, as text").await;
    assert!(
        bb.find_all(Locator::Css("#hits img"))
            .await
            .unwrap()
            .is_empty(),
        "no element was made from the hit"
    );
    bb.goto(&format!("{bob_url}/#/feed/Research"))
        .await
        .unwrap();

    // Bob uploads a new file from the composer: shared into the library
    // without a post of its own, then attached to the post he writes.
    let minutes = dir.path().join("minutes.txt");
    std::fs::write(&minutes, b"decisions: ship it").unwrap();
    type_into(&bb, "#compose-file", minutes.to_str().unwrap()).await;
    until_shows(
        &bb,
        "#compose-status",
        "minutes.txt is attached.",
        "the composer says the upload is attached",
    )
    .await;
    type_into(&bb, "#compose", "minutes from today").await;
    click(&bb, "#send").await;
    eventually(
        "Ada sees the post with the uploaded file, and no share post",
        || async {
            let feed = json(&ada, &["feed", "Research", "--json"]);
            let thread = &feed[0];
            thread["body"] == "minutes from today"
                && thread["attachments"]
                    .as_object()
                    .is_some_and(|a| a.values().any(|f| f["name"] == "minutes.txt"))
                && !feed.to_string().contains("shared minutes.txt")
        },
    )
    .await;

    // An image shared into the department shows in the feed as the
    // thumbnail Bob's node made of it (a 1200×800 PNG: 320×213); clicking
    // it shows the whole image over the page, and Escape closes it.
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(1200, 800, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 99])
    })
    .save(&photo)
    .unwrap();
    ok(&ada, &["share", "Research", photo.to_str().unwrap()]);
    eventually("Bob's feed shows the image's thumbnail", || async {
        let shown = bb
            .execute(
                "const i = document.querySelector('#threads img.preview'); \
                 return !!i && i.complete && i.src.includes('/v1/web/thumb/') \
                   && i.naturalWidth === 320 && i.naturalHeight === 213 \
                   && i.alt === 'photo.png';",
                vec![],
            )
            .await;
        shown.is_ok_and(|v| v == serde_json::json!(true))
    })
    .await;
    bb.screenshot("feed-thumbnail").await;
    click(&bb, "#threads button.thumbnail").await;
    eventually("the whole image shows over the page", || async {
        let shown = bb
            .execute(
                "const i = document.querySelector('dialog.lightbox[open] img'); \
                 return !!i && i.complete && i.naturalWidth === 1200;",
                vec![],
            )
            .await;
        shown.is_ok_and(|v| v == serde_json::json!(true))
    })
    .await;
    bb.screenshot("lightbox").await;
    press(&bb, "\u{E00C}").await;
    eventually("Escape closes the image", || async {
        bb.find_all(Locator::Css("dialog.lightbox"))
            .await
            .is_ok_and(|d| d.is_empty())
    })
    .await;
    // Markup named as a PNG: Bob's node refuses its thumbnail, and the
    // page shows a 📎 rather than a broken image.
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, b"<html><script>alert(1)</script></html>").unwrap();
    ok(&ada, &["share", "Research", fake.to_str().unwrap()]);
    eventually("the refused image shows as a 📎", || async {
        let shown = bb
            .execute(
                "const a = [...document.querySelectorAll('#threads .attachment')] \
                   .find((s) => s.textContent.includes('fake.png')); \
                 return !!a && !a.querySelector('img') && a.textContent.startsWith('📎');",
                vec![],
            )
            .await;
        shown.is_ok_and(|v| v == serde_json::json!(true))
    })
    .await;

    // Unread: Ada posts while Bob looks at the files; his sidebar counts
    // it, his title says so, and opening the feed clears both.
    bb.goto(&format!("{bob_url}/#/files/Research"))
        .await
        .unwrap();
    // Every notification the page makes is also recorded, to be read back.
    bb.execute(
        "window.__shown = []; const Real = window.Notification; \
         window.Notification = class extends Real { constructor(t, o) { \
           super(t, o); window.__shown.push(`${t}: ${o && o.body}`); } };",
        vec![],
    )
    .await
    .unwrap();
    ok(&ada, &["post", "Research", "@Bob the roadmap is up"]);
    until_shows(&bb, "nav a .badge", "1", "Bob's sidebar counts Ada's post").await;
    assert_eq!(bb.title().await.unwrap(), "(1) Meshwork");
    // With notifications allowed, the mention and a direct message notify.
    ok(&ada, &["dm", "Bob", "coffee?"]);
    eventually(
        "Bob's browser notified the mention and the message",
        || async {
            let shown = bb.execute("return window.__shown", vec![]).await.unwrap();
            let shown: Vec<String> = serde_json::from_value(shown).unwrap_or_default();
            shown.contains(&"Ada mentioned you in Research: @Bob the roadmap is up".to_owned())
                && shown.contains(&"Message from Ada: coffee?".to_owned())
        },
    )
    .await;
    // The mention is listed on its own page, with where it was written.
    bb.goto(&format!("{bob_url}/#/mentions")).await.unwrap();
    until_shows(
        &bb,
        "#mentions .body",
        "@Bob the roadmap is up",
        "Bob's mentions list Ada's post",
    )
    .await;
    bb.goto(&format!("{bob_url}/#/feed/Research"))
        .await
        .unwrap();
    // What is left is the message; opening the conversation clears it.
    eventually(
        "opening the feed clears its badge and the mention's",
        || async { texts(&bb, "nav a .badge").await == ["1"] },
    )
    .await;
    assert_eq!(bb.title().await.unwrap(), "(1) Meshwork");
    bb.goto(&format!("{bob_url}/#/dms/{ada_id}")).await.unwrap();
    eventually("opening the conversation clears the last badge", || async {
        texts(&bb, "nav a .badge").await.is_empty()
    })
    .await;
    assert_eq!(bb.title().await.unwrap(), "Meshwork");
    bb.goto(&format!("{bob_url}/#/files/Research"))
        .await
        .unwrap();

    // A file larger than Ada's disk can take (sparse: it costs nothing) is
    // refused before its bytes are sent, and her app says why.
    let huge = dir.path().join("archive.iso");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(fs2::available_space(dir.path()).unwrap() + (8 << 30))
        .unwrap();
    upload(&ab, &huge).await;
    eventually("Ada's app says the file is too large", || async {
        texts(&ab, "#banner")
            .await
            .iter()
            .any(|t| t.contains("\"archive.iso\"") && t.contains("too large"))
    })
    .await;
    ab.screenshot("files-too-large").await;
    assert!(!texts(&ab, "#files td a")
        .await
        .iter()
        .any(|t| t == "archive.iso"));

    // A second file, then Ada's daemon is gone: Bob's click says why he
    // cannot have it.
    let later = dir.path().join("later.txt");
    std::fs::write(&later, b"only Ada has this").unwrap();
    upload(&ab, &later).await;
    until_listed(&bb, "later.txt").await;
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
    bb.screenshot("files-unreachable").await;
    // Bob's conversation with Ada says she is offline now.
    bb.goto(&format!("{bob_url}/#/dms/{ada_id}")).await.unwrap();
    until_shows(
        &bb,
        "#dm-presence",
        "Ada is offline: your messages reach them when you are both online.",
        "Bob sees Ada offline",
    )
    .await;
    // And Ada's app, whose daemon that was, says so.
    eventually("Ada's app says her daemon is gone", || async {
        texts(&ab, "#banner")
            .await
            .iter()
            .any(|t| t.contains("connection to the daemon"))
    })
    .await;
    // Her daemon starts again (same home): same port, and her login holds —
    // after a reload, and in a new tab, without `meshwork open`.
    let mut ada_again = daemon(&ada);
    assert_eq!(
        format!("http://{}", api_addr(&ada)),
        ada_url,
        "the same port"
    );
    ab.refresh().await.unwrap();
    until_shows(
        &ab,
        "#ws",
        "Acme",
        "Ada is still logged in after the restart",
    )
    .await;
    let tab = ab.new_window(true).await.unwrap();
    ab.switch_to_window(tab.handle).await.unwrap();
    ab.goto(&format!("{ada_url}/#/feed/Research"))
        .await
        .unwrap();
    until_shows(&ab, "h1", "Research", "a new tab is logged in too").await;

    // The other pages render.
    for (page, name) in [("#/pins", "pins")] {
        bb.goto(&format!("{bob_url}/{page}")).await.unwrap();
        eventually(&format!("the {name} page"), || async {
            !texts(&bb, "h1").await.is_empty()
        })
        .await;
        bb.screenshot(name).await;
    }
    // Bob renames himself in his app; Ada's node hears of it.
    bb.goto(&format!("{bob_url}/#/")).await.unwrap();
    let field = bb.find(Locator::Css("#my-name")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("Bob Okafor").await.unwrap();
    click(&bb, "#rename-me").await;
    until_shows(&bb, "#me", "Bob Okafor", "Bob's app shows his new name").await;
    eventually("Ada's node knows Bob by his new name", || async {
        json(&ada, &["members", "--json"])
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "Bob Okafor"))
    })
    .await;

    // Bob logs out: the app shows the way back in, and a reload does not
    // bring the session back.
    click(&bb, "#logout").await;
    until_shows(&bb, "h1", "Not logged in", "Bob is logged out").await;
    bb.refresh().await.unwrap();
    until_shows(&bb, "h1", "Not logged in", "Bob stays logged out").await;

    // SIGTERM with Ada's tabs open (each follows the live events): her
    // daemon stops promptly, and her app says it is gone.
    let asked = Instant::now();
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(ada_again.0.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let exited = ada_again.0.wait().unwrap();
    let took = asked.elapsed();
    println!("Ada's daemon stopped {took:?} after SIGTERM, two tabs open");
    assert!(exited.success(), "{exited:?}");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    eventually("Ada's open tab says her daemon is gone", || async {
        texts(&ab, "#banner")
            .await
            .iter()
            .any(|t| t.contains("connection to the daemon"))
    })
    .await;
    ab.close().await;
    bb.close().await;
}

async fn without_a_session_the_app_shows_the_way_in_and_the_api_refuses(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ada");
    ok(&home, &["init", "--name", "Ada"]);
    let _d = daemon(&home);
    let base = format!("http://{}", api_addr(&home));
    let b = Browser::open(kind, dir.path(), "anon").await;
    b.goto(&base).await.unwrap();
    until_shows(&b, "h1", "Not logged in", "the app says how to log in").await;
    let status = b
        .execute_async(
            "const [done] = arguments; fetch('/v1/status').then((r) => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    b.close().await;
}
