//! One escape for text put into markup: HTML (report.html, the live view), SVG and XML
//! (junit.xml).

/// Escapes text for HTML, SVG and XML content and attribute values. Control characters other
/// than tab and line breaks are dropped: XML 1.0 cannot carry them, and HTML would not show them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // `&#39;`, not `&apos;`: HTML 4 has no `&apos;`, and XML reads both.
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_characters_are_escaped_and_control_characters_dropped() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{7}\n"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\n"
        );
    }
}
