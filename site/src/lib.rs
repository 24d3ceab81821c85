//! vkae-site (placeholder until its issue lands).
