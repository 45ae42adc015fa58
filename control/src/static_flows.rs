//! The `[[flow]]` tables: cut out of the file and validated one at a time.
//!
//! A file may hold hundreds of thousands of static flows. Parsed as one document, each flow's
//! tokens, events and table cost the TOML parser some 2 KB (a 15 MB file took 460 MB). So the
//! text is first scanned with the TOML lexer (strings, comments and multi-line values are single
//! tokens or nested brackets, so a `[[flow]]` inside them is never mistaken for a header), every
//! top-level `[[flow]]` section is cut out, and the rest of the file is parsed as before. Each
//! section is then parsed on its own, as the little document `[[flow]] ...` it is, so its spans
//! and error messages are those of the whole file, and only its [`FlowKey`] is kept.

use crate::config::{ConfigError, Found, Locator};
use chance_engine::{FlowKey, L4Proto};
use core::net::SocketAddr;
use core::ops::Range;
use serde::Deserialize;
use std::collections::HashMap;
use toml::Spanned;
use toml_parser::lexer::TokenKind;

/// The file with its top-level `[[flow]]` sections cut out.
pub(crate) struct Sections {
    /// The text without the flow sections.
    pub rest: String,
    /// Where text was cut: (offset in `rest`, bytes cut there), in order.
    pub cuts: Vec<(usize, usize)>,
    /// The flow sections, header included, as ranges of the original text, in file order.
    pub flows: Vec<Range<usize>>,
}

/// Splits `text` into its `[[flow]]` sections and the rest.
pub(crate) fn split(text: &str) -> Sections {
    // Where each top-level table header starts, and whether it is `[[flow]]`.
    let mut headers: Vec<(usize, bool)> = Vec::new();
    let mut depth = 0usize; // brackets and braces open in a value
    let mut line_start = true;
    let mut header: Option<(usize, String)> = None; // start, significant text so far
    for token in toml_parser::Source::new(text).lex() {
        let span = token.span();
        let raw = &text[span.start()..span.end()];
        match token.kind() {
            TokenKind::Newline | TokenKind::Eof => {
                if let Some((start, shape)) = header.take() {
                    headers.push((start, is_flow_header(&shape)));
                }
                line_start = true;
                continue;
            }
            TokenKind::Whitespace | TokenKind::Comment => continue,
            _ => {}
        }
        if let Some((_, shape)) = &mut header {
            shape.push_str(raw);
        } else if line_start && depth == 0 && token.kind() == TokenKind::LeftSquareBracket {
            header = Some((span.start(), raw.to_owned()));
        } else {
            match token.kind() {
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    depth = depth.saturating_sub(1)
                }
                _ => {}
            }
        }
        line_start = false;
    }
    if let Some((start, shape)) = header {
        headers.push((start, is_flow_header(&shape)));
    }

    let mut sections = Sections {
        rest: String::new(),
        cuts: Vec::new(),
        flows: Vec::new(),
    };
    let mut kept_from = 0;
    let mut cut_bytes = 0;
    for (i, &(start, flow)) in headers.iter().enumerate() {
        if !flow {
            continue;
        }
        let end = headers.get(i + 1).map_or(text.len(), |&(next, _)| next);
        sections.flows.push(start..end);
        if start > kept_from {
            sections.rest.push_str(&text[kept_from..start]);
        }
        if start >= kept_from {
            match sections.cuts.last_mut() {
                // Adjacent sections make one cut.
                Some((at, len)) if *at == sections.rest.len() => *len += end - start,
                _ => sections.cuts.push((sections.rest.len(), end - start)),
            }
        }
        cut_bytes += end - start;
        kept_from = end;
    }
    sections.rest.push_str(&text[kept_from..]);
    debug_assert_eq!(sections.rest.len() + cut_bytes, text.len());
    sections
}

/// `[[flow]]`, `[[ "flow" ]]` or `[['flow']]`, white space and comments aside.
fn is_flow_header(shape: &str) -> bool {
    matches!(shape, "[[flow]]" | "[[\"flow\"]]" | "[['flow']]")
}

/// One section parsed on its own: `[[flow]]` and its keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    flow: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    proto: RawProto,
    local: Spanned<String>,
    remote: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawProto {
    Tcp,
    Udp,
}

impl From<RawProto> for L4Proto {
    fn from(p: RawProto) -> Self {
        match p {
            RawProto::Tcp => L4Proto::Tcp,
            RawProto::Udp => L4Proto::Udp,
        }
    }
}

/// Parses the section of `text` at `range`, flow number `i`: its key and the span of its
/// `local` (in the whole text).
pub(crate) fn parse_section(
    text: &str,
    range: Range<usize>,
    i: usize,
    at: &Locator<'_>,
) -> Result<(FlowKey, Range<usize>), ConfigError> {
    let at = at.shifted(range.start);
    let section = &text[range];
    let deserializer = toml::de::Deserializer::parse(section)
        .map_err(|e| at.error(e.span().unwrap_or(0..0), None, e.message()))?;
    let mut parsed: Section = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // The section is `flow[0]` of its own little document.
        let key = crate::config::key_path(e.path())
            .map(|k| k.replacen("flow[0]", &format!("flow[{i}]"), 1));
        let inner = e.into_inner();
        at.error(inner.span().unwrap_or(0..0), key, inner.message())
    })?;
    match parsed.flow.pop() {
        Some(flow) if parsed.flow.is_empty() => {
            let key = flow.validate(i, &at)?;
            Ok((key, at.original(flow.local.span())))
        }
        // The splitter cuts one header per section; anything else is a bug, reported as such.
        _ => Err(at.error(
            0..0,
            Some(format!("flow[{i}]")),
            "expected one [[flow]] table",
        )),
    }
}

impl RawFlow {
    pub(crate) fn validate(&self, i: usize, at: &Locator<'_>) -> Result<FlowKey, ConfigError> {
        let local = parse_endpoint(&self.local, i, "local", at)?;
        let remote = parse_endpoint(&self.remote, i, "remote", at)?;
        FlowKey::new(self.proto.into(), local, remote).ok_or_else(|| {
            at.error(
                self.remote.span(),
                Some(format!("flow[{i}].remote")),
                format!(
                    "address family differs from flow[{i}].local ({} vs {})",
                    family(remote),
                    family(local)
                ),
            )
        })
    }

    /// The span of `local`, where duplicate and capacity errors point.
    pub(crate) fn local_span(&self) -> Range<usize> {
        self.local.span()
    }
}

fn family(addr: SocketAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn parse_endpoint(
    text: &Spanned<String>,
    i: usize,
    field: &str,
    at: &Locator<'_>,
) -> Result<SocketAddr, ConfigError> {
    let key = || Some(format!("flow[{i}].{field}"));
    let addr: SocketAddr = text.get_ref().trim().parse().map_err(|_| {
        at.error(
            text.span(),
            key(),
            format!(
                "`{}` is not an address and port (expected ADDR:PORT, or [ADDR]:PORT for IPv6)",
                text.get_ref()
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(at.error(
            text.span(),
            key(),
            "port 0 is not a valid flow port (expected 1 to 65535)",
        ));
    }
    Ok(addr)
}

/// The static flows as they are validated: keys in file order, and a map for duplicates.
pub(crate) struct Flows {
    keys: Vec<FlowKey>,
    seen: HashMap<FlowKey, usize>,
    capacity: usize,
    total: usize,
}

impl Flows {
    /// Validates the flows: those of an inline `flow = [...]` array (`inline`, spans through
    /// `at`), or those of the `[[flow]]` sections of `whole`'s text (not both: TOML forbids it).
    pub(crate) fn validate(
        inline: Vec<RawFlow>,
        at: &Locator<'_>,
        sections: &[Range<usize>],
        whole: &Locator<'_>,
        capacity: usize,
        found: &mut Found,
    ) -> Vec<FlowKey> {
        if !inline.is_empty() && !sections.is_empty() {
            found.take::<()>(Err(whole.error(
                sections[0].clone(),
                Some("flow".into()),
                "defined both as an array and by [[flow]] tables",
            )));
            return Vec::new();
        }
        let total = inline.len() + sections.len();
        let mut flows = Flows {
            keys: Vec::with_capacity(total.min(capacity)),
            seen: HashMap::with_capacity(total.min(capacity)),
            capacity,
            total,
        };
        for (i, flow) in inline.iter().enumerate() {
            if found.full() {
                break;
            }
            let key = flow
                .validate(i, at)
                .map(|k| (k, at.original(flow.local_span())));
            if let Some((key, local)) = found.take(key) {
                found.take(flows.push(i, key, local, whole));
            }
        }
        for (i, section) in sections.iter().enumerate() {
            if found.full() {
                break;
            }
            let parsed = parse_section(whole.text(), section.clone(), i, whole);
            if let Some((key, local)) = found.take(parsed) {
                found.take(flows.push(i, key, local, whole));
            }
        }
        flows.keys
    }

    /// Adds flow number `i`, whose `local` is at `local` in the whole text.
    fn push(
        &mut self,
        i: usize,
        key: FlowKey,
        local: Range<usize>,
        whole: &Locator<'_>,
    ) -> Result<(), ConfigError> {
        if let Some(first) = self.seen.get(&key) {
            return Err(whole.error(
                local,
                Some(format!("flow[{i}]")),
                format!("duplicate of flow[{first}]"),
            ));
        }
        if self.keys.len() == self.capacity {
            // Static entries are never evicted: chanced could not even start with them all.
            // Said once, at the first flow that does not fit.
            let error = whole.error(
                local,
                Some(format!("flow[{i}]")),
                format!(
                    "{} static flows do not fit in flow_table.capacity = {} (raise the capacity)",
                    self.total, self.capacity
                ),
            );
            self.capacity = usize::MAX;
            return Err(error);
        }
        self.seen.insert(key, i);
        self.keys.push(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows_of(text: &str) -> Vec<&str> {
        split(text).flows.into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn flow_sections_are_cut_and_the_rest_kept_in_order() {
        let text = "a = 1\n[[flow]]\nx = 1\n[[flow]] # c\ny = 2\n[t]\nz = 3\n[[ \"flow\" ]]\n";
        let s = split(text);
        assert_eq!(
            flows_of(text),
            [
                "[[flow]]\nx = 1\n",
                "[[flow]] # c\ny = 2\n",
                "[[ \"flow\" ]]\n"
            ]
        );
        assert_eq!(s.rest, "a = 1\n[t]\nz = 3\n");
        assert_eq!(s.cuts, [(6, 34), (16, 13)]);
    }

    #[test]
    fn flow_headers_inside_strings_and_values_are_not_sections() {
        let text =
            "a = \"\"\"\n[[flow]]\n\"\"\"\nb = [\n[[flow]]\n]\n[[flows]]\n[[flow.x]]\n[flow]\n";
        let s = split(text);
        assert!(s.flows.is_empty());
        assert_eq!(s.rest, text);
    }
}
