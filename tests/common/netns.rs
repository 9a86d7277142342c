//! Two network namespaces this test creates, joined by a veth pair: hosts
//! 10.77.0.1 (`a`) and 10.77.0.2 (`b`), each with its loopback up and a
//! multicast route (for mDNS). Removed on drop. Needs root and iproute2,
//! as on CI; [`Lan::for_root`] says why it skipped elsewhere.

use std::process::Command;

use super::bin::Host;

/// The two namespaces and the veth end in `a`.
pub struct Lan {
    pub a: String,
    pub b: String,
    va: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Lan {
    /// The LAN, or `None` (having said why) when this process is not root.
    pub fn for_root(tag: &str) -> Option<Self> {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let lan = is_root.then(|| Lan::new(tag)).flatten();
        if lan.is_none() {
            eprintln!("skipped: creating network namespaces needs root and iproute2");
        }
        lan
    }

    fn new(tag: &str) -> Option<Self> {
        let id = std::process::id();
        let lan = Lan {
            a: format!("mw{id}{tag}a"),
            b: format!("mw{id}{tag}b"),
            va: format!("mv{id}{tag}a"),
        };
        let vb = format!("mv{id}{tag}b");
        if !ip(&["netns", "add", &lan.a]) {
            return None;
        }
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &lan.b],
            vec!["link", "add", &lan.va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &lan.va, "netns", &lan.a],
            vec!["link", "set", &vb, "netns", &lan.b],
            vec!["-n", &lan.a, "addr", "add", "10.77.0.1/24", "dev", &lan.va],
            vec!["-n", &lan.b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", &lan.a, "link", "set", &lan.va, "up"],
            vec!["-n", &lan.b, "link", "set", &vb, "up"],
            vec!["-n", &lan.a, "link", "set", "lo", "up"],
            vec!["-n", &lan.b, "link", "set", "lo", "up"],
            vec!["-n", &lan.a, "route", "add", "224.0.0.0/4", "dev", &lan.va],
            vec!["-n", &lan.b, "route", "add", "224.0.0.0/4", "dev", &vb],
        ];
        for step in steps {
            assert!(ip(&step), "ip {step:?} failed");
        }
        Some(lan)
    }

    /// Where commands run on each side: `a`, `b`.
    pub fn hosts(&self) -> (Host<'_>, Host<'_>) {
        (
            Host {
                netns: Some(&self.a),
            },
            Host {
                netns: Some(&self.b),
            },
        )
    }

    /// Takes the link down or up (`state`): no FIN, no RST, the packets
    /// just stop.
    pub fn set_link(&self, state: &str) {
        assert!(ip(&["-n", &self.a, "link", "set", &self.va, state]));
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}
