//! vkae-kernels (placeholder until its issue lands).
