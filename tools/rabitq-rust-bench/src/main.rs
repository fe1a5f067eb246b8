//! Rust-side baseline for the Python benchmark harness (`bench/run_bench.py`).
//!
//! Reads a dataset file written by the harness, builds
//! `ruvector_rabitq::RabitqPlusIndex` with ids `0..n`, runs every query one
//! at a time through `AnnIndex::search`, and prints one JSON object on stdout:
//!
//! ```text
//! {"build_s": f64, "p50_ms": f64, "p99_ms": f64, "mean_ms": f64,
//!  "n": usize, "nq": usize, "dim": usize, "k": usize, "rerank_factor": usize,
//!  "seed": u64, "warmup": usize, "ids": [[u64; k]; nq]}
//! ```
//!
//! Dataset file layout (all little-endian):
//!
//! ```text
//! offset 0   8 bytes   magic  b"RVBENCH1"
//! offset 8   u64       n      (base vectors)
//! offset 16  u64       nq     (query vectors)
//! offset 24  u64       dim
//! offset 32  n*dim f32 base vectors, row-major
//! then       nq*dim f32 query vectors, row-major
//! ```
//!
//! Usage: `rabitq-rust-bench DATA [--k 10] [--rerank 20] [--seed 42] [--warmup 100]`
//!
//! Percentiles use the nearest-rank definition (the same one the harness
//! uses): sort the samples, take element `ceil(p/100 * len) - 1`.

use std::fmt::Write as _;
use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use ruvector_rabitq::{AnnIndex, RabitqPlusIndex};

const MAGIC: &[u8; 8] = b"RVBENCH1";
const HEADER_LEN: usize = 32;

struct Args {
    data: String,
    k: usize,
    rerank: usize,
    seed: u64,
    warmup: usize,
}

fn usage() -> String {
    "usage: rabitq-rust-bench DATA [--k 10] [--rerank 20] [--seed 42] [--warmup 100]".to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: String::new(),
        k: 10,
        rerank: 20,
        seed: 42,
        warmup: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--k" => args.k = parse_num(&value("--k")?, "--k")?,
            "--rerank" => args.rerank = parse_num(&value("--rerank")?, "--rerank")?,
            "--seed" => args.seed = parse_num(&value("--seed")?, "--seed")?,
            "--warmup" => args.warmup = parse_num(&value("--warmup")?, "--warmup")?,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
            s => {
                if !args.data.is_empty() {
                    return Err(format!("more than one DATA path given\n{}", usage()));
                }
                args.data = s.to_string();
            }
        }
    }
    if args.data.is_empty() {
        return Err(usage());
    }
    if args.k == 0 {
        return Err("--k must be at least 1".to_string());
    }
    Ok(args)
}

fn parse_num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{name}: cannot parse {s:?} as a number"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Decodes `count` little-endian f32s starting at byte `at`.
fn read_f32s(bytes: &[u8], at: usize, count: usize) -> Vec<f32> {
    bytes[at..at + count * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Dataset {
    n: usize,
    nq: usize,
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
}

fn load(path: &str) -> Result<Dataset, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(format!("{path}: not an RVBENCH1 file"));
    }
    let field = |at: usize, name: &str| {
        usize::try_from(read_u64(&bytes, at))
            .map_err(|_| format!("{path}: {name} does not fit in usize"))
    };
    let n = field(8, "n")?;
    let nq = field(16, "nq")?;
    let dim = field(24, "dim")?;
    if n == 0 || dim == 0 {
        return Err(format!("{path}: empty dataset (n={n}, dim={dim})"));
    }
    let expected = n
        .checked_add(nq)
        .and_then(|rows| rows.checked_mul(dim))
        .and_then(|floats| floats.checked_mul(4))
        .and_then(|b| b.checked_add(HEADER_LEN))
        .ok_or_else(|| format!("{path}: header sizes overflow"))?;
    if bytes.len() != expected {
        return Err(format!(
            "{path}: expected {expected} bytes for n={n} nq={nq} dim={dim}, found {}",
            bytes.len()
        ));
    }
    let base = read_f32s(&bytes, HEADER_LEN, n * dim);
    let queries = read_f32s(&bytes, HEADER_LEN + n * dim * 4, nq * dim);
    Ok(Dataset {
        n,
        nq,
        dim,
        base,
        queries,
    })
}

/// Nearest-rank percentile of an already sorted slice.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run(args: &Args) -> Result<String, String> {
    let ds = load(&args.data)?;
    let dim = ds.dim;
    let items: Vec<(usize, Vec<f32>)> = ds
        .base
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, row)| (i, row.to_vec()))
        .collect();
    drop(ds.base);

    let t0 = Instant::now();
    let index = RabitqPlusIndex::from_vectors_parallel(dim, args.seed, args.rerank, items)
        .map_err(|e| format!("build failed: {e}"))?;
    let build_s = t0.elapsed().as_secs_f64();
    if index.len() != ds.n {
        return Err(format!(
            "index holds {} vectors, expected {}",
            index.len(),
            ds.n
        ));
    }

    let queries: Vec<&[f32]> = ds.queries.chunks_exact(dim).collect();
    if queries.is_empty() {
        return Err("dataset has no queries".to_string());
    }

    // Warm-up: cycle through the queries without timing them.
    for i in 0..args.warmup {
        let q = queries[i % queries.len()];
        std::hint::black_box(
            index
                .search(q, args.k)
                .map_err(|e| format!("search failed: {e}"))?,
        );
    }

    let mut lat_ms = Vec::with_capacity(queries.len());
    let mut all_ids: Vec<Vec<usize>> = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        let hits = index.search(q, args.k);
        let dt = t.elapsed();
        let hits = hits.map_err(|e| format!("search failed: {e}"))?;
        lat_ms.push(dt.as_secs_f64() * 1e3);
        all_ids.push(hits.iter().map(|h| h.id).collect());
    }
    #[allow(clippy::cast_precision_loss)]
    let mean_ms = lat_ms.iter().sum::<f64>() / lat_ms.len() as f64;
    let mut sorted = lat_ms.clone();
    sorted.sort_by(f64::total_cmp);

    let mut out = String::with_capacity(64 + ds.nq * args.k * 8);
    write!(
        out,
        "{{\"build_s\": {build_s:.6}, \"p50_ms\": {:.6}, \"p99_ms\": {:.6}, \"mean_ms\": {mean_ms:.6}, \
         \"n\": {}, \"nq\": {}, \"dim\": {dim}, \"k\": {}, \"rerank_factor\": {}, \"seed\": {}, \
         \"warmup\": {}, \"memory_bytes\": {}, \"ids\": [",
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        ds.n,
        ds.nq,
        args.k,
        args.rerank,
        args.seed,
        args.warmup,
        index.memory_bytes(),
    )
    .expect("writing to a String cannot fail");
    for (qi, ids) in all_ids.iter().enumerate() {
        if qi > 0 {
            out.push(',');
        }
        out.push('[');
        for (j, id) in ids.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write!(out, "{id}").expect("writing to a String cannot fail");
        }
        out.push(']');
    }
    out.push_str("]}");
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("rabitq-rust-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}
