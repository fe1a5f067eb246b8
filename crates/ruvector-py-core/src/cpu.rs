//! Runtime CPU feature probe, so users (and bug reports) can see which SIMD
//! paths this machine takes.

/// `(feature, present)` pairs for the current architecture.
pub fn features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("sse4.2", std::is_x86_feature_detected!("sse4.2")),
            ("popcnt", std::is_x86_feature_detected!("popcnt")),
            ("avx", std::is_x86_feature_detected!("avx")),
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
            (
                "avx512vpopcntdq",
                std::is_x86_feature_detected!("avx512vpopcntdq"),
            ),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![("neon", std::arch::is_aarch64_feature_detected!("neon"))]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_reports_the_baseline_of_this_arch() {
        let f = super::features();
        #[cfg(target_arch = "x86_64")]
        assert!(f.iter().any(|(n, _)| *n == "avx2"));
        #[cfg(target_arch = "aarch64")]
        assert!(f.iter().any(|(n, on)| *n == "neon" && *on));
        let _ = f;
    }
}
