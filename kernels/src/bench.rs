//! Micro-benchmarks (in progress).
