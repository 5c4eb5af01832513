//! `seqkd import --format marian-hf`: an OPUS-MT / Marian teacher in the Hugging Face
//! `MarianMTModel` layout (`config.json`, `model.safetensors` or `pytorch_model.bin`,
//! `source.spm`, `target.spm`, `vocab.json` [+ `target_vocab.json`], `tokenizer_config.json`,
//! `generation_config.json`) as a seqkd model directory that both engines load.
//!
//! Nothing here is a special case of the model code: the architecture becomes
//! [`TransformerConfig`] options (post-norm, activation, √d scaling, position layout, output bias,
//! separate vocabularies), and the ids are renumbered into seqkd's layout. Marian's ids are
//! `</s>` 0, `<unk>` 1, …, `<pad>` (which is also the decoder start) usually last; seqkd's are
//! padding 0, decoder start 1, `</s>` 2, `<unk>` 3, then the rest in Marian's order. The pad row
//! goes to both seqkd 0 and 1, and the output bias of ids 0 and 1 is −1e9: `generate` bans the pad
//! (`bad_words_ids`) and renormalises (`renormalize_logits`), which is what a −1e9 logit does.
//!
//! The search settings come from `generation_config.json`: `num_beams`, `length_penalty`,
//! `max_length` (which counts the decoder start and the forced final `</s>`, so at most
//! `max_length − 2` tokens before it), and beam search with `transformers`' stopping rule.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, PytorchReader};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use seqkd_runtime::format::{
    write_safetensors, Activation, DecodeConfig, ModelConfig, PositionLayout, RawTensor, TransformerConfig,
    BEST_FILE, CONFIG_FILE, PARAM_PREFIX, VOCAB_FILE,
};
use seqkd_text::spm::SpmVocab;
use seqkd_text::vocab::{Vocab, SPECIAL_IDS};

use crate::config::Config;
use crate::error::{io_err, Error, Result};

/// What an import wrote, for the command's summary line.
#[derive(Debug)]
pub struct Imported {
    pub config: TransformerConfig,
    pub src_vocab: usize,
    pub tgt_vocab: usize,
    pub parameters: usize,
    pub decode: DecodeConfig,
}

fn invalid(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {what}", dir.display()))
}

fn unsupported(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: unsupported Marian option: {what}", dir.display()))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile { path: path.into(), reason: e.to_string() })
}

/// A Marian model directory's settings, read and checked.
struct Source {
    dir: PathBuf,
    config: Value,
    generation: Value,
    separate_vocabs: bool,
}

impl Source {
    fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(invalid(dir, "not a directory"));
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(invalid(dir, "not a Hugging Face model directory (no config.json)"));
        }
        let config = read_json(&config_path)?;
        let model_type = config["model_type"].as_str().unwrap_or("");
        if model_type != "marian" {
            return Err(invalid(
                dir,
                format!("config.json: model_type is {model_type:?}, not \"marian\" (a MarianMTModel)"),
            ));
        }
        for file in ["source.spm", "target.spm", "vocab.json"] {
            if !dir.join(file).is_file() {
                return Err(invalid(dir, format!("missing {file}")));
            }
        }
        let tok_path = dir.join("tokenizer_config.json");
        let tok = if tok_path.is_file() { read_json(&tok_path)? } else { Value::Null };
        let separate_vocabs = tok["separate_vocabs"].as_bool().unwrap_or(false);
        if separate_vocabs && !dir.join("target_vocab.json").is_file() {
            return Err(invalid(
                dir,
                "tokenizer_config.json has separate_vocabs, but target_vocab.json is missing",
            ));
        }
        let gen_path = dir.join("generation_config.json");
        let generation = if gen_path.is_file() { read_json(&gen_path)? } else { Value::Null };
        Ok(Self { dir: dir.into(), config, generation, separate_vocabs })
    }

    fn int(&self, key: &str) -> Result<i64> {
        self.config[key]
            .as_i64()
            .ok_or_else(|| invalid(&self.dir, format!("config.json: {key} is missing or not an integer")))
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.config[key].as_bool().unwrap_or(default)
    }

    /// A generation setting: generation_config.json, else config.json, else `default`.
    fn generation(&self, key: &str) -> Option<&Value> {
        [&self.generation[key], &self.config[key]].into_iter().find(|v| !v.is_null())
    }

    fn model_config(&self) -> Result<TransformerConfig> {
        let d = &self.dir;
        let (enc_heads, dec_heads) =
            (self.int("encoder_attention_heads")?, self.int("decoder_attention_heads")?);
        if enc_heads != dec_heads {
            return Err(unsupported(
                d,
                format!("encoder_attention_heads {enc_heads} != decoder_attention_heads {dec_heads}"),
            ));
        }
        let (enc_ff, dec_ff) = (self.int("encoder_ffn_dim")?, self.int("decoder_ffn_dim")?);
        if enc_ff != dec_ff {
            return Err(unsupported(d, format!("encoder_ffn_dim {enc_ff} != decoder_ffn_dim {dec_ff}")));
        }
        let activation = match self.config["activation_function"].as_str().unwrap_or("gelu") {
            "swish" | "silu" => Activation::Swish,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => {
                return Err(unsupported(
                    d,
                    format!("activation_function {other:?} (swish, gelu and relu are)"),
                ))
            }
        };
        for key in
            ["normalize_before", "add_final_layer_norm", "normalize_embedding", "static_position_embeddings"]
        {
            if let Some(v) = self.config[key].as_bool() {
                let expected = key == "static_position_embeddings";
                if v != expected {
                    return Err(unsupported(d, format!("{key} = {v}")));
                }
            }
        }
        let share = self.flag("share_encoder_decoder_embeddings", true);
        let tie = self.flag("tie_word_embeddings", true);
        let vocab = self.int("vocab_size")?;
        let decoder_vocab = self.config["decoder_vocab_size"].as_i64().unwrap_or(vocab);
        if share && vocab != decoder_vocab {
            return Err(invalid(
                d,
                format!("shared embeddings, but vocab_size {vocab} != decoder_vocab_size {decoder_vocab}"),
            ));
        }
        if share == self.separate_vocabs {
            return Err(unsupported(
                d,
                format!(
                    "share_encoder_decoder_embeddings = {share} with tokenizer separate_vocabs = {}",
                    self.separate_vocabs
                ),
            ));
        }
        let cfg = TransformerConfig {
            d_model: self.int("d_model")?,
            n_heads: enc_heads,
            d_ff: enc_ff,
            encoder_layers: self.int("encoder_layers")?,
            decoder_layers: self.int("decoder_layers")?,
            dropout: self.config["dropout"].as_f64().unwrap_or(0.1),
            attention_dropout: Some(self.config["attention_dropout"].as_f64().unwrap_or(0.0)),
            tied_embeddings: share && tie,
            tied_output: !share && tie,
            output_bias: true,
            // seqkd adds 1 id (padding and decoder start are two ids; Marian's pad is both).
            src_vocab_size: self.separate_vocabs.then_some(vocab + 1),
            normalize_before: false,
            activation,
            embed_scale: self.flag("scale_embedding", false),
            positions: PositionLayout::Halves,
        };
        cfg.validate().map_err(|e| invalid(d, format!("config.json: {e}")))?;
        Ok(cfg)
    }

    fn decode_config(&self) -> Result<DecodeConfig> {
        let max_length = self.generation("max_length").and_then(Value::as_u64).unwrap_or(512);
        if max_length < 3 {
            return Err(invalid(&self.dir, format!("max_length {max_length} leaves no room for a token")));
        }
        if let Some(true) = self.generation("do_sample").and_then(Value::as_bool) {
            return Err(unsupported(&self.dir, "do_sample = true (seqkd's search is deterministic)"));
        }
        Ok(DecodeConfig {
            beam_size: self.generation("num_beams").and_then(Value::as_u64).unwrap_or(1).max(1) as usize,
            length_penalty: self.generation("length_penalty").and_then(Value::as_f64).unwrap_or(1.0),
            max_len_a: 0.0,
            max_len_b: (max_length - 2) as usize,
            hf_stopping: true,
            ..DecodeConfig::default()
        })
    }
}

/// Marian ids in seqkd's order (padding, decoder start, `</s>`, `<unk>`, the rest) for a
/// vocabulary file (piece → Marian id): the Marian id of each seqkd id, and the seqkd pieces.
fn renumber(path: &Path) -> Result<(Vec<usize>, Vec<String>)> {
    let json = read_json(path)?;
    let map = json
        .as_object()
        .ok_or_else(|| Error::BadFile { path: path.into(), reason: "not a JSON object".into() })?;
    let mut by_id: Vec<Option<String>> = vec![None; map.len()];
    for (piece, id) in map {
        let id = id.as_u64().map(|i| i as usize).filter(|&i| i < map.len());
        let Some(id) = id else {
            return Err(Error::BadFile {
                path: path.into(),
                reason: format!("{piece:?}: id is not in 0..{}", map.len()),
            });
        };
        if let Some(other) = &by_id[id] {
            return Err(Error::BadFile {
                path: path.into(),
                reason: format!("{other:?} and {piece:?} share id {id}"),
            });
        }
        by_id[id] = Some(piece.clone());
    }
    let find = |piece: &str| {
        map.get(piece).and_then(Value::as_u64).map(|i| i as usize).ok_or_else(|| Error::BadFile {
            path: path.into(),
            reason: format!("no {piece} in the vocabulary"),
        })
    };
    let (pad, eos, unk) = (find("<pad>")?, find("</s>")?, find("<unk>")?);
    let mut order = vec![pad, pad, eos, unk];
    order.extend((0..by_id.len()).filter(|i| ![pad, eos, unk].contains(i)));
    let pieces = order.iter().map(|&i| by_id[i].clone().unwrap_or_default()).collect();
    Ok((order, pieces))
}

/// Where a checkpoint's tensors are read from: `model.safetensors`, or `pytorch_model.bin` (the
/// zip of pickled storages that `torch.save` writes, and all that older OPUS-MT uploads have).
enum Store<'a> {
    Safetensors(SafeTensors<'a>),
    Pickle(PytorchReader),
}

/// The element types a checkpoint's floating-point weights come in.
#[derive(Clone, Copy)]
enum Float {
    F32,
    F16,
    BF16,
}

/// `data` as f32, read `little`-endian or native-endian.
fn to_f32(kind: Float, data: &[u8], little: bool) -> Vec<f32> {
    let two =
        |b: &[u8]| if little { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_ne_bytes([b[0], b[1]]) };
    match kind {
        Float::F32 => data
            .chunks_exact(4)
            .map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                if little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_ne_bytes(b)
                }
            })
            .collect(),
        Float::F16 => data.chunks_exact(2).map(|b| half::f16::from_bits(two(b)).to_f32()).collect(),
        Float::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_bits(two(b)).to_f32()).collect(),
    }
}

/// The weights of a Marian checkpoint, as f32.
struct Weights<'a> {
    path: PathBuf,
    store: Store<'a>,
}

impl Weights<'_> {
    fn has(&self, name: &str) -> bool {
        match &self.store {
            Store::Safetensors(st) => st.names().contains(&name),
            Store::Pickle(reader) => reader.get(name).is_some(),
        }
    }

    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let bad = |reason: String| Error::BadFile { path: self.path.clone(), reason };
        let bad_dtype = |dtype: &dyn std::fmt::Debug| {
            bad(format!("{name}: dtype {dtype:?} (f32, f16 and bf16 are supported)"))
        };
        match &self.store {
            Store::Safetensors(st) => {
                let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
                let kind = match t.dtype() {
                    Dtype::F32 => Float::F32,
                    Dtype::F16 => Float::F16,
                    Dtype::BF16 => Float::BF16,
                    other => return Err(bad_dtype(&other)),
                };
                Ok((t.shape().to_vec(), to_f32(kind, t.data(), true)))
            }
            Store::Pickle(reader) => {
                let t = reader.get(name).ok_or_else(|| bad(format!("no tensor {name}")))?;
                let kind = match t.dtype() {
                    DType::F32 => Float::F32,
                    DType::F16 => Float::F16,
                    DType::BF16 => Float::BF16,
                    other => return Err(bad_dtype(&other)),
                };
                // pytorch-reader hands back contiguous, native-endian bytes.
                let data = t.read().map_err(|e| bad(e.to_string()))?;
                Ok((t.shape().to_vec(), to_f32(kind, &data, false)))
            }
        }
    }

    /// The first of `names` present.
    fn first(&self, names: &[&str]) -> Result<(Vec<usize>, Vec<f32>)> {
        match names.iter().find(|n| self.has(n)) {
            Some(n) => self.get(n),
            None => Err(Error::BadFile {
                path: self.path.clone(),
                reason: format!("no tensor {}", names.join(" or ")),
            }),
        }
    }
}

/// Rows of a `[n, d]` matrix (or `[n]` / `[1, n]` vector) in `order`.
fn rows(
    path: &Path,
    name: &str,
    (shape, values): (Vec<usize>, Vec<f32>),
    order: &[usize],
) -> Result<(Vec<usize>, Vec<f32>)> {
    let n = if shape.len() == 2 && shape[0] == 1 { shape[1] } else { shape[0] };
    let width = values.len() / n.max(1);
    if let Some(&bad) = order.iter().find(|&&i| i >= n) {
        return Err(Error::BadFile {
            path: path.into(),
            reason: format!("{name}: {n} rows, the vocabulary needs row {bad}"),
        });
    }
    let out: Vec<f32> =
        order.iter().flat_map(|&i| values[i * width..(i + 1) * width].iter().copied()).collect();
    let shape = if width == 1 { vec![order.len()] } else { vec![order.len(), width] };
    Ok((shape, out))
}

fn raw(name: String, (shape, values): (Vec<usize>, Vec<f32>)) -> RawTensor {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (format!("{PARAM_PREFIX}{name}"), Dtype::F32, shape, bytes)
}

/// seqkd parameter ← Marian tensor, per layer.
const ENCODER_LAYER: &[(&str, &str)] = &[
    ("self_attn.q_proj", "self_attn.q_proj"),
    ("self_attn.k_proj", "self_attn.k_proj"),
    ("self_attn.v_proj", "self_attn.v_proj"),
    ("self_attn.out_proj", "self_attn.out_proj"),
    ("self_attn_norm", "self_attn_layer_norm"),
    ("ffn.fc1", "fc1"),
    ("ffn.fc2", "fc2"),
    ("ffn_norm", "final_layer_norm"),
];

const DECODER_CROSS: &[(&str, &str)] = &[
    ("cross_attn.q_proj", "encoder_attn.q_proj"),
    ("cross_attn.k_proj", "encoder_attn.k_proj"),
    ("cross_attn.v_proj", "encoder_attn.v_proj"),
    ("cross_attn.out_proj", "encoder_attn.out_proj"),
    ("cross_attn_norm", "encoder_attn_layer_norm"),
];

fn convert_weights(
    src: &Source,
    cfg: &TransformerConfig,
    src_order: &[usize],
    tgt_order: &[usize],
) -> Result<Vec<RawTensor>> {
    let bytes;
    let safetensors = src.dir.join("model.safetensors");
    let pickle = src.dir.join("pytorch_model.bin");
    let w = if safetensors.is_file() {
        bytes = std::fs::read(&safetensors).map_err(io_err(&safetensors))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::BadFile { path: safetensors.clone(), reason: e.to_string() })?;
        Weights { path: safetensors, store: Store::Safetensors(st) }
    } else if pickle.is_file() {
        let reader = PytorchReader::new(&pickle)
            .map_err(|e| Error::BadFile { path: pickle.clone(), reason: e.to_string() })?;
        Weights { path: pickle, store: Store::Pickle(reader) }
    } else {
        let sharded = ["model.safetensors.index.json", "pytorch_model.bin.index.json"]
            .into_iter()
            .find(|f| src.dir.join(f).is_file());
        return Err(match sharded {
            Some(index) => unsupported(&src.dir, format!("a sharded checkpoint ({index})")),
            None => invalid(&src.dir, "missing model.safetensors or pytorch_model.bin"),
        });
    };
    let path = w.path.clone();
    let mut out = Vec::new();
    let enc = w.first(&["model.encoder.embed_tokens.weight", "model.shared.weight"])?;
    out.push(raw("src_embed.weight".into(), rows(&path, "source embedding", enc, src_order)?));
    let dec_names = ["model.decoder.embed_tokens.weight", "model.shared.weight"];
    if !cfg.tied_embeddings {
        out.push(raw(
            "tgt_embed.weight".into(),
            rows(&path, "target embedding", w.first(&dec_names)?, tgt_order)?,
        ));
    }
    let (_, mut bias) = rows(&path, "final_logits_bias", w.get("final_logits_bias")?, tgt_order)?;
    // Padding and decoder start can never be predicted (generate's bad_words_ids = [[pad]]).
    bias[SPECIAL_IDS.pad as usize] = -1e9;
    bias[SPECIAL_IDS.bos as usize] = -1e9;
    let bias = (vec![tgt_order.len()], bias);
    if cfg.tied_embeddings || cfg.tied_output {
        out.push(raw("out_bias".into(), bias));
    } else {
        out.push(raw(
            "out_proj.weight".into(),
            rows(&path, "lm_head", w.first(&["lm_head.weight"])?, tgt_order)?,
        ));
        out.push(raw("out_proj.bias".into(), bias));
    }
    let params = |out: &mut Vec<RawTensor>, seqkd: &str, marian: &str| -> Result<()> {
        for part in ["weight", "bias"] {
            out.push(raw(format!("{seqkd}.{part}"), w.get(&format!("{marian}.{part}"))?));
        }
        Ok(())
    };
    for i in 0..cfg.encoder_layers {
        for (ours, theirs) in ENCODER_LAYER {
            params(&mut out, &format!("encoder.{i}.{ours}"), &format!("model.encoder.layers.{i}.{theirs}"))?;
        }
    }
    for i in 0..cfg.decoder_layers {
        for (ours, theirs) in ENCODER_LAYER.iter().chain(DECODER_CROSS) {
            params(&mut out, &format!("decoder.{i}.{ours}"), &format!("model.decoder.layers.{i}.{theirs}"))?;
        }
    }
    let extra_layer = format!("model.encoder.layers.{}.fc1.weight", cfg.encoder_layers);
    if w.has(&extra_layer)
        || w.has("model.encoder.layer_norm.weight")
        || w.has("model.encoder.layernorm_embedding.weight")
    {
        return Err(unsupported(
            &src.dir,
            "the checkpoint has more encoder layers or layer norms than config.json says",
        ));
    }
    Ok(out)
}

/// Imports the Marian model in `from` as a seqkd model directory `out` (created; its files are
/// written atomically, so a failed import leaves no half-written model).
pub fn import(from: &Path, out: &Path) -> Result<Imported> {
    let src = Source::open(from)?;
    let cfg = src.model_config()?;
    let decode = src.decode_config()?;
    let (src_order, src_pieces) = renumber(&from.join("vocab.json"))?;
    let (tgt_order, tgt_pieces) = if src.separate_vocabs {
        let (o, p) = renumber(&from.join("target_vocab.json"))?;
        (o, Some(p))
    } else {
        (src_order.clone(), None)
    };
    // The ids the model config promises must be the vocabulary's.
    let pad_id = src.int("pad_token_id")? as usize;
    let start =
        src.generation("decoder_start_token_id").and_then(Value::as_u64).unwrap_or(pad_id as u64) as usize;
    let eos = src.generation("eos_token_id").and_then(Value::as_u64).unwrap_or(0) as usize;
    let promised = [
        ("pad_token_id", pad_id, tgt_order[0], "<pad>"),
        ("decoder_start_token_id", start, tgt_order[1], "<pad>"),
        ("eos_token_id", eos, tgt_order[2], "</s>"),
    ];
    for (what, id, want, piece) in promised {
        if id != want {
            return Err(unsupported(
                from,
                format!("{what} {id} is not the target vocabulary's {piece} ({want})"),
            ));
        }
    }
    let tensors = convert_weights(&src, &cfg, &src_order, &tgt_order)?;
    let read = |name: &str| std::fs::read(from.join(name)).map_err(io_err(&from.join(name)));
    let specials = vec!["</s>".to_string(), "<unk>".to_string(), "<pad>".to_string()];
    let spm = SpmVocab::build(&read("source.spm")?, &read("target.spm")?, src_pieces, tgt_pieces, specials)
        .map_err(|e| invalid(from, e))?;
    let vocab = Vocab::from_spm(spm);

    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut config =
        Config { model: ModelConfig::Transformer(cfg.clone()), decode: decode.clone(), ..Config::default() };
    config.data.vocab_path = None;
    config.validate()?;
    let mut meta = HashMap::new();
    meta.insert("imported_from".to_string(), format!("marian-hf:{}", from.display()));
    write_safetensors(&out.join(BEST_FILE), &tensors, meta).map_err(|e| Error::Invalid(e.to_string()))?;
    vocab.save(&out.join(VOCAB_FILE))?;
    let config_path = out.join(CONFIG_FILE);
    seqkd_text::atomic_write(&config_path, config.to_toml().as_bytes()).map_err(io_err(&config_path))?;
    let parameters = tensors.iter().map(|t| t.3.len() / 4).sum();
    Ok(Imported { config: cfg, src_vocab: vocab.src_len(), tgt_vocab: vocab.len(), parameters, decode })
}
