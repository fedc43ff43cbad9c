//! llama.cpp's tensor names against HF's, per architecture family.
//!
//! The families disagree on one name: llama.cpp's `ffn_norm` is the norm in front of the
//! MLP, which HF calls `post_attention_layernorm` in Llama but `pre_feedforward_layernorm`
//! in Gemma (whose `post_attention_layernorm` normalises the attention *output*).

/// HF module (under `model.layers.N.`) and llama.cpp module (under `blk.N.`), both families.
const SHARED: &[(&str, &str)] = &[
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
];

const LLAMA: &[(&str, &str)] = &[("post_attention_layernorm", "ffn_norm")];

const GEMMA: &[(&str, &str)] = &[
    ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
];

/// Tensors outside the layers, the same in every family.
const FIXED: &[(&str, &str)] = &[
    ("model.embed_tokens.weight", "token_embd.weight"),
    ("model.norm.weight", "output_norm.weight"),
    ("lm_head.weight", "output.weight"),
];

/// The name table of one GGUF architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufNaming {
    family: &'static [(&'static str, &'static str)],
}

impl GgufNaming {
    /// The table for `general.architecture` (`llama`, `qwen2`, `gemma2`, `gemma3`, ...).
    pub fn for_architecture(arch: &str) -> Self {
        let family = if arch.starts_with("gemma") {
            GEMMA
        } else {
            LLAMA
        };
        Self { family }
    }

    fn modules(&self) -> impl Iterator<Item = &(&'static str, &'static str)> {
        SHARED.iter().chain(self.family)
    }

    /// HF name -> llama.cpp name (`model.layers.3.mlp.up_proj.weight` -> `blk.3.ffn_up.weight`).
    pub fn to_gguf(&self, hf: &str) -> Option<String> {
        if let Some((_, g)) = FIXED.iter().find(|(h, _)| *h == hf) {
            return Some(g.to_string());
        }
        let (layer, module, suffix) = split_layer_name(hf.strip_prefix("model.layers.")?)?;
        let (_, g) = self.modules().find(|(h, _)| *h == module)?;
        Some(format!("blk.{layer}.{g}.{suffix}"))
    }

    /// llama.cpp name -> HF name (the inverse of [`Self::to_gguf`]).
    pub fn to_hf(&self, gguf: &str) -> Option<String> {
        if let Some((h, _)) = FIXED.iter().find(|(_, g)| *g == gguf) {
            return Some(h.to_string());
        }
        let (layer, module, suffix) = split_layer_name(gguf.strip_prefix("blk.")?)?;
        let (h, _) = self.modules().find(|(_, g)| *g == module)?;
        Some(format!("model.layers.{layer}.{h}.{suffix}"))
    }
}

/// `3.mlp.up_proj.weight` -> `(3, "mlp.up_proj", "weight")`.
fn split_layer_name(rest: &str) -> Option<(usize, &str, &str)> {
    let (layer, rest) = rest.split_once('.')?;
    let layer = layer.parse::<usize>().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    Some((layer, module, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_inverse() {
        let llama = GgufNaming::for_architecture("llama");
        for hf in [
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight",
            "model.layers.12.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.bias",
            "model.layers.3.mlp.down_proj.weight",
            "model.layers.29.post_attention_layernorm.weight",
        ] {
            let g = llama.to_gguf(hf).unwrap();
            assert_eq!(llama.to_hf(&g).as_deref(), Some(hf));
        }
        assert_eq!(llama.to_gguf("model.layers.x.mlp.up_proj.weight"), None);
        assert_eq!(
            llama.to_gguf("model.layers.0.self_attn.q_norm.weight"),
            None
        );
    }

    #[test]
    fn gemma_norms_have_their_own_names() {
        let gemma = GgufNaming::for_architecture("gemma3");
        let pairs = [
            (
                "model.layers.2.pre_feedforward_layernorm.weight",
                "blk.2.ffn_norm.weight",
            ),
            (
                "model.layers.2.post_attention_layernorm.weight",
                "blk.2.post_attention_norm.weight",
            ),
            (
                "model.layers.2.post_feedforward_layernorm.weight",
                "blk.2.post_ffw_norm.weight",
            ),
            (
                "model.layers.2.self_attn.q_norm.weight",
                "blk.2.attn_q_norm.weight",
            ),
            (
                "model.layers.2.input_layernorm.weight",
                "blk.2.attn_norm.weight",
            ),
        ];
        for (hf, g) in pairs {
            assert_eq!(gemma.to_gguf(hf).as_deref(), Some(g));
            assert_eq!(gemma.to_hf(g).as_deref(), Some(hf));
        }
    }
}
