//! Reading f32 tensors back from the safetensors files the stages write (directions, SAE
//! weights, prompt means).

/// The shape and values of the f32 tensor `name`; the error names the tensor and says
/// what is wrong with it (missing, another dtype).
pub fn read_f32(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let view = st
        .tensor(name)
        .map_err(|e| format!("tensor `{name}` is missing ({e})"))?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(format!(
            "tensor `{name}` is {:?}, expected F32",
            view.dtype()
        ));
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((view.shape().to_vec(), values))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_f32_and_names_what_is_wrong() {
        let values = [1.5f32, -2.0, 0.25, 4.0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &bytes)
            .unwrap();
        let i =
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![4], &bytes).unwrap();
        let file = safetensors::serialize([("f", f), ("i", i)], None).unwrap();
        let st = safetensors::SafeTensors::deserialize(&file).unwrap();
        assert_eq!(read_f32(&st, "f").unwrap(), (vec![2, 2], values.to_vec()));
        assert!(
            read_f32(&st, "i")
                .unwrap_err()
                .contains("is I32, expected F32")
        );
        assert!(read_f32(&st, "x").unwrap_err().contains("`x` is missing"));
    }
}
