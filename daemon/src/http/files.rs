//! `/api/files/*`: uploads streamed from multipart bodies to disk part by part, downloads
//! streamed from disk (with single byte ranges), and deletion. These routes carry their
//! own body limit, sized for files rather than JSON; the per-file limit and the quota are
//! enforced by the core while the bytes arrive, and an upload that averages less than
//! `upload-min-bytes-per-sec` is stopped with a 408 ([`Pace`]).

use super::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use super::extract::AuthUser;
use super::range::{self, ByteRange};
use crate::AppState;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use quickmeet::config::Config;
use quickmeet::files::detect::Detected;
use quickmeet::files::{names, Checked, Download, FileInfo, Pace, MAX_FILES_PER_REQUEST};
use quickmeet::Error;
use serde::Serialize;
use std::future::Future;
use std::io::SeekFrom;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Room for part headers and boundaries on top of the file bytes themselves.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Content-Security-Policy of file responses: nothing runs, even if a browser renders it.
pub const FILE_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Routes of this module, with the body limits that uploads need.
pub fn router(config: &Config) -> Router<AppState> {
    let per_file = usize::try_from(config.max_upload_bytes).unwrap_or(usize::MAX).saturating_add(MULTIPART_OVERHEAD);
    Router::new()
        .route("/api/files/upload", post(upload).layer(DefaultBodyLimit::max(per_file)))
        .route(
            "/api/files/upload-multiple",
            post(upload_multiple).layer(DefaultBodyLimit::max(per_file.saturating_mul(MAX_FILES_PER_REQUEST))),
        )
        .route("/api/files/download/{filename}", get(download))
        .route("/api/files/{filename}", delete(remove))
}

/// One file part, as the OpenAPI document shows it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its type is decided from its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Up to ten file parts, all named `files`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadMultipleForm {
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FileResponse {
    file: FileInfo,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FilesResponse {
    files: Vec<FileInfo>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError(Error::TooLarge("body_too_large", "the request body is too large".into()));
    }
    ApiError(Error::Invalid("invalid_multipart", "the multipart body could not be read".into()))
}

fn multipart_rejection(_: MultipartRejection) -> ApiError {
    ApiError(Error::Invalid("invalid_content_type", "send files as multipart/form-data".into()))
}

/// Why an upload failed: a core error, or a client too slow to keep its upload slot. The
/// latter is a 408 with code `upload_too_slow`, a status the core's errors do not have.
#[derive(Debug)]
enum UploadError {
    Api(ApiError),
    TooSlow(String),
}

impl From<ApiError> for UploadError {
    fn from(e: ApiError) -> Self {
        UploadError::Api(e)
    }
}

impl From<Error> for UploadError {
    fn from(e: Error) -> Self {
        UploadError::Api(ApiError(e))
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        match self {
            UploadError::Api(e) => e.into_response(),
            UploadError::TooSlow(message) => {
                let body = ErrorBody { error: ErrorDetail { code: "upload_too_slow".into(), message } };
                (StatusCode::REQUEST_TIMEOUT, Json(body)).into_response()
            }
        }
    }
}

/// Awaits the next piece of the body for as long as `pace` still allows, counting the wait.
/// Dropping an upload removes its temp file, so a refusal here leaves nothing behind.
async fn paced<T>(pace: &mut Pace, auth: &AuthUser, next: impl Future<Output = T>) -> Result<T, UploadError> {
    let started = tokio::time::Instant::now();
    let out = match pace.allowance() {
        None => next.await,
        Some(left) => match tokio::time::timeout(left, next).await {
            Ok(out) => out,
            Err(_) => {
                tracing::info!(user = %auth.user.id, "upload stopped: slower than upload-min-bytes-per-sec");
                return Err(UploadError::TooSlow(pace.too_slow_message()));
            }
        },
    };
    pace.waited(started.elapsed());
    Ok(out)
}

/// Streams one part to a temp file and checks its type.
async fn receive(
    state: &AppState,
    auth: &AuthUser,
    pace: &mut Pace,
    mut field: Field<'_>,
) -> Result<Checked, UploadError> {
    let mut upload = state.core.files.begin(&auth.user.id, field.file_name()).await?;
    while let Some(chunk) = paced(pace, auth, field.chunk()).await?.map_err(multipart_error)? {
        pace.received(chunk.len() as u64);
        upload.write(&chunk).await?;
    }
    Ok(upload.check().await?)
}

/// Receives every part named `part`, at most `max` of them; any other part is a 400.
async fn receive_all(
    state: &AppState,
    auth: &AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
    part: &str,
    max: usize,
) -> Result<Vec<Checked>, UploadError> {
    let mut multipart = multipart.map_err(multipart_rejection)?;
    let mut pace = Pace::from_config(&state.core.config);
    let mut checked = Vec::new();
    while let Some(field) = paced(&mut pace, auth, multipart.next_field()).await?.map_err(multipart_error)? {
        if field.name() != Some(part) {
            return Err(Error::Invalid("unexpected_part", format!("only parts named \"{part}\" are accepted")).into());
        }
        if checked.len() == max {
            let what = if max == 1 { "one file".to_string() } else { format!("{max} files") };
            return Err(Error::Invalid("too_many_files", format!("send at most {what} per request")).into());
        }
        checked.push(receive(state, auth, &mut pace, field).await?);
    }
    if checked.is_empty() {
        return Err(Error::Invalid("missing_file", format!("the body has no part named \"{part}\"")).into());
    }
    Ok(checked)
}

/// Upload one file (multipart part `file`, at most 50 MiB by default). After a grace period
/// (10 s by default) the body must average at least `upload-min-bytes-per-sec` (16 KiB/s).
#[utoipa::path(post, path = "/api/files/upload", tag = "files", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FileResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 408, body = ErrorBody, description = "upload_too_slow: the body averaged less than the appliance's minimum upload speed"),
              (status = 413, body = ErrorBody, description = "file_too_large, quota_exceeded or body_too_large"),
              (status = 415, body = ErrorBody, description = "unsupported_type")))]
async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FileResponse>), UploadError> {
    let checked = receive_all(&state, &auth, multipart, "file", 1).await?;
    let file = state.core.files.commit_all(checked).await?.remove(0);
    Ok((StatusCode::CREATED, Json(FileResponse { file })))
}

/// Upload up to ten files (multipart parts `files`); all are stored, or none. The whole
/// body is held to the minimum upload speed, as for one file.
#[utoipa::path(post, path = "/api/files/upload-multiple", tag = "files", security(("bearer" = [])),
    request_body(content = UploadMultipleForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FilesResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 408, body = ErrorBody, description = "upload_too_slow"),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
async fn upload_multiple(
    State(state): State<AppState>,
    auth: AuthUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FilesResponse>), UploadError> {
    let checked = receive_all(&state, &auth, multipart, "files", MAX_FILES_PER_REQUEST).await?;
    let files = state.core.files.commit_all(checked).await?;
    Ok((StatusCode::CREATED, Json(FilesResponse { files })))
}

/// Download a file: its uploader, or a party to a message carrying it. Supports one
/// `Range`; served with the original name and a sandboxing Content-Security-Policy.
#[utoipa::path(get, path = "/api/files/download/{filename}", tag = "files", security(("bearer" = [])),
    params(("filename" = String, Path, description = "stored name, <uuid>.<ext>"), ("Range" = Option<String>, Header)),
    responses((status = 200, description = "the file's bytes, with its detected Content-Type"),
              (status = 206, description = "the requested byte range"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 416, body = ErrorBody, description = "range_not_satisfiable")))]
async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    filename: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Ok(Path(filename)) = filename else { return Err(ApiError(Error::NotFound("file"))) };
    let Download { info, mut file, len } = state.core.files.open_for(&auth.user.id, &filename).await?;
    let requested = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match range::parse(requested, len) {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(Error::from)?;
    }
    let disposition = names::content_disposition(&info.original_name, Detected::inline(&info.mime_type));
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(file.take(count), 64 * 1024)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, value(&info.mime_type)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::CONTENT_DISPOSITION, value(&disposition)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, value(&format!("bytes {start}-{}/{len}", start + count - 1))?);
    }
    Ok(response)
}

fn value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(|e| ApiError(Error::Internal(format!("header value: {e}"))))
}

fn unsatisfiable(len: u64) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: "range_not_satisfiable".into(),
            message: format!("the file has {len} bytes; the requested range is outside it"),
        },
    };
    let mut r = (StatusCode::RANGE_NOT_SATISFIABLE, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Delete a file (uploader or administrator). Messages that carried it then show it
/// with `removed: true`.
#[utoipa::path(delete, path = "/api/files/{filename}", tag = "files", security(("bearer" = [])),
    params(("filename" = String, Path, description = "stored name, <uuid>.<ext>")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "a party to the file who did not upload it"),
              (status = 404, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    filename: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Ok(Path(filename)) = filename else { return Err(ApiError(Error::NotFound("file"))) };
    state.core.files.delete(&auth.user, &filename).await?;
    Ok(StatusCode::NO_CONTENT)
}
