//! Whether a finished or interrupted training stage may be reused: a stage is skipped when its
//! model directory is complete, and resumed when interrupted, so a config edited since (or a
//! starting model retrained since) must be noticed, not silently kept.

use std::path::Path;

use crate::config::{Config, DecodeConfig, TrainConfig};
use crate::model_dir::BEST_FILE;

/// The settings that differ between two training configs, as `key: old → new`, leaving out the
/// budget (a raised one continues the run) and what does not change the trained model: threads,
/// device, decoding, checkpoint bookkeeping, and where an input lives (two paths to the same file,
/// or to equal files or model directories, as in a run directory copied elsewhere).
pub(super) fn recipe_changes(old: &Config, new: &Config) -> Vec<String> {
    let normalize = |c: &Config| {
        let mut c = c.clone();
        c.decode = DecodeConfig::default();
        let t = &mut c.train;
        t.set_budget(&TrainConfig {
            max_steps: 0,
            max_epochs: 0,
            max_minutes: 0.0,
            ..TrainConfig::default()
        });
        (t.threads, t.device, t.keep_checkpoints) = (0, String::new(), 0);
        (t.checkpoint_every, t.valid_bleu_sentences) = (1, 0);
        c
    };
    let (mut old, new) = (normalize(old), normalize(new));
    let mut new_inputs = new.clone();
    for (a, b) in old.paths_mut().into_iter().zip(new_inputs.paths_mut()) {
        if same_input(a, b) {
            a.clone_from(b);
        }
    }
    let mut changes = Vec::new();
    let json = |c: &Config| serde_json::to_value(c).expect("serializable");
    json_changes("", &json(&old), &json(&new), &mut changes);
    changes
}

/// Whether two paths name the same input: the same file, files with equal bytes, or model
/// directories with equal weights.
fn same_input(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) if x == y => return true,
        (Ok(_), Ok(_)) => {}
        _ => return false,
    }
    let (a, b) = if a.is_dir() && b.is_dir() {
        (a.join(BEST_FILE), b.join(BEST_FILE))
    } else {
        (a.to_path_buf(), b.to_path_buf())
    };
    let len = |p: &Path| std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len());
    len(&a).is_some() && len(&a) == len(&b) && same_bytes(&a, &b).unwrap_or(false)
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let open = |p: &Path| std::fs::File::open(p).map(std::io::BufReader::new);
    let (mut a, mut b) = (open(a)?, open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y)? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

fn json_changes(key: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                json_changes(&sub, x, y, out);
            }
        }
        _ if old != new => out.push(format!("{key}: {old} → {new}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_changes_name_what_changes_the_model_and_nothing_else() {
        let old = Config::default();
        let mut new = old.clone();
        new.train.threads = 7;
        new.train.keep_checkpoints = 3;
        new.decode.beam_size = 12;
        assert_eq!(recipe_changes(&old, &new), Vec::<String>::new());
        new.train.max_steps = 4000; // a budget: a raised one continues the run
        assert_eq!(recipe_changes(&old, &new), Vec::<String>::new());
        new.train.lr = 0.5;
        new.data.train_tgt = "distill/seq-kd.tgt".into();
        let changes = recipe_changes(&old, &new);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0], format!("data.train_tgt: \"\" → \"distill/seq-kd.tgt\""));
        assert_eq!(changes[1], format!("train.lr: {} → 0.5", old.train.lr));
    }

    #[test]
    fn an_input_moved_or_copied_elsewhere_is_the_same_input() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a.txt"), dir.path().join("b.txt"), dir.path().join("c.txt"));
        std::fs::write(&a, "ein Hund\n").unwrap();
        std::fs::write(&b, "ein Hund\n").unwrap();
        std::fs::write(&c, "ein Pferd\n").unwrap();
        let with_target = |p: &Path| {
            let mut cfg = Config::default();
            cfg.data.train_tgt = p.to_path_buf();
            cfg
        };
        let dotted = dir.path().join(".").join("a.txt");
        assert!(recipe_changes(&with_target(&a), &with_target(&dotted)).is_empty());
        assert!(recipe_changes(&with_target(&a), &with_target(&b)).is_empty());
        let changed = recipe_changes(&with_target(&a), &with_target(&c));
        assert!(changed.len() == 1 && changed[0].starts_with("data.train_tgt:"), "{changed:?}");
        let missing = recipe_changes(&with_target(&a), &with_target(&dir.path().join("gone.txt")));
        assert_eq!(missing.len(), 1, "{missing:?}");
    }
}
