//! A keep-alive HTTP/1.1 client for the Pusher HTTP API, signing requests with the protocol
//! crate's [`signed_query`].
//!
//! One request at a time per connection, as the Pusher server SDKs do; concurrency comes from
//! several connections.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use ringcast_protocol::api::signature::{Credentials, signed_query};

use crate::error::BenchError;
use crate::stats::Shared;
use crate::target::Target;
use crate::ws::SocketOpts;

/// The body of a trigger-event request for one channel.
pub fn event_body(channel: &str, event: &str, data: &str) -> Vec<u8> {
    use ringcast_protocol::pusher::json::push_str;
    let mut body = br#"{"name":"#.to_vec();
    push_str(&mut body, event);
    body.extend_from_slice(br#","channel":"#);
    push_str(&mut body, channel);
    body.extend_from_slice(br#","data":"#);
    push_str(&mut body, data);
    body.push(b'}');
    body
}

/// A complete signed `POST {prefix}/apps/{id}/events` request.
pub fn events_request(target: &Target, body: &[u8]) -> Vec<u8> {
    let path = target.events_path();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = signed_query(
        "POST",
        &path,
        body,
        Credentials {
            key: &target.key,
            secret: &target.secret,
        },
        now,
        &[],
    );
    let mut req = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        target.api.host_header,
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A keep-alive connection to the HTTP API.
pub struct HttpConn {
    stream: crate::stream::Stream,
    buf: Vec<u8>,
    /// The server asked to close after the last response.
    pub closed: bool,
}

/// A publishing loop's API connection: opened on demand, dropped when the server or the
/// network closes it, every failure counted in the run's errors and noted under a context.
#[derive(Default)]
pub struct ApiSlot(Option<HttpConn>);

impl ApiSlot {
    /// Connects unless connected. A failed connect is counted and noted as `context`, and
    /// returns `false` after a 100 ms pause, so that the loop retries at a bounded rate.
    pub async fn ready(
        &mut self,
        target: &Target,
        source_index: usize,
        shared: &Shared,
        context: &str,
    ) -> bool {
        if self.0.is_some() {
            return true;
        }
        match HttpConn::connect(target, source_index).await {
            Ok(c) => {
                self.0 = Some(c);
                true
            }
            Err(e) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(context, &e);
                monoio::time::sleep(Duration::from_millis(100)).await;
                false
            }
        }
    }

    /// Triggers an event with `body` on the connection [`ready`](Self::ready) opened. `true`
    /// for a 2xx answer; anything else is counted and noted as `context`.
    pub async fn trigger(
        &mut self,
        target: &Target,
        body: &[u8],
        shared: &Shared,
        context: &str,
    ) -> bool {
        let Some(conn) = self.0.as_mut() else {
            return false;
        };
        let failure = match conn.request(events_request(target, body)).await {
            Ok(resp) if (200..300).contains(&resp.status) => None,
            Ok(resp) => Some(BenchError::Http(format!(
                "status {}: {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ))),
            Err(e) => {
                conn.closed = true;
                Some(e)
            }
        };
        if conn.closed {
            self.0 = None;
        }
        let Some(e) = failure else {
            return true;
        };
        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        shared.note_error(context, &e);
        false
    }
}

/// One response: status and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpConn {
    /// Connects to the API endpoint.
    pub async fn connect(target: &Target, source_index: usize) -> Result<Self, BenchError> {
        let opts = SocketOpts {
            source: target.source_for(source_index),
            nodelay: true,
            ..SocketOpts::default()
        };
        Ok(Self {
            stream: crate::stream::connect(&target.api, target.tls.as_ref(), opts).await?,
            buf: Vec::with_capacity(4096),
            closed: false,
        })
    }

    /// Sends `request` and reads the whole response.
    pub async fn request(&mut self, request: Vec<u8>) -> Result<Response, BenchError> {
        let (res, _) = self.stream.write_all(request).await;
        res?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let status = resp
                .parse(&self.buf)
                .map_err(|e| BenchError::Http(e.to_string()))?;
            if let httparse::Status::Complete(head_len) = status {
                let mut content_length = 0usize;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        content_length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| BenchError::Http("bad content-length".into()))?;
                    } else if h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                    {
                        self.closed = true;
                    }
                }
                let code = resp.code.unwrap_or(0);
                while self.buf.len() < head_len + content_length {
                    self.read_more().await?;
                }
                let body = self.buf[head_len..head_len + content_length].to_vec();
                return Ok(Response { status: code, body });
            }
            if self.buf.len() > 64 * 1024 {
                return Err(BenchError::Http("response head too long".into()));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> Result<(), BenchError> {
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(self.buf.capacity());
        }
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        let buf = std::mem::take(&mut self.buf);
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        match res? {
            0 => Err(BenchError::Closed(None)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Endpoint;
    use ringcast_protocol::api::query::Query;
    use ringcast_protocol::api::signature::verify;

    #[test]
    fn events_request_verifies_with_the_protocol_crate() {
        let target = Target {
            ws: Endpoint::parse("ws://127.0.0.1:1", "ws", 80).unwrap(),
            api: Endpoint::parse("http://127.0.0.1:1", "http", 80).unwrap(),
            app_id: "42".into(),
            key: "key".into(),
            secret: "secret".into(),
            sources: vec![],
            tls: None,
        };
        let body = event_body("bench-0", "bench", "rcb:0:1:2:xx");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"], "rcb:0:1:2:xx");
        let req = events_request(&target, &body);
        let text = String::from_utf8(req).unwrap();
        let (head, sent_body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(sent_body.as_bytes(), &body[..]);
        let target_line = head.lines().next().unwrap().split(' ').nth(1).unwrap();
        let (path, query) = target_line.split_once('?').unwrap();
        assert_eq!(path, "/apps/42/events");
        let query = Query::parse(query).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        verify(
            "POST",
            path,
            &query,
            &body,
            Credentials {
                key: "key",
                secret: "secret",
            },
            now,
            &ringcast_protocol::Limits::default(),
        )
        .unwrap();
    }
}
