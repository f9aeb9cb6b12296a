//! Branch-free `exp`, `ln` and `ln(1 + x)` in f32 for the fused CPU kernels of the sampler,
//! written as plain float code that LLVM vectorises, plus [`vectorised!`], which compiles a
//! kernel for AVX-512 and AVX2 and picks one at run time. The polynomials are the classic
//! Cephes ones (S. L. Moshier, *Methods and Programs for Mathematical Functions*, 1989):
//! `exp` reduces `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, and evaluates a degree-6 polynomial
//! (≈1 ulp); `ln` splits `x = m·2^e`, `m ∈ [√½, √2)`, and evaluates a degree-8 polynomial of
//! `m − 1` (≈1 ulp). libm's scalar calls cost several times more than the whole posterior
//! arithmetic around them.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer in the low bits.

/// `e^x`: `0` below −87.3 (and for `-inf`), `+inf` above 88.7, NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let c = x.clamp(-87.3, 88.3);
    let t = c * LOG2E + MAGIC;
    let n = t - MAGIC;
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = c - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let v = er * f32::from_bits(((bits + 127) << 23) as u32);
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else if x.is_nan() {
        f32::NAN
    } else {
        v
    }
}

/// The Cephes polynomial for `ln(1 + f)`, `f ∈ [√½ − 1, √2 − 1]`, without the `f` term.
#[inline(always)]
fn log_poly(f: f32) -> f32 {
    let z = f * f;
    let mut p = 7.037_683_6e-2f32;
    p = p * f - 1.151_461e-1;
    p = p * f + 1.167_699_9e-1;
    p = p * f - 1.242_014_1e-1;
    p = p * f + 1.424_932_3e-1;
    p = p * f - 1.666_805_8e-1;
    p = p * f + 2.000_071_5e-1;
    p = p * f - 2.499_999_4e-1;
    p = p * f + 3.333_333e-1;
    f * z * p - 0.5 * z
}

/// `ln x` for `x > 0` (`-inf` at 0, NaN below, `+inf` at `+inf`); subnormal inputs are treated
/// as 0.
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let ef = e as f32;
    let y = log_poly(f) + ef * LN2_LO + f + ef * LN2_HI;
    if x <= f32::MIN_POSITIVE {
        if x >= 0.0 {
            f32::NEG_INFINITY
        } else {
            f32::NAN
        }
    } else if x == f32::INFINITY {
        x
    } else if x.is_nan() {
        f32::NAN
    } else {
        y
    }
}

/// `ln(1 + x)` for `x ∈ [0, 1]`, accurate for tiny `x` (where `ln(1 + x)` in f32 would round
/// `1 + x` to 1).
#[inline(always)]
pub(crate) fn ln_1p(x: f32) -> f32 {
    // Both branches are computed and one is selected: branch-free, so it vectorises.
    let small = log_poly(x) + x;
    let large = ln(1.0 + x);
    if x < std::f32::consts::SQRT_2 - 1.0 {
        small
    } else {
        large
    }
}

/// `ln(eᵃ + eᵇ)` (`torch.logaddexp`'s formula, `-inf`-safe).
#[inline(always)]
pub(crate) fn log_add_exp(a: f32, b: f32) -> f32 {
    let hi = a.max(b);
    let v = hi + ln_1p(exp(-(a - b).abs()));
    if hi == f32::NEG_INFINITY { hi } else { v }
}

/// Defines `$name(args)` calling the `#[inline(always)]` function `$generic` compiled for
/// AVX-512 or AVX2 + FMA when the CPU has them (checked at run time), plain otherwise.
macro_rules! vectorised {
    ($name:ident, $generic:ident, ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the enabled features (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}
pub(crate) use vectorised;

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        if b == 0.0 {
            a.abs() as f64
        } else {
            ((a as f64 - b) / b).abs()
        }
    }

    #[test]
    fn exp_ln_and_ln_1p_are_accurate_to_a_few_ulp() {
        let mut worst = [0f64; 3];
        let mut x = -87.0f32;
        while x < 88.0 {
            worst[0] = worst[0].max(rel(exp(x), (x as f64).exp()));
            x += 0.00731;
        }
        let mut x = 1e-30f32;
        while x < 1e30 {
            worst[1] = worst[1]
                .max(rel(ln(x), (x as f64).ln()).min((ln(x) as f64 - (x as f64).ln()).abs()));
            x *= 1.0173;
        }
        let mut x = 1e-12f32;
        while x <= 1.0 {
            worst[2] = worst[2].max(rel(ln_1p(x), (x as f64).ln_1p()));
            x *= 1.0091;
        }
        assert!(
            worst[0] < 3e-7 && worst[1] < 3e-7 && worst[2] < 3e-7,
            "{worst:?}"
        );
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan() && exp(f32::NAN).is_nan());
        assert_eq!(
            log_add_exp(f32::NEG_INFINITY, f32::NEG_INFINITY),
            f32::NEG_INFINITY
        );
        assert!((log_add_exp(0.0, 0.0) - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
