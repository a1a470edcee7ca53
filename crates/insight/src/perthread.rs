//! A buffer per thread: what request threads hand to a background consumer (access log
//! lines, analytics events) without a channel. Each thread appends to a buffer of its own,
//! behind a lock only the consumer also takes, a few times a second; so the request path
//! never contends with another request thread and never wakes anybody.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Erased = Arc<dyn Any + Send + Sync>;

thread_local! {
    /// This thread's buffer of each [`PerThread`] it has used, by the owner's id.
    static LOCAL: RefCell<Vec<(u64, Erased)>> = const { RefCell::new(Vec::new()) };
}

/// Buffers of type `T`, one per thread that has used them.
pub struct PerThread<T> {
    id: u64,
    all: Mutex<Vec<Arc<Mutex<T>>>>,
}

impl<T> std::fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerThread")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Default + Send + 'static> Default for PerThread<T> {
    fn default() -> Self {
        PerThread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            all: Mutex::new(Vec::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Default + Send + 'static> PerThread<T> {
    /// Runs `f` on the calling thread's buffer (made on first use). The buffer is borrowed
    /// in place: no reference count changes.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            let at = match local.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    // Buffers of owners that are gone (only this thread still holds them).
                    local.retain(|(_, b)| Arc::strong_count(b) > 1);
                    let buffer = Arc::new(Mutex::new(T::default()));
                    lock(&self.all).push(buffer.clone());
                    local.push((self.id, buffer));
                    local.len() - 1
                }
            };
            let buffer = local[at]
                .1
                .downcast_ref::<Mutex<T>>()
                .expect("a thread's buffer has its owner's type");
            f(&mut lock(buffer))
        })
    }

    /// Runs `f` on every thread's buffer in turn (the consumer's side). A thread that
    /// uses its buffer meanwhile waits for `f` on that buffer only.
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        let all: Vec<Arc<Mutex<T>>> = lock(&self.all).clone();
        for buffer in all {
            f(&mut lock(&buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_buffer_and_the_consumer_sees_them_all() {
        let buffers = Arc::new(PerThread::<Vec<u32>>::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let buffers = buffers.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        buffers.with(|b| b.push(t * 1000 + i));
                    }
                    buffers.with(|b| b.len())
                })
            })
            .collect();
        for t in threads {
            // No other thread wrote into this one's buffer.
            assert_eq!(t.join().unwrap(), 1000);
        }
        let mut seen = Vec::new();
        buffers.each(|b| seen.append(b));
        seen.sort_unstable();
        assert_eq!(seen, (0..4000).collect::<Vec<_>>());
        // Taken: the buffers are empty now.
        let mut left = 0;
        buffers.each(|b| left += b.len());
        assert_eq!(left, 0);
    }

    #[test]
    fn two_owners_on_one_thread_keep_apart() {
        let a = PerThread::<Vec<u8>>::default();
        let b = PerThread::<String>::default();
        a.with(|v| v.push(1));
        b.with(|s| s.push('x'));
        a.with(|v| v.push(2));
        let mut got = Vec::new();
        a.each(|v| got.extend_from_slice(v));
        assert_eq!(got, [1, 2]);
        let mut text = String::new();
        b.each(|s| text.push_str(s));
        assert_eq!(text, "x");
    }

    #[test]
    fn a_dropped_owners_buffers_are_let_go() {
        let kept = PerThread::<Vec<u8>>::default();
        for _ in 0..100 {
            let gone = PerThread::<Vec<u8>>::default();
            gone.with(|v| v.push(1));
        }
        kept.with(|v| v.push(1));
        // The thread holds at most the live owner's buffer and the last dropped one.
        assert!(LOCAL.with(|l| l.borrow().len()) <= 2);
    }
}
