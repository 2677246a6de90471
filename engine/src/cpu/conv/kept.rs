//! Work buffers kept per thread between conv calls, so that a rayon task takes over the
//! buffers an earlier task of the same pass and geometry left, instead of allocating and
//! zeroing its own.
//!
//! Why: every task of the direct and Winograd kernels needs an image copy or a padded
//! channels-last image (tens of kilobytes to more than a megabyte), and rayon runs
//! several tasks per conv call, some 90 conv calls per ResNet-32 step. Zeroed fresh, with
//! their page faults, those allocations took 2-5% of the AVX2 training step's `perf`
//! samples (Winograd's, before it kept them) and 8% of the direct stride-2 weight grad's
//! (`memset`, before this module).
//!
//! Handing buffers on is safe only if every pass overwrites what it reads before reading
//! it, except the zeros it relies on (an image copy's padding), which it never writes: a
//! pass with the same key writes the same entries, so those zeros stay. So the key must
//! hold everything that decides which entries a pass writes: the pass itself and every
//! size it derives its layout from (the tests run two geometries that share a layout but
//! not their zeros).
use std::any::Any;
use std::cell::RefCell;

/// Buffer sets kept per thread: one for each pass and shape of a ResNet-32 step (direct
/// and Winograd) and a few more. The least recently returned go first.
const KEPT_PER_THREAD: usize = 24;

/// A kept buffer set and its key, both type-erased (each user has its own types).
type Entry = (Box<dyn Any>, Box<dyn Any>);

thread_local! {
    /// This thread's kept entries, the most recently returned last.
    static KEPT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Buffers `B` on loan to one rayon task, given back to the thread's pool when the task
/// ends. `K` identifies the pass and geometry they were laid out for.
pub struct Loan<K: PartialEq + 'static, B: 'static> {
    /// Taken only when the loan ends.
    entry: Option<(K, B)>,
}

/// The buffers an earlier task on this thread left under `key`, if any, else `new()`.
pub fn lend<K: PartialEq + 'static, B: 'static>(key: K, new: impl FnOnce() -> B) -> Loan<K, B> {
    let kept = KEPT.with_borrow_mut(|kept| {
        let at = kept
            .iter()
            .position(|(k, b)| k.downcast_ref::<K>() == Some(&key) && b.is::<B>())?;
        kept.swap_remove(at).1.downcast::<B>().ok()
    });
    let bufs = kept.map_or_else(new, |b| *b);
    Loan {
        entry: Some((key, bufs)),
    }
}

impl<K: PartialEq + 'static, B: 'static> std::ops::Deref for Loan<K, B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self
            .entry
            .as_ref()
            .expect("buffers on loan until dropped")
            .1
    }
}

impl<K: PartialEq + 'static, B: 'static> std::ops::DerefMut for Loan<K, B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self
            .entry
            .as_mut()
            .expect("buffers on loan until dropped")
            .1
    }
}

impl<K: PartialEq + 'static, B: 'static> Drop for Loan<K, B> {
    fn drop(&mut self) {
        let Some((key, bufs)) = self.entry.take() else {
            return;
        };
        // `try_with`: during the thread's own teardown the buffers are simply freed.
        let _ = KEPT.try_with(|kept| {
            let mut kept = kept.borrow_mut();
            // A task that stole work from a sibling of the same call holds a second set
            // under the same key: one is enough.
            let same = |(k, b): &Entry| k.downcast_ref::<K>() == Some(&key) && b.is::<B>();
            if kept.iter().any(same) {
                return;
            }
            if kept.len() == KEPT_PER_THREAD {
                kept.remove(0);
            }
            kept.push((Box::new(key), Box::new(bufs)));
        });
    }
}
