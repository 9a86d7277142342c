//! The task that lets documents nobody uses leave memory
//! ([`crate::shared`]'s `idle` module says how they come back).

use std::time::Duration;

use tracing::debug;

use super::Node;

impl Node {
    /// Unloads the department documents unused for `idle_for`, compacting
    /// in the store those with [`super::NodeConfig::compact_after`] changes
    /// stored loose; returns how many left memory. The node does this
    /// on its own every [`super::NodeConfig::unload_idle_after`]; tests and
    /// benchmarks call it to see it happen now.
    pub fn unload_idle(&self, idle_for: Duration) -> Result<usize, crate::NodeError> {
        let unloaded = self.shared.unload_idle(idle_for, self.cfg.compact_after)?;
        if unloaded > 0 {
            crate::memory::release_freed();
        }
        Ok(unloaded)
    }

    /// The department documents (feeds, conversations, libraries, days of
    /// the pin ledger) in memory now. (A member's pin passes read its
    /// libraries and the ledger's live days every sync interval: those
    /// stay.)
    pub fn loaded_docs(&self) -> Vec<crate::wire::DocRef> {
        self.shared.loaded_docs()
    }

    /// Starts the task that unloads idle documents, if the configuration
    /// asks for it: it looks as often as a document must have been idle.
    pub(super) fn spawn_unloader(&self) {
        let Some(after) = self.cfg.unload_idle_after else {
            return;
        };
        let node = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(after);
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = node.clone();
                match tokio::task::spawn_blocking(move || n.unload_idle(after)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(unloaded)) => debug!("{unloaded} idle documents unloaded"),
                    Ok(Err(e)) => debug!("unloading idle documents: {e}"),
                    Err(_) => return,
                }
            }
        });
        let old = self
            .unloader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }
}
