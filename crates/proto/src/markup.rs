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

/// Text as it must stand in a Markdown table cell to show as written: a backslash before each
/// character Markdown would read as markup (`|` would end the cell, `<` open an HTML tag, `*`
/// and `` ` `` start emphasis or code, `[` a link), and a line break as a space (a table row is
/// one line).
pub fn markdown_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '<' | '>' | '&' | '*' | '`' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A verdict table in GitHub-flavoured Markdown: a row per expectation, held or **NO**, with its
/// evidence.
pub fn markdown_rows(rows: &[crate::report::ExpectationResult]) -> String {
    let mut out = String::from("| expectation | held | evidence |\n| --- | --- | --- |\n");
    for e in rows {
        let held = if e.passed { "yes" } else { "**NO**" };
        let (name, detail) = (markdown_cell(&e.name), markdown_cell(&e.detail));
        out.push_str(&format!("| {name} | {held} | {detail} |\n"));
    }
    out
}

/// `Every expectation held (5 of 5)`, or `2 of 5 expectations did not hold: a, b`.
pub fn markdown_tally(rows: &[crate::report::ExpectationResult]) -> String {
    let total = rows.len();
    let failed: Vec<String> = (rows.iter())
        .filter(|e| !e.passed)
        .map(|e| markdown_cell(&e.name))
        .collect();
    if failed.is_empty() {
        format!("Every expectation held ({total} of {total})")
    } else {
        let n = failed.len();
        format!(
            "{n} of {total} expectations did not hold: {}",
            failed.join(", ")
        )
    }
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
