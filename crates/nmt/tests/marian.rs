//! Imported Marian teachers (`seqkd import --format marian-hf`) against `transformers` itself, on
//! the tiny `MarianMTModel`s of `tests/data/marian/` (made by `scripts/marian/make-tiny.sh`, with
//! `reference.json` holding `MarianTokenizer`'s ids and `generate`'s outputs for 206 sentences):
//! the tokenizer gives the same ids, greedy and beam-5 search give the same tokens, and the
//! log-probabilities agree to 1e-4.

use std::path::{Path, PathBuf};

use serde_json::Value;

use seqkd_nmt::decode::{Hypothesis, Translator};
use seqkd_nmt::import::marian;
use seqkd_nmt::model_dir::LoadedModel;
use seqkd_runtime::translator::Precision;
use tch::Device;

const CONFIGS: [&str; 3] = ["shared-swish", "separate-gelu", "untied-relu"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/marian").join(name)
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// seqkd id → Marian id, from a Marian vocabulary file (the import's renumbering, restated:
/// padding and decoder start are Marian's pad, then `</s>`, `<unk>`, the rest in order).
fn marian_ids(path: &Path) -> Vec<usize> {
    let vocab: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let id = |p: &str| vocab[p].as_u64().unwrap() as usize;
    let (pad, eos, unk) = (id("<pad>"), id("</s>"), id("<unk>"));
    let n = vocab.as_object().unwrap().len();
    [pad, pad, eos, unk].into_iter().chain((0..n).filter(|i| ![pad, eos, unk].contains(i))).collect()
}

struct Imported {
    _dir: tempfile::TempDir,
    path: PathBuf,
    src_ids: Vec<usize>,
    tgt_ids: Vec<usize>,
    reference: Value,
}

fn import(name: &str) -> Imported {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    marian::import(&fixture(name), &path).unwrap();
    let from = fixture(name);
    let src_ids = marian_ids(&from.join("vocab.json"));
    let separate = from.join("target_vocab.json");
    let tgt_ids = if separate.is_file() { marian_ids(&separate) } else { src_ids.clone() };
    Imported { _dir: dir, path, src_ids, tgt_ids, reference: reference(name) }
}

fn sentences(r: &Value) -> &Vec<Value> {
    r["sentences"].as_array().unwrap()
}

#[test]
fn tokenizer_gives_marian_tokenizers_ids() {
    for name in CONFIGS {
        let m = import(name);
        let vocab = seqkd_text::vocab::Vocab::load(&m.path.join("vocab.json")).unwrap();
        let eos = m.tgt_ids[2];
        let mut checked = 0;
        for s in sentences(&m.reference) {
            let src = s["source"].as_str().unwrap();
            let mut got: Vec<usize> =
                vocab.encode_src(src).unwrap().iter().map(|&i| m.src_ids[i as usize]).collect();
            got.push(m.src_ids[2]);
            assert_eq!(got, ids(&s["source_ids"]), "{name}: source {src:?} ({:?})", s["source_pieces"]);
            let tgt = s["target"].as_str().unwrap();
            let mut got: Vec<usize> =
                vocab.encode(tgt).unwrap().iter().map(|&i| m.tgt_ids[i as usize]).collect();
            got.push(eos);
            assert_eq!(got, ids(&s["target_ids"]), "{name}: target {tgt:?}");
            checked += 1;
        }
        assert!(checked >= 206, "{name}: {checked} sentences");
    }
}

/// `generate`'s tokens after the decoder start, without the final `</s>`; and whether it ended
/// with `</s>` before `max_length` forced one.
fn hf_tokens(hyp: &Value, max_length: usize) -> (Vec<usize>, bool) {
    let mut ids = ids(&hyp["ids"]);
    ids.remove(0);
    let full = ids.len() + 1 == max_length;
    ids.pop();
    (ids, !full)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Engine {
    Torch,
    Native,
}

fn translate(m: &Imported, engine: Engine, beam: usize, srcs: &[String]) -> Vec<Vec<Hypothesis>> {
    match engine {
        Engine::Torch => {
            let model = LoadedModel::load(&m.path, Device::Cpu, None).unwrap();
            let mut cfg = model.config.decode.clone();
            cfg.beam_size = beam;
            let t = Translator {
                model: &model.model,
                vocab: &model.vocab,
                cfg,
                device: Device::Cpu,
                scores: true,
            };
            t.translate(srcs, 1, |_| {}).unwrap()
        }
        Engine::Native => {
            let mut t =
                seqkd_runtime::translator::Translator::load(&m.path, None, Precision::AsStored, 1).unwrap();
            t.cfg.beam_size = beam;
            t.translate(srcs, 1, |_| {}).unwrap()
        }
    }
}

fn check_search(name: &str, engine: Engine, beam: usize) {
    let m = import(name);
    let rows = sentences(&m.reference);
    let srcs: Vec<String> = rows.iter().map(|s| s["source"].as_str().unwrap().to_string()).collect();
    let hyps = translate(&m, engine, beam, &srcs);
    let max_length = m.reference["max_length"].as_u64().unwrap() as usize;
    let key = if beam == 1 { "greedy" } else { "beam5" };
    let mut worst = 0f32;
    for (s, h) in rows.iter().zip(&hyps) {
        let h = &h[0];
        let (want, ended) = hf_tokens(&s[key], max_length);
        let got: Vec<usize> = h.tokens.iter().map(|&i| m.tgt_ids[i as usize]).collect();
        assert_eq!(got, want, "{name} {key} {engine:?}: {:?}", s["source"]);
        let want_lp: Vec<f32> =
            s[key]["token_logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        // seqkd emits no `</s>` at its length limit, where `generate` forces one.
        // Under transformers' rule seqkd's beam search forces it too (log-prob 0): compare the
        // tokens' log-probabilities, and `</s>`'s where the model chose it.
        let n = if ended { want_lp.len() } else { want_lp.len() - 1 };
        let forced = usize::from(beam > 1 && !ended);
        assert_eq!(h.token_logprobs.len(), n + forced, "{name} {key}: {:?}", s["source"]);
        for (a, b) in h.token_logprobs.iter().zip(&want_lp).take(n) {
            worst = worst.max((a - b).abs());
        }
        if beam > 1 {
            let want = s[key]["score"].as_f64().unwrap() as f32;
            assert!(
                (h.normalized_score - want).abs() < 1e-4,
                "{name}: score {} vs {want}",
                h.normalized_score
            );
        }
    }
    assert!(worst < 1e-4, "{name} {key}: log-probabilities differ by up to {worst}");
    eprintln!(
        "{name} {key} {engine:?}: {} sentences equal, log-probabilities within {worst:.1e}",
        rows.len()
    );
}

#[test]
fn torch_greedy_equals_generate() {
    tch::set_num_threads(1);
    for name in CONFIGS {
        check_search(name, Engine::Torch, 1);
    }
}

#[test]
fn native_greedy_equals_generate() {
    for name in CONFIGS {
        check_search(name, Engine::Native, 1);
    }
}

#[test]
fn torch_beam5_equals_generate() {
    tch::set_num_threads(1);
    for name in CONFIGS {
        check_search(name, Engine::Torch, 5);
    }
}

#[test]
fn native_beam5_equals_generate() {
    for name in CONFIGS {
        check_search(name, Engine::Native, 5);
    }
}

/// A copy of a fixture to break.
fn broken_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn import_error(from: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let err = marian::import(from, &out.path().join("model")).expect_err("import must fail").to_string();
    assert!(!out.path().join("model").exists(), "a failed import left {}", out.path().display());
    err
}

#[test]
fn bad_directories_get_clear_errors() {
    let empty = tempfile::tempdir().unwrap();
    let err = import_error(empty.path());
    assert!(err.contains("no config.json"), "{err}");

    let dir = broken_copy("shared-swish");
    std::fs::remove_file(dir.path().join("target.spm")).unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("missing target.spm"), "{err}");

    let dir = broken_copy("shared-swish");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"model_type\": \"marian\"", "\"model_type\": \"bart\"")).unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("model_type is \"bart\""), "{err}");

    std::fs::write(
        &config,
        text.replace("\"activation_function\": \"swish\"", "\"activation_function\": \"tanh\""),
    )
    .unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("unsupported Marian option: activation_function \"tanh\""), "{err}");

    std::fs::write(&config, text.replace("\"decoder_attention_heads\": 4", "\"decoder_attention_heads\": 2"))
        .unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("decoder_attention_heads 2"), "{err}");

    std::fs::write(&config, &text).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("missing model.safetensors or pytorch_model.bin"), "{err}");

    std::fs::write(dir.path().join("model.safetensors.index.json"), b"{}").unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("unsupported Marian option: a sharded checkpoint"), "{err}");

    std::fs::write(dir.path().join("pytorch_model.bin"), b"PK\x03\x04 not a zip").unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("pytorch_model.bin"), "{err}");

    std::fs::write(dir.path().join("model.safetensors"), b"garbage").unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("model.safetensors"), "{err}");

    let dir = broken_copy("shared-swish");
    std::fs::write(dir.path().join("source.spm"), b"\x0a\x03abc garbage").unwrap();
    let err = import_error(dir.path());
    assert!(err.contains("source.spm"), "{err}");
}

/// A model directory's parameters, by name: (dtype, shape, bytes).
fn parameters(model: &Path) -> Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(model.join(seqkd_runtime::format::BEST_FILE)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A copy of `name` with its model.safetensors replaced by `write(dir)`.
fn with_weights(name: &str, write: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = broken_copy(name);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    write(dir.path());
    dir
}

#[test]
fn pytorch_model_bin_imports_the_same_weights() {
    // make-bin.py's torch.save of shared-swish (transformers 4.x's safe_serialization=False):
    // tied embeddings and lm_head as views of one storage, the sinusoidal positions included.
    let bin = fixture("shared-swish.bin").join("pytorch_model.bin");
    let dir = with_weights("shared-swish", |d| {
        std::fs::copy(&bin, d.join("pytorch_model.bin")).unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    marian::import(dir.path(), &out.path().join("model")).unwrap();
    let want = import("shared-swish");
    let (got, want) = (parameters(&out.path().join("model")), parameters(&want.path));
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.1, &g.2), (&w.0, w.1, &w.2));
        assert!(g.3 == w.3, "{}: the pickle's values differ from the safetensors'", g.0);
    }
}

#[test]
fn f16_and_bf16_checkpoints_import_as_their_rounded_f32() {
    let want = import("shared-swish");
    let want = parameters(&want.path);
    let bytes = std::fs::read(fixture("shared-swish").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    type Round = fn(f32) -> (Vec<u8>, f32);
    let halves: [(safetensors::Dtype, Round); 2] = [
        (safetensors::Dtype::F16, |x| {
            let h = half::f16::from_f32(x);
            (h.to_le_bytes().to_vec(), h.to_f32())
        }),
        (safetensors::Dtype::BF16, |x| {
            let h = half::bf16::from_f32(x);
            (h.to_le_bytes().to_vec(), h.to_f32())
        }),
    ];
    for (dtype, round) in halves {
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(name, t)| {
                assert_eq!(t.dtype(), safetensors::Dtype::F32);
                let data = t
                    .data()
                    .chunks_exact(4)
                    .flat_map(|b| round(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).0);
                (name, t.shape().to_vec(), data.collect())
            })
            .collect();
        let dir = with_weights("shared-swish", |d| {
            let views: Vec<_> = tensors
                .iter()
                .map(|(n, shape, data)| {
                    (n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), data).unwrap())
                })
                .collect();
            safetensors::serialize_to_file(views, None, &d.join("model.safetensors")).unwrap();
        });
        let out = tempfile::tempdir().unwrap();
        marian::import(dir.path(), &out.path().join("model")).unwrap();
        let got = parameters(&out.path().join("model"));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, g.1, &g.2), (&w.0, safetensors::Dtype::F32, &w.2), "{dtype:?}");
            let f32s = |b: &[u8]| -> Vec<f32> {
                b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            };
            // The banned ids' −1e9 bias is set after the conversion, exactly.
            let rounded: Vec<f32> =
                f32s(&w.3).into_iter().map(|x| if x == -1e9 { x } else { round(x).1 }).collect();
            assert!(f32s(&g.3) == rounded, "{dtype:?} {}: not the rounded f32 weights", g.0);
        }
    }
}
