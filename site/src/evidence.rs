//! The `Backend` over the evidence store's library, in-process (lands with `vkae_evidence`).
