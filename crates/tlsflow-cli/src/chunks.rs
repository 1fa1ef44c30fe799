//! Reading in chunks without holding a buffer while idle: a connection that waits for its
//! peer holds no copy buffer (the library's streams hold none either), so thousands of idle
//! connections cost little memory. A buffer is taken from a small per-thread pool for each
//! poll, and given back when the poll finds nothing.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};

/// The size of one chunk: four full TLS records.
const CHUNK: usize = 64 * 1024;

/// Spare chunks kept per thread.
const POOL: usize = 8;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Bytes read from a peer, in a buffer that goes back to the pool when dropped.
pub(crate) struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

fn take() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; CHUNK])
}

fn give_back(buf: Vec<u8>) {
    if buf.len() == CHUNK {
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < POOL {
                spare.push(buf);
            }
        });
    }
}

/// Reads the next chunk; `None` at the end of the input. While the reader has nothing, no
/// buffer is held.
///
/// # Cancel safety
///
/// Cancel safe: a read that completes returns its bytes, and a pending one holds none.
pub(crate) async fn next<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Chunk>> {
    std::future::poll_fn(|cx| {
        let mut buf = take();
        let mut read_buf = ReadBuf::new(&mut buf);
        match Pin::new(&mut *reader).poll_read(cx, &mut read_buf) {
            Poll::Pending => {
                give_back(buf);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                give_back(buf);
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(())) => {
                let len = read_buf.filled().len();
                if len == 0 {
                    give_back(buf);
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Ok(Some(Chunk { buf, len })))
            }
        }
    })
    .await
}

/// When a connection last moved data, for an idle timeout: the copy loops touch it, and
/// [`idle`](Activity::idle) completes once nothing has moved for a while.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    start: std::time::Instant,
    /// Milliseconds from `start` to the last movement.
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            start: std::time::Instant::now(),
            last: std::sync::Arc::default(),
        }
    }

    /// Data moved now.
    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Completes once no data has moved for `limit`.
    pub(crate) async fn idle(&self, limit: std::time::Duration) {
        loop {
            let last = std::time::Duration::from_millis(
                self.last.load(std::sync::atomic::Ordering::Relaxed),
            );
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_from_the_pool_and_go_back() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut input: &[u8] = b"hello";
            let chunk = next(&mut input).await.expect("read").expect("a chunk");
            assert_eq!(&*chunk, b"hello");
            drop(chunk);
            assert_eq!(SPARE.with(|s| s.borrow().len()), 1);
            assert!(next(&mut input).await.expect("read").is_none());
            assert_eq!(SPARE.with(|s| s.borrow().len()), 1, "reused, not grown");
        });
    }

    #[test]
    fn idle_completes_only_after_a_quiet_spell() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let activity = Activity::new();
            let limit = std::time::Duration::from_millis(300);
            let started = std::time::Instant::now();
            let toucher = activity.clone();
            let touching = async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                toucher.touch();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = activity.idle(limit) => {}
                () = touching => {}
            }
            // Quiet from 200 ms on: idle at 500 ms, not at 300.
            assert!(started.elapsed() >= std::time::Duration::from_millis(500));
        });
    }
}
