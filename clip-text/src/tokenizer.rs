//! The CLIP BPE tokenizer as transformers' `CLIPTokenizer` builds it
//! (`transformers/models/clip/tokenization_clip.py`, tokenizers backend), plus the padding and
//! the two truncation rules of the VQ-Diffusion code bases (`docs/reference-behaviour.md` §1.2):
//!
//! * model: byte-level BPE, `end_of_word_suffix = "</w>"`, unknown token `<|endoftext|>`;
//! * normaliser: `NFC → \s+ ↦ " " → lowercase` (optionally preceded by ftfy-style clean-up,
//!   [`TextCleaning`]);
//! * pre-tokeniser: split on CLIP's regex `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//!   (matches kept, the rest dropped), then GPT-2 byte-level mapping;
//! * the special tokens bos/eos/unk/pad are *added special tokens*, matched in the raw text before
//!   normalisation — with the ITHQ pad token `"!"` (id 0) this means every `!` in a prompt becomes
//!   its own token 0, exactly as in transformers (`"wow!!"` → `wow</w> ! !`, not the merged `!!`);
//! * ids: `<|startoftext|>` (49406), the BPE ids, `<|endoftext|>` (49407), then the pad id up to
//!   `model_max_length` (77).
//!
//! Files: `tokenizer.json` is used when present; otherwise the slow-tokenizer files `vocab.json` +
//! `merges.txt` (the ITHQ hub folder). Special tokens and `model_max_length` come from
//! `tokenizer_config.json` overridden by `special_tokens_map.json`, with transformers' defaults
//! (pad `<|endoftext|>`, 77) when absent.
//!
//! The empty prompt is valid: it is the "null prompt" of classifier-free guidance and tokenizes
//! to `[49406, 49407, pad, …]`.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, AddedVocabulary, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result, read_json, require_file};
use crate::text_cleaning::TextCleaning;

/// CLIP's pre-tokenisation regex (transformers' `CLIPTokenizer`, OpenAI's `SimpleTokenizer`).
pub const CLIP_SPLIT_REGEX: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// How prompts longer than `max_length` tokens are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// diffusers' `VQDiffusionPipeline._encode_prompt`: keep the first `max_length` ids (the last
    /// slot then holds an ordinary word, not `<|endoftext|>`), warn with the dropped text.
    #[default]
    DiffusersSlice,
    /// The original `clip.tokenize(truncate=True)`: keep the first `max_length` ids and overwrite
    /// the last one with `<|endoftext|>`.
    KeepEot,
}

/// The special tokens and the length of a CLIP tokenizer folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|startoftext|>`.
    pub bos: String,
    /// `<|endoftext|>`.
    pub eos: String,
    /// `<|endoftext|>`.
    pub unk: String,
    /// `"!"` in the ITHQ folder; transformers' default is `<|endoftext|>`.
    pub pad: String,
    /// `model_max_length` (77).
    pub max_length: usize,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        Self {
            bos: "<|startoftext|>".into(),
            eos: "<|endoftext|>".into(),
            unk: "<|endoftext|>".into(),
            pad: "<|endoftext|>".into(),
            max_length: 77,
        }
    }
}

fn token_field(value: &serde_json::Value, key: &str) -> Option<String> {
    match value.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => map.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

impl SpecialTokens {
    /// Reads `tokenizer_config.json` then `special_tokens_map.json` (both optional) from `folder`.
    pub fn from_pretrained(folder: &Path) -> Result<Self> {
        let mut tokens = Self::default();
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = folder.join(file);
            if !path.is_file() {
                continue;
            }
            let value: serde_json::Value = read_json(&path)?;
            for (key, slot) in [
                ("bos_token", &mut tokens.bos),
                ("eos_token", &mut tokens.eos),
                ("unk_token", &mut tokens.unk),
                ("pad_token", &mut tokens.pad),
            ] {
                if let Some(v) = token_field(&value, key) {
                    *slot = v;
                }
            }
            // transformers stores "no limit" as 1e30; CLIP's position table has 77 entries.
            if let Some(n) = value.get("model_max_length").and_then(|v| v.as_f64())
                && (1.0..1e6).contains(&n)
            {
                tokens.max_length = n as usize;
            }
        }
        Ok(tokens)
    }
}

/// The `tokenizer_config.json` key that selects the original VQ-Diffusion's tokenization
/// (see [`ClipTokenizer::from_pretrained`]).
pub const TOKENIZATION_KEY: &str = "vq_diffusion_tokenization";

/// What was cut from an over-long prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Number of ids (with `<|startoftext|>` and `<|endoftext|>`) before truncation.
    pub untruncated_len: usize,
    /// The ids that did not make it into the output (for [`Truncation::KeepEot`], the word ids
    /// displaced by the final `<|endoftext|>`).
    pub dropped_ids: Vec<u32>,
    /// `dropped_ids` decoded, special tokens skipped.
    pub dropped_text: String,
}

/// One prompt, padded to `max_length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrompt {
    /// `max_length` ids.
    pub ids: Vec<u32>,
    /// Number of ids before padding (with bos/eos, after truncation).
    pub len: usize,
    /// Set when the prompt was longer than `max_length`.
    pub truncated: Option<Truncated>,
}

/// Several prompts, each padded to the same `max_length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The prompts in order.
    pub prompts: Vec<EncodedPrompt>,
}

impl EncodedBatch {
    /// The `(batch, max_length)` id matrix as a `u32` tensor.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let width = self.prompts.first().map_or(0, |p| p.ids.len());
        let flat: Vec<u32> = self
            .prompts
            .iter()
            .flat_map(|p| p.ids.iter().copied())
            .collect();
        Ok(Tensor::from_vec(flat, (self.prompts.len(), width), device)?)
    }

    /// The ids as nested vectors.
    pub fn ids(&self) -> Vec<Vec<u32>> {
        self.prompts.iter().map(|p| p.ids.clone()).collect()
    }
}

/// The CLIP tokenizer with padding and truncation.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    /// For [`TextCleaning::Original`]: the same tokenizer without the pad token registered as a
    /// special token (OpenAI's `SimpleTokenizer` only knows `<|startoftext|>`/`<|endoftext|>`).
    original_inner: Option<Tokenizer>,
    special: SpecialTokens,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    truncation: Truncation,
    cleaning: TextCleaning,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl ClipTokenizer {
    /// Loads a `tokenizer/` folder: `tokenizer.json` if present, else `vocab.json` + `merges.txt`;
    /// special tokens from `tokenizer_config.json` / `special_tokens_map.json`.
    pub fn from_pretrained(folder: &Path) -> Result<Self> {
        if !folder.is_dir() {
            return Err(Error::MissingFile {
                folder: folder.to_owned(),
                file: "(the folder itself)".into(),
            });
        }
        let special = SpecialTokens::from_pretrained(folder)?;
        let json = folder.join("tokenizer.json");
        let tokenizer = if json.is_file() {
            Self::from_tokenizer_json(&json, special)?
        } else {
            let vocab = require_file(folder, "vocab.json").map_err(|_| Error::MissingFile {
                folder: folder.to_owned(),
                file: "tokenizer.json or vocab.json".into(),
            })?;
            let merges = require_file(folder, "merges.txt")?;
            Self::from_vocab_merges(&vocab, &merges, special)?
        };
        tokenizer.with_configured_tokenization(folder)
    }

    /// Applies `tokenizer_config.json`'s optional [`TOKENIZATION_KEY`]: `"original"` selects the
    /// original VQ-Diffusion's tokenization ([`TextCleaning::Original`] and
    /// [`Truncation::KeepEot`]), as `vqd convert` writes for the original checkpoints;
    /// transformers ignores the key.
    fn with_configured_tokenization(self, folder: &Path) -> Result<Self> {
        let path = folder.join("tokenizer_config.json");
        if !path.is_file() {
            return Ok(self);
        }
        let value: serde_json::Value = read_json(&path)?;
        match value.get(TOKENIZATION_KEY) {
            None => Ok(self),
            Some(v) if v.as_str() == Some("original") => Ok(self
                .with_cleaning(TextCleaning::Original)?
                .with_truncation(Truncation::KeepEot)),
            Some(v) if v.as_str() == Some("transformers") => Ok(self),
            Some(other) => Err(Error::Tokenizer(format!(
                "{}: {TOKENIZATION_KEY} is {other}; expected \"original\" or \"transformers\"",
                path.display()
            ))),
        }
    }

    /// Loads a serialized `tokenizers` file; the special tokens are (re-)registered as added
    /// special tokens, as transformers does when it wraps the file.
    pub fn from_tokenizer_json(path: &Path, special: SpecialTokens) -> Result<Self> {
        let failed =
            |e: &dyn std::fmt::Display| Error::Tokenizer(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| failed(&e))?;
        // The JSON is checked here first: the `tokenizers` crate panics, instead of returning an
        // error, on a syntax error inside some sections (its `decoder` reader; found by the
        // `tokenizer_files` fuzz target).
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| failed(&e))?;
        let inner = text.parse::<Tokenizer>().map_err(|e| failed(&e))?;
        Self::finish(inner, special)
    }

    /// Builds the tokenizer from the slow-tokenizer files, exactly as transformers'
    /// `CLIPTokenizer.__init__` assembles it.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, special: SpecialTokens) -> Result<Self> {
        let (vocab_s, merges_s) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&vocab_s, &merges_s)
            .unk_token(special.unk.clone())
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix("</w>".into())
            .fuse_unk(false)
            .build()
            .map_err(|e| {
                Error::Tokenizer(format!("{} + {}: {e}", vocab.display(), merges.display()))
            })?;
        let mut inner = Tokenizer::new(bpe);
        let normalizer = NormalizerSequence::new(vec![
            NFC.into(),
            Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
                .map_err(tok_err)?
                .into(),
            Lowercase.into(),
        ]);
        inner.with_normalizer(Some(normalizer)).map_err(tok_err)?;
        let split = Split::new(
            SplitPattern::Regex(CLIP_SPLIT_REGEX.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(tok_err)?;
        inner.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevel::default()));
        Self::finish(inner, special)
    }

    fn finish(mut inner: Tokenizer, special: SpecialTokens) -> Result<Self> {
        // transformers registers the pad token first, then bos/eos (unk = eos here).
        let mut added = Vec::new();
        for token in [&special.pad, &special.bos, &special.eos, &special.unk] {
            if !added.iter().any(|t: &AddedToken| &t.content == token) {
                added.push(AddedToken::from(token.clone(), true));
            }
        }
        inner.add_special_tokens(added).map_err(tok_err)?;
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| {
                Error::Tokenizer(format!("special token {token:?} is not in the vocabulary"))
            })
        };
        let (bos_id, eos_id, pad_id) = (id(&special.bos)?, id(&special.eos)?, id(&special.pad)?);
        inner.with_post_processor(Some(
            RobertaProcessing::new((special.eos.clone(), eos_id), (special.bos.clone(), bos_id))
                .trim_offsets(false)
                .add_prefix_space(false),
        ));
        if special.max_length < 2 {
            return Err(Error::Config(format!(
                "model_max_length {} leaves no room for <|startoftext|> and <|endoftext|>",
                special.max_length
            )));
        }
        Ok(Self {
            inner,
            original_inner: None,
            special,
            bos_id,
            eos_id,
            pad_id,
            truncation: Truncation::default(),
            cleaning: TextCleaning::default(),
        })
    }

    /// Chooses the truncation rule (default [`Truncation::DiffusersSlice`]).
    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    /// Chooses the text clean-up (default [`TextCleaning::Transformers`]).
    /// With [`TextCleaning::Original`] a literal pad token in the text (`"!"` for ITHQ) is
    /// byte-pair encoded like any other text, as OpenAI's `SimpleTokenizer` does.
    pub fn with_cleaning(mut self, cleaning: TextCleaning) -> Result<Self> {
        self.cleaning = cleaning;
        self.original_inner = None;
        if cleaning == TextCleaning::Original {
            let mut plain = self.inner.clone();
            plain.with_added_vocabulary(AddedVocabulary::new());
            let specials =
                [&self.special.bos, &self.special.eos].map(|t| AddedToken::from(t.clone(), true));
            plain.add_special_tokens(specials).map_err(tok_err)?;
            self.original_inner = Some(plain);
        }
        Ok(self)
    }

    /// The text clean-up in use.
    pub fn cleaning(&self) -> TextCleaning {
        self.cleaning
    }

    /// The truncation rule.
    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// The special tokens and `max_length`.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// `model_max_length` (77).
    pub fn max_length(&self) -> usize {
        self.special.max_length
    }

    /// Id of `<|startoftext|>`.
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Id of `<|endoftext|>`.
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id of the pad token (0 for ITHQ's `"!"`).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size including added tokens (49408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// `[bos] + BPE(clean(text)) + [eos]`, neither truncated nor padded.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let cleaned = self.cleaning.apply(text);
        let tokenizer = self.original_inner.as_ref().unwrap_or(&self.inner);
        let encoding = tokenizer.encode(cleaned.as_str(), false).map_err(tok_err)?;
        let mut ids = Vec::with_capacity(encoding.len() + 2);
        ids.push(self.bos_id);
        ids.extend_from_slice(encoding.get_ids());
        ids.push(self.eos_id);
        Ok(ids)
    }

    /// Decodes ids to text the way transformers' `CLIPTokenizer.decode` does (`</w>` → space).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self
            .inner
            .decode(ids, skip_special_tokens)
            .map_err(tok_err)?;
        Ok(text.replace("</w>", " ").trim().to_owned())
    }

    /// One prompt, truncated by the configured rule and padded to `max_length`.
    pub fn encode(&self, text: &str) -> Result<EncodedPrompt> {
        let mut ids = self.tokenize(text)?;
        let max = self.special.max_length;
        let mut truncated = None;
        if ids.len() > max {
            let untruncated_len = ids.len();
            let dropped_ids = match self.truncation {
                Truncation::DiffusersSlice => ids.split_off(max),
                Truncation::KeepEot => {
                    let dropped = ids[max - 1..untruncated_len - 1].to_vec();
                    ids.truncate(max);
                    ids[max - 1] = self.eos_id;
                    dropped
                }
            };
            let dropped_text = self.decode(&dropped_ids, true)?;
            truncated = Some(Truncated {
                untruncated_len,
                dropped_ids,
                dropped_text,
            });
        }
        let len = ids.len();
        ids.resize(max, self.pad_id);
        Ok(EncodedPrompt {
            ids,
            len,
            truncated,
        })
    }

    /// Several prompts (each handled as by [`ClipTokenizer::encode`]).
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<EncodedBatch> {
        let prompts = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedBatch { prompts })
    }
}
