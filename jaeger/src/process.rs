//! What every exported batch says about where its spans come from.

use opentracing_api::Tag;

/// The process a batch comes from: service name and process tags.
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    /// The service name.
    pub service_name: String,
    /// Process tags (`hostname`, `ip`, `jaeger.version`, `client-uuid`, and
    /// the user's).
    pub tags: Vec<Tag>,
}
