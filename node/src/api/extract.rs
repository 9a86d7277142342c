//! axum's extractors, their rejections answered as every other API error
//! is: `{"error": …}` in JSON, with axum's status — 400 for a body that is
//! not JSON or a query or path that does not parse, 415 for a body not
//! declared `application/json`, 422 for JSON of the wrong shape, 413 for one
//! too large. (axum's own answer is plain text.) And the routes no request
//! matched, likewise.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::ErrorBody;

/// A JSON request body; also a JSON answer.
pub(super) struct Json<T>(pub T);

/// A request's query string.
pub(super) struct Query<T>(pub T);

/// A route's path parameters.
pub(super) struct Path<T>(pub T);

/// An extractor's refusal, as JSON.
pub(super) struct Rejection {
    status: StatusCode,
    error: String,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.error };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Turns each of axum's rejection types (they share no trait, only these
/// two methods) into a [`Rejection`].
macro_rules! rejection_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Rejection {
            fn from(e: $t) -> Self {
                Self { status: e.status(), error: e.body_text() }
            }
        }
    )*};
}

rejection_from!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::PathRejection
);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Rejection> {
        let axum::Json(v) = axum::Json::from_request(req, state).await?;
        Ok(Self(v))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let axum::extract::Path(v) = axum::extract::Path::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// What a request for a route that does not exist is answered.
pub(super) async fn no_route() -> Rejection {
    Rejection {
        status: StatusCode::NOT_FOUND,
        error: "no such route".into(),
    }
}

/// What a request with a method its route does not take is answered.
pub(super) async fn wrong_method() -> Rejection {
    Rejection {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: "this route does not take that method".into(),
    }
}
