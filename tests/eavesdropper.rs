//! A workspace member outside a department, speaking our protocols by hand
//! and recording every message it is sent — gossip, sync answers, pushes,
//! blob answers — while the department posts, messages and shares a file,
//! and while it asks every node for the department's documents itself. What
//! it recorded is decoded (automerge may compress text) and searched: the
//! roster is there (the recorder works), no post, message or file is.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, PeerId, StreamProtocol, Swarm};
use meshwork::crdt::automerge::sync::{self, SyncDoc};
use meshwork::crdt::automerge::{Automerge, ReadDoc, ROOT};
use meshwork::crdt::SyncPayload;
use meshwork::node::net::{roster_topic, BLOB_PROTOCOL, SYNC_PROTOCOL};
use meshwork::node::wire::{BlobRequest, BlobResponse, DocRef, SyncRequest, SyncResponse};
use meshwork::node::Home;

#[derive(NetworkBehaviour)]
struct Recorder {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    blob: request_response::cbor::Behaviour<BlobRequest, BlobResponse>,
}

fn recorder(key: libp2p::identity::Keypair, secret: [u8; 32]) -> Swarm<Recorder> {
    raw_swarm(key, secret, |key| Recorder {
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
        blob: request_response::cbor::Behaviour::new(
            [(StreamProtocol::new(BLOB_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default(),
        ),
    })
}

/// Everything the recorder was sent, and the documents it could rebuild.
#[derive(Default)]
struct Tape {
    bytes: Vec<Vec<u8>>,
    docs: Vec<(DocRef, Automerge)>,
}

impl Tape {
    fn heard(&self, text: &str) -> bool {
        let needle = text.as_bytes();
        let raw = self
            .bytes
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle));
        let decoded = self.docs.iter().any(|(_, d)| {
            let json = format!("{:?}", d.hydrate(None));
            json.contains(text)
        });
        raw || decoded
    }

    fn record_payload(&mut self, p: &Option<SyncPayload>) {
        if let Some(p) = p {
            self.bytes.push(p.message.clone());
        }
    }
}

/// Drives the swarm until `done` says stop, recording what arrives;
/// answers every request refusing, as a stranger to the document would.
async fn pump(
    swarm: &mut Swarm<Recorder>,
    tape: &mut Tape,
    mut until: impl FnMut(&RecorderEvent) -> bool,
) {
    let wait = async {
        loop {
            let SwarmEvent::Behaviour(ev) = swarm.select_next_some().await else {
                continue;
            };
            match &ev {
                RecorderEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                    tape.bytes.push(message.data.clone());
                }
                RecorderEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request, .. },
                    ..
                }) => tape.record_payload(&request.payload),
                RecorderEvent::Sync(request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            response: SyncResponse::Sync(p),
                            ..
                        },
                    ..
                }) => tape.record_payload(p),
                RecorderEvent::Blob(request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            response: BlobResponse::Piece(b),
                            ..
                        },
                    ..
                }) => tape.bytes.push(b.clone()),
                _ => {}
            }
            let stop = until(&ev);
            if let RecorderEvent::Sync(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = ev
            {
                let _ = swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, SyncResponse::Refused("recording".into()));
            }
            if stop {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("the recorder got its answer");
}

/// Runs automerge's sync protocol for `doc` with `peer` as far as the peer
/// lets it, keeping what it sends in a plain document.
async fn ask_for(
    swarm: &mut Swarm<Recorder>,
    tape: &mut Tape,
    peer: PeerId,
    workspace: [u8; 32],
    doc: DocRef,
) {
    let mut mine = Automerge::new();
    let mut state = sync::State::new();
    for round in 0..20 {
        let message = mine.generate_sync_message(&mut state).map(|m| SyncPayload {
            message: m.encode(),
            signatures: vec![],
        });
        let request = SyncRequest {
            workspace,
            doc: doc.clone(),
            first: round == 0,
            payload: message,
            covered: vec![],
        };
        swarm.behaviour_mut().sync.send_request(&peer, request);
        let mut answer = None;
        pump(swarm, tape, |ev| match ev {
            RecorderEvent::Sync(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                answer = Some(Some(response.clone()));
                true
            }
            RecorderEvent::Sync(request_response::Event::OutboundFailure { .. }) => {
                answer = Some(None);
                true
            }
            _ => false,
        })
        .await;
        match answer.flatten() {
            Some(SyncResponse::Sync(Some(p))) => {
                let m = sync::Message::decode(&p.message).unwrap();
                mine.receive_sync_message(&mut state, m).unwrap();
            }
            _ => break,
        }
    }
    tape.docs.push((doc, mine));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_outside_the_department_is_sent_none_of_it() {
    let (_clock, ada, bob, cleo, dave) = research().await;
    let research = dept_id(&ada, "Research");
    let workspace: [u8; 32] = hex::decode(ada.status().await.workspace.unwrap().id)
        .unwrap()
        .try_into()
        .unwrap();
    let secret = meshwork::node::wire::InviteToken::decode(&invite(&ada, None).await)
        .unwrap()
        .secret;
    until_roster(&dave, "Dave knows Research", |r| {
        r.resolve_dept("Research")
            .is_ok_and(|d| d.members.len() == 3)
    })
    .await;

    // Dave's device becomes the recorder, connected to all three.
    let dave_dir = stop(dave).await;
    let key = Home::new(dave_dir.path()).identity().unwrap().keypair;
    let mut swarm = recorder(key, secret);
    let topic = gossipsub::IdentTopic::new(roster_topic(&workspace));
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    let mut tape = Tape::default();
    let mut peers = Vec::new();
    for n in [&ada, &bob, &cleo] {
        swarm
            .dial(addr(n).await.parse::<libp2p::Multiaddr>().unwrap())
            .unwrap();
        peers.push(n.peer_id());
    }
    let mut connected = std::collections::HashSet::new();
    tokio::time::timeout(WAIT, async {
        while connected.len() < peers.len() {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                swarm.select_next_some().await
            {
                connected.insert(peer_id);
            }
        }
    })
    .await
    .expect("the recorder connects to all three");

    // The department talks.
    let post = "quarterly numbers 8c3f";
    let reply = "looks good e71d";
    let dm = "between Bob and Cleo 2a9b";
    let marker = "file contents 5d0c";
    let p = bob.post("Research", post, None).await.unwrap();
    until("Cleo sees Bob's post", || async {
        cleo.feed("Research", 10, None).is_ok_and(|f| f.len() == 1)
    })
    .await;
    cleo.post("Research", reply, Some(&p.id)).await.unwrap();
    bob.dm("Cleo", dm).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("notes.txt");
    std::fs::write(&path, marker.repeat(1000)).unwrap();
    let file = bob.share("Research", &path, None, None).await.unwrap();
    until("Cleo has it all", || async {
        cleo.feed("Research", 10, None)
            .is_ok_and(|f| f.len() == 1 && f[0].replies.len() == 1)
            && cleo.files("Research").is_ok_and(|f| f.len() == 1)
    })
    .await;
    cleo.get(&file.entry.id, &work.path().join("got.txt"), None)
        .await
        .unwrap();
    ada.dept_create("Barrier").await.unwrap();

    // The recorder asks every node for every document, and for the blob.
    let direct = DocRef::Direct(meshwork::crdt::feed::direct_id(
        &bob.member_id(),
        &cleo.member_id(),
    ));
    for peer in peers.clone() {
        for doc in [
            DocRef::Roster,
            DocRef::Feed(research.clone()),
            DocRef::Library(research.clone()),
            direct.clone(),
        ] {
            ask_for(&mut swarm, &mut tape, peer, workspace, doc).await;
        }
        let hash: [u8; 32] = hex::decode(&file.entry.blob).unwrap().try_into().unwrap();
        swarm.behaviour_mut().blob.send_request(
            &peer,
            BlobRequest {
                workspace,
                hash,
                piece: 0,
            },
        );
        let mut refused = false;
        pump(&mut swarm, &mut tape, |ev| match ev {
            RecorderEvent::Blob(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                refused = matches!(response, BlobResponse::Refused(_));
                true
            }
            RecorderEvent::Blob(request_response::Event::OutboundFailure { .. }) => true,
            _ => false,
        })
        .await;
        assert!(
            refused,
            "a blob of a department's library is not served outside it"
        );
    }

    // The recorder works: it rebuilt the roster, department names included.
    assert!(tape.heard("Barrier") && tape.heard("Research"));
    let roster = tape
        .docs
        .iter()
        .find(|(d, m)| *d == DocRef::Roster && m.get(ROOT, "kind").unwrap().is_some());
    assert!(roster.is_some(), "the roster reached the recorder");
    // And heard nothing of the department's.
    for secret in [post, reply, dm, marker, "notes.txt"] {
        assert!(!tape.heard(secret), "the recorder heard {secret:?}");
    }
    for (doc, m) in &tape.docs {
        if *doc != DocRef::Roster {
            assert!(m.get_heads().is_empty(), "{doc:?} reached the recorder");
        }
    }
}
