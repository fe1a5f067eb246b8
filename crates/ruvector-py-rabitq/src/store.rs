//! The SDK-side record of what an index holds: external ids (full u64), an
//! id → row map, and, for index kinds that keep them, the original vectors
//! as one contiguous row-major buffer.
//!
//! The buffer sits behind an `Arc` so NumPy views can share it without a
//! copy: a view holds a clone of the `Arc`, and a later `add` that finds
//! the buffer shared copies it first (`Arc::make_mut`), so a view never
//! sees memory move or change under it.

use std::collections::HashMap;
use std::sync::Arc;

pub struct Store {
    dim: usize,
    keep_vectors: bool,
    ids: Vec<u64>,
    rows: HashMap<u64, usize>,
    vectors: Arc<Vec<f32>>,
}

impl Store {
    pub fn new(dim: usize, keep_vectors: bool) -> Self {
        Self {
            dim,
            keep_vectors,
            ids: Vec::new(),
            rows: HashMap::new(),
            vectors: Arc::new(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn keeps_vectors(&self) -> bool {
        self.keep_vectors
    }

    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    pub fn contains(&self, id: u64) -> bool {
        self.rows.contains_key(&id)
    }

    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.rows.get(&id).copied()
    }

    /// Row `pos` of the original vectors (only when they are kept).
    #[inline]
    pub fn vector(&self, pos: usize) -> &[f32] {
        &self.vectors[pos * self.dim..(pos + 1) * self.dim]
    }

    /// The shared buffer of all kept vectors (empty when not kept).
    pub fn shared_vectors(&self) -> Arc<Vec<f32>> {
        Arc::clone(&self.vectors)
    }

    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }

    /// Appends already validated rows (`data.len() == ids.len() * dim`).
    pub fn append(&mut self, ids: &[u64], data: &[f32]) {
        debug_assert_eq!(data.len(), ids.len() * self.dim);
        self.rows.reserve(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            self.rows.insert(id, self.ids.len() + i);
        }
        self.ids.extend_from_slice(ids);
        if self.keep_vectors {
            Arc::make_mut(&mut self.vectors).extend_from_slice(data);
        }
    }

    /// Bytes held: ids, the id map, and the vectors.
    pub fn memory_bytes(&self) -> usize {
        let map_entry = std::mem::size_of::<(u64, usize)>() + 1;
        self.ids.capacity() * 8 + self.rows.capacity() * map_entry + self.vectors.capacity() * 4
    }
}
