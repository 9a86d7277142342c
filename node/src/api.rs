//! The control API: HTTP/JSON on loopback, every route behind a bearer token
//! kept in a 0600 file in the home. The CLI and any UI use only this.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::crdt::MemberId;
use crate::home::ApiInfo;
use crate::{InviteSpec, Node, NodeError};

mod extract;
pub mod types;
mod web;
use extract::{Json, Query};
use types::*;
pub use web::{Sessions, SESSION_IDLE_MS};

/// A running control API.
pub struct ApiServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
    /// Browser sessions of the web app.
    pub web: std::sync::Arc<Sessions>,
}

/// Binds `addr` (must be loopback), writes `api.json` into the node's home,
/// and serves until `shutdown` resolves. Then it takes no new connection,
/// ends the live event streams at once (or they would keep the server, and
/// the daemon's stop, waiting as long as a tab stays open), and returns once
/// the requests under way are answered.
pub async fn serve(
    node: Node,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(ApiServer, tokio::task::JoinHandle<()>), NodeError> {
    if !addr.ip().is_loopback() {
        return Err(NodeError::BadRequest(format!(
            "the control API listens on loopback only; {addr} is not a loopback address"
        )));
    }
    let listener = bind(&node, addr).await?;
    let addr = listener.local_addr()?;
    if let Err(e) = std::fs::write(node.home().root().join(API_PORT), addr.port().to_string()) {
        tracing::warn!("cannot record the control API's port for the next start: {e}");
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    node.home().write_api(&ApiInfo {
        addr: addr.to_string(),
        token: token.clone(),
        pid: std::process::id(),
    })?;
    // Earlier versions staged browser uploads and downloads in plaintext
    // under `HOME/tmp/`; a crash could leave some there. Nothing uses it now.
    let _ = std::fs::remove_dir_all(node.home().root().join("tmp"));
    let web = Sessions::new(node.clone(), addr.port());
    let stopping = Stopping(CancellationToken::new());
    let app = router(node, token.clone(), web.clone()).layer(Extension(stopping.clone()));
    let shutdown = async move {
        shutdown.await;
        stopping.0.cancel();
    };
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("control API stopped: {e}");
        }
    });
    Ok((ApiServer { addr, token, web }, task))
}

/// Where the control API's last port is kept, in the node's home.
const API_PORT: &str = "api-port";

/// Binds `addr`; with port 0, the port of the last start if it is free
/// (bookmarks and a browser's session cookie, named after the port, keep
/// working across restarts), else any free one.
async fn bind(node: &Node, addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    if addr.port() == 0 {
        let last = std::fs::read_to_string(node.home().root().join(API_PORT)).ok();
        if let Some(port) = last.and_then(|p| p.trim().parse::<u16>().ok()) {
            if let Ok(l) = tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                return Ok(l);
            }
        }
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::BadRequest(format!("cannot bind the control API to {addr}: {e}")))
}

/// Cancelled when the server begins to stop: what would otherwise answer for
/// ever (an event stream) ends then.
#[derive(Clone)]
struct Stopping(CancellationToken);

fn router(node: Node, token: String, sessions: std::sync::Arc<Sessions>) -> Router {
    let public = Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/app.css", get(web::app_css))
        .route("/login/{code}", get(web::login))
        .route("/favicon.ico", get(web::favicon))
        .method_not_allowed_fallback(extract::wrong_method)
        .with_state(sessions.clone());
    let browser = Router::new()
        .route("/v1/login-links", post(web::new_login_link))
        .route("/v1/web/logout", post(web::logout))
        .method_not_allowed_fallback(extract::wrong_method)
        .with_state(sessions.clone());
    let node_routes = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/workspace", post(create_workspace))
        .route("/v1/invites", post(invite))
        .route("/v1/join", post(join))
        .route("/v1/depts", get(depts).post(dept_create))
        .route("/v1/depts/rename", post(dept_rename))
        .route("/v1/depts/add", post(dept_add))
        .route("/v1/depts/remove", post(dept_remove))
        .route("/v1/members", get(members))
        .route("/v1/members/promote", post(promote))
        .route("/v1/members/remove", post(remove_member))
        .route("/v1/events", get(events))
        .route("/v1/posts", post(create_post))
        .route("/v1/posts/react", post(react))
        .route("/v1/posts/edit", post(edit_post))
        .route("/v1/posts/delete", post(delete_post))
        .route("/v1/feed", get(feed))
        .route("/v1/feed/state", get(feed_state))
        .route("/v1/mentions", get(mentions))
        .route("/v1/unread", get(unread))
        .route("/v1/search", get(search))
        .route("/v1/read", post(mark_read))
        .route("/v1/dms", get(dms).post(send_dm))
        .route("/v1/files", get(files).post(share))
        .route("/v1/files/get", post(get_file))
        .route("/v1/files/find", get(find_file))
        .route("/v1/pins", get(pins).post(pin))
        .route("/v1/pins/remove", post(unpin))
        .route("/v1/pins/reconcile", post(reconcile_pins))
        .route("/v1/members/add-pinner", post(add_pinner))
        .route("/v1/workspace/policy", post(set_policy))
        .route("/v1/workspace/name", post(rename_workspace))
        .route("/v1/profile/name", post(rename_self))
        .route("/v1/web/upload", post(web::upload))
        .route("/v1/web/upload/check", post(web::upload_check))
        .route("/v1/web/fetch", post(web::fetch))
        .route("/v1/web/qr", post(web::qr))
        .route("/v1/web/download/{id}", get(web::download))
        .route("/v1/web/preview/{id}", get(web::preview))
        .route("/v1/web/thumb/{id}", get(web::thumb))
        .method_not_allowed_fallback(extract::wrong_method)
        .with_state(node);
    let private = node_routes
        .merge(browser)
        .layer(middleware::from_fn_with_state(
            (token, sessions.clone()),
            require_auth,
        ));
    public
        .merge(private)
        .fallback(extract::no_route)
        .layer(middleware::from_fn_with_state(sessions, web::guard))
}

/// Every `/v1` route: the bearer token, or a browser session (see
/// [`web`]); who called is left in the request's extensions.
async fn require_auth(
    State((token, sessions)): State<(String, std::sync::Arc<Sessions>)>,
    mut req: Request,
    next: Next,
) -> Response {
    match web::caller(&token, &sessions, &req) {
        Ok(caller) => {
            if let web::Caller::Session(id) = &caller {
                let live = web::LiveSession::new(sessions.clone(), id.clone());
                req.extensions_mut().insert(live);
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err((status, why)) => (status, Json(ErrorBody { error: why.into() })).into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A [`NodeError`] as an HTTP answer.
struct ApiError(NodeError);

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        Self(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        Self(NodeError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            NodeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::Conflict(_) => StatusCode::CONFLICT,
            NodeError::Forbidden(_) => StatusCode::FORBIDDEN,
            NodeError::Unreachable(_) => StatusCode::GATEWAY_TIMEOUT,
            NodeError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
            NodeError::Internal(_) | NodeError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = ErrorBody {
            error: self.0.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(Json(serde_json::to_value(v).map_err(NodeError::from)?))
}

async fn status(State(node): State<Node>) -> ApiResult {
    ok(node.status().await)
}

async fn peers(State(node): State<Node>) -> ApiResult {
    ok(node.peers().await)
}

async fn create_workspace(State(node): State<Node>, Json(b): Json<NameBody>) -> ApiResult {
    ok(node.create_workspace(&b.name).await?)
}

async fn invite(State(node): State<Node>, Json(b): Json<InviteBody>) -> ApiResult {
    if b.expires_secs == 0 {
        return Err(NodeError::BadRequest("an invite must be valid for some time".into()).into());
    }
    let spec = InviteSpec {
        dept: b.dept,
        role: b.role,
        ttl: Duration::from_secs(b.expires_secs),
    };
    ok(node.invite(spec).await?)
}

async fn join(State(node): State<Node>, Json(b): Json<JoinBody>) -> ApiResult {
    ok(node.join(&b.token).await?)
}

async fn depts(State(node): State<Node>) -> ApiResult {
    let roster = node.roster()?;
    let member = |id: &MemberId| DeptMember {
        id: *id,
        name: roster
            .member(id)
            .map_or("?", |m| m.name.as_str())
            .to_owned(),
    };
    let depts: Vec<DeptListing> = roster
        .dept_labels()
        .into_iter()
        .map(|(d, label)| DeptListing {
            id: d.id.clone(),
            name: d.name.clone(),
            label,
            members: d.members.iter().map(member).collect(),
        })
        .collect();
    ok(depts)
}

async fn dept_create(State(node): State<Node>, Json(b): Json<NameBody>) -> ApiResult {
    ok(node.dept_create_joined(&b.name).await?)
}

async fn dept_rename(State(node): State<Node>, Json(b): Json<RenameBody>) -> ApiResult {
    node.dept_rename(&b.old, &b.new).await?;
    ok(json!({"renamed": b.old, "to": b.new}))
}

async fn dept_add(State(node): State<Node>, Json(b): Json<MemberDeptBody>) -> ApiResult {
    node.dept_add(&b.member, &b.dept).await?;
    ok(json!({"added": b.member, "dept": b.dept}))
}

async fn dept_remove(State(node): State<Node>, Json(b): Json<MemberDeptBody>) -> ApiResult {
    node.dept_remove(&b.member, &b.dept).await?;
    ok(json!({"removed": b.member, "dept": b.dept}))
}

#[derive(Deserialize)]
struct MembersQuery {
    dept: Option<String>,
    /// Removed members too (`removed: true` in their record): what names
    /// their old posts.
    #[serde(default)]
    removed: bool,
}

async fn members(State(node): State<Node>, Query(q): Query<MembersQuery>) -> ApiResult {
    if q.removed && q.dept.is_none() {
        return ok(node.roster()?.members);
    }
    ok(node.members(q.dept.as_deref())?)
}

async fn promote(State(node): State<Node>, Json(b): Json<MemberBody>) -> ApiResult {
    ok(node.promote(&b.member).await?)
}

async fn remove_member(State(node): State<Node>, Json(b): Json<MemberBody>) -> ApiResult {
    ok(node.remove_member(&b.member).await?)
}

async fn create_post(State(node): State<Node>, Json(b): Json<PostBody>) -> ApiResult {
    ok(node
        .post_with_files(&b.dept, &b.text, b.reply_to.as_deref(), &b.files)
        .await?)
}

#[derive(Deserialize)]
struct FeedQuery {
    dept: String,
    #[serde(default = "default_limit")]
    limit: usize,
    before: Option<String>,
}

fn default_limit() -> usize {
    20
}

async fn feed(State(node): State<Node>, Query(q): Query<FeedQuery>) -> ApiResult {
    ok(node.feed(&q.dept, q.limit, q.before.as_deref())?)
}

/// `GET /v1/feed/state?dept=…`: how much of the feed is here, and whether
/// more is still arriving ([`meshwork_node::FeedState`]).
async fn feed_state(State(node): State<Node>, Query(q): Query<DeptQuery>) -> ApiResult {
    ok(node.feed_state(&q.dept)?)
}

/// `GET /v1/search?q=…[&dept=…][&limit=…]`: [`meshwork_node::SearchResults`].
#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    dept: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn search(State(node): State<Node>, Query(q): Query<SearchQuery>) -> ApiResult {
    ok(node.search(&q.q, q.dept.as_deref(), q.limit).await?)
}

async fn send_dm(State(node): State<Node>, Json(b): Json<DmBody>) -> ApiResult {
    ok(node.dm(&b.member, &b.text).await?)
}

#[derive(Deserialize)]
struct DmsQuery {
    member: Option<String>,
}

async fn dms(State(node): State<Node>, Query(q): Query<DmsQuery>) -> ApiResult {
    match q.member {
        Some(m) => ok(node.dm_conversation(&m)?),
        None => ok(node.dm_list()?),
    }
}

#[derive(Deserialize)]
struct LimitQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn mentions(State(node): State<Node>, Query(q): Query<LimitQuery>) -> ApiResult {
    ok(node.mentions(q.limit)?)
}

async fn unread(State(node): State<Node>) -> ApiResult {
    ok(node.unread()?)
}

async fn mark_read(State(node): State<Node>, Json(b): Json<ReadBody>) -> ApiResult {
    let what = match (b.dept, b.member) {
        (Some(d), None) => crate::node::ReadIn::Dept(d),
        (None, Some(m)) => crate::node::ReadIn::Member(m),
        _ => {
            return Err(NodeError::BadRequest(
                "name a department (`dept`) or a member (`member`), one of the two".into(),
            )
            .into())
        }
    };
    node.mark_read(&what)?;
    ok(node.unread()?)
}

async fn react(State(node): State<Node>, Json(b): Json<ReactBody>) -> ApiResult {
    node.react(&b.post, &b.emoji).await?;
    ok(json!({"post": b.post, "reacted": b.emoji}))
}

async fn edit_post(State(node): State<Node>, Json(b): Json<EditBody>) -> ApiResult {
    node.edit(&b.post, &b.text).await?;
    ok(json!({"edited": b.post}))
}

async fn delete_post(State(node): State<Node>, Json(b): Json<PostRef>) -> ApiResult {
    node.delete(&b.post).await?;
    ok(json!({"deleted": b.post}))
}

/// Shares a file from a path on this machine, streaming progress (see
/// [`with_progress`]). The CLI only: see [`web::CliOnly`].
async fn share(_: web::CliOnly, State(node): State<Node>, Json(b): Json<ShareBody>) -> Response {
    with_progress(move |progress| async move {
        let shared = node
            .share(&b.dept, &b.path, b.name.as_deref(), Some(progress))
            .await?;
        if b.announce {
            announce(&node, &shared).await;
        }
        Ok(shared)
    })
}

/// Posts that `file` was shared. The file is shared whatever happens
/// here: a post that fails is logged, not the share's failure.
pub(super) async fn announce(node: &Node, file: &crate::node::FileInfo) {
    if let Err(e) = node.announce_share(file).await {
        tracing::warn!(file = %file.entry.id, "shared, but could not say so in the feed: {e}");
    }
}

#[derive(Deserialize)]
struct DeptQuery {
    dept: String,
}

async fn files(State(node): State<Node>, Query(q): Query<DeptQuery>) -> ApiResult {
    ok(node.files(&q.dept)?)
}

/// Renames this member, for everyone.
async fn rename_self(State(node): State<Node>, Json(b): Json<NameBody>) -> ApiResult {
    node.rename_self(&b.name).await?;
    ok(json!({ "name": b.name }))
}

/// Renames the workspace (admins).
async fn rename_workspace(State(node): State<Node>, Json(b): Json<NameBody>) -> ApiResult {
    node.rename_workspace(&b.name).await?;
    ok(json!({ "name": b.name }))
}

#[derive(Deserialize)]
struct FindQuery {
    id: String,
}

/// `GET /v1/files/find?id=…`: a file or folder of my departments'
/// libraries by id, or by a name only one of them has — one request
/// whatever the number of departments. 404 when none has it, 400 for an
/// empty `id` or a name that several have.
async fn find_file(State(node): State<Node>, Query(q): Query<FindQuery>) -> ApiResult {
    if q.id.trim().is_empty() {
        return Err(NodeError::BadRequest(
            "name a file or folder: its id, or a name only one of them has".into(),
        )
        .into());
    }
    ok(node.file(&q.id)?.1)
}

/// Fetches a file to a path on this machine, streaming progress (see
/// [`with_progress`]). The CLI only: see [`web::CliOnly`].
async fn get_file(_: web::CliOnly, State(node): State<Node>, Json(b): Json<GetBody>) -> Response {
    with_progress(move |progress| async move {
        node.get(&b.id, &b.dest, Some(progress))
            .await
            .map(|path| Fetched { path })
    })
}

async fn pins(State(node): State<Node>) -> ApiResult {
    ok(node.pins()?)
}

async fn pin(State(node): State<Node>, Json(b): Json<PinBody>) -> ApiResult {
    if b.for_secs == 0 {
        return Err(NodeError::BadRequest("pin for some time: --for 7d, say".into()).into());
    }
    ok(node.pin(&b.id, Duration::from_secs(b.for_secs)).await?)
}

async fn unpin(State(node): State<Node>, Json(b): Json<UnpinBody>) -> ApiResult {
    ok(node.unpin(&b.id).await?)
}

async fn reconcile_pins(State(node): State<Node>) -> ApiResult {
    ok(node.reconcile_pins().await?)
}

async fn add_pinner(State(node): State<Node>, Json(b): Json<PinnerBody>) -> ApiResult {
    let (member, invite) = node.add_pinner(&b.peer, b.name.as_deref()).await?;
    ok(PinnerAdded {
        member,
        token: invite.token,
    })
}

async fn set_policy(State(node): State<Node>, Json(b): Json<PolicyBody>) -> ApiResult {
    let retention = b.retention_secs.map(Duration::from_secs);
    ok(node.set_policy(retention, b.replicas).await?)
}

/// Runs a long operation and answers with newline-delimited JSON: a
/// `{"progress": {"done", "total"}}` line now and then (bytes), then one
/// `{"ok": …}` or `{"error": …}` line.
fn with_progress<F, Fut, T>(work: F) -> Response
where
    F: FnOnce(crate::Progress) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
    T: serde::Serialize,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    let progress_tx = tx.clone();
    let progress: crate::Progress = std::sync::Arc::new(move |done, total| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due || done == total {
            *last = Some(std::time::Instant::now());
            let line = ProgressLine::<T>::Progress(ProgressReport { done, total });
            // A full channel only drops a progress line, never the result.
            let _ = progress_tx.try_send(ndjson(&line));
        }
    });
    tokio::spawn(async move {
        // A caller that goes away (Ctrl-C, a killed CLI) drops the response
        // body, which closes the channel: the work is dropped with it, so a
        // share stops before it is published and a download stops (both
        // leave nothing behind; a download resumes on the next `get`).
        let line = tokio::select! {
            r = work(progress) => ndjson(&match r {
                Ok(v) => ProgressLine::Ok(v),
                Err(e) => ProgressLine::Error(e.to_string()),
            }),
            () = tx.closed() => return,
        };
        let _ = tx.send(line).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// `line` as a line of newline-delimited JSON; an error line if it cannot
/// be written as JSON (a path that is not UTF-8).
fn ndjson<T: serde::Serialize>(line: &ProgressLine<T>) -> String {
    let text = serde_json::to_string(line).unwrap_or_else(|e| {
        let failed = ProgressLine::<()>::Error(format!("cannot write the answer: {e}"));
        serde_json::to_string(&failed).unwrap_or_default()
    });
    text + "\n"
}

/// Server-sent events: one `data:` line of JSON per [`crate::NodeEvent`].
/// The node's events as they happen, until the server begins to stop; a
/// browser session's stream ends sooner if the session does.
async fn events(
    State(node): State<Node>,
    Extension(stopping): Extension<Stopping>,
    session: Option<Extension<web::LiveSession>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let session = session.map(|Extension(s)| s);
    let ends = async move {
        let session_ends = async {
            match &session {
                Some(s) => s.ended().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = session_ends => {}
            () = stopping.0.cancelled() => {}
        }
    };
    let events = futures::stream::unfold(node.events(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some((Ok(SseEvent::default().data(data)), rx));
                }
                // A slow listener missed some: carry on with what comes next.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events.take_until(ends)).keep_alive(KeepAlive::default())
}
