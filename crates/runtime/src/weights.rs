//! Typed access to a model's parameters by name, with the errors a wrong file deserves.

use std::collections::{HashMap, HashSet};

use crate::dense::DenseMatrix;
use crate::format::{FormatError, Param};
use crate::int8::QuantizedMatrix;
use crate::kernels::{Linear, Matrix};

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("the weights have no parameter {0} (is the model directory's config.toml the one it was trained with?)")]
    Missing(String),
    #[error("parameter {name} has shape {got:?}, expected {expected}")]
    Shape { name: String, got: Vec<usize>, expected: String },
    #[error("{0}")]
    Config(String),
    #[error("the weights have parameters this config does not use: {0} (is the model directory's config.toml the one it was trained with?)")]
    Unused(String),
}

/// The parameters of one model, taken out by name as the model is built.
pub struct Weights {
    params: HashMap<String, Param>,
    used: HashSet<String>,
}

impl Weights {
    pub fn new(params: HashMap<String, Param>) -> Self {
        Self { params, used: HashSet::new() }
    }

    fn take(&mut self, name: &str) -> Result<Param, WeightError> {
        // Tied matrices are read more than once, so parameters are cloned rather than removed.
        let param = self.params.get(name).cloned().ok_or_else(|| WeightError::Missing(name.to_string()))?;
        self.used.insert(name.to_string());
        Ok(param)
    }

    /// Fails if the file holds parameters the model never asked for (e.g. more layers than the
    /// config says), which would otherwise be silently ignored.
    pub fn check_all_used(&self) -> Result<(), WeightError> {
        let mut unused: Vec<&String> = self.params.keys().filter(|k| !self.used.contains(*k)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        unused.sort();
        let shown: Vec<&str> = unused.iter().take(5).map(|s| s.as_str()).collect();
        let more = if unused.len() > 5 { format!(" and {} more", unused.len() - 5) } else { String::new() };
        Err(WeightError::Unused(format!("{}{more}", shown.join(", "))))
    }

    /// A vector of exactly `len` values.
    pub fn vector_of(&mut self, name: &str, len: usize) -> Result<Vec<f32>, WeightError> {
        let v = self.vector(name)?;
        if v.len() != len {
            return Err(WeightError::Shape {
                name: name.into(),
                got: vec![v.len()],
                expected: format!("[{len}]"),
            });
        }
        Ok(v)
    }

    /// A matrix of exactly `[rows, cols]`.
    pub fn matrix_of(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix, WeightError> {
        let m = self.matrix(name)?;
        check_shape(name, &m, rows, cols)?;
        Ok(m)
    }

    /// [`Weights::linear`] with its weight checked to be `[out, inp]`.
    pub fn linear_of(&mut self, prefix: &str, out: usize, inp: usize) -> Result<Linear, WeightError> {
        let lin = self.linear(prefix)?;
        check_shape(&format!("{prefix}.weight"), &lin.weight, out, inp)?;
        Ok(lin)
    }

    /// [`Weights::linear_named`] with its weight checked to be `[out, inp]`.
    pub fn linear_named_of(
        &mut self,
        weight: &str,
        bias: Option<&str>,
        out: usize,
        inp: usize,
    ) -> Result<Linear, WeightError> {
        let lin = self.linear_named(weight, bias)?;
        check_shape(weight, &lin.weight, out, inp)?;
        Ok(lin)
    }

    pub fn vector(&mut self, name: &str) -> Result<Vec<f32>, WeightError> {
        match self.take(name)? {
            Param::F32(t) if t.shape.len() == 1 => Ok(t.data),
            Param::F32(t) => {
                Err(WeightError::Shape { name: name.into(), got: t.shape, expected: "a vector".into() })
            }
            Param::Int8 { rows, cols, .. } => Err(WeightError::Shape {
                name: name.into(),
                got: vec![rows, cols],
                expected: "an f32 vector".into(),
            }),
        }
    }

    pub fn matrix(&mut self, name: &str) -> Result<Matrix, WeightError> {
        match self.take(name)? {
            Param::F32(t) => match t.shape[..] {
                [rows, cols] => Ok(Matrix::F32(DenseMatrix::new(&t.data, rows, cols))),
                _ => Err(WeightError::Shape { name: name.into(), got: t.shape, expected: "a matrix".into() }),
            },
            Param::Int8 { rows, cols, q, scales } => {
                Ok(Matrix::Int8(QuantizedMatrix::from_parts(q, scales, rows, cols)))
            }
        }
    }

    /// `prefix.weight` and, if present, `prefix.bias`.
    pub fn linear(&mut self, prefix: &str) -> Result<Linear, WeightError> {
        let bias_name = format!("{prefix}.bias");
        let bias = self.params.contains_key(&bias_name).then_some(bias_name);
        self.linear_named(&format!("{prefix}.weight"), bias.as_deref())
    }

    /// A linear layer from a weight matrix and an optional bias vector, by their names.
    pub fn linear_named(&mut self, weight: &str, bias: Option<&str>) -> Result<Linear, WeightError> {
        let weight_m = self.matrix(weight)?;
        let bias = bias.map(|b| self.vector(b).map(|v| (b, v))).transpose()?;
        if let Some((name, b)) = &bias {
            if b.len() != weight_m.rows() {
                return Err(WeightError::Shape {
                    name: name.to_string(),
                    got: vec![b.len()],
                    expected: format!("[{}]", weight_m.rows()),
                });
            }
        }
        Ok(Linear { weight: weight_m, bias: bias.map(|(_, v)| v) })
    }

    /// Several linear layers reading the same input, stacked into one (outputs concatenated).
    /// Each part must be `[out_each, inp]`, and have a bias if any part has one.
    pub fn fused_linear(
        &mut self,
        prefixes: &[String],
        out_each: usize,
        inp: usize,
    ) -> Result<Linear, WeightError> {
        let parts =
            prefixes.iter().map(|p| self.linear_of(p, out_each, inp)).collect::<Result<Vec<_>, _>>()?;
        if let Some(p) =
            prefixes.iter().zip(&parts).find(|(_, l)| l.bias.is_none() != parts[0].bias.is_none())
        {
            return Err(WeightError::Config(format!(
                "{}: some of the fused layers {prefixes:?} have a bias and some do not",
                p.0
            )));
        }
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one"));
        }
        let cols = inp;
        let rows: usize = parts.iter().map(Linear::out_dim).sum();
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            Some(parts.iter().flat_map(|p| p.bias.clone().expect("checked")).collect())
        } else {
            None
        };
        let weight = match &parts[0].weight {
            Matrix::F32(_) => {
                let data: Vec<f32> = parts
                    .iter()
                    .flat_map(|p| match &p.weight {
                        Matrix::F32(d) => d.to_row_major(),
                        Matrix::Int8(q) => {
                            let mut out = vec![0f32; q.rows * q.cols];
                            for (i, row) in out.chunks_mut(q.cols).enumerate() {
                                q.dequantize_row(i, row);
                            }
                            out
                        }
                    })
                    .collect();
                Matrix::F32(DenseMatrix::new(&data, rows, cols))
            }
            Matrix::Int8(_) => {
                let mut q = Vec::with_capacity(rows * cols);
                let mut scales = Vec::with_capacity(rows);
                for p in &parts {
                    let Matrix::Int8(m) = p.weight.quantize() else { unreachable!("quantize gives int8") };
                    q.extend_from_slice(&m.q);
                    scales.extend_from_slice(&m.scales);
                }
                Matrix::Int8(QuantizedMatrix::from_parts(q, scales, rows, cols))
            }
        };
        Ok(Linear { weight, bias })
    }
}

fn check_shape(name: &str, m: &Matrix, rows: usize, cols: usize) -> Result<(), WeightError> {
    if (m.rows(), m.cols()) != (rows, cols) {
        return Err(WeightError::Shape {
            name: name.into(),
            got: vec![m.rows(), m.cols()],
            expected: format!("[{rows}, {cols}]"),
        });
    }
    Ok(())
}
