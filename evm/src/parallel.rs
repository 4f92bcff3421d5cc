//! Splitting independent per-item work over the machine's cores.

/// From this many items on, work is split over threads; below it a thread costs more than
/// it saves.
pub(crate) const MIN_PARALLEL_ITEMS: usize = 64;

/// `f` over every item, in order, split into one contiguous chunk per available core when
/// there are at least [`MIN_PARALLEL_ITEMS`]; the calling thread takes the last chunk. The
/// result does not depend on the split.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if items.len() < MIN_PARALLEL_ITEMS || threads < 2 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let mut parts = items.chunks(items.len().div_ceil(threads));
    let mine = parts.next_back().expect("at least one chunk");
    std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mine: Vec<R> = mine.iter().map(f).collect();
        let mut results = Vec::with_capacity(items.len());
        for other in others {
            match other.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results.extend(mine);
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_below_and_above_the_threshold() {
        for len in [0, 5, MIN_PARALLEL_ITEMS, 1000] {
            let items: Vec<usize> = (0..len).collect();
            let doubled: Vec<usize> = items.iter().map(|i| i * 2).collect();
            assert_eq!(par_map(&items, |i| i * 2), doubled);
        }
    }
}
