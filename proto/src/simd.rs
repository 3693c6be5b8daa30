//! The one wide scan that profiling earned: finding the end and the colon of a field line,
//! 16 bytes per step with SSE2 (part of every x86_64 CPU), 8 with a plain loop elsewhere.

/// Bytes examined per step.
#[cfg(target_arch = "x86_64")]
pub const WIDTH: usize = 16;
/// Bytes examined per step.
#[cfg(not(target_arch = "x86_64"))]
pub const WIDTH: usize = 8;

/// For the first `WIDTH` bytes of `s` (`None` if shorter): `(stop, colon)` bit masks, `stop`
/// marking bytes that may not appear in a field line's value (so CR, LF, other controls, DEL)
/// and `colon` marking `:`. Exact for every bit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[expect(
    unsafe_code,
    reason = "SSE2 intrinsics; each block has its SAFETY note"
)]
pub fn line_masks(s: &[u8]) -> Option<(u32, u32)> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let chunk: &[u8; 16] = s.get(..16)?.try_into().ok()?;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
    // the unaligned load reads exactly the 16 bytes of `chunk`, which is borrowed for the call.
    let masks = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let ge_space =
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x20)), v)) as u32;
        let del = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))) as u32;
        let tab = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x09))) as u32;
        let colon = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u32;
        ((((!ge_space) & !tab) | del) & 0xffff, colon)
    };
    Some(masks)
}

/// For the first `WIDTH` bytes of `s` (`None` if shorter): `(stop, colon)` bit masks, `stop`
/// marking bytes that may not appear in a field line's value and `colon` marking `:`.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn line_masks(s: &[u8]) -> Option<(u32, u32)> {
    let chunk: &[u8; 8] = s.get(..8)?.try_into().ok()?;
    let (mut stop, mut colon) = (0u32, 0u32);
    for (k, &b) in chunk.iter().enumerate() {
        if !crate::chars::is_field_value(b) {
            stop |= 1 << k;
        }
        if b == b':' {
            colon |= 1 << k;
        }
    }
    Some((stop, colon))
}

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a bit mask of the bytes outside
/// visible ASCII (below 0x21 or above 0x7e), where a request-target must end.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[expect(
    unsafe_code,
    reason = "SSE2 intrinsics; each block has its SAFETY note"
)]
pub fn outside_visible_mask(s: &[u8]) -> Option<u32> {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_min_epu8,
        _mm_movemask_epi8, _mm_set1_epi8,
    };
    let chunk: &[u8; 16] = s.get(..16)?.try_into().ok()?;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
    // the unaligned load reads exactly the 16 bytes of `chunk`, which is borrowed for the call.
    let visible = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let ge = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x21)), v);
        let le = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x7e)), v);
        _mm_movemask_epi8(_mm_and_si128(ge, le)) as u32
    };
    Some(!visible & 0xffff)
}

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a bit mask of the bytes outside
/// visible ASCII (below 0x21 or above 0x7e), where a request-target must end.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn outside_visible_mask(s: &[u8]) -> Option<u32> {
    let chunk: &[u8; 8] = s.get(..8)?.try_into().ok()?;
    let mut m = 0u32;
    for (k, &b) in chunk.iter().enumerate() {
        if !(0x21..=0x7e).contains(&b) {
            m |= 1 << k;
        }
    }
    Some(m)
}

/// Bytes examined per step by `line_masks_wide`.
#[cfg(target_arch = "x86_64")]
pub const WIDE: usize = 32;
/// Bytes examined per step by `line_masks_wide`.
#[cfg(not(target_arch = "x86_64"))]
pub const WIDE: usize = WIDTH;

/// `line_masks` over the first `WIDE` bytes (two SSE2 blocks per step on x86_64: fewer loop
/// turns on long values such as cookies and user agents).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn line_masks_wide(s: &[u8]) -> Option<(u32, u32)> {
    let (lo_stop, lo_colon) = line_masks(s)?;
    let (hi_stop, hi_colon) = line_masks(s.get(16..)?)?;
    Some((lo_stop | (hi_stop << 16), lo_colon | (hi_colon << 16)))
}

/// `line_masks` over the first `WIDE` bytes.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn line_masks_wide(s: &[u8]) -> Option<(u32, u32)> {
    line_masks(s)
}
