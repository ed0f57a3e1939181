//! A Hugging Face `tokenizer.json` (the `tokenizers` crate) behind goodhart's
//! [`Tokenizer`] trait.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tokenize::{Tokenizer, TokenizerSpec};

/// The file name a checkpoint keeps its Hugging Face tokenizer under.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    json: Vec<u8>,
    sha256: String,
    bos: u32,
    eos: u32,
    pad: u32,
    /// Stop tokens besides `eos` (a list of `eos_token_id`s).
    more_stops: Vec<u32>,
    /// The model's chat template (from `tokenizer_config.json`), if it has one.
    template: Option<String>,
    /// Prompts are rendered through `template`.
    chat: bool,
}

impl HfTokenizer {
    /// Read `tokenizer.json`; `bos`, `eos` and `pad` are the model's special token ids.
    pub fn from_file(path: &Path, bos: u32, eos: u32, pad: u32) -> Result<Self> {
        let json = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(json, bos, eos, pad)
            .map_err(|e| Error::Tokenize(format!("{}: {e}", path.display())))
    }

    pub fn from_bytes(json: Vec<u8>, bos: u32, eos: u32, pad: u32) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(&json)
            .map_err(|e| Error::Tokenize(format!("not a tokenizer.json: {e}")))?;
        let sha256 = Sha256::digest(&json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let t = Self {
            inner,
            json,
            sha256,
            bos,
            eos,
            pad,
            more_stops: vec![],
            template: None,
            chat: false,
        };
        for (what, id) in [("bos", bos), ("eos", eos), ("pad", pad)] {
            if id as usize >= t.vocab_size() {
                return Err(Error::Tokenize(format!(
                    "{what} token id {id} is outside the vocabulary ({} tokens)",
                    t.vocab_size()
                )));
            }
        }
        Ok(t)
    }

    /// Stop at these tokens too (the rest of a list of EOS ids); each must be in the vocabulary.
    pub fn with_more_stops(mut self, ids: Vec<u32>) -> Result<Self> {
        if let Some(id) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(Error::Tokenize(format!(
                "eos token id {id} is outside the vocabulary ({} tokens)",
                self.vocab_size()
            )));
        }
        self.more_stops = ids.into_iter().filter(|&id| id != self.eos).collect();
        self.more_stops.sort_unstable();
        self.more_stops.dedup();
        Ok(self)
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Remember the model's chat template (used once [`Tokenizer::with_chat_template`] asks).
    pub fn with_template(mut self, template: Option<String>) -> Self {
        self.template = template;
        self
    }

    /// This tokenizer rendering prompts through `template`; the template must compile.
    pub fn chatting(mut self, template: String) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.add_template_owned("chat", template.clone())
            .map_err(|e| Error::Tokenize(format!("the chat template does not compile: {e}")))?;
        self.template = Some(template);
        self.chat = true;
        Ok(self)
    }

    /// `prompt` as one user turn of the chat template, with the generation prompt.
    pub fn render_chat(&self, prompt: &str) -> Result<String> {
        let template = self
            .template
            .as_deref()
            .ok_or_else(|| Error::Tokenize("no chat template".into()))?;
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let render = || -> std::result::Result<String, minijinja::Error> {
            env.template_from_str(template)?
                .render(minijinja::context! {
                    messages => vec![minijinja::context! { role => "user", content => prompt }],
                    add_generation_prompt => true,
                    bos_token => self.inner.id_to_token(self.bos).unwrap_or_default(),
                    eos_token => self.inner.id_to_token(self.eos).unwrap_or_default(),
                })
        };
        render().map_err(|e| Error::Tokenize(format!("chat template: {e}")))
    }

    /// The id of a token given by its text, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenize(e.to_string()))
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }

    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn bos_id(&self) -> u32 {
        self.bos
    }

    /// Plain: `[bos] prompt`. Chat: the rendered template (it places BOS itself).
    fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        if self.chat {
            return self.encode(&self.render_chat(prompt)?);
        }
        let mut ids = vec![self.bos];
        ids.extend(self.encode(prompt)?);
        Ok(ids)
    }

    fn eos_id(&self) -> u32 {
        self.eos
    }

    fn stop_ids(&self) -> Vec<u32> {
        [vec![self.eos], self.more_stops.clone()].concat()
    }

    fn pad_id(&self) -> u32 {
        self.pad
    }

    fn spec(&self) -> TokenizerSpec {
        TokenizerSpec::HuggingFace {
            file: TOKENIZER_FILE.into(),
            sha256: self.sha256.clone(),
            bos: self.bos,
            eos: self.eos,
            pad: self.pad,
            more_stops: self.more_stops.clone(),
            chat_template: self.template.clone().filter(|_| self.chat),
        }
    }

    fn files(&self) -> Vec<(String, Vec<u8>)> {
        vec![(TOKENIZER_FILE.into(), self.json.clone())]
    }

    fn with_chat_template(&self) -> Result<std::sync::Arc<dyn Tokenizer>> {
        let template = self.template.clone().ok_or_else(|| {
            Error::Tokenize("the model has no chat_template in tokenizer_config.json".into())
        })?;
        Ok(std::sync::Arc::new(self.clone().chatting(template)?))
    }
}
