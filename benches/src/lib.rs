//! Benchmarks of bindto (placeholder).
