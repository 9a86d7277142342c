//! `meshwork daemon` and `meshwork up`: a node in the foreground, its
//! control API on loopback, a clean stop on Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use meshwork_node::node::InviteSpec;
use meshwork_node::{api, crdt::roster::Role, Home, Node, NodeConfig};
use tracing_subscriber::EnvFilter;

use crate::args::DaemonArgs;

/// The names `up` starts with (see `UpArgs`).
pub(crate) struct UpNames {
    pub name: Option<String>,
    pub workspace: Option<String>,
}

/// Runs the node until Ctrl-C or SIGTERM; `up` (with its names) also
/// creates what is missing and prints how to invite and log in.
pub(crate) fn run(home: Home, args: DaemonArgs, up: Option<UpNames>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,libp2p=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(home, args, up))
}

async fn serve(home: Home, args: DaemonArgs, up: Option<UpNames>) -> Result<()> {
    let names = up.as_ref();
    if names.is_some() && !home.has_identity() {
        let name = names.and_then(|n| n.name.clone()).unwrap_or_else(whoami);
        home.init(&name)?;
        println!(
            "Created an identity for {name:?} in {}",
            home.root().display()
        );
    }
    let mut cfg = NodeConfig::new(home.root());
    if !args.listen.is_empty() {
        cfg.net.listen = parse_addrs(&args.listen, "--listen")?;
    }
    cfg.net.peers = parse_addrs(&args.peers, "--peer")?;
    cfg.net.mdns = !args.no_mdns;
    cfg.volunteer = !args.no_volunteer;
    cfg.disk = meshwork_node::disk::Disk::system(args.min_free);
    if args.pin {
        cfg.pin = Some(meshwork_node::node::PinNodeConfig {
            quota: args.pin_quota,
        });
        tracing::info!(quota = args.pin_quota, "running as a pin node");
    }
    let node = Node::start(cfg).await?;
    if let Some(names) = names {
        start_with(&node, names).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api_addr = args.api.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (server, api_task) = api::serve(node.clone(), api_addr, async {
        let _ = stop_rx.await;
    })
    .await?;
    println!("member id: {}", node.member_id());
    for addr in node.listen_addrs().await {
        println!("listening on {addr}/p2p/{}", node.peer_id());
    }
    println!(
        "control API on http://{} (token in {})",
        server.addr,
        home.root().join("api.json").display()
    );
    if up.is_some() {
        print_invite(&node).await;
        let link = server.web.login_link();
        println!("web app (one-time login link): {link}");
        open_browser(&link);
    }
    println!("ready");
    shutdown_signal().await;
    eprintln!("stopping…");
    let _ = stop_tx.send(());
    let _ = api_task.await;
    node.shutdown().await;
    home.clear_api();
    Ok(())
}

/// Opens `url` in the desktop's browser, where there is a desktop and a
/// person at it (not under CI); quietly does nothing otherwise.
pub(crate) fn open_browser(url: &str) {
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    let ci = std::env::var_os("CI").is_some();
    if desktop && !ci && std::io::stdout().is_terminal() {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

async fn print_invite(node: &Node) {
    let spec = InviteSpec {
        dept: None,
        role: Role::Member,
        ttl: std::time::Duration::from_secs(24 * 3600),
    };
    match node.invite(spec).await {
        Ok(invite) => {
            println!("\nInvite a colleague (valid 24h, one use) — on their machine run:\n");
            println!("  meshwork join {}\n", invite.token);
        }
        Err(e) => println!("(no invite: {e})"),
    }
}

/// `up`'s names: a workspace created if there is none, and names that
/// differ from those given changed (yours for everyone; the workspace's if
/// you are an admin).
async fn start_with(node: &Node, names: &UpNames) -> Result<()> {
    if let Some(name) = names.name.as_deref().filter(|n| *n != node.name()) {
        node.rename_self(name).await?;
        println!("You are now {name:?}");
    }
    match node.status().await.workspace {
        None => {
            let name = names
                .workspace
                .clone()
                .unwrap_or_else(|| format!("{}'s workspace", node.name()));
            let ws = node.create_workspace(&name).await?;
            println!("Created workspace {:?}", ws.name);
        }
        Some(ws) => {
            if let Some(name) = names.workspace.as_deref().filter(|n| *n != ws.name) {
                node.rename_workspace(name).await?;
                println!("Renamed the workspace {name:?}");
            }
        }
    }
    Ok(())
}

fn parse_addrs(raw: &[String], flag: &str) -> Result<Vec<meshwork_node::net::Multiaddr>> {
    raw.iter()
        .map(|a| {
            a.parse().with_context(|| {
                format!("{flag} {a:?} is not a multiaddr (like /ip4/0.0.0.0/tcp/4001)")
            })
        })
        .collect()
}

fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "Meshwork user".to_owned())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
