//! The wide scans that profiling earned: the end of a field value and of a request-target,
//! 16 bytes per step with SSE2 (part of every x86_64 CPU), 8 with a plain loop elsewhere.

/// Bytes examined per step.
#[cfg(target_arch = "x86_64")]
pub const WIDTH: usize = 16;
/// Bytes examined per step.
#[cfg(not(target_arch = "x86_64"))]
pub const WIDTH: usize = 8;

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a bit mask of the bytes that may
/// not appear in a field value (controls other than HTAB, and DEL), so CR and LF among them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[expect(
    unsafe_code,
    reason = "SSE2 intrinsics; each block has its SAFETY note"
)]
pub fn value_stop_mask(s: &[u8]) -> Option<u32> {
    use std::arch::x86_64::{
        _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    let chunk: &[u8; 16] = s.get(..16)?.try_into().ok()?;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always available;
    // the unaligned load reads exactly the 16 bytes of `chunk`, which is borrowed for the call.
    let ok = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let ge_space = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x20)), v);
        let tab = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x09));
        let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
        _mm_movemask_epi8(_mm_andnot_si128(del, _mm_or_si128(ge_space, tab))) as u32
    };
    Some(!ok & 0xffff)
}

/// For the first `WIDTH` bytes of `s` (`None` if shorter): a bit mask of the bytes that may
/// not appear in a field value.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn value_stop_mask(s: &[u8]) -> Option<u32> {
    let chunk: &[u8; 8] = s.get(..8)?.try_into().ok()?;
    let mut m = 0u32;
    for (k, &b) in chunk.iter().enumerate() {
        if !crate::chars::is_field_value(b) {
            m |= 1 << k;
        }
    }
    Some(m)
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
