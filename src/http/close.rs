//! `Connection: close` on a connection that pipelines requests (RFC 9112 §9.6: after a
//! response that closes the connection, "the server MUST NOT process any further requests
//! received on that connection").
//!
//! actix-http decodes pipelined requests ahead and starts the next one as soon as a response
//! is encoded, whether or not that response closed the connection. This module closes the gap
//! from outside the dispatcher, per connection:
//!
//! - [`Guarded`] wraps the connection's socket and shares a [`CloseLatch`] with the requests
//!   read from it (`HttpRequest::conn_data`, set by the server's `on_connect_ext`);
//! - [`honour_close`], the outermost middleware, marks the latch *closing* after a response
//!   that closes the connection (or one to a request that asked for it), and runs no request
//!   behind it: it asks the socket to be sealed after the next flush, which carries everything
//!   encoded before that request, that is the closing response. Sealing shuts down the write
//!   half (the client reads the response, then end of stream); after that the socket drains
//!   and discards what the client still sends, and refuses every write, so the answer the
//!   middleware gives the refused request is never sent and the dispatcher drops the
//!   connection. The middleware waits, at most [`LINGER`], for the client to close its side
//!   first: a socket closed with unread data sends a reset, which can make the client lose
//!   the closing response;
//! - [`expect_continue`], the server's `Expect: 100-continue` handler, which runs before the
//!   middleware, refuses such a request the same way instead of sending `100 Continue`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::{Request, Response};
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse, fn_service};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::{HttpResponse, web};
use futures_util::future::Either;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::AppState;

/// How long a refused pipelined request waits for its client to close the connection after
/// the closing response was sent, before the connection is dropped anyway. Matches the
/// server's client disconnect timeout.
pub const LINGER: Duration = Duration::from_secs(1);

/// Reads per poll while a sealed connection drains what its client still sends.
const DRAIN_READS_PER_POLL: usize = 16;

/// The state one connection shares between its socket ([`Guarded`]) and its requests.
#[derive(Debug, Default)]
pub struct CloseLatch {
    /// A response closed the connection: no further request runs.
    closing: Cell<bool>,
    /// Shut the write half down after the next completed flush.
    seal_requested: Cell<bool>,
    /// The write half is shut down (or the connection is given up): writes fail.
    sealed: Cell<bool>,
    /// The client closed its side (end of stream or a read error).
    peer_closed: Cell<bool>,
    /// The refused request waiting for `sealed` and `peer_closed`.
    waiter: RefCell<Option<Waker>>,
}

impl CloseLatch {
    /// Whether a response closed the connection.
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    fn mark_closing(&self) {
        self.closing.set(true);
    }

    fn wake(&self) {
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    fn seal(&self) {
        self.sealed.set(true);
        self.wake();
    }

    fn peer_gone(&self) {
        self.peer_closed.set(true);
        self.wake();
    }

    /// Seals the connection after the next flush (the closing response's), waits at most
    /// [`LINGER`] for the client to close its side, then refuses every write: whatever is
    /// written next fails, and the dispatcher drops the connection.
    async fn give_up(self: &Rc<Self>) {
        let _ = tokio::time::timeout(LINGER, self.finished()).await;
        self.seal();
    }

    /// Resolves once the closing response is flushed and the write half shut down, and the
    /// client closed its side.
    fn finished(self: &Rc<Self>) -> Finished {
        self.seal_requested.set(true);
        Finished(self.clone())
    }
}

struct Finished(Rc<CloseLatch>);

impl Future for Finished {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let latch = &self.0;
        if latch.sealed.get() && latch.peer_closed.get() {
            return Poll::Ready(());
        }
        *latch.waiter.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A connection's socket, with the [`CloseLatch`] its requests share.
pub struct Guarded<T> {
    io: T,
    latch: Rc<CloseLatch>,
}

impl<T> Guarded<T> {
    /// Wraps `io` with a fresh latch.
    pub fn new(io: T) -> Guarded<T> {
        Guarded {
            io,
            latch: Rc::default(),
        }
    }

    /// The latch this connection's requests share.
    pub fn latch(&self) -> Rc<CloseLatch> {
        self.latch.clone()
    }
}

fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the connection was closed after a Connection: close response",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.latch.sealed.get() {
            let before = buf.filled().len();
            let read = Pin::new(&mut this.io).poll_read(cx, buf);
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                    this.latch.peer_gone();
                }
                Poll::Ready(Err(_)) => this.latch.peer_gone(),
                _ => {}
            }
            return read;
        }
        // Sealed: what the client still sends is discarded here, so that no further request
        // is decoded and the socket is closed without unread data (no reset); the dispatcher
        // sees end of stream when the client closes.
        let mut scratch = [0u8; 4096];
        for _ in 0..DRAIN_READS_PER_POLL {
            let mut discard = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut discard) {
                Poll::Ready(Ok(())) if discard.filled().is_empty() => {
                    this.latch.peer_gone();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    this.latch.peer_gone();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.latch.sealed.get() {
            return Poll::Ready(Err(refused()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.latch.sealed.get() {
            return Poll::Ready(Err(refused()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.latch.sealed.get() {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        if this.latch.seal_requested.get() {
            // Everything written so far, the closing response included, is flushed: end the
            // stream after it.
            let shutdown = std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx));
            this.latch.seal();
            shutdown?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.latch.sealed.get() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The middleware (`App::wrap_fn`, outermost): runs a request unless a response before it
/// on its connection closed the connection, and notes when its own response closes it.
pub fn honour_close<S>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + use<S>
where
    S: actix_web::dev::Service<
            ServiceRequest,
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
        >,
    S::Future: 'static,
{
    let latch = request.conn_data::<Rc<CloseLatch>>().cloned();
    match latch {
        Some(latch) if latch.is_closing() => Either::Left(refuse(request, latch)),
        latch => {
            let asked_close = request.head().connection_type() == ConnectionType::Close;
            let response = service.call(request);
            Either::Right(async move {
                let response = response.await;
                // An error becomes a response too: after it, a request that asked to close
                // closes the connection all the same.
                let closes = asked_close
                    || response.as_ref().is_ok_and(|r| {
                        r.response().head().connection_type() == ConnectionType::Close
                    });
                if let Some(latch) = latch.filter(|_| closes) {
                    latch.mark_closing();
                }
                response
            })
        }
    }
}

/// A request behind a closing response: not run. Seals the connection after the closing
/// response, waits (at most [`LINGER`]) for the client to close, then gives the connection up;
/// the answer returned here is refused by the sealed socket, so it never reaches the client.
async fn refuse(
    request: ServiceRequest,
    latch: Rc<CloseLatch>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(state) = request.app_data::<web::Data<AppState>>() {
        count_refused(state);
    }
    latch.give_up().await;
    Ok(request.into_response(HttpResponse::new(StatusCode::SERVICE_UNAVAILABLE)))
}

fn count_refused(state: &AppState) {
    tracing::debug!("a request pipelined behind a Connection: close response is not served");
    state
        .counters
        .refused_after_close
        .fetch_add(1, Ordering::Relaxed);
    state.recorder.pipelined_refused();
}

/// The server's `Expect: 100-continue` handler: `100 Continue` as usual, but a request behind
/// a response that closed the connection is refused here, as [`honour_close`] refuses it, and
/// gets no `100 Continue` after the closing response.
pub fn expect_continue(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = Request,
    Error = Response<BoxBody>,
    InitError = (),
> + use<> {
    fn_service(move |request: Request| {
        let state = state.clone();
        async move {
            let Some(latch) = request
                .conn_data::<Rc<CloseLatch>>()
                .filter(|l| l.is_closing())
                .cloned()
            else {
                return Ok(request);
            };
            count_refused(&state);
            latch.give_up().await;
            Err(Response::new(StatusCode::SERVICE_UNAVAILABLE))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair on loopback: the server's side wrapped, the client's plain.
    async fn pair() -> (Guarded<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Guarded::new(server), client)
    }

    #[tokio::test]
    async fn an_unsealed_connection_passes_everything_through() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"first").await.unwrap();
        server.flush().await.unwrap();
        server.write_all(b" second").await.unwrap();
        server.flush().await.unwrap();
        client.write_all(b"request").await.unwrap();
        let mut read = [0u8; 7];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"request");
        let mut answer = [0u8; 12];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"first second");
        assert!(!server.latch().is_closing());
        assert!(!server.latch().sealed.get());
    }

    #[tokio::test]
    async fn a_sealed_connection_ends_after_the_flush_and_refuses_writes() {
        let (mut server, mut client) = pair().await;
        let latch = server.latch();
        // The closing response is written (not yet flushed) when the next request asks for
        // the seal.
        server.write_all(b"HTTP/1.1 413").await.unwrap();
        let finished = latch.finished();
        assert!(!latch.sealed.get());
        server.flush().await.unwrap();
        assert!(latch.sealed.get());
        let error = server.write_all(b"HTTP/1.1 200").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        // The client reads the closing response, then the end of the stream.
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 413");
        // What it still sends is discarded; its close is the end of the server's stream.
        client
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        drop(client);
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(rest.is_empty());
        finished.await;
    }
}
