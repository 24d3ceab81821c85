//! Reference checks (in progress).
