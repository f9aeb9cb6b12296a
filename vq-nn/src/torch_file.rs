//! The PyTorch checkpoint format of `torch.save` since PyTorch 1.6: a zip archive holding
//! `<root>/data.pkl` (the pickled object), `<root>/byteorder` and one member
//! `<root>/data/<key>` per storage. A tensor is pickled as
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, where `storage` is the
//! persistent id `("storage", torch.<Type>Storage, key, location, numel)`; parameters wrap it in
//! `torch._utils._rebuild_parameter`. This module turns the archive into a flat index
//! `"a.b.weight" → (dtype, shape, strides, byte range)`: nested dicts (a training checkpoint's
//! `{"model": ..., "ema": ...}`) give dotted keys, other values are skipped.

use std::collections::BTreeMap;

use candle_core::DType;

use crate::pickle::{self, Obj, Value};
use crate::stored_tensor::StoredTensor;
use crate::zip_archive::{self, ZipEntry};

fn storage_dtype(class: &str) -> Result<DType, String> {
    Ok(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "ByteStorage" | "BoolStorage" => DType::U8,
        other => return Err(format!("storage type torch.{other} is not supported")),
    })
}

fn usize_list(v: &Obj, what: &str) -> Result<Vec<usize>, String> {
    v.as_seq()
        .ok_or_else(|| format!("{what} is not a tuple"))?
        .iter()
        .map(|x| {
            x.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| format!("{what} holds a non-integer or negative value"))
        })
        .collect()
}

struct Archive<'a> {
    root: String,
    members: BTreeMap<&'a str, &'a ZipEntry>,
    file_len: usize,
}

impl Archive<'_> {
    /// A tensor from the arguments of `_rebuild_tensor_v2`.
    fn tensor(&self, args: &Obj) -> Result<StoredTensor, String> {
        let args = args.as_seq().ok_or("tensor arguments are not a tuple")?;
        if args.len() < 4 {
            return Err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
        }
        let Value::PersistentId(id) = &args[0].value else {
            return Err("tensor storage is not a persistent id".into());
        };
        let id = id.as_seq().ok_or("storage id is not a tuple")?;
        if id.len() < 3 || id[0].as_str() != Some("storage") {
            return Err("storage id is not (\"storage\", type, key, ...)".into());
        }
        let (module, class) = id[1].as_global().ok_or("storage type is not a global")?;
        if !module.starts_with("torch") {
            return Err(format!(
                "storage type {module}.{class} is not a torch storage"
            ));
        }
        let dtype = storage_dtype(class)?;
        let key = match &id[2].value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => return Err("storage key is not a string".into()),
        };
        let offset = args[1]
            .as_int()
            .and_then(|o| usize::try_from(o).ok())
            .ok_or("storage offset is not a non-negative integer")?;
        let shape = usize_list(&args[2], "tensor size")?;
        let strides = usize_list(&args[3], "tensor stride")?;
        if shape.len() != strides.len() {
            return Err(format!(
                "size {shape:?} and stride {strides:?} have different ranks"
            ));
        }
        let name = format!("{}/data/{key}", self.root);
        let member = self
            .members
            .get(name.as_str())
            .ok_or_else(|| format!("storage {name} is not in the archive"))?;
        if member.method != 0 {
            return Err(format!(
                "storage {name} is compressed (method {}); PyTorch stores storages uncompressed",
                member.method
            ));
        }
        let start = usize::try_from(member.data_start).map_err(|_| "storage offset overflow")?;
        let len = usize::try_from(member.size).map_err(|_| "storage size overflow")?;
        StoredTensor::new(
            dtype,
            shape,
            strides,
            start,
            offset,
            start.checked_add(len).ok_or("storage end overflow")?,
            self.file_len,
        )
    }

    /// `callable(*args)` where it rebuilds a tensor; other calls hold no weights.
    fn reduce(
        &self,
        callable: &Obj,
        args: &Obj,
        prefix: &str,
        out: &mut BTreeMap<String, StoredTensor>,
    ) -> Result<(), String> {
        match callable.as_global() {
            Some(("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor")) => {
                let t = self
                    .tensor(args)
                    .map_err(|e| format!("tensor {prefix}: {e}"))?;
                out.insert(prefix.to_string(), t);
            }
            Some(("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")) => {
                if let Some(first) = args.as_seq().and_then(|a| a.first()) {
                    self.collect(first, prefix, out)?;
                }
            }
            Some(("torch._tensor", "_rebuild_from_type_v2")) => {
                // (func, type, args, state): `func(*args)`, then a cast to `type`.
                if let Some([func, _, inner, ..]) = args.as_seq() {
                    self.reduce(func, inner, prefix, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn collect(
        &self,
        obj: &Obj,
        prefix: &str,
        out: &mut BTreeMap<String, StoredTensor>,
    ) -> Result<(), String> {
        match &obj.value {
            Value::Dict(items) => {
                for (k, v) in items {
                    let key = match &k.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    let key = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    self.collect(v, &key, out)?;
                }
            }
            Value::Reduce { callable, args } => self.reduce(callable, args, prefix, out)?,
            Value::Build { object, .. } => self.collect(object, prefix, out)?,
            _ => {}
        }
        Ok(())
    }
}

/// The tensors of the PyTorch zip checkpoint `bytes`.
pub(crate) fn index(bytes: &[u8]) -> Result<BTreeMap<String, StoredTensor>, String> {
    if bytes.starts_with(&[0x80]) {
        return Err(
            "this is a legacy (pre-1.6, non-zip) torch.save file; re-save it with a current PyTorch"
                .into(),
        );
    }
    let entries = zip_archive::entries(bytes)?;
    let pkl = entries
        .iter()
        .find(|e| e.name.ends_with("/data.pkl") || e.name == "data.pkl")
        .ok_or("the archive has no data.pkl: not a PyTorch checkpoint")?;
    if pkl.method != 0 {
        return Err("data.pkl is compressed; PyTorch stores it uncompressed".into());
    }
    let root = pkl
        .name
        .strip_suffix("data.pkl")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    if let Some(order) = entries
        .iter()
        .find(|e| e.name == format!("{root}/byteorder"))
    {
        let s = order.data_start as usize;
        let text = s
            .checked_add(order.size as usize)
            .and_then(|end| bytes.get(s..end))
            .unwrap_or(b"");
        if text != b"little" {
            return Err(format!(
                "byte order {:?} is not supported (only little-endian)",
                String::from_utf8_lossy(text)
            ));
        }
    }
    let start = pkl.data_start as usize;
    let pickled = start
        .checked_add(pkl.size as usize)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| format!("{}: its data runs past the end of the file", pkl.name))?;
    let obj = pickle::parse(pickled).map_err(|e| format!("{}: {e}", pkl.name))?;
    let archive = Archive {
        root,
        members: entries.iter().map(|e| (e.name.as_str(), e)).collect(),
        file_len: bytes.len(),
    };
    let mut out = BTreeMap::new();
    archive.collect(&obj, "", &mut out)?;
    Ok(out)
}
