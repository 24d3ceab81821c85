//! vkae-record (placeholder until its issue lands).
