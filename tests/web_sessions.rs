//! Web-app sessions on a node's real control API, with the node's clock
//! moved by hand: a session ends after `SESSION_IDLE_MS` without a request,
//! each request with its token keeps it alive, a request that only carries
//! its cookie does not, and a login link expires unredeemed.

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
    let (server, _task) = api::serve(
        ada.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let addr = server.addr.to_string();
    let path = |link: String| link[format!("http://{addr}").len()..].to_owned();

    // A link not redeemed within two minutes is refused.
    let stale = path(server.web.login_link());
    clock.advance(Duration::from_secs(121));
    let refused = http(&addr, &format!("GET {stale} HTTP/1.1")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let login = http(
        &addr,
        &format!("GET {} HTTP/1.1", path(server.web.login_link())),
    )
    .await;
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
