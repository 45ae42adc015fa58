//! Positions in a configuration file: byte spans (of the whole text, or of a part cut out of it)
//! turned into `FILE:LINE:COLUMN` diagnostics, and serde's key paths into dotted keys.

use crate::config::{ConfigError, Diagnostic};
use core::ops::Range;
use serde_path_to_error::Segment;

/// Turns byte spans into diagnostics against the whole text; spans may be of a part of it (a
/// section that starts at an offset, or the text with sections cut out).
pub(crate) struct Locator<'a> {
    text: &'a str,
    origin: &'a str,
    /// Spans given to this locator start this far into `text`...
    offset: usize,
    /// ...and skip these cuts: (offset in the cut text, bytes cut there).
    cuts: &'a [(usize, usize)],
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str, origin: &'a str) -> Self {
        Self {
            text,
            origin,
            offset: 0,
            cuts: &[],
        }
    }

    /// A locator for the part of the text that starts at `offset`.
    pub(crate) fn shifted(&self, offset: usize) -> Locator<'a> {
        Locator {
            offset: self.offset + offset,
            ..*self
        }
    }

    /// A locator for the text with `cuts` taken out.
    pub(crate) fn with_cuts(&self, cuts: &'a [(usize, usize)]) -> Locator<'a> {
        Locator { cuts, ..*self }
    }

    /// The whole text.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// A span of this locator's part as a span of the whole text.
    pub(crate) fn original(&self, span: Range<usize>) -> Range<usize> {
        let cut: usize = self
            .cuts
            .iter()
            .take_while(|&&(at, _)| at <= span.start)
            .map(|&(_, len)| len)
            .sum();
        let shift = self.offset + cut;
        span.start + shift..span.end + shift
    }

    /// The origin (file name) errors are reported against.
    pub(crate) fn origin(&self) -> &str {
        self.origin
    }

    /// 1-based (line, column) of byte offset `at`, the column counted in characters.
    pub(crate) fn position(&self, at: usize) -> (usize, usize) {
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.text[..at];
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.position(self.original(span).start);
        ConfigError::Invalid(Box::new(Diagnostic {
            origin: self.origin.to_owned(),
            line,
            column,
            key,
            message: message.into(),
        }))
    }
}

/// The dotted key path of a serde error, without serde_spanned's internal fields.
pub(crate) fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    (!out.is_empty()).then_some(out)
}
