//! Turns the bytes of a Windows tool's output into text, whatever console code page wrote them.
//!
//! Order: BOM (UTF-8, UTF-16LE/BE); UTF-16LE without BOM (NUL in every odd byte); the
//! "ASCII then UTF-16LE" mix that `wmic` prints on first run on XP; strict UTF-8; else a
//! legacy code page chosen by which decoding yields recognisable systeminfo labels.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The encoding an input was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextEncoding {
    /// Plain 7-bit ASCII (also valid UTF-8 and every code page).
    Ascii,
    /// UTF-8 without BOM.
    Utf8,
    /// UTF-8 with BOM.
    Utf8Bom,
    /// UTF-16LE with BOM.
    Utf16LeBom,
    /// UTF-16BE with BOM.
    Utf16BeBom,
    /// UTF-16LE recognised by its NUL pattern, no BOM.
    Utf16Le,
    /// An ASCII prefix (`Please wait while WMIC is being installed.`) then UTF-16LE.
    AsciiThenUtf16Le,
    /// OEM code page 850 (Western European console: it, es, fr, de, ...).
    Cp850,
    /// OEM code page 866 (Russian console).
    Cp866,
    /// GBK / code page 936 (Simplified Chinese console).
    Gbk,
    /// windows-1252 (ANSI Western European).
    Windows1252,
    /// windows-1251 (ANSI Cyrillic).
    Windows1251,
}

impl TextEncoding {
    /// Short name recorded as a [`crate::FactField::Encoding`] fact.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ascii => "ascii",
            Self::Utf8 => "utf-8",
            Self::Utf8Bom => "utf-8-bom",
            Self::Utf16LeBom => "utf-16le-bom",
            Self::Utf16BeBom => "utf-16be-bom",
            Self::Utf16Le => "utf-16le",
            Self::AsciiThenUtf16Le => "ascii+utf-16le",
            Self::Cp850 => "cp850",
            Self::Cp866 => "cp866",
            Self::Gbk => "gbk",
            Self::Windows1252 => "windows-1252",
            Self::Windows1251 => "windows-1251",
        }
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decoded text and how it was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, BOM removed, line endings untouched.
    pub text: String,
    /// The encoding used.
    pub encoding: TextEncoding,
}

/// Why bytes could not be decoded as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeProblem {
    /// NUL bytes or control characters that no text encoding explains.
    Binary {
        /// Byte offset of the first offending byte.
        offset: usize,
    },
}

/// Code page 850, bytes 0x80..=0xFF.
const CP850_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©', '╣', '║', '╗', '╝', '¢', '¥', '┐', //
    '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦', '╠', '═', '╬', '¤', //
    'ð', 'Ð', 'Ê', 'Ë', 'È', 'ı', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì', '▀', //
    'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´', //
    '\u{ad}', '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■', '\u{a0}',
];

fn decode_cp850(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b < 0x80 {
                char::from(b)
            } else {
                CP850_HIGH[usize::from(b - 0x80)]
            }
        })
        .collect()
}

fn decode_utf16(bytes: &[u8], little: bool) -> String {
    let units = bytes.chunks(2).map(|c| {
        let (a, b) = (c[0], c.get(1).copied().unwrap_or(0));
        if little {
            u16::from_le_bytes([a, b])
        } else {
            u16::from_be_bytes([a, b])
        }
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// True when `bytes` (from an even offset) look like UTF-16LE text: most high bytes are NUL.
fn looks_utf16le(bytes: &[u8]) -> bool {
    let pairs = bytes.len() / 2;
    if pairs < 2 {
        return false;
    }
    let sample = &bytes[..bytes.len().min(4000) & !1];
    let n = sample.len() / 2;
    let high_nul = sample.chunks(2).filter(|c| c[1] == 0 && c[0] != 0).count();
    high_nul * 10 >= n * 6
}

/// Labels whose appearance proves a legacy decoding right (non-ASCII ones matter).
const PROBE_WORDS: &[&str] = &[
    "Versión",
    "Revisión",
    "sistema operativo",
    "hôte",
    "système",
    "Système",
    "Correctif",
    "主机名",
    "修补程序",
    "系统类型",
    "名称",
    "版本",
    "Имя узла",
    "Версия ОС",
    "Исправление",
    "Тип системы",
    "Betriebssystem",
    "Prozessor",
    "Aggiornamenti",
    "Ubicación",
    "Mémoire",
];

fn score(text: &str) -> i64 {
    let mut s: i64 = 0;
    for w in PROBE_WORDS {
        if text.contains(w) {
            s += 100;
        }
    }
    for c in text.chars() {
        if c == char::REPLACEMENT_CHARACTER || ('\u{80}'..='\u{9f}').contains(&c) {
            s -= 5;
        }
    }
    s
}

fn is_binary_char(c: char) -> bool {
    (c.is_control() && !matches!(c, '\r' | '\n' | '\t' | '\u{c}' | '\u{85}')) || c == '\u{0}'
}

fn check_text(text: &str) -> Result<(), DecodeProblem> {
    let total = text.chars().count().max(1);
    let mut bad = 0usize;
    let mut first = None;
    for (i, c) in text.char_indices() {
        if is_binary_char(c) {
            bad += 1;
            first.get_or_insert(i);
        }
    }
    // A stray control character in a long file is tolerated; a NUL or many are not.
    if text.contains('\0') || bad * 100 > total {
        return Err(DecodeProblem::Binary {
            offset: first.unwrap_or(0),
        });
    }
    Ok(())
}

/// Decodes the bytes of a Windows tool's output.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeProblem> {
    let done = |text: String, encoding| -> Result<Decoded, DecodeProblem> {
        check_text(&text)?;
        Ok(Decoded { text, encoding })
    };
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return match std::str::from_utf8(rest) {
            Ok(s) => done(s.to_owned(), TextEncoding::Utf8Bom),
            Err(e) => Err(DecodeProblem::Binary {
                offset: e.valid_up_to() + 3,
            }),
        };
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return done(decode_utf16(rest, true), TextEncoding::Utf16LeBom);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return done(decode_utf16(rest, false), TextEncoding::Utf16BeBom);
    }
    if bytes.len() >= 4 && bytes[1] == 0 && bytes[3] == 0 && looks_utf16le(bytes) {
        return done(decode_utf16(bytes, true), TextEncoding::Utf16Le);
    }
    // ASCII prefix then UTF-16LE: find the first "X\0Y\0Z\0W\0" run after printable ASCII.
    if let Some(pos) = bytes
        .windows(8)
        .position(|w| w[1] == 0 && w[3] == 0 && w[5] == 0 && w[7] == 0 && w[0] != 0 && w[2] != 0)
    {
        let (head, tail) = bytes.split_at(pos);
        if pos > 0 && head.iter().all(|&b| b.is_ascii() && b != 0) && looks_utf16le(tail) {
            let mut text = String::from_utf8_lossy(head).into_owned();
            text.push_str(&decode_utf16(tail, true));
            return done(text, TextEncoding::AsciiThenUtf16Le);
        }
    }
    if bytes.is_ascii() {
        let text = String::from_utf8_lossy(bytes).into_owned();
        return done(text, TextEncoding::Ascii);
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return done(s.to_owned(), TextEncoding::Utf8);
    }
    if bytes.contains(&0) {
        return Err(DecodeProblem::Binary {
            offset: bytes.iter().position(|&b| b == 0).unwrap_or(0),
        });
    }
    // Legacy code pages: keep the candidate with recognisable labels; ties go to the first
    // (cp850 is the console code page of most Western locales).
    let candidates: [(TextEncoding, String); 5] = [
        (TextEncoding::Cp850, decode_cp850(bytes)),
        (
            TextEncoding::Gbk,
            encoding_rs::GBK
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
        (
            TextEncoding::Cp866,
            encoding_rs::IBM866
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
        (
            TextEncoding::Windows1252,
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
        (
            TextEncoding::Windows1251,
            encoding_rs::WINDOWS_1251
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
    ];
    let mut best: Option<(i64, TextEncoding, String)> = None;
    for (enc, text) in candidates {
        let s = score(&text);
        if best.as_ref().is_none_or(|(b, _, _)| s > *b) {
            best = Some((s, enc, text));
        }
    }
    match best {
        Some((_, enc, text)) => done(text, enc),
        None => Err(DecodeProblem::Binary { offset: 0 }),
    }
}

/// Splits decoded text into lines: `\n`-separated, every trailing `\r` removed (XP's
/// `wmic` writes `\r\r\n`). U+0085 is *not* a line break here (it is `à` in cp850 bytes).
pub fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp850_table_matches_known_letters() {
        assert_eq!(decode_cp850(&[0xA2, 0x8A, 0x93, 0xFF]), "óèô\u{a0}");
    }

    #[test]
    fn ascii_then_utf16() {
        let mut b = b"Please wait.".to_vec();
        for c in "Caption  HotFixID\r\n".encode_utf16() {
            b.extend_from_slice(&c.to_le_bytes());
        }
        let d = decode(&b).unwrap();
        assert_eq!(d.encoding, TextEncoding::AsciiThenUtf16Le);
        assert_eq!(d.text, "Please wait.Caption  HotFixID\r\n");
    }

    #[test]
    fn binary_is_refused() {
        assert!(decode(&[0x7f, b'E', b'L', b'F', 0, 0, 1, 2, 0xff, 0x00, 0x13]).is_err());
    }
}
