//! Text clean-up before BPE, in the three flavours that CLIP tokenisers in the VQ-Diffusion world use:
//!
//! * [`TextCleaning::Transformers`] — transformers ≥ 5 `CLIPTokenizer` (tokenizers backend; also the
//!   "fast" tokenizer of transformers 4): the normaliser `NFC → \s+ ↦ " " → lowercase` only,
//!   `transformers/models/clip/tokenization_clip.py`. This is what the golden fixtures record.
//! * [`TextCleaning::Ftfy`] — transformers 4's slow `CLIPTokenizer` with `ftfy` installed:
//!   `whitespace_clean(ftfy.fix_text(text)).lower()`.
//! * [`TextCleaning::Original`] — microsoft/VQ-Diffusion's text codec: its `tokenize` lower-cases
//!   the prompt, then its `SimpleTokenizer` runs `whitespace_clean(basic_clean(text)).lower()`,
//!   `basic_clean` = `ftfy.fix_text` then `html.unescape` twice, then `strip`
//!   (`image_synthesis/modeling/modules/clip/{clip,simple_tokenizer}.py`). Lower-casing first
//!   matters for mojibake: `cafÃ©` becomes `cafã©`, which ftfy no longer repairs.
//!
//! [`ftfy_fix_text`] re-implements the ftfy 6 fixers that change CLIP tokens, in ftfy's order
//! (`ftfy/__init__.py::fix_and_explain`, tables from `ftfy/chardata.py`): HTML entities (only in
//! lines before the first `<`, as ftfy's `unescape_html="auto"`), C1 controls read as
//! Windows-1252, Latin ligatures, full/half-width forms, curly quotes, line breaks, terminal escapes,
//! control characters, NFC — repeated until nothing changes. Mojibake (`fix_encoding`) is handled
//! only in its commonest form: a line whose characters all encode to Windows-1252 / Latin-1 bytes
//! that form valid UTF-8 and contain a UTF-8 lead/continuation pair (`cafÃ©` → `café`); ftfy's
//! per-span badness heuristics and other encodings are not re-implemented, nor the long tail of the
//! HTML5 entity table (the common named entities and every numeric reference are handled).

use tokenizers::NormalizedString;

/// Which reference's text clean-up runs before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextCleaning {
    /// transformers ≥ 5 (`NFC`, whitespace runs → one space, lowercase). The default.
    #[default]
    Transformers,
    /// transformers 4 slow tokenizer with ftfy: `whitespace_clean(ftfy.fix_text(t)).lower()`.
    Ftfy,
    /// The original VQ-Diffusion text codec: lowercase, then OpenAI CLIP's `SimpleTokenizer`
    /// (ftfy, `html.unescape` ×2, whitespace clean-up, lowercase).
    Original,
}

impl TextCleaning {
    /// Applies the clean-up that happens *before* the tokenizer's own normaliser (which always
    /// does `NFC`, whitespace collapsing and lowercasing afterwards).
    pub fn apply(self, text: &str) -> String {
        match self {
            TextCleaning::Transformers => text.to_owned(),
            TextCleaning::Ftfy => whitespace_clean(&ftfy_fix_text(text)).to_lowercase(),
            TextCleaning::Original => {
                let fixed = ftfy_fix_text(&text.to_lowercase());
                let once = unescape_entities(&fixed, true);
                let twice = unescape_entities(&once, true);
                whitespace_clean(twice.trim()).to_lowercase()
            }
        }
    }
}

/// Python's `str.isspace` (Unicode `White_Space` plus the separators U+001C–U+001F).
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re.sub(r"\s+", " ", text).strip()`.
pub fn whitespace_clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if is_py_space(c) {
            pending_space = true;
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

/// The ftfy 6 subset described in the module docs (`ftfy.fix_text` with default settings).
pub fn ftfy_fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        let mut current = segment.to_owned();
        for _ in 0..16 {
            let next = fix_segment(&current, unescape);
            if next == current {
                break;
            }
            current = next;
        }
        out.push_str(&current);
    }
    out
}

fn fix_segment(text: &str, unescape: bool) -> String {
    let mut t = if unescape {
        unescape_entities(text, false)
    } else {
        text.to_owned()
    };
    t = fix_utf8_mojibake(&t);
    t = t.chars().map(fix_c1).collect();
    t = fix_ligatures(&t);
    t = fix_width(&t);
    t = t.chars().map(uncurl).collect();
    t = fix_line_breaks(&t);
    t = remove_terminal_escapes(&t);
    t.retain(|c| !is_removed_control(c));
    nfc(&t)
}

fn nfc(text: &str) -> String {
    let mut n = NormalizedString::from(text);
    n.nfc();
    n.get().to_owned()
}

fn nfkc(text: &str) -> String {
    let mut n = NormalizedString::from(text);
    n.nfkc();
    n.get().to_owned()
}

/// `sloppy-windows-1252` decoding of one byte 0x80..=0x9F (undefined bytes map to themselves).
fn cp1252(c: char) -> char {
    const TABLE: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match c as u32 {
        0x80..=0x9f => TABLE[(c as u32 - 0x80) as usize],
        _ => c,
    }
}

/// The byte a character has in "sloppy" Windows-1252 (Latin-1 where cp1252 is undefined).
fn sloppy_cp1252_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if code < 0x80 || (0xa0..=0xff).contains(&code) {
        return Some(code as u8);
    }
    (0x80u8..=0x9f).find(|&b| cp1252(char::from(b)) == c)
}

/// Re-decodes text that is UTF-8 read as Windows-1252 (`Ã©` → `é`), when the whole text maps
/// back to bytes that are valid UTF-8 and actually contain a multi-byte sequence.
fn fix_utf8_mojibake(text: &str) -> String {
    let looks_mojibake = text.chars().zip(text.chars().skip(1)).any(|(a, b)| {
        ('\u{c2}'..='\u{f4}').contains(&a)
            && sloppy_cp1252_byte(b).is_some_and(|byte| (0x80..=0xbf).contains(&byte))
    });
    if !looks_mojibake {
        return text.to_owned();
    }
    let bytes: Option<Vec<u8>> = text.chars().map(sloppy_cp1252_byte).collect();
    match bytes.map(String::from_utf8) {
        Some(Ok(fixed)) => fixed,
        _ => text.to_owned(),
    }
}

fn fix_c1(c: char) -> char {
    cp1252(c)
}

fn fix_ligatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let rep = match c {
            'Ĳ' => "IJ",
            'ĳ' => "ij",
            'ŉ' => "ʼn",
            'Ǳ' => "DZ",
            'ǲ' => "Dz",
            'ǳ' => "dz",
            'Ǆ' => "DŽ",
            'ǅ' => "Dž",
            'ǆ' => "dž",
            'Ǉ' => "LJ",
            'ǈ' => "Lj",
            'ǉ' => "lj",
            'Ǌ' => "NJ",
            'ǋ' => "Nj",
            'ǌ' => "nj",
            'ﬀ' => "ff",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ﬃ' => "ffi",
            'ﬄ' => "ffl",
            'ﬅ' => "ſt",
            'ﬆ' => "st",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(rep);
    }
    out
}

/// U+3000 → space; U+FF01..U+FFEF → their NFKC form (ftfy's `WIDTH_MAP`).
fn fix_width(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c as u32 {
            0x3000 => out.push(' '),
            0xff01..=0xffef => out.push_str(&nfkc(c.encode_utf8(&mut [0; 4]))),
            _ => out.push(c),
        }
    }
    out
}

fn uncurl(c: char) -> char {
    match c {
        '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => '\n',
            _ => c,
        })
        .collect()
}

/// Removes `ESC [ (digits|;)* letter` sequences (ftfy's `ANSI_RE`).
fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\u{1b}' && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ';') {
                j += 1;
            }
            if j < chars.len() && chars[j].is_ascii_alphabetic() {
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// ftfy's `CONTROL_CHARS`: C0 controls except tab/newline/form feed/CR, DEL, deprecated
/// format characters U+206A–U+206F, BOM, interlinear annotations U+FFF9–U+FFFC.
fn is_removed_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffc)
}

/// Common HTML5 named entities (name without `&`/`;`).
const ENTITIES: &[(&str, &str)] = &[
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", "\u{a0}"),
    ("copy", "©"),
    ("reg", "®"),
    ("trade", "™"),
    ("hellip", "…"),
    ("mdash", "—"),
    ("ndash", "–"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("sbquo", "‚"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("bdquo", "„"),
    ("laquo", "«"),
    ("raquo", "»"),
    ("lsaquo", "‹"),
    ("rsaquo", "›"),
    ("deg", "°"),
    ("plusmn", "±"),
    ("times", "×"),
    ("divide", "÷"),
    ("euro", "€"),
    ("pound", "£"),
    ("yen", "¥"),
    ("cent", "¢"),
    ("sect", "§"),
    ("para", "¶"),
    ("middot", "·"),
    ("bull", "•"),
    ("micro", "µ"),
    ("iexcl", "¡"),
    ("iquest", "¿"),
    ("frac12", "½"),
    ("frac14", "¼"),
    ("frac34", "¾"),
    ("sup2", "²"),
    ("sup3", "³"),
    ("shy", "\u{ad}"),
    ("ensp", "\u{2002}"),
    ("emsp", "\u{2003}"),
    ("thinsp", "\u{2009}"),
    ("zwj", "\u{200d}"),
    ("zwnj", "\u{200c}"),
    ("hearts", "♥"),
    ("star", "☆"),
    ("check", "✓"),
    ("checkmark", "✓"),
    ("rarr", "→"),
    ("larr", "←"),
    ("harr", "↔"),
    ("uarr", "↑"),
    ("darr", "↓"),
    ("infin", "∞"),
    ("ne", "≠"),
    ("le", "≤"),
    ("ge", "≥"),
    ("szlig", "ß"),
    ("aelig", "æ"),
    ("AElig", "Æ"),
    ("oslash", "ø"),
    ("Oslash", "Ø"),
    ("aring", "å"),
    ("Aring", "Å"),
    ("ccedil", "ç"),
    ("Ccedil", "Ç"),
    ("ntilde", "ñ"),
    ("Ntilde", "Ñ"),
    ("eth", "ð"),
    ("thorn", "þ"),
    ("oelig", "œ"),
    ("OElig", "Œ"),
    ("alpha", "α"),
    ("beta", "β"),
    ("gamma", "γ"),
    ("delta", "δ"),
    ("pi", "π"),
    ("mu", "μ"),
    ("lambda", "λ"),
    ("sigma", "σ"),
    ("omega", "ω"),
    ("theta", "θ"),
];

/// Vowels with the accents that have HTML entities (`&eacute;` etc.), lower and upper case.
fn accented(name: &str) -> Option<String> {
    const ACCENTS: [(&str, [&str; 5], [&str; 5]); 6] = [
        (
            "acute",
            ["á", "é", "í", "ó", "ú"],
            ["Á", "É", "Í", "Ó", "Ú"],
        ),
        (
            "grave",
            ["à", "è", "ì", "ò", "ù"],
            ["À", "È", "Ì", "Ò", "Ù"],
        ),
        ("circ", ["â", "ê", "î", "ô", "û"], ["Â", "Ê", "Î", "Ô", "Û"]),
        ("uml", ["ä", "ë", "ï", "ö", "ü"], ["Ä", "Ë", "Ï", "Ö", "Ü"]),
        ("tilde", ["ã", "", "", "õ", ""], ["Ã", "", "", "Õ", ""]),
        ("ring", ["å", "", "", "", ""], ["Å", "", "", "", ""]),
    ];
    let mut chars = name.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let vowel = "aeiou".find(first.to_ascii_lowercase())?;
    for (accent, lower, upper) in ACCENTS {
        if rest == accent {
            let s = if first.is_ascii_uppercase() {
                upper[vowel]
            } else {
                lower[vowel]
            };
            return (!s.is_empty()).then(|| s.to_owned());
        }
    }
    match name {
        "yacute" => Some("ý".into()),
        "Yacute" => Some("Ý".into()),
        "yuml" => Some("ÿ".into()),
        _ => None,
    }
}

fn named_entity(name: &str) -> Option<String> {
    if let Some((_, v)) = ENTITIES.iter().find(|(n, _)| *n == name) {
        return Some((*v).to_owned());
    }
    if let Some(v) = accented(name) {
        return Some(v);
    }
    // ftfy also decodes ALL-CAPS spellings of lowercase entities (`&EACUTE;` → `É`).
    if name.len() > 1
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        let lower = name.to_ascii_lowercase();
        let value = ENTITIES
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| accented(&lower))?;
        return Some(value.to_uppercase());
    }
    None
}

/// `html.unescape` for one numeric reference body (`#123` / `#x7b`).
fn numeric_entity(body: &str) -> Option<char> {
    let digits = body.strip_prefix('#')?;
    let code = if let Some(hex) = digits.strip_prefix(['x', 'X']) {
        u32::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<u32>().ok()?
    };
    Some(match code {
        0x80..=0x9f => cp1252(char::from_u32(code)?),
        0 | 0xd800..=0xdfff => '\u{fffd}',
        c if c > 0x10ffff => '\u{fffd}',
        c => char::from_u32(c)?,
    })
}

/// Replaces `&name;` and `&#N;`/`&#xH;` (1–24 alphanumerics, ftfy's `HTML_ENTITY_RE`); with
/// `lenient`, also the semicolon-less `&amp`, `&lt`, `&gt`, `&quot` that `html.unescape` accepts.
fn unescape_entities(text: &str, lenient: bool) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let body_len = after
            .char_indices()
            .take_while(|&(i, c)| i < 25 && (c.is_ascii_alphanumeric() || (i == 0 && c == '#')))
            .count();
        let body = &after[..body_len];
        let has_semicolon = after[body_len..].starts_with(';');
        let decoded = if has_semicolon && !body.is_empty() {
            if body.starts_with('#') {
                numeric_entity(body).map(String::from)
            } else {
                named_entity(body)
            }
        } else {
            None
        };
        if let Some(value) = decoded {
            out.push_str(&value);
            rest = &after[body_len + 1..];
            continue;
        }
        if lenient
            && let Some((name, value)) = [("amp", "&"), ("lt", "<"), ("gt", ">"), ("quot", "\"")]
                .iter()
                .find(|(n, _)| body.starts_with(n))
        {
            out.push_str(value);
            rest = &after[name.len()..];
            continue;
        }
        out.push('&');
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_collapsed_and_stripped() {
        assert_eq!(whitespace_clean("  a \t\n b\u{a0}\u{3000}c  "), "a b c");
        assert_eq!(whitespace_clean(""), "");
        assert_eq!(whitespace_clean(" \n "), "");
    }

    #[test]
    fn ftfy_fixes_that_change_clip_tokens() {
        assert_eq!(
            ftfy_fix_text("&lt;3 caf&eacute; &amp; tea"),
            "<3 café & tea"
        );
        // A `<` in the line turns HTML unescaping off, as ftfy's "auto" mode does.
        assert_eq!(ftfy_fix_text("<b>&amp;</b>"), "<b>&amp;</b>");
        assert_eq!(ftfy_fix_text("\u{fb01}sh ＡＢＣ！\u{3000}x"), "fish ABC! x");
        assert_eq!(
            ftfy_fix_text("\u{201c}hi\u{201d} it\u{2019}s"),
            "\"hi\" it's"
        );
        assert_eq!(
            ftfy_fix_text("a\r\nb\u{1b}[31mred\u{1b}[0m\u{200b}"),
            "a\nbred\u{200b}"
        );
        assert_eq!(ftfy_fix_text("e\u{301}\u{feff}"), "é");
        assert_eq!(ftfy_fix_text("&#128512;&#x41;&#150;"), "😀A–");
        assert_eq!(ftfy_fix_text("P&EACUTE;REZ"), "PÉREZ");
        assert_eq!(ftfy_fix_text("this&not that"), "this&not that");
        assert_eq!(ftfy_fix_text("cafÃ© mojibake"), "café mojibake");
        assert_eq!(ftfy_fix_text("â€œquotedâ€\u{9d}"), "\"quoted\"");
        assert_eq!(ftfy_fix_text("À la carte, café"), "À la carte, café");
    }

    #[test]
    fn modes() {
        let text = "  Caf&eacute;\u{2019}s  ＦＯＯ &amp;amp ";
        assert_eq!(TextCleaning::Transformers.apply(text), text);
        assert_eq!(TextCleaning::Ftfy.apply(text), "café's foo &amp");
        assert_eq!(TextCleaning::Original.apply(text), "café's foo &");
    }
}
