//! LAN discovery with mDNS, for real: two hosts in network namespaces this
//! test creates, joined by a veth pair. The joiner's invite carries no
//! address at all, so it can only find the admin by mDNS.
//!
//! Needs root and iproute2 (as on CI); elsewhere it says why it skipped.

mod common;

use common::bin::until;
use common::netns::Lan;
use meshwork::node::wire::InviteToken;

#[test]
fn a_joiner_finds_a_member_on_the_lan_by_mdns() {
    let Some(lan) = Lan::for_root("m") else {
        return;
    };
    let (a, b) = lan.hosts();
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
