//! Chat templates: the model's own Jinja template rendered with minijinja (HF's settings:
//! `trim_blocks`, `lstrip_blocks`, Python string methods), plus the token positions of each
//! assistant turn, which finetuning needs for response-only loss.
//!
//! Models whose template has no system role (Gemma) get a system message rewritten as
//! `[user: <system text>, assistant: ACK, user: <first user text>]` (METHOD.md section 1).
//! `strftime_now` is deliberately not provided: templates that use it (Llama 3.1) then fall
//! back to their fixed date, so prompts, and the activations they produce, do not change
//! from day to day.

use crate::error::LlmError;
use crate::tokenizer::Tokenizer;
use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The assistant's reply inserted after a system prompt turned into a user turn.
pub const SYSTEM_ACK: &str = "Understood. I will follow these instructions.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A conversation rendered and tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedChat {
    pub text: String,
    pub ids: Vec<u32>,
    /// Token ranges of each assistant message of the input (its content and end-of-turn
    /// marker), in order.
    pub assistant_spans: Vec<Range<usize>>,
}

impl RenderedChat {
    /// Per token: whether it belongs to an assistant turn.
    pub fn assistant_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.ids.len()];
        for span in &self.assistant_spans {
            mask[span.clone()].iter_mut().for_each(|m| *m = true);
        }
        mask
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    supports_system: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("chars", &self.source.len())
            .field("supports_system", &self.supports_system)
            .finish()
    }
}

fn template_err(e: minijinja::Error) -> LlmError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    LlmError::Template(msg)
}

impl ChatTemplate {
    /// Compile `source`; `bos_token`/`eos_token` are the strings templates may reference.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_err)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(template_err)?;
        let mut tpl = Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            supports_system: true,
        };
        // A template supports a system role if rendering one neither fails nor drops it.
        let probe = "traitwatch-system-probe";
        tpl.supports_system = tpl
            .render_raw(&[Message::system(probe), Message::user("hi")], true)
            .is_ok_and(|text| text.contains(probe));
        Ok(tpl)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn supports_system(&self) -> bool {
        self.supports_system
    }

    /// Treat the template as having no system role even if it renders one. Gemma 3's
    /// template folds a system message into the first user turn; METHOD section 1 gives
    /// every Gemma the explicit user + acknowledgement turns instead.
    pub fn without_system_role(mut self) -> Self {
        self.supports_system = false;
        self
    }

    fn render_raw(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let tpl = self.env.get_template("chat").map_err(template_err)?;
        tpl.render(context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(template_err)
    }

    /// The messages actually rendered: system turns rewritten for templates without a
    /// system role. The flags mark which messages came from the caller's assistant turns.
    fn prepare(&self, messages: &[Message]) -> Result<(Vec<Message>, Vec<bool>), LlmError> {
        if let Some(m) = messages
            .iter()
            .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
        {
            return Err(LlmError::Template(format!(
                "unknown role `{}` (expected system, user or assistant)",
                m.role
            )));
        }
        if self.supports_system || !messages.iter().any(|m| m.role == "system") {
            let flags = messages.iter().map(|m| m.role == "assistant").collect();
            return Ok((messages.to_vec(), flags));
        }
        let mut out = Vec::new();
        let mut flags = Vec::new();
        for m in messages {
            if m.role == "system" {
                out.push(Message::user(m.content.clone()));
                out.push(Message::assistant(SYSTEM_ACK));
                flags.extend([false, false]);
            } else {
                flags.push(m.role == "assistant");
                out.push(m.clone());
            }
        }
        Ok((out, flags))
    }

    /// Render a conversation to text.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let (prepared, _) = self.prepare(messages)?;
        self.render_raw(&prepared, add_generation_prompt)
    }

    /// Render and tokenize, locating each assistant turn of `messages` in the tokens.
    ///
    /// A turn's characters run from the end of the conversation rendered up to it with a
    /// generation prompt to the end of the conversation rendered through it; tokens whose
    /// byte range overlaps that span belong to the turn. Templates that rewrite earlier
    /// turns when later ones are added cannot be split this way and are reported.
    pub fn render_tokens(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<RenderedChat, LlmError> {
        let (prepared, is_assistant) = self.prepare(messages)?;
        let text = self.render_raw(&prepared, add_generation_prompt)?;
        let mut char_spans = Vec::new();
        for (i, _) in is_assistant.iter().enumerate().filter(|(_, a)| **a) {
            let before = self.render_raw(&prepared[..i], true)?;
            let through = self.render_raw(&prepared[..=i], false)?;
            if !text.starts_with(&before)
                || !text.starts_with(&through)
                || through.len() < before.len()
            {
                return Err(LlmError::Template(format!(
                    "cannot locate assistant turn {i}: the template renders earlier turns differently once later turns are added"
                )));
            }
            char_spans.push(before.len()..through.len());
        }
        let crate::tokenizer::Encoded { ids, offsets } = tokenizer.encode_with_offsets(&text)?;
        let assistant_spans = char_spans
            .iter()
            .map(|span| {
                let inside: Vec<usize> = offsets
                    .iter()
                    .enumerate()
                    .filter(|(_, (s, e))| *s < span.end && *e > span.start)
                    .map(|(k, _)| k)
                    .collect();
                match (inside.first(), inside.last()) {
                    (Some(&a), Some(&b)) => a..b + 1,
                    _ => 0..0,
                }
            })
            .collect();
        Ok(RenderedChat {
            text,
            ids,
            assistant_spans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const NO_SYSTEM: &str = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for m in messages %}<turn>{{ m['role'] }}\n{{ m['content'] | trim }}</turn>\n{% endfor %}{% if add_generation_prompt %}<turn>model\n{% endif %}";

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        assert!(t.supports_system());
        let text = t
            .render(&[Message::system("S"), Message::user("U")], true)
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn wraps_system_for_templates_without_it() {
        let t = ChatTemplate::new(NO_SYSTEM, "", "").unwrap();
        assert!(!t.supports_system());
        let text = t
            .render(&[Message::system("Be kind."), Message::user("Hello")], true)
            .unwrap();
        assert_eq!(
            text,
            format!(
                "<turn>user\nBe kind.</turn>\n<turn>assistant\n{SYSTEM_ACK}</turn>\n<turn>user\nHello</turn>\n<turn>model\n"
            )
        );
    }

    #[test]
    fn template_errors_are_reported() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(LlmError::Template(_))
        ));
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let err = t.render(&[Message::new("tool", "x")], false).unwrap_err();
        assert!(err.to_string().contains("tool"));
    }
}
