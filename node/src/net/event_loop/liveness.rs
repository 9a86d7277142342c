//! Dead links. A link that dies without a FIN (a cable pulled, a laptop
//! asleep, a NAT that forgot us) leaves an idle TCP connection ESTABLISHED
//! for good, and in libp2p 0.57 a failed ping closes nothing: it is only
//! reported. So the loop closes a connection whose pings fail; the usual
//! `ConnectionClosed` path then takes the peer out of `peers`, marks it
//! absent and forgets its sync sessions. `PING_INTERVAL` states the bound.

use libp2p::ping;
use tracing::{debug, info};

use super::EventLoop;

impl EventLoop {
    pub(super) fn on_ping(&mut self, event: ping::Event) {
        let ping::Event {
            peer,
            connection,
            result,
        } = event;
        let Err(failure) = result else {
            return;
        };
        if is_dead_link(&failure) {
            info!(%peer, "link dead ({failure}): closing the connection");
            self.swarm.close_connection(connection);
        } else {
            debug!(%peer, "{failure}: its link cannot be checked");
        }
    }
}

/// Whether a ping failure, as libp2p reports it, shows a dead link: a
/// timeout or an error, yes; a peer that does not speak ping at all, no (it
/// is not one of our nodes — test harnesses and probes — and it says nothing
/// about the link, which answered the negotiation).
///
/// One reported failure is enough. libp2p's ping handler keeps the first
/// failure in a row to itself and reports only from the second on, so a
/// reported failure already means two consecutive pings unanswered — over
/// at least `interval + timeout` — which a live link that is merely slow
/// or busy does not produce.
fn is_dead_link(failure: &ping::Failure) -> bool {
    match failure {
        ping::Failure::Timeout | ping::Failure::Other { .. } => true,
        ping::Failure::Unsupported => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_errors_are_dead_links_a_peer_without_ping_is_not() {
        assert!(is_dead_link(&ping::Failure::Timeout));
        // What libp2p reports when the second ping's stream cannot even be
        // negotiated in time.
        let error = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "ping protocol negotiation timed out",
        );
        assert!(is_dead_link(&ping::Failure::Other {
            error: Box::new(error)
        }));
        assert!(!is_dead_link(&ping::Failure::Unsupported));
    }
}
