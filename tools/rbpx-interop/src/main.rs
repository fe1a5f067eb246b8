//! Test tool for `.rbpx` interoperability between the Python SDK and the
//! upstream `ruvector-rabitq` crate. Vectors and queries travel as raw
//! little-endian f32 files; results come back as one line per query:
//! `id:score-bits id:score-bits ...` (scores as f32 bit patterns, so a
//! comparison is exact).
//!
//! ```text
//! rbpx-interop write <out.rbpx> <vectors.f32> <dim> <seed> <rerank> <ids.u32>
//! rbpx-interop search <index.rbpx> <queries.f32> <k>
//! ```
//! `write` builds a `RabitqPlusIndex` with the crate (the same way
//! `persist::load_index` rebuilds one) and saves it with `persist::save_index`;
//! `search` loads with `persist::load_index` and searches with the crate.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;

use ruvector_rabitq::persist::{load_index, save_index};
use ruvector_rabitq::{AnnIndex, RabitqPlusIndex};

fn read_f32s(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn read_u32s(path: &str) -> Vec<u32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({name}) missing or invalid"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("write") => {
            let (out, vectors) = (&args[2], read_f32s(&args[3]));
            let (dim, seed, rerank): (usize, u64, usize) = (
                arg(&args, 4, "dim"),
                arg(&args, 5, "seed"),
                arg(&args, 6, "rerank"),
            );
            let ids = read_u32s(&args[7]);
            let items: Vec<(usize, Vec<f32>)> = ids
                .iter()
                .zip(vectors.chunks_exact(dim))
                .map(|(&id, v)| (id as usize, v.to_vec()))
                .collect();
            let idx = RabitqPlusIndex::from_vectors_parallel(dim, seed, rerank, items.clone())
                .expect("build");
            let mut w = BufWriter::new(File::create(out).expect("create"));
            save_index(&idx, seed, &items, &mut w).expect("save");
            ExitCode::SUCCESS
        }
        Some("search") => {
            let mut r = BufReader::new(File::open(&args[2]).expect("open"));
            let idx = match load_index(&mut r) {
                Ok(idx) => idx,
                Err(e) => {
                    eprintln!("load_index: {e}");
                    return ExitCode::from(3);
                }
            };
            let queries = read_f32s(&args[3]);
            let k: usize = arg(&args, 4, "k");
            for q in queries.chunks_exact(idx.dim()) {
                let line: Vec<String> = idx
                    .search(q, k)
                    .expect("search")
                    .iter()
                    .map(|h| format!("{}:{}", h.id, h.score.to_bits()))
                    .collect();
                println!("{}", line.join(" "));
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: rbpx-interop write|search ...");
            ExitCode::from(2)
        }
    }
}
