//! Located errors in check files, printed the way a compiler prints them.

use std::fmt;
use std::ops::Range;

/// One problem in a check file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given (`<inline>` for text that came from no file).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// How many characters the problem spans on its line (at least 1).
    pub width: usize,
    /// What is wrong: the rule, the bad value and a good example.
    pub message: String,
    /// The offending line of the file, for display.
    pub source_line: String,
}

impl Diagnostic {
    /// Locates `span` (byte offsets) in `text`.
    pub(crate) fn at(file: &str, text: &str, span: Range<usize>, message: String) -> Self {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = text[start..end].chars().count().max(1);
        Self {
            file: file.to_owned(),
            line,
            column,
            width,
            message,
            source_line: text[line_start..line_end].trim_end_matches('\r').to_owned(),
        }
    }

    /// The compiler-style rendering: the message, the location, the line and a caret.
    pub fn render(&self) -> String {
        let pad = " ".repeat(self.line.to_string().len());
        let mut out = format!(
            "error: {}\n{pad}--> {}:{}:{}\n",
            self.message, self.file, self.line, self.column
        );
        if !self.source_line.is_empty() {
            let lead: String = self
                .source_line
                .chars()
                .take(self.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                "{pad} |\n{} | {}\n{pad} | {lead}{}\n",
                self.line,
                self.source_line,
                "^".repeat(self.width)
            ));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    /// One line: `file:line:column: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a set of check files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The compiler-style rendering of every problem, then a count.
    pub fn render(&self) -> String {
        let mut out: String = self.0.iter().map(|d| d.render() + "\n").collect();
        let n = self.0.len();
        out.push_str(&format!(
            "error: {n} problem{} found\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
