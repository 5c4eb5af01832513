//! Integration tests: the real `seqkd` binary in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn seqkd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seqkd")).args(args).output().expect("run seqkd")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Real corpora, if this machine has them (CI sets SEQKD_DATA; locally ../shared/data).
fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("SEQKD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("multi30k/test2016.de").exists().then_some(dir)
}

#[test]
fn gen_corpus_writes_aligned_clean_splits() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        seqkd(&["gen-corpus", "--out", p(dir.path()), "--train", "300", "--valid", "20", "--test", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let train = dir.path().join("train.en");
    let check = seqkd(&["check-corpus", p(&train), p(&dir.path().join("train.syn"))]);
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(stdout(&check).contains("300 clean pairs, 0 problems: ok"));
}

#[test]
fn check_corpus_lists_defects_with_file_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (src, tgt) = (dir.path().join("a.en"), dir.path().join("a.de"));
    std::fs::write(&src, "one\ntwo\r\nthree\n").unwrap();
    std::fs::write(&tgt, b"eins\n\xc3\x28\n").unwrap();
    let out = seqkd(&["check-corpus", p(&src), p(&tgt)]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("a.en:2: carriage return"), "{text}");
    assert!(text.contains("a.de:2: invalid UTF-8"), "{text}");
    assert!(text.contains("a.de:3: file ends here, but"), "{text}");
    let json = seqkd(&["check-corpus", p(&src), p(&tgt), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["total_problems"], 3);
    assert_eq!(v["problems"][0]["line"], 2);
}

#[test]
fn missing_file_is_a_clear_error_not_a_panic() {
    let out = seqkd(&["score", "--ref", "/nonexistent/ref.de", "--hyp", "/nonexistent/hyp.de"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/hyp.de") && !err.contains("panicked"), "{err}");
}

#[test]
fn score_prints_sacrebleu_lines_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (r, h) = (dir.path().join("ref"), dir.path().join("hyp"));
    std::fs::write(&r, "The cat sat on a mat.\nHello world!\n").unwrap();
    std::fs::write(&h, "The cat sat on the mat.\nHello, world!\n").unwrap();
    let text = seqkd(&["score", "--ref", p(&r), "--hyp", p(&h)]);
    assert!(text.status.success(), "{}", stderr(&text));
    // sacrebleu 2.6.0's output, byte for byte: `sacrebleu ref -i hyp -m bleu chrf -w 2 -f text`.
    assert_eq!(
        stdout(&text),
        "  BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 40.15 81.8/55.6/28.6/20.0 \
         (BP = 1.000 ratio = 1.100 hyp_len = 11 ref_len = 10)\n\
         chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0 = 68.67\n"
    );
    let json = seqkd(&["score", "--ref", p(&r), "--hyp", p(&h), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["name"], "BLEU");
    assert_eq!(v[0]["score"], 40.15);
    assert_eq!(v[1]["score"], 68.67);
    assert_eq!(v[1]["name"], "chrF2");
    assert_eq!(v[1]["signature"], "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
}

#[test]
fn score_against_another_system_prints_the_paired_bootstrap_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (r, h, o) = (dir.path().join("ref"), dir.path().join("hyp"), dir.path().join("other"));
    let refs = "The cat sat on a mat.\nTwo men play chess in the park.\nA dog runs across the field.\n";
    std::fs::write(&r, refs).unwrap();
    std::fs::write(&h, refs).unwrap();
    std::fs::write(&o, "The cat sat on the mat.\nTwo men are playing chess.\nA dog is running in a field.\n")
        .unwrap();
    let args = ["score", "--ref", p(&r), "--hyp", p(&h), "-m", "bleu", "--against", p(&o)];
    let json = seqkd(&[&args[..], &["--format", "json"]].concat());
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // hyp is the reference itself: 100 BLEU, better than `other` on every sentence, so every
    // resample keeps it ahead.
    let d = &v[1];
    assert_eq!(d["name"], "BLEU difference");
    let (delta, low, high) =
        (d["delta"].as_f64().unwrap(), d["low"].as_f64().unwrap(), d["high"].as_f64().unwrap());
    assert!(delta > 0.0 && 0.0 < low && low <= high, "{d}");
    let text = stdout(&seqkd(&args));
    assert!(text.contains(&format!("BLEU difference against {} = {delta:+.2}", p(&o))), "{text}");
    // The other output must be aligned with the references.
    std::fs::write(&o, "one line\n").unwrap();
    let out = seqkd(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1 hypotheses, 3 references"), "{}", stderr(&out));
}

#[test]
fn score_rejects_misaligned_files_naming_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, h) = (dir.path().join("ref"), dir.path().join("hyp"));
    std::fs::write(&r, "a\nb\n").unwrap();
    std::fs::write(&h, "a\n").unwrap();
    let out = seqkd(&["score", "--ref", p(&r), "--hyp", p(&h)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1 hypotheses, 2 references"), "{}", stderr(&out));
}

#[test]
fn vocab_train_encode_decode_round_trip_on_multi30k() {
    let Some(data) = shared_data() else {
        eprintln!("skipped: no shared data (set SEQKD_DATA)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.json");
    let (en, de) = (data.join("multi30k/train.en"), data.join("multi30k/train.de"));
    let out = seqkd(&["vocab", "train", "--input", p(&en), p(&de), "--size", "8000", "--out", p(&vocab)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("8000 ids"), "{}", stdout(&out));
    // Round trip every test sentence through ids and back.
    let test = std::fs::read_to_string(data.join("multi30k/test2016.de")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_seqkd"))
        .args(["vocab", "encode", "--vocab", p(&vocab)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(test.as_bytes()).unwrap();
    let ids = child.wait_with_output().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_seqkd"))
        .args(["vocab", "decode", "--vocab", p(&vocab)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&ids.stdout).unwrap();
    let back = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(back.stdout).unwrap(), test);
}

#[test]
fn demo_runs_the_pipeline_and_prints_the_report_with_computed_claims() {
    let dir = tempfile::tempdir().unwrap();
    let out = seqkd(&[
        "demo",
        "--out",
        p(dir.path()),
        "--train",
        "600",
        "--valid",
        "60",
        "--test",
        "80",
        "--timing-sentences",
        "30",
        "--vocab-size",
        "400",
        "--teacher-steps",
        "12",
        "--student-steps",
        "8",
        "--finetune-steps",
        "4",
        "--seq-inter-sentences",
        "40",
        "--prune-steps",
        "3",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let preamble = std::fs::read_to_string(dir.path().join("demo.md")).unwrap();
    assert!(preamble.contains("encode→decode gives back 160/160"), "{preamble}");
    assert!(preamble.contains("| source copied"), "{preamble}");
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for row in [
        "| Teacher |",
        "| Baseline |",
        "| Seq-KD + Seq-Inter + Word-KD |",
        "| Word-KD + Seq-Inter |",
        "## Table 3: pruning",
    ] {
        assert!(report.contains(row), "{row} missing from\n{report}");
    }
    assert!(stdout(&out).contains("## The paper's claims in this run"), "{}", stdout(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["models"].as_array().unwrap().len(), 11, "9 rows and the 2 pruned students");
    let claims = json["claims"].as_array().unwrap();
    assert!(claims.iter().all(|c| c["held"].is_boolean()), "{json}");
    // The three BLEU claims carry the paired bootstrap interval of their difference.
    for c in &claims[..3] {
        let interval: Vec<f64> =
            c["interval"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(interval.len() == 2 && interval[0] <= interval[1], "{c}");
        assert!(
            c["clear_of_noise"].is_boolean() && c["evidence"].as_str().unwrap().contains("95% interval"),
            "{c}"
        );
    }
    assert!(claims[3]["interval"].is_null(), "the speed claim has no BLEU interval");
    for file in ["curves.svg", "bleu-speed.svg", "eval/seq-kd.greedy.txt", "distill/topk-gold.bin"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    // What a newcomer reads first: the plain-language summary, the plots as PNG, a clean test path,
    // and the native engine's int8 speed beside libtorch's.
    assert!(report.contains("## What this run shows\n\nThis run trained"), "{report}");
    for png in ["curves.png", "bleu-speed.png"] {
        assert!(report.contains(&format!("]({png})")), "{png} not embedded in\n{report}");
        assert!(std::fs::read(dir.path().join(png)).unwrap().starts_with(b"\x89PNG"), "{png}");
    }
    let test_line = report.lines().find(|l| l.starts_with("Test set:")).unwrap();
    assert!(!test_line.contains("..") && !test_line.contains("/./"), "{test_line}");
    assert!(report.contains("| int8 K=1 |"), "{report}");
    assert!(report.contains("Source words per second on the first 30 of the 80 test sentences"), "{report}");
    assert_eq!(json["models"][0]["timed_sentences"].as_u64(), Some(30));
    assert_eq!(json["models"][1]["native_int8"]["words_per_s_greedy"].as_f64().map(|v| v > 0.0), Some(true));
    // The native engine's own output is scored on the whole test set, not only the timed part: in
    // f32 it is libtorch's, BLEU for BLEU.
    for m in json["models"].as_array().unwrap() {
        let f32 = &m["native_f32"]["bleu"];
        assert_eq!(f32[0].as_f64(), m["bleu_greedy"].as_f64(), "{}: K=1", m["name"]);
        assert_eq!(f32[1].as_f64(), m["bleu_beam"].as_f64(), "{}: K=beam", m["name"]);
        assert!(m["native_int8"]["bleu"][1].as_f64().is_some_and(|b| (0.0..=100.0).contains(&b)));
    }
}

/// A tiny training config over a generated corpus in `dir`.
fn tiny_training_setup(dir: &Path, max_steps: i64) -> PathBuf {
    let out = seqkd(&[
        "gen-corpus",
        "--out",
        p(&dir.join("data")),
        "--train",
        "400",
        "--valid",
        "30",
        "--test",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[data]
train_src = "data/train.en"
train_tgt = "data/train.syn"
valid_src = "data/valid.en"
valid_tgt = "data/valid.syn"
vocab = {{ kind = "bpe", size = 400, min_frequency = 2 }}

[model]
arch = "transformer"
d_model = 32
n_heads = 2
d_ff = 64
encoder_layers = 1
decoder_layers = 1
dropout = 0.1

[train]
lr = 3e-3
warmup_steps = 10
batch_tokens = 256
max_steps = {max_steps}
valid_every = 20
checkpoint_every = 4
valid_bleu_sentences = 10
threads = 1
"#
        ),
    )
    .unwrap();
    config
}

/// The tensors of a checkpoint (weights and optimiser state), by name.
fn checkpoint_weights(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.data().to_vec())).collect();
    out.sort();
    out
}

#[test]
fn training_killed_with_sigkill_and_resumed_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_setup(dir.path(), 40);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&a), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Start run b, SIGKILL it once it has written a checkpoint mid-run, then resume.
    let ckpt = b.join("last.safetensors");
    kill_when_exists(&["train", "--config", p(&config), "--model-dir", p(&b), "--quiet"], &ckpt);
    let again = seqkd(&["train", "--config", p(&config), "--model-dir", p(&b)]);
    assert!(again.status.code() == Some(2) && stderr(&again).contains("--resume"), "{}", stderr(&again));
    let resumed = seqkd(&["train", "--config", p(&config), "--model-dir", p(&b), "--resume", "--quiet"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stdout(&resumed).contains("trained 40 steps"), "{}", stdout(&resumed));

    assert_eq!(checkpoint_weights(&ckpt), checkpoint_weights(&a.join("last.safetensors")));
    assert_eq!(
        checkpoint_weights(&b.join("model.safetensors")),
        checkpoint_weights(&a.join("model.safetensors"))
    );

    // A finished run continues when the budget is raised, to the weights of one longer run.
    let c = dir.path().join("c");
    let train_c = |extra: &[&str]| {
        let args = [&["train", "--config", p(&config), "--model-dir", p(&c), "--quiet"], extra].concat();
        seqkd(&args)
    };
    assert!(train_c(&["--max-steps", "25"]).status.success());
    let continued = train_c(&["--resume", "--max-steps", "40"]);
    assert!(stdout(&continued).contains("trained 40 steps"), "{}", stderr(&continued));
    assert_eq!(
        checkpoint_weights(&c.join("last.safetensors")),
        checkpoint_weights(&a.join("last.safetensors"))
    );
    let again = train_c(&["--resume", "--max-steps", "30"]);
    assert!(stdout(&again).contains("trained 40 steps"), "{}", stderr(&again));
    assert!(std::fs::read_to_string(c.join("config.toml")).unwrap().contains("max_steps = 40"));
}

#[test]
fn streamed_corpus_trains_the_same_weights_and_is_encoded_again_only_when_the_text_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_setup(dir.path(), 20);
    let streamed = dir.path().join("streamed.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&streamed, text.replace("[data]", "[data]\nstream = true")).unwrap();
    let train = |cfg: &Path, model_dir: &Path, extra: &[&str]| {
        let args = [&["train", "--config", p(cfg), "--model-dir", p(model_dir), "--quiet"], extra].concat();
        seqkd(&args)
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert!(train(&config, &a, &[]).status.success());
    let out = train(&streamed, &b, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The vocabulary trained on the streamed text, and the weights, are those of the in-memory run.
    assert_eq!(std::fs::read(a.join("vocab.json")).unwrap(), std::fs::read(b.join("vocab.json")).unwrap());
    assert_eq!(
        checkpoint_weights(&a.join("model.safetensors")),
        checkpoint_weights(&b.join("model.safetensors"))
    );
    let ids = b.join("train.tgt.ids");
    let written = || std::fs::metadata(&ids).unwrap().modified().unwrap();
    let first = written();

    // Resuming maps the same files; an edited corpus is encoded again.
    let out = train(&streamed, &b, &["--resume", "--max-steps", "25"]);
    assert!(out.status.success() && !stderr(&out).contains("again"), "{}", stderr(&out));
    assert_eq!(written(), first);
    let tgt = dir.path().join("data/train.syn");
    let lines = std::fs::read_to_string(&tgt).unwrap();
    std::fs::write(&tgt, lines.replacen(" ", "  ", 1)).unwrap();
    let out = train(&streamed, &b, &["--resume", "--max-steps", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("train.src.ids: made from another corpus or vocabulary; encoding"),
        "{}",
        stderr(&out)
    );
    assert_ne!(written(), first);

    // A defect stops a streamed run at its file and line, before any vocabulary is kept.
    let mut broken: Vec<&str> = lines.lines().collect();
    broken[122] = "";
    std::fs::write(&tgt, broken.join("\n") + "\n").unwrap();
    let c = dir.path().join("c");
    let out = train(&streamed, &c, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("train.syn:123: empty line"), "{}", stderr(&out));
    assert!(!c.join("vocab.json").exists() && !c.join("train.src.ids").exists());
}

#[test]
fn select_by_bleu_keeps_the_validation_with_the_best_bleu() {
    // A tiny model validated on its own 60 training pairs: BLEU moves early, and not always with
    // perplexity.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(tiny_training_setup(dir.path(), 200)).unwrap();
    let small = dir.path().join("small");
    let gen = seqkd(&["gen-corpus", "--out", p(&small), "--train", "60", "--valid", "30", "--test", "30"]);
    assert!(gen.status.success(), "{}", stderr(&gen));
    let text = text
        .replace("data/train.", "small/train.")
        .replace("data/valid.", "small/train.")
        .replace("size = 400, min_frequency = 2", "size = 300, min_frequency = 1")
        .replace("valid_every = 20", "valid_every = 20\nmax_epochs = 0\nselect_by = \"bleu\"")
        .replace("valid_bleu_sentences = 10", "valid_bleu_sentences = 30");
    let config = dir.path().join("t.toml");
    std::fs::write(&config, text).unwrap();
    let m = dir.path().join("m");
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&m), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = std::fs::read_to_string(m.join("metrics.jsonl")).unwrap();
    let valid: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "valid")
        .collect();
    assert_eq!(valid.len(), 10);
    let (mut best_bleu, mut best_ppl, mut kept_step, mut disagreements) =
        (f64::NEG_INFINITY, f64::INFINITY, 0, 0);
    for e in &valid {
        let (bleu, ppl) = (e["bleu_greedy"].as_f64().unwrap(), e["ppl"].as_f64().unwrap());
        assert_eq!(e["best"].as_bool().unwrap(), bleu > best_bleu, "{e}");
        disagreements += usize::from((bleu > best_bleu) != (ppl < best_ppl));
        best_ppl = best_ppl.min(ppl);
        if bleu > best_bleu {
            (best_bleu, kept_step) = (bleu, e["step"].as_i64().unwrap());
        }
    }
    assert!(disagreements > 0, "perplexity would have kept the same models: {metrics}");
    let bytes = std::fs::read(m.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["step"], kept_step.to_string());
}

#[test]
fn translate_gives_one_line_per_input_and_nbest_with_scores() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_setup(dir.path(), 20);
    let m = dir.path().join("m");
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&m), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in
        ["config.toml", "vocab.json", "model.safetensors", "last.safetensors", "metrics.jsonl", "loss.svg"]
    {
        assert!(m.join(file).exists(), "model dir lacks {file}");
    }
    let input = dir.path().join("data/test.en");
    let greedy = seqkd(&["translate", "--model", p(&m), "--input", p(&input), "--beam", "1"]);
    assert!(greedy.status.success(), "{}", stderr(&greedy));
    assert_eq!(stdout(&greedy).lines().count(), 30);
    let nbest = seqkd(&["translate", "--model", p(&m), "--input", p(&input), "--beam", "3", "--nbest", "3"]);
    let text = stdout(&nbest);
    assert_eq!(text.lines().count(), 90);
    assert!(text.lines().all(|l| l.split(" ||| ").count() == 3), "{text}");
    let bad = seqkd(&["translate", "--model", p(&dir.path().join("nope")), "--input", p(&input)]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("nope"), "{}", stderr(&bad));
}

/// Trains the tiny model of `tiny_training_setup` for `steps` into `dir/name` and returns its path.
fn tiny_teacher(dir: &Path, name: &str, steps: i64) -> PathBuf {
    let config = tiny_training_setup(dir, steps);
    let m = dir.join(name);
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&m), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    m
}

/// SIGKILLs `child` as soon as `ready()` holds; fails if it exits first.
fn kill_when(mut child: std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(start.elapsed().as_secs() < 300, "{what}: never happened");
        assert!(child.try_wait().unwrap().is_none(), "finished before {what}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

/// Chunks a resumable pass has recorded in its `.progress` file.
fn chunks_done(progress: &Path) -> u64 {
    std::fs::read_to_string(progress)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["chunks_done"].as_u64())
        .unwrap_or(0)
}

#[test]
fn seq_kd_killed_and_rerun_and_sharded_all_equal_the_uninterrupted_output() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", 30);
    let src = dir.path().join("data/train.en");
    let tgt = dir.path().join("data/train.syn");
    let pass = |out: &Path, extra: &[&str]| {
        let mut args =
            vec!["distill", "seq-kd", "--teacher", p(&teacher), "--src", p(&src), "--tgt", p(&tgt)];
        args.extend(["--out", p(out), "--chunk", "20", "--threads", "1", "--quiet"]);
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let whole = dir.path().join("whole.syn");
    let out = seqkd(&pass(&whole, &[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = std::fs::read_to_string(&whole).unwrap();
    assert_eq!(expected.lines().count(), 400);
    assert!(expected.lines().all(|l| !l.trim().is_empty()));

    // The native engine (the default) and libtorch write the same corpus, Seq-KD and Seq-Inter.
    let torch = dir.path().join("torch.syn");
    let out = seqkd(&pass(&torch, &["--engine", "torch"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&torch).unwrap(), expected);
    let inter = |engine: &str| {
        let out_path = dir.path().join(format!("inter-{engine}.syn"));
        let args = ["distill", "seq-inter", "--teacher", p(&teacher), "--src", p(&src), "--tgt", p(&tgt)];
        let rest = ["--out", p(&out_path), "--beam", "8", "--threads", "1", "--quiet", "--engine", engine];
        let out = seqkd(&args.iter().chain(&rest).copied().collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(&out_path).unwrap()
    };
    let (native, torch) = (inter("native"), inter("torch"));
    assert_eq!(native.lines().count(), 400);
    assert_eq!(native, torch);

    // Killed after 3 of its 20 chunks, then rerun (with the other engine): the same file, no line
    // lost or repeated.
    let killed = dir.path().join("killed.syn");
    let child = Command::new(env!("CARGO_BIN_EXE_seqkd")).args(pass(&killed, &[])).spawn().unwrap();
    let progress = dir.path().join("killed.syn.progress");
    kill_when(child, "3 chunks", || chunks_done(&progress) >= 3);
    assert!(!killed.exists(), "an interrupted pass must not leave a complete-looking output");
    let rerun = seqkd(&pass(&killed, &["--engine", "torch"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(stderr(&rerun).contains("400 sentences;"), "{}", stderr(&rerun));
    assert_eq!(std::fs::read_to_string(&killed).unwrap(), expected);

    // Three shards, merged in order.
    let sharded = dir.path().join("sharded.syn");
    for i in 0..3 {
        let shard = format!("{i}/3");
        let out = seqkd(&pass(&sharded, &["--shard", &shard]).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let merge = seqkd(&["distill", "merge", "--out", p(&sharded), "--shards", "3"]);
    assert!(merge.status.success(), "{}", stderr(&merge));
    assert_eq!(std::fs::read_to_string(&sharded).unwrap(), expected);

    // Another beam size cannot append to an unfinished pass of beam 5.
    let child =
        Command::new(env!("CARGO_BIN_EXE_seqkd")).args(pass(&killed.with_extension("b"), &[])).spawn();
    let progress = dir.path().join("killed.b.progress");
    kill_when(child.unwrap(), "1 chunk", || chunks_done(&progress) >= 1);
    let other = seqkd(
        &pass(&killed.with_extension("b"), &["--beam", "2"]).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(other.status.code(), Some(2));
    assert!(stderr(&other).contains("different job"), "{}", stderr(&other));
}

#[test]
fn word_kd_from_a_full_top_k_store_equals_the_live_teacher_and_trains() {
    use seqkd_nmt::batch::Batch;
    use seqkd_nmt::config::WordKdConfig;
    use seqkd_nmt::distill::word_kd::WordKd;
    use seqkd_nmt::model_dir::LoadedModel;

    let dir = tempfile::tempdir().unwrap();
    let teacher = tiny_teacher(dir.path(), "teacher", 20);
    let (src, tgt) = (dir.path().join("data/train.en"), dir.path().join("data/train.syn"));
    let store = dir.path().join("train.topk");
    let t = LoadedModel::load(&teacher, seqkd_nmt::Device::Cpu, None).unwrap();
    let k = t.vocab.len().to_string();
    let out = seqkd(&[
        "distill",
        "topk",
        "--teacher",
        p(&teacher),
        "--src",
        p(&src),
        "--tgt",
        p(&tgt),
        "--out",
        p(&store),
        "--k",
        &k,
        "--precision",
        "f32",
        "--threads",
        "1",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The loss of a student (here: the teacher itself) on a batch, with q from each source.
    tch::set_num_threads(1);
    let read = |path: &Path| seqkd_text::corpus::read_lines(path, &Default::default()).unwrap();
    let (srcs, tgts) =
        (t.vocab.encode_src_batch(&read(&src)).unwrap(), t.vocab.encode_batch(&read(&tgt)).unwrap());
    let sentences: Vec<usize> = vec![3, 1, 4, 1, 5, 9, 2, 6];
    let pairs: Vec<(&[u32], &[u32])> =
        sentences.iter().map(|&i| (srcs[i].as_slice(), tgts[i].as_slice())).collect();
    let batch = Batch::new(&pairs, seqkd_nmt::Device::Cpu);
    let logits = tch::no_grad(|| {
        use seqkd_nmt::model::Seq2Seq;
        t.model.logits(&batch.src, &batch.tgt_in, false)
    });
    let loss = |cfg: WordKdConfig| {
        let kd = WordKd::open(&cfg, &t.vocab, &tgts, seqkd_nmt::Device::Cpu).unwrap();
        kd.loss(&logits, &batch, &sentences, 0.1).double_value(&[])
    };
    let live = loss(WordKdConfig { teacher: Some(teacher.clone()), ..Default::default() });
    let stored = loss(WordKdConfig { topk: Some(store.clone()), ..Default::default() });
    assert!((live - stored).abs() < 1e-4 * live.abs(), "live {live} vs stored {stored}");

    // A student trains with the stored distributions (and refuses a store made for other targets).
    let config = dir.path().join("tiny.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("[data]", &format!("[data]\nvocab_path = \"{}/vocab.json\"", p(&teacher)));
    std::fs::write(&config, format!("{text}\n[word_kd]\nalpha = 0.5\ntopk = \"train.topk\"\n")).unwrap();
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&dir.path().join("s")), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        &config,
        text.replace("train.syn", "valid.syn").replace("train.en", "valid.en")
            + "\n[word_kd]\ntopk = \"train.topk\"\n",
    )
    .unwrap();
    let bad = seqkd(&["train", "--config", p(&config), "--model-dir", p(&dir.path().join("s2")), "--quiet"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("train.topk") && stderr(&bad).contains("sentences"), "{}", stderr(&bad));
}

/// A pipeline config over the tiny generated corpus: every stage, bounded by steps (deterministic).
fn tiny_pipeline_setup(dir: &Path) -> PathBuf {
    tiny_training_setup(dir, 1);
    let config = dir.join("pipeline.toml");
    let transformer = |d: usize, dec: usize| {
        format!("arch = \"transformer\"\nd_model = {d}\nn_heads = 2\nd_ff = {}\nencoder_layers = 1\ndecoder_layers = {dec}\n", 2 * d)
    };
    let train = |steps: usize| {
        format!(
            "lr = 3e-3\nwarmup_steps = 5\nbatch_tokens = 256\nmax_epochs = 0\nmax_steps = {steps}\nvalid_every = 10\n\
             checkpoint_every = 3\nvalid_bleu_sentences = 5\nkeep_checkpoints = 0\nthreads = 1\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            r#"
[data]
train_src = "data/train.en"
train_tgt = "data/train.syn"
valid_src = "data/valid.en"
valid_tgt = "data/valid.syn"
test_src = "data/test.en"
test_tgt = "data/test.syn"
vocab = {{ kind = "bpe", size = 300, min_frequency = 2 }}

[teacher.model]
{}
[teacher.train]
{}
[student.model]
{}
[student.train]
{}
[finetune]
{}
[distill]
seq_kd_beam = 3
seq_inter_beam = 6
seq_inter_sentences = 100
top_k = 4
chunk_sentences = 50
seq_kd_label_smoothing = 0.0

[eval]
threads = 1

[prune]
from = "seq-kd"
ratios = [0.5, 0.8]

[prune.retrain]
{}
"#,
            transformer(32, 1),
            train(30),
            transformer(16, 1),
            train(20),
            train(10),
            train(6)
        ),
    )
    .unwrap();
    config
}

/// Spawns `seqkd args`, SIGKILLs it as soon as `path` exists.
fn kill_when_exists(args: &[&str], path: &Path) {
    let child =
        Command::new(env!("CARGO_BIN_EXE_seqkd")).args(args).stderr(std::process::Stdio::null()).spawn();
    kill_when(child.unwrap(), &path.display().to_string(), || path.exists());
}

#[test]
fn pipeline_killed_twice_and_rerun_gives_the_uninterrupted_results() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_pipeline_setup(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let run = |out: &Path| seqkd(&["pipeline", "--config", p(&config), "--out", p(out), "--quiet"]);
    let done = run(&a);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stdout(&done).contains("| Seq-KD + Seq-Inter + Word-KD |"), "{}", stdout(&done));
    assert!(stdout(&done).contains("## Table 3: pruning Seq-KD"), "{}", stdout(&done));
    assert!(stdout(&done).contains("| 80% |"), "{}", stdout(&done));
    // Every model's decoding speed was timed (together, in eval/speed.json); a rerun of the
    // finished run redoes nothing and prints the same report.
    let speed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("eval/speed.json")).unwrap()).unwrap();
    assert_eq!(speed["settings"]["threads"], 1, "[eval] threads: {speed}");
    let timed = speed["models"].as_array().unwrap();
    let names: Vec<&str> = timed.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 1 + 8 + 2, "the teacher, Table 1's 8 rows, 2 pruned: {names:?}");
    assert!(
        names[0] == "teacher" && names.contains(&"seq-kd+seq-inter") && names.contains(&"seq-kd-pruned80")
    );
    for model in timed {
        let name = model["name"].as_str().unwrap();
        let eval: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.join(format!("eval/{name}.json"))).unwrap()).unwrap();
        for speed in ["words_per_s_greedy", "words_per_s_beam"] {
            assert!(model[speed].as_f64().unwrap() > 0.0, "{model}");
            assert_eq!(eval[speed], model[speed], "{name}");
            // ... and on the native engine, int8 and f32, for every model (pruned ones included).
            for native in ["native_int8", "native_f32"] {
                assert!(model[native][speed].as_f64().unwrap() > 0.0, "{model}");
                assert_eq!(eval[native][speed], model[native][speed], "{name}");
            }
        }
    }
    assert!(stdout(&done).contains("| int8 K=1 vs teacher int8 K=5 |"), "{}", stdout(&done));
    // The report opens with what the run shows, and shows its plots as PNG.
    let report = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(report.contains("## What this run shows\n\nThis run trained a large *teacher*"), "{report}");
    for png in ["curves.png", "bleu-speed.png", "models/teacher/loss.png", "models/seq-kd-pruned80/loss.png"]
    {
        let bytes = std::fs::read(a.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png}");
    }
    // The whole run's progress: every stage numbered, with the time so far and the time left.
    let log = stderr(&done);
    assert!(log.contains("[pipeline] stage 1 of ") && log.contains("left in all"), "{log}");
    // The Seq-KD corpus's students from scratch train with plain cross-entropy; the others,
    // fine-tunes included, with their configs' label smoothing (0.1 by default).
    for (name, smoothing) in
        [("seq-kd", 0.0), ("seq-kd+word-kd", 0.0), ("baseline", 0.1), ("seq-kd+seq-inter", 0.1)]
    {
        let config =
            seqkd_nmt::config::Config::load(&a.join("models").join(name).join("config.toml")).unwrap();
        assert_eq!(config.train.label_smoothing, smoothing, "{name}");
    }
    let again = run(&a);
    assert!(stderr(&again)
        .contains("time decoding (every model in turn, fastest of 3 rounds): done already, skipped"));
    // Including the bootstrap intervals, from the translations read back from eval/.
    assert!(stdout(&done).contains("95% interval"), "{}", stdout(&done));
    assert_eq!(stdout(&again), stdout(&done));

    // Killed during the Seq-KD teacher pass, then while a student trains; then run to the end.
    let args = ["pipeline", "--config", p(&config), "--out", p(&b), "--quiet"];
    kill_when_exists(&args, &b.join("distill/seq-kd.tgt.progress"));
    kill_when_exists(&args, &b.join("models/word-kd/last.safetensors"));
    let rerun = run(&b);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(stderr(&rerun).contains("train teacher: done already, skipped"), "{}", stderr(&rerun));

    let read =
        |path: PathBuf| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for file in ["seq-kd.tgt", "seq-inter.tgt"] {
        assert_eq!(read(b.join("distill").join(file)), read(a.join("distill").join(file)), "{file}");
    }
    // The same records and index; the header names the teacher's directory, which differs by a/b.
    let store = |dir: &Path| {
        let mut bytes = std::fs::read(dir.join("distill/topk-gold.bin")).unwrap();
        let name = format!("{}/models", p(dir)).into_bytes();
        let at = bytes.windows(name.len()).rposition(|w| w == name).expect("teacher path in the header");
        bytes.splice(at..at + name.len(), *b"RUN/models");
        bytes
    };
    assert!(store(&b) == store(&a), "the top-k stores differ");
    let names = [
        "teacher",
        "baseline",
        "word-kd",
        "seq-kd",
        "seq-kd+word-kd",
        "seq-kd+seq-inter+word-kd",
        "seq-kd-pruned80",
    ];
    for name in names {
        for kind in ["greedy.txt", "beam5.txt"] {
            let file = format!("eval/{name}.{kind}");
            assert_eq!(read(b.join(&file)), read(a.join(&file)), "{file}");
        }
        let bleu = |dir: &Path| {
            let v: serde_json::Value =
                serde_json::from_str(&read(dir.join(format!("eval/{name}.json")))).unwrap();
            (v["bleu_greedy"].as_f64(), v["bleu_beam"].as_f64(), v["ppl"].as_f64())
        };
        assert_eq!(bleu(&b), bleu(&a), "{name}");
    }

    // A raised budget continues the stage; the models that start from it are then refused until
    // deleted, since they started from older weights.
    let edit = |from: &str, to: &str| {
        let text = read(config.clone());
        let at = text.rfind(from).unwrap_or_else(|| panic!("{from} in the config"));
        std::fs::write(&config, format!("{}{to}{}", &text[..at], &text[at + from.len()..])).unwrap();
    };
    edit("max_steps = 6", "max_steps = 7");
    let refused = run(&a);
    let why = stderr(&refused);
    assert!(!refused.status.success());
    assert_eq!(completed_steps(&a.join("models/seq-kd-pruned50")), 7);
    assert!(why.contains("models/seq-kd-pruned80 no longer matches"), "{why}");
    assert!(why.contains("changed after it was trained"), "{why}");
    std::fs::remove_dir_all(a.join("models/seq-kd-pruned80")).unwrap();
    let continued = run(&a);
    let log = stderr(&continued);
    assert!(continued.status.success(), "{log}");
    assert!(log.contains("train seq-kd: done already, skipped"), "{log}");
    assert!(log.contains("evaluate seq-kd: done already, skipped"), "{log}");
    assert!(log.contains(": evaluate seq-kd-pruned80 ("), "{log}");
    assert!(log.contains(": time decoding (every model in turn, fastest of 3 rounds) ("), "{log}");
    assert_eq!(completed_steps(&a.join("models/seq-kd-pruned80")), 7);

    // A changed recipe, or a budget below what was trained, is refused with what changed.
    edit("lr = 3e-3", "lr = 2e-3");
    let why = stderr(&run(&a));
    assert!(
        why.contains("models/seq-kd-pruned50 no longer matches") && why.contains("train.lr: 0.003 → 0.002"),
        "{why}"
    );
    edit("lr = 2e-3", "lr = 3e-3");
    edit("max_steps = 7", "max_steps = 5");
    let why = stderr(&run(&a));
    assert!(why.contains("it trained 7 updates") && why.contains("beyond the budget"), "{why}");

    // A finished Seq-KD corpus is checked against the teacher pass this config asks for: one
    // written with another beam (or by another teacher) is refused, not silently reused.
    edit("max_steps = 5", "max_steps = 7");
    edit("seq_kd_beam = 3", "seq_kd_beam = 4");
    let refused = run(&a);
    let why = stderr(&refused);
    assert!(!refused.status.success());
    assert!(why.contains("distill/seq-kd.tgt: it belongs to a different job"), "{why}");
    assert!(why.contains("beam=3") && why.contains("beam=4"), "{why}");
    // Without its job record (written by hand, or copied in without it) a corpus cannot be
    // checked: it is used as it is, and the log says so.
    std::fs::remove_file(a.join("distill/seq-kd.tgt.job")).unwrap();
    let taken = run(&a);
    let log = stderr(&taken);
    assert!(taken.status.success(), "{log}");
    assert!(log.contains("distill/seq-kd.tgt has no job record"), "{log}");
}

fn completed_steps(model_dir: &Path) -> i64 {
    seqkd_nmt::pipeline::completed_state(model_dir).expect("a finished stage").step
}

#[test]
fn pruned_model_is_compact_decodes_like_the_masked_model_and_stays_pruned_while_retraining() {
    use seqkd_nmt::decode::Translator;
    use seqkd_nmt::model_dir::{load_dense, LoadedModel};
    use seqkd_nmt::prune::{Masks, PruneScheme};

    let dir = tempfile::tempdir().unwrap();
    let m = tiny_teacher(dir.path(), "m", 20);
    let pruned = dir.path().join("p80");
    let out = seqkd(&[
        "prune",
        "--model",
        p(&m),
        "--ratio",
        "0.8",
        "--scheme",
        "class-uniform",
        "--out",
        p(&pruned),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = |d: &Path| std::fs::metadata(d.join("model.safetensors")).unwrap().len();
    assert!(size(&pruned) * 100 <= size(&m) * 35, "{} vs {} bytes", size(&pruned), size(&m));

    // The same masks applied in memory decode exactly as the stored, compact model.
    tch::set_num_threads(1);
    let device = seqkd_nmt::Device::Cpu;
    let original = LoadedModel::load(&m, device, None).unwrap();
    let mut params: Vec<(String, tch::Tensor)> = original.vs.variables().into_iter().collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    Masks::by_magnitude(&params, 0.8, PruneScheme::ClassUniform).unwrap().apply(&original.vs.variables());
    let reloaded = LoadedModel::load(&pruned, device, None).unwrap();
    assert_eq!(reloaded.num_nonzero_params(), original.num_nonzero_params());
    let test = seqkd_text::corpus::read_lines(&dir.path().join("data/test.en"), &Default::default()).unwrap();
    let translate = |model: &LoadedModel| {
        let cfg = seqkd_nmt::config::DecodeConfig { beam_size: 3, ..Default::default() };
        Translator { model: &model.model, vocab: &model.vocab, cfg, device, scores: false }
            .translate_text(&test)
            .unwrap()
    };
    assert_eq!(translate(&reloaded), translate(&original));

    // Retraining from the pruned model keeps every pruned weight at exactly zero.
    let config = dir.path().join("tiny.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("[train]", "[train]\ninit = \"p80\"");
    std::fs::write(&config, text).unwrap();
    let retrained = dir.path().join("r");
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&retrained), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["model.safetensors", "last.safetensors"] {
        let (tensors, _) = load_dense(&retrained.join(file), device).unwrap();
        let (_, masks) = load_dense(&pruned.join("model.safetensors"), device).unwrap();
        assert!(!masks.is_empty());
        for (name, keep) in &masks {
            let w = &tensors[&format!("model.{name}")];
            let leaked = w.masked_select(&keep.logical_not()).abs().sum(tch::Kind::Float).double_value(&[]);
            assert_eq!(leaked, 0.0, "{file}: pruned weights of {name} moved");
        }
        // ...while the kept ones did train.
        let (before, _) = load_dense(&pruned.join("model.safetensors"), device).unwrap();
        let moved = masks.iter().any(|(name, _)| {
            let key = format!("model.{name}");
            !tensors[&key].equal(&before[&key])
        });
        assert!(moved, "{file}: nothing was retrained");
    }
    // A run from `init` validates its starting weights at update 0...
    let valid_steps = |dir: &Path| -> Vec<i64> {
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let records = metrics.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
        records.filter(|e| e["event"] == "valid").map(|e| e["step"].as_i64().unwrap()).collect()
    };
    assert_eq!(valid_steps(&retrained).first(), Some(&0));
    // ...so a retraining that only hurts (a learning rate that diverges) keeps those weights.
    let text = std::fs::read_to_string(&config).unwrap().replace("lr = 3e-3", "lr = 50.0");
    std::fs::write(&config, text).unwrap();
    let hurt = dir.path().join("r-hurt");
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&hurt), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(valid_steps(&hurt).len() > 1);
    let bytes = std::fs::read(hurt.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["step"], "0");
    let (kept, _) = load_dense(&hurt.join("model.safetensors"), device).unwrap();
    let (start, _) = load_dense(&pruned.join("model.safetensors"), device).unwrap();
    for (name, w) in &start {
        assert!(w.equal(&kept[name]), "{name} differs from the starting weights");
    }
}

#[test]
fn native_engine_translates_like_libtorch_for_transformer_lstm_and_pruned_models() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_teacher(dir.path(), "m", 40);
    // The paper's LSTM (global-general attention, input feeding), untied output layer.
    let config = dir.path().join("tiny.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let model_section = text[text.find("[model]").unwrap()..text.find("[train]").unwrap()].to_string();
    let lstm_section = "[model]\narch = \"lstm\"\nembed_dim = 24\nhidden = 32\nlayers = 2\ndropout = 0.1\ntied_embeddings = false\n\n";
    let lstm_config = dir.path().join("tiny-lstm.toml");
    std::fs::write(&lstm_config, text.replace(&model_section, lstm_section)).unwrap();
    let lstm = dir.path().join("lstm");
    let out = seqkd(&["train", "--config", p(&lstm_config), "--model-dir", p(&lstm), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The same with the options: bidirectional encoder, bridge.
    let brnn_config = dir.path().join("tiny-brnn.toml");
    let brnn_section = lstm_section.replace("\n\n", "\nbidirectional = true\nbridge = true\n\n");
    std::fs::write(&brnn_config, text.replace(&model_section, &brnn_section)).unwrap();
    let brnn = dir.path().join("brnn");
    let out = seqkd(&["train", "--config", p(&brnn_config), "--model-dir", p(&brnn), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pruned = dir.path().join("p50");
    let out = seqkd(&["prune", "--model", p(&m), "--ratio", "0.5", "--out", p(&pruned)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let input = dir.path().join("data/test.en");
    let run = |model: &Path, engine: &str, extra: &[&str]| {
        let mut args = vec![
            "translate",
            "--model",
            p(model),
            "--input",
            p(&input),
            "--engine",
            engine,
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = seqkd(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    for model in [&m, &pruned, &lstm, &brnn] {
        for beam in ["1", "3"] {
            let torch = run(model, "torch", &["--beam", beam, "--nbest", "1"]);
            let native = run(model, "native", &["--beam", beam, "--nbest", "1"]);
            // Same translations; n-best scores agree to the printed precision but for rounding.
            let (t, n): (Vec<&str>, Vec<&str>) = (torch.lines().collect(), native.lines().collect());
            assert_eq!(t.len(), 30);
            let same =
                t.iter().zip(&n).filter(|(a, b)| a.split(" ||| ").nth(1) == b.split(" ||| ").nth(1)).count();
            assert!(same >= 29, "beam {beam}, {}: only {same}/30 translations identical", model.display());
            for (a, b) in t.iter().zip(&n) {
                let score = |l: &str| l.rsplit(" ||| ").next().unwrap().parse::<f64>().unwrap();
                if a.split(" ||| ").nth(1) == b.split(" ||| ").nth(1) {
                    assert!((score(a) - score(b)).abs() < 2e-3, "{a} vs {b}");
                }
            }
            // One sentence at a time gives the same translations.
            let single = run(model, "native", &["--beam", beam, "--nbest", "1", "--max-sentences", "1"]);
            let text =
                |s: &str| s.lines().map(|l| l.split(" ||| ").nth(1).unwrap().to_string()).collect::<Vec<_>>();
            assert_eq!(text(&single), text(&native));
        }
    }
    // The teacher-forced top-k of both engines (Word-KD's stored distributions): the same ids and
    // probabilities to 1e-5, for every architecture; native on 2 threads, in several batches.
    let (src, tgt) = (dir.path().join("data/train.en"), dir.path().join("data/train.syn"));
    for model in [&m, &pruned, &lstm, &brnn] {
        let store = |engine: &str| {
            let out_path =
                dir.path().join(format!("{}-{engine}.topk", model.file_name().unwrap().to_str().unwrap()));
            let out = seqkd(&[
                "distill",
                "topk",
                "--teacher",
                p(model),
                "--src",
                p(&src),
                "--tgt",
                p(&tgt),
                "--out",
                p(&out_path),
                "--k",
                "6",
                "--precision",
                "f32",
                "--batch-tokens",
                "300",
                "--threads",
                "2",
                "--engine",
                engine,
                "--quiet",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            seqkd_nmt::distill::topk_store::TopkStore::open(&out_path).unwrap()
        };
        let (torch, native) = (store("torch"), store("native"));
        assert_eq!(torch.header.n_positions, native.header.n_positions);
        let (mut ti, mut tp, mut ni, mut np) = ([0i64; 6], [0f32; 6], [0i64; 6], [0f32; 6]);
        let mut swapped = 0;
        for i in 0..torch.n_sentences() {
            for j in 0..torch.positions(i) {
                torch.read(i, j, &mut ti, &mut tp);
                native.read(i, j, &mut ni, &mut np);
                for r in 0..6 {
                    assert!(
                        (tp[r] - np[r]).abs() <= 1e-5,
                        "{}: {i}:{j} rank {r}: {tp:?} vs {np:?}",
                        model.display()
                    );
                    // Ids may differ only where two probabilities tie to float rounding.
                    if ti[r] != ni[r] {
                        swapped += 1;
                        let tied = match ni.iter().position(|&id| id == ti[r]) {
                            Some(s) => (np[s] - tp[r]).abs() <= 1e-5,
                            // Left out by the other engine: tied with the last entry kept.
                            None => tp[r] - tp[5] <= 1e-5,
                        };
                        assert!(tied, "{}: {i}:{j}: ids {ti:?} vs {ni:?}, {tp:?}", model.display());
                    }
                }
            }
        }
        assert!(swapped * 1000 <= torch.header.n_positions as usize * 6, "{swapped} ids swapped");
    }
    // int8: a quantized directory is about a quarter of the size and decodes like --int8.
    let q = dir.path().join("q");
    let out = seqkd(&["quantize", "--model", p(&m), "--out", p(&q)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run(&q, "native", &["--beam", "3"]), run(&m, "native", &["--beam", "3", "--int8"]));
    let bad = seqkd(&["translate", "--model", p(&m), "--input", p(&input), "--int8"]);
    assert!(stderr(&bad).contains("--engine native"), "{}", stderr(&bad));
}

/// The first `n` lines of `from` (after `skip`) into `to`.
fn head_lines(from: &Path, to: &Path, skip: usize, n: usize) {
    let text = std::fs::read_to_string(from).unwrap();
    let lines: Vec<&str> = text.lines().skip(skip).take(n).collect();
    std::fs::write(to, lines.join("\n") + "\n").unwrap();
}

#[test]
fn imported_marian_teacher_is_distilled_by_the_pipeline_into_a_quantized_student() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m30k = data.join("multi30k");
    for (split, file, skip, n) in
        [("train", "train", 3000, 300), ("valid", "val", 0, 30), ("test", "test2016", 0, 30)]
    {
        for lang in ["en", "de"] {
            head_lines(
                &m30k.join(format!("{file}.{lang}")),
                &dir.path().join(format!("{split}.{lang}")),
                skip,
                n,
            );
        }
    }
    // The separate-vocabulary fixture: the students must get a source embedding of their own size.
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/nmt/tests/data/marian/separate-gelu");
    let train = |steps: usize| {
        format!(
            "lr = 3e-3\nwarmup_steps = 5\nbatch_tokens = 256\nmax_epochs = 0\nmax_steps = {steps}\nvalid_every = 10\n\
             checkpoint_every = 5\nvalid_bleu_sentences = 5\nkeep_checkpoints = 0\nthreads = 1\n"
        )
    };
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"rows = ["baseline", "seq-kd", "word-kd"]

[data]
train_src = "train.en"
train_tgt = "train.de"
valid_src = "valid.en"
valid_tgt = "valid.de"
test_src = "test.en"
test_tgt = "test.de"

[teacher]
import = "{}"

[student.model]
arch = "transformer"
d_model = 16
n_heads = 2
d_ff = 32
encoder_layers = 1
decoder_layers = 1

[student.train]
{}
[distill]
seq_kd_beam = 3
top_k = 4
chunk_sentences = 100

[eval]
threads = 1
"#,
            teacher.display(),
            train(20)
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let out = seqkd(&["pipeline", "--config", p(&config), "--out", p(&run), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("[pipeline] teacher: imported"), "{}", stderr(&out));
    assert!(stdout(&out).contains("| Seq-KD |") || stdout(&out).contains("Seq-KD"), "{}", stdout(&out));
    let student = run.join("models/seq-kd");
    let cfg = seqkd_nmt::config::Config::load(&student.join("config.toml")).unwrap();
    let seqkd_nmt::model::ModelConfig::Transformer(t) = cfg.model else { panic!("a Transformer student") };
    assert_eq!(t.src_vocab_size, Some(503), "the teacher's source vocabulary (502 + 1)");
    assert!(t.tied_output && !t.tied_embeddings);
    // The student on the teacher's vocabulary, quantized, on the native engine.
    let int8 = dir.path().join("student-int8");
    let q = seqkd(&["quantize", "--model", p(&student), "--out", p(&int8)]);
    assert!(q.status.success(), "{}", stderr(&q));
    let t = seqkd(&[
        "translate",
        "--model",
        p(&int8),
        "--engine",
        "native",
        "--int8",
        "--input",
        p(&dir.path().join("test.en")),
    ]);
    assert!(t.status.success(), "{}", stderr(&t));
    assert_eq!(stdout(&t).lines().count(), 30);
    // The imported teacher translates on both engines alike.
    let teacher_dir = run.join("models/teacher");
    let both: Vec<String> = ["torch", "native"]
        .iter()
        .map(|engine| {
            let o = seqkd(&[
                "translate",
                "--model",
                p(&teacher_dir),
                "--engine",
                engine,
                "--beam",
                "5",
                "--input",
                p(&dir.path().join("test.en")),
            ]);
            assert!(o.status.success(), "{engine}: {}", stderr(&o));
            stdout(&o)
        })
        .collect();
    assert_eq!(both[0], both[1]);
}

#[test]
fn import_refuses_what_is_not_a_marian_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = seqkd(&[
        "import",
        "--format",
        "marian-hf",
        "--from",
        p(dir.path()),
        "--out",
        p(&dir.path().join("m")),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no config.json"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}

/// The f32 model tensors of a checkpoint, by name.
fn checkpoint_f32(path: &Path) -> Vec<(String, Vec<f32>)> {
    checkpoint_weights(path)
        .into_iter()
        .filter(|(n, _)| n.starts_with("model."))
        .map(|(n, b)| (n, b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
        .collect()
}

fn max_abs_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.iter().map(|t| &t.0).collect::<Vec<_>>(), b.iter().map(|t| &t.0).collect::<Vec<_>>());
    a.iter().zip(b).flat_map(|(x, y)| x.1.iter().zip(&y.1).map(|(u, v)| (u - v).abs())).fold(0.0, f32::max)
}

#[test]
fn data_parallel_training_on_two_processes_equals_one_process_on_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_setup(dir.path(), 30);
    // No dropout: the ranks draw their own masks, which a single process cannot repeat. SGD, not
    // Adam: Adam divides each gradient by its own magnitude, so a gradient that is 1e-9 in one run
    // and -1e-9 in the other (rounding) moves its weight by ±lr (measured: 0.014 apart after 30
    // steps), which would hide what this test checks, the gradients of the global batch.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dropout = 0.1", "dropout = 0.0")
        .replace("lr = 3e-3", "optimizer = \"sgd\"\nlr = 0.5");
    std::fs::write(&config, &text).unwrap();
    let one = dir.path().join("one");
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&one), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Both ranks of a 2-process run of `config` into `model_dir`; rank 0's stdout.
    let two_processes = |config: &Path, model_dir: &Path, extra: &[&str]| -> String {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let rank = |r: &str| {
            Command::new(env!("CARGO_BIN_EXE_seqkd"))
                .args(["train", "--config", p(config), "--model-dir", p(model_dir), "--quiet"])
                .args(["--world-size", "2", "--rank", r, "--master-port", &port, "--dp-timeout", "120"])
                .args(extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (r0, r1) = (rank("0"), rank("1"));
        let (o0, o1) = (r0.wait_with_output().unwrap(), r1.wait_with_output().unwrap());
        assert!(
            o0.status.success() && o1.status.success(),
            "rank 0: {}\nrank 1: {}",
            stderr(&o0),
            stderr(&o1)
        );
        stdout(&o0)
    };
    let two = dir.path().join("two");
    assert!(two_processes(&config, &two, &[]).contains("trained 30 steps"));
    // Stopped after 12 updates and resumed (every rank reads the checkpoint): the same weights.
    // This run streams its corpus: rank 0 encodes it into the model directory, rank 1 maps it.
    let streamed = dir.path().join("streamed.toml");
    std::fs::write(&streamed, text.replace("[data]", "[data]\nstream = true")).unwrap();
    let resumed = dir.path().join("resumed");
    two_processes(&streamed, &resumed, &["--max-steps", "12"]);
    assert!(resumed.join("train.tgt.ids").exists());
    let again = two_processes(&streamed, &resumed, &["--resume", "--max-steps", "30"]);
    assert!(again.contains("trained 30 steps"));
    assert_eq!(
        checkpoint_weights(&resumed.join("last.safetensors")),
        checkpoint_weights(&two.join("last.safetensors"))
    );

    let (w1, w2) =
        (checkpoint_f32(&one.join("last.safetensors")), checkpoint_f32(&two.join("last.safetensors")));
    let diff = max_abs_diff(&w1, &w2);
    // Ranks started with different budgets both stop at once, with the same clear error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mismatched = dir.path().join("mismatched");
    let children: Vec<_> = [("1", "20"), ("0", "30")]
        .into_iter()
        .map(|(r, steps)| {
            Command::new(env!("CARGO_BIN_EXE_seqkd"))
                .args(["train", "--config", p(&config), "--model-dir", p(&mismatched), "--quiet"])
                .args(["--world-size", "2", "--rank", r, "--master-port", &port, "--dp-timeout", "120"])
                .args(["--max-steps", steps])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success() && stderr(&out).contains("differ from rank 0"), "{}", stderr(&out));
    }
    // Rank 0 failing to read the corpus stops rank 1 at once, not at the timeout.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, text.replace("data/train.syn", "data/missing.syn")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let started = std::time::Instant::now();
    let children: Vec<_> = ["0", "1"]
        .into_iter()
        .map(|r| {
            Command::new(env!("CARGO_BIN_EXE_seqkd"))
                .args(["train", "--config", p(&broken), "--model-dir", p(&dir.path().join("broken"))])
                .args([
                    "--quiet",
                    "--world-size",
                    "2",
                    "--rank",
                    r,
                    "--master-port",
                    &port,
                    "--dp-timeout",
                    "120",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    assert!(stderr(&outs[0]).contains("missing.syn"), "{}", stderr(&outs[0]));
    assert!(stderr(&outs[1]).contains("rank 0 could not prepare"), "{}", stderr(&outs[1]));
    assert!(started.elapsed().as_secs() < 60, "rank 1 waited for the timeout");
    // What "different" looks like: the same run from another seed.
    let other = dir.path().join("other");
    std::fs::write(&config, text.replace("threads = 1", "threads = 1\nseed = 2")).unwrap();
    let out = seqkd(&["train", "--config", p(&config), "--model-dir", p(&other), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let apart = max_abs_diff(&w1, &checkpoint_f32(&other.join("last.safetensors")));
    assert!(diff < 1e-5 && apart > 1e-2, "1 vs 2 processes: {diff}; another seed: {apart}");
    // Only rank 0 logged: one record per 50 steps and validation, as the single process.
    let lines = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap().lines().count();
    assert_eq!(lines(&one), lines(&two));
}

#[test]
fn bf16_mixed_precision_training_tracks_fp32_and_keeps_f32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_training_setup(dir.path(), 40);
    let bf16_config = dir.path().join("bf16.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&bf16_config, text.replace("threads = 1", "threads = 1\nprecision = \"bf16\"")).unwrap();
    let (a, b) = (dir.path().join("fp32"), dir.path().join("bf16"));
    for (cfg, out) in [(&config, &a), (&bf16_config, &b)] {
        let run = seqkd(&["train", "--config", p(cfg), "--model-dir", p(out), "--quiet"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let ppl = |d: &Path| -> f64 {
        let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        let last = text.lines().rev().find(|l| l.contains("\"valid\"")).unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&last).unwrap()["ppl"].as_f64().unwrap()
    };
    let (pa, pb) = (ppl(&a), ppl(&b));
    assert!((pa - pb).abs() / pa < 0.05, "validation perplexity fp32 {pa} vs bf16 {pb}");
    // bf16 really ran (the weights differ), and the weights it keeps are f32.
    let (wa, wb) = (checkpoint_f32(&a.join("last.safetensors")), checkpoint_f32(&b.join("last.safetensors")));
    assert!(max_abs_diff(&wa, &wb) > 1e-4);
    let bytes = std::fs::read(b.join("last.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensors().iter().all(|(_, v)| v.dtype() != safetensors::Dtype::BF16));
    assert!(std::fs::read_to_string(b.join("config.toml")).unwrap().contains("precision = \"bf16\""));
}
