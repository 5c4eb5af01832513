//! The ids every seqkd vocabulary reserves, learned (`vocab`) or imported (`spm`): padding,
//! decoder start, end of sentence, unknown.

/// The reserved ids, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
}

pub const SPECIAL_IDS: SpecialIds = SpecialIds { pad: 0, bos: 1, eos: 2, unk: 3 };
