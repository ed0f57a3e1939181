//! Tokenizers. The bundled tasks use a character-level tokenizer over
//! printable ASCII; Hugging Face tokenizers implement the same trait.
//!
//! A sequence is `[bos] prompt completion [eos]`: the prompt always starts with
//! BOS (so an empty prompt is still a context), and a completion ends with EOS.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`, with no special tokens added.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Text of `ids`, special tokens left out.
    fn decode(&self, ids: &[u32]) -> String;
    fn vocab_size(&self) -> usize;
    fn bos_id(&self) -> u32;
    fn eos_id(&self) -> u32;
    fn pad_id(&self) -> u32;

    /// Every token that ends a completion: EOS, and any other the model lists
    /// (Llama-3 and Qwen chat models stop at several).
    fn stop_ids(&self) -> Vec<u32> {
        vec![self.eos_id()]
    }
    /// What this tokenizer is, for checkpoints: two models with equal specs share token ids.
    fn spec(&self) -> TokenizerSpec;

    /// Files a checkpoint must carry to rebuild this tokenizer: (name, contents).
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        vec![]
    }

    /// The same tokenizer writing each prompt as a user turn of its chat
    /// template (with the generation prompt), when it has one.
    fn with_chat_template(&self) -> Result<std::sync::Arc<dyn Tokenizer>> {
        Err(Error::Tokenize(
            "this tokenizer has no chat template".into(),
        ))
    }

    /// Tokens the policy never emits: padding and BOS, unless one of them is
    /// also a stop token (GPT-2-style tokenizers), which must stay reachable.
    /// Sampling and every log-probability use the softmax over the other tokens.
    fn never_sampled(&self) -> Vec<u32> {
        let stops = self.stop_ids();
        let mut ids: Vec<u32> = [self.pad_id(), self.bos_id()]
            .into_iter()
            .filter(|t| !stops.contains(t))
            .collect();
        ids.dedup();
        ids
    }

    /// `[bos] prompt`.
    fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = vec![self.bos_id()];
        ids.extend(self.encode(prompt)?);
        Ok(ids)
    }

    /// `completion [eos]`.
    fn encode_completion(&self, completion: &str) -> Result<Vec<u32>> {
        self.encode_completion_as(completion, true)
    }

    /// A completion as the policy wrote it: `completion [eos]` when it ended
    /// with EOS, `completion` alone when it was cut at the length limit. Reward
    /// models learn, score and DPO optimises this one form, so every stage
    /// sees the tokens that were sampled.
    fn encode_completion_as(&self, completion: &str, finished: bool) -> Result<Vec<u32>> {
        let mut ids = self.encode(completion)?;
        if finished {
            ids.push(self.eos_id());
        }
        Ok(ids)
    }
}

/// Identifies a tokenizer in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerSpec {
    /// One token per character of `alphabet`, after the special tokens.
    Chars { alphabet: String },
    /// A Hugging Face `tokenizer.json` (a copy travels with every checkpoint),
    /// identified by a hash of its contents, with the model's special tokens.
    HuggingFace {
        file: String,
        sha256: String,
        bos: u32,
        eos: u32,
        pad: u32,
        /// Stop tokens besides `eos` (a model that lists several EOS ids).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        more_stops: Vec<u32>,
        /// The chat template prompts are rendered with; absent: plain text after BOS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_template: Option<String>,
    },
}

/// Printable ASCII and newline: enough for every bundled task.
pub fn default_alphabet() -> String {
    let mut s: String = (b' '..=b'~').map(char::from).collect();
    s.push('\n');
    s
}

/// Character-level tokenizer: ids 0..3 are `<pad>`, `<bos>`, `<eos>`; characters follow.
#[derive(Clone, Debug)]
pub struct CharTokenizer {
    alphabet: Vec<char>,
    index: HashMap<char, u32>,
}

const PAD: u32 = 0;
const BOS: u32 = 1;
const EOS: u32 = 2;
const N_SPECIAL: u32 = 3;

impl CharTokenizer {
    pub fn new(alphabet: &str) -> Result<Self> {
        let alphabet: Vec<char> = alphabet.chars().collect();
        let mut index = HashMap::new();
        for (i, &c) in alphabet.iter().enumerate() {
            if index.insert(c, i as u32 + N_SPECIAL).is_some() {
                return Err(Error::Tokenize(format!("alphabet lists {c:?} twice")));
            }
        }
        Ok(Self { alphabet, index })
    }

    pub fn ascii() -> Self {
        Self::new(&default_alphabet()).expect("the default alphabet has no repeats")
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(pos, c)| {
                self.index.get(&c).copied().ok_or_else(|| {
                    Error::Tokenize(format!(
                        "character {c:?} (U+{:04X}) at position {pos} is not in the alphabet",
                        c as u32
                    ))
                })
            })
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter(|&&id| id >= N_SPECIAL)
            .filter_map(|&id| self.alphabet.get((id - N_SPECIAL) as usize))
            .collect()
    }

    fn vocab_size(&self) -> usize {
        self.alphabet.len() + N_SPECIAL as usize
    }

    fn bos_id(&self) -> u32 {
        BOS
    }

    fn eos_id(&self) -> u32 {
        EOS
    }

    fn pad_id(&self) -> u32 {
        PAD
    }

    fn spec(&self) -> TokenizerSpec {
        TokenizerSpec::Chars {
            alphabet: self.alphabet.iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_wraps_specials() {
        let t = CharTokenizer::ascii();
        let text = "Q: 12+30=?\nA: 42";
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids), text);
        let p = t.encode_prompt("ab").unwrap();
        assert_eq!(p[0], t.bos_id());
        let c = t.encode_completion("ab").unwrap();
        assert_eq!(*c.last().unwrap(), t.eos_id());
        assert_eq!(t.decode(&c), "ab");
        assert_eq!(t.vocab_size(), 99);
    }

    #[test]
    fn unknown_character_names_its_position() {
        let t = CharTokenizer::ascii();
        let err = t.encode("ab\u{e9}").unwrap_err().to_string();
        assert!(
            err.contains("U+00E9") && err.contains("position 2"),
            "{err}"
        );
    }
}
