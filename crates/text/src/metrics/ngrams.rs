//! Exact n-gram counting without allocating strings: the machinery behind BLEU's word n-grams and
//! chrF's character and word n-grams.
//!
//! sacrebleu counts n-grams as Python tuples / strings in `Counter`s. Here every unit (word or
//! character) of the *references* gets a dense id, and so does every distinct reference n-gram,
//! order by order: the id of an n-gram at position i is looked up from the pair
//! (id of the (n-1)-gram at i, id of the unit at i+n-1), packed into a u64. That is exact (no
//! hashing of n-grams, so no collisions) for any order, and hypothesis units or n-grams that never
//! occur in a reference simply get [`UNSEEN`]: they count in the totals and can never match.
//!
//! Matches are sacrebleu's clipped counts, `sum(min(hyp_count, ref_count))`, computed by counting
//! uses of each reference n-gram id and crediting only the first `ref_count` of them.

/// Id of a unit or n-gram that no reference contains.
pub(crate) const UNSEEN: u32 = u32::MAX;

/// A fast hash for short byte strings (FxHash-style multiply-rotate over 8-byte words). It only
/// picks a slot in [`Interner`]; equality is always checked on the bytes.
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    // Final avalanche so that the high bits (the slot) depend on every input bit.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

/// Interns the words of the references: word → dense id, exact (byte comparison on every hit).
/// Open addressing with linear probing; cleared, not freed, between uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    /// All interned words, concatenated.
    text: Vec<u8>,
    /// (start, end) of word `id` in `text`.
    spans: Vec<(u32, u32)>,
    hashes: Vec<u64>,
    /// Word id per slot, or UNSEEN.
    slots: Vec<u32>,
    shift: u32,
}

impl Interner {
    /// Forgets all words; `expected` is an upper bound on the words to be interned.
    pub(crate) fn reset(&mut self, expected: usize) {
        self.text.clear();
        self.spans.clear();
        self.hashes.clear();
        let cap = (expected.max(4) * 2).next_power_of_two();
        self.slots.clear();
        self.slots.resize(cap, UNSEEN);
        self.shift = 64 - cap.trailing_zeros();
    }

    #[inline]
    fn find(&self, word: &[u8], h: u64) -> (usize, u32) {
        let mask = self.slots.len() - 1;
        let mut slot = (h >> self.shift) as usize;
        loop {
            let id = self.slots[slot];
            if id == UNSEEN {
                return (slot, UNSEEN);
            }
            if self.hashes[id as usize] == h {
                let (s, e) = self.spans[id as usize];
                if &self.text[s as usize..e as usize] == word {
                    return (slot, id);
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The id of `word`, interning it if new. At most the `expected` of [`Interner::reset`] words
    /// may be interned (the table never grows past half full otherwise; it is resized if needed).
    #[inline]
    pub(crate) fn intern(&mut self, word: &[u8]) -> u32 {
        if (self.spans.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let h = hash_bytes(word);
        let (slot, id) = self.find(word, h);
        if id != UNSEEN {
            return id;
        }
        let id = self.spans.len() as u32;
        let start = self.text.len() as u32;
        self.text.extend_from_slice(word);
        self.spans.push((start, self.text.len() as u32));
        self.hashes.push(h);
        self.slots[slot] = id;
        id
    }

    /// The id of `word`, or [`UNSEEN`].
    #[inline]
    pub(crate) fn get(&self, word: &[u8]) -> u32 {
        if self.slots.is_empty() {
            return UNSEEN;
        }
        self.find(word, hash_bytes(word)).1
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(8);
        self.slots.clear();
        self.slots.resize(cap, UNSEEN);
        self.shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for (id, &h) in self.hashes.iter().enumerate() {
            let mut slot = (h >> self.shift) as usize;
            while self.slots[slot] != UNSEEN {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = id as u32;
        }
    }
}

/// Dense ids for u64 keys: open addressing with linear probing, Fibonacci hashing.
#[derive(Debug, Clone, Default)]
struct IdTable {
    /// Id per slot, or UNSEEN.
    slots: Vec<u32>,
    /// Key of each id.
    keys: Vec<u64>,
    shift: u32,
}

impl IdTable {
    /// Empties the table, sized for at most `expected` keys (it stays at most half full).
    fn reset(&mut self, expected: usize) {
        let cap = (expected.max(4) * 2).next_power_of_two();
        self.slots.clear();
        self.slots.resize(cap, UNSEEN);
        self.keys.clear();
        self.shift = 64 - cap.trailing_zeros();
    }

    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// The id of `key`, adding it if new (callers never add more than the `expected` keys).
    #[inline]
    fn insert(&mut self, key: u64) -> u32 {
        let mask = self.slots.len() - 1;
        let mut s = self.slot(key);
        loop {
            let id = self.slots[s];
            if id == UNSEEN {
                let id = self.keys.len() as u32;
                self.keys.push(key);
                self.slots[s] = id;
                return id;
            }
            if self.keys[id as usize] == key {
                return id;
            }
            s = (s + 1) & mask;
        }
    }

    /// The id of `key`, or UNSEEN.
    #[inline]
    fn get(&self, key: u64) -> u32 {
        if self.slots.is_empty() {
            return UNSEEN;
        }
        let mask = self.slots.len() - 1;
        let mut s = self.slot(key);
        loop {
            let id = self.slots[s];
            if id == UNSEEN || self.keys[id as usize] == key {
                return id;
            }
            s = (s + 1) & mask;
        }
    }
}

/// The n-grams (orders 1..=max_order) of one or more reference unit sequences, with their
/// counts: for several references, the maximum count over references (sacrebleu's BLEU merge).
#[derive(Debug, Clone, Default)]
pub(crate) struct NgramIndex {
    max_order: usize,
    /// Per order: key → id. Order 1 keys are the units themselves; order n keys are
    /// `(id of (n-1)-gram) << 32 | (order-1 id of the last unit)`.
    tables: Vec<IdTable>,
    /// Per order, per id: the (max over references) count.
    counts: Vec<Vec<u32>>,
    /// Per order: number of n-grams in the references (summed over references).
    totals: Vec<u64>,
    // Scratch for building.
    prev: Vec<u32>,
    /// Order-1 id of every reference unit (the second half of higher-order keys).
    unit_ids: Vec<u32>,
    /// Per id of the order being built: count in the current reference, and which reference.
    cur: Vec<u32>,
    cur_ref: Vec<u32>,
}

/// Per-hypothesis scratch for [`NgramIndex::match_counts`], kept apart from the index so that one
/// index can be shared by threads scoring different hypotheses.
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchScratch {
    used: Vec<Vec<u32>>,
    ids: Vec<u32>,
}

impl NgramIndex {
    /// Indexes the references `units[bounds[r].0..bounds[r].1]` for every r. Units are any u32
    /// except [`UNSEEN`] (word ids from an [`Interner`], or chars).
    pub(crate) fn build(&mut self, units: &[u32], bounds: &[(usize, usize)], max_order: usize) {
        self.max_order = max_order;
        self.tables.resize_with(max_order, IdTable::default);
        self.counts.resize_with(max_order, Vec::new);
        self.totals.clear();
        self.totals.resize(max_order, 0);
        // prev[i] = id of the (n-1)-gram starting at unit i, replaced in place by the id of the
        // n-gram at i (position i + 1 still holds its (n-1)-gram id when i is done).
        self.prev.clear();
        self.prev.resize(units.len(), 0);
        for n in 1..=max_order {
            let expected: usize = bounds.iter().map(|&(s, e)| (e - s + 1).saturating_sub(n)).sum();
            self.totals[n - 1] = expected as u64;
            let table = &mut self.tables[n - 1];
            let counts = &mut self.counts[n - 1];
            table.reset(expected);
            counts.clear();
            self.cur.clear();
            self.cur_ref.clear();
            for (r, &(s, e)) in bounds.iter().enumerate() {
                if e - s < n {
                    continue;
                }
                // Indexes three arrays at different offsets: a range is clearer than iterators.
                #[allow(clippy::needless_range_loop)]
                for i in s..=e - n {
                    let key = if n == 1 {
                        units[i] as u64
                    } else {
                        (self.prev[i] as u64) << 32 | self.unit_ids[i + n - 1] as u64
                    };
                    let id = table.insert(key) as usize;
                    if id == counts.len() {
                        counts.push(0);
                        self.cur.push(0);
                        self.cur_ref.push(u32::MAX);
                    }
                    if self.cur_ref[id] != r as u32 {
                        self.cur_ref[id] = r as u32;
                        self.cur[id] = 0;
                    }
                    self.cur[id] += 1;
                    if self.cur[id] > counts[id] {
                        counts[id] = self.cur[id];
                    }
                    self.prev[i] = id as u32;
                }
            }
            if n == 1 {
                self.unit_ids.clear();
                self.unit_ids.extend_from_slice(&self.prev);
            }
        }
    }

    /// Total number of order-n n-grams over the references (n is 1-based).
    #[inline]
    pub(crate) fn ref_total(&self, n: usize) -> u64 {
        self.totals[n - 1]
    }

    /// Whether the references have any n-gram of order n.
    #[inline]
    pub(crate) fn has_order(&self, n: usize) -> bool {
        !self.tables[n - 1].keys.is_empty()
    }

    /// The id of a first-order unit, or [`UNSEEN`].
    #[inline]
    pub(crate) fn unit_id(&self, unit: u32) -> u32 {
        match self.tables.first() {
            Some(t) if unit != UNSEEN => t.get(unit as u64),
            _ => UNSEEN,
        }
    }

    /// Clipped matches and totals of the hypothesis `ids`: order-1 ids from
    /// [`NgramIndex::unit_id`] ([`UNSEEN`] for units no reference has). Writes `correct[n-1]` and `total[n-1]` for every
    /// order n up to the slices' length.
    pub(crate) fn match_counts(
        &self,
        ids: &[u32],
        scratch: &mut MatchScratch,
        correct: &mut [u64],
        total: &mut [u64],
    ) {
        let len = ids.len();
        let orders = correct.len().min(total.len());
        scratch.used.resize_with(self.max_order, Vec::new);
        scratch.ids.clear();
        scratch.ids.extend_from_slice(ids);
        for n in 1..=orders {
            correct[n - 1] = 0;
            total[n - 1] = (len + 1).saturating_sub(n) as u64;
            // Orders the index was not built for (a reference prepared with a smaller order)
            // simply have no matches.
            if len < n || n > self.max_order {
                continue;
            }
            let table = &self.tables[n - 1];
            let counts = &self.counts[n - 1];
            let used = &mut scratch.used[n - 1];
            used.clear();
            used.resize(counts.len(), 0);
            let mut matched = 0u64;
            for i in 0..=len - n {
                // scratch.ids[i] holds the (n-1)-gram id at i; turn it into the n-gram id in place
                // (position i + 1 still holds its (n-1)-gram id, which the next step needs).
                let id = if n == 1 {
                    ids[i]
                } else {
                    let prev = scratch.ids[i];
                    let unit = ids[i + n - 1];
                    if prev == UNSEEN || unit == UNSEEN {
                        UNSEEN
                    } else {
                        table.get((prev as u64) << 32 | unit as u64)
                    }
                };
                scratch.ids[i] = id;
                if id != UNSEEN {
                    let u = &mut used[id as usize];
                    *u += 1;
                    if *u <= counts[id as usize] {
                        matched += 1;
                    }
                }
            }
            correct[n - 1] = matched;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_is_exact_and_grows() {
        let mut it = Interner::default();
        it.reset(2);
        let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let ids: Vec<u32> = words.iter().map(|w| it.intern(w.as_bytes())).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(ids[i], i as u32);
            assert_eq!(it.get(w.as_bytes()), i as u32);
            assert_eq!(it.intern(w.as_bytes()), i as u32);
        }
        assert_eq!(it.get(b"nope"), UNSEEN);
        assert_eq!(Interner::default().get(b"x"), UNSEEN);
    }

    #[test]
    fn clipped_counts_multi_reference_max() {
        // refs: [1 1 2] and [1 2 2]; max counts: 1→2, 2→2, (1 1)→1, (1 2)→1, (2 2)→1.
        let units = [1, 1, 2, 1, 2, 2];
        let mut idx = NgramIndex::default();
        idx.build(&units, &[(0, 3), (3, 6)], 2);
        let hyp: Vec<u32> = [2, 2, 2, 1, 7].iter().map(|&u| idx.unit_id(u)).collect();
        let mut s = MatchScratch::default();
        let (mut c, mut t) = ([0; 2], [0; 2]);
        idx.match_counts(&hyp, &mut s, &mut c, &mut t);
        // unigrams: 2 x3 (clip 2) + 1 x1 = 3 of 5; bigrams: (2 2) x2 clip 1, (2 1) 0, (1 7) 0.
        assert_eq!((c, t), ([3, 1], [5, 4]));
        assert_eq!(idx.ref_total(1), 6);
        assert_eq!(idx.ref_total(2), 4);
    }
}
