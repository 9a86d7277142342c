//! The web app's routes on a node's real control API, over raw HTTP, with
//! the node's clock moved by hand: a session ends after `SESSION_IDLE_MS`
//! without a request, each request with its token keeps it alive, a
//! request that only carries its cookie does not, and a login link expires
//! unredeemed; a session's event stream ends with it; a download whose blob
//! turns out corrupt is cut short, never passed off as the whole file,
//! and keeps its sandboxing CSP; a browser session cannot name local
//! paths; malformed requests are answered in JSON; the icon is public; a
//! session and the API's port outlive a restart of the daemon, and a
//! logout outlives it too; a file is found by id (or by a name only it has)
//! in one request across departments, and an unknown or empty id is
//! answered with a clear JSON error; an image's thumbnail is made once,
//! kept until its blob is collected, and refused (in JSON) for anything
//! that is not the image it claims to be.

mod common;

use std::time::Duration;

use common::*;
use meshwork::node::api::{self, SESSION_IDLE_MS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request over a fresh connection; the whole answer.
async fn http(addr: &str, head: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("{head}\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}

/// One HTTP/1.1 request with a body over a fresh connection; the whole
/// answer.
async fn http_body(addr: &str, head: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}

/// The `{"error": …}` an answer's JSON body carries, checking that it is
/// JSON and says so.
fn json_error(answer: &str) -> String {
    assert!(
        header(answer, "content-type").starts_with("application/json"),
        "{answer}"
    );
    let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    let why = v["error"].as_str().expect("an error message").to_owned();
    assert!(!why.is_empty(), "{answer}");
    why
}

/// Sends `head` (a GET) and returns the connection once the answer's
/// head has been read, with that head.
async fn open_stream(addr: &str, head: &str) -> (tokio::net::TcpStream, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "the answer ended early"
        );
        got.push(byte[0]);
    }
    (s, String::from_utf8(got).unwrap())
}

/// Reads what is left of a connection, failing the test if it does not end.
async fn rest(mut s: tokio::net::TcpStream) -> Vec<u8> {
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut body))
        .await
        .expect("the connection ends")
        .ok();
    body
}

/// `node`'s control API on a free loopback port, serving until the test
/// ends; and its address.
async fn serve(node: &TestNode) -> (api::ApiServer, String) {
    let (server, _task) = api::serve(
        node.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let addr = server.addr.to_string();
    (server, addr)
}

/// A browser session: its cookie and its token.
async fn log_in(addr: &str, link: String) -> (String, String) {
    let path = &link[format!("http://{addr}").len()..];
    let login = http(addr, &format!("GET {path} HTTP/1.1")).await;
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = header(&login, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = header(&login, "location")
        .strip_prefix("/#session=")
        .unwrap()
        .to_owned();
    (cookie, token)
}

/// The value of header `name` (lower case) in an answer.
fn header<'a>(answer: &'a str, name: &str) -> &'a str {
    answer
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_after_twelve_idle_hours_and_a_login_link_after_two_minutes() {
    let (clock, ada, _) = office(&[]).await;
    let (server, addr) = serve(&ada).await;
    let path = |link: String| link[format!("http://{addr}").len()..].to_owned();

    // A link not redeemed within two minutes is refused.
    let stale = path(server.web.login_link());
    clock.advance(Duration::from_secs(121));
    let refused = http(&addr, &format!("GET {stale} HTTP/1.1")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let status = |token: &str| {
        let head =
            format!("GET /v1/status HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}");
        let addr = addr.clone();
        async move { http(&addr, &head).await }
    };
    let idle = Duration::from_millis(SESSION_IDLE_MS as u64);

    // Used just before it would end, it lives another twelve hours.
    clock.advance(idle - Duration::from_secs(60));
    let used = status(&token).await;
    assert!(used.starts_with("HTTP/1.1 200"), "{used}");
    clock.advance(idle - Duration::from_secs(60));
    let used = status(&token).await;
    assert!(used.starts_with("HTTP/1.1 200"), "{used}");

    // A request with the cookie and a wrong token (what a page elsewhere
    // could send) is refused and keeps nothing alive.
    clock.advance(idle / 2);
    let forged = status("00").await;
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    clock.advance(idle / 2 + Duration::from_millis(1));
    let ended = status(&token).await;
    assert!(ended.starts_with("HTTP/1.1 401"), "{ended}");
}

/// `node`'s control API on `addr` until the returned sender is dropped;
/// its address, and its task to await.
async fn serve_until(
    node: &TestNode,
    addr: &str,
) -> (
    api::ApiServer,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (server, task) = api::serve(node.node.clone(), addr.parse().unwrap(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    (server, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_the_port_outlive_a_restart_and_so_does_a_logout() {
    let (clock, ada, _) = office(&[]).await;
    let (server, stop_api, task) = serve_until(&ada, "127.0.0.1:0").await;
    let addr = server.addr.to_string();
    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let status = |addr: String, token: String| {
        let head =
            format!("GET /v1/status HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}");
        async move { http(&addr, &head).await }
    };
    assert!(status(addr.clone(), token.clone())
        .await
        .starts_with("HTTP/1.1 200"));

    // The daemon stops and starts again (same home): same port, and the
    // session goes on — as for a second tab, which shares cookie and token.
    // (The server's sessions hold the node: they go with it.)
    drop((server, stop_api));
    task.await.unwrap();
    let home = stop(ada).await;
    let ada = restart(home, &clock, vec![]).await;
    let (server, stop_api, task) = serve_until(&ada, "127.0.0.1:0").await;
    assert_eq!(server.addr.to_string(), addr, "the API's port is kept");
    let again = status(addr.clone(), token.clone()).await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    // Neither the cookie nor the token is kept in the home, only hashes.
    let db = ada.home().db();
    let raw: Vec<u8> = walk(&db)
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    let cookie_id = cookie.split_once('=').unwrap().1;
    for secret in [cookie_id, token.as_str()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a session secret is on disk"
        );
    }
    // A wrong token is still refused after the restart.
    let forged = status(addr.clone(), "00".into()).await;
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");

    // Logout ends it, and a restart does not bring it back.
    let logout = format!(
        "POST /v1/web/logout HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}\r\nContent-Length: 0"
    );
    assert!(http(&addr, &logout).await.starts_with("HTTP/1.1 200"));
    assert!(status(addr.clone(), token.clone())
        .await
        .starts_with("HTTP/1.1 401"));
    drop((server, stop_api));
    task.await.unwrap();
    let home = stop(ada).await;
    let ada = restart(home, &clock, vec![]).await;
    let (server, _stop_api, _task) = serve_until(&ada, "127.0.0.1:0").await;
    assert_eq!(server.addr.to_string(), addr);
    let ended = status(addr.clone(), token.clone()).await;
    assert!(ended.starts_with("HTTP/1.1 401"), "{ended}");

    // A session idle for longer than its limit across a restart ends too.
    let (cookie2, token2) = log_in(&addr, server.web.login_link()).await;
    clock.advance(Duration::from_millis(SESSION_IDLE_MS as u64 + 1));
    let head = format!("GET /v1/status HTTP/1.1\r\nCookie: {cookie2}\r\nX-Session-Token: {token2}");
    assert!(http(&addr, &head).await.starts_with("HTTP/1.1 401"));
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_event_stream_ends_at_logout_and_when_it_expires() {
    let (clock, ada, _) = office(&[]).await;
    let (server, addr) = serve(&ada).await;

    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let follow = format!("GET /v1/events?session={token} HTTP/1.1\r\nCookie: {cookie}");
    let (events, head) = open_stream(&addr, &follow).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let out = http(
        &addr,
        &format!("POST /v1/web/logout HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}"),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    rest(events).await;

    // Idle too long: the next request to look ends it, and its stream.
    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let follow = format!("GET /v1/events?session={token} HTTP/1.1\r\nCookie: {cookie}");
    let (events, head) = open_stream(&addr, &follow).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    clock.advance(Duration::from_millis(SESSION_IDLE_MS as u64 + 1));
    let late = http(
        &addr,
        &format!("GET /v1/status HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}"),
    )
    .await;
    assert!(late.starts_with("HTTP/1.1 401"), "{late}");
    rest(events).await;
}

/// Ada alone in "Research" has shared `bytes` as `name` and serves her API
/// to a logged-in browser session: what a download test needs.
struct Download {
    clock: meshwork::node::ManualClock,
    ada: TestNode,
    file: meshwork::node::FileInfo,
    addr: String,
    /// The session's GET of the file, cookie and token included.
    request: String,
    _work: tempfile::TempDir,
    _server: api::ApiServer,
}

async fn shared_download(name: &str, bytes: &[u8]) -> Download {
    let (clock, ada, _) = office(&[]).await;
    ada.dept_create("Research").await.unwrap();
    ada.dept_add("Ada", "Research").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = ada
        .share(
            "Research",
            &write_file(work.path(), name, bytes),
            None,
            None,
        )
        .await
        .unwrap();
    let (server, addr) = serve(&ada).await;
    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let request = format!(
        "GET /v1/web/download/{}?session={token} HTTP/1.1\r\nCookie: {cookie}",
        file.entry.id
    );
    Download {
        clock,
        ada,
        file,
        addr,
        request,
        _work: work,
        _server: server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_whose_blob_is_corrupt_is_cut_short() {
    let bytes = content(3 << 20, 11);
    let d = shared_download("plan.bin", &bytes).await;
    let (ada, shared) = (&d.ada, &d.file);
    let (addr, download) = (d.addr.clone(), d.request.clone());

    // Whole, it comes whole.
    let (s, head) = open_stream(&addr, &download).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-length"), bytes.len().to_string());
    assert!(rest(s).await == bytes, "the download differs from the file");

    // One byte flipped on disk, past the middle: the answer stops short of
    // its Content-Length (a browser marks such a download failed), and
    // what came is a true prefix.
    let blob = ada.home().blobs().join(&shared.entry.blob);
    let mut stored = std::fs::read(&blob).unwrap();
    let at = stored.len() * 5 / 6;
    stored[at] ^= 1;
    std::fs::write(&blob, &stored).unwrap();
    let (s, head) = open_stream(&addr, &download).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = rest(s).await;
    assert!(body.len() < bytes.len(), "{} bytes came", body.len());
    assert!(
        bytes.starts_with(&body),
        "what came is not a prefix of the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_keeps_its_sandbox_and_pages_keep_theirs() {
    let page = "<script>alert(1)</script>";
    let d = shared_download("page.html", page.as_bytes()).await;
    let (addr, download) = (d.addr.clone(), d.request.clone());
    let answer = http(&addr, &download).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let csps = answer
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .count();
    assert_eq!(csps, 1, "{answer}");
    assert_eq!(
        header(&answer, "content-security-policy"),
        "sandbox; default-src 'none'",
        "{answer}"
    );
    assert_eq!(header(&answer, "content-type"), "application/octet-stream");
    assert!(answer.ends_with(page), "{answer}");

    // The app's pages keep the app's policy.
    let index = http(&addr, "GET / HTTP/1.1").await;
    assert!(
        header(&index, "content-security-policy")
            .starts_with("default-src 'none'; script-src 'self'"),
        "{index}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_cannot_name_local_paths() {
    let (_clock, ada, _) = office(&[]).await;
    ada.dept_create("Research").await.unwrap();
    ada.dept_add("Ada", "Research").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let (server, addr) = serve(&ada).await;
    let (cookie, token) = log_in(&addr, server.web.login_link()).await;
    let as_session = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}\r\nContent-Type: application/json"
        )
    };
    let key = ada.home().root().join("identity.key");
    let share = serde_json::json!({ "dept": "Research", "path": key }).to_string();
    let refused = http_body(&addr, &as_session("/v1/files"), &share).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(json_error(&refused).contains("bearer token"), "{refused}");

    let dest = work.path().join("written-by-a-page");
    let get = serde_json::json!({ "id": "0000000000000000", "dest": dest }).to_string();
    let refused = http_body(&addr, &as_session("/v1/files/get"), &get).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    json_error(&refused);
    assert!(ada.files("Research").unwrap().is_empty(), "nothing shared");
    assert!(!dest.exists());

    // What a session may do with files it still can: list them.
    let list = http(
        &addr,
        &format!(
            "GET /v1/files?dept=Research HTTP/1.1\r\nCookie: {cookie}\r\nX-Session-Token: {token}"
        ),
    )
    .await;
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");

    // The CLI's bearer token still shares a path and fetches to one.
    let as_cli = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json",
            server.token
        )
    };
    let src = write_file(work.path(), "notes.txt", b"hello");
    let share = serde_json::json!({ "dept": "Research", "path": src }).to_string();
    let shared = http_body(&addr, &as_cli("/v1/files"), &share).await;
    assert!(shared.starts_with("HTTP/1.1 200"), "{shared}");
    assert!(shared.contains("{\"ok\":"), "{shared}");
    let files = ada.files("Research").unwrap();
    assert_eq!(files.len(), 1);
    let get = serde_json::json!({ "id": files[0].entry.id, "dest": dest }).to_string();
    let got = http_body(&addr, &as_cli("/v1/files/get"), &get).await;
    assert!(got.contains("{\"ok\":"), "{got}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_answered_in_json_and_the_icon_is_public() {
    let (_clock, ada, _) = office(&[]).await;
    let (server, addr) = serve(&ada).await;
    let bearer = format!("Authorization: Bearer {}", server.token);
    let create =
        |kind: &str| format!("POST /v1/depts HTTP/1.1\r\n{bearer}\r\nContent-Type: {kind}");

    // Not JSON: 400. Not declared as JSON: 415. JSON of the wrong shape: 422.
    let broken = http_body(&addr, &create("application/json"), r#"{"name":"#).await;
    assert!(broken.starts_with("HTTP/1.1 400"), "{broken}");
    json_error(&broken);
    let plain = http_body(&addr, &create("text/plain"), r#"{"name":"Research"}"#).await;
    assert!(plain.starts_with("HTTP/1.1 415"), "{plain}");
    json_error(&plain);
    let shape = http_body(&addr, &create("application/json"), r#"{"nom":"Research"}"#).await;
    assert!(shape.starts_with("HTTP/1.1 422"), "{shape}");
    assert!(json_error(&shape).contains("name"), "{shape}");
    // A query without what it needs: 400.
    let query = http(&addr, &format!("GET /v1/feed?limit=x HTTP/1.1\r\n{bearer}")).await;
    assert!(query.starts_with("HTTP/1.1 400"), "{query}");
    json_error(&query);
    // No such route, or not with that method: JSON too.
    let none = http(&addr, &format!("GET /v1/nope HTTP/1.1\r\n{bearer}")).await;
    assert!(none.starts_with("HTTP/1.1 404"), "{none}");
    json_error(&none);
    let method = http(&addr, &format!("DELETE /v1/status HTTP/1.1\r\n{bearer}")).await;
    assert!(method.starts_with("HTTP/1.1 405"), "{method}");
    json_error(&method);

    // The icon every page load asks for needs no session.
    let icon = http(&addr, "GET /favicon.ico HTTP/1.1").await;
    assert!(icon.starts_with("HTTP/1.1 200"), "{icon}");
    assert_eq!(header(&icon, "content-type"), "image/svg+xml");
    assert!(icon.contains("<svg"), "{icon}");
    let port = addr.rsplit(':').next().unwrap();
    let stale = http(
        &addr,
        &format!("GET /favicon.ico HTTP/1.1\r\nCookie: meshwork_{port}=gone"),
    )
    .await;
    assert!(stale.starts_with("HTTP/1.1 200"), "{stale}");
}

/// Issue 16: `GET /v1/files/find` looks in every department I am in, in
/// one request (what `meshwork get` and `post --file` use): by id, or by a
/// name only one file has. Unknown: 404; empty, missing or ambiguous: 400;
/// each with an `{"error"}` that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_found_by_id_or_by_its_name_in_any_department() {
    let (_clock, ada, _) = office(&[]).await;
    for dept in ["Research", "Sales"] {
        ada.dept_create(dept).await.unwrap();
        ada.dept_add("Ada", dept).await.unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let share = |dept: &'static str, name: &'static str| {
        let path = write_file(work.path(), name, name.as_bytes());
        let ada = &ada;
        async move { ada.share(dept, &path, None, None).await.unwrap() }
    };
    // In the second department: found all the same.
    let plan = share("Sales", "plan.txt").await;
    let (server, addr) = serve(&ada).await;
    let find = |id: &str| {
        let bearer = format!("Authorization: Bearer {}", server.token);
        let addr = addr.clone();
        let head = format!("GET /v1/files/find{id} HTTP/1.1\r\n{bearer}");
        async move { http(&addr, &head).await }
    };
    let found = |answer: &str| -> meshwork::node::FileInfo {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
        serde_json::from_str(body).expect("the daemon's FileInfo")
    };

    let by_id = found(&find(&format!("?id={}", plan.entry.id)).await);
    assert_eq!(
        (by_id.entry.id.as_str(), by_id.dept.as_str()),
        (plan.entry.id.as_str(), "Sales")
    );
    assert_eq!(by_id.entry.key, "", "the file key stays in the node");
    let by_name = found(&find("?id=plan.txt").await);
    assert_eq!(by_name.entry.id, plan.entry.id);

    let unknown = find("?id=0123456789abcdef").await;
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
    let why = json_error(&unknown);
    assert!(why.contains("no file \"0123456789abcdef\""), "{unknown}");
    for malformed in ["?id=", "?id=%20", ""] {
        let refused = find(malformed).await;
        assert!(
            refused.starts_with("HTTP/1.1 400"),
            "{malformed:?}: {refused}"
        );
        json_error(&refused);
    }

    // Two files of one name: the name is no longer enough, and the error
    // lists both ids; each id still is.
    let other = share("Research", "plan.txt").await;
    let ambiguous = find("?id=plan.txt").await;
    assert!(ambiguous.starts_with("HTTP/1.1 400"), "{ambiguous}");
    let why = json_error(&ambiguous);
    assert!(
        why.contains(&plan.entry.id) && why.contains(&other.entry.id),
        "{why}"
    );
    let by_id = found(&find(&format!("?id={}", other.entry.id)).await);
    assert_eq!(by_id.dept, "Research");
}

/// Issue 17: an image previews inline under its own type; whatever else an
/// uploader shares is never served for the page to render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_images_preview_and_never_as_anything_else() {
    // Not an image at all, whatever it holds: refused, in JSON.
    let text = shared_download("notes.html", b"<script>alert(1)</script>").await;
    let preview = text
        .request
        .replace("/v1/web/download/", "/v1/web/preview/");
    let refused = http(&text.addr, &preview).await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(json_error(&refused).contains("not an image"), "{refused}");

    // Markup named as a PNG: served as image/png, sniffing off, sandboxed —
    // a browser can only try to decode it as an image.
    let body = b"<html><script>alert(1)</script></html>";
    let fake = shared_download("cat.png", body).await;
    let preview = fake
        .request
        .replace("/v1/web/download/", "/v1/web/preview/");
    let answer = http(&fake.addr, &preview).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(header(&answer, "content-type"), "image/png");
    assert_eq!(header(&answer, "content-disposition"), "inline");
    assert_eq!(header(&answer, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&answer, "content-security-policy"),
        "sandbox; default-src 'none'"
    );
    assert!(
        answer.ends_with(std::str::from_utf8(body).unwrap()),
        "{answer}"
    );
}

/// A `width`×`height` PNG of a gradient, as a photo would be.
fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The session's GET of file `id`'s thumbnail.
fn thumb_request(d: &Download, id: &str) -> String {
    d.request.replace(
        &format!("/v1/web/download/{}", d.file.entry.id),
        &format!("/v1/web/thumb/{id}"),
    )
}

/// The head and the body (bytes) of the answer to `request`.
async fn get_bytes(addr: &str, request: &str) -> (String, Vec<u8>) {
    let (s, head) = open_stream(addr, request).await;
    (head, rest(s).await)
}

/// Issue 17: an image's thumbnail is made on the node, fits the box with
/// the image's aspect, is served like a preview, and is kept: the next
/// request is a lookup (it comes whole even once the blob no longer
/// opens); when the blob is collected, its thumbnail goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_has_a_thumbnail_made_once_and_let_go_with_its_blob() {
    let d = shared_download("photo.png", &png(1200, 800)).await;
    let ada = &d.ada;
    assert_eq!(ada.thumbnails_kept().unwrap().count, 0);
    let thumb = thumb_request(&d, &d.file.entry.id);

    // The session's token is asked for, as for a preview.
    let refused = http(&d.addr, &thumb.replace("?session=", "?token=")).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_eq!(ada.thumbnails_kept().unwrap().count, 0);

    let (head, body) = get_bytes(&d.addr, &thumb).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-type"), "image/jpeg");
    assert_eq!(header(&head, "content-disposition"), "inline");
    assert_eq!(header(&head, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&head, "content-security-policy"),
        "sandbox; default-src 'none'"
    );
    assert!(
        header(&head, "cache-control").contains("immutable"),
        "{head}"
    );
    assert_eq!(header(&head, "content-length"), body.len().to_string());
    let shown = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap();
    let bound = meshwork::node::thumbnail::BOUND;
    assert_eq!((shown.width(), shown.height()), (bound, bound * 2 / 3));
    assert!(body.len() < 64 << 10, "a thumbnail of {} bytes", body.len());
    let kept = ada.thumbnails_kept().unwrap();
    assert_eq!(kept.count, 1);
    assert!(kept.bytes >= body.len() as u64, "{kept:?}");

    // One byte of the blob flipped: the image no longer opens (a preview
    // is cut short), but its thumbnail is in the store, and comes whole.
    let blob = ada.home().blobs().join(&d.file.entry.blob);
    let mut stored = std::fs::read(&blob).unwrap();
    let at = stored.len() / 2;
    stored[at] ^= 1;
    std::fs::write(&blob, &stored).unwrap();
    let preview = d.request.replace("/v1/web/download/", "/v1/web/preview/");
    let (_, cut) = get_bytes(&d.addr, &preview).await;
    assert!(
        cut.len() < d.file.entry.size as usize,
        "the preview came whole"
    );
    let (head, again) = get_bytes(&d.addr, &thumb).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(again == body, "another thumbnail came");
    assert_eq!(ada.thumbnails_kept().unwrap().count, 1);

    // Past its deadline the blob is collected, and its thumbnail with it.
    d.clock.advance(Duration::from_secs(74 * 3600));
    let done = ada.reconcile_pins().await.unwrap();
    assert_eq!(done.collected, vec![d.file.entry.blob.clone()]);
    assert_eq!(
        ada.thumbnails_kept().unwrap(),
        meshwork::node::store::ThumbnailsKept::default()
    );
}

/// Issue 17: no thumbnail of anything but an image (nothing decoded, nothing
/// kept), nor of a file that is not the image its type says — markup or a
/// JPEG named `.png`, a header claiming 60000×60000 pixels, a PNG cut
/// short: each refused in JSON, and the refusal kept, so that a hostile
/// file is decoded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_is_refused_for_what_is_not_the_image_it_claims_to_be() {
    let d = shared_download("notes.txt", b"decisions: ship it").await;
    let answer = http(&d.addr, &thumb_request(&d, &d.file.entry.id)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(json_error(&answer).contains("not an image"), "{answer}");
    assert_eq!(d.ada.thumbnails_kept().unwrap().count, 0);

    let work = tempfile::tempdir().unwrap();
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 64))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let whole = png(300, 200);
    let cases = [
        (
            "cat.png",
            b"<html><script>alert(1)</script></html>".to_vec(),
            "not a valid PNG",
        ),
        ("photo.png", jpeg, "not a valid PNG"),
        ("bomb.png", bomb_header(60_000, 60_000), "too large"),
        (
            "cut.png",
            whole[..whole.len() / 2].to_vec(),
            "not a valid PNG",
        ),
    ];
    for (i, (name, bytes, why)) in cases.into_iter().enumerate() {
        let path = write_file(work.path(), name, &bytes);
        let file = d.ada.share("Research", &path, None, None).await.unwrap();
        assert_eq!(file.entry.media_type, "image/png");
        let thumb = thumb_request(&d, &file.entry.id);
        let started = std::time::Instant::now();
        let answer = http(&d.addr, &thumb).await;
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        let refusal = json_error(&answer);
        assert!(refusal.contains(why), "{name}: {refusal}");
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        assert_eq!(d.ada.thumbnails_kept().unwrap().count, i + 1);
        let again = http(&d.addr, &thumb).await;
        assert_eq!(json_error(&again), refusal);
        assert_eq!(d.ada.thumbnails_kept().unwrap().count, i + 1);
    }
}

/// A PNG's signature and a header claiming `width`×`height` RGBA pixels,
/// then a few bytes of data and its end.
fn bomb_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    let idat = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &idat), (b"IEND", &[])] {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    out
}
