//! The one wide scan that profiling earned: flagging control bytes and DEL in field values,
//! 16 bytes per step with SSE2 (part of every x86_64 CPU), or 8 with SWAR elsewhere.

/// Bytes examined per step.
#[cfg(target_arch = "x86_64")]
pub const WIDTH: usize = 16;
/// Bytes examined per step.
#[cfg(not(target_arch = "x86_64"))]
pub const WIDTH: usize = 8;

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a bit mask, bit k set when byte k
/// is below 0x20 or is 0x7f. Only the lowest set bit is guaranteed exact.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
pub fn ctl_or_del_mask(s: &[u8]) -> Option<u32> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let chunk: &[u8; 16] = s.get(..16)?.try_into().ok()?;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
    // the unaligned load reads exactly the 16 bytes of `chunk`, which is borrowed for the call.
    let mask = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        // v >= 0x20 (unsigned)  <=>  max(v, 0x20) == v
        let ge_space = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x20)), v);
        let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
        // flagged = below 0x20, or DEL
        let good = _mm_movemask_epi8(ge_space) as u32;
        let del = _mm_movemask_epi8(del) as u32;
        (!good & 0xffff) | del
    };
    Some(mask)
}

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a mask with one bit per byte, set
/// when the byte is below 0x20 or is 0x7f. Only the lowest set bit is guaranteed exact.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn ctl_or_del_mask(s: &[u8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word: [u8; 8] = s.get(..8)?.try_into().ok()?;
    let x = u64::from_le_bytes(word);
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let y = x ^ (ONES * 0x7f);
    let del = y.wrapping_sub(ONES) & !y & HIGH;
    let flags = below_space | del;
    // compress one flag per byte (bit 7 of each byte) into bits 0..8
    let mut m = 0u32;
    for k in 0..8 {
        if flags & (0x80 << (8 * k)) != 0 {
            m |= 1 << k;
        }
    }
    Some(m)
}
