//! A member's device turned hostile, speaking our protocols by hand with a
//! raw libp2p swarm: garbage sync messages, a sync message carrying garbage
//! changes, another workspace's id, garbage gossip. The honest node refuses
//! each, cuts the sender off where it should, and carries on working.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, PeerId, StreamProtocol, Swarm};
use meshwork::crdt::automerge::sync;
use meshwork::crdt::SyncPayload;
use meshwork::node::net::{roster_topic, SYNC_PROTOCOL};
use meshwork::node::wire::{DocRef, SyncRequest, SyncResponse};
use meshwork::node::Home;

#[derive(NetworkBehaviour)]
struct Raw {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
}

/// A bare swarm with the member's key and the workspace's network key.
fn raw_member(key: libp2p::identity::Keypair, secret: [u8; 32]) -> Swarm<Raw> {
    raw_swarm(key, secret, |key| Raw {
        gossipsub: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .unwrap(),
        sync: request_response::cbor::Behaviour::new(
            [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default(),
        ),
    })
}

/// Sends one sync request and returns the answer, or `None` if the
/// connection was cut instead.
async fn ask(swarm: &mut Swarm<Raw>, peer: PeerId, request: SyncRequest) -> Option<SyncResponse> {
    swarm.behaviour_mut().sync.send_request(&peer, request);
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(RawEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                })) => return Some(response),
                SwarmEvent::Behaviour(RawEvent::Sync(
                    request_response::Event::OutboundFailure { .. },
                )) => return None,
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("an answer or a failure")
}

async fn connect(swarm: &mut Swarm<Raw>, addr: &str) -> PeerId {
    swarm
        .dial(addr.parse::<libp2p::Multiaddr>().unwrap())
        .unwrap();
    let wait = async {
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                swarm.select_next_some().await
            {
                return peer_id;
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_member_is_refused_and_the_node_carries_on() {
    let (_clock, ada, mut others) = office(&["Mallory", "Cleo"]).await;
    let cleo = others.pop().unwrap();
    let mallory = others.pop().unwrap();
    let ws: [u8; 32] = hex::decode(ada.status().await.workspace.unwrap().id)
        .unwrap()
        .try_into()
        .unwrap();
    let secret = meshwork::node::wire::InviteToken::decode(&invite(&ada, None).await)
        .unwrap()
        .secret;
    let dir = stop(mallory).await;
    let key = Home::new(dir.path()).identity().unwrap().keypair;
    let mut raw = raw_member(key, secret);
    let ada_peer = connect(&mut raw, &addr(&ada).await).await;

    // Another workspace's id: refused, politely.
    let other = SyncRequest {
        workspace: [7; 32],
        doc: DocRef::Roster,
        first: true,
        payload: None,
        covered: Vec::new(),
    };
    assert!(matches!(
        ask(&mut raw, ada_peer, other).await,
        Some(SyncResponse::Refused(_))
    ));

    // Bytes that are no sync message at all: refused.
    let garbage = SyncRequest {
        workspace: ws,
        doc: DocRef::Roster,
        first: true,
        payload: Some(SyncPayload {
            message: vec![0x42, 0xff, 0x00, 0x13],
            signatures: vec![],
        }),
        covered: Vec::new(),
    };
    assert!(matches!(
        ask(&mut raw, ada_peer, garbage).await,
        Some(SyncResponse::Refused(_))
    ));

    // Garbage gossip on the workspace topic: rejected, not stored.
    let topic = gossipsub::IdentTopic::new(roster_topic(&ws));
    raw.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    let _ = raw
        .behaviour_mut()
        .gossipsub
        .publish(topic, b"not a change".to_vec());

    // A well-formed sync message whose "change" is garbage: refused, and
    // the sender is cut off.
    let message = sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: vec![vec![0x85, 0x6f, 0x4a, 0x83, 0xde, 0xad]].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let poisoned = SyncRequest {
        workspace: ws,
        doc: DocRef::Roster,
        first: true,
        payload: Some(SyncPayload {
            message: message.encode(),
            signatures: vec![],
        }),
        covered: Vec::new(),
    };
    match ask(&mut raw, ada_peer, poisoned).await {
        None
        | Some(SyncResponse::Refused(_))
        | Some(SyncResponse::Sync(_))
        | Some(SyncResponse::Removed(_)) => {}
    }
    until("Ada cuts the sender off", || async {
        !ada.peers()
            .await
            .iter()
            .any(|p| p.peer_id == raw.local_peer_id().to_string())
    })
    .await;

    // Ada still works, and an honest member still follows her.
    ada.dept_create("Unshaken").await.unwrap();
    until_roster(&cleo, "Cleo sees Ada's change", |r| {
        r.resolve_dept("Unshaken").is_ok()
    })
    .await;
    assert_eq!(ada.roster().unwrap(), cleo.roster().unwrap());
}
