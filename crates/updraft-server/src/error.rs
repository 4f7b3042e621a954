use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (listen address, database URL, token file...).
    #[error("{0}")]
    Config(String),
    /// The store could not be read or failed verification.
    #[error(transparent)]
    Store(Box<updraft_publisher::Error>),
    /// The statistics database failed.
    #[error("The statistics database `{path}` failed: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The PostgreSQL database failed (its URL is shown with the password
    /// replaced by `***`).
    #[error("PostgreSQL at `{url}` failed to {action}: {message}")]
    Postgres {
        /// The database URL, redacted.
        url: String,
        /// What was being done.
        action: &'static str,
        /// The cause, with the server's message.
        message: String,
    },
    /// The database's schema was migrated by a newer updraft.
    #[error(
        "The database `{database}` has schema version {found}, newer than this updraft understands ({supported}): a newer updraft migrated it. Run that newer updraft, or point `--database` at another database"
    )]
    SchemaTooNew {
        /// The database (file path, or URL with the password redacted).
        database: String,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The address to listen on is taken by another program.
    #[error(
        "Could not listen on `{address}`: another program (perhaps another `updraft serve`) already uses it; stop it, or choose another address with `--listen 127.0.0.1:PORT`"
    )]
    AddressInUse {
        /// The address.
        address: String,
    },
    /// A socket or file operation failed.
    #[error("Could not {action} `{target}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The address or file.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<updraft_publisher::Error> for Error {
    fn from(error: updraft_publisher::Error) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answered to an HTTP client as `{"error": "..."}` with a 4xx (or,
/// for a server-side fault, a 5xx) status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "a valid admin token is required (Authorization: Bearer <token>)".into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// A storage failure: 503 when the database is unreachable (try again
    /// later), 500 otherwise. The message names the database (password
    /// redacted).
    pub(crate) fn storage(error: Error) -> Self {
        match error {
            Error::Postgres { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("the database is unavailable, try again shortly: {error}"),
            },
            other => Self::internal(other.to_string()),
        }
    }

    /// `field`: `value` is not valid: reason.
    pub(crate) fn field(field: &str, error: &impl std::fmt::Display) -> Self {
        Self::bad_request(format!("`{field}`: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
