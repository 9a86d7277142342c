//! LAN discovery with mDNS, for real: two hosts in network namespaces this
//! test creates, joined by a veth pair. The joiner's invite carries no
//! address at all, so it can only find the admin by mDNS.
//!
//! Needs root and iproute2 (as on CI); elsewhere it says why it skipped.

mod common;

use std::process::Command;

use common::bin::{until, Host};
use meshwork::node::wire::InviteToken;

/// Two namespaces linked by a veth pair; removed on drop.
struct Lan {
    a: String,
    b: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Lan {
    fn new() -> Option<Self> {
        let id = std::process::id();
        let lan = Lan {
            a: format!("mw{id}a"),
            b: format!("mw{id}b"),
        };
        let (va, vb) = (format!("mv{id}a"), format!("mv{id}b"));
        if !ip(&["netns", "add", &lan.a]) {
            return None;
        }
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &lan.b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", &lan.a],
            vec!["link", "set", &vb, "netns", &lan.b],
            vec!["-n", &lan.a, "addr", "add", "10.77.0.1/24", "dev", &va],
            vec!["-n", &lan.b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", &lan.a, "link", "set", &va, "up"],
            vec!["-n", &lan.b, "link", "set", &vb, "up"],
            vec!["-n", &lan.a, "link", "set", "lo", "up"],
            vec!["-n", &lan.b, "link", "set", "lo", "up"],
            vec!["-n", &lan.a, "route", "add", "224.0.0.0/4", "dev", &va],
            vec!["-n", &lan.b, "route", "add", "224.0.0.0/4", "dev", &vb],
        ];
        for step in steps {
            assert!(ip(&step), "ip {step:?} failed");
        }
        Some(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

#[test]
fn a_joiner_finds_a_member_on_the_lan_by_mdns() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let lan = match is_root.then(Lan::new).flatten() {
        Some(lan) => lan,
        None => {
            eprintln!("skipped: creating network namespaces needs root and iproute2");
            return;
        }
    };
    let (a, b) = (
        Host {
            netns: Some(&lan.a),
        },
        Host {
            netns: Some(&lan.b),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (ha, hb) = (dir.path().join("ada"), dir.path().join("bob"));
    a.ok(&ha, &["init", "--name", "Ada"]);
    b.ok(&hb, &["init", "--name", "Bob"]);
    let listen = ["--listen", "/ip4/0.0.0.0/tcp/0"];
    let _da = a.daemon(&ha, &listen);
    let _db = b.daemon(&hb, &listen);

    a.ok(&ha, &["workspace", "create", "Acme"]);
    let token = a.ok(&ha, &["invite"]);
    let mut token = InviteToken::decode(token.trim()).unwrap();
    token.addrs.clear(); // nothing to dial: only mDNS can find Ada
    let joined = b.json(&hb, &["join", &token.encode().unwrap(), "--json"]);
    assert_eq!(joined["name"], "Acme");

    a.ok(&ha, &["dept", "create", "Found"]);
    until("Bob sees Ada's department", || {
        b.json(&hb, &["dept", "list", "--json"])
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["name"] == "Found"))
    });
}
