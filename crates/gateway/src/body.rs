//! Body types: the one boxed body the proxy hands to hyper, and [`GuardedBody`], which
//! streams a body through while enforcing a size limit and an idle timeout per chunk.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the gateway sends, to clients and to upstreams.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Why a guarded body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the {0}-byte limit")]
    TooLarge(u64),
    #[error("no body data for {0:?}")]
    Idle(Duration),
    /// The body's source failed: for a request body, a malformed or aborted upload.
    #[error("the body could not be read: {0}")]
    Source(BoxError),
}

/// Streams `inner` through, failing once more than `limit` bytes went by or when no frame
/// arrives within `idle`.
pub struct GuardedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, limit: u64, idle: Duration) -> Self {
        GuardedBody {
            inner,
            remaining: limit,
            limit,
            idle,
            timer: None,
        }
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                let frame = match frame {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => {
                        return Poll::Ready(Some(Err(Box::new(BodyError::Source(e.into())))));
                    }
                    Some(Ok(frame)) => frame,
                };
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(Box::new(BodyError::TooLarge(this.limit)))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyError::Idle(idle)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Finds a [`BodyError`] anywhere in an error's source chain.
pub fn find_body_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<BodyError>() {
            return Some(b);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_is_enforced_while_streaming() {
        let body = GuardedBody::new(
            Full::new(Bytes::from(vec![0u8; 10])),
            5,
            Duration::from_secs(1),
        );
        let err = body.collect().await.unwrap_err();
        assert!(matches!(
            find_body_error(&*err),
            Some(BodyError::TooLarge(5))
        ));
        let body = GuardedBody::new(
            Full::new(Bytes::from(vec![0u8; 5])),
            5,
            Duration::from_secs(1),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_bodies_time_out() {
        let (_tx, rx) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
        let stream = http_body_util::StreamBody::new(tokio_stream_shim::ReceiverStream(rx));
        let body = GuardedBody::new(stream, 100, Duration::from_secs(3));
        let err = body.collect().await.unwrap_err();
        assert!(matches!(find_body_error(&*err), Some(BodyError::Idle(_))));
    }

    mod tokio_stream_shim {
        use std::pin::Pin;
        use std::task::{Context, Poll};

        pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

        impl<T> futures_util::Stream for ReceiverStream<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                self.0.poll_recv(cx)
            }
        }
    }
}
