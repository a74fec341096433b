//! Argon2id (RFC 9106, version 0x13) for one lane, with its block function written in AVX2.
//!
//! The `argon2` crate's block function is scalar code that the compiler vectorises poorly,
//! and it is where a hash's time goes: 38,912 block compressions at our m = 19 MiB, t = 2,
//! ~38 ms on the 2-core test machine. Here the 1 KiB block is held as 32 AVX2 vectors and
//! the BlaMka rounds run four 64-bit words at a time, as in the reference implementation's
//! AVX2 code: ~24 ms. The rest (the initial hash, the first two blocks, the final hash) is
//! the same short Blake2b code as the crate's.
//!
//! Only what Quick Meet stores is handled: Argon2id, version 0x13, one lane (p = 1), no
//! secret, no associated data. [`hash`] returns `false` for anything else, or on a CPU
//! without AVX2, and the caller then uses the crate. The crate stays the reference: the
//! tests check this against it bit for bit. This is a crate of its own so that debug
//! builds compile it optimised, as they do `argon2`.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use argon2::Block;
use blake2::digest::{Digest, Update, VariableOutput};
use blake2::{Blake2b512, Blake2bVar};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

const SYNC_POINTS: usize = 4;
const ADDRESSES_IN_BLOCK: usize = 128;
const VERSION: u32 = 0x13;
const ARGON2ID: u32 = 2;

/// Whether this CPU runs the fast block function (AVX2).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Argon2id v0x13 with one lane of `m_cost` KiB and `t_cost` passes, no secret and no
/// associated data, into `out`, using `memory` (grown as needed) as its working memory.
/// Returns `false`, computing nothing, when these inputs are not ones it handles (no AVX2,
/// or lengths outside what RFC 9106 allows); the caller then uses the `argon2` crate.
/// `memory` grows to `m_cost` KiB: bounding `m_cost` is the caller's job (the daemon
/// refuses stored hashes over 64 MiB before calling). Stale contents do not matter: every
/// block is written before it is read.
pub fn hash(m_cost: u32, t_cost: u32, password: &[u8], salt: &[u8], out: &mut [u8], memory: &mut Vec<Block>) -> bool {
    let lengths_ok = u32::try_from(password.len()).is_ok()
        && (8..=64).contains(&salt.len())
        && (4..=64).contains(&out.len())
        && t_cost >= 1
        && m_cost >= 8;
    if !lengths_ok || !available() {
        return false;
    }
    let segment = m_cost as usize / SYNC_POINTS;
    let lane = segment * SYNC_POINTS;
    if memory.len() < lane {
        memory.resize(lane, Block::default());
    }
    let blocks = &mut memory[..lane];

    let mut h0 = Blake2b512::new();
    for word in [1, out.len() as u32, m_cost, t_cost, VERSION, ARGON2ID, password.len() as u32] {
        Digest::update(&mut h0, word.to_le_bytes());
    }
    Digest::update(&mut h0, password);
    Digest::update(&mut h0, (salt.len() as u32).to_le_bytes());
    Digest::update(&mut h0, salt);
    // No secret, no associated data: two zero lengths.
    Digest::update(&mut h0, [0u8; 8]);
    let h0 = h0.finalize();

    let mut bytes = [0u8; Block::SIZE];
    for (i, block) in blocks[..2].iter_mut().enumerate() {
        long_hash(&[&h0, &(i as u32).to_le_bytes(), &0u32.to_le_bytes()], &mut bytes);
        for (word, chunk) in block.as_mut().iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        }
    }

    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` said this CPU has AVX2; `blocks` holds exactly 4 × `segment`
    // blocks, with `segment` ≥ 2 because `m_cost` ≥ 8.
    unsafe {
        fill(blocks, t_cost as usize, segment)
    };

    for (chunk, word) in bytes.chunks_exact_mut(8).zip(blocks[lane - 1].as_ref()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    long_hash(&[&bytes], out);
    true
}

/// RFC 9106's variable-length hash H' over the concatenation of `inputs`.
fn long_hash(inputs: &[&[u8]], out: &mut [u8]) {
    let len = (out.len() as u32).to_le_bytes();
    if out.len() <= 64 {
        let mut h = Blake2bVar::new(out.len()).expect("1..=64 bytes is a valid Blake2b length");
        h.update(&len);
        inputs.iter().for_each(|i| h.update(i));
        h.finalize_variable(out).expect("the buffer has the length asked for");
        return;
    }
    let mut h = Blake2b512::new();
    Digest::update(&mut h, len);
    inputs.iter().for_each(|i| Digest::update(&mut h, i));
    let mut v = h.finalize();
    out[..32].copy_from_slice(&v[..32]);
    let mut done = 32;
    while out.len() - done > 64 {
        v = Blake2b512::digest(v);
        out[done..done + 32].copy_from_slice(&v[..32]);
        done += 32;
    }
    let mut h = Blake2bVar::new(out.len() - done).expect("1..=64 bytes is a valid Blake2b length");
    h.update(&v);
    h.finalize_variable(&mut out[done..]).expect("the buffer has the length asked for");
}

/// One block as 32 vectors of four words. Only [`fill`] and [`next_addresses`] enable
/// AVX2; the helpers below are `#[inline(always)]` into them and so compile with it. As
/// `#[target_feature]` functions of their own they were left as calls in the daemon's LTO
/// build, which kept the block in memory between rounds: 29 ms a hash instead of 24.
#[cfg(target_arch = "x86_64")]
type State = [__m256i; 32];

/// Every pass over one lane of `4 × segment` blocks, the first two already set.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill(blocks: &mut [Block], passes: usize, segment: usize) {
    let lane = blocks.len();
    let base = blocks.as_mut_ptr();
    let mut state: State = [_mm256_setzero_si256(); 32];
    let mut addresses = Block::default();
    let mut input = Block::default();
    for pass in 0..passes {
        for slice in 0..SYNC_POINTS {
            // Argon2id: data-independent addresses in the first half of the first pass.
            let independent = pass == 0 && slice < SYNC_POINTS / 2;
            if independent {
                input = Block::default();
                input.as_mut()[..6].copy_from_slice(&[0, 0, slice as u64, lane as u64, passes as u64, ARGON2ID as u64]);
            }
            let first = if pass == 0 && slice == 0 {
                next_addresses(&mut input, &mut addresses);
                2
            } else {
                0
            };
            let start_at = slice * segment + first;
            let prev = if start_at == 0 { lane - 1 } else { start_at - 1 };
            load(&mut state, (*base.add(prev)).as_ref().as_ptr());
            for i in first..segment {
                let cur = slice * segment + i;
                let rand = if independent {
                    if i % ADDRESSES_IN_BLOCK == 0 {
                        next_addresses(&mut input, &mut addresses);
                    }
                    addresses.as_ref()[i % ADDRESSES_IN_BLOCK]
                } else {
                    // The previous block's first word, which `state` holds.
                    _mm256_extract_epi64::<0>(state[0]) as u64
                };
                // One lane: every reference is in our own lane.
                let area = if pass == 0 { slice * segment + i - 1 } else { lane - segment + i - 1 };
                let x = ((rand & 0xFFFF_FFFF) * (rand & 0xFFFF_FFFF)) >> 32;
                let relative = area - 1 - ((area as u64 * x) >> 32) as usize;
                let start = if pass != 0 && slice != SYNC_POINTS - 1 { (slice + 1) * segment } else { 0 };
                let reference = (start + relative) % lane;
                debug_assert!(reference != cur && cur < lane);
                let next = (*base.add(cur)).as_mut().as_mut_ptr();
                fill_block(&mut state, (*base.add(reference)).as_ref().as_ptr(), next, pass > 0);
            }
        }
    }
}

/// The next block of 128 data-independent addresses: G(0, G(0, input)) with the counter
/// in `input` advanced first.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn next_addresses(input: &mut Block, addresses: &mut Block) {
    input.as_mut()[6] += 1;
    let mut state: State = [_mm256_setzero_si256(); 32];
    let mut tmp = Block::default();
    fill_block(&mut state, input.as_ref().as_ptr(), tmp.as_mut().as_mut_ptr(), false);
    let mut state: State = [_mm256_setzero_si256(); 32];
    fill_block(&mut state, tmp.as_ref().as_ptr(), addresses.as_mut().as_mut_ptr(), false);
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load(state: &mut State, block: *const u64) {
    for (i, s) in state.iter_mut().enumerate() {
        *s = _mm256_loadu_si256(block.add(4 * i).cast());
    }
}

/// `next` = G(previous, reference), XORed into `next`'s old contents from the second pass
/// on; `state` holds the previous block on entry and the new one on return.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fill_block(state: &mut State, reference: *const u64, next: *mut u64, xor: bool) {
    let mut r: State = [_mm256_setzero_si256(); 32];
    for i in 0..32 {
        state[i] = _mm256_xor_si256(state[i], _mm256_loadu_si256(reference.add(4 * i).cast()));
        r[i] = if xor { _mm256_xor_si256(state[i], _mm256_loadu_si256(next.add(4 * i).cast())) } else { state[i] };
    }
    // Written out rather than looped so that the four independent rounds of each half
    // overlap in the CPU.
    round_rows(state, [0, 4, 1, 5, 2, 6, 3, 7]);
    round_rows(state, [8, 12, 9, 13, 10, 14, 11, 15]);
    round_rows(state, [16, 20, 17, 21, 18, 22, 19, 23]);
    round_rows(state, [24, 28, 25, 29, 26, 30, 27, 31]);
    round_columns(state, [0, 4, 8, 12, 16, 20, 24, 28]);
    round_columns(state, [1, 5, 9, 13, 17, 21, 25, 29]);
    round_columns(state, [2, 6, 10, 14, 18, 22, 26, 30]);
    round_columns(state, [3, 7, 11, 15, 19, 23, 27, 31]);
    for i in 0..32 {
        state[i] = _mm256_xor_si256(state[i], r[i]);
        _mm256_storeu_si256(next.add(4 * i).cast(), state[i]);
    }
}

/// a + b + 2 · lo32(a) · lo32(b), lane by lane: BlaMka's multiply-add.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn blamka(a: __m256i, b: __m256i) -> __m256i {
    let m = _mm256_mul_epu32(a, b);
    _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(m, m))
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rotr32(x: __m256i) -> __m256i {
    _mm256_shuffle_epi32::<0b10_11_00_01>(x)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rotr24(x: __m256i) -> __m256i {
    let m = _mm256_setr_epi8(
        3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,
    );
    _mm256_shuffle_epi8(x, m)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rotr16(x: __m256i) -> __m256i {
    let m = _mm256_setr_epi8(
        2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
    );
    _mm256_shuffle_epi8(x, m)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rotr63(x: __m256i) -> __m256i {
    _mm256_xor_si256(_mm256_srli_epi64::<63>(x), _mm256_add_epi64(x, x))
}

/// BlaMka's G on four columns at once, for two sets of (a, b, c, d).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn g(v: &mut [__m256i; 8]) {
    let [a0, a1, b0, b1, c0, c1, d0, d1] = v;
    // The two sets are independent; interleaving them hides each step's latency.
    *a0 = blamka(*a0, *b0);
    *a1 = blamka(*a1, *b1);
    *d0 = rotr32(_mm256_xor_si256(*d0, *a0));
    *d1 = rotr32(_mm256_xor_si256(*d1, *a1));
    *c0 = blamka(*c0, *d0);
    *c1 = blamka(*c1, *d1);
    *b0 = rotr24(_mm256_xor_si256(*b0, *c0));
    *b1 = rotr24(_mm256_xor_si256(*b1, *c1));
    *a0 = blamka(*a0, *b0);
    *a1 = blamka(*a1, *b1);
    *d0 = rotr16(_mm256_xor_si256(*d0, *a0));
    *d1 = rotr16(_mm256_xor_si256(*d1, *a1));
    *c0 = blamka(*c0, *d0);
    *c1 = blamka(*c1, *d1);
    *b0 = rotr63(_mm256_xor_si256(*b0, *c0));
    *b1 = rotr63(_mm256_xor_si256(*b1, *c1));
}

/// One Blake2b round over two 16-word rows of the block (registers `at`, in the order
/// a0, a1, b0, b1, c0, c1, d0, d1): columns, then diagonals by rotating b, c and d.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn round_rows(state: &mut State, at: [usize; 8]) {
    let mut v = at.map(|i| state[i]);
    g(&mut v);
    for k in [2, 3] {
        v[k] = _mm256_permute4x64_epi64::<0b00_11_10_01>(v[k]);
    }
    for k in [4, 5] {
        v[k] = _mm256_permute4x64_epi64::<0b01_00_11_10>(v[k]);
    }
    for k in [6, 7] {
        v[k] = _mm256_permute4x64_epi64::<0b10_01_00_11>(v[k]);
    }
    g(&mut v);
    for k in [2, 3] {
        v[k] = _mm256_permute4x64_epi64::<0b10_01_00_11>(v[k]);
    }
    for k in [4, 5] {
        v[k] = _mm256_permute4x64_epi64::<0b01_00_11_10>(v[k]);
    }
    for k in [6, 7] {
        v[k] = _mm256_permute4x64_epi64::<0b00_11_10_01>(v[k]);
    }
    for (k, &i) in at.iter().enumerate() {
        state[i] = v[k];
    }
}

/// Swaps the two 64-bit words in each 128-bit half.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn swap_pairs(x: __m256i) -> __m256i {
    _mm256_permute4x64_epi64::<0b10_11_00_01>(x)
}

/// One Blake2b round over two columns of 2-word pairs (registers `at`, as in
/// [`round_rows`]); their diagonals straddle register pairs, so b and d are re-paired by
/// blends and c0, c1 swap.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn round_columns(state: &mut State, at: [usize; 8]) {
    let mut v = at.map(|i| state[i]);
    g(&mut v);
    let (b0, b1, d0, d1) = (v[2], v[3], v[6], v[7]);
    v[2] = swap_pairs(_mm256_blend_epi32::<0x33>(b0, b1));
    v[3] = swap_pairs(_mm256_blend_epi32::<0xCC>(b0, b1));
    v.swap(4, 5);
    v[6] = swap_pairs(_mm256_blend_epi32::<0xCC>(d0, d1));
    v[7] = swap_pairs(_mm256_blend_epi32::<0x33>(d0, d1));
    g(&mut v);
    let (b0, b1, d0, d1) = (v[2], v[3], v[6], v[7]);
    v[2] = swap_pairs(_mm256_blend_epi32::<0xCC>(b0, b1));
    v[3] = swap_pairs(_mm256_blend_epi32::<0x33>(b0, b1));
    v.swap(4, 5);
    v[6] = swap_pairs(_mm256_blend_epi32::<0x33>(d0, d1));
    v[7] = swap_pairs(_mm256_blend_epi32::<0xCC>(d0, d1));
    for (k, &i) in at.iter().enumerate() {
        state[i] = v[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, Params, Version};

    fn reference(m_cost: u32, t_cost: u32, password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
        let params = Params::new(m_cost, t_cost, 1, Some(len)).unwrap();
        let mut out = vec![0u8; len];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(password, salt, &mut out).unwrap();
        out
    }

    fn ours(m_cost: u32, t_cost: u32, password: &[u8], salt: &[u8], len: usize, memory: &mut Vec<Block>) -> Vec<u8> {
        let mut out = vec![0u8; len];
        assert!(hash(m_cost, t_cost, password, salt, &mut out, memory), "declined m={m_cost} t={t_cost}");
        out
    }

    #[test]
    fn this_machine_runs_the_fast_path() {
        // CI and the appliances we ship to are x86-64 with AVX2; without it every other test
        // here would only see the fallback.
        assert!(!cfg!(target_arch = "x86_64") || available());
    }

    #[test]
    fn equals_the_argon2_crate_bit_for_bit() {
        if !available() {
            return;
        }
        let mut memory = Vec::new();
        let long: Vec<u8> = (0..300).map(|_| rand::random()).collect();
        let passwords: [&[u8]; 4] = [b"", b"correct horse battery staple", "pässwörd ✓".as_bytes(), &long];
        // Sizes that are and are not multiples of four blocks, one to three passes, every
        // output length from the shortest to the longest a single Blake2b gives.
        let shapes = [(8, 1, 32), (9, 2, 4), (16, 3, 16), (64, 1, 64), (257, 2, 32), (1000, 3, 24), (4099, 2, 32)];
        for (m, t, len) in shapes {
            for password in passwords {
                for salt_len in [8, 16, 64] {
                    let salt: Vec<u8> = (0..salt_len).map(|_| rand::random()).collect();
                    assert_eq!(
                        ours(m, t, password, &salt, len, &mut memory),
                        reference(m, t, password, &salt, len),
                        "m={m} t={t} len={len} password={password:?} salt={salt:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn equals_the_crate_at_the_parameters_we_store() {
        if !available() {
            return;
        }
        let mut memory = Vec::new();
        for _ in 0..3 {
            let password: [u8; 12] = rand::random();
            let salt: [u8; 16] = rand::random();
            assert_eq!(
                ours(19 * 1024, 2, &password, &salt, 32, &mut memory),
                reference(19 * 1024, 2, &password, &salt, 32)
            );
        }
    }

    #[test]
    fn memory_left_larger_by_an_earlier_hash_gives_the_same_result() {
        if !available() {
            return;
        }
        let mut memory = Vec::new();
        let first = ours(64, 1, b"pw", b"saltsalt", 32, &mut memory);
        ours(2048, 2, b"other", b"othersalt", 32, &mut memory);
        assert_eq!(memory.len(), 2048);
        assert_eq!(ours(64, 1, b"pw", b"saltsalt", 32, &mut memory), first);
        assert_eq!(first, reference(64, 1, b"pw", b"saltsalt", 32));
    }

    #[test]
    fn declines_what_it_does_not_handle_and_touches_nothing() {
        let mut memory = Vec::new();
        let cases: [(u32, u32, &[u8], usize); 6] = [
            (64, 1, b"short", 32),    // salt under 8 bytes
            (64, 1, &[7u8; 65], 32),  // salt over 64 bytes
            (64, 1, b"saltsalt", 3),  // output under 4 bytes
            (64, 1, b"saltsalt", 65), // output longer than this handles
            (64, 0, b"saltsalt", 32), // no passes
            (7, 1, b"saltsalt", 32),  // under 8 blocks
        ];
        for (m, t, salt, len) in cases {
            let mut out = vec![0xAAu8; len];
            assert!(!hash(m, t, b"pw", salt, &mut out, &mut memory), "m={m} t={t} salt={} len={len}", salt.len());
            assert!(out.iter().all(|&b| b == 0xAA));
            assert!(memory.is_empty());
        }
    }
}
