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
    /// A fault of this node: disk, database, a bug.
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// The error a command gets when this node has no workspace yet.
    pub fn no_workspace() -> Self {
        NodeError::Conflict(
            "this node is not in a workspace yet: run `meshwork workspace create NAME` or `meshwork join TOKEN`"
                .into(),
        )
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Internal(format!("I/O error: {e}"))
    }
}

impl From<meshwork_blobs::BlobError> for NodeError {
    fn from(e: meshwork_blobs::BlobError) -> Self {
        match e {
            meshwork_blobs::BlobError::NotFound(_) => NodeError::NotFound(e.to_string()),
            meshwork_blobs::BlobError::Input(_) => NodeError::BadRequest(e.to_string()),
            _ if e.is_disk_full() => NodeError::NoSpace(e.to_string()),
            _ => NodeError::Internal(e.to_string()),
        }
    }
}

impl From<sled::Error> for NodeError {
    fn from(e: sled::Error) -> Self {
        NodeError::Internal(format!("database error: {e}"))
    }
}

impl From<postcard::Error> for NodeError {
    fn from(e: postcard::Error) -> Self {
        NodeError::Internal(format!("encoding error: {e}"))
    }
}

impl From<serde_json::Error> for NodeError {
    fn from(e: serde_json::Error) -> Self {
        NodeError::Internal(format!("JSON error: {e}"))
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
            e => NodeError::Internal(e.to_string()),
        }
    }
}
