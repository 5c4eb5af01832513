//! The thread budget of the matrix kernels (f32 and int8), below both of them.

/// How many threads one decoding state's matrix products may split over (1: none; a share of a
/// batch decoded on its own thread uses 1 inside a larger pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads(pub usize);
