//! A request's output as it arrives: generated ids turned into text pieces (whole UTF-8 characters only) and
//! cut at the first stop sequence. Text that might be the start of a stop sequence is held back until it is
//! known not to be, so a stream never shows text that the final answer does not contain.

use crate::tokenizer::{StreamDecoder, Tokenizer};

pub struct TextOutput {
    decoder: StreamDecoder,
    stops: Vec<String>,
    /// All text decoded so far (up to a stop sequence, once one is found).
    text: String,
    /// Bytes of `text` already handed out.
    sent: usize,
    pub tokens: Vec<u32>,
    pub stopped: bool,
}

impl TextOutput {
    pub fn new(stops: Vec<String>) -> Self {
        TextOutput {
            decoder: StreamDecoder::default(),
            stops,
            text: String::new(),
            sent: 0,
            tokens: vec![],
            stopped: false,
        }
    }

    /// Adds a generated id; returns the text that may be shown now. After a stop sequence, `stopped` is set
    /// and the request is over.
    pub fn push(&mut self, tokenizer: Option<&Tokenizer>, id: u32) -> String {
        self.tokens.push(id);
        let Some(t) = tokenizer else {
            return String::new();
        };
        let piece = self.decoder.push(t, id).unwrap_or_default();
        self.add(piece, false)
    }

    /// The text still held back once generation has ended.
    pub fn finish(&mut self, tokenizer: Option<&Tokenizer>) -> String {
        if self.stopped {
            return String::new();
        }
        let piece = tokenizer
            .map(|t| self.decoder.finish(t).unwrap_or_default())
            .unwrap_or_default();
        self.add(piece, true)
    }

    /// The whole text (as handed out, plus anything still held back).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn add(&mut self, piece: String, last: bool) -> String {
        let search_from = floor_char(&self.text, self.sent.saturating_sub(self.longest_stop()));
        self.text.push_str(&piece);
        let hit = self
            .stops
            .iter()
            .filter_map(|s| {
                self.text[search_from..]
                    .find(s.as_str())
                    .map(|i| search_from + i)
            })
            .min();
        let end = match hit {
            Some(i) => {
                self.text.truncate(i);
                self.stopped = true;
                i
            }
            None if last => self.text.len(),
            None => self.text.len() - self.held_back(),
        };
        let out = self.text[self.sent.min(end)..end].to_string();
        self.sent = self.sent.max(end);
        out
    }

    fn longest_stop(&self) -> usize {
        self.stops.iter().map(|s| s.len()).max().unwrap_or(0)
    }

    /// Bytes at the end of the text that begin some stop sequence.
    fn held_back(&self) -> usize {
        let t = &self.text;
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(|&k| s.is_char_boundary(k) && t.ends_with(&s[..k]))
                    .take(1)
            })
            .max()
            .unwrap_or(0)
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, bool) {
        let mut o = TextOutput::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = vec![];
        for p in pieces {
            out.push(o.add(p.to_string(), false));
            if o.stopped {
                break;
            }
        }
        if !o.stopped {
            out.push(o.add(String::new(), true));
        }
        (out, o.text().to_string(), o.stopped)
    }

    #[test]
    fn a_stop_split_across_pieces_is_never_shown() {
        let (out, text, stopped) = feed(&["END"], &["ab", "cE", "N", "Dxyz"]);
        assert_eq!(out, vec!["ab", "c", "", ""]);
        assert_eq!(text, "abc");
        assert!(stopped);
    }

    #[test]
    fn a_false_start_is_released() {
        let (out, text, stopped) = feed(&["END"], &["aE", "Nb", "c"]);
        assert_eq!(out.concat(), "aENbc");
        assert_eq!(out[0], "a");
        assert_eq!(text, "aENbc");
        assert!(!stopped);
    }

    #[test]
    fn the_earliest_stop_wins_and_multibyte_text_is_safe() {
        let (out, text, _) = feed(&["é!", "zz"], &["aé", "é!zz"]);
        assert_eq!(out.concat(), "aé");
        assert_eq!(text, "aé");
    }
}
