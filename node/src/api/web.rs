//! The web app each node serves on loopback: its assets (embedded at build
//! time), browser sessions, and the routes a browser needs that the CLI
//! does not: a file's bytes up (asked about first) and down, streamed and
//! never written in plaintext, and QR codes.
//!
//! A browser logs in through a one-time link (`meshwork open`): redeeming it
//! sets an HttpOnly, SameSite=Strict session cookie, so the bearer token
//! never appears in a URL, and hands the page the session's token in the
//! redirect's fragment (which the app moves into its localStorage, shared by
//! the origin's tabs, and out of the address bar). Every request of a
//! session carries both: the cookie,
//! and the token in `x-session-token` (or, where a browser cannot set a
//! header — the event stream, a download link — in `?session=`). The token
//! stops cross-site requests (CSRF), and also anything else on this host
//! that receives the cookie: browsers send a 127.0.0.1 cookie to every
//! port. Every answer carries a strict Content Security Policy; requests
//! whose Host is not this loopback address are refused (DNS rebinding).
//!
//! A session outlives the daemon: the store keeps the hashes of its cookie
//! and token and when it was last used (written at most once a minute), and
//! the API binds the port of its last start when it is free, so the
//! cookie's name (which carries the port) and the origin's localStorage
//! still match. It ends after [`SESSION_IDLE_MS`] unused, or at logout, in
//! every tab and across restarts.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::extract::{Json, Path, Query};
use super::types::{ErrorBody, LoginLink};
use super::{ok, ApiError, ApiResult};
use crate::{Node, NodeError};

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const ICON: &str = include_str!("../../web/icon.svg");

/// How long a login link can be redeemed.
const LOGIN_LINK_MS: i64 = 2 * 60 * 1000;

/// How long a browser session lives without a request (node clock): after a
/// tab was closed, or a laptop slept, for that long, `meshwork open` again.
/// (An open tab's live refreshes are requests.)
pub const SESSION_IDLE_MS: i64 = 12 * 60 * 60 * 1000;

/// What every answer carries: nothing but this origin's own scripts,
/// styles and connections; no framing, no plugins, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Browser sessions of one node's API.
pub struct Sessions {
    port: u16,
    node: Node,
    /// Unredeemed login codes and when they expire (node clock).
    logins: Mutex<HashMap<String, i64>>,
    /// Session id (the cookie) → the session.
    sessions: Mutex<HashMap<String, Session>>,
    /// Told whenever sessions end, so that their event streams end too.
    ended: tokio::sync::Notify,
}

struct Session {
    /// The hash of the page's token, which every request must present with
    /// the cookie.
    token: [u8; 32],
    /// When the session last made a request (node clock).
    last_used: i64,
    /// When `last_used` was last written to the store.
    saved: i64,
}

/// How stale the stored `last_used` of a session may get: a daemon that
/// stops loses at most this much of a session's idle time.
const SAVE_EVERY_MS: i64 = 60 * 1000;

/// Whether a session last used at `last_used` is still live at `now`.
fn live_at(now: i64, last_used: i64) -> bool {
    now.saturating_sub(last_used) <= SESSION_IDLE_MS
}

/// What is kept of a session's cookie or token: its hash.
fn hashed(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

impl Sessions {
    pub(super) fn new(node: Node, port: u16) -> Arc<Self> {
        Arc::new(Self {
            port,
            node,
            logins: Mutex::default(),
            sessions: Mutex::default(),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// A one-time link that logs a browser in.
    pub fn login_link(&self) -> String {
        let code = random_hex();
        let expires = self.node.now() + LOGIN_LINK_MS;
        let mut logins = lock(&self.logins);
        let now = self.node.now();
        logins.retain(|_, until| *until >= now);
        logins.insert(code.clone(), expires);
        format!("http://127.0.0.1:{}/login/{code}", self.port)
    }

    /// The session cookie's name: cookies are not kept apart by port, and
    /// two nodes on one machine must not overwrite each other's.
    fn cookie_name(&self) -> String {
        format!("meshwork_{}", self.port)
    }

    /// The session id the request's cookie carries, if any.
    fn session_id(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(&name)?.strip_prefix('='))
            .map(str::to_owned)
    }

    /// The id and token hash of the live session the request's cookie
    /// names, if any — kept from before the daemon's last restart too;
    /// sessions idle for longer than [`SESSION_IDLE_MS`] end here.
    fn session(&self, headers: &HeaderMap) -> Option<(String, [u8; 32])> {
        let id = self.session_id(headers)?;
        let now = self.node.now();
        let mut sessions = lock(&self.sessions);
        let before = sessions.len();
        sessions.retain(|_, s| live_at(now, s.last_used));
        if sessions.len() < before {
            self.ended.notify_waiters();
        }
        if !sessions.contains_key(&id) {
            // A session this daemon has not seen: one from before a restart?
            let stored = self.node.store().web_session(&hashed(&id));
            let (token, last_used) = stored.ok().flatten()?;
            if !live_at(now, last_used) {
                return None;
            }
            let saved = last_used;
            sessions.insert(
                id.clone(),
                Session {
                    token,
                    last_used,
                    saved,
                },
            );
        }
        Some((id.clone(), sessions.get(&id)?.token))
    }

    /// Whether session `id` is still live (not ended, not idle too long).
    fn is_live(&self, id: &str) -> bool {
        let now = self.node.now();
        lock(&self.sessions)
            .get(id)
            .is_some_and(|s| live_at(now, s.last_used))
    }

    /// Ends session `id`, here and in the store (with any long idle).
    fn end(&self, id: &str) -> Result<(), NodeError> {
        lock(&self.sessions).remove(id);
        self.ended.notify_waiters();
        let idle_since = self.node.now().saturating_sub(SESSION_IDLE_MS);
        self.node
            .store()
            .remove_web_session(&hashed(id), idle_since)
    }

    /// Marks session `id` as used now: called only once its token matched,
    /// so that requests which merely carry the cookie keep nothing alive.
    /// The store hears of it once a minute at most.
    fn touch(&self, id: &str) {
        let now = self.node.now();
        let mut sessions = lock(&self.sessions);
        let Some(s) = sessions.get_mut(id) else {
            return;
        };
        s.last_used = now;
        if now.saturating_sub(s.saved) >= SAVE_EVERY_MS {
            s.saved = now;
            if let Err(e) = self
                .node
                .store()
                .save_web_session(&hashed(id), &s.token, now)
            {
                tracing::warn!("cannot record a browser session's use: {e}");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 24]>())
}

/// Who may call an API route: the bearer token (the CLI), or a browser
/// session — its cookie and its token together.
#[derive(Clone, Debug)]
pub(super) enum Caller {
    Bearer,
    Session(String),
}

/// A route only the command line may call: one that names paths on this
/// machine (share a file from one, write a file to one). A browser session
/// never may, whatever its token — a page could otherwise share
/// `identity.key` into a department; the web app uploads and downloads
/// through its own streaming routes.
pub(super) struct CliOnly;

impl<S: Send + Sync> FromRequestParts<S> for CliOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Bearer) => Ok(CliOnly),
            _ => Err(NodeError::Forbidden(
                "a browser session cannot name files on this machine: sharing from a path \
                 or fetching to one takes the command line's bearer token \
                 (the web app uploads and downloads through /v1/web/…)"
                    .into(),
            )
            .into()),
        }
    }
}

/// A browser session that made a request, for what outlives the request
/// (an event stream): it ends when the session does.
#[derive(Clone)]
pub(super) struct LiveSession {
    sessions: Arc<Sessions>,
    id: String,
}

impl LiveSession {
    pub(super) fn new(sessions: Arc<Sessions>, id: String) -> Self {
        Self { sessions, id }
    }

    /// Resolves once the session has ended (logout, or idle too long, as
    /// the next request to look finds).
    pub(super) async fn ended(&self) {
        loop {
            let notified = self.sessions.ended.notified();
            tokio::pin!(notified);
            // Listening before looking: an end between the two is not missed.
            notified.as_mut().enable();
            if !self.sessions.is_live(&self.id) {
                return;
            }
            notified.await;
        }
    }
}

pub(super) fn caller(
    token: &str,
    sessions: &Sessions,
    req: &Request,
) -> Result<Caller, (StatusCode, &'static str)> {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = bearer {
        return if super::constant_time_eq(t.as_bytes(), token.as_bytes()) {
            Ok(Caller::Bearer)
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                "wrong bearer token (see api.json in the node's home)",
            ))
        };
    }
    let Some((id, expected)) = sessions.session(headers) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "not logged in: a bearer token, or a browser session from `meshwork open`",
        ));
    };
    let in_query = || {
        req.uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("session="))
    };
    let presented = match headers.get("x-session-token").and_then(|v| v.to_str().ok()) {
        Some(t) => Some(t),
        None if req.method() == Method::GET => in_query(),
        None => None,
    };
    match presented {
        Some(t) if super::constant_time_eq(&hashed(t), &expected) => {
            sessions.touch(&id);
            Ok(Caller::Session(id))
        }
        _ => Err((StatusCode::FORBIDDEN, "missing or wrong session token")),
    }
}

/// Refuses requests addressed to another host name (DNS rebinding), and
/// puts the security headers on every answer (the app's CSP on those that
/// do not set a stricter one of their own).
pub(super) async fn guard(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let allowed = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host == format!("{h}:{}", sessions.port));
    let mut res = if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            Json(ErrorBody {
                error: format!("this API answers only to 127.0.0.1:{}", sessions.port),
            }),
        )
            .into_response()
    };
    let h = res.headers_mut();
    // A route's own, stricter policy stays: a download's `sandbox`.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

pub(super) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub(super) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

pub(super) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The icon a browser asks for on every page load: public, like the app's
/// other assets.
pub(super) async fn favicon() -> Response {
    asset(ICON, "image/svg+xml")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Redeems a login link: a new session, its cookie, and on to the app
/// with the session's token in the fragment (never sent to a server, and
/// taken out of the address bar by the app).
pub(super) async fn login(
    State(sessions): State<Arc<Sessions>>,
    Path(code): Path<String>,
) -> Response {
    let now = sessions.node.now();
    let valid = lock(&sessions.logins)
        .remove(&code)
        .is_some_and(|until| until >= now);
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This login link was used already or has expired. Run `meshwork open` for a new one.\n",
        )
            .into_response();
    }
    let (id, token) = (random_hex(), random_hex());
    lock(&sessions.sessions).insert(
        id.clone(),
        Session {
            token: hashed(&token),
            last_used: now,
            saved: now,
        },
    );
    // Durable before the browser has it: a restart keeps the session.
    let stored = sessions.node.store();
    if let Err(e) = stored.save_web_session(&hashed(&id), &hashed(&token), now) {
        return super::ApiError::from(e).into_response();
    }
    if let Err(e) = stored.flush().await {
        return super::ApiError::from(e).into_response();
    }
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/",
        sessions.cookie_name()
    );
    let mut res = Redirect::to(&format!("/#session={token}")).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// A new login link (bearer callers only: the CLI's `meshwork open`).
pub(super) async fn new_login_link(
    State(sessions): State<Arc<Sessions>>,
    req: Request,
) -> ApiResult {
    match req.extensions().get::<Caller>() {
        Some(Caller::Bearer) => ok(LoginLink {
            url: sessions.login_link(),
        }),
        _ => Err(NodeError::Forbidden("a browser session cannot make login links".into()).into()),
    }
}

/// Ends the calling browser session (its cookie and token stop working).
pub(super) async fn logout(State(sessions): State<Arc<Sessions>>, headers: HeaderMap) -> ApiResult {
    if let Some(id) = sessions.session_id(&headers) {
        sessions.end(&id)?;
        // Durable: a restart does not bring the session back.
        sessions.node.store().flush().await?;
    }
    ok(json!({ "logged_out": true }))
}

#[derive(Deserialize)]
pub(super) struct UploadQuery {
    dept: String,
    name: String,
    /// Say so in the department's feed (the default).
    #[serde(default = "super::types::yes")]
    announce: bool,
}

#[derive(Deserialize)]
pub(super) struct UploadCheck {
    dept: String,
    name: String,
    size: u64,
}

/// Whether an upload would be taken, asked before its bytes are sent: a
/// file too large for the disk is refused here, at once, rather than after
/// the browser has sent all of it.
pub(super) async fn upload_check(
    State(node): State<Node>,
    Json(b): Json<UploadCheck>,
) -> ApiResult {
    node.check_share(&b.dept, &b.name, b.size)?;
    ok(json!({ "ok": true }))
}

/// Shares the request's body as a file named `name`, sealing it as it
/// arrives: the plaintext is never written to disk. The body's length must
/// be declared; one that ends early is an interrupted upload, and nothing
/// is shared.
pub(super) async fn upload(
    State(node): State<Node>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let size = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| NodeError::BadRequest("an upload must declare its Content-Length".into()))?;
    let chunks = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(|e| io::Error::other(format!("upload interrupted: {e}"))));
    let plaintext = SyncIoBridge::new(StreamReader::new(chunks)).take(size);
    let shared = node
        .share_from(&q.dept, &q.name, plaintext, size, None)
        .await?;
    if q.announce {
        super::announce(&node, &shared).await;
    }
    ok(shared)
}

#[derive(Deserialize)]
pub(super) struct QrBody {
    text: String,
}

/// `text` as a QR code (SVG), for an invite a phone can scan. Made here so
/// that no script from elsewhere is needed, and the token never sits in a
/// URL.
pub(super) async fn qr(Json(b): Json<QrBody>) -> ApiResult {
    let code = qrcode::QrCode::with_error_correction_level(b.text.as_bytes(), qrcode::EcLevel::L)
        .map_err(|e| NodeError::BadRequest(format!("cannot make a QR code of that: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .build();
    ok(json!({ "svg": svg }))
}

#[derive(Deserialize)]
pub(super) struct FetchBody {
    id: String,
}

/// Makes sure a file's blob is here before the browser asks for its bytes,
/// so that "nobody online holds it" is an answer the app can show.
pub(super) async fn fetch(State(node): State<Node>, Json(b): Json<FetchBody>) -> ApiResult {
    node.fetch(&b.id).await?;
    ok(json!({ "id": b.id }))
}

/// Sends file `id`'s plaintext as an attachment, decrypted from this
/// node's store as it goes out (fetched from its peers first if need be).
pub(super) async fn download(
    State(node): State<Node>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (info, plaintext) = node.read_file(&id).await?;
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        percent_encode(&info.entry.name)
    );
    // Always an attachment of opaque bytes: an uploader's media type must
    // never make this origin render (or run) a file.
    Ok(plaintext_response(
        info.entry.size,
        plaintext,
        "application/octet-stream",
        &disposition,
    ))
}

/// A file's plaintext as it is decrypted, of `size` bytes, sandboxed. An
/// error mid-way ends the stream with it, and the connection is cut short
/// of the Content-Length: the browser marks the download (or image) failed.
fn plaintext_response(
    size: u64,
    plaintext: impl futures::Stream<Item = io::Result<Vec<u8>>> + Send + 'static,
    kind: &str,
    disposition: &str,
) -> Response {
    let mut res = Body::from_stream(plaintext.map(|piece| piece.map(Bytes::from))).into_response();
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, kind),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    res
}

/// Sends image `id` to be shown in the page (an `<img>`), decrypted as it
/// goes out like a download. Only the four image types are served, under
/// their own type, `nosniff` and a sandbox: whatever an uploader named a
/// file, this origin never renders it as anything but an image.
pub(super) async fn preview(
    State(node): State<Node>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, info) = node.file(&id)?;
    // The same images, within the same size, as thumbnails are made of.
    crate::node::image_format(&info)?;
    let kind = info.entry.media_type.clone();
    let (info, plaintext) = node.read_file(&id).await?;
    Ok(plaintext_response(
        info.entry.size,
        plaintext,
        &kind,
        "inline",
    ))
}

/// A thumbnail of image `id` for the page (at most 320 pixels a side, made
/// and kept by the node: see [`Node::thumbnail`]), served like a preview —
/// under its own type, `inline`, `nosniff`, sandboxed — and cached by the
/// browser: a file's bytes never change under its id. Anything but a
/// PNG, JPEG, WebP or GIF, and an image that is not what it claims to be,
/// is refused in JSON.
pub(super) async fn thumb(
    State(node): State<Node>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let thumbnail = node.thumbnail(&id).await?;
    let mut res = thumbnail.bytes.into_response();
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, thumbnail.kind.media_type()),
        (header::CONTENT_DISPOSITION, "inline"),
        (
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ),
        (
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    Ok(res)
}

/// RFC 5987 encoding of a file name for Content-Disposition (every byte
/// but letters and digits escaped: more than needed, never less).
fn percent_encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(super::percent_encode("Q3 plan.pdf"), "Q3%20plan%2Epdf");
        assert_eq!(super::percent_encode("a\"b\r\n"), "a%22b%0D%0A");
        assert_eq!(super::percent_encode("é"), "%C3%A9");
    }
}
