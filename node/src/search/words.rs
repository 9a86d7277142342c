//! How text is cut into searchable words: runs of letters and digits, except
//! that Chinese characters and Japanese kana stand one per word. Those
//! scripts put no spaces between words, so a run of them would be one
//! "word" no query could match inside; one per character, a query of
//! several characters becomes a phrase that matches them in sequence.
//!
//! Lower-casing and accent folding are left to the filters that follow
//! (see [`super::SearchIndex`]).

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The tokenizer, registered under [`NAME`].
#[derive(Clone, Default)]
pub(crate) struct Words {
    token: Token,
}

/// The name the schema's text fields give it.
pub(crate) const NAME: &str = "meshwork_words";

/// Whether `c` is written without spaces between words, hence indexed alone.
fn stands_alone(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'     // hiragana, katakana
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // CJK compatibility ideographs
        | '\u{20000}'..='\u{2FA1F}' // CJK extensions B–F, supplement
    )
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.token.reset();
        WordStream {
            text,
            at: 0,
            token: &mut self.token,
        }
    }
}

/// The words of one text, in order.
pub(crate) struct WordStream<'a> {
    text: &'a str,
    /// Byte offset of what is not read yet.
    at: usize,
    token: &'a mut Token,
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.at..];
        let Some((skip, first)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
            self.at = self.text.len();
            return false;
        };
        let from = self.at + skip;
        let to = if stands_alone(first) {
            from + first.len_utf8()
        } else {
            self.text[from..]
                .char_indices()
                .find(|(_, c)| !c.is_alphanumeric() || stands_alone(*c))
                .map_or(self.text.len(), |(i, _)| from + i)
        };
        self.at = to;
        self.token.position = self.token.position.wrapping_add(1);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut tokenizer = Words::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    #[test]
    fn latin_words_split_on_anything_but_letters_and_digits() {
        let got = words("Q3 report.xlsx — café, v2!");
        let texts: Vec<&str> = got.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(texts, ["Q3", "report", "xlsx", "café", "v2"]);
        assert_eq!(got[0].1, 0);
        assert_eq!(got[4].1, 4);
        assert_eq!(&"Q3 report.xlsx — café, v2!"[got[3].2..got[3].3], "café");
    }

    #[test]
    fn chinese_and_japanese_characters_stand_one_per_word() {
        let got = words("明天的会议agenda在3楼 カタカナ");
        let texts: Vec<&str> = got.iter().map(|w| w.0.as_str()).collect();
        assert_eq!(
            texts,
            [
                "明", "天", "的", "会", "议", "agenda", "在", "3", "楼", "カ", "タ", "カ", "ナ"
            ]
        );
        let positions: Vec<usize> = got.iter().map(|w| w.1).collect();
        assert_eq!(positions, (0..13).collect::<Vec<_>>());
    }

    #[test]
    fn no_words_in_punctuation_or_nothing() {
        assert!(words("").is_empty());
        assert!(words(" …!? \n").is_empty());
    }
}
