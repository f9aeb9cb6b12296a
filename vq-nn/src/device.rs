//! Choosing a device by name: `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N` — the spelling of
//! `vqd --device` and of PyTorch. A device this build was not compiled for is an error that
//! says which cargo feature enables it.

use candle_core::Device;

use crate::{Error, Result};

/// The device called `name`.
pub fn parse_device(name: &str) -> Result<Device> {
    let err = |reason: String| Error::Device {
        name: name.to_string(),
        reason,
    };
    let (kind, ordinal) = match name.split_once(':') {
        Some((k, n)) => (
            k,
            n.parse::<usize>()
                .map_err(|_| err(format!("{n:?} is not a device number")))?,
        ),
        None => (name, 0),
    };
    match kind {
        "cpu" if ordinal == 0 => Ok(Device::Cpu),
        "cpu" => Err(err("there is one CPU device, cpu".into())),
        "cuda" => {
            if !candle_core::utils::cuda_is_available() {
                return Err(err(
                    "this build has no CUDA support (rebuild with `--features cuda`)".into(),
                ));
            }
            Device::new_cuda(ordinal).map_err(|e| err(e.to_string()))
        }
        "metal" => {
            if !candle_core::utils::metal_is_available() {
                return Err(err(
                    "this build has no Metal support (rebuild with `--features metal`)".into(),
                ));
            }
            Device::new_metal(ordinal).map_err(|e| err(e.to_string()))
        }
        other => Err(err(format!(
            "unknown device kind {other:?}: use cpu, cuda, cuda:N, metal or metal:N"
        ))),
    }
}

/// The name [`parse_device`] reads back: `cpu`, `cuda:N`, `metal:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_explains_failures() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert_eq!(device_name(&Device::Cpu), "cpu");
        for bad in ["gpu", "cpu:1", "cuda:x"] {
            assert!(
                matches!(parse_device(bad), Err(Error::Device { .. })),
                "{bad}"
            );
        }
        if !candle_core::utils::cuda_is_available() {
            let e = parse_device("cuda:0").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
