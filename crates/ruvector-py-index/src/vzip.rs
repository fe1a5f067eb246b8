//! Lossless compression of float32 vectors: the vectors section of a
//! version 2 file saved with `compress=True` (flag bit 4, see [`crate::rbpx`]).
//!
//! The vectors are cut into blocks of whole rows. Within a block the four
//! bytes of every value are split into four byte planes (plane `p` holds
//! byte `p` of each little-endian f32, in value order), and each plane is
//! either stored as it is or, when that is strictly smaller, *packed*: its
//! `2^w − 1` most frequent byte values form a dictionary, every byte
//! becomes a `w`-bit code (1 ≤ w ≤ 7), and the code `2^w − 1` escapes to
//! the next byte of an exception list. For embeddings only plane 3 (the
//! sign and the top seven exponent bits) packs: unit-norm MiniLM vectors
//! need `w = 3` with 4 % exceptions, 0.42 of the plane; the low planes are
//! near-random and are stored. The section is ~0.854 of the raw vectors
//! and decoding is a table look-up per value plus an interleave. (A
//! Huffman code, Huffman-only DEFLATE, reached 0.835 against an entropy
//! bound of ~0.83, but its plane took 2-3x as long to decode.) Every value
//! is kept bit for bit (NaN payloads, -0.0, denormals).
//!
//! ## Section layout
//!
//! | bytes | field |
//! |---|---|
//! | 4 | rows per block `R` (1 ≤ R, `R·dim·4` ≤ [`MAX_BLOCK_BYTES`]) |
//! | 4 | reserved, 0 |
//! | 16 per block | for block `b` = 0..⌈n/R⌉, the stored length of planes 0..3, u32 each |
//! | then | the planes' bytes, block after block, plane 0 first |
//!
//! A block of `r` rows has planes of `r·dim` bytes. A stored length equal
//! to `r·dim` means the plane is stored as it is; a larger one is refused;
//! a smaller one means a packed plane:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `w`, 1..=7 |
//! | `2^w − 1` | the dictionary: the byte of codes 0..2^w − 2 |
//! | ⌈r·dim·w / 8⌉ | the codes, least significant bit first; unused bits of the last byte 0 |
//! | the rest | the escaped bytes, in order: exactly one per escape code |
//!
//! The section's length comes from the file header and must equal the sum
//! of its parts, so every length is checked against the header before
//! anything is allocated or decoded.

use std::io::Write;

use rayon::prelude::*;

/// Largest raw block (`R·dim·4` bytes) a reader accepts: bounds the
/// per-thread scratch a hostile section can ask for.
pub const MAX_BLOCK_BYTES: u64 = 1 << 26;
/// The raw block size the writer aims at (4 MiB: enough blocks for every
/// thread at 100k × 384, few enough that the table is negligible).
const TARGET_BLOCK_BYTES: usize = 1 << 22;
/// Section head: rows per block and a reserved word.
pub const HEAD_LEN: u64 = 8;

/// Rows per block the writer uses for vectors of `dim` values.
pub fn rows_per_block(dim: usize) -> usize {
    (TARGET_BLOCK_BYTES / (4 * dim.max(1))).max(1)
}

/// A compressed vectors section, ready to be written.
pub struct Encoded {
    rows_per_block: u32,
    /// Stored length of every plane, 4 per block.
    table: Vec<u32>,
    /// Each block's planes, concatenated.
    blocks: Vec<Vec<u8>>,
}

impl Encoded {
    /// Bytes of the whole section.
    pub fn len(&self) -> u64 {
        HEAD_LEN
            + 4 * self.table.len() as u64
            + self.blocks.iter().map(|b| b.len() as u64).sum::<u64>()
    }

    /// Whether the section holds no block (no vectors).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Writes the section (exactly [`Encoded::len`] bytes).
    pub fn write_to<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.rows_per_block.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        let mut table = Vec::with_capacity(4 * self.table.len());
        for len in &self.table {
            table.extend_from_slice(&len.to_le_bytes());
        }
        w.write_all(&table)?;
        for b in &self.blocks {
            w.write_all(b)?;
        }
        Ok(())
    }
}

/// Bytes of `count` values packed with `w`-bit codes, given the byte
/// counts sorted in decreasing order.
fn packed_len(sorted: &[u64; 256], count: u64, w: u32) -> u64 {
    let dict = (1u64 << w) - 1;
    let covered: u64 = sorted[..dict as usize].iter().sum();
    1 + dict + (count * u64::from(w)).div_ceil(8) + (count - covered)
}

/// One plane, packed with the best width if that is strictly smaller,
/// else as it is. Returns the stored length.
fn pack_plane(plane: &[u8], out: &mut Vec<u8>) -> u32 {
    let count = plane.len() as u64;
    let mut counts = [0u64; 256];
    for &b in plane {
        counts[b as usize] += 1;
    }
    let mut order: Vec<u8> = (0..=255).collect();
    // Most frequent first; ties by byte value, so the output is a function
    // of the plane alone.
    order.sort_by_key(|&b| (std::cmp::Reverse(counts[b as usize]), b));
    let mut sorted = [0u64; 256];
    for (i, &b) in order.iter().enumerate() {
        sorted[i] = counts[b as usize];
    }
    let (w, len) = (1..=7)
        .map(|w| (w, packed_len(&sorted, count, w)))
        .min_by_key(|&(w, len)| (len, w))
        .expect("widths");
    if len >= count {
        out.extend_from_slice(plane);
        return count as u32;
    }
    let dict = (1usize << w) - 1;
    let escape = dict as u8;
    let mut code_of = [escape; 256];
    for (code, &b) in order[..dict].iter().enumerate() {
        code_of[b as usize] = code as u8;
    }
    let start = out.len();
    out.push(w as u8);
    out.extend_from_slice(&order[..dict]);
    let mut acc = 0u64;
    let mut bits = 0u32;
    let mut escaped = Vec::new();
    for &b in plane {
        let code = code_of[b as usize];
        if code == escape {
            escaped.push(b);
        }
        acc |= u64::from(code) << bits;
        bits += w;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
    out.extend_from_slice(&escaped);
    debug_assert_eq!((out.len() - start) as u64, len);
    len as u32
}

fn encode_block(rows: &[f32]) -> ([u32; 4], Vec<u8>) {
    let count = rows.len();
    let mut planes = vec![0u8; 4 * count];
    {
        let (p0, rest) = planes.split_at_mut(count);
        let (p1, rest) = rest.split_at_mut(count);
        let (p2, p3) = rest.split_at_mut(count);
        for (i, x) in rows.iter().enumerate() {
            let b = x.to_bits().to_le_bytes();
            p0[i] = b[0];
            p1[i] = b[1];
            p2[i] = b[2];
            p3[i] = b[3];
        }
    }
    let mut out = Vec::with_capacity(count);
    let mut lens = [0u32; 4];
    for (p, plane) in planes.chunks_exact(count.max(1)).enumerate().take(4) {
        lens[p] = pack_plane(plane, &mut out);
    }
    (lens, out)
}

/// Compresses `vectors` (rows of `dim` values), blocks in parallel on
/// `pool` when given.
pub fn encode(vectors: &[f32], dim: usize, pool: Option<&rayon::ThreadPool>) -> Encoded {
    assert!(dim > 0 && vectors.len().is_multiple_of(dim), "whole rows");
    let r = rows_per_block(dim);
    let work =
        || -> Vec<([u32; 4], Vec<u8>)> { vectors.par_chunks(r * dim).map(encode_block).collect() };
    let blocks = match pool {
        Some(pool) => pool.install(work),
        None => work(),
    };
    let mut table = Vec::with_capacity(4 * blocks.len());
    let mut data = Vec::with_capacity(blocks.len());
    for (lens, b) in blocks {
        table.extend_from_slice(&lens);
        data.push(b);
    }
    Encoded {
        rows_per_block: r as u32,
        table,
        blocks: data,
    }
}

/// Where one block's planes are in a section, after [`check`].
struct Block {
    /// Offset of plane 0's bytes in the section.
    at: usize,
    lens: [usize; 4],
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Checks a section's head and table against `n` rows of `dim` values:
/// every length is bounded and they add up to the section exactly. Returns
/// the rows per block and where every block is.
fn check(section: &[u8], n: usize, dim: usize) -> Result<(usize, Vec<Block>), String> {
    let len = section.len() as u64;
    if len < HEAD_LEN {
        return Err(format!(
            "the compressed vectors section is {len} bytes, shorter than its {HEAD_LEN}-byte head"
        ));
    }
    let r = le32(section, 0) as u64;
    if le32(section, 4) != 0 {
        return Err("the compressed vectors section's reserved field is not 0".into());
    }
    if r == 0 || r * dim as u64 * 4 > MAX_BLOCK_BYTES {
        return Err(format!(
            "the compressed vectors section's rows per block must be between 1 and {} for dim {dim}, got {r}",
            (MAX_BLOCK_BYTES / (4 * dim as u64)).max(1)
        ));
    }
    let blocks = (n as u64).div_ceil(r);
    let table_end = HEAD_LEN + 16 * blocks;
    if table_end > len {
        return Err(format!(
            "the compressed vectors section is {len} bytes, too short for the table of its {blocks} blocks ({table_end} bytes)"
        ));
    }
    let mut at = table_end;
    let mut out = Vec::with_capacity(blocks as usize);
    for b in 0..blocks {
        let rows = r.min(n as u64 - b * r);
        let raw = rows * dim as u64;
        let mut lens = [0usize; 4];
        for (p, l) in lens.iter_mut().enumerate() {
            let stored = u64::from(le32(section, (HEAD_LEN + 16 * b + 4 * p as u64) as usize));
            if stored > raw {
                return Err(format!(
                    "block {b} plane {p} of the compressed vectors is {stored} bytes, more than its {raw} raw bytes"
                ));
            }
            *l = stored as usize;
        }
        let sum: u64 = lens.iter().map(|&l| l as u64).sum();
        out.push(Block {
            at: at as usize,
            lens,
        });
        at += sum;
        if at > len {
            return Err(format!(
                "the compressed vectors' table says at least {at} bytes, the section is {len}"
            ));
        }
    }
    if at != len {
        return Err(format!(
            "the compressed vectors' table says {at} bytes, the section is {len}"
        ));
    }
    Ok((r as usize, out))
}

/// The codes of a packed plane, `W` bits each, into `out`; returns how
/// many escaped bytes were used. Eight codes are `W` whole bytes, unpacked
/// a group at a time (the width a constant, so the shifts are too).
fn unpack_codes<const W: usize>(
    codes: &[u8],
    table: &[u8; 128],
    escaped: &[u8],
    out: &mut [u8],
) -> Result<usize, String> {
    let escape = ((1u32 << W) - 1) as u8;
    let mask = (1u64 << W) - 1;
    let mut next = 0usize;
    let mut tail = [0u8; 8];
    let groups = out.len().div_ceil(8);
    let (whole, _) = codes.split_at((groups.saturating_sub(1)) * W);
    let last_src = &codes[whole.len()..];
    tail[..last_src.len()].copy_from_slice(last_src);
    for (g, chunk) in out.chunks_mut(8).enumerate() {
        let src = if g + 1 < groups {
            &whole[g * W..(g + 1) * W]
        } else {
            &tail[..W]
        };
        let mut word = [0u8; 8];
        word[..W].copy_from_slice(src);
        let acc = u64::from_le_bytes(word);
        let mut any_escape = false;
        for (i, x) in chunk.iter_mut().enumerate() {
            let code = ((acc >> (i * W)) & mask) as u8;
            *x = table[code as usize];
            any_escape |= code == escape;
        }
        if any_escape {
            for (i, x) in chunk.iter_mut().enumerate() {
                if ((acc >> (i * W)) & mask) as u8 == escape {
                    *x = *escaped
                        .get(next)
                        .ok_or("a packed plane has more escape codes than escaped bytes")?;
                    next += 1;
                }
            }
        }
    }
    Ok(next)
}

/// Unpacks a packed plane (see the module docs) into exactly `out`,
/// checking that the codes, their unused bits and the escapes use exactly
/// `input`.
fn unpack_plane(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let count = out.len();
    let w = u32::from(*input.first().ok_or("a packed plane is empty")?);
    if !(1..=7).contains(&w) {
        return Err(format!(
            "a packed plane's code width must be 1 to 7, got {w}"
        ));
    }
    let dict_len = (1usize << w) - 1;
    let codes_len = (count as u64 * u64::from(w)).div_ceil(8);
    let fixed = 1 + dict_len as u64 + codes_len;
    if fixed > input.len() as u64 {
        return Err(format!(
            "a packed plane of {count} values with {w}-bit codes needs at least {fixed} bytes, it has {}",
            input.len()
        ));
    }
    let mut table = [0u8; 128];
    table[..dict_len].copy_from_slice(&input[1..1 + dict_len]);
    let codes = &input[1 + dict_len..fixed as usize];
    let escaped = &input[fixed as usize..];
    let next = match w {
        1 => unpack_codes::<1>(codes, &table, escaped, out),
        2 => unpack_codes::<2>(codes, &table, escaped, out),
        3 => unpack_codes::<3>(codes, &table, escaped, out),
        4 => unpack_codes::<4>(codes, &table, escaped, out),
        5 => unpack_codes::<5>(codes, &table, escaped, out),
        6 => unpack_codes::<6>(codes, &table, escaped, out),
        _ => unpack_codes::<7>(codes, &table, escaped, out),
    }?;
    let used_bits = count as u64 * u64::from(w);
    if !used_bits.is_multiple_of(8) && codes[codes.len() - 1] >> (used_bits % 8) != 0 {
        return Err("a packed plane's unused code bits are not 0".into());
    }
    if next != escaped.len() {
        return Err(format!(
            "a packed plane has {next} escape codes but {} escaped bytes",
            escaped.len()
        ));
    }
    Ok(())
}

fn decode_block(
    section: &[u8],
    block: &Block,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let count = out.len();
    // Unpacked planes go to the scratch; stored ones are read in place.
    let coded = block.lens.iter().filter(|&&len| len < count).count();
    scratch.resize(coded * count, 0);
    let mut at = block.at;
    let mut sources: [(usize, bool); 4] = [(0, false); 4];
    let mut slot = 0;
    for (p, &len) in block.lens.iter().enumerate() {
        if len == count {
            sources[p] = (at, false);
        } else {
            let dst = &mut scratch[slot * count..(slot + 1) * count];
            unpack_plane(&section[at..at + len], dst)?;
            sources[p] = (slot * count, true);
            slot += 1;
        }
        at += len;
    }
    let plane = |p: usize| -> &[u8] {
        let (from, unpacked) = sources[p];
        let src: &[u8] = if unpacked { scratch } else { section };
        &src[from..from + count]
    };
    let (p0, p1, p2, p3) = (plane(0), plane(1), plane(2), plane(3));
    interleave(out, [p0, p1, p2, p3]);
    Ok(())
}

/// `out[i]` from byte `i` of the four planes (zipped iterators: measured
/// faster than 16-value arrays).
fn interleave(out: &mut [f32], planes: [&[u8]; 4]) {
    let [p0, p1, p2, p3] = planes;
    for ((((x, &a), &b), &c), &e) in out.iter_mut().zip(p0).zip(p1).zip(p2).zip(p3) {
        *x = f32::from_bits(u32::from_le_bytes([a, b, c, e]));
    }
}

/// Decodes a section into `out` (`n·dim` values, the index's own buffer),
/// blocks in parallel on `pool` when given. Every length is checked before
/// anything is decoded; a damaged section is an error, never a panic.
pub fn decode(
    section: &[u8],
    n: usize,
    dim: usize,
    out: &mut [f32],
    pool: Option<&rayon::ThreadPool>,
) -> Result<(), String> {
    if dim == 0 || out.len() as u64 != n as u64 * dim as u64 {
        return Err(format!(
            "the output must hold {n}·{dim} values, it holds {}",
            out.len()
        ));
    }
    let (r, blocks) = check(section, n, dim)?;
    if blocks.is_empty() {
        return Ok(());
    }
    let mut work = || -> Result<(), String> {
        out.par_chunks_mut(r * dim)
            .zip(blocks.par_iter())
            .try_for_each_init(Vec::new, |scratch, (chunk, block)| {
                decode_block(section, block, chunk, scratch)
            })
    };
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(e: &Encoded) -> Vec<u8> {
        let mut v = Vec::new();
        e.write_to(&mut v).unwrap();
        assert_eq!(v.len() as u64, e.len());
        v
    }

    fn round_trip(v: &[f32], dim: usize) -> Vec<u8> {
        let n = v.len() / dim;
        let e = encode(v, dim, None);
        let b = bytes(&e);
        let mut out = vec![1.5f32; v.len()];
        decode(&b, n, dim, &mut out, None).unwrap();
        let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(v));
        b
    }

    /// Deterministic embedding-like values: unit-ish norms, many exponents.
    fn embedding(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n * dim {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            v.push(((u - 0.5) * 0.2 / (dim as f64).sqrt() * 4.0) as f32);
        }
        v
    }

    #[test]
    fn round_trips_special_values_bit_for_bit() {
        let specials = [
            f32::from_bits(0x7FC0_1234), // quiet NaN with a payload
            f32::from_bits(0xFF80_0001), // signalling NaN, sign set
            -0.0,
            0.0,
            f32::from_bits(1),           // smallest denormal
            f32::from_bits(0x807F_FFFF), // largest negative denormal
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN_POSITIVE,
            1.0,
        ];
        for dim in [1, 3, 7, 11] {
            let v: Vec<f32> = (0..dim * 37)
                .map(|i| specials[i % specials.len()])
                .collect();
            round_trip(&v, dim);
        }
    }

    #[test]
    fn round_trips_empty_single_and_odd_dims() {
        for dim in [1usize, 2, 3, 5, 384, 385] {
            let b = round_trip(&[], dim);
            assert_eq!(b.len() as u64, HEAD_LEN);
            round_trip(&embedding(1, dim, 3), dim);
            round_trip(&embedding(17, dim, 4), dim);
        }
    }

    #[test]
    fn round_trips_across_block_boundaries() {
        let dim = 384;
        let r = rows_per_block(dim);
        for n in [r - 1, r, r + 1, 2 * r, 2 * r + 1] {
            let v = embedding(n, dim, n as u64);
            let b = round_trip(&v, dim);
            let blocks = n.div_ceil(r);
            // The table has one row per block.
            let e = encode(&v, dim, None);
            assert_eq!(e.table.len(), 4 * blocks);
            assert_eq!(le32(&b, 0) as usize, r);
        }
        // A huge dim: one row per block.
        let dim = (TARGET_BLOCK_BYTES / 4) + 3;
        assert_eq!(rows_per_block(dim), 1);
        round_trip(&embedding(2, dim, 5), dim);
    }

    #[test]
    fn compresses_only_the_planes_that_shrink() {
        let dim = 64;
        let v = embedding(300, dim, 7);
        let e = encode(&v, dim, None);
        let raw = (300 * dim) as u32;
        // Low planes are noise (stored); the sign/exponent plane shrinks.
        assert_eq!(e.table[0], raw);
        assert_eq!(e.table[1], raw);
        assert!(e.table[3] < raw / 2, "plane 3: {} of {raw}", e.table[3]);
        assert!(e.len() < (4 * 300 * dim) as u64 * 9 / 10);
        // Constant data: every plane packs to 1-bit codes.
        let c = vec![0.25f32; 300 * dim];
        let e = encode(&c, dim, None);
        assert!(e.table.iter().all(|&l| l <= raw / 8 + 16), "{:?}", e.table);
        round_trip(&c, dim);
    }

    #[test]
    fn packed_planes_with_escapes_and_hostile_packing() {
        // A skewed plane: three common bytes, rare others (escapes).
        let plane: Vec<u8> = (0..1001u32)
            .map(|i| match i % 50 {
                0 => (i % 251) as u8,
                k => [7u8, 9, 200][k as usize % 3],
            })
            .collect();
        let mut packed = Vec::new();
        let len = pack_plane(&plane, &mut packed) as usize;
        assert_eq!(len, packed.len());
        assert!(len < plane.len() / 3, "{len}");
        let w = packed[0];
        assert!((1..=7).contains(&w));
        let mut out = vec![0u8; plane.len()];
        unpack_plane(&packed, &mut out).unwrap();
        assert_eq!(out, plane);
        // Width 0 or 8; one escaped byte too many or too few; a set unused bit.
        for bad_w in [0u8, 8, 255] {
            let mut bad = packed.clone();
            bad[0] = bad_w;
            assert!(unpack_plane(&bad, &mut out).is_err());
        }
        let mut more = packed.clone();
        more.push(1);
        assert!(unpack_plane(&more, &mut out).is_err());
        assert!(unpack_plane(&packed[..packed.len() - 1], &mut out).is_err());
        let fixed = 1 + (1usize << w) - 1 + (plane.len() * w as usize).div_ceil(8);
        if !(plane.len() * w as usize).is_multiple_of(8) {
            let mut pad = packed.clone();
            pad[fixed - 1] |= 0x80;
            assert!(unpack_plane(&pad, &mut out).is_err());
        }
        assert!(unpack_plane(&[], &mut out).is_err());
        // Near-random bytes are stored.
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut stored = Vec::new();
        assert_eq!(pack_plane(&noise, &mut stored) as usize, noise.len());
        assert_eq!(stored, noise);
    }

    #[test]
    fn parallel_decode_matches() {
        let dim = 96;
        let n = 3 * rows_per_block(dim) + 5;
        let v = embedding(n, dim, 11);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let b = bytes(&encode(&v, dim, Some(&pool)));
        assert_eq!(b, bytes(&encode(&v, dim, None)));
        let mut out = vec![0f32; v.len()];
        decode(&b, n, dim, &mut out, Some(&pool)).unwrap();
        assert!(out.iter().zip(&v).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn refuses_wrong_shapes_and_lengths() {
        let dim = 8;
        let n = 50;
        let v = embedding(n, dim, 1);
        let b = bytes(&encode(&v, dim, None));
        let mut out = vec![0f32; n * dim];
        // Wrong n / dim for the table.
        assert!(decode(&b, n + 1, dim, &mut vec![0f32; (n + 1) * dim], None).is_err());
        assert!(decode(&b, n, dim, &mut out[1..], None).is_err());
        // Truncated or extended.
        assert!(decode(&b[..b.len() - 1], n, dim, &mut out, None).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer, n, dim, &mut out, None).is_err());
        // Rows per block 0 or huge.
        let mut z = b.clone();
        z[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(decode(&z, n, dim, &mut out, None).is_err());
        z[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&z, n, dim, &mut out, None).is_err());
        // A plane claiming more than its raw size.
        let mut big = b.clone();
        big[8..12].copy_from_slice(&(n as u32 * dim as u32 + 1).to_le_bytes());
        assert!(decode(&big, n, dim, &mut out, None).is_err());
        // Reserved word.
        let mut res = b.clone();
        res[4] = 1;
        assert!(decode(&res, n, dim, &mut out, None).is_err());
        decode(&b, n, dim, &mut out, None).unwrap();
    }

    /// Every single-byte change and every truncation of a section is
    /// refused or decodes to some values, never panics; changes inside a
    /// compressed plane's stream that still decode are caught by the file's
    /// CRC (see `rbpx`).
    #[test]
    fn damaged_sections_never_panic() {
        let dim = 16;
        let n = 70;
        let mut v = embedding(n, dim, 2);
        v[5] = f32::from_bits(0x7FC0_0001);
        let b = bytes(&encode(&v, dim, None));
        let mut out = vec![0f32; n * dim];
        for cut in 0..b.len() {
            assert!(decode(&b[..cut], n, dim, &mut out, None).is_err());
        }
        let mut s = 0x1234_5678_u64;
        for i in 0..b.len() {
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let mut m = b.clone();
                m[i] ^= (s as u8) | 1;
                let _ = decode(&m, n, dim, &mut out, None);
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    /// `cargo test --release -p ruvector-py-index vzip::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn time_100k_x_384() {
        let (n, dim) = (100_000, 384);
        let mut s = 0x1234_5678_9abc_def1_u64;
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n * dim {
            let mut g = 0.0f64;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                g += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            }
            v.push((g * 1.7 / (dim as f64).sqrt()) as f32);
        }
        let t = std::time::Instant::now();
        let e = encode(&v, dim, None);
        println!(
            "encode 1 thread {:?}, ratio {:.4}",
            t.elapsed(),
            e.len() as f64 / (4 * n * dim) as f64
        );
        let mut b = Vec::new();
        e.write_to(&mut b).unwrap();
        let mut out = vec![0f32; n * dim];
        let t = std::time::Instant::now();
        decode(&b, n, dim, &mut out, None).unwrap();
        println!("decode 1 thread {:?}", t.elapsed());
        let (_, blocks) = check(&b, n, dim).unwrap();
        let t = std::time::Instant::now();
        for (blk, chunk) in blocks.iter().zip(out.chunks_mut(rows_per_block(dim) * dim)) {
            let count = chunk.len();
            let at = blk.at + blk.lens[..3].iter().sum::<usize>();
            let mut dst = vec![0u8; count];
            if blk.lens[3] < count {
                unpack_plane(&b[at..at + blk.lens[3]], &mut dst).unwrap();
            }
        }
        println!("unpack plane 3 only {:?}", t.elapsed());
    }
}
