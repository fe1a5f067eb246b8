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
    let pool = if data.len() * 4 >= LARGE_BYTES {
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
        const HUGE: usize = 2 << 20;
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + bytes) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside the allocation of `v`; the
            // advice changes how pages are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
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
}
