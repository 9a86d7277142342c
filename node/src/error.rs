//! The node's errors, each worded for the person who will read it.

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The request itself is wrong; the text says how to fix it.
    #[error("{0}")]
    BadRequest(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No peer could be reached in time.
    #[error("{0}")]
    Unreachable(String),
    /// What was asked needs more disk than this node has to spare.
    #[error("{0}")]
    NoSpace(String),
    /// A fault of this node with nothing underneath: a bug, a stopped
    /// task.
    #[error("{0}")]
    Internal(String),
    /// A fault of this node that another error caused (disk, database, a
    /// task): what was being done, and the cause, kept for whoever
    /// inspects it ([`std::error::Error::source`]).
    #[error("{context}: {source}")]
    Failed {
        /// What failed, worded for the reader.
        context: String,
        /// Why.
        source: BoxError,
    },
}

/// Any error, as a [`NodeError::Failed`]'s cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl NodeError {
    /// The error a command gets when this node has no workspace yet.
    pub fn no_workspace() -> Self {
        NodeError::Conflict(
            "this node is not in a workspace yet: run `meshwork workspace create NAME` or `meshwork join TOKEN`"
                .into(),
        )
    }
}

impl NodeError {
    /// A fault of this node caused by `source` while doing `context`.
    pub fn failed(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        NodeError::Failed {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Names what was being done when an error came up: the error stays the
/// [`NodeError::Failed`]'s source.
pub(crate) trait Context<T> {
    /// `Err(e)` becomes a [`NodeError::Failed`] caused by `e`.
    fn context(self, what: impl Into<String>) -> Result<T, NodeError>;
}

impl<T, E: Into<BoxError>> Context<T> for Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T, NodeError> {
        self.map_err(|e| NodeError::failed(what, e))
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::failed("I/O error", e)
    }
}

impl From<meshwork_blobs::BlobError> for NodeError {
    fn from(e: meshwork_blobs::BlobError) -> Self {
        match e {
            meshwork_blobs::BlobError::NotFound(_) => NodeError::NotFound(e.to_string()),
            meshwork_blobs::BlobError::Input(_) => NodeError::BadRequest(e.to_string()),
            _ if e.is_disk_full() => NodeError::NoSpace(e.to_string()),
            _ => NodeError::failed("blob store", e),
        }
    }
}

impl From<sled::Error> for NodeError {
    fn from(e: sled::Error) -> Self {
        NodeError::failed("database error", e)
    }
}

impl From<postcard::Error> for NodeError {
    fn from(e: postcard::Error) -> Self {
        NodeError::failed("encoding error", e)
    }
}

impl From<serde_json::Error> for NodeError {
    fn from(e: serde_json::Error) -> Self {
        NodeError::failed("JSON error", e)
    }
}

impl From<tokio::task::JoinError> for NodeError {
    fn from(e: tokio::task::JoinError) -> Self {
        NodeError::failed("a background task failed", e)
    }
}

impl From<meshwork_crdt::roster::RosterError> for NodeError {
    fn from(e: meshwork_crdt::roster::RosterError) -> Self {
        use meshwork_crdt::roster::RosterError as R;
        match e {
            R::NotAdmin => NodeError::Forbidden(e.to_string()),
            R::UnknownMember(_) | R::UnknownDept { .. } => NodeError::NotFound(e.to_string()),
            R::AmbiguousMember { .. } | R::AmbiguousDept { .. } => {
                NodeError::BadRequest(e.to_string())
            }
            R::DeptExists(_) | R::DeptFull(_) | R::AlreadyInDept { .. } | R::Removed(_) => {
                NodeError::Conflict(e.to_string())
            }
            _ => NodeError::BadRequest(e.to_string()),
        }
    }
}

impl From<meshwork_crdt::signed::DocError> for NodeError {
    fn from(e: meshwork_crdt::signed::DocError) -> Self {
        use meshwork_crdt::signed::DocError as D;
        match e {
            D::Rejected(r) => NodeError::Forbidden(r.to_string()),
            e => NodeError::failed("document", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_fault_keeps_its_cause() {
        let disk = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let e: Result<(), _> = Err(disk);
        let e = e.context("writing the piece").unwrap_err();
        assert_eq!(e.to_string(), "writing the piece: no space left");
        let cause = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            cause.map(|c| c.kind()),
            Some(std::io::ErrorKind::StorageFull)
        );
    }
}
