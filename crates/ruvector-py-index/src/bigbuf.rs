//! Large vector buffers: the kept float32 rows of an index are often
//! hundreds of MB. Filled 4 KiB page by 4 KiB page on one thread, the page
//! faults cost more than the copy (140 ms for 100k × 384 here), and a
//! search's rerank then misses the TLB on nearly every row it reads.
//!
//! So a large buffer is advised to use transparent huge pages (Linux; a
//! no-op elsewhere and where THP is `never`) before its first write, and
//! filled in parallel when it is a copy. Builds, adds, loads and copies
//! of an index all go through here.

use rayon::prelude::*;

/// Buffers at least this large are advised and filled in parallel.
const LARGE_BYTES: usize = 8 << 20;
/// Values per parallel copy task (4 MiB).
const COPY_CHUNK: usize = 1 << 20;

/// Whether `data` is large enough to be advised and copied in parallel.
pub fn is_large(data: &[f32]) -> bool {
    std::mem::size_of_val(data) >= LARGE_BYTES
}

/// Appends `data` to `v` (a plain `extend_from_slice` for small data): a
/// large reservation is advised to use huge pages and the copy runs on the
/// wheel's pool.
pub fn extend_large(v: &mut Vec<f32>, data: &[f32]) {
    let before = (v.as_ptr(), v.capacity());
    v.reserve(data.len());
    if (v.as_ptr(), v.capacity()) != before {
        advise_huge_pages(v);
    }
    // Small data never starts the pool (threads start on first real need).
    let pool = if is_large(data) {
        ruvector_py_core::parallel::pool().ok()
    } else {
        None
    };
    let Some(pool) = pool else {
        v.extend_from_slice(data);
        return;
    };
    let spare = &mut v.spare_capacity_mut()[..data.len()];
    pool.install(|| {
        spare
            .par_chunks_mut(COPY_CHUNK)
            .zip(data.par_chunks(COPY_CHUNK))
            .for_each(|(dst, src)| {
                for (d, &s) in dst.iter_mut().zip(src) {
                    d.write(s);
                }
            });
    });
    // SAFETY: the `data.len()` values after the old length were reserved
    // above and every one of them was written by the copy.
    unsafe { v.set_len(v.len() + data.len()) };
}

/// A copy of `data` made by [`extend_large`].
pub fn copy_large(data: &[f32]) -> Vec<f32> {
    let mut v = Vec::new();
    extend_large(&mut v, data);
    v
}

/// Asks the kernel to back the allocation of `v` with transparent huge
/// pages if it is large. Advice only: nothing changes if it is refused.
pub fn advise_huge_pages(v: &Vec<f32>) {
    let bytes = v.capacity() * std::mem::size_of::<f32>();
    if bytes < LARGE_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // Every page the buffer touches, not only its 2 MiB-aligned middle
        // (the kernel uses huge pages only there anyway): advice on part of
        // a mapping splits it, and glibc's `realloc` can then no longer grow
        // the buffer with one `mremap` (EFAULT across mappings). It copies
        // instead, holding the old and the new buffer at once: a `Vec`
        // doubling from 8M to 16M rows of 384 floats peaked at 24 GB.
        let (start, end) = page_span(v.as_ptr() as usize, bytes);
        // SAFETY: the pages hold the allocation of `v` (and, for one from
        // the heap, perhaps its neighbours' bytes); the advice changes how
        // pages are backed, never their contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// The whole pages `[start, end)` covering `bytes` bytes at `addr`.
#[cfg(target_os = "linux")]
fn page_span(addr: usize, bytes: usize) -> (usize, usize) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    (addr & !(page - 1), (addr + bytes).next_multiple_of(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_small_and_large_buffers_exactly() {
        for (start, add) in [(0usize, 5usize), (3, 1_000), (7, 3 * COPY_CHUNK + 17)] {
            let mut v: Vec<f32> = (0..start).map(|i| i as f32).collect();
            let data: Vec<f32> = (0..add).map(|i| -(i as f32) * 0.5).collect();
            extend_large(&mut v, &data);
            assert_eq!(v.len(), start + add);
            assert!(v[..start].iter().enumerate().all(|(i, &x)| x == i as f32));
            assert_eq!(&v[start..], &data[..]);
            assert_eq!(copy_large(&data), data);
        }
    }

    /// The mappings of this process that overlap `[start, end)`.
    #[cfg(target_os = "linux")]
    fn mappings_over(start: usize, end: usize) -> Vec<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter(|line| {
                let range = line.split(' ').next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                a < end && start < b
            })
            .map(str::to_owned)
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_advised_buffer_stays_one_mapping_so_growing_it_does_not_copy() {
        // 64 MiB and more: a mapping of its own from the allocator. Advice
        // on part of it would split it, and `realloc` would then copy.
        let mut v: Vec<f32> = Vec::with_capacity(16 << 20);
        v.resize(1000, 1.0);
        for _ in 0..2 {
            advise_huge_pages(&v);
            // Every byte of the buffer, whatever the advice covered.
            let (start, end) = (v.as_ptr() as usize, v.as_ptr() as usize + v.capacity() * 4);
            let over = mappings_over(start, end);
            assert_eq!(over.len(), 1, "{over:?}");
            v.reserve(v.capacity() * 2);
        }
        assert!(v[..1000].iter().all(|&x| x == 1.0));
    }
}
