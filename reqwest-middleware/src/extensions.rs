//! Per-request settings, passed as `reqwest_middleware` extensions.

use std::borrow::Cow;

/// Names the span of one request.
///
/// ```
/// # async fn f(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
/// use opentracing_reqwest::OperationName;
/// client
///     .get("http://billing.internal/invoices/42")
///     .with_extension(OperationName::new("fetch invoice"))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationName(pub Cow<'static, str>);

impl OperationName {
    /// The name `name`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        OperationName(name.into())
    }
}

/// Names the span of one request after a route template: `GET
/// /users/{id}` for `RouteTemplate::new("/users/{id}")`, one operation for
/// every user, where the URL would make one per user.
///
/// ```
/// # async fn f(client: reqwest_middleware::ClientWithMiddleware, id: u64) -> reqwest_middleware::Result<()> {
/// use opentracing_reqwest::RouteTemplate;
/// client
///     .get(format!("http://users.internal/users/{id}"))
///     .with_extension(RouteTemplate::new("/users/{id}"))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate(pub Cow<'static, str>);

impl RouteTemplate {
    /// The template `template`.
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        RouteTemplate(template.into())
    }
}

/// Leaves one request untraced: no span, and its headers untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipTracing;

/// How many times the middleware has seen this request: a retry
/// middleware placed before it sends the same extensions with every
/// attempt.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempts(pub(crate) u32);
