//! Named tensors from PyTorch checkpoints (`torch.save`, both the legacy
//! pre-1.6 stream and the zip archive) and from safetensors files.
//!
//! The pickle parsing is `pytorch-reader`'s (the Burn project's reader,
//! with no PyTorch or Burn dependency): it reads both containers, honours
//! each tensor's strides and storage offset (most convolution weights in
//! the EfficientNet-Lite checkpoints are non-contiguous views), and bounds
//! every length a file declares. This module turns its tensors into
//! `tch` tensors and its errors into ours, naming the file and the tensor.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The tensors of a checkpoint, by name.
#[derive(Debug)]
pub struct PretrainedWeights {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl PretrainedWeights {
    /// Read every tensor of a `.pth`/`.pt`/`.bin` PyTorch checkpoint or a
    /// `.safetensors` file (chosen by content, not by extension), as f32
    /// for floating tensors and i64 for integer ones.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadPretrained { path: path.to_path_buf(), reason };
        let head = read_head(path)?;
        let tensors = if is_safetensors(&head) {
            Tensor::read_safetensors(path)
                .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?
                .into_iter()
                .collect()
        } else {
            read_pytorch(path)?
        };
        if tensors.is_empty() {
            return Err(bad("holds no tensors".into()));
        }
        Ok(Self { path: path.to_path_buf(), tensors })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether it holds no tensor (never true for a checkpoint that
    /// [`PretrainedWeights::read`] returned).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The tensor `name`, or an error naming the file and the tensor.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| Error::BadPretrained {
            path: self.path.clone(),
            reason: format!("has no tensor {name}"),
        })
    }

    /// The tensor `name` with shape `shape`, or an error naming the file,
    /// the tensor and both shapes.
    pub fn get_shaped(&self, name: &str, shape: &[i64]) -> Result<&Tensor> {
        let t = self.get(name)?;
        if t.size() != shape {
            return Err(Error::BadPretrained {
                path: self.path.clone(),
                reason: format!("tensor {name} has shape {:?}, expected {shape:?}", t.size()),
            });
        }
        Ok(t)
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    Ok(head)
}

/// A safetensors file starts with a little-endian u64 header length and
/// then the JSON header's `{`.
fn is_safetensors(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{'
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bad = |reason: String| Error::BadPretrained { path: path.to_path_buf(), reason };
    let reader = pytorch_reader::PytorchReader::new(path)
        .map_err(|e| bad(format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, t) in reader.into_tensors() {
        let bytes = t.read().map_err(|e| bad(format!("tensor {name}: cannot read its data: {e}")))?;
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        let tensor =
            to_tch(t.dtype(), &bytes, &shape).map_err(|reason| bad(format!("tensor {name}: {reason}")))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// Little-endian bytes of a row-major tensor into a `tch` tensor: floats
/// as f32, integers and booleans as i64.
fn to_tch(dtype: pytorch_reader::DType, bytes: &[u8], shape: &[i64]) -> std::result::Result<Tensor, String> {
    use pytorch_reader::DType as D;
    let kind = match dtype {
        D::F64 => Kind::Double,
        D::F32 => Kind::Float,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::Bool => Kind::Bool,
        D::U64 | D::U32 | D::U16 => return Err(format!("unsupported element type {dtype:?}")),
    };
    let elems: i64 = shape.iter().product();
    if bytes.len() != elems as usize * dtype.size() {
        return Err(format!("{} bytes for shape {shape:?} of {dtype:?}", bytes.len()));
    }
    let t = Tensor::f_from_data_size(bytes, shape, kind).map_err(|e| e.to_string())?;
    let target = if t.is_floating_point() { Kind::Float } else { Kind::Int64 };
    Ok(if t.kind() == target { t } else { t.to_kind(target) })
}
