//! Typed access to a model's parameters by name, with the errors a wrong file deserves.

use std::collections::HashMap;

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
}

/// The parameters of one model, taken out by name as the model is built.
pub struct Weights {
    params: HashMap<String, Param>,
}

impl Weights {
    pub fn new(params: HashMap<String, Param>) -> Self {
        Self { params }
    }

    fn take(&mut self, name: &str) -> Result<Param, WeightError> {
        // Tied matrices are read more than once, so parameters are cloned rather than removed.
        self.params.get(name).cloned().ok_or_else(|| WeightError::Missing(name.to_string()))
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
    pub fn fused_linear(&mut self, prefixes: &[String]) -> Result<Linear, WeightError> {
        let parts = prefixes.iter().map(|p| self.linear(p)).collect::<Result<Vec<_>, _>>()?;
        if parts.len() == 1 {
            return Ok(parts.into_iter().next().expect("one"));
        }
        let cols = parts[0].in_dim();
        if let Some(p) = parts.iter().zip(prefixes).find(|(p, _)| p.in_dim() != cols) {
            return Err(WeightError::Shape {
                name: format!("{}.weight", p.1),
                got: vec![p.0.out_dim(), p.0.in_dim()],
                expected: format!("[_, {cols}]"),
            });
        }
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
