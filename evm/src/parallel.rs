//! Splitting independent per-item work over the machine's cores.

/// From this many items on, work is split over threads; below it a thread costs more than
/// it saves.
pub(crate) const MIN_PARALLEL_ITEMS: usize = 64;

/// `f` over every item, in order, split as [`par_chunks`] splits. The result does not depend
/// on the split.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let parts = par_chunks(items, |_, chunk| chunk.iter().map(&f).collect());
    match <[Vec<R>; 1]>::try_from(parts) {
        Ok([only]) => only,
        Err(parts) => parts.into_iter().flatten().collect(),
    }
}

/// `f` over contiguous chunks of `items` (with the index of each chunk's first item), one per
/// available core when there are at least [`MIN_PARALLEL_ITEMS`] (otherwise one chunk); the
/// calling thread takes the last chunk. The results come back per chunk, in order, for the
/// caller to move where they belong (moved once, not first into one list). `f` must give one
/// result per item, and its results must not depend on where a chunk starts or ends, so that
/// the results, taken in order, do not depend on the split.
pub(crate) fn par_chunks<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &[T]) -> Vec<R> + Sync,
) -> Vec<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if items.len() < MIN_PARALLEL_ITEMS || threads < 2 {
        return vec![f(0, items)];
    }
    let f = &f;
    let size = items.len().div_ceil(threads);
    let mut parts = items.chunks(size).enumerate();
    let (last, mine) = parts.next_back().expect("at least one chunk");
    std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|(n, part)| scope.spawn(move || f(n * size, part)))
            .collect();
        let mine = f(last * size, mine);
        let mut results = Vec::with_capacity(threads);
        for other in others {
            match other.join() {
                Ok(part) => results.push(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results.push(mine);
        debug_assert_eq!(
            results.iter().map(Vec::len).sum::<usize>(),
            items.len(),
            "one result per item"
        );
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
            let doubled_by_chunk: Vec<usize> = par_chunks(&items, |first, chunk| {
                assert_eq!(chunk.first(), items.get(first));
                chunk.iter().map(|i| i * 2).collect()
            })
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(doubled_by_chunk, doubled);
        }
    }
}
