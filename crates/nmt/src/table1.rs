//! The models of the paper's Table 1, as plain data: the teacher, and the student rows, each a
//! combination of the corpus it trains on, Word-KD or not, and the row it is fine-tuned from
//! (Kim & Rush 2016, Table 1). The pipeline trains them; the report labels them.

use serde::{Deserialize, Serialize};

pub const TEACHER: &str = "teacher";
pub const TEACHER_SEQ_INTER: &str = "teacher+seq-inter";

/// Which corpus a model trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainingData {
    Gold,
    SeqKd,
    SeqInter,
}

/// The student rows of the paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Row {
    Baseline,
    WordKd,
    SeqKd,
    BaselineSeqInter,
    WordKdSeqInter,
    SeqKdSeqInter,
    SeqKdWordKd,
    SeqKdSeqInterWordKd,
}

impl Row {
    /// Every row, each after the row it starts from.
    pub const ALL: [Row; 8] = [
        Row::Baseline,
        Row::WordKd,
        Row::SeqKd,
        Row::BaselineSeqInter,
        Row::WordKdSeqInter,
        Row::SeqKdSeqInter,
        Row::SeqKdWordKd,
        Row::SeqKdSeqInterWordKd,
    ];

    /// Directory and file name.
    pub fn name(self) -> &'static str {
        match self {
            Row::Baseline => "baseline",
            Row::WordKd => "word-kd",
            Row::SeqKd => "seq-kd",
            Row::BaselineSeqInter => "baseline+seq-inter",
            Row::WordKdSeqInter => "word-kd+seq-inter",
            Row::SeqKdSeqInter => "seq-kd+seq-inter",
            Row::SeqKdWordKd => "seq-kd+word-kd",
            Row::SeqKdSeqInterWordKd => "seq-kd+seq-inter+word-kd",
        }
    }

    /// As the paper's Table 1 writes it.
    pub fn label(self) -> &'static str {
        match self {
            Row::Baseline => "Baseline",
            Row::WordKd => "Word-KD",
            Row::SeqKd => "Seq-KD",
            Row::BaselineSeqInter => "Baseline + Seq-Inter",
            Row::WordKdSeqInter => "Word-KD + Seq-Inter",
            Row::SeqKdSeqInter => "Seq-KD + Seq-Inter",
            Row::SeqKdWordKd => "Seq-KD + Word-KD",
            Row::SeqKdSeqInterWordKd => "Seq-KD + Seq-Inter + Word-KD",
        }
    }

    /// The corpus the row trains on, whether Word-KD is on, and the row it is fine-tuned from.
    /// "X + Seq-Inter" is X fine-tuned on the Seq-Inter corpus with X's own loss; "Seq-KD + Word-KD"
    /// puts the teacher's soft targets along the Seq-KD targets.
    pub fn recipe(self) -> (TrainingData, bool, Option<Row>) {
        use TrainingData::*;
        match self {
            Row::Baseline => (Gold, false, None),
            Row::WordKd => (Gold, true, None),
            Row::SeqKd => (SeqKd, false, None),
            Row::SeqKdWordKd => (SeqKd, true, None),
            Row::BaselineSeqInter => (SeqInter, false, Some(Row::Baseline)),
            Row::WordKdSeqInter => (SeqInter, true, Some(Row::WordKd)),
            Row::SeqKdSeqInter => (SeqInter, false, Some(Row::SeqKd)),
            Row::SeqKdSeqInterWordKd => (SeqInter, true, Some(Row::SeqKdWordKd)),
        }
    }
}

/// The directory name of `from` pruned at `ratio` and retrained, e.g. `seq-kd-pruned80`.
pub fn pruned_name(from: Row, ratio: f64) -> String {
    format!("{}-pruned{:02}", from.name(), (100.0 * ratio).round() as i64)
}

/// A model's name as the report writes it: "Teacher", a row's label, "Seq-KD, 80% pruned".
pub fn label(name: &str) -> String {
    match name {
        TEACHER => "Teacher".into(),
        TEACHER_SEQ_INTER => "Teacher + Seq-Inter".into(),
        _ => {
            let (row, pruned) = match name.split_once("-pruned") {
                Some((row, pct)) => (row, Some(pct)),
                None => (name, None),
            };
            let row = Row::ALL
                .iter()
                .find(|r| r.name() == row)
                .map(|r| r.label().to_string())
                .unwrap_or(row.into());
            match pruned {
                Some(pct) => format!("{row}, {pct}% pruned"),
                None => row,
            }
        }
    }
}
