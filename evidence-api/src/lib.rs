//! vkae-evidence (placeholder until its issue lands).
