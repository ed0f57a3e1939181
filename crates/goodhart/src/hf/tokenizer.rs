//! A Hugging Face `tokenizer.json` (the `tokenizers` crate) behind goodhart's
//! [`Tokenizer`] trait.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::tokenize::{Tokenizer, TokenizerSpec};

/// The file name a checkpoint keeps its Hugging Face tokenizer under.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    json: Vec<u8>,
    sha256: String,
    bos: u32,
    eos: u32,
    pad: u32,
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

    pub fn sha256(&self) -> &str {
        &self.sha256
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

    fn eos_id(&self) -> u32 {
        self.eos
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
        }
    }

    fn files(&self) -> Vec<(String, Vec<u8>)> {
        vec![(TOKENIZER_FILE.into(), self.json.clone())]
    }
}
