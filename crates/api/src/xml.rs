//! XML responses of the query protocols (SNS's, EC2's), written with `quick-xml` (which
//! escapes): a tree of [`Xml`] elements under a namespaced root.

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

/// One element of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Xml {
    /// `<name>text</name>`.
    Leaf(&'static str, String),
    /// `<name>children</name>`.
    Node(&'static str, Vec<Xml>),
}

/// `<name>value</name>`.
pub fn leaf(name: &'static str, value: impl Into<String>) -> Xml {
    Xml::Leaf(name, value.into())
}

/// Writes one element and its children.
pub fn write(w: &mut Writer<Vec<u8>>, node: &Xml) -> std::io::Result<()> {
    match node {
        Xml::Leaf(name, text) => {
            w.write_event(Event::Start(BytesStart::new(*name)))?;
            w.write_event(Event::Text(BytesText::new(&xml_chars(text))))?;
            w.write_event(Event::End(BytesEnd::new(*name)))
        }
        Xml::Node(name, children) => {
            w.write_event(Event::Start(BytesStart::new(*name)))?;
            for c in children {
                write(w, c)?;
            }
            w.write_event(Event::End(BytesEnd::new(*name)))
        }
    }
}

/// Text with the characters XML 1.0 cannot carry (control characters other than tab and line
/// breaks, U+FFFE, U+FFFF) replaced by U+FFFD, so that every answer parses.
fn xml_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    };
    if text.chars().any(bad) {
        text.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// A document: `<root xmlns="…">` (no namespace when `xmlns` is empty) around what `body`
/// writes.
pub fn document(
    root: &str,
    xmlns: &str,
    body: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>,
) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let written = (|| {
        let start = BytesStart::new(root);
        let start = if xmlns.is_empty() {
            start
        } else {
            start.with_attributes([("xmlns", xmlns)])
        };
        w.write_event(Event::Start(start))?;
        body(&mut w)?;
        w.write_event(Event::End(BytesEnd::new(root)))
    })();
    // Writing to a Vec cannot fail.
    debug_assert!(written.is_ok());
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_escaped_and_always_parse() {
        let doc = document("XResponse", "urn:x", |w| {
            write(
                w,
                &Xml::Node("set", vec![Xml::Node("item", vec![leaf("k", "a<b&c")])]),
            )
        });
        assert_eq!(
            String::from_utf8(doc).unwrap(),
            "<XResponse xmlns=\"urn:x\"><set><item><k>a&lt;b&amp;c</k></item></set></XResponse>"
        );
        let bare = document("Response", "", |w| write(w, &leaf("m", "a\u{1}b\tc")));
        assert_eq!(
            String::from_utf8(bare).unwrap(),
            "<Response><m>a\u{FFFD}b\tc</m></Response>"
        );
    }
}
