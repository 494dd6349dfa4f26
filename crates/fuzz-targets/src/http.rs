//! Fuzzed bytes as an HTTP request, sent straight to a router as its server would hand it over.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// An answer slower than this is a hang: every route answers at once (the control plane's
/// service time is 0 here).
const HANG: Duration = Duration::from_secs(5);

/// Most response bytes read; no route answers anywhere near this.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The runtime every request runs on: one thread, made once (afl runs many inputs per process).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a runtime: {e}"))
});

/// The peer every request comes from: a loopback client, as the harness is.
const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);

/// Reads `METHOD /path?query`, header lines, a blank line and the body. `None` for what never
/// reaches a router because the HTTP server refuses it first: no method, a target that is not
/// a path, a header that is not one. Framing is the server's too: the body is the rest of the
/// bytes, with its true `Content-Length`, whatever the headers say.
pub(crate) fn request(data: &[u8]) -> Option<Request<Body>> {
    let (line, mut rest) = split_line(data);
    let space = line.iter().position(|&b| b == b' ')?;
    let method = Method::from_bytes(&line[..space]).ok()?;
    let target = &line[space + 1..];
    if target.first() != Some(&b'/') {
        return None;
    }
    let uri = Uri::try_from(target).ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    loop {
        let (header, after) = split_line(rest);
        rest = after;
        if header.is_empty() {
            break;
        }
        let colon = header.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(&header[..colon]).ok()?;
        let value = HeaderValue::from_bytes(header[colon + 1..].trim_ascii()).ok()?;
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .header(CONTENT_LENGTH, rest.len())
        .extension(ConnectInfo(SocketAddr::from(PEER)))
        .body(Body::from(rest.to_vec()));
    request.ok()
}

/// The bytes before the first `\n` (less a trailing `\r`), and those after it.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}

/// Sends `request` to the router `make` builds (given a token cancelled once the answer is
/// read, for routers that spawn tasks), and asserts that the answer is one of the `documented`
/// statuses, in time.
pub(crate) fn exchange<F>(
    request: Request<Body>,
    documented: &[u16],
    make: impl FnOnce(CancellationToken) -> F,
) where
    F: Future<Output = Router>,
{
    let shown = format!("{} {}", request.method(), request.uri());
    let shutdown = CancellationToken::new();
    let (status, body) = RUNTIME.block_on(async {
        let router = make(shutdown.clone()).await;
        let answered = tokio::time::timeout(HANG, async {
            let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES).await;
            (status, body)
        })
        .await;
        shutdown.cancel();
        // Lets the tasks the router spawned see the token and end.
        tokio::task::yield_now().await;
        answered.unwrap_or_else(|_| panic!("{shown}: no answer within {HANG:?}"))
    });
    let body = body.unwrap_or_else(|e| panic!("{shown}: {status}, its body unreadable: {e}"));
    assert!(
        documented.contains(&status.as_u16()),
        "{shown}: {status} is not a documented answer: {}",
        String::from_utf8_lossy(&body)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_its_line_its_headers_and_the_rest_as_body() {
        let request = request(
            b"POST /report?x=1\r\nContent-Type: application/json\nContent-Length: 99\n\n{}",
        )
        .expect("a request");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/report?x=1");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["content-length"], "2");
    }

    #[test]
    fn what_an_http_server_refuses_never_reaches_the_router() {
        for bad in [
            &b""[..],
            b"POST",
            b"POST report",
            b"P(ST /report",
            b"POST /report\nno colon",
        ] {
            assert!(request(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
